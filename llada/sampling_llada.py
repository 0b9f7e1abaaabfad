"""The steps of LLaDA's sampler as pure functions: tensors in, tensors out, no model.

Read in the order a denoising step uses them: the schedule (`block_schedule`, `num_transfer_tokens`), the logits
a step may choose from (`constrain_logits`, `filter_logits`, classifier-free guidance), the candidate tokens
(`gumbel_max_tokens`, `inverse_cdf_tokens`), how sure the model is of each (`REMASKING_STRATEGIES`, a registry of
confidence functions), which positions are committed (`select_transfer`, `parallel_transfer_count`,
`denoise_block`, `masked_slots`). `generation_llada` runs them in its loop over blocks and steps;
the prompt batch and the canvas are made in `prepare_llada`, and the rows that still run, the EOS handling of
finished rows and the random streams the draws come from are in `rows_llada`.

Conventions (documented once, relied upon by the tests):

- Steps per block: `steps` is spread over the blocks, the first `steps % num_blocks` blocks getting one step more;
  `steps < num_blocks` is an error. A block stops early once nothing is left to decode in it (e.g. `steps` larger
  than `block_length`), so `steps` is an upper bound.
- Tokens per step: with `m` masked positions left in the block and `s` steps left, a step commits `ceil(m / s)`
  tokens, which is LLaDA's `get_num_transfer_tokens` (`M // S`, plus one for the first `M % S` steps). With
  `remask_ratio=r` every step predicts all `m` masked positions and re-masks the `floor(r * m)` least confident
  (or random) ones, i.e. commits `m - floor(r * m)`; the block's last step commits everything.
- Random draws, in this order at each step: (1) if `temperature > 0`, uniform float64 noise of shape
  (block_length, vocab) per row for the Gumbel-max (shape (block_length,) with `token_sampling="inverse_cdf"`); (2) if
  `remasking == "random"`, uniform float64 confidences of
  shape (block_length,) per row. With `seed`, each row draws from its own stream ([`RandomDraws.per_row`]: seeded
  from `seed` and the row's index among the copies of its prompt), and only at steps where it has a masked
  position in the current block: a row's sample does not depend on its companions in the batch, with or without
  caches, thresholds or guidance. With a `generator`, one stream serves the batch: each draw is made for the whole
  batch at once, (batch, block_length, vocab) then (batch, block_length), as LLaDA does.
- Ties in confidence go to the lower position (stable sort). The mask token is never proposed as x0.
- Parallel decoding (`threshold` / `factor`): a step commits `max(scheduled count, parallel count)` per row, so
  `threshold=1.0` is the scheduled algorithm and with `steps = block_length` per block it is Fast-dLLM's rule
  (everything above the threshold, at least one). A block ends once no running row has a masked position in it.
- Rows whose generated part holds no masked position leave the forward batch (and the cache) for good; with one
  stream for the batch the draws stay aligned because they are made for the whole batch and indexed.

This is a Hub file: it imports only the standard library, torch and its sibling Hub files.
"""

import math
from typing import Callable, Dict, Optional

import torch

from .rows_llada import as_draws

# ----------------------------------------------------------------------------------------------------------------
# Schedule


def block_schedule(
    max_new_tokens: int, block_length: Optional[int], steps: Optional[int], length_name: str = "max_new_tokens"
):
    """Splits the generation into blocks and spreads `steps` over them.

    Returns `(block_length, steps_per_block)`: the first `steps % num_blocks` blocks get one step more than the
    others. Raises `ValueError` when `block_length` does not divide `max_new_tokens` or `steps < num_blocks`; the
    messages call the length `length_name`.
    """
    block_length = max_new_tokens if block_length is None else block_length
    if max_new_tokens % block_length != 0:
        raise ValueError(f"`{length_name}` ({max_new_tokens}) must be a multiple of `block_length` ({block_length}).")
    num_blocks = max_new_tokens // block_length
    steps = max_new_tokens if steps is None else steps
    if steps < num_blocks:
        raise ValueError(
            f"`steps` ({steps}) must be at least the number of blocks, {length_name} / block_length = "
            f"{max_new_tokens} / {block_length} = {num_blocks}: every block needs a step."
        )
    base, extra = divmod(steps, num_blocks)
    return block_length, [base + (1 if block < extra else 0) for block in range(num_blocks)]


