"""Tests for the fast sampling paths of `diffusion_generate`: key/value caches, parallel decoding (threshold and
factor) and early stop. The exactness guards compare against the plain sampler, itself checked against an
independent reference in test_generation.py."""

import pytest
import torch

from helpers import EOS, MASK, PAD, prompts_batch, varied_model
from helpers import generate_output as generate
from llada import generation_llada
from llada.cache_llada import CanvasKVCache
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.generation_llada import DenoisingContext
from llada.rows_llada import ConfidenceCredit, RunningRows

# ----------------------------------------------------------------------------------------------------------------
# Exactness guards


@pytest.mark.parametrize("use_cache", ["prefix", "dual"])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_cache_refreshed_every_step_gives_the_uncached_tokens(use_cache, cfg_scale):
    model, (ids, attention_mask) = varied_model(1), prompts_batch()
    plain = generate(model, ids, attention_mask, cfg_scale=cfg_scale)
    cached = generate(model, ids, attention_mask, cfg_scale=cfg_scale, use_cache=use_cache, cache_refresh_interval=1)
    assert torch.equal(cached.sequences, plain.sequences)
    assert torch.equal(cached.decode_step, plain.decode_step) and cached.nfe == plain.nfe == 16


def canvas_context(config, cache):
    """A varied model, a (3, 17) canvas of 5 prompt columns (left-padded) and random tokens, and its context."""
    model, (ids, attention_mask) = varied_model(2), prompts_batch()
    canvas = torch.cat([ids, torch.randint(2, 99, (3, 12))], dim=1)  # (3, 17)
    full_mask = torch.cat([attention_mask, torch.ones(3, 12, dtype=torch.long)], dim=1)
    prompt_positions = full_mask.bool()
    prompt_positions[:, 5:] = False
    context = DenoisingContext(
        config=config,
        mask_token_id=MASK,
        prompt_length=5,
        attention_mask=full_mask,
        prompt_positions=prompt_positions,
        position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0),
        cache=cache,
    )
    return model, canvas, context


@pytest.mark.parametrize("use_cache", ["prefix", "dual"])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_windowed_pass_on_a_fresh_cache_equals_the_full_pass(use_cache, cfg_scale):
    """A refresh then a windowed pass over the same canvas: the window sees exactly the keys of a full pass."""
    model, canvas, context = canvas_context(
        LLaDAGenerationConfig(use_cache=use_cache, cfg_scale=cfg_scale),
        CanvasKVCache(use_cache, copies=2 if cfg_scale else 1),
    )
    block, rows = slice(9, 13), RunningRows(3)
    with torch.no_grad():
        uncached = model._denoiser_logits(canvas, DenoisingContext(**{**vars(context), "cache": None}), rows, block)
        refreshed = model._denoiser_logits(canvas, context, rows, block, block_step=0)  # a block's first step
        windowed = model._denoiser_logits(canvas, context, rows, block, block_step=1)
        again = model._denoiser_logits(canvas, context, rows, block, block_step=1)
    assert torch.equal(refreshed, uncached)
    torch.testing.assert_close(windowed, uncached, atol=1e-5, rtol=1e-5)
    assert torch.equal(again, windowed)  # writing the window into the cache changed nothing else


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(use_cache="dual"),
        dict(use_cache="prefix", cfg_scale=1.0),
        dict(remasking="margin", steps=8),
        dict(use_cache="dual", cache_window="masked", cache_refresh_window="vicinity", temperature=1.0, seed=0),
    ],
)
def test_threshold_one_is_the_scheduled_algorithm(settings):
    model, (ids, attention_mask) = varied_model(3), prompts_batch()
    scheduled = generate(model, ids, attention_mask, **settings)
    never_above = generate(model, ids, attention_mask, threshold=1.0, **settings)
    assert torch.equal(never_above.sequences, scheduled.sequences)
    assert torch.equal(never_above.decode_step, scheduled.decode_step) and never_above.nfe == scheduled.nfe


