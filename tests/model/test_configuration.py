"""LLaDAConfig: defaults, save/load round trip, legacy RoPE fields and every validation error."""

import json

import pytest

from helpers import TINY, tiny_config
from llada import LLaDAConfig


def test_defaults_describe_llada_8b():
    config = LLaDAConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (4096, 32, 32)
    assert (config.vocab_size, config.intermediate_size, config.head_dim) == (126464, 12288, 128)
    assert config.mask_token_id == 126336 and config.eos_token_id == 126081 and config.bos_token_id == 126080
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 500000.0}
    assert config.model_type == "llada" and config.tie_word_embeddings is False


def test_save_load_round_trip(tmp_path):
    config = tiny_config(
        attention_type="latent",
        kv_latent_dim=12,
        hidden_act="mish",
        tie_word_embeddings=True,
        attention_bias=True,
        attention_output_bias=False,
        qk_norm=True,
        logit_shift=True,
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModel": "modeling_llada.LLaDAForMaskedDiffusion",
        "AutoModelForMaskedLM": "modeling_llada.LLaDAForMaskedDiffusion",
    }
    assert (tmp_path / "configuration_llada.py").is_file()
    loaded = LLaDAConfig.from_pretrained(tmp_path)
    for key in [
        *TINY,
        "attention_type",
        "kv_latent_dim",
        "hidden_act",
        "tie_word_embeddings",
        "rope_parameters",
        "attention_output_bias",
        "qk_norm",
        "logit_shift",
    ]:
        assert getattr(loaded, key) == getattr(config, key), key


def test_derived_fields():
    config = tiny_config(num_key_value_heads=None, attention_type="latent")
    assert config.num_key_value_heads == config.num_attention_heads
    assert config.head_dim == 8
    assert config.kv_latent_dim == 8  # hidden_size // 4 by default


def test_the_output_projection_bias_follows_attention_bias_unless_given():
    assert tiny_config(attention_bias=True).attention_output_bias is True
    assert tiny_config(attention_bias=True, attention_output_bias=False).attention_output_bias is False  # Qwen2
    assert tiny_config().attention_output_bias is tiny_config().qk_norm is tiny_config().logit_shift is False


def test_legacy_rope_fields_fold_into_rope_parameters():
    config = tiny_config(rope_theta=10000.0, rope_scaling={"type": "linear", "factor": 2.0})
    assert config.rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    assert config.rope_theta == 10000.0


@pytest.mark.parametrize(
    "overrides, field, value_text",
    [
        (dict(hidden_size=30), "hidden_size", "30"),
        (dict(num_key_value_heads=3), "num_key_value_heads", "3"),
        (dict(mask_token_id=100), "mask_token_id", "100"),
        (dict(mask_token_id=-1), "mask_token_id", "-1"),
        (dict(mask_token_id=True), "mask_token_id", "True"),
        (dict(eos_token_id=False), "eos_token_id", "False"),
        (dict(mask_token_id=1), "mask_token_id", "1"),
        (dict(pad_token_id=512), "pad_token_id", "512"),
        (dict(eos_token_id=[1, 300]), "eos_token_id", "300"),
        (dict(hidden_act="tanh"), "hidden_act", "'tanh'"),
        (dict(attention_type="sparse"), "attention_type", "'sparse'"),
        (dict(attention_type="latent", kv_latent_dim=0), "kv_latent_dim", "0"),
        (dict(num_hidden_layers=0), "num_hidden_layers", "0"),
        (dict(vocab_size=10.5), "vocab_size", "10.5"),
        (dict(head_dim=7), "head_dim", "7"),
        (dict(rms_norm_eps=0), "rms_norm_eps", "0"),
        (dict(rms_norm_eps=float("inf")), "rms_norm_eps", "inf"),
        (dict(rms_norm_eps=float("nan")), "rms_norm_eps", "nan"),
        (dict(initializer_range=float("inf")), "initializer_range", "inf"),
        (dict(attention_dropout=1.5), "attention_dropout", "1.5"),
        (dict(rope_parameters={"rope_type": "bogus", "rope_theta": 1e4}), "rope_type", "'bogus'"),
        (dict(rope_parameters={"rope_type": "default", "rope_theta": -1}), "rope_theta", "-1"),
        (dict(rope_parameters="default"), "rope_parameters", "'default'"),
        (dict(logit_shift="yes"), "logit_shift", "'yes'"),
        (dict(qk_norm=1), "qk_norm", "1"),
        (dict(attention_output_bias=None, attention_bias=0), "attention_bias", "0"),
    ],
)
def test_invalid_values_name_the_field(overrides, field, value_text):
    with pytest.raises(ValueError) as error:
        tiny_config(**overrides)
    message = str(error.value)
    assert field in message and value_text in message


def test_explicit_head_dim_allows_indivisible_hidden():
    config = tiny_config(hidden_size=30, head_dim=8)
    assert config.head_dim == 8


def test_default_special_ids_that_do_not_fit_a_smaller_vocabulary_become_none(tmp_path):
    import torch

    from llada import LLaDAForMaskedDiffusion

    config = LLaDAConfig(
        vocab_size=100,
        mask_token_id=99,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    assert (config.mask_token_id, config.pad_token_id, config.bos_token_id, config.eos_token_id) == (
        99,
        None,
        None,
        None,
    )
    bare = LLaDAConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )  # as transformers' common tests build configs
    assert bare.mask_token_id is None
    assert LLaDAForMaskedDiffusion(bare)(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 100)
    bare.save_pretrained(tmp_path)
    assert LLaDAConfig.from_pretrained(tmp_path).mask_token_id is None  # reloads without complaint
    with pytest.raises(ValueError, match="bos_token_id"):
        LLaDAConfig(vocab_size=100, mask_token_id=99, bos_token_id=500)  # an id the user gave is still checked
    assert LLaDAConfig().bos_token_id == 126080


def test_unknown_keys_are_named_in_a_warning(tmp_path, caplog):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            config = LLaDAConfig.from_dict({**TINY, "hiden_size": 64})
        assert "`hiden_size`" in caplog.text and "`hidden_size`" in caplog.text
        assert config.hidden_size == 32
        caplog.clear()
        tiny_config().save_pretrained(tmp_path)
        with caplog.at_level("WARNING"):
            LLaDAConfig.from_pretrained(tmp_path)  # a saved config holds no unknown key
        assert "unknown key" not in caplog.text
    finally:
        hf_logging.disable_propagation()