def num_transfer_tokens(masked_count: torch.Tensor, steps_left: int, remask_ratio: Optional[float] = None):
    """Tokens to commit this step per row, (batch,) -> (batch,).

    Linear schedule: `ceil(m / s)` for m masked positions and s steps left, which reproduces LLaDA's
    `get_num_transfer_tokens` (`M // S`, plus one for the first `M % S` steps). With `remask_ratio=r`:
    `m - floor(r * m)`. The last step (`steps_left <= 1`) commits everything.
    """
    if steps_left <= 1:
        return masked_count
    if remask_ratio is None:
        return (masked_count + steps_left - 1) // steps_left
    return masked_count - torch.floor(masked_count.double() * remask_ratio).long()


# ----------------------------------------------------------------------------------------------------------------
# Logits: what a step may choose from


def as_id_list(token_ids) -> list:
    """`None`, one id or a list/tuple of ids (as `eos_token_id` may be) -> a list of ids."""
    if token_ids is None:
        return []
    return list(token_ids) if isinstance(token_ids, (list, tuple)) else [token_ids]


def constrain_logits(
    block_logits: torch.Tensor, mask_token_id: int, eos_token_ids=(), min_new_tokens: int = 0, block_offset: int = 0
) -> torch.Tensor:
    """Float32 copy of a block's logits (batch, n, vocab) in which the mask token can never be chosen, nor EOS in
    the first `min_new_tokens` generated positions (the block starts `block_offset` tokens into the generation)."""
    block_logits = block_logits.to(torch.float32, copy=True)
    block_logits[..., mask_token_id] = float("-inf")
    eos_ids = as_id_list(eos_token_ids)
    forbidden = min(max((min_new_tokens or 0) - block_offset, 0), block_logits.shape[1])
    if forbidden and eos_ids:
        block_logits[:, :forbidden, eos_ids] = float("-inf")
    return block_logits


def filter_logits(
    logits: torch.Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None, temperature: float = 0.0
) -> torch.Tensor:
    """Sets logits outside the top-k / nucleus to -inf, (..., vocab) -> (..., vocab).

    The nucleus is taken on `softmax(logits / temperature)` (on the raw logits when temperature is 0) and always
    keeps the most likely token.
    """
    if top_k:
        kth_largest = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        scaled = scale_logits(logits, temperature) if temperature > 0 else logits
        logits = logits.masked_fill(~nucleus_allowed(scaled, top_p), float("-inf"))
    return logits


def nucleus_allowed(scores: torch.Tensor, top_p: float, width: float = 1 / 16, buckets: int = 320) -> torch.Tensor:
    """The nucleus of `softmax(scores)`, (..., vocab) -> (..., vocab) bool: the most probable tokens, each kept
    while the probability of the tokens ranked before it is below `top_p` (so the most probable one always).

    Without sorting the vocabulary (the largest cost of a sampled step on a CPU): the tokens are put in buckets of
    `width` nats of log-probability below the row's most probable one; the bucket in which the cumulative mass
    reaches `top_p` is the only one whose tokens need ranking, and only they are (a top-k of that bucket's size).
    The same tokens as a sort of the whole row, up to rounding exactly at the boundary.
    """
    return _nucleus(scores, top_p, width, buckets)[0]


