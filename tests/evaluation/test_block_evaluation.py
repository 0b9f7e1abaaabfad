"""Scoring a block diffusion model (llada/evaluation.py): one time per block, the ELBO against a hand computation
and unbiased on a context-free model, and the in-order NLL and perplexity against the chain rule one position at a
time."""

import math

import pytest
import torch

from helpers import MASK, ContextFreeBlockModel, per_block_reference_loss, random_ids, tiny_model
from llada.evaluation import block_times, elbo_nll, in_order_nll, in_order_perplexity, sample_times


def test_block_times_are_one_per_block_and_stratified():
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :3] = 0  # left padding: that row's blocks start at its first real token
    times = block_times(mask, 4, 8, "stratified", torch.Generator().manual_seed(0))  # (8, 2, 10)
    assert times.shape == (8, 2, 10)
    assert torch.all(times[:, 0, :4] == times[:, 0, :1]) and torch.all(times[:, 1, 3:7] == times[:, 1, 3:4])
    for k in range(8):
        assert bool(((times[k] >= k / 8) & (times[k] < (k + 1) / 8)).all())
    assert sample_times(3, 2).shape == (2, 3)


def test_elbo_of_a_block_model_matches_a_hand_computation():
    model = tiny_model(block_size=4, initializer_range=0.2)
    ids = random_ids(batch=2, seq=10)
    got = elbo_nll(model, ids, num_samples=3, t_sampling="uniform", eps=1e-3, seed=5)

    generator = torch.Generator().manual_seed(5)
    times = torch.rand(3, 2 * 3, generator=generator).view(3, 2, 3)  # (draws, batch, blocks)
    expected = torch.zeros(2)
    for t in times:
        p = (1 - 1e-3) * t.repeat_interleave(4, dim=1)[:, :10] + 1e-3  # (batch, seq)
        masked = torch.rand(2, 10, generator=generator) < p
        noisy = ids.masked_fill(masked, MASK)
        labels = ids.masked_fill(~masked, -100)
        with torch.no_grad():  # the reference's mean over (1, 10) token slots, times 10: each row's sum
            expected += (
                torch.stack(
                    [
                        per_block_reference_loss(model, noisy[b : b + 1], labels[b : b + 1], p[b : b + 1], 4)
                        for b in range(2)
                    ]
                )
                * 10
            )
    torch.testing.assert_close(got, expected / 3)


def test_elbo_of_a_context_free_block_model_is_unbiased():
    log_q = torch.log_softmax(torch.randn(8, generator=torch.Generator().manual_seed(0)), dim=0)
    ids = torch.randint(0, 7, (4, 64), generator=torch.Generator().manual_seed(1))
    estimate = elbo_nll(ContextFreeBlockModel(log_q, block_size=8), ids, num_samples=256, seed=0)
    torch.testing.assert_close(estimate, -log_q[ids].sum(1), rtol=0.05, atol=0.0)


@torch.no_grad()
def in_order_reference(model, ids, block_size, scored):
    """`-log p(x)` of each row, one position at a time: position i is predicted with the clean tokens before it
    and the scored positions of its block from i on masked (a full model: every scored position from i on)."""
    batch, seq = ids.shape
    total = torch.zeros(batch)
    for b in range(batch):
        for i in range(seq):
            if not scored[b, i]:
                continue
            later = torch.arange(seq) >= i
            same_block = torch.arange(seq) // block_size == i // block_size
            noisy = ids[b].masked_fill(later & same_block & scored[b], MASK)[None]
            clean = {"clean_input_ids": ids[b : b + 1]} if model.config.block_size else {}
            logits = model(input_ids=noisy, **clean).logits[0, i]
            total[b] += -torch.log_softmax(logits.float(), dim=-1)[ids[b, i]]
    return total


@pytest.mark.parametrize("block_size", [4, 3, None])
def test_in_order_nll_is_the_chain_rule_one_position_at_a_time(block_size):
    model = tiny_model(block_size=block_size, initializer_range=0.2)
    ids = random_ids(batch=2, seq=10)
    scored = torch.ones_like(ids, dtype=torch.bool)
    scored[:, 0] = False  # the first token is context, as an autoregressive perplexity has it
    scored[1, 5] = False  # a clean position inside a block stays clean context
    expected = in_order_reference(model, ids, block_size or 10, scored)
    torch.testing.assert_close(in_order_nll(model, ids, scored_mask=scored), expected)


def test_in_order_perplexity_scores_the_tokens_an_autoregressive_perplexity_scores():
    model = tiny_model(block_size=4, initializer_range=0.2)
    ids = random_ids(batch=3, seq=8)
    result = in_order_perplexity(model, ids, batch_size=2, show_progress=False)
    assert result["num_tokens"] == 3 * 7
    scored = torch.ones_like(ids, dtype=torch.bool)
    scored[:, 0] = False
    expected = in_order_reference(model, ids, 4, scored).sum() / 21
    assert math.isclose(result["nll"], float(expected), rel_tol=1e-5)
    assert math.isclose(result["perplexity"], math.exp(result["nll"]))
    with pytest.raises(ValueError, match="no token to score"):
        in_order_perplexity(model, ids[:, :1], show_progress=False)
