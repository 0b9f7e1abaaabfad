"""Tests for the diffusion sampler's loop, settings and errors (llada/generation_llada.py,
llada/generation_config_llada.py).

The heart of the file is `reference_generate`: LLaDA's algorithm written again from the maths, deliberately simple
(one row at a time, plain Python lists for the selection, no helper shared with the package). `diffusion_generate`
must give identical tokens to it. The random draws follow the order documented in the module docstring of
`sampling_llada`: per step, first Gumbel uniforms (block_length, vocab) when temperature > 0, then random
confidences (block_length,) with random remasking, all float64, from each row's own stream with `seed` (the first
copy of a prompt: a generator seeded with `seed`), or for the whole batch at once from a user's `generator`.
"""

import math
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, GenerationConfig

from helpers import EOS, MASK, PAD, llada_num_transfer_tokens, prompts_batch, varied_model
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.generation_llada import LLaDAGenerateOutput
from llada.rows_llada import prompt_key, row_seed

# ----------------------------------------------------------------------------------------------------------------
# The independent reference


def reference_generate(
    model,
    prompt,
    prompt_mask,
    gen_length,
    steps,
    block_length,
    cfg_scale=0.0,
    remasking="low_confidence",
    temperature=0.0,
    row=0,
    draws=None,
):
    """LLaDA sampling for ONE row (prompt: 1-D, left-padded), written from the paper's description.

    `draws[step]` holds that step's batch-wide random tensors {"gumbel": (B, n, V), "random": (B, n)}; the
    reference reads its own `row` of them, so it sees the numbers the batched sampler drew for this row.
    """
    prompt_len = len(prompt)
    x = torch.cat([prompt, torch.full((gen_length,), MASK)])
    attention = torch.cat([prompt_mask, torch.ones(gen_length, dtype=torch.long)])
    num_blocks = gen_length // block_length
    steps_per_block = [steps // num_blocks + (1 if b < steps % num_blocks else 0) for b in range(num_blocks)]
    step = 0
    for block in range(num_blocks):
        start = prompt_len + block * block_length
        # LLaDA's get_num_transfer_tokens: M // S each step, one more in the first M % S steps
        S = steps_per_block[block]
        schedule = [block_length // S + (1 if i < block_length % S else 0) for i in range(S)]
        for i in range(S):
            if schedule[i] == 0:
                continue
            logits = reference_logits(model, x, attention, prompt_len, cfg_scale)
            candidates = []
            for j in range(start, start + block_length):
                if x[j] != MASK:
                    continue
                position_logits = logits[j].clone()
                position_logits[MASK] = -math.inf  # the mask token is never a prediction
                if temperature > 0:
                    uniform = draws[step]["gumbel"][row, j - start]
                    noisy = position_logits.double().exp() / (-torch.log(uniform)) ** temperature
                    token = int(noisy.argmax())
                else:
                    token = int(position_logits.argmax())
                if remasking == "random":
                    confidence = float(draws[step]["random"][row, j - start])
                else:
                    confidence = float(torch.softmax(position_logits.float(), dim=0)[token])
                candidates.append((-confidence, j, token))  # most confident first, then leftmost
            for _, j, token in sorted(candidates)[: schedule[i]]:
                x[j] = token
            step += 1
    return x


def reference_logits(model, x, attention, prompt_len, cfg_scale):
    """(seq, vocab) logits of one row; with guidance u + (w + 1)(c - u), u for the prompt replaced by masks."""
    with torch.no_grad():
        conditional = model(x[None], attention_mask=attention[None]).logits[0]
        if cfg_scale == 0:
            return conditional
        unconditional_x = x.clone()
        for j in range(prompt_len):
            if attention[j] == 1:
                unconditional_x[j] = MASK
        unconditional = model(unconditional_x[None], attention_mask=attention[None]).logits[0]
    return unconditional + (cfg_scale + 1) * (conditional - unconditional)


def replay_draws(seed, num_steps, row_seeds, block_length, vocab, temperature, remasking, one_stream=False):
    """The random numbers the sampler draws, in its documented order: with `seed=`, every row from its own
    generator seeded with `row_seeds[row]`; with `generator=` (`one_stream`), from one generator seeded with `seed`
    for the whole batch at once."""
    batch = len(row_seeds)
    generators = [torch.Generator().manual_seed(s) for s in ([seed] if one_stream else row_seeds)]
    shapes = {"gumbel": (block_length, vocab), "random": (block_length,)}
    wanted = [name for name, used in (("gumbel", temperature > 0), ("random", remasking == "random")) if used]
    draws = []
    for _ in range(num_steps):
        if one_stream:
            draws.append(
                {
                    name: torch.rand((batch, *shapes[name]), generator=generators[0], dtype=torch.float64)
                    for name in wanted
                }
            )
            continue
        per_row = [
            {name: torch.rand(shapes[name], generator=g, dtype=torch.float64) for name in wanted} for g in generators
        ]
        draws.append({name: torch.stack([row[name] for row in per_row]) for name in wanted})
    return draws


def assert_matches_reference(model, ids, attention_mask, one_stream=False, **settings):
    gen_length, steps, block_length = settings["max_new_tokens"], settings["steps"], settings["block_length"]
    seed = settings.pop("seed", None)
    draws = None
    if seed is not None:
        row_seeds = [
            row_seed(seed, 0, prompt_key(row[mask.bool()].tolist())) for row, mask in zip(ids, attention_mask)
        ]
        draws = replay_draws(
            seed,
            steps,
            row_seeds,
            block_length,
            model.config.vocab_size,
            settings.get("temperature", 0.0),
            settings.get("remasking", "low_confidence"),
            one_stream,
        )
        settings["generator" if one_stream else "seed"] = torch.Generator().manual_seed(seed) if one_stream else seed
    out = model.diffusion_generate(ids, attention_mask=attention_mask, eos_token_id=None, **settings)
    for row in range(ids.shape[0]):
        expected = reference_generate(
            model,
            ids[row],
            attention_mask[row],
            gen_length,
            steps,
            block_length,
            cfg_scale=settings.get("cfg_scale", 0.0),
            remasking=settings.get("remasking", "low_confidence"),
            temperature=settings.get("temperature", 0.0),
            row=row,
            draws=draws,
        )
        assert out[row].tolist() == expected.tolist(), f"row {row}"
    return out


# ----------------------------------------------------------------------------------------------------------------
# Identical tokens to the reference


def test_greedy_low_confidence_matches_reference():
    ids = torch.tensor([[11, 12, 13, 14]])
    out = assert_matches_reference(
        varied_model(), ids, torch.ones_like(ids), max_new_tokens=12, steps=12, block_length=12
    )
    assert (out[:, 4:] != MASK).all()


def test_blocks_match_reference():
    ids = torch.tensor([[11, 12, 13], [41, 42, 43]])
    assert_matches_reference(varied_model(1), ids, torch.ones_like(ids), max_new_tokens=16, steps=8, block_length=4)


def test_uneven_steps_over_blocks_match_reference():
    ids = torch.tensor([[11, 12, 13]])
    assert_matches_reference(varied_model(2), ids, torch.ones_like(ids), max_new_tokens=12, steps=7, block_length=4)


def test_classifier_free_guidance_matches_reference():
    ids, attention_mask = prompts_batch()
    assert_matches_reference(
        varied_model(3), ids, attention_mask, max_new_tokens=8, steps=8, block_length=4, cfg_scale=1.5
    )


def test_left_padded_batch_matches_reference():
    ids, attention_mask = prompts_batch()
    out = assert_matches_reference(varied_model(4), ids, attention_mask, max_new_tokens=12, steps=6, block_length=6)
    assert out[:, :5].tolist() == ids.tolist()  # prompt and padding untouched


def test_random_remasking_with_seed_matches_reference():
    ids, attention_mask = prompts_batch()
    assert_matches_reference(
        varied_model(5), ids, attention_mask, max_new_tokens=8, steps=8, block_length=4, remasking="random", seed=123
    )


def test_gumbel_sampling_with_seed_matches_reference():
    ids, attention_mask = prompts_batch()
    assert_matches_reference(
        varied_model(6), ids, attention_mask, max_new_tokens=8, steps=4, block_length=4, temperature=0.8, seed=7
    )


def test_one_generator_for_the_batch_matches_reference():
    # a user's own generator: LLaDA's batch-wide draws, (batch, block, vocab) then (batch, block), one stream
    ids, attention_mask = prompts_batch()
    assert_matches_reference(
        varied_model(6),
        ids,
        attention_mask,
        max_new_tokens=8,
        steps=4,
        block_length=4,
        temperature=0.8,
        remasking="random",
        seed=7,
        one_stream=True,
    )


def test_same_seed_same_samples_other_seed_differs():
    model, ids = varied_model(), torch.tensor([[11, 12, 13]])
    settings = dict(max_new_tokens=16, steps=16, temperature=1.0, remasking="random")
    first = model.diffusion_generate(ids, seed=0, **settings)
    assert torch.equal(first, model.diffusion_generate(ids, seed=0, **settings))
    stream = torch.Generator().manual_seed(row_seed(0, 0, prompt_key([11, 12, 13])))  # the row's documented stream
    assert torch.equal(first, model.diffusion_generate(ids, generator=stream, **settings))
    assert not torch.equal(first, model.diffusion_generate(ids, seed=1, **settings))
    # two prompts in one batch do not share their draws: the sampled continuations differ (a model that ignores the
    # prompt would otherwise write the same text after both)
    pair = model.diffusion_generate(torch.tensor([[11, 12, 13], [11, 12, 14]]), seed=0, **settings)
    assert torch.equal(pair[0], first[0]) and not torch.equal(pair[0, 3:], pair[1, 3:])


# ----------------------------------------------------------------------------------------------------------------
# Schedule, strategies, bookkeeping


@pytest.mark.parametrize("remasking", ["low_confidence", "random", "entropy", "margin"])
@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_every_strategy_decodes_each_position_once_on_schedule(remasking, temperature):
    ids, attention_mask = prompts_batch()
    out = varied_model().diffusion_generate(
        ids,
        attention_mask=attention_mask,
        max_new_tokens=12,
        steps=8,
        block_length=6,
        remasking=remasking,
        temperature=temperature,
        top_k=20,
        top_p=0.9,
        seed=0,
        eos_token_id=None,
        return_dict_in_generate=True,
    )
    generated_steps = out.decode_step[:, 5:]
    assert (out.sequences[:, 5:] != MASK).all()
    assert (out.decode_step[:, :5] == -1).all() and (generated_steps >= 0).all()
    per_block = llada_num_transfer_tokens(6, 4)  # 8 steps over 2 blocks of 6
    for row in generated_steps:
        assert torch.bincount(row, minlength=8).tolist() == per_block + per_block
    # each block is decoded by its own steps only
    assert (generated_steps[:, :6] < 4).all() and (generated_steps[:, 6:] >= 4).all()
    assert out.nfe == 8


def test_remask_ratio_mode_counts_and_stops_early():
    out = varied_model().diffusion_generate(
        torch.tensor([[11, 12]]),
        max_new_tokens=16,
        steps=10,
        remask_ratio=0.5,
        return_dict_in_generate=True,
        eos_token_id=None,
    )
    assert torch.bincount(out.decode_step[0, 2:]).tolist() == [8, 4, 2, 1, 1]
    assert out.nfe == 5


def test_more_steps_than_tokens_stops_when_block_is_full():
    out = varied_model().diffusion_generate(
        torch.tensor([[11, 12]]), max_new_tokens=4, steps=12, block_length=2, return_dict_in_generate=True
    )
    assert out.nfe == 4 and sorted(out.decode_step[0, 2:].tolist()) == [0, 1, 2, 3]


def test_unconditional_generation_and_num_return_sequences():
    model = varied_model()
    out = model.diffusion_generate(max_new_tokens=8, steps=8, num_return_sequences=3, temperature=1.0, seed=0)
    assert out.shape == (3, 8) and (out != MASK).all()
    ids = torch.tensor([[11, 12], [21, 22]])
    copies = model.diffusion_generate(ids, max_new_tokens=4, steps=4, num_return_sequences=2)
    assert copies.shape == (4, 6) and copies[:, :2].tolist() == [[11, 12], [11, 12], [21, 22], [21, 22]]


def test_generate_is_diffusion_generate_for_pipeline_style_calls():
    model, (ids, attention_mask) = varied_model(), prompts_batch()
    expected = model.diffusion_generate(ids, attention_mask=attention_mask, max_new_tokens=6, steps=6)
    assert torch.equal(model.generate(ids, attention_mask=attention_mask, max_new_tokens=6, steps=6), expected)
    assert torch.equal(model.generate(inputs=ids, attention_mask=attention_mask, gen_length=6, steps=6), expected)
    assert torch.equal(model.generate(input_ids=ids, attention_mask=attention_mask, max_length=11, steps=6), expected)


# ----------------------------------------------------------------------------------------------------------------
# EOS handling, history, hooks, streamer


def favour_eos(step, x, logits):
    """A logits hook that makes EOS the most likely token everywhere."""
    logits = logits.clone()
    logits[..., EOS] = logits.max() + 10
    return logits


def test_eos_post_processing_and_min_new_tokens():
    model, ids = varied_model(), torch.tensor([[11, 12]])
    out = model.diffusion_generate(ids, max_new_tokens=8, steps=8, generation_logits_hook_func=favour_eos)
    assert out[0, 2:].tolist() == [EOS] + [PAD] * 7
    out = model.diffusion_generate(
        ids,
        max_new_tokens=8,
        steps=8,
        min_new_tokens=3,
        generation_logits_hook_func=favour_eos,
        return_dict_in_generate=True,
        output_history=True,
    )
    assert EOS not in out.sequences[0, 2:5].tolist()
    assert out.sequences[0, 5:].tolist() == [EOS, PAD, PAD, PAD, PAD]
    assert out.history[-1][0, 5:].tolist() == [EOS] * 5  # history is the raw canvas
    no_pad = model.diffusion_generate(
        ids, max_new_tokens=4, steps=4, pad_token_id=None, generation_logits_hook_func=favour_eos
    )
    assert no_pad[0, 2:].tolist() == [EOS] * 4  # without a pad id EOS fills the rest


class RecordingStreamer:
    def __init__(self):
        self.canvases, self.ended = [], 0

    def put(self, canvas):
        self.canvases.append(canvas.clone())

    def end(self):
        self.ended += 1


def test_history_hooks_and_streamer_called_every_step():
    model, (ids, attention_mask) = varied_model(), prompts_batch()
    token_calls, logits_calls, streamer = [], [], RecordingStreamer()

    def tokens_hook(step, x, logits):
        token_calls.append((step, None if logits is None else tuple(logits.shape)))
        return x

    def logits_hook(step, x, logits):
        logits_calls.append(step)
        return logits

    out = model.diffusion_generate(
        ids,
        attention_mask=attention_mask,
        max_new_tokens=8,
        steps=6,
        block_length=4,
        output_history=True,
        return_dict_in_generate=True,
        generation_tokens_hook_func=tokens_hook,
        generation_logits_hook_func=logits_hook,
        streamer=streamer,
        eos_token_id=None,
    )
    assert isinstance(out, LLaDAGenerateOutput) and out.nfe == 6
    assert token_calls == [(None, None)] + [(step, (3, 13, 100)) for step in range(6)]
    assert logits_calls == list(range(6))
    assert len(out.history) == 6 and torch.equal(out.history[-1], out.sequences)
    masked_per_step = [int((h[:, 5:] == MASK).sum()) for h in out.history]
    assert masked_per_step == sorted(masked_per_step, reverse=True) and masked_per_step[-1] == 0
    assert len(streamer.canvases) == 7 and streamer.ended == 1
    assert (streamer.canvases[0][:, 5:] == MASK).all() and torch.equal(streamer.canvases[-1], out.sequences)


def test_tokens_hook_can_fix_tokens():
    def force_token(step, x, logits):
        assert logits is None or logits.shape == (1, 8, 100)  # the whole canvas, as in Dream
        x = x.clone()
        x[:, -1] = 42
        return x

    out = varied_model().diffusion_generate(
        torch.tensor([[11, 12]]),
        max_new_tokens=6,
        steps=6,
        generation_tokens_hook_func=force_token,
        eos_token_id=None,
        return_dict_in_generate=True,
    )
    assert out.sequences[0, -1] == 42 and (out.sequences != MASK).all()
    assert out.decode_step[0, -1] == -1  # never decoded by the sampler (filled before the first step)
    assert out.nfe == 5


# ----------------------------------------------------------------------------------------------------------------
# Batches


def test_row_result_does_not_depend_on_batch_companions():
    model = varied_model()
    settings = dict(max_new_tokens=8, steps=8, block_length=4, eos_token_id=None)
    row = torch.tensor([[PAD, 11, 12, 13]])
    batch_a = torch.cat([row, torch.tensor([[21, 22, 23, 24]])])
    batch_b = torch.cat([torch.tensor([[PAD, PAD, 31, 32], [41, 42, 43, 44]]), row])
    alone = model.diffusion_generate(row, attention_mask=(row != PAD).long(), **settings)[0]
    in_a = model.diffusion_generate(batch_a, attention_mask=(batch_a != PAD).long(), **settings)[0]
    in_b = model.diffusion_generate(batch_b, attention_mask=(batch_b != PAD).long(), **settings)[2]
    assert alone.tolist() == in_a.tolist() == in_b.tolist()
    unpadded = model.diffusion_generate(row[:, 1:], **settings)[0]
    assert unpadded.tolist() == alone[1:].tolist()  # left padding does not change the result


# ----------------------------------------------------------------------------------------------------------------
# Generation config: validation and round trips


def test_model_generation_config_class_and_defaults():
    model = varied_model()
    assert model.can_generate()
    config = model.generation_config
    assert isinstance(config, LLaDAGenerationConfig)
    assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (MASK, EOS, PAD)
    assert (config.max_new_tokens, config.temperature, config.remasking, config.cfg_scale) == (
        128,
        None,
        "low_confidence",
        0.0,
    )


def test_generation_config_save_and_reload(tmp_path):
    model = varied_model()
    model.generation_config.update(steps=8, block_length=4, max_new_tokens=8, remasking="margin", cfg_scale=0.5)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "generation_config.json").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded.generation_config, LLaDAGenerationConfig)
    assert reloaded.generation_config == model.generation_config
    assert LLaDAGenerationConfig.from_pretrained(tmp_path).remasking == "margin"
    ids = torch.tensor([[11, 12, 13]])
    assert torch.equal(reloaded.generate(ids), model.generate(ids))  # the saved settings are used