def _nucleus(scores: torch.Tensor, top_p: float, width: float = 1 / 16, buckets: int = 320):
    """[`nucleus_allowed`] and the probabilities `softmax(scores)` it computed on the way: `(allowed, probs)`, both
    (..., vocab)."""
    scores = scores.float()
    # (..., vocab) log-probability below the best, in buckets (inf: forbidden, the last bucket); 0: the most probable
    bucket = (scores.amax(dim=-1, keepdim=True) - scores).mul_(1 / width).clamp_(max=buckets - 1).long()
    probs = scores.softmax(dim=-1)
    mass = probs.new_zeros((*probs.shape[:-1], buckets)).scatter_add_(-1, bucket, probs)  # (..., buckets)
    reached = mass.cumsum(dim=-1)  # the mass of buckets 0..b
    boundary = (reached < top_p).sum(dim=-1, keepdim=True).clamp(max=buckets - 1)  # (..., 1)
    allowed = bucket < boundary
    in_boundary = bucket == boundary
    ranked = int(in_boundary.sum(dim=-1, dtype=torch.int32).max())
    values, index = torch.where(in_boundary, probs, -1.0).topk(ranked, dim=-1)
    ranked_before = (reached - mass).gather(-1, boundary) + values.cumsum(dim=-1) - values  # mass before each
    keep = (values >= 0) & (ranked_before < top_p)  # (..., m); -1: filler for rows with fewer tokens there
    return allowed | torch.zeros_like(allowed).scatter(-1, index, keep), probs


def allowed_columns(logits: torch.Tensor, most: float = 1 / 8):
    """The allowed (finite) tokens of filtered logits ([`filter_logits`]) as a few columns per row: `(values, index)`,
    both (..., c), each row's c highest logits and their token ids, c the largest allowed count of a row (rows with
    fewer get -inf columns); None when c is above `most` of the vocabulary (the whole vocabulary is then as cheap).

    Every allowed token is a column, so a sample or a confidence of the filtered distribution taken on the columns
    is the one taken on the whole vocabulary, at a fraction of the cost when the top-k / nucleus is small.
    """
    count = int(torch.isfinite(logits).sum(dim=-1).max())
    if count > most * logits.shape[-1]:
        return None
    return logits.topk(count, dim=-1)


def guidance_inputs(
    input_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    mask_token_id: int,
    attention_mask: Optional[torch.Tensor] = None,
    position_ids: Optional[torch.Tensor] = None,
    drop_prompt: bool = False,
):
    """The batch of a classifier-free-guided pass: the inputs, then their copy with the prompt masked.

    `input_ids` (batch, seq) -> (2 * batch, seq); `attention_mask` and `position_ids` (None passes) are repeated.
    With `drop_prompt=True` the copy keeps its tokens but its prompt is left out of attention (padding) instead:
    the unconditional context of a block diffusion model, whose earlier blocks are never masked in training.
    Returns `(input_ids, attention_mask, position_ids)`; [`guided_logits`] combines the logits of that batch.
    """
    both_positions = None if position_ids is None else torch.cat([position_ids, position_ids])
    if drop_prompt:
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        both_masks = torch.cat([attention_mask, attention_mask.masked_fill(prompt_mask, 0)])  # (2 * batch, seq)
        return torch.cat([input_ids, input_ids]), both_masks, both_positions
    unconditional = input_ids.masked_fill(prompt_mask, mask_token_id)  # (batch, seq)
    both_masks = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    return torch.cat([input_ids, unconditional]), both_masks, both_positions


