"""Tests for the pure sampler steps (llada/sampling_llada.py): schedule, filtering, guidance, the remasking
registry, transfer selection, parallel-decoding counts, the running rows and EOS handling."""

import math

import pytest
import torch

from conftest import EOS, MASK, PAD, llada_num_transfer_tokens, prompts_batch, varied_model
from llada.generation_llada import LLaDAGenerationConfig
from llada.sampling_llada import (
    REMASKING_STRATEGIES,
    RunningRows,
    as_id_list,
    block_schedule,
    constrain_logits,
    filter_logits,
    guidance_inputs,
    guided_logits,
    left_pad,
    num_transfer_tokens,
    pad_after_eos,
    parallel_transfer_count,
    rows_done,
    select_transfer,
    token_confidence,
)


# ----------------------------------------------------------------------------------------------------------------
# Schedule


@pytest.mark.parametrize("M,S", [(10, 4), (8, 8), (7, 3), (32, 5), (5, 9)])
def test_num_transfer_tokens_reproduces_llada_schedule(M, S):
    masked, counts = torch.tensor([M]), []
    for steps_left in range(S, 0, -1):
        k = num_transfer_tokens(masked, steps_left)
        counts.append(int(k))
        masked = masked - k
    assert counts == llada_num_transfer_tokens(M, S)


def test_remask_ratio_schedule_is_geometric():
    masked, counts = torch.tensor([16]), []
    for steps_left in range(6, 0, -1):
        k = num_transfer_tokens(masked, steps_left, remask_ratio=0.5)
        counts.append(int(k))
        masked = masked - k
    assert counts == [8, 4, 2, 1, 1, 0]


def test_block_schedule_spreads_remainder_over_first_blocks():
    assert block_schedule(12, 4, 7) == (4, [3, 2, 2])
    assert block_schedule(8, None, None) == (8, [8])


# ----------------------------------------------------------------------------------------------------------------
# Logits


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    inf = -math.inf
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)
    assert filter_logits(logits, top_k=1)[0, 1] == inf


def test_constrain_logits_forbids_the_mask_and_early_eos():
    logits = torch.zeros(2, 3, 100, dtype=torch.bfloat16)
    constrained = constrain_logits(logits, MASK, [EOS], min_new_tokens=5, block_offset=3)
    assert constrained.dtype == torch.float32 and logits.eq(0).all()  # a float32 copy
    assert torch.isinf(constrained[..., MASK]).all()
    assert torch.isinf(constrained[:, :2, EOS]).all() and not torch.isinf(constrained[:, 2, EOS]).any()
    assert not torch.isinf(constrain_logits(logits, MASK, None, min_new_tokens=5)[..., EOS]).any()


def test_as_id_list():
    assert as_id_list(None) == [] and as_id_list(3) == [3] and as_id_list((3, 4)) == [3, 4]


def test_guidance_batch_and_combination():
    ids, attention_mask = prompts_batch()
    prompt_mask = attention_mask.bool()
    doubled, doubled_mask, doubled_positions = guidance_inputs(ids, prompt_mask, MASK, attention_mask, None)
    assert torch.equal(doubled[:3], ids) and torch.equal(doubled[3:], ids.masked_fill(prompt_mask, MASK))
    assert torch.equal(doubled_mask, torch.cat([attention_mask, attention_mask])) and doubled_positions is None
    conditional, unconditional = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    guided = guided_logits(torch.cat([conditional, unconditional]), 1.5)
    torch.testing.assert_close(guided, unconditional + 2.5 * (conditional - unconditional))
    assert torch.equal(guided_logits(torch.cat([conditional, conditional]), 3.0), conditional)


# ----------------------------------------------------------------------------------------------------------------
# Confidence: the remasking registry