def test_factor_zero_is_the_scheduled_algorithm():
    model, (ids, attention_mask) = varied_model(3), prompts_batch()
    scheduled = generate(model, ids, attention_mask, steps=8)
    tiny_factor = generate(model, ids, attention_mask, steps=8, factor=1e-9)
    assert torch.equal(tiny_factor.sequences, scheduled.sequences) and tiny_factor.nfe == scheduled.nfe


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(use_cache="dual", threshold=0.05),
        dict(use_cache="prefix", cfg_scale=1.0),
        dict(remasking="entropy", factor=2.0),
        dict(remasking="margin", remask_ratio=0.5, steps=8),
        dict(eos_token_id=EOS, min_new_tokens=6, early_stop=True, threshold=0.05),
        dict(top_k=3, top_p=0.9),
        dict(temperature=1.0, seed=0),
        dict(temperature=0.7, top_p=0.9, use_cache="dual", threshold=0.2, seed=1),
        dict(remasking="random", seed=2),
        dict(temperature=1.0, generator="shared"),
        dict(temperature=1.0, remasking="random", generator="shared", cfg_scale=1.0, use_cache="prefix"),
        dict(temperature=1.0, top_p=0.8, token_sampling="inverse_cdf", seed=0, use_cache="dual", threshold=0.2),
        dict(temperature=0.8, token_sampling="inverse_cdf", generator="shared"),
    ],
)
def test_predicting_only_the_masked_positions_gives_the_tokens_of_the_whole_block(settings, monkeypatch):
    """Greedy or sampled (the draws are made for the whole block and the slots' taken), per-row or shared streams."""
    model, (ids, attention_mask) = varied_model(4), prompts_batch()
    fresh = lambda: {  # noqa: E731
        **settings,
        **({"generator": torch.Generator().manual_seed(0)} if settings.get("generator") == "shared" else {}),
    }
    masked_only = generate(model, ids, attention_mask, **fresh())
    monkeypatch.setattr(generation_llada, "_predicts_masked_only", lambda *args: False)
    whole_block = generate(model, ids, attention_mask, **fresh())
    assert torch.equal(masked_only.sequences, whole_block.sequences)
    assert torch.equal(masked_only.decode_step, whole_block.decode_step) and masked_only.nfe == whole_block.nfe


@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_masked_cache_window_runs_the_masked_and_just_committed_positions(cfg_scale):
    """Block 4 at one token per step: a refresh, then 3 masked + 1 just committed, 2 + 1, 1 + 1 positions. With
    block 2 that is the whole block at every windowed step: the tokens of the block window."""
    model, (ids, attention_mask) = varied_model(6), prompts_batch()
    widths = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, output: widths.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        out = generate(model, ids, attention_mask, use_cache="dual", cache_window="masked", cfg_scale=cfg_scale)
    finally:
        handle.remove()
    rows = 3 * (2 if cfg_scale else 1)
    assert widths == [(rows, 21), (rows, 4), (rows, 3), (rows, 2)] * 4 and out.nfe == 16
    settings = dict(use_cache="dual", block_length=2, cfg_scale=cfg_scale)
    block_window = generate(model, ids, attention_mask, **settings)
    masked_window = generate(model, ids, attention_mask, cache_window="masked", **settings)
    assert torch.equal(masked_window.sequences, block_window.sequences)
    refreshed = generate(model, ids, attention_mask, use_cache="dual", cache_window="masked", cache_refresh_interval=1)
    assert torch.equal(refreshed.sequences, generate(model, ids, attention_mask).sequences)


@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_vicinity_refresh_runs_the_previous_block_and_the_block(cfg_scale):
    """Block 4, one token per step: the first block starts with the whole canvas (21 positions), every later block
    with the block just finished and the new one (8); with `cache_window="masked"` the windowed steps shrink too."""
    model, (ids, attention_mask) = varied_model(6), prompts_batch()
    widths = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, output: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        generate(model, ids, attention_mask, use_cache="dual", cache_refresh_window="vicinity", cfg_scale=cfg_scale)
        block_window, widths[:] = list(widths), []
        generate(
            model,
            ids,
            attention_mask,
            use_cache="dual",
            cache_window="masked",
            cache_refresh_window="vicinity",
            cfg_scale=cfg_scale,
        )
    finally:
        handle.remove()
    assert block_window == [21, 4, 4, 4] + [8, 4, 4, 4] * 3
    assert widths == [21, 4, 3, 2] + [8, 4, 3, 2] * 3