def test_plain_generation_config_is_accepted():
    model, ids = varied_model(), torch.tensor([[11, 12]])
    plain = GenerationConfig(max_new_tokens=4, eos_token_id=None)
    assert model.generate(ids, generation_config=plain).shape == (1, 6)
    assert model.generate(ids, generation_config={"max_new_tokens": 3, "steps": 3}).shape == (1, 5)


REMOTE_GENERATE = """
import sys
sys.modules["llada"] = None  # as on a user's machine: only the Hub files exist
import torch
from transformers import AutoModel
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
assert type(model.generation_config).__module__.startswith("transformers_modules."), type(model.generation_config)
assert model.can_generate() and model.generation_config.remasking == "entropy"
torch.save(model.generate(torch.load(folder + "/ids.pt")), folder + "/remote_out.pt")
"""


def test_remote_code_generation_in_fresh_process(tmp_path):
    model = varied_model()
    model.generation_config.update(max_new_tokens=8, steps=4, block_length=4, remasking="entropy")
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    ids = torch.tensor([[11, 12, 13], [PAD, 21, 22]])
    torch.save(ids, folder / "ids.pt")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules_cache"))
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_GENERATE, str(folder)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(torch.load(folder / "remote_out.pt"), model.generate(ids))


# ----------------------------------------------------------------------------------------------------------------
# Errors: early and naming the argument


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(max_new_tokens=10, block_length=4), "must be a multiple of `block_length`"),
        (dict(max_new_tokens=8, block_length=2, steps=3), "`steps` (3) must be at least the number of blocks"),
        (dict(temperature=-0.5), "`temperature` must be None or a number >= 0"),
        (dict(top_p=0.0), "`top_p` must be None or a number in (0, 1]"),
        (dict(top_p=1.5), "`top_p` must be None or a number in (0, 1]"),
        (dict(top_k=-1), "`top_k` must be None or an integer >= 0"),
        (dict(remasking="lowest"), "`remasking` must be one of"),
        (dict(remask_ratio=1.0), "`remask_ratio` must be None or a number in [0, 1)"),
        (dict(cfg_scale=-1), "`cfg_scale` must be a number >= 0"),
        (dict(steps=0), "`steps` must be None or an integer >= 1"),
        (dict(mask_token_id=100), "`mask_token_id` must be in [0, 99]"),
        (dict(pad_token_id=-5), "`pad_token_id` must be None or an integer >= 0, got -5"),
        (dict(pad_token_id=100), "`pad_token_id` must be in [0, 99]"),
        (dict(eos_token_id=[1, 120]), "`eos_token_id` must be in [0, 99] (the vocabulary), got 120"),
        (dict(num_beams=4), "`num_beams=4` has no meaning for diffusion sampling"),
        (dict(penalty_alpha=0.6), "`penalty_alpha=0.6` has no meaning"),
        (dict(guidance_scale=2.0), "classifier-free guidance is `cfg_scale`"),
        (dict(max_length=2), "`max_length` (2) leaves no room after the prompt"),
        (dict(max_new_tokens=4, gen_length=4), "`max_new_tokens` or its alias `gen_length`"),
        (dict(top_kk=3), "unexpected keyword arguments ['top_kk']"),
        (dict(seed=1, generator=torch.Generator()), "pass `generator` or `seed`, not both"),
    ],
)
def test_bad_settings_fail_early_with_clear_message(settings, message):
    calls = []
    model = varied_model()
    model.register_forward_hook(lambda *args: calls.append(1))  # the sampler runs the model through its forward
    with pytest.raises(ValueError) as error:
        model.diffusion_generate(torch.tensor([[11, 12, 13, 14, 15, 16, 17]]), **settings)
    assert message in str(error.value)
    assert not calls  # nothing ran


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(generation_tokens_hook_func="not a function"), "`generation_tokens_hook_func` must be a callable"),
        (dict(generation_logits_hook_func=3), "`generation_logits_hook_func` must be a callable"),
        (dict(streamer=object()), "`streamer` must have `put(canvas)` and `end()`"),
        (dict(generator=0), "`generator` must be a torch.Generator"),
        (dict(generation_config=3), "`generation_config` must be a GenerationConfig or a dict"),
    ],
)
def test_wrong_types_fail_early(settings, message):
    with pytest.raises(TypeError, match=None) as error:
        varied_model().diffusion_generate(torch.tensor([[11, 12]]), max_new_tokens=4, **settings)
    assert message in str(error.value)