def guided_logits(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """Classifier-free guidance (LLaDA): `u + (w + 1)(c - u)` from the logits of a [`guidance_inputs`] batch,
    (2 * batch, ..., vocab) -> (batch, ..., vocab), with c the conditional and u the prompt-masked half."""
    conditional_logits, unconditional_logits = logits.chunk(2)
    return unconditional_logits + (cfg_scale + 1) * (conditional_logits - unconditional_logits)


# ----------------------------------------------------------------------------------------------------------------
# Candidates and their confidence


def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`logits / temperature`, forbidden tokens (-inf) staying forbidden; at an infinite temperature every allowed
    token gets the same score 0."""
    if math.isinf(temperature):
        return torch.where(torch.isneginf(logits), logits, torch.zeros_like(logits))
    return logits / temperature


def gumbel_max_tokens(
    logits: torch.Tensor,
    temperature: float,
    randomness=None,
    rows=None,
    active=None,
    columns: Optional[torch.Tensor] = None,
    vocab_size: Optional[int] = None,
) -> torch.Tensor:
    """Candidate tokens x0, (batch, n, vocab) -> (batch, n).

    Temperature 0 is the argmax. Otherwise the Gumbel-max trick in float64, `argmax(l / T + G)` with
    `G = -log(-log U)`, which samples from `softmax(l / T)`. It is LLaDA's `argmax exp(l) / (-log U)^T` taken in
    log space: the same tokens, but no overflow of `exp(l)` or of the power at large logits or temperatures, so
    a very high temperature draws uniformly from the allowed tokens and `inf` is exactly uniform.

    `columns` (batch, n, c), with `vocab_size`: `logits` (batch, n, c) are those of these token ids only (every
    other token forbidden, see [`allowed_columns`]); the draws are still made for the whole vocabulary, so the
    sample is the one of the whole vocabulary's logits, and the result is a column index (batch, n) into them.
    """
    if temperature == 0:
        return logits.max(dim=-1).indices  # the first maximum, as argmax, in less time on a CPU
    logits = logits.to(torch.float64)
    shape = logits.shape if columns is None else (*logits.shape[:-1], vocab_size)
    uniform = as_draws(randomness).uniform(shape, logits.device, rows, active)  # (batch, n, vocab)
    if columns is not None:
        uniform = uniform.gather(-1, columns)  # (batch, n, c)
    gumbel = -torch.log(-torch.log(uniform))
    return (scale_logits(logits, temperature) + gumbel).argmax(dim=-1)


def inverse_cdf_tokens(
    logits: torch.Tensor, temperature: float, randomness=None, rows=None, active=None
) -> torch.Tensor:
    """Candidate tokens x0 sampled from `softmax(l / T)` with ONE float64 uniform per position, (batch, n, vocab) ->
    (batch, n): the token whose interval of the cumulative distribution, in vocabulary order, holds `U`.

    The same distribution as [`gumbel_max_tokens`] (whose draws are a uniform per position and token: most of a
    sampled step's cost on a CPU for a 4096-token vocabulary), another realisation of it. Temperature 0 is the
    argmax. Forbidden tokens (-inf) have empty intervals and are never drawn.
    """
    if temperature == 0:
        return logits.max(dim=-1).indices
    probs = scale_logits(logits.to(torch.float64), temperature).softmax(dim=-1)  # (batch, n, vocab)
    return _inverse_cdf_draw(probs, randomness, rows, active)[0]


def _inverse_cdf_draw(weights: torch.Tensor, randomness=None, rows=None, active=None, chunk: int = 64):
    """One token per position drawn in proportion to `weights` (batch, n, vocab), not necessarily normalised (zero:
    never drawn), by one uniform each: `(x0, total)`, (batch, n) and the (batch, n, 1) float64 sum of the weights.

    The token is the first whose cumulative weight, in vocabulary order and in float64, exceeds `U * total`. It is
    found in two levels instead of one cumulative sum over the vocabulary in float64: the cumulative weight of
    chunks of `chunk` tokens picks the chunk, then the one chunk's cumulative weights pick the token.
    """
    uniform = as_draws(randomness).uniform(weights.shape[:-1], weights.device, rows, active)  # (batch, n)
    vocab = weights.shape[-1]
    if vocab % chunk or vocab < 4 * chunk:  # a vocabulary that does not cut into chunks: one level
        cdf = weights.to(torch.float64).cumsum(dim=-1)
        total = cdf[..., -1:]  # (batch, n, 1)
        return torch.searchsorted(cdf, _below(uniform, total), right=True).squeeze(-1), total
    chunks = weights.unflatten(-1, (vocab // chunk, chunk))  # (batch, n, chunks, chunk)
    chunk_mass = chunks.sum(dim=-1, dtype=torch.float64)  # (batch, n, chunks)
    chunk_cdf = chunk_mass.cumsum(dim=-1)
    total = chunk_cdf[..., -1:]  # (batch, n, 1)
    target = _below(uniform, total)
    picked = torch.searchsorted(chunk_cdf, target, right=True)  # (batch, n, 1): a chunk of positive weight
    before = (chunk_cdf.gather(-1, picked) - chunk_mass.gather(-1, picked)).clamp(max=target)  # mass before it
    inside = chunks.gather(-2, picked.unsqueeze(-1).expand(*picked.shape, chunk)).squeeze(-2)  # (batch, n, chunk)
    inside = inside.to(torch.float64).cumsum(dim=-1)
    column = torch.searchsorted(inside, target - before, right=True)  # (batch, n, 1)
    # rounding (the chunk's sum in another order) can leave the remainder at the chunk's end: its last token of
    # positive weight, the first to reach the chunk's cumulative maximum
    last = (inside < inside[..., -1:]).sum(dim=-1, keepdim=True)
    return (picked * chunk + torch.minimum(column, last)).squeeze(-1), total


def _below(uniform: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """`U * total` (batch, n, 1), kept below the total when the product rounds up to it: the first token whose
    cumulative weight exceeds it then always exists and has a positive weight."""
    return torch.minimum(uniform.unsqueeze(-1) * total, torch.nextafter(total, torch.zeros_like(total)))


def inverse_cdf_nucleus(
    logits: torch.Tensor, top_p: Optional[float], temperature: float, randomness=None, rows=None, active=None
):
    """[`inverse_cdf_tokens`] on the nucleus of `softmax(logits / T)` ([`filter_logits`] with `top_p`) in fewer
    passes over the vocabulary: the tokens are drawn from the probabilities computed for finding the nucleus, the
    nucleus's share of them (the renormalised distribution), with no filtered logits and no second softmax.
    Temperature > 0.

    Returns `(x0, allowed, probability)`: the candidates (batch, n), the nucleus (batch, n, vocab) bool (None
    without a top-p) and each candidate's probability under the filtered, tempered distribution (batch, n).
    """
    scaled = scale_logits(logits.float(), temperature)  # (batch, n, vocab)
    if top_p is not None and top_p < 1.0:
        allowed, probs = _nucleus(scaled, top_p)
        probs = torch.where(allowed, probs, 0.0)
    else:
        allowed, probs = None, scaled.softmax(dim=-1)
    x0, total = _inverse_cdf_draw(probs, randomness, rows, active)
    return x0, allowed, (probs.gather(-1, x0.unsqueeze(-1)) / total).squeeze(-1).float()


# name -> candidate tokens (logits (batch, n, vocab), temperature, randomness, rows, active) -> (batch, n); the
# allowed values of `token_sampling` are the keys
TOKEN_SAMPLERS: Dict[str, Callable] = {"gumbel": gumbel_max_tokens, "inverse_cdf": inverse_cdf_tokens}


def low_confidence(logits, x0, randomness=None, rows=None, active=None) -> torch.Tensor:
    """p(x0), the probability of the candidate (LLaDA's "low_confidence" remasking re-masks the lowest)."""
    return logits.float().softmax(dim=-1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)


def random_confidence(logits, x0, randomness=None, rows=None, active=None) -> torch.Tensor:
    """A uniform draw per position (LLaDA's "random" remasking)."""
    return as_draws(randomness).uniform(x0.shape, x0.device, rows, active)


def predictive_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) over the last axis, (..., vocab) -> (...)."""
    return torch.special.entr(logits.float().softmax(dim=-1)).sum(dim=-1)


def negative_entropy(logits, x0, randomness=None, rows=None, active=None) -> torch.Tensor:
    """Minus the entropy of p (Dream's "entropy")."""
    return -predictive_entropy(logits)


def top2_margin(logits, x0, randomness=None, rows=None, active=None) -> torch.Tensor:
    """Top-1 minus top-2 probability (Dream's "margin"); a single candidate column (a nucleus of one token) has
    nothing second to it, so its margin is its probability."""
    probs = logits.float().softmax(dim=-1)
    if probs.shape[-1] < 2:
        return probs[..., 0]
    top2 = probs.topk(2, dim=-1).values  # (batch, n, 2)
    return top2[..., 0] - top2[..., 1]


def left_to_right(logits, x0, randomness=None, rows=None, active=None) -> torch.Tensor:
    """Minus the position: the leftmost masked position commits first (in order, as an autoregressive model writes;
    one token per step with `steps = max_new_tokens`, the order `evaluation.in_order_nll` scores). A threshold or
    factor never fires on it (its confidences are not probabilities)."""
    return -torch.arange(x0.shape[-1], device=x0.device, dtype=torch.float32).expand(x0.shape)


# name -> confidence(logits (batch, n, vocab), x0 (batch, n), randomness, rows, active) -> (batch, n); higher commits
# first (`randomness`, `rows`, `active`: see `RandomDraws.uniform`).
# The allowed values of `remasking` are the keys; a strategy registered here is accepted everywhere.
REMASKING_STRATEGIES: Dict[str, Callable] = {
    "low_confidence": low_confidence,
    "random": random_confidence,
    "entropy": negative_entropy,
    "margin": top2_margin,
    "left_to_right": left_to_right,
}


def token_confidence(
    logits: torch.Tensor, x0: torch.Tensor, remasking: str, randomness=None, rows=None, active=None
) -> torch.Tensor:
    """How sure the model is of each candidate, (batch, n, vocab), (batch, n) -> (batch, n), by the strategy
    `remasking` of [`REMASKING_STRATEGIES`]."""
    strategy = REMASKING_STRATEGIES.get(remasking)
    if strategy is None:
        raise ValueError(f"`remasking` must be one of {tuple(REMASKING_STRATEGIES)}, got {remasking!r}.")
    return strategy(logits, x0, randomness, rows, active)


# ----------------------------------------------------------------------------------------------------------------
# Which positions a step commits


def select_transfer(confidence: torch.Tensor, num_transfer: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, n): each row's `num_transfer[b]` most confident positions; ties go to the lower index.

    Not-eligible positions must carry -inf, and `num_transfer` must not exceed the eligible count of its row.
    One stable sort for the whole batch: no loop over rows, and a per-row count (threshold decoding) fits as is.
    """
    order = confidence.argsort(dim=-1, descending=True, stable=True)  # (batch, n)
    ranks = torch.arange(confidence.shape[-1], device=confidence.device)
    chosen_in_order = ranks.unsqueeze(0) < num_transfer.unsqueeze(-1)  # (batch, n), sorted order
    return torch.zeros_like(chosen_in_order).scatter(-1, order, chosen_in_order)


def parallel_transfer_count(
    confidence: torch.Tensor,
    threshold: Optional[float] = None,
    factor: Optional[float] = None,
    entropy: Optional[torch.Tensor] = None,
    entropy_bound: Optional[float] = None,
) -> torch.Tensor:
    """Parallel decoding counts, (batch, n) -> (batch,); not-eligible positions carry -inf confidence.

    `threshold` (Fast-dLLM): the number of confidences above it. `factor` (Fast-dLLM): the largest n with
    `(n + 1) * (1 - c_n) < factor`, c_n the n-th largest confidence; c_n falls and n + 1 grows with n, so the
    condition holds for a leading run of n and the count is the length of that run. `entropy_bound` (the EB sampler,
    Ben-Hamu et al. 2025): with `entropy` (batch, n) the entropies of the positions' predicted distributions, the
    largest n such that the n most confident positions have `sum(H) - max(H) <= entropy_bound` (a bound on the
    dependence the parallel commit ignores); that sum minus max only grows with n, so again a leading run.
    None of them: zeros (the schedule alone decides).
    """
    if threshold is not None:
        return (confidence > threshold).sum(dim=-1)
    if factor is not None:
        sorted_confidence = confidence.sort(dim=-1, descending=True).values  # (batch, n)
        n = torch.arange(1, confidence.shape[-1] + 1, device=confidence.device, dtype=sorted_confidence.dtype)
        return ((n + 1) * (1 - sorted_confidence) < factor).sum(dim=-1)
    if entropy_bound is not None:
        order = confidence.argsort(dim=-1, descending=True, stable=True)  # (batch, n), as select_transfer ranks
        ranked = entropy.float().masked_fill(torch.isinf(confidence), float("inf")).gather(-1, order)
        excess = ranked.cumsum(dim=-1) - ranked.cummax(dim=-1).values  # (batch, n), non-decreasing
        return (excess <= entropy_bound).sum(dim=-1)
    return torch.zeros(confidence.shape[0], dtype=torch.long, device=confidence.device)


def denoise_block(
    block_logits,
    block_tokens,
    num_transfer,
    mask_token_id,
    temperature=0.0,
    top_k=None,
    top_p=None,
    remasking="low_confidence",
    randomness=None,
    threshold=None,
    factor=None,
    rows=None,
    credit=None,
    token_sampling="gumbel",
    entropy_bound=None,
):
    """One denoising step on the current block.

    Args:
        block_logits (`(batch, n, vocab)`): the model's logits for the block (after guidance and hooks).
        block_tokens (`(batch, n)`): the block's tokens, `mask_token_id` where still masked.
        num_transfer (`(batch,)`): how many masked positions each row commits at least (capped at what is left);
            with `threshold` or `factor` a row commits more when [`parallel_transfer_count`] says so.
        randomness ([`RandomDraws`], `torch.Generator` or None): the source of the random draws.
        rows ([`RunningRows`], *optional*): which rows of the batch these are (see [`RandomDraws.uniform`]); only
            rows with a masked position in the block draw.
        credit (`Callable[[x0, confidence], confidence]`, *optional*): turns the confidences into the scores that
            rank and count the positions, e.g. `rows_llada.ConfidenceCredit.boost` (credit decoding).
        token_sampling (`str`): how a sampled x0 is drawn, a key of [`TOKEN_SAMPLERS`]: `"gumbel"` (Gumbel-max, a
            uniform per position and token) or `"inverse_cdf"` (a uniform per position).
        entropy_bound (`float`, *optional*): entropy-bounded parallel decoding (see [`parallel_transfer_count`]);
            the entropies are those of the model's distributions at the block's positions (`block_logits`).

    Returns: `(new_block_tokens, transfer)`, both `(batch, n)`; `transfer` marks the committed positions.
    """
    masked = block_tokens == mask_token_id  # (batch, n)
    rule = (threshold, factor, predictive_entropy(block_logits) if entropy_bound is not None else None, entropy_bound)
    active = masked.any(dim=-1)  # (batch,): rows with something left to decode draw, the others do not
    if token_sampling == "inverse_cdf" and temperature > 0 and not math.isinf(temperature) and not top_k:
        x0, confidence = _inverse_cdf_step(block_logits, top_p, temperature, remasking, randomness, rows, active)
        return _commit(block_tokens, masked, x0, confidence, num_transfer, rule, credit)
    logits = filter_logits(block_logits, top_k, top_p, temperature)
    # sampling from a small top-k / nucleus: only its columns, not the whole vocabulary (a confidence of the
    # filtered distribution, the one x0 is drawn from at temperature 1, does not see the others)
    filtered = bool(top_k) or (top_p is not None and top_p < 1.0)
    # (inverse-CDF sampling draws one uniform per position, so it gains nothing from the columns: it runs on the
    # whole vocabulary, which costs less than finding them)
    columns = (
        allowed_columns(logits)
        if filtered and temperature > 0 and remasking in POSITIONWISE_STRATEGIES and token_sampling == "gumbel"
        else None
    )
    if columns is None:
        x0 = TOKEN_SAMPLERS[token_sampling](logits, temperature, randomness, rows, active)  # (batch, n)
        confidence = token_confidence(logits, x0, remasking, randomness, rows, active)
    else:
        logits, vocab_ids = columns  # (batch, n, c) each
        column = gumbel_max_tokens(logits, temperature, randomness, rows, active, vocab_ids, block_logits.shape[-1])
        x0 = vocab_ids.gather(-1, column.unsqueeze(-1)).squeeze(-1)  # (batch, n)
        confidence = token_confidence(logits, column, remasking, randomness, rows, active)
    return _commit(block_tokens, masked, x0, confidence, num_transfer, rule, credit)


def _inverse_cdf_step(block_logits, top_p, temperature, remasking, randomness, rows, active):
    """The candidates and confidences of an inverse-CDF step ([`inverse_cdf_nucleus`]); at temperature 1 the
    low-confidence score is the probability the candidate was drawn with, otherwise the strategy runs on the
    filtered logits as in every other step."""
    x0, allowed, probability = inverse_cdf_nucleus(block_logits, top_p, temperature, randomness, rows, active)
    if remasking == "low_confidence" and temperature == 1.0:
        return x0, probability
    logits = block_logits if allowed is None else block_logits.masked_fill(~allowed, float("-inf"))
    return x0, token_confidence(logits, x0, remasking, randomness, rows, active)


def _commit(block_tokens, masked, x0, confidence, num_transfer, rule, credit):
    """The end of [`denoise_block`]: which masked positions take their candidate; `(new_block_tokens, transfer)`.
    `rule`: the arguments of [`parallel_transfer_count`] after the confidences."""
    confidence = confidence.masked_fill(~masked, float("-inf"))  # (batch, n)
    if credit is not None:
        confidence = credit(x0, confidence)
    num_transfer = torch.maximum(num_transfer, parallel_transfer_count(confidence, *rule))
    transfer = select_transfer(confidence, torch.minimum(num_transfer, masked.sum(dim=-1)))
    return torch.where(transfer, x0, block_tokens), transfer


# The strategies whose confidence of a position depends on that position alone (its logits, or its own draw): with
# them a step can run on the masked positions only, see [`masked_slots`]. A strategy registered elsewhere runs on the
# whole block.
POSITIONWISE_STRATEGIES = ("low_confidence", "random", "entropy", "margin", "left_to_right")


def masked_slots(
    block_tokens: torch.Tensor, mask_token_id: int, stale: Optional[torch.Tensor] = None, with_stale: bool = False
) -> torch.Tensor:
    """The positions of a block that a step has to predict, (batch, n) -> (batch, k) indices into the block.

    Each row's masked positions in increasing order, then, to fill the row up to k (the largest masked count in the
    batch), its committed positions: first those marked `stale` (batch, n) bool, if given, then the others, each
    in position order. [`denoise_block`] on the gathered logits and tokens commits what it commits on the whole
    block, with a [`POSITIONWISE_STRATEGIES`] confidence and the draws of [`SlotDraws`]: committed positions are
    never eligible and the masked ones keep their order, so ties still go to the lower position. The committed
    slots come back unchanged when scattered into the block.

    `with_stale=True`: k covers the stale positions too (the largest count of masked or stale positions), so the
    slots of `with_stale=False` are the first columns of these: the window of a pass that recomputes the stale
    positions' keys/values along with the masked ones.
    """
    masked = block_tokens == mask_token_id  # (batch, n)
    rank = (~masked).to(torch.uint8)  # 0 masked, 1 stale, 2 the other committed positions
    running = masked
    if stale is not None:
        rank = rank + (~masked & ~stale).to(torch.uint8)
        running = masked | stale if with_stale else masked
    k = int(running.sum(dim=-1).max())
    order = rank.argsort(dim=-1, stable=True)  # (batch, n): by rank, each rank in position order
    return order[:, :k]


__all__ = [
    "POSITIONWISE_STRATEGIES",
    "REMASKING_STRATEGIES",
    "TOKEN_SAMPLERS",
    "allowed_columns",
    "as_id_list",
    "block_schedule",
    "constrain_logits",
    "denoise_block",
    "filter_logits",
    "guidance_inputs",
    "guided_logits",
    "gumbel_max_tokens",
    "inverse_cdf_nucleus",
    "inverse_cdf_tokens",
    "left_to_right",
    "low_confidence",
    "masked_slots",
    "negative_entropy",
    "nucleus_allowed",
    "num_transfer_tokens",
    "parallel_transfer_count",
    "predictive_entropy",
    "random_confidence",
    "scale_logits",
    "select_transfer",
    "token_confidence",
    "top2_margin",
]
