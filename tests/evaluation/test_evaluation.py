"""ELBO perplexity bound and generative perplexity."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_model
from llada.evaluation import elbo_nll, generative_perplexity, masked_token_nll, perplexity_bound, sample_times


class ConstantModel(torch.nn.Module):
    """Predicts the same distribution everywhere: its masked CE does not depend on the context."""

    def __init__(self, log_probs):
        super().__init__()
        self.log_probs = torch.nn.Parameter(log_probs, requires_grad=False)
        self.config = SimpleNamespace(mask_token_id=len(log_probs) - 1)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.log_probs.expand(*input_ids.shape, -1))


def test_time_sampling_schemes():
    g = torch.Generator().manual_seed(0)
    stratified = sample_times(3, 8, "stratified", g)
    assert stratified.shape == (8, 3)
    for k in range(8):
        assert ((stratified[k] >= k / 8) & (stratified[k] < (k + 1) / 8)).all()
    antithetic = sample_times(5, 4, "antithetic", g)
    torch.testing.assert_close(antithetic[:2] + antithetic[2:], torch.ones(2, 5))
    with pytest.raises(ValueError, match="even"):
        sample_times(2, 3, "antithetic")
    with pytest.raises(ValueError, match="t_sampling"):
        sample_times(2, 3, "sobol")


def test_elbo_matches_a_hand_computation():
    model = tiny_model()
    ids = torch.randint(2, 98, (2, 10), generator=torch.Generator().manual_seed(1))
    got = elbo_nll(model, ids, num_samples=3, t_sampling="uniform", eps=1e-3, seed=5)

    g = torch.Generator().manual_seed(5)
    times = torch.rand(3, 2, generator=g)
    expected = torch.zeros(2)
    for t in times:
        p = (1 - 1e-3) * t + 1e-3
        masked = torch.rand(2, 10, generator=g) < p[:, None]
        logits = model(input_ids=torch.where(masked, torch.tensor(99), ids)).logits
        ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
        expected += (ce * masked / p[:, None]).sum(1)
    torch.testing.assert_close(got, expected / 3)


@pytest.mark.parametrize("block_size", [None, 4])
def test_scoring_runs_the_head_at_the_scored_positions_only(block_size):
    """With `logits_to_keep` the head sees only the scored positions: the NLLs of the full logits, with padding."""
    model = tiny_model(block_size=block_size)
    calls = []
    model.lm_head.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[1]))
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(2, 98, (3, 12), generator=g)
    attention_mask = torch.ones_like(ids)
    attention_mask[0, :3] = 0  # left padding
    masked = (torch.rand(3, 12, generator=g) < 0.5) & attention_mask.bool()
    noisy = torch.where(masked, torch.tensor(99), ids)
    clean = {} if block_size is None else {"clean_input_ids": ids}
    logits = model(input_ids=noisy, attention_mask=attention_mask, **clean).logits
    expected = torch.where(masked, F.cross_entropy(logits.transpose(1, 2), ids, reduction="none"), 0.0)
    got = masked_token_nll(model, noisy, ids, masked, attention_mask)
    torch.testing.assert_close(got, expected)
    assert calls[-1] == int(masked.sum(-1).max()) < 12
    scored = masked & (torch.arange(12) % 2 == 0)  # a subset: the others stay masked but unscored
    torch.testing.assert_close(
        masked_token_nll(model, noisy, ids, masked, attention_mask, scored_mask=scored),
        torch.where(scored, expected, 0.0),
    )
    assert torch.equal(
        masked_token_nll(model, noisy, ids, masked, attention_mask, scored_mask=masked & False), torch.zeros(3, 12)
    )


def test_elbo_is_reproducible_and_respects_the_scored_positions():
    model = tiny_model()
    ids = torch.randint(2, 98, (3, 12), generator=torch.Generator().manual_seed(2))
    assert torch.equal(elbo_nll(model, ids, num_samples=4, seed=3), elbo_nll(model, ids, num_samples=4, seed=3))
    scored = torch.zeros_like(ids, dtype=torch.bool)
    assert torch.equal(elbo_nll(model, ids, scored_mask=scored), torch.zeros(3))


def test_elbo_of_a_context_free_model_is_unbiased():
    # Each masked token costs -log q(x_i) whatever the context, so E[sum_masked CE / p] = sum_i -log q(x_i).
    log_q = torch.log_softmax(torch.randn(8, generator=torch.Generator().manual_seed(0)), dim=0)
    model = ConstantModel(log_q)
    ids = torch.randint(0, 7, (4, 64), generator=torch.Generator().manual_seed(1))
    exact = -log_q[ids].sum(1)
    estimate = elbo_nll(model, ids, num_samples=64, eps=1e-3, seed=0)
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0.0)
    result = perplexity_bound(model, ids, batch_size=3, num_samples=64, show_progress=False)
    assert result["num_tokens"] == 256
    assert math.isclose(result["perplexity_bound"], math.exp(result["nll_bound"]))
    assert math.isclose(result["nll_bound"], exact.sum().item() / 256, rel_tol=0.05)


class UniformCausalLM(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(vocab))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.weight.expand(*input_ids.shape, -1))


def test_generative_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    ids = torch.randint(0, 50, (3, 20))
    assert math.isclose(generative_perplexity(UniformCausalLM(50), ids), 50.0, rel_tol=1e-6)
    assert math.isclose(generative_perplexity(UniformCausalLM(50), ids, prompt_length=5), 50.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="no token"):
        generative_perplexity(UniformCausalLM(50), ids[:, :3], prompt_length=10)


def test_the_windowed_generative_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    from helpers import script_module

    sliding_perplexity = script_module("sample_quality").sliding_perplexity
    prompts, generated = torch.randint(0, 50, (2, 5)), torch.randint(0, 50, (2, 40))
    for context in (8, 16, 64):  # windows smaller than, and longer than, the sequences
        assert math.isclose(sliding_perplexity(UniformCausalLM(50), prompts, generated, context), 50.0, rel_tol=1e-6)


def test_scoring_without_a_mask_token_is_a_clear_error():
    from llada.likelihood import monte_carlo_log_likelihood

    model = tiny_model()
    model.config.mask_token_id = None
    ids = torch.randint(0, 50, (2, 8))
    for call in (
        lambda: elbo_nll(model, ids),
        lambda: perplexity_bound(model, ids, show_progress=False),
        lambda: monte_carlo_log_likelihood(model, ids[0, :4], ids[0, 4:], num_samples=2),
    ):
        with pytest.raises(ValueError, match="needs its mask token: pass `mask_token_id=`"):
            call()