def test_hook_returning_wrong_shape_is_reported():
    with pytest.raises(TypeError, match="must return a tensor of shape"):
        varied_model().diffusion_generate(
            torch.tensor([[11, 12]]), max_new_tokens=4, generation_tokens_hook_func=lambda step, x, logits: None
        )


def test_missing_mask_token_and_bad_inputs():
    model = varied_model()
    model.config.mask_token_id = None
    model.generation_config.mask_token_id = None
    with pytest.raises(ValueError, match="no mask token id"):
        model.diffusion_generate(torch.tensor([[11, 12]]), max_new_tokens=4)
    assert model.diffusion_generate(torch.tensor([[11, 12]]), max_new_tokens=4, mask_token_id=MASK).shape == (1, 6)
    with pytest.raises(ValueError, match="`attention_mask` must have the shape of `input_ids`"):
        model.diffusion_generate(
            torch.tensor([[11, 12]]), attention_mask=torch.ones(1, 3), max_new_tokens=4, mask_token_id=MASK
        )
    with pytest.raises(ValueError, match="`input_ids` must be an integer tensor"):
        model.diffusion_generate(torch.tensor([[1.5]]), max_new_tokens=4, mask_token_id=MASK)


def test_config_validation_on_construction():
    with pytest.raises(ValueError, match="LLaDAGenerationConfig: `top_p`"):
        LLaDAGenerationConfig(top_p=2)
    with pytest.raises(ValueError, match="multiple of `block_length`"):
        LLaDAGenerationConfig(max_new_tokens=10, block_length=3)
    assert LLaDAGenerationConfig(max_new_tokens=12, block_length=3, steps=4).block_length == 3


