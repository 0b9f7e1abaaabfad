"""Monte Carlo likelihoods of a masked-diffusion model: LLaDA's estimate of `log p(answer | prompt)` and multiple
choice built on it.

- `answer_nll_samples` / `monte_carlo_log_likelihood`: each draw masks k of the L answer tokens (k stratified over
  the draws), scores the masked ones and weights them by L/k, with optional classifier-free guidance; in
  expectation minus the ELBO of the answer, a lower bound on `log p(answer | prompt)`.
- `score_multiple_choice`: the choices of a question share the same random draws; `is_greedy_answer` is lm-eval's
  `is_greedy` for a masked-diffusion model.

Each function needs only a model that maps `input_ids` (and `attention_mask`) to `.logits`.
"""

from typing import Optional

import torch

from .diffusion_llada import K_SAMPLING_SCHEMES, resolve_mask_token_id, sample_mask_counts, uniform_count_masks
from .evaluation import masked_token_nll, model_device


@torch.no_grad()
def answer_nll_samples(
    model,
    prompt_ids,
    answer_ids,
    num_samples: int = 128,
    batch_size: int = 32,
    cfg_scale: float = 0.0,
    k_sampling: str = "stratified",
    mask_token_id: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> torch.Tensor:
    r"""
    Monte Carlo draws of LLaDA's bound on `-log p(answer | prompt)`, each unbiased, shape
    `(num_samples,)`; their mean is the estimate (`monte_carlo_log_likelihood` negates it).

    Each draw picks `k ~ U{1..L}` (`L` = answer length), masks `k` answer positions chosen uniformly at random (the
    prompt is never masked) and scores `(L / k) * sum_masked -log p_theta(answer_i | prompt, masked answer)`
    (Nie et al. 2025). Its expectation is the masked-diffusion ELBO of the answer; this `L/k` form has lower
    variance than sampling a continuous `t`. For a model whose predictions ignore the context, the bound is exact.

    Args:
        model: maps `input_ids` to `.logits` `(batch, seq, vocab)`; `model.config.mask_token_id` unless given.
        prompt_ids, answer_ids: 1-D token ids (lists or tensors); the prompt may be empty.
        num_samples (`int`): Monte Carlo draws; the standard error falls as `1 / sqrt(num_samples)`.
        batch_size (`int`): draws per forward pass (twice as many rows with `cfg_scale > 0`).
        cfg_scale (`float`): classifier-free guidance weight `w` (0 disables it).
        k_sampling (`str`): `"stratified"` (default, lower variance) or `"uniform"`; see `sample_mask_counts`.
        generator (`torch.Generator`) or seed (`int`): fixes the draws (default seed 0), so scores are reproducible
            and several answers to one prompt can share them (common random numbers).
    """
    mask_token_id = resolve_mask_token_id(model, mask_token_id)
    prompt_ids, answer_ids = torch.as_tensor(prompt_ids).long().flatten(), torch.as_tensor(answer_ids).long().flatten()
    if answer_ids.numel() == 0:
        raise ValueError("`answer_ids` must contain at least one token.")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    device = model_device(model)
    prompt_len, answer_len = prompt_ids.numel(), answer_ids.numel()
    sequence = torch.cat([prompt_ids, answer_ids]).to(device)  # (seq,)
    prompt_mask = (torch.arange(sequence.numel(), device=device) < prompt_len)[None, :]  # (1, seq)

    mask_counts = sample_mask_counts(answer_len, num_samples, k_sampling, generator)  # (K,), drawn on the CPU
    answer_masked = uniform_count_masks(
        torch.ones(num_samples, answer_len, dtype=torch.bool), mask_counts[:, None], generator
    )  # (K, L): k uniformly placed masks per draw
    masked_indices = torch.cat([torch.zeros(num_samples, prompt_len, dtype=torch.bool), answer_masked], 1)

    estimates = []
    for start in range(0, num_samples, batch_size):
        masked = masked_indices[start : start + batch_size].to(device)  # (batch, seq)
        targets = sequence.expand(masked.shape[0], -1)  # (batch, seq)
        noisy_ids = targets.masked_fill(masked, mask_token_id)
        token_nll = masked_token_nll(
            model,
            noisy_ids,
            targets,
            masked,
            cfg_scale=cfg_scale,
            prompt_mask=prompt_mask.expand_as(masked),
            mask_token_id=mask_token_id,
        )
        weight = answer_len / mask_counts[start : start + batch_size].to(device, torch.float32)  # (batch,) L / k
        estimates.append((token_nll.sum(dim=1) * weight).double().cpu())
    return torch.cat(estimates)


def monte_carlo_log_likelihood(model, prompt_ids, answer_ids, num_samples: int = 128, **kwargs) -> float:
    r"""
    LLaDA's Monte Carlo estimate of `log p(answer | prompt)` (a lower bound in expectation: minus the masked-diffusion
    ELBO of the answer tokens). Keyword arguments as in `answer_nll_samples`.

    Example:

    ```python
    >>> monte_carlo_log_likelihood(model, tokenizer("Paris is the capital of")["input_ids"],
    ...                            tokenizer(" France")["input_ids"], num_samples=64)
    ```
    """
    return -answer_nll_samples(model, prompt_ids, answer_ids, num_samples=num_samples, **kwargs).mean().item()


@torch.no_grad()
def is_greedy_answer(model, prompt_ids, answer_ids, mask_token_id: Optional[int] = None) -> bool:
    r"""
    Whether low-confidence greedy decoding of `len(answer)` masks after the prompt, one token per step (the most
    confident position first), reproduces the answer exactly; lm-eval's `is_greedy` for a masked-diffusion model.
    """
    mask_token_id = resolve_mask_token_id(model, mask_token_id)
    device = model_device(model)
    prompt_ids = torch.as_tensor(prompt_ids).long().flatten().to(device)
    answer_ids = torch.as_tensor(answer_ids).long().flatten().to(device)
    canvas = torch.cat([prompt_ids, torch.full_like(answer_ids, mask_token_id)])[None, :]  # (1, seq)
    answer_slice = slice(prompt_ids.numel(), canvas.shape[1])
    for _ in range(answer_ids.numel()):
        logits = model(input_ids=canvas).logits[0, answer_slice].float()  # (L, vocab)
        logits[:, mask_token_id] = -float("inf")  # the mask is never a prediction
        confidence, prediction = logits.softmax(-1).max(-1)  # (L,), (L,)
        still_masked = canvas[0, answer_slice] == mask_token_id
        position = torch.where(still_masked, confidence, torch.full_like(confidence, -1.0)).argmax()
        if prediction[position] != answer_ids[position]:
            return False
        canvas[0, answer_slice.start + position] = prediction[position]
    return True


def score_multiple_choice(
    model,
    prompt_ids,
    choices,
    num_samples: int = 128,
    length_normalize: bool = False,
    seed: int = 0,
    **kwargs,
) -> dict:
    r"""
    Scores each answer in `choices` by its Monte Carlo log-likelihood given `prompt_ids` and picks the best.

    All choices share the same random draws (common random numbers: the same seed, so the same mask counts and,
    for equal lengths, the same masked positions), which cancels much of the Monte Carlo noise in the comparison.

    Args:
        choices: list of 1-D token id sequences.
        length_normalize (`bool`): rank by log-likelihood per answer token instead of the total.
        kwargs: see `answer_nll_samples` (`batch_size`, `cfg_scale`, `k_sampling`, `mask_token_id`).

    Returns:
        `dict` with `log_likelihoods` (list of floats), `scores` (what was ranked) and `prediction` (index).
    """
    if len(choices) == 0:
        raise ValueError("`choices` must contain at least one answer.")
    log_likelihoods = [
        monte_carlo_log_likelihood(model, prompt_ids, choice, num_samples=num_samples, seed=seed, **kwargs)
        for choice in choices
    ]
    lengths = [torch.as_tensor(choice).numel() for choice in choices]
    scores = [ll / n for ll, n in zip(log_likelihoods, lengths)] if length_normalize else list(log_likelihoods)
    return {"log_likelihoods": log_likelihoods, "scores": scores, "prediction": int(torch.tensor(scores).argmax())}


__all__ = [
    "K_SAMPLING_SCHEMES",
    "answer_nll_samples",
    "is_greedy_answer",
    "monte_carlo_log_likelihood",
    "sample_mask_counts",
    "score_multiple_choice",
]
