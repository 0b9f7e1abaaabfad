"""Tests for the pure sampler steps (llada/sampling_llada.py): schedule, filtering, guidance, the remasking
registry, transfer selection, parallel-decoding counts, the running rows and EOS handling."""

import math

import pytest
import torch

from helpers import EOS, MASK, PAD, llada_num_transfer_tokens, prompts_batch, varied_model
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.prepare_llada import left_pad
from llada.rows_llada import RandomDraws, RunningRows, pad_after_eos, prompt_key, row_seed, rows_done
from llada.sampling_llada import (
    REMASKING_STRATEGIES,
    allowed_columns,
    as_id_list,
    block_schedule,
    constrain_logits,
    denoise_block,
    filter_logits,
    guidance_inputs,
    guided_logits,
    gumbel_max_tokens,
    inverse_cdf_tokens,
    masked_slots,
    nucleus_allowed,
    num_transfer_tokens,
    parallel_transfer_count,
    scale_logits,
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


def sorted_nucleus(scores, top_p):
    """The nucleus by a sort of the whole row (the plain definition)."""
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    probs = sorted_scores.softmax(dim=-1)
    removed = probs.cumsum(dim=-1) - probs >= top_p
    return ~torch.zeros_like(removed).scatter(-1, order, removed)


@pytest.mark.parametrize("top_p", [0.3, 0.8, 0.95])
def test_nucleus_allowed_equals_a_sort_of_the_whole_row(top_p):
    """Peaked to flat rows (nuclei of 1 to most of the vocabulary), a forbidden token, ties at the top."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 4, 1000, generator=generator) * torch.tensor([30.0, 8, 3, 1.5, 0.5, 0.05])[:, None, None]
    scores[..., 7] = float("-inf")
    scores[0, 0, :3] = 50.0  # three equally likely tokens
    allowed = nucleus_allowed(scores, top_p)
    assert torch.equal(allowed, sorted_nucleus(scores, top_p))
    assert allowed.any(dim=-1).all() and not allowed[..., 7].any()


@pytest.mark.parametrize("top_k,top_p,temperature", [(None, 0.8, 1.0), (20, None, 1.0), (100, 0.9, 1.3)])
def test_allowed_columns_hold_the_allowed_tokens(top_k, top_p, temperature):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 1000, generator=generator) * torch.tensor([8.0, 4.0, 3.0])[:, None, None]
    filtered = filter_logits(logits, top_k, top_p, temperature)
    values, index = allowed_columns(filtered)
    allowed = torch.isfinite(filtered)
    assert torch.equal(torch.zeros_like(allowed).scatter(-1, index, torch.isfinite(values)), allowed)
    assert torch.equal(values, filtered.gather(-1, index))
    assert allowed_columns(filter_logits(logits * 0.01, top_p=0.8)) is None  # flat: the whole vocabulary


@pytest.mark.parametrize("remasking", ["low_confidence", "random", "entropy", "margin"])
def test_sampling_on_the_nucleus_columns_gives_the_tokens_of_the_whole_vocabulary(remasking, monkeypatch):
    """The Gumbel draws are made for the whole vocabulary, so the candidates are those of the filtered
    whole-vocabulary logits; the confidences agree up to rounding."""
    import llada.sampling_llada as sampling

    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 500, generator=generator) * 4
    tokens = torch.full((4, 6), MASK)
    tokens[:, :2] = 5  # committed positions
    settings = dict(temperature=1.0, top_p=0.8, top_k=50, remasking=remasking, threshold=0.3)
    draws = lambda: RandomDraws.per_row(0, torch.arange(4), "cpu")  # noqa: E731
    widths = []  # the vocabulary width each sample is drawn over
    real_sampler = sampling.gumbel_max_tokens
    sampler = lambda logits, *a: widths.append(logits.shape[-1]) or real_sampler(logits, *a)  # noqa: E731
    monkeypatch.setitem(sampling.TOKEN_SAMPLERS, "gumbel", sampler)
    monkeypatch.setattr(sampling, "gumbel_max_tokens", sampler)
    on_columns, _ = denoise_block(
        logits, tokens, torch.ones(4, dtype=torch.long), MASK, randomness=draws(), **settings
    )
    monkeypatch.setattr(sampling, "allowed_columns", lambda *args: None)
    whole, _ = denoise_block(logits, tokens, torch.ones(4, dtype=torch.long), MASK, randomness=draws(), **settings)
    assert widths[0] < 100 and widths[1] == 500 and torch.equal(on_columns, whole)


@pytest.mark.parametrize("top_p", [0.8, None])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("remasking", ["low_confidence", "random", "entropy", "margin"])
def test_inverse_cdf_step_equals_sampling_the_filtered_logits(remasking, temperature, top_p):
    """The one-pass inverse-CDF step (candidates drawn from the probabilities that found the nucleus) gives the
    tokens and commits of the reference: filter the logits, then `inverse_cdf_tokens` and the strategy on them."""
    import llada.sampling_llada as sampling

    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, 500, generator=generator) * 4
    tokens = torch.full((4, 6), MASK)
    tokens[:, :2] = 5  # committed positions
    draws = lambda: RandomDraws.per_row(0, torch.arange(4), "cpu")  # noqa: E731
    new, transfer = denoise_block(
        logits,
        tokens,
        torch.ones(4, dtype=torch.long),
        MASK,
        temperature,
        None,
        top_p,
        remasking,
        draws(),
        threshold=0.3,
        token_sampling="inverse_cdf",
    )
    filtered = filter_logits(logits, None, top_p, temperature)
    randomness = draws()
    active = (tokens == MASK).any(dim=-1)
    x0 = inverse_cdf_tokens(filtered, temperature, randomness, None, active)
    confidence = sampling.token_confidence(filtered, x0, remasking, randomness, None, active)
    expected = sampling._commit(
        tokens, tokens == MASK, x0, confidence, torch.ones(4, dtype=torch.long), (0.3, None, None, None), None
    )
    assert torch.equal(new, expected[0]) and torch.equal(transfer, expected[1])
    _, allowed, probability = sampling.inverse_cdf_nucleus(logits, top_p, temperature, draws(), None, active)
    reference = scale_logits(filtered, temperature).softmax(dim=-1).gather(-1, x0[..., None])[..., 0]
    torch.testing.assert_close(probability, reference)  # the probability each candidate was drawn with
    assert allowed is None if top_p is None else torch.equal(allowed, torch.isfinite(filtered))


def test_inverse_cdf_draw_in_chunks_equals_one_cumulative_sum():
    """The two-level search (chunks, then a chunk's tokens) picks the token of one float64 cumulative sum over the
    vocabulary, also where most weights are zero (a nucleus) or a whole chunk is."""
    import llada.sampling_llada as sampling

    generator = torch.Generator().manual_seed(3)
    weights = torch.randn(6, 300, 1024, generator=generator).mul(3).softmax(dim=-1)
    weights = torch.where(torch.rand(weights.shape, generator=generator) < 0.9, 0.0, weights)
    weights[:, :, :512] = 0.0  # whole chunks without weight
    weights[:, :, 1000] += 1e-3  # every position has some weight
    draws = lambda: RandomDraws.per_row(0, torch.arange(6), "cpu")  # noqa: E731
    chunked, total = sampling._inverse_cdf_draw(weights, draws(), chunk=64)
    whole, whole_total = sampling._inverse_cdf_draw(weights, draws(), chunk=1024)  # too few chunks: one level
    assert torch.equal(chunked, whole) and (weights.gather(-1, chunked[..., None]) > 0).all()
    torch.testing.assert_close(total, whole_total)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_inverse_cdf_tokens_sample_the_tempered_distribution_with_one_draw_per_position(temperature):
    probs = torch.tensor([0.1, 0.2, 0.0, 0.7])
    logits = probs.log().expand(2, 20000, 4).clone()
    calls = []

    class CountingDraws(RandomDraws):
        def uniform(self, shape, device, rows=None, active=None):
            calls.append(tuple(shape))
            return super().uniform(shape, device, rows, active)

    x0 = inverse_cdf_tokens(logits, temperature, CountingDraws(torch.Generator().manual_seed(0)))
    expected = probs ** (1 / temperature) / (probs ** (1 / temperature)).sum()
    torch.testing.assert_close(torch.bincount(x0.flatten(), minlength=4) / x0.numel(), expected, atol=0.01, rtol=0)
    assert calls == [(2, 20000)] and not (x0 == 2).any()  # one uniform per position; a forbidden token never
    assert torch.equal(inverse_cdf_tokens(logits[:, :3], 0.0), torch.full((2, 3), 3))  # greedy: the argmax


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
    assert tuple(REMASKING_STRATEGIES) == ("low_confidence", "random", "entropy", "margin", "left_to_right")
    logits = torch.log(torch.tensor([[[0.6, 0.3, 0.1], [0.4, 0.4, 0.2]]]))
    x0 = logits.argmax(-1)
    torch.testing.assert_close(token_confidence(logits, x0, "low_confidence"), torch.tensor([[0.6, 0.4]]))
    torch.testing.assert_close(token_confidence(logits, x0, "margin"), torch.tensor([[0.3, 0.0]]))
    entropy = -(torch.tensor([0.6, 0.3, 0.1]) * torch.tensor([0.6, 0.3, 0.1]).log()).sum()
    torch.testing.assert_close(token_confidence(logits, x0, "entropy")[0, 0], -entropy)
    torch.testing.assert_close(token_confidence(logits, x0, "left_to_right"), torch.tensor([[0.0, -1.0]]))
    one_column = logits[..., :1]  # a nucleus of one token: nothing second to it, the margin is its probability
    torch.testing.assert_close(token_confidence(one_column, torch.zeros_like(x0), "margin"), torch.ones(1, 2))
    draws = token_confidence(logits, x0, "random", torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float64 and draws.shape == (1, 2)
    with pytest.raises(ValueError, match="`remasking` must be one of \\('low_confidence', 'random'"):
        token_confidence(logits, x0, "lowest")


def test_a_registered_strategy_is_accepted_by_the_config_and_the_sampler(monkeypatch):
    def leftmost_first(logits, x0, randomness=None, rows=None, active=None):  # commits the block left to right
        return -torch.arange(x0.shape[-1], dtype=torch.float64).expand(x0.shape)

    monkeypatch.setitem(REMASKING_STRATEGIES, "leftmost", leftmost_first)
    assert LLaDAGenerationConfig(remasking="leftmost").remasking == "leftmost"
    out = varied_model().diffusion_generate(
        torch.tensor([[11, 12]]), max_new_tokens=4, steps=4, remasking="leftmost", return_dict_in_generate=True
    )
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
    assert rows.take(batch) is batch and rows.take(None) is None
    assert rows.drop_finished(torch.tensor([True, True, True, True])) is None and rows.index is None
    assert rows.drop_finished(torch.tensor([True, False, True, True])).tolist() == [0, 2, 3]
    assert rows.index.tolist() == [0, 2, 3] and rows.take(batch)[:, 0].tolist() == [0, 4, 6]
    assert rows.drop_finished(torch.tensor([False, False, True, True])).tolist() == [1, 2]  # among rows 0, 2, 3
    assert rows.index.tolist() == [2, 3] and rows.batch_size == 4
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


# ----------------------------------------------------------------------------------------------------------------
# Gumbel-max at every temperature, and where the random numbers come from


def chi_square(counts: torch.Tensor, expected: torch.Tensor) -> float:
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("temperature", [1e4, math.inf])
def test_gumbel_max_is_uniform_at_very_high_temperature(temperature):
    vocab, draws = 40, 40_000
    logits = torch.linspace(-30.0, 30.0, vocab).repeat(1, draws, 1)  # (1, draws, vocab): strong preferences
    logits[..., 0] = float("-inf")  # a forbidden token (the mask) is never drawn
    tokens = gumbel_max_tokens(logits, temperature, torch.Generator().manual_seed(0))
    counts = torch.bincount(tokens.view(-1), minlength=vocab).double()
    assert counts[0] == 0
    # 38 degrees of freedom: the 99.99th percentile is about 77
    assert chi_square(counts[1:], torch.full((vocab - 1,), draws / (vocab - 1), dtype=torch.float64)) < 77.0


def test_gumbel_max_follows_the_softmax_at_ordinary_temperature():
    draws, temperature = 60_000, 0.7
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5, 1.5]).repeat(1, draws, 1)
    tokens = gumbel_max_tokens(logits, temperature, torch.Generator().manual_seed(1))
    counts = torch.bincount(tokens.view(-1), minlength=6).double()
    expected = torch.softmax(logits[0, 0].double() / temperature, dim=-1) * draws
    assert chi_square(counts, expected) < 25.0  # 5 degrees of freedom, p ~ 1e-4


def test_gumbel_max_takes_llada_s_tokens_and_survives_huge_logits():
    # the same argmax as LLaDA's exp(l) / (-log U)^T where that is finite; logits of 1000 overflow exp() in float64
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 16, 50, generator=generator, dtype=torch.float64) * 3
    uniform = torch.rand(logits.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    llada = (logits.exp() / (-torch.log(uniform)) ** 0.8).argmax(dim=-1)
    assert torch.equal(gumbel_max_tokens(logits, 0.8, torch.Generator().manual_seed(3)), llada)
    huge = logits * 0 + torch.arange(50, dtype=torch.float64) * 1000.0  # token 49 is overwhelmingly likely
    assert (gumbel_max_tokens(huge, 1.0, torch.Generator().manual_seed(4)) == 49).all()


def test_scale_logits_keeps_forbidden_tokens_forbidden():
    logits = torch.tensor([1.0, float("-inf"), -3.0])
    assert scale_logits(logits, 2.0).tolist() == [0.5, float("-inf"), -1.5]
    assert scale_logits(logits, math.inf).tolist() == [0.0, float("-inf"), 0.0]


def test_per_row_draws_depend_on_the_row_only():
    copies = torch.tensor([0, 0, 1])
    draws = RandomDraws.per_row(7, copies, "cpu").uniform((3, 4), "cpu")
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])  # first copies share a stream
    assert torch.equal(
        draws[0], torch.rand(4, generator=torch.Generator().manual_seed(row_seed(7, 0)), dtype=torch.float64)
    )
    assert len({row_seed(7, 0), row_seed(7, 1), row_seed(8, 0), row_seed(7, 0, prompt_key([5]))}) == 4
    # the prompt picks the stream: different prompts draw differently, padding and batching do not matter
    prompts, mask = torch.tensor([[0, 5, 6], [5, 6, 1], [9, 5, 6]]), torch.tensor([[0, 1, 1], [1, 1, 0], [1, 1, 1]])
    by_prompt = RandomDraws.for_call(7, None, prompts, mask, 1, "cpu").uniform((3, 4), "cpu")
    assert torch.equal(by_prompt[0], by_prompt[1]) and not torch.equal(by_prompt[0], by_prompt[2])
    assert prompt_key([5, 6]) != prompt_key([6, 5]) and prompt_key([]) != prompt_key([0])
    # a row that does not draw (nothing masked in its block) does not move its stream on
    source, rows = RandomDraws.per_row(7, copies, "cpu"), RunningRows(3)
    first = source.uniform((3, 4), "cpu", rows, active=torch.tensor([True, False, True]))
    assert (first[1] == 0).all()
    second = source.uniform((3, 4), "cpu", rows)
    assert torch.equal(second[1], draws[1]) and not torch.equal(second[0], draws[0])


def test_one_stream_draws_for_the_whole_batch_and_picks_the_running_rows():
    rows = RunningRows(3)
    rows.drop_finished(torch.tensor([True, False, True]))
    picked = RandomDraws.shared(torch.Generator().manual_seed(0)).uniform((2, 5), "cpu", rows)
    full = torch.rand((3, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(picked, full[[0, 2]])


def test_masked_slots_lists_masked_positions_first_then_fills_with_committed_ones():
    block = torch.tensor([[MASK, 5, MASK, 6], [7, 8, 9, MASK], [1, 2, 3, 4]])
    assert masked_slots(block, MASK).tolist() == [[0, 2], [3, 0], [0, 1]]
    gathered = block.gather(1, masked_slots(block, MASK))
    assert (gathered == MASK).sum(dim=-1).tolist() == [2, 1, 0]  # every masked position, once


def test_margin_remasking_samples_from_a_nucleus_of_one_token():
    # a tiny top_p leaves one token per position: the sampler then works on that one column
    out = varied_model().diffusion_generate(
        torch.tensor([[11, 12]]),
        max_new_tokens=4,
        steps=4,
        block_length=2,
        temperature=1.0,
        top_p=1e-6,
        remasking="margin",
        seed=0,
    )
    assert out.shape == (1, 6) and not (out == MASK).any()