def test_vicinity_pass_on_a_fresh_cache_equals_the_full_pass():
    """A whole-canvas refresh for one block, then the next block's vicinity refresh over the same canvas: the window
    sees the keys of a full pass, so its logits are those of the uncached pass."""
    model, canvas, context = canvas_context(
        LLaDAGenerationConfig(use_cache="dual"), CanvasKVCache("dual", refresh_window="vicinity")
    )
    rows, widths = RunningRows(3), []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, output: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    with torch.no_grad():
        model._denoiser_logits(canvas, context, rows, slice(5, 9), block_step=0)  # the first block: whole canvas
        vicinity = model._denoiser_logits(canvas, context, rows, slice(9, 13), block_step=0)
        uncached = model._denoiser_logits(
            canvas, DenoisingContext(**{**vars(context), "cache": None}), rows, slice(9, 13)
        )
    handle.remove()
    assert widths[:2] == [17, 8]
    torch.testing.assert_close(vicinity, uncached, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cache_window", [None, "masked"])
def test_vicinity_refresh_with_one_block_is_the_dual_cache(cache_window):
    """With a single block there is no block start after the first: the tokens of the plain dual cache."""
    model, (ids, attention_mask) = varied_model(5), prompts_batch()
    settings = dict(use_cache="dual", cache_window=cache_window, block_length=16, temperature=1.0, seed=0)
    vicinity = generate(model, ids, attention_mask, cache_refresh_window="vicinity", **settings)
    dual = generate(model, ids, attention_mask, **settings)
    assert torch.equal(vicinity.sequences, dual.sequences) and vicinity.nfe == dual.nfe


@pytest.mark.parametrize("use_cache", [False, "dual"])
def test_the_head_runs_on_the_still_masked_positions_of_the_block(use_cache):
    """Only the masked positions of the block reach the head: 4, 3, 2, 1 per block of 4 at one token per step,
    greedy or sampled; a logits processor sees the whole block."""
    model, (ids, attention_mask) = varied_model(4), prompts_batch()
    seen = []
    handle = model.lm_head.register_forward_hook(lambda module, args, output: seen.append(tuple(args[0].shape)))
    try:
        generate(model, ids, attention_mask, use_cache=use_cache)
        greedy, seen[:] = list(seen), []
        generate(model, ids, attention_mask, use_cache=use_cache, temperature=1.0, seed=0)
        sampled, seen[:] = list(seen), []
        generate(model, ids, attention_mask, use_cache=use_cache, repetition_penalty=1.2)
    finally:
        handle.remove()
    assert greedy == sampled == [(3, k, 32) for k in (4, 3, 2, 1)] * 4
    assert seen == [(3, 4, 32)] * 16


@pytest.mark.parametrize(
    "settings",
    [
        dict(use_cache="prefix"),
        dict(use_cache="dual"),
        dict(threshold=0.02),
        dict(factor=2.0),
        dict(use_cache="dual", threshold=0.02, cfg_scale=1.0),
        dict(use_cache="prefix", cache_refresh_interval=2),
        dict(use_cache="dual", threshold=0.3, credit_decay=1.0),
        dict(threshold=0.3, credit_decay=0.5, temperature=1.0, seed=0),
        dict(use_cache="dual", cache_window="masked", threshold=0.05),
        dict(use_cache="dual", cache_refresh_window="vicinity", threshold=0.05, cfg_scale=1.0),
        dict(use_cache="dual", cache_window="masked", cache_refresh_window="vicinity", temperature=1.0, seed=0),
        dict(
            temperature=1.0, top_p=0.8, token_sampling="inverse_cdf", seed=0, use_cache="dual", cache_window="masked"
        ),
    ],
)
def test_batch_rows_equal_single_row_results(settings):
    model, (ids, attention_mask) = varied_model(4), prompts_batch()
    batched = generate(model, ids, attention_mask, **settings).sequences
    for row in range(3):
        real = attention_mask[row].bool()
        alone = generate(model, ids[row : row + 1, real], None, **settings).sequences
        assert batched[row, 5:].tolist() == alone[0, int(real.sum()) :].tolist(), f"row {row}"


# ----------------------------------------------------------------------------------------------------------------
# Parallel decoding


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(use_cache="dual", cfg_scale=1.0),
        dict(remasking="margin"),
        dict(temperature=1.0, seed=3, use_cache="prefix"),
    ],
)
def test_credit_decay_zero_is_threshold_decoding(settings):
    model, (ids, attention_mask) = varied_model(5), prompts_batch()
    plain = generate(model, ids, attention_mask, threshold=0.2, **settings)
    credit = generate(model, ids, attention_mask, threshold=0.2, credit_decay=0.0, **settings)
    assert torch.equal(credit.sequences, plain.sequences)
    assert torch.equal(credit.decode_step, plain.decode_step) and credit.nfe == plain.nfe


