"""Causal LMs (Llama, Mistral, Qwen2, Qwen3) -> LLaDA (llada/convert_causal.py): the weights map one to one, the
converted model with the logit shift and `block_size=1` computes exactly the causal LM's logits one position later
(and so decodes and scores as it does), the saved folder loads with remote code, and what LLaDA cannot express is
refused by name."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)

from helpers import CAUSAL_FAMILIES, CAUSAL_TINY, CAUSAL_VOCAB, causal_lm, plain_tokenizer
from llada.cli.convert import main as convert_main
from llada.convert_causal import (
    causal_lm_to_llada,
    check_causal_config,
    check_weight_names,
    convert_causal_to_llada,
)
from llada.evaluation import generative_perplexity, in_order_perplexity
from llada.saved_files import HUB_CODE_FILES
from llada.training.tokenizers import MASK_TOKEN, ensure_mask_token


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """family -> (causal LM folder, its conversion with logit_shift=True and block_size=1)."""
    root = tmp_path_factory.mktemp("causal")
    result = {}
    for family in CAUSAL_FAMILIES:
        src, dst = root / family, root / f"{family}-llada"
        causal_lm(family).save_pretrained(src)
        plain_tokenizer().save_pretrained(src)
        convert_causal_to_llada(src, dst, block_size=1, logit_shift=True)
        result[family] = (src, dst)
    return result


def shifted(logits: torch.Tensor) -> torch.Tensor:
    """Dream's shift of a causal LM's logits: `cat([logits[:, :1], logits[:, :-1]], dim=1)`."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_every_weight_lands_in_exactly_one_place_with_its_values(folders, family):
    src, dst = folders[family]
    source, target = load_file(src / "model.safetensors"), load_file(dst / "model.safetensors")
    assert set(source) == set(target)  # the same names, one to one (a tied head is stored once in both)
    rows = len(AutoTokenizer.from_pretrained(dst))  # the mask token added (and Qwen2's tokenizer class adds a pad)
    for name, tensor in source.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):  # new rows for the tokens added
            assert target[name].shape == (rows, *tensor.shape[1:]) and rows > CAUSAL_VOCAB
            assert torch.equal(target[name][:CAUSAL_VOCAB], tensor), name
        else:
            assert torch.equal(target[name], tensor), name


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
@torch.no_grad()
def test_logits_are_the_causal_lms_one_position_later(folders, family):
    src, dst = folders[family]
    reference = AutoModelForCausalLM.from_pretrained(src).eval()
    model = AutoModel.from_pretrained(dst, trust_remote_code=True).eval()
    ids = torch.randint(3, CAUSAL_VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
    logits = model(ids).logits  # (2, 12, CAUSAL_VOCAB + the tokens added)
    torch.testing.assert_close(logits[..., :CAUSAL_VOCAB], shifted(reference(ids).logits), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_greedy_sampling_decodes_as_the_causal_lm(folders, family):
    """`block_size=1`, one step per block: each token from the clean ones before it, as greedy decoding."""
    src, dst = folders[family]
    reference = AutoModelForCausalLM.from_pretrained(src).eval()
    model = AutoModel.from_pretrained(dst, trust_remote_code=True).eval()
    prompt = torch.tensor([[2, 17, 40, 5, 63]])
    expected = prompt
    with torch.no_grad():
        for _ in range(6):
            next_token = reference(expected).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, next_token], dim=1)
    for use_cache in (None, False):  # the exact block cache, and the whole canvas at every step
        out = model.diffusion_generate(prompt, max_new_tokens=6, steps=6, eos_token_id=None, use_cache=use_cache)
        assert torch.equal(out, expected), use_cache