def test_remasking_names_come_from_the_registry():
    assert tuple(REMASKING_STRATEGIES) == ("low_confidence", "random", "entropy", "margin")
    logits = torch.log(torch.tensor([[[0.6, 0.3, 0.1], [0.4, 0.4, 0.2]]]))
    x0 = logits.argmax(-1)
    torch.testing.assert_close(token_confidence(logits, x0, "low_confidence"), torch.tensor([[0.6, 0.4]]))
    torch.testing.assert_close(token_confidence(logits, x0, "margin"), torch.tensor([[0.3, 0.0]]))
    entropy = -(torch.tensor([0.6, 0.3, 0.1]) * torch.tensor([0.6, 0.3, 0.1]).log()).sum()
    torch.testing.assert_close(token_confidence(logits, x0, "entropy")[0, 0], -entropy)
    draws = token_confidence(logits, x0, "random", torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float64 and draws.shape == (1, 2)
    with pytest.raises(ValueError, match="`remasking` must be one of \\('low_confidence', 'random'"):
        token_confidence(logits, x0, "lowest")


def test_a_registered_strategy_is_accepted_by_the_config_and_the_sampler(monkeypatch):
    def leftmost_first(logits, x0, generator=None, rows=None):  # commits the block left to right
        return -torch.arange(x0.shape[-1], dtype=torch.float64).expand(x0.shape)

    monkeypatch.setitem(REMASKING_STRATEGIES, "leftmost", leftmost_first)
    assert LLaDAGenerationConfig(remasking="leftmost").remasking == "leftmost"
    out = varied_model().diffusion_generate(torch.tensor([[11, 12]]), max_new_tokens=4, steps=4, remasking="leftmost",
                                            return_dict_in_generate=True)
    assert out.decode_step[0, 2:].tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------------------------------------------
# Transfer selection and parallel decoding


def test_select_transfer_per_row_counts_and_ties():
    confidence = torch.tensor([[0.1, 0.9, 0.5, 0.9], [0.3, -math.inf, 0.2, 0.7]])
    chosen = select_transfer(confidence, torch.tensor([2, 1]))
    assert chosen.tolist() == [[False, True, False, True], [False, False, False, True]]
    assert select_transfer(confidence, torch.tensor([1, 0]))[0].tolist() == [False, True, False, False]


def test_parallel_transfer_counts():
    inf = float("inf")
    confidence = torch.tensor([[0.95, 0.5, 0.97, -inf], [0.2, 0.1, 0.3, 0.05]])
    assert parallel_transfer_count(confidence, threshold=0.9).tolist() == [2, 0]
    assert parallel_transfer_count(confidence, threshold=1.0).tolist() == [0, 0]
    # sorted row 0: 0.97, 0.95, 0.5 -> (n + 1)(1 - c_n) = 0.06, 0.15, 2.0; row 1: 1.4, 2.4, ...
    assert parallel_transfer_count(confidence, factor=1.0).tolist() == [2, 0]
    assert parallel_transfer_count(confidence, factor=1.5).tolist() == [2, 1]
    assert parallel_transfer_count(confidence).tolist() == [0, 0]


# ----------------------------------------------------------------------------------------------------------------
# Running rows and EOS


def test_running_rows_take_put_and_drop():
    rows, batch = RunningRows(4), torch.arange(8).view(4, 2)
    assert rows.take(batch) is batch and rows.take(None) is None and rows.noise_rows is None
    assert rows.drop_finished(torch.tensor([True, True, True, True])) is None and rows.index is None
    assert rows.drop_finished(torch.tensor([True, False, True, True])).tolist() == [0, 2, 3]
    assert rows.index.tolist() == [0, 2, 3] and rows.take(batch)[:, 0].tolist() == [0, 4, 6]
    assert rows.drop_finished(torch.tensor([False, False, True, True])).tolist() == [1, 2]  # among rows 0, 2, 3
    assert rows.index.tolist() == [2, 3] and rows.noise_rows[0] == 4
    assert rows.put(batch, torch.full((2, 2), -1))[:, 0].tolist() == [0, 2, -1, -1]


def test_pad_after_eos():
    tokens = torch.tensor([[5, EOS, 6, EOS, 7], [5, 6, 7, 8, 9], [EOS, 5, 6, 7, 8]])
    assert pad_after_eos(tokens, [EOS], PAD).tolist() == [[5, EOS, 0, 0, 0], [5, 6, 7, 8, 9], [EOS, 0, 0, 0, 0]]
    assert pad_after_eos(tokens, [EOS, 9], PAD)[1].tolist() == [5, 6, 7, 8, 9]


def test_rows_done():
    generated = torch.tensor([[5, EOS, MASK], [MASK, EOS, 6], [5, 6, 7], [5, EOS, EOS]])
    assert rows_done(generated, MASK, [EOS]).tolist() == [True, False, False, True]


def test_left_pad():
    input_ids, attention_mask = left_pad([[5, 6, 7], [8], []], PAD)
    assert input_ids.tolist() == [[5, 6, 7], [PAD, PAD, 8], [PAD, PAD, PAD]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert input_ids.dtype == attention_mask.dtype == torch.long
