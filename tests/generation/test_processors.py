"""transformers' logits processors and generation flags in diffusion sampling (llada/processors_llada.py)."""

import re

import pytest
import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TypicalLogitsWarper,
)

from helpers import EOS, MASK, PAD, prompts_batch, varied_model
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.processors_llada import INAPPLICABLE_FLAGS

SETTINGS = dict(max_new_tokens=8, steps=8, eos_token_id=None)


@pytest.fixture(scope="module")
def model():
    return varied_model()


def generated(model, **settings):
    ids, attention_mask = prompts_batch()
    return model.diffusion_generate(ids, attention_mask=attention_mask, **{**SETTINGS, **settings})[:, 5:]


class Recorder(LogitsProcessor):
    """Keeps what it was called with and changes nothing."""

    def __init__(self):
        self.calls = []

    def __call__(self, input_ids, scores):
        self.calls.append((input_ids.clone(), scores.clone()))
        return scores


def test_a_processor_sees_the_canvas_for_each_position_of_the_block(model):
    ids, attention_mask = prompts_batch()
    recorder = Recorder()
    out = model.diffusion_generate(
        ids,
        attention_mask=attention_mask,
        max_new_tokens=4,
        steps=4,
        block_length=2,
        logits_processor=LogitsProcessorList([recorder]),
        eos_token_id=None,
        output_history=True,
        return_dict_in_generate=True,
    )
    assert len(recorder.calls) == 4
    canvases = [torch.cat([ids, torch.full((3, 4), MASK)], dim=1), *out.history[:-1]]
    for (input_ids, scores), canvas in zip(recorder.calls, canvases):
        assert input_ids.shape == (3 * 2, 9) and scores.shape == (3 * 2, 100)  # (rows * block, seq), vocab
        expected = canvas.masked_fill(torch.cat([attention_mask, torch.ones(3, 4, dtype=torch.long)], 1) == 0, MASK)
        assert torch.equal(input_ids, expected.repeat_interleave(2, dim=0))  # padding shown as mask tokens
        assert (scores[:, MASK] == float("-inf")).all()  # after the sampler's own rules


def test_a_processor_decides_the_tokens(model):
    allowed = [40, 41]

    class OnlyTwo(LogitsProcessor):
        def __call__(self, input_ids, scores):
            keep = torch.full_like(scores, float("-inf"))
            keep[:, allowed] = 0
            return scores + keep

    out = generated(model, logits_processor=[OnlyTwo()], temperature=1.0, seed=0)
    assert set(out.flatten().tolist()) <= set(allowed)


# each flag gives the tokens of the transformers processor it stands for, passed by hand
FLAG_AND_PROCESSOR = [
    (dict(repetition_penalty=1.5), RepetitionPenaltyLogitsProcessor(1.5)),
    (dict(bad_words_ids=[[49], [89]]), NoBadWordsLogitsProcessor([[49], [89]])),
    (dict(sequence_bias=[[[20], 3.0]]), SequenceBiasLogitsProcessor([[[20], 3.0]])),
    (dict(suppress_tokens=[49, 89]), SuppressTokensLogitsProcessor([49, 89])),
    (dict(min_p=0.2), MinPLogitsWarper(0.2)),
    (dict(typical_p=0.5), TypicalLogitsWarper(0.5)),
    (dict(epsilon_cutoff=0.05), EpsilonLogitsWarper(0.05)),
    (dict(eta_cutoff=0.05), EtaLogitsWarper(0.05)),
]


@pytest.mark.parametrize("flag, processor", FLAG_AND_PROCESSOR, ids=lambda x: str(x)[:40])
def test_each_flag_is_its_transformers_processor(model, flag, processor):
    sampled = dict(temperature=1.0, seed=0)  # at temperature 1 a warper's own scores are the logits
    by_flag = generated(model, **flag, **sampled)
    by_hand = generated(model, logits_processor=LogitsProcessorList([processor]), **sampled)
    assert torch.equal(by_flag, by_hand)
    assert not torch.equal(by_flag, generated(model, **sampled))  # and it does change something here


