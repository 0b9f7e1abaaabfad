"""Evaluation of masked-diffusion language models: the ELBO perplexity bound.

- `elbo_nll` / `perplexity_bound`: the ELBO of the masked-diffusion process, an upper bound on the negative
  log-likelihood; its exponential per token is a perplexity bound directly comparable with an autoregressive
  model's perplexity on the same tokens. This is the one implementation; the Trainer's evaluation uses it.
- `masked_token_nll`: `-log p(x_i | x_noisy)` at masked positions (optionally guided), the scorer shared with the
  Monte Carlo likelihoods of `llada.likelihood`.
- `in_order_nll` / `in_order_perplexity`: the exact `-log p(x)` of the model decoded in order (each block left to
  right, one token per step, at temperature 1): a likelihood, not a bound, scored on the same tokens as an
  autoregressive model's perplexity; `block_size` forwards for a block diffusion model.
- `generative_perplexity`: how likely an autoregressive model finds some (generated) sequences.

Each function is self-contained: it needs only a model that maps `input_ids` (and `attention_mask`) to `.logits`.
The diffusion times and masks are those of training, from `diffusion_llada` (`sample_times`, `block_times` and
`resolve_mask_token_id` can be imported from here too).
"""

import inspect
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .diffusion_llada import (
    T_SAMPLING_SCHEMES,
    block_times,
    forward_process,
    in_order_masks,
    position_ids_from_padding,
    resolve_mask_token_id,
    sample_times,
)
from .sampling_llada import guidance_inputs, guided_logits


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

    For a block diffusion model (`config.block_size`) it is BD3-LM's bound
    `-log p(x) = sum_b -log p(x_b | x_<b) <= sum_b E_t [ (1/t) sum_{i in b masked} -log p_theta(x_i | x_b,t, x_<b) ]`:
    every block gets its own `t` (stratified over the draws per block) and is predicted from the clean blocks
    before it, all blocks in one pass (the model's training layout).

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
    mask_token_id = resolve_mask_token_id(model, mask_token_id)
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    batch, seq = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if scored_mask is None:
        scored_mask = attention_mask.bool()
    scored_mask = scored_mask.bool() & attention_mask.bool()  # (batch, seq)

    block_size = block_size_of(model)
    if block_size is None:
        times = sample_times(batch, num_samples, t_sampling, generator)  # (K, batch), drawn on the CPU: reproducible
    else:
        times = block_times(attention_mask.cpu(), block_size, num_samples, t_sampling, generator)  # (K, batch, seq)
    total = torch.zeros(batch, dtype=torch.float64, device=device)
    for t in times:
        noisy_ids, masked_indices, p_mask = forward_process(input_ids, t, mask_token_id, scored_mask, eps, generator)
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

    def score(ids, mask):
        nll = elbo_nll(model, ids, mask, num_samples=num_samples, t_sampling=t_sampling, eps=eps, generator=generator)
        return nll, int(ids.numel() if mask is None else mask.sum().item())

    total_nll, total_tokens = _score_in_batches(
        model, input_ids, attention_mask, batch_size, score, "ELBO perplexity bound", show_progress
    )
    nll_per_token = total_nll / max(total_tokens, 1)
    return {"nll_bound": nll_per_token, "perplexity_bound": math.exp(nll_per_token), "num_tokens": total_tokens}


@torch.no_grad()
def in_order_nll(
    model,
    input_ids: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    scored_mask: Optional[torch.Tensor] = None,
    mask_token_id: Optional[int] = None,
) -> torch.Tensor:
    r"""
    The exact `-log p(x)` of each sequence under the model decoded in order, in nats: `(batch,)`.

    Decoding each block left to right, one token per step, at temperature 1 (`remasking="left_to_right"`,
    `steps = max_new_tokens`) is a generative model of its own, and its likelihood factorises exactly:
    `-log p(x) = sum_i -log p_theta(x_i | x_<i clean, x_>=i masked within the block)`. Unlike the ELBO it is no
    bound, and it scores the tokens an autoregressive perplexity scores (pass `scored_mask` without the first
    token, which nothing predicts). The masked diffusion ELBO is the average of such factorisations over every
    order inside the blocks; this one is the order a block model is decoded in.

    Step `j` masks every scored position whose index inside its block is `>= j` and scores those at `j`, for all
    blocks at once, so a block diffusion model (`config.block_size`) takes `block_size` forwards; a full-attention
    model is one block as long as the sequence (one forward per position: slow for long sequences).

    Args:
        model: a masked-diffusion model (`model(input_ids=..., attention_mask=...).logits`).
        input_ids (`torch.LongTensor` of shape `(batch, seq)`): the clean sequences.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens, 0 for padding.
        scored_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): positions to score (default: the real
            tokens); the others are clean context.
        mask_token_id (`int`, *optional*): defaults to `model.config.mask_token_id`.
    """
    mask_token_id = resolve_mask_token_id(model, mask_token_id)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    scored = attention_mask.bool() if scored_mask is None else scored_mask.bool() & attention_mask.bool()
    block_size = block_size_of(model) or input_ids.shape[1]
    slot = position_ids_from_padding(attention_mask) % block_size  # (batch, seq): the index inside the block
    total = torch.zeros(input_ids.shape[0], dtype=torch.float64, device=input_ids.device)
    for step in range(block_size):
        # (batch, seq) each: this position and the later ones of its block masked, this one scored
        masked, now = in_order_masks(scored, slot, step)
        if not now.any():
            continue
        noisy_ids = input_ids.masked_fill(masked, mask_token_id)
        token_nll = masked_token_nll(model, noisy_ids, input_ids, masked, attention_mask, scored_mask=now)
        total += token_nll.sum(dim=1).double()  # (batch,): the positions at `step` only
    return total.float()


@torch.no_grad()
def in_order_perplexity(
    model,
    input_ids: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    batch_size: int = 16,
    skip_first: bool = True,
    show_progress: bool = True,
) -> dict:
    r"""
    Perplexity of a masked-diffusion model decoded in order (see `in_order_nll`): `exp(sum NLL / scored tokens)`.

    With `skip_first` (default) the first real token of each sequence is context, not scored, so the figure counts
    exactly the tokens of `generative_perplexity` (an autoregressive model's perplexity) on the same sequences.

    Returns:
        `dict` with `nll` (nats per token), `perplexity`, `num_tokens`.
    """

    def score(ids, mask):
        mask = torch.ones_like(ids) if mask is None else mask
        scored = mask.bool()
        if skip_first:
            scored = scored & (mask.long().cumsum(-1) > 1)  # every real token but the first
        return in_order_nll(model, ids, mask, scored), int(scored.sum().item())

    total_nll, total_tokens = _score_in_batches(
        model, input_ids, attention_mask, batch_size, score, "In-order perplexity", show_progress
    )
    if total_tokens == 0:
        raise ValueError("in_order_perplexity: no token to score (every sequence is one token or less).")
    nll_per_token = total_nll / total_tokens
    return {"nll": nll_per_token, "perplexity": math.exp(nll_per_token), "num_tokens": total_tokens}


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
    total_nll, total_tokens = generative_nll(ar_model, sequences, attention_mask, prompt_length, batch_size)
    if total_tokens == 0:
        raise ValueError("generative_perplexity: no token to score (sequences too short for the prompt length).")
    return math.exp(total_nll / total_tokens)


@torch.no_grad()
def generative_nll(
    ar_model,
    sequences: torch.LongTensor,
    attention_mask: Optional[torch.Tensor] = None,
    prompt_length: int = 0,
    batch_size: int = 16,
) -> Tuple[float, int]:
    """The summed next-token NLL (float64) that `ar_model` assigns to the scored tokens of `sequences`, and their
    count: the sums behind [`generative_perplexity`] (same arguments), for callers that combine several passes."""
    device = model_device(ar_model)
    total_nll, total_tokens = 0.0, 0
    for start in range(0, sequences.shape[0], batch_size):
        ids = sequences[start : start + batch_size].to(device)  # (batch, seq)
        mask = (
            torch.ones_like(ids) if attention_mask is None else attention_mask[start : start + batch_size].to(device)
        )
        logits = ar_model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (batch, seq - 1, vocab)
        targets = ids[:, 1:]  # (batch, seq - 1)
        scored = mask[:, 1:].bool()
        scored[:, : max(prompt_length - 1, 0)] = False  # targets before position prompt_length are the prompt
        token_nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (batch, seq - 1)
        total_nll += token_nll[scored].double().sum().item()
        total_tokens += int(scored.sum().item())
    return total_nll, total_tokens


def _score_in_batches(model, input_ids, attention_mask, batch_size, score, desc, show_progress):
    """Runs `score(ids, mask) -> (nll (batch,), scored tokens)` over the sequences in batches on the model's device
    (`mask` None when `attention_mask` is); returns the summed NLL (float64) and the scored token count."""
    device = model_device(model)
    total_nll, total_tokens = 0.0, 0
    for start in tqdm(range(0, input_ids.shape[0], batch_size), desc=desc, disable=not show_progress):
        ids = input_ids[start : start + batch_size].to(device)  # (batch, seq)
        mask = None if attention_mask is None else attention_mask[start : start + batch_size].to(device)
        nll, tokens = score(ids, mask)
        total_nll += nll.double().sum().item()
        total_tokens += tokens
    return total_nll, total_tokens


def block_size_of(model) -> Optional[int]:
    """`config.block_size` of a (possibly DDP-wrapped) model; None for full-attention and autoregressive models."""
    config = getattr(model, "config", None) or getattr(getattr(model, "module", None), "config", None)
    return getattr(config, "block_size", None)


def masked_token_nll(
    model,
    noisy_ids: torch.LongTensor,
    target_ids: torch.LongTensor,
    masked_indices: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    cfg_scale: float = 0.0,
    prompt_mask: Optional[torch.Tensor] = None,
    mask_token_id: Optional[int] = None,
    scored_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""
    `-log p_theta(x_i | x_noisy)` at every masked position (or at those of `scored_mask`, a subset of them), 0
    elsewhere: `(batch, seq)` in float32. Without guidance, only those positions go through the output head when
    the model's `forward` takes `logits_to_keep`.

    With `cfg_scale > 0`, classifier-free guidance (LLaDA): the copy with the prompt (`prompt_mask`) masked too goes
    through the model in the same batch, and the logits are `u + (w + 1)(c - u)`. A block diffusion model predicts
    each block from the clean blocks before it: the noisy rows with the masked positions filled in by the targets.
    """
    scored = masked_indices.bool() if scored_mask is None else scored_mask.bool() & masked_indices.bool()
    clean = {}
    if block_size_of(model) is not None:
        clean["clean_input_ids"] = torch.where(masked_indices.bool(), target_ids, noisy_ids)  # (batch, seq)
    if cfg_scale > 0:
        if prompt_mask is None:
            raise ValueError("`cfg_scale` > 0 needs `prompt_mask` (the positions masked for the unconditional copy).")
        mask_token_id = resolve_mask_token_id(model, mask_token_id)
        both_ids, both_mask, _ = guidance_inputs(noisy_ids, prompt_mask.bool(), mask_token_id, attention_mask)
        if clean:  # the unconditional copy's context has its prompt masked too
            clean_ids = clean["clean_input_ids"]
            clean["clean_input_ids"] = torch.cat([clean_ids, clean_ids.masked_fill(prompt_mask.bool(), mask_token_id)])
        both = model(input_ids=both_ids, attention_mask=both_mask, **clean).logits  # (2 * batch, seq, vocab)
        logits = guided_logits(both.float(), cfg_scale)  # (batch, seq, vocab)
    elif _keeps_logits(model):  # only the scored positions go through the vocabulary-wide output head
        return _kept_token_nll(model, noisy_ids, target_ids, scored, attention_mask, clean)
    else:
        logits = model(input_ids=noisy_ids, attention_mask=attention_mask, **clean).logits.float()  # (batch, seq, V)
    token_nll = F.cross_entropy(logits.transpose(1, 2), target_ids, reduction="none")  # (batch, seq)
    return torch.where(scored, token_nll, torch.zeros_like(token_nll))


def _keeps_logits(model) -> bool:
    """Whether `model.forward` takes `logits_to_keep` (this package's models do; a model that does not is scored
    from the logits of every position)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return False


def _kept_token_nll(model, noisy_ids, target_ids, scored, attention_mask, clean) -> torch.Tensor:
    """[`masked_token_nll`] with the output head run at the `scored` positions only: each row's scored positions
    first, padded to the batch's largest count (`logits_to_keep` of shape (batch, k)), then scattered back."""
    count = int(scored.sum(dim=-1).max())
    if count == 0:  # nothing to score: no forward pass
        return torch.zeros(noisy_ids.shape, device=noisy_ids.device)
    kept = scored.to(torch.uint8).argsort(dim=-1, descending=True, stable=True)[:, :count]  # (batch, k)
    logits = model(
        input_ids=noisy_ids, attention_mask=attention_mask, logits_to_keep=kept, **clean
    ).logits.float()  # (batch, k, vocab)
    kept_nll = F.cross_entropy(logits.transpose(1, 2), target_ids.gather(1, kept), reduction="none")  # (batch, k)
    token_nll = torch.zeros(noisy_ids.shape, dtype=kept_nll.dtype, device=kept_nll.device)
    return token_nll.scatter(1, kept, torch.where(scored.gather(1, kept), kept_nll, 0.0))


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


__all__ = [
    "T_SAMPLING_SCHEMES",
    "block_size_of",
    "block_times",
    "elbo_nll",
    "generative_nll",
    "generative_perplexity",
    "masked_token_nll",
    "perplexity_bound",
    "resolve_mask_token_id",
    "sample_times",
]