@torch.no_grad()
def test_in_order_perplexity_is_the_causal_lms_perplexity():
    """The likelihood of decoding in order (block diffusion's training layout, one block per token) is the causal
    LM's factorisation. The tokenizer already has its mask token, as the project's autoregressive baseline does, so
    both softmaxes run over the same vocabulary."""
    tokenizer = ensure_mask_token(plain_tokenizer())
    reference = causal_lm("qwen3", vocab_size=len(tokenizer))
    model = causal_lm_to_llada(copy.deepcopy(reference), tokenizer, block_size=1, logit_shift=True)
    ids = torch.randint(3, CAUSAL_VOCAB, (3, 16), generator=torch.Generator().manual_seed(2))
    ours = in_order_perplexity(model, ids, show_progress=False)["perplexity"]
    assert ours == pytest.approx(generative_perplexity(reference, ids), rel=1e-5)


@torch.no_grad()
def test_full_attention_and_larger_blocks_keep_the_weights_and_see_ahead():
    tokenizer = ensure_mask_token(plain_tokenizer())
    ids = torch.randint(3, CAUSAL_VOCAB, (1, 8), generator=torch.Generator().manual_seed(3))
    changed = ids.clone()
    changed[0, -1] = 3 if ids[0, -1] != 3 else 4
    for block_size in (None, 4):
        model = causal_lm_to_llada(causal_lm("llama"), tokenizer, block_size=block_size, logit_shift=True)
        assert (model.config.block_size, model.config.logit_shift) == (block_size, True)
        first, second = model(ids).logits, model(changed).logits
        assert not torch.allclose(first[0, 6], second[0, 6])  # position 6 reads position 5, which sees position 7


def test_an_in_memory_conversion_shares_the_causal_lms_tensors():
    tokenizer = ensure_mask_token(plain_tokenizer())
    reference = causal_lm("qwen2", vocab_size=len(tokenizer))
    pointers = {name: tensor.data_ptr() for name, tensor in reference.state_dict().items()}
    model = causal_lm_to_llada(reference, tokenizer)
    assert {name: tensor.data_ptr() for name, tensor in model.state_dict().items()} == pointers
    assert model.lm_head.weight is model.model.embed_tokens.weight  # Qwen2's tied head stays tied


# ----------------------------------------------------------------------------------------------------------------
# the saved folder


def test_the_folder_has_its_code_tokenizer_and_generation_config(folders):
    _, dst = folders["qwen3"]
    assert set(HUB_CODE_FILES) <= {path.name for path in dst.iterdir()}
    assert not list(dst.parent.glob(".*partial*"))
    config = json.loads((dst / "config.json").read_text())
    assert (config["logit_shift"], config["block_size"], config["qk_norm"], config["mask_token_id"]) == (
        True,
        1,
        True,
        CAUSAL_VOCAB,
    )
    assert config["auto_map"]["AutoModel"] == "modeling_llada.LLaDAForMaskedDiffusion"
    tokenizer = AutoTokenizer.from_pretrained(dst)
    assert (tokenizer.mask_token, tokenizer.mask_token_id, tokenizer.pad_token) == (MASK_TOKEN, CAUSAL_VOCAB, "</s>")
    generation = json.loads((dst / "generation_config.json").read_text())
    assert (generation["mask_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (
        CAUSAL_VOCAB,
        [1],
        1,
    )


REMOTE_GENERATE = """
import sys
sys.modules["llada"] = None  # as on a user's machine: only the Hub files next to the weights exist
import torch
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
out = model.diffusion_generate(**tokenizer(["w5 w6 w7"], return_tensors="pt"), max_new_tokens=8, steps=8,
                               block_length=4, use_cache="dual")
assert out.shape == (1, 11) and not (out == tokenizer.mask_token_id).any(), out
print(type(model).__module__)
"""


def test_cli_converts_and_the_folder_samples_with_remote_code_only(folders, tmp_path, capsys):
    src, _ = folders["qwen3"]
    assert convert_main(["--from_causal_lm", str(src), str(tmp_path / "full"), "--logit_shift"]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "full" / "config.json").read_text())["block_size"] is None
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_GENERATE, str(tmp_path / "full")], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("transformers_modules."), result.stdout


