"""LLaDA's Monte Carlo log-likelihood: unbiased against exact answers, variance falling with samples, CFG,
multiple-choice scoring and greedy checks."""

import itertools
import math

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import MaskedLMOutput

from helpers import tiny_model
from llada.evaluation import masked_token_nll
from llada.likelihood import (
    answer_nll_samples,
    is_greedy_answer,
    monte_carlo_log_likelihood,
    sample_mask_counts,
    score_multiple_choice,
)


class FixedPredictionModel(nn.Module):
    """Predicts the same distribution at each position whatever the input: logits `table[position]`. Its answer
    log-likelihood is exactly `sum_i log softmax(table[i])[answer_i]`, and the diffusion bound is tight for it."""

    def __init__(self, table: torch.Tensor, mask_token_id: int):
        super().__init__()
        self.table = nn.Parameter(table)
        self.config = type("Config", (), {"mask_token_id": mask_token_id})()

    def forward(self, input_ids, attention_mask=None):
        batch, seq = input_ids.shape
        return MaskedLMOutput(logits=self.table[:seq].expand(batch, seq, -1))


def fixed_model(seq=8, vocab=12, seed=0):
    table = torch.randn(seq, vocab, generator=torch.Generator().manual_seed(seed)) * 2
    return FixedPredictionModel(table, mask_token_id=vocab - 1)


def exact_log_likelihood(model: FixedPredictionModel, prompt, answer) -> float:
    log_probs = model.table.detach().double().log_softmax(-1)
    start = len(prompt)
    return sum(log_probs[start + i, token].item() for i, token in enumerate(answer))


def exact_bound_by_enumeration(model, prompt, answer, cfg_scale=0.0) -> float:
    """E_k E_S [(L/k) sum_{i in S} -log p(x_i | masked by S)] with k ~ U{1..L} and S uniform of size k, by listing
    every non-empty subset S of the answer positions."""
    sequence = torch.tensor(prompt + answer)
    length, start = len(answer), len(prompt)
    subsets = [s for k in range(1, length + 1) for s in itertools.combinations(range(length), k)]
    masked = torch.zeros(len(subsets), sequence.numel(), dtype=torch.bool)
    for row, subset in enumerate(subsets):
        masked[row, [start + i for i in subset]] = True
    targets = sequence.expand(len(subsets), -1)
    prompt_mask = (torch.arange(sequence.numel()) < start).expand_as(masked)
    with torch.no_grad():
        nll = (
            masked_token_nll(
                model,
                targets.masked_fill(masked, model.config.mask_token_id),
                targets,
                masked,
                cfg_scale=cfg_scale,
                prompt_mask=prompt_mask,
            )
            .sum(1)
            .double()
        )
    total = 0.0
    for row, subset in enumerate(subsets):
        k = len(subset)
        total += (1 / length) * (1 / math.comb(length, k)) * (length / k) * nll[row].item()
    return total