# ----------------------------------------------------------------------------------------------------------------
# Settings this sampler does not apply, lengths beyond the positions, extreme temperatures


def test_logits_processor_flags_apply_without_a_warning(caplog):
    """Once named in an "ignored" warning, these now apply (test_processors.py); nothing is left to warn of."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            varied_model().diffusion_generate(
                torch.tensor([[11, 12]]),
                max_new_tokens=4,
                repetition_penalty=1.3,
                suppress_tokens=[5],
                do_sample=True,
                seed=0,
            )
    finally:
        hf_logging.disable_propagation()
    assert "diffusion_generate" not in caplog.text


def test_generation_beyond_max_positions_is_refused_as_the_forward_does():
    with pytest.raises(
        ValueError,
        match=r"the prompt \(250 tokens\) \+ `max_new_tokens` \(8\) must be at most the "
        r"model's `max_position_embeddings` \(256\), got 258",
    ):
        varied_model().diffusion_generate(torch.full((1, 250), 11), max_new_tokens=8)
    out = varied_model().diffusion_generate(torch.full((1, 248), 11), max_new_tokens=8)
    assert out.shape == (1, 256) and not (out == MASK).any()


def chi_square_uniform(counts: torch.Tensor) -> float:
    expected = counts.sum() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("temperature", [1000.0, math.inf])
def test_extreme_temperatures_draw_valid_tokens_uniformly(temperature):
    # LLaDA's exp(l) / (-log U)^T overflows here: T = 1000 drew almost only the lowest ids, T = inf mask tokens.
    # Random remasking, so that which position commits does not depend on the token drawn there.
    out = varied_model().diffusion_generate(
        torch.tensor([[11]]),
        max_new_tokens=32,
        steps=32,
        seed=0,
        temperature=temperature,
        remasking="random",
        eos_token_id=None,
        num_return_sequences=64,
    )
    generated = out[:, 1:]
    assert not (generated == MASK).any()
    counts = torch.bincount(generated.reshape(-1), minlength=100).double()
    counts = torch.cat([counts[:MASK], counts[MASK + 1 :]])  # the 99 tokens a step may choose
    assert chi_square_uniform(counts) < 155.0  # 98 degrees of freedom: the 99.99th percentile is about 155


# ----------------------------------------------------------------------------------------------------------------
# Batch invariance: with `seed`, a row's sample depends on its prompt and the seed only

MIXED_PROMPTS = [
    [11, 12, 13, 14, 15],
    [21, 22, 23],
    [31],
    [41, 42, 43, 44],
    [51, 52],
    [61, 62, 63, 64, 65, 66],
    [71],
    [81, 82, 83],
]


@pytest.mark.parametrize(
    "settings",
    [
        dict(temperature=0.8),
        dict(temperature=0.8, remasking="random"),
        dict(temperature=1.0, use_cache="dual", threshold=0.3),
        dict(temperature=0.8, use_cache="prefix", factor=1.0, cfg_scale=0.5),
        dict(temperature=0.8, remasking="random", early_stop=True, eos_token_id=EOS),
    ],
    ids=["gumbel", "random-remasking", "dual-cache-threshold", "prefix-factor-cfg", "early-stop"],
)
def test_sampled_rows_are_the_same_alone_and_in_a_mixed_batch_of_8(settings):
    model = varied_model()
    width = max(len(prompt) for prompt in MIXED_PROMPTS)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in MIXED_PROMPTS])
    settings = {"max_new_tokens": 16, "steps": 16, "block_length": 8, "seed": 3, "eos_token_id": None, **settings}
    batch = model.diffusion_generate(ids, attention_mask=(ids != PAD).long(), **settings)
    for row, prompt in enumerate(MIXED_PROMPTS):
        alone = model.diffusion_generate(torch.tensor([prompt]), **settings)[0]
        assert alone.tolist() == batch[row, width - len(prompt) :].tolist(), f"row {row}"
    one_stream = model.diffusion_generate(
        ids,
        attention_mask=(ids != PAD).long(),
        **{**{k: v for k, v in settings.items() if k != "seed"}, "generator": torch.Generator().manual_seed(3)},
    )
    assert not torch.equal(one_stream, batch)  # a user's generator: one stream for the batch, rows depend on it


def test_copies_of_a_prompt_get_their_own_streams():
    model = varied_model()
    settings = dict(max_new_tokens=8, steps=8, temperature=1.0, seed=5, eos_token_id=None)
    copies = model.diffusion_generate(torch.tensor([[11, 12]]), num_return_sequences=3, **settings)
    assert len({tuple(row.tolist()) for row in copies}) == 3
    assert copies[0].tolist() == model.diffusion_generate(torch.tensor([[11, 12]]), **settings)[0].tolist()
    pair = model.diffusion_generate(torch.tensor([[11, 12], [11, 12]]), num_return_sequences=3, **settings)
    assert torch.equal(pair[:3], copies) and torch.equal(pair[3:], copies)  # copy j of a prompt: the same stream
