"""Shared fixtures: tiny CPU configs so the whole suite runs in minutes on two cores."""

import pytest
import torch

from llada import LLaDAConfig, LLaDAForMaskedDiffusion

TINY = dict(
    vocab_size=100,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    mask_token_id=99,
    pad_token_id=0,
    bos_token_id=None,
    eos_token_id=1,
)


def tiny_config(**overrides) -> LLaDAConfig:
    """A 2-layer, hidden-32 LLaDA config; keyword arguments override any field."""
    return LLaDAConfig(**{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides) -> LLaDAForMaskedDiffusion:
    """A seeded, randomly initialised tiny model in eval mode (fp32)."""
    torch.manual_seed(seed)
    return LLaDAForMaskedDiffusion(tiny_config(**overrides)).eval()


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def model():
    return tiny_model()