def test_credit_accumulates_while_the_candidate_stays_and_commits_sooner():
    credit = ConfidenceCredit(decay=1.0, batch_size=1, block_length=3)
    inf = float("inf")
    first = credit.boost(torch.tensor([[5, 6, 7]]), torch.tensor([[0.3, 0.4, -inf]]))
    second = credit.boost(torch.tensor([[5, 8, 7]]), torch.tensor([[0.3, 0.2, -inf]]))
    torch.testing.assert_close(first, torch.tensor([[0.3, 0.4, -inf]]))
    torch.testing.assert_close(second, torch.tensor([[0.6, 0.2, -inf]]))  # same candidate: 0.3 + 0.3; new: 0.2
    slots = torch.tensor([[1, 0]])  # only positions 1 and 0 predicted: the others keep their credit
    third = credit.boost(torch.tensor([[8, 5]]), torch.tensor([[0.1, 0.1]]), slots=slots)
    torch.testing.assert_close(third, torch.tensor([[0.3, 0.7]]))
    model, (ids, attention_mask) = varied_model(5), prompts_batch()
    plain = generate(model, ids, attention_mask, threshold=0.3, use_cache="dual")
    credited = generate(model, ids, attention_mask, threshold=0.3, credit_decay=1.0, use_cache="dual")
    assert credited.nfe < plain.nfe


def test_threshold_commits_above_it_at_least_one_and_steps_become_an_upper_bound():
    model, (ids, attention_mask) = varied_model(5), prompts_batch()
    scheduled = generate(model, ids, attention_mask)
    out = generate(model, ids, attention_mask, threshold=0.02, output_history=True)
    assert (out.sequences[:, 5:] != MASK).all()
    assert out.nfe < scheduled.nfe and out.nfe == len(out.history)
    assert sorted(set(out.decode_step[:, 5:].flatten().tolist())) == list(range(out.nfe))
    per_step = torch.stack([torch.bincount(row, minlength=out.nfe) for row in out.decode_step[:, 5:]])
    assert per_step.sum() == 3 * 16 and (per_step.amax(dim=0) >= 1).all()
    assert (per_step > 1).any()  # some step committed several tokens of a row
    everything = generate(model, ids, attention_mask, threshold=0.0)  # every confidence is above 0
    assert everything.nfe == 4  # one step per block


# ----------------------------------------------------------------------------------------------------------------
# Early stop


