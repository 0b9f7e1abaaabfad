"""Official LLaDA checkpoints <-> ours: config mapping, logit parity with an independent forward pass written from
the original architecture's description, bit-exact round trips, streaming memory and clear errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, GenerationConfig

from helpers import (
    LLADA_8B_CONFIG,
    random_original_weights,
    tiny_model,
    tiny_original_config,
    tiny_tokenizer,
    write_original_checkpoint,
)
from llada.cli.convert import main as convert_main
from llada.convert import (
    convert_llada_to_original,
    convert_original_to_llada,
    llada_config_to_original,
    original_config_to_llada,
    parse_size,
)
from llada.saved_files import HUB_CODE_FILES

# ----------------------------------------------------------------------------------------------------------------
# independent forward pass of the original architecture (OLMo-style LLaDA "llama" block, bidirectional)


def original_forward(weights: dict, config: dict, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
    """Logits of the official LLaDA network: embeddings -> n_layers x [x + attn(rms(x)); x + mlp(rms(x))] -> rms
    -> output projection, in float64 (but for the rotary angles, float32 as in the original). RoPE rotates the pair
    (i, i + head_dim/2) by position * theta^(-2i/head_dim) with positions 0..T-1 whatever the padding; padding keys
    get a -inf-like additive bias; the MLP is ff_out(silu(ff_proj x) * up_proj x); attention is bidirectional."""
    d, heads, kv_heads, eps = config["d_model"], config["n_heads"], config["n_kv_heads"], config["rms_norm_eps"]
    head_dim, (batch, seq) = d // heads, input_ids.shape
    half = head_dim // 2
    weights = {name: tensor.double() for name, tensor in weights.items()}
    # The original computes the rotary angles in float32 (theta^(-2i/d) as 1 / theta^(2i/d)), then sin/cos.
    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    angles = torch.arange(seq, dtype=torch.float)[:, None] * inv_freq[None, :]  # (seq, half)
    cos, sin = angles.cos().double(), angles.sin().double()

    def rms(x, weight):
        return weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate(t):  # (batch, heads, seq, head_dim)
        first, second = t[..., :half], t[..., half:]
        return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)

    bias = torch.zeros(batch, 1, 1, seq, dtype=torch.double)
    if attention_mask is not None:
        bias = (1.0 - attention_mask.double())[:, None, None, :] * torch.finfo(torch.float).min
    x = weights["model.transformer.wte.weight"][input_ids]
    for i in range(config["n_layers"]):
        w = {k.split(f"blocks.{i}.")[1]: v for k, v in weights.items() if f"blocks.{i}." in k}
        h = rms(x, w["attn_norm.weight"])
        q = (h @ w["q_proj.weight"].T).view(batch, seq, heads, head_dim).transpose(1, 2)
        k = (h @ w["k_proj.weight"].T).view(batch, seq, kv_heads, head_dim).transpose(1, 2)
        v = (h @ w["v_proj.weight"].T).view(batch, seq, kv_heads, head_dim).transpose(1, 2)
        k = k.repeat_interleave(heads // kv_heads, dim=1)  # K/V head j serves query heads j*g .. j*g + g - 1
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        scores = rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(head_dim) + bias
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, d)
        x = x + attended @ w["attn_out.weight"].T
        h = rms(x, w["ff_norm.weight"])
        x = x + (F.silu(h @ w["ff_proj.weight"].T) * (h @ w["up_proj.weight"].T)) @ w["ff_out.weight"].T
    x = rms(x, weights["model.transformer.ln_f.weight"])
    head = weights["model.transformer.wte.weight" if config["weight_tying"] else "model.transformer.ff_out.weight"]
    return x @ head.T


# ----------------------------------------------------------------------------------------------------------------
# config mapping


def test_official_8b_config_maps_field_by_field():
    config = original_config_to_llada(LLADA_8B_CONFIG)
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads) == (4096, 32, 32)
    assert (config.num_hidden_layers, config.intermediate_size, config.vocab_size) == (32, 12288, 126464)
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 500000.0}
    assert (config.max_position_embeddings, config.rms_norm_eps, config.tie_word_embeddings) == (4096, 1e-5, False)
    assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (126336, 126081, 126081)
    assert config.hidden_act == "silu" and config.head_dim == 128


def test_mlp_ratio_fallback_padded_embedding_and_multi_query():
    config = original_config_to_llada(
        tiny_original_config(mlp_hidden_size=None, mlp_ratio=3, vocab_size=97, multi_query_attention=True)
    )
    assert config.intermediate_size == 96  # mlp_ratio * d_model
    assert config.vocab_size == 100  # the embedding rows (embedding_size), not the tokenizer's vocab_size
    assert config.num_key_value_heads == 1


@pytest.mark.parametrize(
    "option, value",
    [
        ("include_bias", True),
        ("include_qkv_bias", True),
        ("alibi", True),
        ("block_type", "sequential"),
        ("layer_norm_type", "default"),
        ("activation_type", "gelu"),
        ("activation_type", "swiglu"),
        ("scale_logits", True),
        ("attention_layer_norm", True),
        ("clip_qkv", 8.0),
        ("rope", False),
    ],
)
def test_unsupported_original_option_fails_naming_it(option, value):
    with pytest.raises(ValueError, match=rf"`{option}` = {value!r}"):
        original_config_to_llada(tiny_original_config(**{option: value}))


def test_features_without_official_equivalent_fail_in_reverse():
    from helpers import tiny_config

    for overrides, field in [
        ({"attention_type": "latent"}, "attention_type"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"hidden_act": "mish"}, "hidden_act"),
        ({"qk_norm": True}, "qk_norm"),
        ({"logit_shift": True}, "logit_shift"),
    ]:
        with pytest.raises(ValueError, match=field):
            llada_config_to_original(tiny_config(**overrides))


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2MiB") == 2 * 2**20 and parse_size(123) == 123
    with pytest.raises(ValueError, match="max_shard_size"):
        parse_size("lots")


# ----------------------------------------------------------------------------------------------------------------
# parity


@pytest.fixture
def converted(tmp_path, request):
    """(original weights, original config, converted model loaded through trust_remote_code)."""
    overrides = getattr(request, "param", {})
    config = tiny_original_config(**overrides)
    weights = random_original_weights(config)
    write_original_checkpoint(tmp_path / "original", config, weights, num_shards=3)
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours", max_shard_size="20KB")
    model = AutoModel.from_pretrained(tmp_path / "ours", trust_remote_code=True, attn_implementation="eager")
    return weights, config, model.eval(), tmp_path / "ours"


VARIANTS = [{"n_kv_heads": 2}, {"n_kv_heads": 4}, {"n_kv_heads": 1, "weight_tying": True}]


@pytest.mark.parametrize("converted", VARIANTS, indirect=True, ids=["gqa", "mha", "mqa-tied"])
def test_converted_logits_match_original_architecture(converted):
    weights, config, model, _ = converted
    torch.manual_seed(0)
    ids = torch.randint(2, 99, (3, 11))
    with torch.no_grad():
        ours = model(ids).logits
    difference = (ours - original_forward(weights, config, ids)).abs().max().item()
    print(f"max |ours - original| = {difference:.2e}")
    assert difference <= 1e-5  # float32 model vs float64 reference


@pytest.mark.parametrize("converted", VARIANTS[:1], indirect=True, ids=["gqa"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_parity_with_padding(converted, attn_implementation):
    weights, config, _, folder = converted
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation=attn_implementation)
    assert model.config._attn_implementation == attn_implementation
    torch.manual_seed(1)
    ids = torch.randint(2, 99, (3, 10))
    right = torch.ones_like(ids)
    right[0, 7:] = 0
    right[2, 4:] = 0
    left = right.flip(-1)
    with torch.no_grad():
        # Right padding: our default positions (count of real tokens) equal the original's 0..T-1 on real tokens.
        ours_right = model(ids, attention_mask=right).logits
        # Left padding: the original keeps positions 0..T-1 whatever the mask; pass them to reproduce it exactly.
        positions = torch.arange(ids.shape[1]).expand_as(ids)
        ours_left = model(ids, attention_mask=left, position_ids=positions).logits
    for ours, mask in ((ours_right, right), (ours_left, left)):
        reference = original_forward(weights, config, ids, attention_mask=mask)
        real = mask.bool()
        difference = (ours[real] - reference[real]).abs().max().item()
        print(f"max |ours - original| with padding ({attn_implementation}) = {difference:.2e}")
        assert difference <= 1e-5


# ----------------------------------------------------------------------------------------------------------------
# round trips and folder layout


def test_round_trip_ours_original_ours_is_bit_exact(tmp_path):
    for tied in (False, True):
        model = tiny_model(seed=3, tie_word_embeddings=tied)
        model.save_pretrained(tmp_path / f"ours{tied}")
        convert_llada_to_original(tmp_path / f"ours{tied}", tmp_path / f"original{tied}", max_shard_size="30KB")
        convert_original_to_llada(tmp_path / f"original{tied}", tmp_path / f"again{tied}")
        start = _all_tensors(tmp_path / f"ours{tied}")
        end = _all_tensors(tmp_path / f"again{tied}")
        assert start.keys() == end.keys()
        assert all(torch.equal(start[k], end[k]) and start[k].dtype == end[k].dtype for k in start)
        before = json.loads((tmp_path / f"ours{tied}" / "config.json").read_text())
        after = json.loads((tmp_path / f"again{tied}" / "config.json").read_text())
        assert {k: v for k, v in after.items() if k != "dtype"} == {k: v for k, v in before.items() if k != "dtype"}


def test_round_trip_original_ours_original_is_bit_exact(tmp_path):
    config = tiny_original_config()
    weights = {k: v.to(torch.bfloat16) for k, v in random_original_weights(config).items()}
    write_original_checkpoint(tmp_path / "original", config, weights, num_shards=2)
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["dtype"] == "bfloat16"
    convert_llada_to_original(tmp_path / "ours", tmp_path / "back")
    back = _all_tensors(tmp_path / "back")
    assert back.keys() == weights.keys() and all(torch.equal(back[k], weights[k]) for k in weights)
    mapped = json.loads((tmp_path / "back" / "config.json").read_text())
    assert {k: mapped[k] for k in config if k in mapped} == {k: v for k, v in config.items() if k in mapped}


def test_converted_folder_has_index_code_tokenizer_and_generation_config(tmp_path):
    config = tiny_original_config()
    weights = random_original_weights(config)
    write_original_checkpoint(tmp_path / "original", config, weights)
    tiny_tokenizer().save_pretrained(tmp_path / "original")
    assert AutoTokenizer.from_pretrained(tmp_path / "original").mask_token is None
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours", max_shard_size="25KB")
    ours = tmp_path / "ours"
    index = json.loads((ours / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and all((ours / s).is_file() for s in shards)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in weights.values())
    assert set(HUB_CODE_FILES) <= {p.name for p in ours.iterdir()}
    assert not list(tmp_path.glob(".*partial*"))
    tokenizer = AutoTokenizer.from_pretrained(ours)
    assert (tokenizer.mask_token, tokenizer.mask_token_id) == ("<|mdm_mask|>", 99)
    generation = GenerationConfig.from_pretrained(ours)
    assert generation.eos_token_id == [1, 98]  # EOS, then end-of-turn <|eot_id|>
    assert json.loads((ours / "config.json").read_text())["bos_token_id"] == 3  # from the tokenizer


REMOTE_LOAD = """
import sys
sys.modules["llada"] = None  # as on a user's machine: only the Hub files next to the weights exist
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])).logits, sys.argv[3])
"""


def test_converted_folder_loads_with_trust_remote_code_in_a_fresh_process(tmp_path):
    config = tiny_original_config()
    weights = random_original_weights(config)
    write_original_checkpoint(tmp_path / "original", config, weights)
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours")
    ids = torch.randint(2, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    torch.save(ids, tmp_path / "ids.pt")
    subprocess.run(
        [
            sys.executable,
            "-c",
            REMOTE_LOAD,
            str(tmp_path / "ours"),
            str(tmp_path / "ids.pt"),
            str(tmp_path / "logits.pt"),
        ],
        check=True,
        cwd=tmp_path,
    )
    logits = torch.load(tmp_path / "logits.pt")
    assert (logits - original_forward(weights, config, ids)).abs().max().item() <= 1e-5


def test_llada_generate_runs_on_a_converted_checkpoint(tmp_path, capsys):
    from llada.cli.generate import main as generate_main

    config = tiny_original_config()
    write_original_checkpoint(tmp_path / "original", config, random_original_weights(config))
    tiny_tokenizer().save_pretrained(tmp_path / "original")
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours")
    generation = json.loads((tmp_path / "ours" / "generation_config.json").read_text())
    assert generation["mask_token_id"] == 99 and generation["eos_token_id"] == [1, 98]
    generate_main(
        [
            "--model",
            str(tmp_path / "ours"),
            "--prompt",
            "the cat sat",
            "--max_new_tokens",
            "4",
            "--steps",
            "4",
            "--device",
            "cpu",
        ]
    )
    assert capsys.readouterr().out.strip()


def test_pytorch_bin_shards_are_read(tmp_path):
    config = tiny_original_config()
    weights = random_original_weights(config)
    (tmp_path / "original").mkdir()
    (tmp_path / "original" / "config.json").write_text(json.dumps(config))
    torch.save(weights, tmp_path / "original" / "pytorch_model.bin")
    convert_original_to_llada(tmp_path / "original", tmp_path / "ours")
    ours = load_file(tmp_path / "ours" / "model.safetensors")
    gate = weights["model.transformer.blocks.1.ff_proj.weight"]
    assert torch.equal(ours["model.layers.1.mlp.gate_proj.weight"], gate)


def test_cli_both_directions_and_refuses_non_empty_dst(tmp_path, capsys):
    config = tiny_original_config()
    write_original_checkpoint(tmp_path / "original", config, random_original_weights(config))
    assert convert_main(["--src", str(tmp_path / "original"), "--dst", str(tmp_path / "ours")]) == 0
    assert convert_main(["--src", str(tmp_path / "ours"), "--dst", str(tmp_path / "back"), "--to", "original"]) == 0
    assert (
        convert_main(
            ["--src", str(tmp_path / "ours"), "--dst", str(tmp_path / "back2"), "--reverse", "--dtype", "bfloat16"]
        )
        == 0
    )
    assert "d_model" in json.loads((tmp_path / "back" / "config.json").read_text())
    capsys.readouterr()
    assert convert_main(["--src", str(tmp_path / "original"), "--dst", str(tmp_path / "ours")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_unknown_weight_fails_without_leaving_partial_output(tmp_path):
    config = tiny_original_config()
    weights = random_original_weights(config)
    weights["model.transformer.blocks.0.att_proj.weight"] = torch.zeros(96, 32)  # fused QKV: a sequential block
    write_original_checkpoint(tmp_path / "original", config, weights)
    with pytest.raises(ValueError, match="att_proj"):
        convert_original_to_llada(tmp_path / "original", tmp_path / "ours")
    assert not (tmp_path / "ours").exists() and not list(tmp_path.glob(".*partial*"))


def test_shape_mismatch_with_config_fails(tmp_path):
    config = tiny_original_config()
    weights = random_original_weights(config)
    write_original_checkpoint(tmp_path / "original", dict(config, mlp_hidden_size=48), weights)
    with pytest.raises(ValueError, match="gate_proj.weight` has shape"):
        convert_original_to_llada(tmp_path / "original", tmp_path / "ours")


def _all_tensors(folder: Path) -> dict:
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


# ----------------------------------------------------------------------------------------------------------------
# memory: the converter streams, it never holds the whole model


# Peak RSS is read from /proc (VmHWM), not from getrusage: a child's ru_maxrss also keeps the RSS its parent had
# when it forked (the test process, tens of MB of random weights larger), which clear_refs does not reset.
MEASURE = """
import re, sys
from llada.convert import convert_original_to_llada