def test_what_the_flags_do(model):
    ids, attention_mask = prompts_batch()
    plain = generated(model)
    assert any(len(set(row)) < len(row) for row in plain.tolist())  # the model repeats itself
    penalised = generated(model, repetition_penalty=1e4)
    for row, prompt in zip(penalised.tolist(), (ids * attention_mask).tolist()):
        assert len(set(row)) == len(row) and not set(row) & set(prompt) - {PAD}  # never a token of the canvas
    banned = sorted(set(plain.flatten().tolist()))[:2]
    for flag in ("bad_words_ids", "suppress_tokens"):
        value = [[t] for t in banned] if flag == "bad_words_ids" else banned
        assert not set(generated(model, **{flag: value}).flatten().tolist()) & set(banned)
    first = plain[:, 0].unique().tolist()
    begin = generated(model, begin_suppress_tokens=first)
    assert not set(begin[:, 0].tolist()) & set(first)
    assert (generated(model, sequence_bias={(42,): 100.0}) == 42).all()
    assert torch.equal(generated(model, renormalize_logits=True), plain)


@pytest.mark.parametrize("warper", [dict(min_p=1.0), dict(epsilon_cutoff=0.9)])
def test_warpers_decide_on_the_logits_divided_by_the_temperature(model, warper):
    hot = dict(temperature=50.0, **warper)  # nearly uniform: only the warper keeps the draws apart from noise
    assert torch.equal(generated(model, seed=0, **hot), generated(model, seed=1, **hot))  # only the top token left
    assert not torch.equal(generated(model, seed=0, temperature=50.0), generated(model, seed=1, temperature=50.0))


def test_a_flag_and_a_passed_processor_of_the_same_type_use_the_passed_one(model):
    by_hand = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(3.0)])
    assert torch.equal(
        generated(model, repetition_penalty=1.2, logits_processor=by_hand), generated(model, repetition_penalty=3.0)
    )


@pytest.mark.parametrize(
    "flag, value",
    [
        ("num_beams", 2),
        ("num_beam_groups", 2),
        ("diversity_penalty", 0.5),
        ("length_penalty", 2.0),
        ("penalty_alpha", 0.6),
        ("no_repeat_ngram_size", 2),
        ("guidance_scale", 1.5),
        ("min_length", 4),
        ("forced_eos_token_id", EOS),
        ("stop_strings", ["."]),
        ("output_scores", True),
        ("max_time", 1.0),
        ("early_stopping", True),
        ("cache_implementation", "static"),
        ("dola_layers", "low"),
    ],
)
def test_flags_that_cannot_apply_are_refused_with_the_reason(model, flag, value):
    assert flag in INAPPLICABLE_FLAGS
    with pytest.raises(ValueError, match=re.escape(f"`{flag}={value!r}` has no meaning for diffusion sampling: ")):
        generated(model, **{flag: value})
    with pytest.raises(ValueError, match=rf"`{flag}="):
        LLaDAGenerationConfig(**{flag: value})  # raised as early as the config


def test_off_values_and_a_transformers_4_style_config_pass(model):
    off = dict(
        num_beams=1,
        num_beam_groups=1,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        diversity_penalty=0.0,
        early_stopping=False,
        output_scores=False,
        min_length=0,
        typical_p=1.0,
    )
    assert torch.equal(generated(model, **off), generated(model))
    assert torch.equal(generated(model, generation_config=GenerationConfig(**off, max_new_tokens=8)), generated(model))


def test_multi_token_bad_words_and_biases_are_refused(model):
    with pytest.raises(ValueError, match=r"`bad_words_ids` entries must be single tokens.*\[\[33, 34\]\]"):
        generated(model, bad_words_ids=[[12], [33, 34]])
    with pytest.raises(ValueError, match="`sequence_bias` entries must be single tokens"):
        generated(model, sequence_bias={(33, 34): 2.0})


def test_do_sample(model):
    assert torch.equal(generated(model, do_sample=True, seed=0), generated(model, temperature=1.0, seed=0))
    assert torch.equal(
        generated(model, do_sample=True, temperature=0.5, seed=0), generated(model, temperature=0.5, seed=0)
    )
    model.generation_config.temperature = 0.8  # a saved sampling default; do_sample=False is greedy
    try:
        assert torch.equal(generated(model, do_sample=False), generated(model, temperature=0.0))
    finally:
        model.generation_config.temperature = None
    with pytest.raises(ValueError, match="`do_sample=False` .greedy. conflicts with `temperature=0.7`"):
        generated(model, do_sample=False, temperature=0.7)
    with pytest.raises(ValueError, match="`do_sample=True` with `temperature=0`"):
        generated(model, do_sample=True, temperature=0.0)


def test_bad_logits_processor_argument(model):
    with pytest.raises(TypeError, match="`logits_processor` must be a LogitsProcessorList"):
        generated(model, logits_processor=RepetitionPenaltyLogitsProcessor(1.2))
