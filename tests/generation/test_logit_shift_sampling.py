"""Sampling from a model with Dream's logit shift (`config.logit_shift`): the caches (windowed passes need the state
before the window), the block cache and compiled sampling give the uncached, eager tokens; a cache without the state
before its window is refused."""

import pytest
import torch
from transformers import CompileConfig

from helpers import MASK, GraphCounter, generate_output, prompts_batch, shifted_pair
from llada.cache_llada import BlockKVCache, CanvasKVCache
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.generation_llada import DenoisingContext
from llada.rows_llada import RunningRows


def generate(model, ids, attention_mask=None, **settings):
    return generate_output(model, ids, attention_mask, length=12, **settings)


@pytest.mark.parametrize("use_cache", ["prefix", "dual"])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_a_cache_refreshed_every_step_gives_the_uncached_tokens(use_cache, cfg_scale):
    _, model = shifted_pair(1)
    ids, attention_mask = prompts_batch()
    plain = generate(model, ids, attention_mask, cfg_scale=cfg_scale)
    cached = generate(model, ids, attention_mask, cfg_scale=cfg_scale, use_cache=use_cache, cache_refresh_interval=1)
    assert torch.equal(cached.sequences, plain.sequences) and torch.equal(cached.decode_step, plain.decode_step)


@pytest.mark.parametrize("use_cache, masked_window", [("prefix", False), ("dual", False), ("dual", True)])
@torch.no_grad()
def test_a_windowed_pass_on_a_fresh_cache_gets_the_logits_of_the_full_pass(use_cache, masked_window):
    """A refresh then a windowed pass over the same canvas: the state before the window comes from the cache."""
    _, model = shifted_pair(2)
    ids, attention_mask = prompts_batch()
    canvas = torch.cat([ids, torch.randint(2, 99, (3, 12))], dim=1)  # (3, 17)
    canvas[:, 10:12] = MASK
    full_mask = torch.cat([attention_mask, torch.ones(3, 12, dtype=torch.long)], dim=1)
    cache = CanvasKVCache(use_cache)
    context = DenoisingContext(
        config=LLaDAGenerationConfig(use_cache=use_cache),
        mask_token_id=MASK,
        prompt_length=5,
        attention_mask=full_mask,
        prompt_positions=full_mask.bool(),
        position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0),
        cache=cache,
    )
    block, rows = slice(9, 13), RunningRows(3)
    uncached = model._denoiser_logits(canvas, DenoisingContext(**{**vars(context), "cache": None}), rows, block)
    assert torch.equal(model._denoiser_logits(canvas, context, rows, block, block_step=0), uncached)
    if masked_window:  # per-row positions: the masked ones of the block and one committed one
        context.kv_tokens = torch.full_like(canvas, -1)
        context.kv_tokens[:, :9], context.kv_tokens[:, 13:] = canvas[:, :9], canvas[:, 13:]
        slots = torch.tensor([[1, 2], [1, 2], [1, 2]])
        window = torch.tensor([[1, 2, 0], [1, 2, 3], [1, 2, 0]])
        windowed = model._denoiser_logits(canvas, context, rows, block, 1, slots, window)
        expected = uncached[:, 1:3]
    else:
        windowed, expected = model._denoiser_logits(canvas, context, rows, block, block_step=1), uncached
    torch.testing.assert_close(windowed, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        dict(use_cache="prefix"),
        dict(use_cache="dual", threshold=0.5),
        dict(use_cache="dual", cache_window="masked", cfg_scale=1.0),
        dict(use_cache="dual", cache_refresh_window="vicinity", early_stop=True, eos_token_id=1),
    ],
)
def test_approximate_caches_sample_with_the_shift(settings):
    _, model = shifted_pair(3)
    ids, attention_mask = prompts_batch()
    out = generate(model, ids, attention_mask, **settings)
    assert out.sequences.shape == (3, 17) and not (out.sequences[:, 5:] == MASK).any()


@pytest.mark.parametrize("settings", [dict(), dict(cfg_scale=1.0), dict(threshold=0.3), dict(block_length=2)])
def test_the_exact_block_cache_gives_the_uncached_tokens(settings):
    _, model = shifted_pair(4, block_size=4)
    ids, attention_mask = prompts_batch()
    settings = {"block_length": None, **settings}
    cached = generate(model, ids, attention_mask, **settings)
    uncached = generate(model, ids, attention_mask, use_cache=False, **settings)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.decode_step, uncached.decode_step)


@pytest.mark.parametrize("settings", [dict(use_cache="prefix"), dict(use_cache="dual", cfg_scale=1.0), dict()])
def test_compiled_sampling_gives_the_eager_tokens(settings):
    _, model = shifted_pair(5)
    ids, attention_mask = prompts_batch()
    eager = generate(model, ids, attention_mask, **settings)
    torch._dynamo.reset()
    compiled = generate(
        model,
        ids,
        attention_mask,
        compile=True,
        **settings,
        compile_config=CompileConfig(backend=GraphCounter(), fullgraph=True, dynamic=False),
    )
    assert torch.equal(compiled.sequences, eager.sequences)


def test_a_cache_without_the_state_before_its_window_is_refused():
    class KeysOnly:
        def update(self, key, value, layer_idx, *args, **kwargs):
            return key, value

    _, model = shifted_pair()
    with pytest.raises(ValueError, match="logit_shift"):
        model(torch.randint(2, 99, (1, 4)), position_ids=torch.arange(4)[None], past_key_values=KeysOnly())


def test_the_block_cache_keeps_the_state_of_the_finished_blocks_rows():
    cache = BlockKVCache(block_size=2, generation_start=2, copies=1)
    cache.plan_window(slice(2, 4), 0, 6)
    states = torch.arange(3 * 4, dtype=torch.float).reshape(3, 4, 1)  # rows 0..2, window [0, 4)
    assert torch.equal(cache.shift_hidden_states(states)[:, 1:], states[:, :-1])
    cache.plan_window(slice(2, 4), 1, 6)  # a later step: the window is the block [2, 4)
    window = -torch.ones(3, 2, 1)
    assert torch.equal(cache.shift_hidden_states(window)[:, 0], states[:, 1])  # the last state before the window
    cache.keys, cache.values = {0: torch.zeros(3, 1, 6, 1)}, {0: torch.zeros(3, 1, 6, 1)}  # as after a pass
    cache.keep_rows(torch.tensor([2]))
    assert torch.equal(cache.hidden[:, 1], states[2:, 1])
