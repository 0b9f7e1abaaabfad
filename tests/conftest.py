"""Shared fixtures: tiny CPU configs so the whole suite runs in minutes on two cores."""

import importlib
import sys
from pathlib import Path

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


MASK, PAD, EOS = 99, 0, 1  # the tiny config's mask, pad and EOS ids


def varied_model(seed: int = 0) -> LLaDAForMaskedDiffusion:
    """A tiny random model with a wide initialisation, so that its logits differ clearly between tokens."""
    return tiny_model(seed, initializer_range=0.2)


class GraphCounter:
    """A torch.compile backend that runs the captured graph as is and counts the graphs it was given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


def llada_num_transfer_tokens(M, S):
    """LLaDA's get_num_transfer_tokens for one row: M // S per step, +1 for the first M % S steps."""
    return [M // S + (1 if i < M % S else 0) for i in range(S)]


def prompts_batch():
    """Three left-padded prompts of lengths 5, 3 and 1: ids (3, 5) and attention mask (3, 5)."""
    ids = torch.tensor([[11, 12, 13, 14, 15], [PAD, PAD, 21, 22, 23], [PAD, PAD, PAD, PAD, 31]])
    return ids, (ids != PAD).long()


SCRIPT_FOLDERS = [Path(__file__).resolve().parents[1] / folder for folder in ("benchmarks", "experiments")]


def script_module(name: str):
    """A script of benchmarks/ or experiments/ as a module, imported the way the scripts import each other: with
    their folders on `sys.path` (`from common import ...`, benchmarks/common.py)."""
    for folder in SCRIPT_FOLDERS:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return importlib.import_module(name)


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def model():
    return tiny_model()