def status_kib(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

convert_original_to_llada(sys.argv[1], sys.argv[2], max_shard_size="5GB")  # warm-up: every lazy import done
before = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:  # reset the high-water mark VmHWM to the current RSS
    handle.write("5")
convert_original_to_llada(sys.argv[3], sys.argv[4], max_shard_size=sys.argv[5])
print(before * 1024, status_kib("VmHWM") * 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to reset the peak-RSS mark")
def test_conversion_peak_memory_stays_near_one_shard(tmp_path):
    big = tiny_original_config(
        d_model=384,
        n_heads=6,
        n_kv_heads=6,
        n_layers=8,
        mlp_hidden_size=1024,
        vocab_size=1000,
        embedding_size=1000,
        mask_token_id=999,
    )
    weights = random_original_weights(big)
    total = sum(t.numel() * t.element_size() for t in weights.values())
    write_original_checkpoint(tmp_path / "big", big, weights, num_shards=8)
    del weights
    shard = max(p.stat().st_size for p in (tmp_path / "big").glob("*.safetensors"))
    small = tiny_original_config()
    write_original_checkpoint(tmp_path / "small", small, random_original_weights(small), num_shards=1)

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            str(tmp_path / "small"),
            str(tmp_path / "warm"),
            str(tmp_path / "big"),
            str(tmp_path / "out"),
            f"{shard}B",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak = map(int, result.stdout.split()[-2:])
    growth = peak - before
    print(
        f"total {total / 2**20:.1f} MiB in 8 shards of <= {shard / 2**20:.1f} MiB; RSS before {before / 2**20:.0f} "
        f"MiB, peak {peak / 2**20:.0f} MiB, growth {growth / 2**20:.1f} MiB"
    )
    assert total > 6 * shard
    assert growth < 3 * shard  # holding the model would need the total; streaming holds about one shard