@pytest.mark.parametrize("settings", [dict(), dict(use_cache="dual", threshold=0.05), dict(use_cache="prefix")])
def test_early_stop_keeps_tokens_and_saves_forward_passes(settings):
    model, (ids, attention_mask) = varied_model(6), prompts_batch()
    full = generate(model, ids, attention_mask, max_new_tokens=24, steps=24, **settings)
    # make a token that row 0 produced early (in its first block) the EOS: it finishes long before the others
    eos = int(full.sequences[0, 5])
    calls = []
    model.model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    stopped = generate(
        model,
        ids,
        attention_mask,
        max_new_tokens=24,
        steps=24,
        eos_token_id=eos,
        pad_token_id=PAD,
        early_stop=True,
        **settings,
    )
    not_stopped = generate(
        model, ids, attention_mask, max_new_tokens=24, steps=24, eos_token_id=eos, pad_token_id=PAD, **settings
    )
    assert torch.equal(stopped.sequences, not_stopped.sequences)
    assert min(calls) < 3  # the finished row left the forward batch
    first_eos = stopped.sequences[0, 5:].tolist().index(eos)
    next_block = 5 + (first_eos // 4 + 1) * 4
    assert (stopped.decode_step[0, next_block:] == -1).all()  # later blocks filled, never decoded


def test_early_stop_ends_the_loop_when_every_row_is_done():
    model, ids = varied_model(7), torch.tensor([[11, 12]])
    full = generate(model, ids, None, max_new_tokens=16, steps=16)
    eos = int(full.sequences[0, 2])  # the first generated token becomes EOS: done once it is committed
    out = generate(model, ids, None, max_new_tokens=16, steps=16, eos_token_id=eos, early_stop=True)
    assert out.nfe == int(full.decode_step[0, 2]) + 1 < 16
    assert out.sequences[0, 2:].tolist() == [eos] + [PAD] * 15


# ----------------------------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(use_cache=True), "`use_cache` must be None, False, 'prefix' or 'dual'"),
        (dict(use_cache="suffix"), "`use_cache` must be None, False, 'prefix' or 'dual'"),
        (dict(cache_refresh_interval=0), "`cache_refresh_interval` must be None or an integer >= 1"),
        (dict(threshold=1.5), "`threshold` must be None or a number in [0, 1]"),
        (dict(factor=0), "`factor` must be None or a number > 0"),
        (dict(threshold=0.9, factor=1.0), "not threshold and factor"),
        (dict(factor=1.0, entropy_bound=0.5), "not factor and entropy_bound"),
        (dict(entropy_bound=-1), "entropy_bound"),
        (dict(early_stop="yes"), "`early_stop` must be a bool"),
        (dict(use_cache="dual", generation_logits_hook_func=lambda s, x, logits: logits), "cannot be combined with"),
        (dict(threshold=0.9, credit_decay=1.5), "`credit_decay` must be None or a number in [0, 1]"),
        (dict(credit_decay=0.5), "`credit_decay` accumulates confidences towards `threshold`: set `threshold` too"),
        (dict(threshold=0.9, credit_decay=0.5, remasking="entropy"), "`remasking` 'low_confidence' or 'margin'"),
        (dict(cache_window="suffix"), "`cache_window` must be None, 'block' or 'masked'"),
        (dict(cache_window="masked", use_cache="prefix"), "`cache_window='masked'` runs the masked positions"),
        (dict(cache_window="masked"), "needs use_cache='dual'"),
        (dict(cache_refresh_window="block"), "`cache_refresh_window` must be None, 'canvas' or 'vicinity'"),
        (dict(token_sampling="multinomial"), "`token_sampling` must be one of ('gumbel', 'inverse_cdf')"),
        (dict(cache_refresh_window="vicinity", use_cache="prefix"), "`cache_refresh_window='vicinity'` narrows"),
        (
            dict(cache_refresh_window="vicinity", use_cache="dual", cache_refresh_interval=2),
            "needs use_cache='dual' and cache_refresh_interval None",
        ),
    ],
)
def test_bad_settings_fail_early(settings, message):
    with pytest.raises(ValueError) as error:
        varied_model().diffusion_generate(torch.tensor([[11, 12]]), max_new_tokens=4, **settings)
    assert message in str(error.value)


def test_fast_settings_round_trip_through_generation_config(tmp_path):
    config = LLaDAGenerationConfig(use_cache="dual", threshold=0.9, cache_refresh_interval=4, early_stop=True)
    config.save_pretrained(tmp_path)
    reloaded = LLaDAGenerationConfig.from_pretrained(tmp_path)
    assert (reloaded.use_cache, reloaded.threshold, reloaded.cache_refresh_interval, reloaded.early_stop) == (
        "dual",
        0.9,
        4,
        True,
    )
    assert LLaDAGenerationConfig().use_cache is None  # exact caches only: none for a full-attention model