def test_mask_counts_are_spread_evenly_and_each_uniform():
    generator = torch.Generator().manual_seed(0)
    for length, samples in [(5, 5), (5, 10), (7, 3), (1, 4)]:
        counts = sample_mask_counts(length, samples, "stratified", generator)
        assert counts.min() >= 1 and counts.max() <= length
        if samples % length == 0:  # every count appears exactly samples / length times
            assert torch.equal(
                torch.bincount(counts, minlength=length + 1)[1:], torch.full((length,), samples // length)
            )
    # each draw is marginally uniform on 1..L: over all offsets, draw j takes every value once
    firsts = {int(sample_mask_counts(7, 3, "stratified", torch.Generator().manual_seed(s))[2]) for s in range(200)}
    assert firsts == set(range(1, 8))


@pytest.mark.parametrize("k_sampling", ["stratified", "uniform"])
def test_unbiased_for_a_model_with_fixed_predictions(k_sampling):
    model = fixed_model()
    prompt, answer = [3, 1, 4], [1, 5, 9, 2, 6]
    exact = exact_log_likelihood(model, prompt, answer)
    draws = -answer_nll_samples(model, prompt, answer, num_samples=20000, batch_size=5000, k_sampling=k_sampling)
    standard_error = draws.std().item() / math.sqrt(draws.numel())
    print(f"{k_sampling}: exact {exact:.4f}, estimate {draws.mean().item():.4f} +- {standard_error:.4f}")
    assert abs(draws.mean().item() - exact) < 4 * standard_error
    assert exact_bound_by_enumeration(model, prompt, answer) == pytest.approx(-exact, abs=1e-5)


@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_unbiased_for_a_real_model_against_enumerated_bound(cfg_scale):
    model = tiny_model(seed=1)
    prompt, answer = [5, 17, 42], [8, 23, 61, 4]
    exact = -exact_bound_by_enumeration(model, prompt, answer, cfg_scale=cfg_scale)
    draws = -answer_nll_samples(model, prompt, answer, num_samples=4000, batch_size=1000, cfg_scale=cfg_scale)
    standard_error = draws.std().item() / math.sqrt(draws.numel())
    print(f"cfg {cfg_scale}: enumerated {exact:.4f}, estimate {draws.mean().item():.4f} +- {standard_error:.4f}")
    assert abs(draws.mean().item() - exact) < 4 * standard_error


def test_variance_falls_with_more_samples():
    model = tiny_model(seed=2)
    prompt, answer = [5, 17], [8, 23, 61, 4, 9, 30]

    def spread(num_samples):
        estimates = torch.tensor(
            [
                monte_carlo_log_likelihood(model, prompt, answer, num_samples=num_samples, batch_size=64, seed=seed)
                for seed in range(30)
            ]
        )
        return estimates.var().item()

    few, many = spread(4), spread(64)
    print(
        f"variance of the estimate over 30 seeds: 4 samples {few:.4f}, 64 samples {many:.5f} "
        f"(ratio {few / many:.1f}, ideal 16)"
    )
    assert few / many > 6


def test_seed_makes_scores_reproducible_and_cfg_zero_is_plain():
    model = tiny_model(seed=3)
    first = monte_carlo_log_likelihood(model, [5, 6], [7, 8, 9], num_samples=16, seed=7)
    assert first == monte_carlo_log_likelihood(model, [5, 6], [7, 8, 9], num_samples=16, seed=7)
    assert first != monte_carlo_log_likelihood(model, [5, 6], [7, 8, 9], num_samples=16, seed=8)
    # a fixed-prediction model ignores the prompt: guidance changes nothing
    fixed = fixed_model()
    plain = monte_carlo_log_likelihood(fixed, [1, 2], [3, 4, 5], num_samples=32)
    assert monte_carlo_log_likelihood(fixed, [1, 2], [3, 4, 5], num_samples=32, cfg_scale=2.0) == pytest.approx(plain)


def test_multiple_choice_picks_the_likeliest_answer():
    model = fixed_model(seq=6, vocab=12, seed=4)
    prompt = [1, 2, 3]
    best = model.table[3:5].argmax(-1).tolist()
    choices = [[(best[0] + 1) % 11, best[1]], best, [(best[0] + 2) % 11, (best[1] + 3) % 11]]
    result = score_multiple_choice(model, prompt, choices, num_samples=64)
    assert result["prediction"] == 1
    exact = [exact_log_likelihood(model, prompt, c) for c in choices]
    assert result["log_likelihoods"] == pytest.approx(exact, abs=0.5)


def test_length_normalisation_ranks_per_token():
    table = torch.zeros(6, 12)
    table[3:, 0] = 3.0  # token 0 likely at every answer position
    model = FixedPredictionModel(table, mask_token_id=11)
    choices = [[0, 0, 0], [5]]  # three likely tokens vs one unlikely: total favours the short one?
    totals = score_multiple_choice(model, [1, 2, 3], choices, num_samples=32)
    normalised = score_multiple_choice(model, [1, 2, 3], choices, num_samples=32, length_normalize=True)
    assert normalised["prediction"] == 0
    assert normalised["scores"][0] == pytest.approx(totals["log_likelihoods"][0] / 3)


def test_is_greedy_answer():
    model = fixed_model(seq=6, vocab=12, seed=5)
    model.table.data[:, 11] = -100.0  # the mask token is never the prediction anyway
    greedy = model.table[2:5].argmax(-1).tolist()
    assert is_greedy_answer(model, [1, 2], greedy)
    assert not is_greedy_answer(model, [1, 2], greedy[:-1] + [(greedy[-1] + 1) % 11])


def test_bad_inputs_fail_clearly():
    model = fixed_model()
    with pytest.raises(ValueError, match="answer_ids"):
        monte_carlo_log_likelihood(model, [1], [])
    with pytest.raises(ValueError, match="k_sampling"):
        monte_carlo_log_likelihood(model, [1], [2], k_sampling="sobol")
    with pytest.raises(ValueError, match="prompt_mask"):
        ids = torch.ones(1, 3, dtype=torch.long)
        masked_token_nll(model, ids, ids, ids.bool(), cfg_scale=1.0)
