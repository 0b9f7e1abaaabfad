"""Evaluation of masked-diffusion language models.

- `elbo_nll` / `perplexity_bound`: the ELBO of the masked-diffusion process, an upper bound on the negative
  log-likelihood; its exponential per token is a perplexity bound directly comparable with an autoregressive
  model's perplexity on the same tokens. This is the one implementation; the Trainer's evaluation uses it.
- `generative_perplexity`: how likely an autoregressive model finds some (generated) sequences.
- `monte_carlo_log_likelihood` / `score_multiple_choice`: LLaDA's Monte Carlo estimate of `log p(answer | prompt)`
  (masked counts stratified over the draws, answer tokens only, weighted by L/k, optional classifier-free
  guidance) and multiple-choice scoring built on it; `is_greedy_answer` for lm-eval's `is_greedy`.

Each function is self-contained: it needs only a model that maps `input_ids` (and `attention_mask`) to `.logits`.
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


T_SAMPLING_SCHEMES = ("stratified", "antithetic", "uniform")


def sample_times(
    batch_size: int, num_samples: int, scheme: str = "stratified", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    r"""
    Diffusion times `t` in (0, 1) for `num_samples` Monte-Carlo draws per sequence, shape `(num_samples, batch)`.

    - `"uniform"`: independent `U(0, 1)`.
    - `"stratified"`: draw k is uniform in `[k / K, (k + 1) / K)`: same mean, lower variance.
    - `"antithetic"`: pairs `(u, 1 - u)`; needs an even `num_samples`.
    """
    if scheme not in T_SAMPLING_SCHEMES:
        raise ValueError(f"`t_sampling` must be one of {T_SAMPLING_SCHEMES}, got {scheme!r}.")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}.")
    uniform = torch.rand(num_samples, batch_size, generator=generator)  # (K, batch)
    if scheme == "uniform":
        return uniform
    if scheme == "stratified":
        strata = torch.arange(num_samples, dtype=uniform.dtype)[:, None]  # (K, 1)
        return (strata + uniform) / num_samples
    if num_samples % 2:
        raise ValueError(f"`t_sampling='antithetic'` needs an even `num_samples`, got {num_samples}.")
    half = uniform[: num_samples // 2]
    return torch.cat([half, 1.0 - half], dim=0)


@torch.no_grad()
def elbo_nll(
    model,
    input_ids: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    scored_mask: Optional[torch.Tensor] = None,
    num_samples: int = 16,
    t_sampling: str = "stratified",
    eps: float = 1e-3,
    mask_token_id: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> torch.Tensor:
    r"""
    Monte-Carlo estimate of the masked-diffusion ELBO: an upper bound on `-log p(x)` of each sequence, in nats.

    `-log p(x) <= E_{t ~ U(0,1)} E_{x_t ~ q(x_t | x)} [ (1/t) sum_{i masked in x_t} -log p_theta(x_i | x_t) ]`
    (LLaDA, Eq. 3-4; Shi et al. 2024; Sahoo et al. 2024). As in training, `t` is mapped to a masking probability
    `p = (1 - eps) t + eps`, which keeps `1/p` finite (the bias is O(eps)). Only positions in `scored_mask` are ever
    masked or scored: with a prompt left clean this bounds `-log p(answer | prompt)`.

    Args:
        model: a masked-diffusion model; `model(input_ids=..., attention_mask=...).logits` is `(batch, seq, vocab)`.
        input_ids (`torch.LongTensor` of shape `(batch, seq)`): the clean sequences.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens, 0 for padding.
        scored_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): positions to bound (default: the real
            tokens).
        num_samples (`int`): Monte-Carlo samples of `t` (and of the mask) per sequence.
        t_sampling (`str`): `"stratified"` (default), `"antithetic"` or `"uniform"`, see `sample_times`.
        eps (`float`): smallest masking probability.
        mask_token_id (`int`, *optional*): defaults to `model.config.mask_token_id`.
        generator (`torch.Generator`, *optional*) or seed (`int`, *optional*): fixes `t` and the masks, so two
            evaluations of the same model give the same number.

    Returns:
        `torch.Tensor` of shape `(batch,)`: the bound on each sequence's negative log-likelihood (summed over its
        scored tokens). Divide by `scored_mask.sum(1)` for nats per token.
    """
    if mask_token_id is None:
        mask_token_id = model.config.mask_token_id
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    batch, seq = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if scored_mask is None:
        scored_mask = attention_mask.bool()
    scored_mask = scored_mask.bool() & attention_mask.bool()  # (batch, seq)

    times = sample_times(batch, num_samples, t_sampling, generator)  # (K, batch), drawn on the CPU: reproducible
    total = torch.zeros(batch, dtype=torch.float64, device=device)
    for t in times:
        p_mask = ((1.0 - eps) * t + eps).to(device)[:, None]  # (batch, 1)
        noise = torch.rand(batch, seq, generator=generator).to(device)  # (batch, seq)
        masked_indices = (noise < p_mask) & scored_mask  # (batch, seq)
        noisy_ids = input_ids.masked_fill(masked_indices, mask_token_id)  # (batch, seq)
        token_nll = masked_token_nll(model, noisy_ids, input_ids, masked_indices, attention_mask)  # 0 where clean
        total += (token_nll / p_mask).sum(dim=1).double()
    return (total / num_samples).float()


@torch.no_grad()
def perplexity_bound(
    model,
    input_ids: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    batch_size: int = 16,
    num_samples: int = 16,
    t_sampling: str = "stratified",
    eps: float = 1e-3,
    seed: int = 0,
    show_progress: bool = True,
) -> dict:
    r"""
    Perplexity bound of a masked-diffusion model on a set of sequences: `exp(sum ELBO / number of tokens)`.

    Since the ELBO bounds `-log p(x)` from above, this bounds the model's true perplexity from above and can be
    compared with an autoregressive perplexity on the same tokens (lower is better for both).

    Args:
        input_ids (`torch.LongTensor` of shape `(num_sequences, seq)`), attention_mask (same shape, *optional*).
        batch_size, num_samples, t_sampling, eps, seed: see `elbo_nll`; one generator seeded with `seed` serves
            all batches, so the result is reproducible.

    Returns:
        `dict` with `nll_bound` (nats per token), `perplexity_bound`, `num_tokens`.
    """
    generator = torch.Generator().manual_seed(seed)
    device = _model_device(model)
    total_nll, total_tokens = 0.0, 0
    for start in tqdm(range(0, input_ids.shape[0], batch_size), desc="ELBO perplexity bound",
                      disable=not show_progress):
        ids = input_ids[start : start + batch_size].to(device)  # (batch, seq)
        mask = None if attention_mask is None else attention_mask[start : start + batch_size].to(device)
        nll = elbo_nll(model, ids, mask, num_samples=num_samples, t_sampling=t_sampling, eps=eps,
                       generator=generator)
        total_nll += nll.double().sum().item()
        total_tokens += int(ids.numel() if mask is None else mask.sum().item())
    nll_per_token = total_nll / max(total_tokens, 1)
    return {"nll_bound": nll_per_token, "perplexity_bound": math.exp(nll_per_token), "num_tokens": total_tokens}


@torch.no_grad()
def generative_perplexity(
    ar_model,
    sequences: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    prompt_length: int = 0,
    batch_size: int = 16,
) -> float:
    r"""
    Perplexity an autoregressive model assigns to `sequences` (e.g. samples of a diffusion model): `exp` of the mean
    next-token negative log-likelihood over the scored tokens.

    Args:
        ar_model: a causal LM (`ar_model(input_ids, attention_mask).logits` is `(batch, seq, vocab)`, position i
            predicting token i + 1).
        sequences (`torch.LongTensor` of shape `(num_sequences, seq)`).
        attention_mask (`torch.Tensor`, *optional*): 1 for real tokens; padding is neither scored nor attended to.
        prompt_length (`int`): the first `prompt_length` tokens are context only (not scored). The first token is
            never scored (nothing predicts it).
    """
    device = _model_device(ar_model)
    total_nll, total_tokens = 0.0, 0
    for start in range(0, sequences.shape[0], batch_size):
        ids = sequences[start : start + batch_size].to(device)  # (batch, seq)
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask[start : start + batch_size].to(device)
        logits = ar_model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (batch, seq - 1, vocab)
        targets = ids[:, 1:]  # (batch, seq - 1)
        scored = mask[:, 1:].bool()
        scored[:, : max(prompt_length - 1, 0)] = False  # targets before position prompt_length are the prompt
        token_nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (batch, seq - 1)
        total_nll += token_nll[scored].double().sum().item()
        total_tokens += int(scored.sum().item())
    if total_tokens == 0:
        raise ValueError("generative_perplexity: no token to score (sequences too short for the prompt length).")
    return math.exp(total_nll / total_tokens)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


__all__ = ["T_SAMPLING_SCHEMES", "elbo_nll", "generative_perplexity", "perplexity_bound", "sample_times"]


# ----------------------------------------------------------------------------------------------------------------
# Monte Carlo log-likelihood of an answer given a prompt (LLaDA's estimator), multiple-choice scoring


K_SAMPLING_SCHEMES = ("stratified", "uniform")


def sample_mask_counts(
    answer_length: int, num_samples: int, scheme: str = "stratified", generator: Optional[torch.Generator] = None
) -> torch.LongTensor:
    r"""
    Numbers of masked answer tokens `k` in `1..L` for `num_samples` Monte Carlo draws, shape `(num_samples,)`.

    Each `k` is marginally uniform on `1..L`, so the estimator stays unbiased whatever the scheme:

    - `"stratified"` (LLaDA's choice): one uniform offset `k0`, then the draws are spread evenly around the cycle
      `1..L`, `k_j = ((k0 - 1 + floor(j L / K)) mod L) + 1`, so a batch covers light and heavy masking alike.
    - `"uniform"`: independent draws.
    """
    if scheme not in K_SAMPLING_SCHEMES:
        raise ValueError(f"`k_sampling` must be one of {K_SAMPLING_SCHEMES}, got {scheme!r}.")
    if not isinstance(answer_length, int) or answer_length < 1:
        raise ValueError(f"The answer must have at least one token, got length {answer_length!r}.")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}.")
    if scheme == "uniform":
        return torch.randint(1, answer_length + 1, (num_samples,), generator=generator)
    offset = torch.randint(0, answer_length, (1,), generator=generator)  # k0 - 1
    spread = torch.arange(num_samples) * answer_length // num_samples  # floor(j L / K)
    return (offset + spread) % answer_length + 1


def masked_token_nll(
    model,
    noisy_ids: torch.LongTensor,
    target_ids: torch.LongTensor,
    masked_indices: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    cfg_scale: float = 0.0,
    prompt_mask: Optional[torch.Tensor] = None,
    mask_token_id: Optional[int] = None,
) -> torch.Tensor:
    r"""
    `-log p_theta(x_i | x_noisy)` at every masked position, 0 elsewhere: `(batch, seq)` in float32.

    With `cfg_scale > 0`, classifier-free guidance (LLaDA): the copy with the prompt (`prompt_mask`) masked too goes
    through the model in the same batch, and the logits are `u + (w + 1)(c - u)`.
    """
    if cfg_scale > 0:
        if prompt_mask is None:
            raise ValueError("`cfg_scale` > 0 needs `prompt_mask` (the positions masked for the unconditional copy).")
        mask_token_id = model.config.mask_token_id if mask_token_id is None else mask_token_id
        unconditional = noisy_ids.masked_fill(prompt_mask.bool(), mask_token_id)  # (batch, seq)
        both_mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
        both = model(input_ids=torch.cat([noisy_ids, unconditional]), attention_mask=both_mask).logits
        conditional_logits, unconditional_logits = both.float().chunk(2, dim=0)  # (batch, seq, vocab) each
        logits = unconditional_logits + (cfg_scale + 1.0) * (conditional_logits - unconditional_logits)
    else:
        logits = model(input_ids=noisy_ids, attention_mask=attention_mask).logits.float()  # (batch, seq, vocab)
    token_nll = F.cross_entropy(logits.transpose(1, 2), target_ids, reduction="none")  # (batch, seq)
    return torch.where(masked_indices.bool(), token_nll, torch.zeros_like(token_nll))


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
    mask_token_id = model.config.mask_token_id if mask_token_id is None else mask_token_id
    prompt_ids, answer_ids = torch.as_tensor(prompt_ids).long().flatten(), torch.as_tensor(answer_ids).long().flatten()
    if answer_ids.numel() == 0:
        raise ValueError("`answer_ids` must contain at least one token.")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    device = _model_device(model)
    prompt_len, answer_len = prompt_ids.numel(), answer_ids.numel()
    sequence = torch.cat([prompt_ids, answer_ids]).to(device)  # (seq,)
    prompt_mask = (torch.arange(sequence.numel(), device=device) < prompt_len)[None, :]  # (1, seq)

    mask_counts = sample_mask_counts(answer_len, num_samples, k_sampling, generator)  # (K,), drawn on the CPU
    # k uniformly placed masks per draw: rank random keys and mask the k smallest
    ranks = torch.rand(num_samples, answer_len, generator=generator).argsort(dim=1).argsort(dim=1)  # (K, L)
    answer_masked = ranks < mask_counts[:, None]  # (K, L)
    masked_indices = torch.cat([torch.zeros(num_samples, prompt_len, dtype=torch.bool), answer_masked], 1)

    estimates = []
    for start in range(0, num_samples, batch_size):
        masked = masked_indices[start : start + batch_size].to(device)  # (batch, seq)
        targets = sequence.expand(masked.shape[0], -1)  # (batch, seq)
        noisy_ids = targets.masked_fill(masked, mask_token_id)
        token_nll = masked_token_nll(model, noisy_ids, targets, masked, cfg_scale=cfg_scale,
                                     prompt_mask=prompt_mask.expand_as(masked), mask_token_id=mask_token_id)
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
    mask_token_id = model.config.mask_token_id if mask_token_id is None else mask_token_id
    device = _model_device(model)
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


__all__ += [
    "K_SAMPLING_SCHEMES",
    "answer_nll_samples",
    "is_greedy_answer",
    "masked_token_nll",
    "monte_carlo_log_likelihood",
    "sample_mask_counts",
    "score_multiple_choice",
]
