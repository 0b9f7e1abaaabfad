"""Infilling: mask tokens anywhere in `input_ids` are generated, everything else stays (generation_llada, `infill`).

The exactness tests use a model trained here, in a few seconds, on a cyclic token language: 12 "digit" tokens, each
sequence counting up or down by one, modulo 12, from a random start. A one-token prefix does not say which way a
sequence goes; its suffix does, so only a bidirectional model can fill the middle in, and a different suffix must
give a different middle.
"""

import pytest
import torch

from helpers import EOS, MASK, PAD, TINY, varied_model
from llada import LLaDAConfig, LLaDAForMaskedDiffusion, forward_process
from llada.prepare_llada import infill_canvas

PERIOD, BASE, CYCLIC_MASK = 12, 2, 15  # digits are the ids 2..13; 0 pad, 1 EOS, 15 mask


def cyclic(start: int, direction: int, length: int = 12) -> list:
    return [BASE + (start + direction * i) % PERIOD for i in range(length)]


@pytest.fixture(scope="module")
def cyclic_model():
    torch.manual_seed(0)
    config = LLaDAConfig(**{**TINY, "vocab_size": 16, "max_position_embeddings": 32, "mask_token_id": CYCLIC_MASK})
    model = LLaDAForMaskedDiffusion(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        start = torch.randint(0, PERIOD, (64, 1), generator=generator)
        direction = torch.randint(0, 2, (64, 1), generator=generator) * 2 - 1
        clean = BASE + (start + direction * torch.arange(12)) % PERIOD  # (64, 12)
        noisy, masked, p_mask = forward_process(
            clean, torch.rand(64, generator=generator), CYCLIC_MASK, generator=generator
        )
        loss = model(noisy, labels=torch.where(masked, clean, -100), p_mask=p_mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


ALL_SEQUENCES = [cyclic(start, direction) for start in range(PERIOD) for direction in (1, -1)]


def test_the_middle_is_exactly_right_and_the_suffix_decides_it(cyclic_model):
    middles = cyclic_model.infill([s[:1] for s in ALL_SEQUENCES], [s[5:] for s in ALL_SEQUENCES], length=4)
    assert middles.tolist() == [s[1:5] for s in ALL_SEQUENCES]
    up, down = cyclic(3, 1), cyclic(3, -1)  # the same prefix; only the suffix differs
    middles = cyclic_model.infill([up[:1], down[:1]], [up[5:], down[5:]], length=4)
    assert middles.tolist() == [up[1:5], down[1:5]] and up[1:5] != down[1:5]


@pytest.mark.parametrize("remasking", ["low_confidence", "random", "entropy", "margin"])
@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_every_remasking_strategy_and_sampling_fill_it_in(cyclic_model, remasking, temperature):
    sequences = ALL_SEQUENCES[::5]
    middles = cyclic_model.infill(
        [s[:2] for s in sequences],
        [s[6:] for s in sequences],
        length=4,
        steps=4,
        remasking=remasking,
        temperature=temperature,
        seed=0,
    )
    assert middles.tolist() == [s[2:6] for s in sequences]


@pytest.mark.parametrize("use_cache", [False, "prefix", "dual"])
def test_blocks_and_caches_over_the_masked_span(cyclic_model, use_cache):
    sequences = ALL_SEQUENCES[::3]
    ids = torch.tensor([s[:2] + [CYCLIC_MASK] * 6 + s[8:] for s in sequences])
    out = cyclic_model.diffusion_generate(
        ids, max_new_tokens=0, block_length=2, use_cache=use_cache, return_dict_in_generate=True
    )
    assert out.sequences.tolist() == sequences
    steps = out.decode_step[:, 2:8]  # blocks of 2 run left to right over the masked positions
    assert (steps[:, :2].max(dim=1).values < steps[:, 2:4].min(dim=1).values).all()
    assert (steps[:, 2:4].max(dim=1).values < steps[:, 4:].min(dim=1).values).all()
    assert (out.decode_step[:, :2] == -1).all() and (out.decode_step[:, 8:] == -1).all() and out.nfe == 6


def test_mask_tokens_in_the_prompt_and_tokens_appended(cyclic_model):
    sequence = cyclic(5, -1)
    ids = torch.tensor([sequence[:1] + [CYCLIC_MASK] * 4 + sequence[5:9]])
    out = cyclic_model.diffusion_generate(ids, max_new_tokens=3, eos_token_id=None)
    assert out[0].tolist() == sequence  # the gap and the continuation in one canvas


def test_the_blocks_tile_the_masked_span_not_max_new_tokens():
    out = varied_model().diffusion_generate(
        torch.tensor([[11, MASK, MASK, 12]]), max_new_tokens=4, block_length=7, return_dict_in_generate=True
    )  # span: columns 1 to 7
    assert out.sequences.shape == (1, 8) and not (out.sequences == MASK).any() and out.nfe == 6


def test_left_padded_rows_of_different_lengths_fill_as_alone():
    model = varied_model()
    prefixes, suffixes = [[11, 12, 13], [21], []], [[14], [22, 23, 24, 25], [31, 32]]
    batched = model.infill(prefixes, suffixes, length=4, steps=4)
    alone = [model.infill(p, s, length=4, steps=4)[0].tolist() for p, s in zip(prefixes, suffixes)]
    assert batched.tolist() == alone
    with_cache = model.infill(prefixes, suffixes, length=4, use_cache="dual", cache_refresh_interval=1)
    assert with_cache.tolist() == model.infill(prefixes, suffixes, length=4).tolist()


def favour_eos(step, x, logits):
    logits = logits.clone()
    logits[..., EOS] = logits.max() + 10
    return logits


def test_no_eos_inside_the_prompt_and_early_stop_waits_for_the_gap():
    model = varied_model()
    ids = torch.tensor([[11, MASK, MASK, 12]])
    out = model.diffusion_generate(
        ids,
        max_new_tokens=4,
        steps=6,
        early_stop=True,
        return_dict_in_generate=True,
        generation_logits_hook_func=favour_eos,
    )
    middle = out.sequences[0, 1:3].tolist()
    assert EOS not in middle and MASK not in middle and PAD not in middle
    assert out.sequences[0, 4:].tolist() == [EOS, PAD, PAD, PAD]


def test_canvas_of_infill():
    ids, attention_mask, middle_start = infill_canvas([[5, 6], []], [[7], [8, 9]], 3, MASK, PAD)
    assert ids.tolist() == [[5, 6, MASK, MASK, MASK, 7], [PAD, MASK, MASK, MASK, 8, 9]]
    assert attention_mask.tolist() == [[1] * 6, [0, 1, 1, 1, 1, 1]] and middle_start.tolist() == [2, 1]


def test_errors():
    model, ids = varied_model(), torch.tensor([[11, 12]])
    with pytest.raises(ValueError, match="nothing to generate: `max_new_tokens=0` and no prompt holds the mask"):
        model.diffusion_generate(ids, max_new_tokens=0)
    with pytest.raises(ValueError, match="padding positions .* hold the mask token"):
        model.diffusion_generate(torch.tensor([[MASK, 11, MASK]]), attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match=r"the masked span \(canvas columns 1 to 3.*must be a multiple of `block_"):
        model.diffusion_generate(torch.tensor([[11, MASK, MASK, MASK, 12]]), max_new_tokens=0, block_length=2)
    with pytest.raises(ValueError, match="infill: `max_new_tokens` does not apply"):
        model.infill([11], [12], length=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="`length` must be an integer >= 1"):
        model.infill([11], [12], length=0)
    with pytest.raises(ValueError, match="2 prefixes but 1 suffixes"):
        model.infill([[11], [12]], [13], length=2)
    with pytest.raises(ValueError, match="`prefix_ids` must be a list of token ids"):
        model.infill("to be", [12], length=2)
