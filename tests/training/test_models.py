"""The model `llada-train` builds from its arguments."""

import pytest

from llada.training.models import ModelArguments, build_model
from llada.training.tokenizers import build_byte_tokenizer, ensure_mask_token

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


def test_token_reweighting_reaches_the_config_and_only_for_llada():
    tokenizer = ensure_mask_token(build_byte_tokenizer())
    model = build_model(ModelArguments(token_reweighting_gamma=2.0, **TINY), tokenizer, max_seq_length=16)
    assert model.config.token_reweighting_gamma == 2.0
    assert build_model(ModelArguments(**TINY), tokenizer, 16).config.token_reweighting_gamma == 0.0
    with pytest.raises(ValueError, match="--token_reweighting_gamma"):
        ModelArguments(model_type="autoregressive", token_reweighting_gamma=2.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            ModelArguments(token_reweighting_gamma=bad)