def test_a_short_sliding_window_converts_for_the_positions_it_covers(tmp_path):
    tokenizer = ensure_mask_token(plain_tokenizer())
    reference = causal_lm("mistral", sliding_window=16)
    with pytest.raises(ValueError, match="`sliding_window` = 16 with 64 positions"):
        causal_lm_to_llada(copy.deepcopy(reference), tokenizer)
    model = causal_lm_to_llada(
        copy.deepcopy(reference), tokenizer, block_size=1, logit_shift=True, max_position_embeddings=16
    )
    ids = torch.randint(3, CAUSAL_VOCAB, (1, 16), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            model(ids).logits[..., :CAUSAL_VOCAB], shifted(reference(ids).logits), atol=1e-5, rtol=1e-5
        )


# ----------------------------------------------------------------------------------------------------------------
# refusals


def with_attributes(config, **attributes):
    for name, value in attributes.items():
        setattr(config, name, value)
    return config


REFUSED = {
    "gpt2": (lambda: GPT2Config(), ["'gpt2'", "LlamaForCausalLM"]),
    "gemma2 (soft-capping)": (lambda: Gemma2Config(), ["'gemma2'"]),
    "soft-capped logits": (
        lambda: LlamaConfig(**CAUSAL_TINY, final_logit_softcapping=30.0),
        ["`final_logit_softcapping` = 30.0", "soft-capping"],
    ),
    "mixture of experts": (
        lambda: with_attributes(MistralConfig(**CAUSAL_TINY), num_local_experts=8),
        ["`num_local_experts` = 8", "mixture of experts"],
    ),
    "sliding window": (lambda: MistralConfig(**CAUSAL_TINY, sliding_window=16), ["`sliding_window` = 16", "<= 16"]),
    "qwen sliding layers": (
        lambda: Qwen2Config(**CAUSAL_TINY, use_sliding_window=True, sliding_window=8, max_window_layers=1),
        ["`sliding_window` = 8"],
    ),
    "chunked attention": (
        lambda: with_attributes(LlamaConfig(**CAUSAL_TINY), layer_types=["chunked_attention"] * 2),
        ["`layer_types` ['chunked_attention']"],
    ),
    "rope type": (
        lambda: with_attributes(
            LlamaConfig(**CAUSAL_TINY), rope_parameters={"rope_type": "longrope", "rope_theta": 1e4}
        ),
        ["'longrope'"],
    ),
    "partial rotary": (
        lambda: with_attributes(
            LlamaConfig(**CAUSAL_TINY),
            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5},
        ),
        ["`partial_rotary_factor` = 0.5"],
    ),
    "activation": (lambda: LlamaConfig(**{**CAUSAL_TINY, "hidden_act": "gelu_new"}), ["`hidden_act` = 'gelu_new'"]),
    "another head": (
        lambda: LlamaConfig(**CAUSAL_TINY, architectures=["LlamaForSequenceClassification"]),
        ["LlamaForSequenceClassification", "expected a LlamaForCausalLM"],
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_llada_cannot_express_is_refused_by_name(case):
    make_config, needles = REFUSED[case]
    with pytest.raises(ValueError) as error:
        check_causal_config(make_config())
    message = str(error.value)
    assert "\n" not in message and all(needle in message for needle in needles), message


def test_weights_without_a_place_and_a_tokenizer_without_mask_are_refused():
    with pytest.raises(ValueError, match=r"no place for: \['model.extra.weight'\]"):
        check_weight_names({"a": torch.zeros(1), "model.extra.weight": torch.zeros(1)}, {"a": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"`a` has shape \(2,\), LLaDA expects \(1,\)"):
        check_weight_names({"a": torch.zeros(2)}, {"a": torch.zeros(1)})
    with pytest.raises(ValueError, match="no mask token"):
        causal_lm_to_llada(causal_lm("llama"), plain_tokenizer())


def test_nothing_is_written_when_the_source_is_refused(tmp_path):
    src = tmp_path / "mistral"
    causal_lm("mistral", sliding_window=16).save_pretrained(src)
    plain_tokenizer().save_pretrained(src)
    with pytest.raises(ValueError, match="sliding_window"):
        convert_causal_to_llada(src, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mistral"]
