"""The masked diffusion process: how clean tokens are noised, and how the model's predictions of them are scored.

Every part of the package that masks tokens (the model's loss, the training collators, the ELBO and the Monte Carlo
likelihoods) takes its masks from here:

- the diffusion time `t`: [`sample_times`] (uniform, stratified or antithetic draws), [`block_times`] (one time
  per block of a block diffusion model), and the masking probability `p = (1 - eps) t + eps`
  ([`masking_probability`]); its discrete form, the number of masked tokens `k` ([`sample_mask_counts`]);
- the masks: [`forward_process`] (LLaDA's: every maskable token independently with probability `p`),
  [`uniform_count_masks`] (`k` tokens chosen uniformly), [`exact_count_masks`] (exactly `k = ceil(t n)` of `n`),
  [`training_masks`] (a batch's draw of `t` and masking scheme, optionally with the complementary masks, which
  score every token once per pair), [`in_order_masks`] / [`in_order_blocks`] (a block masked from a position on,
  scoring that position: the in-order likelihood);
- the loss: [`masked_diffusion_loss`];
- [`position_ids_from_padding`]: positions that count real tokens only, as the model numbers them;
- [`resolve_mask_token_id`]: the mask token of a call, or a clear error.

The maths (Nie et al. 2025, Algorithm 1; Sahoo et al. 2024; Arriola et al. 2025): for a clean sequence draw `t`,
mask each token with probability `p`, and score `sum_masked CE / p`; its expectation over `t` bounds the negative
log-likelihood from above.

This is a Hub file: it imports only the standard library, torch and its sibling Hub files.
"""

from typing import Optional

import torch
import torch.nn.functional as F

from .checks_llada import is_compiling

T_SAMPLING_SCHEMES = ("stratified", "antithetic", "uniform")
MASKING_SCHEMES = ("bernoulli", "exact")
K_SAMPLING_SCHEMES = ("stratified", "uniform")


# ----------------------------------------------------------------------------------------------------------------
# The diffusion time


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


def block_times(
    attention_mask: torch.Tensor,
    block_size: int,
    num_samples: int,
    scheme: str = "stratified",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One diffusion time per block and draw, spread over the block's tokens: `(num_samples, batch, seq)`.

    Blocks are counted as the model counts them (`position_ids // block_size`, positions over real tokens), and
    each block's `num_samples` times follow `scheme` (see `sample_times`), independently across blocks.
    """
    batch, seq = attention_mask.shape
    blocks = position_ids_from_padding(attention_mask) // block_size  # (batch, seq)
    num_blocks = -(-seq // block_size)
    times = sample_times(batch * num_blocks, num_samples, scheme, generator).view(num_samples, batch, num_blocks)
    return times.gather(2, blocks[None].expand(num_samples, batch, seq))  # (K, batch, seq)


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


def masking_probability(t: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """`p = (1 - eps) t + eps`: the masking probability at time `t`, never below `eps` so that `1 / p` is finite."""
    return (1.0 - eps) * t + eps


# ----------------------------------------------------------------------------------------------------------------
# The masks


def bernoulli_masks(
    t: torch.Tensor,
    shape,
    maskable: Optional[torch.Tensor] = None,
    eps: float = 1e-3,
    generator: Optional[torch.Generator] = None,
    device=None,
):
    """Every maskable position of a `shape = (batch, seq)` batch masked independently with the probability
    `p = (1 - eps) t + eps` of its row (or token). Returns `(masked_indices, p_mask)`: `(batch, seq)` bool and
    `(batch, 1)` (per-token times: `(batch, seq)`) probabilities, on `device`. The uniform noise is drawn on the
    generator's device (the CPU by default)."""
    p_mask = masking_probability(t, eps).to(device)
    p_mask = p_mask[:, None] if p_mask.dim() == 1 else p_mask  # (batch, 1) or (batch, seq)
    noise = torch.rand(shape, generator=generator).to(device)  # (batch, seq)
    masked_indices = noise < p_mask  # (batch, seq)
    if maskable is not None:
        masked_indices &= maskable.bool()
    return masked_indices, p_mask


def forward_process(
    input_ids: torch.LongTensor,
    t: torch.Tensor,
    mask_token_id: int,
    maskable: Optional[torch.Tensor] = None,
    eps: float = 1e-3,
    generator: Optional[torch.Generator] = None,
):
    r"""
    LLaDA's forward (masking) process: every maskable token of `input_ids` is replaced by the mask token,
    independently, with probability `p = (1 - eps) t + eps` of its sequence (Nie et al. 2025, Algorithm 1).

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, seq)`): the clean tokens.
        t (`torch.Tensor` of shape `(batch,)` or `(batch, seq)`): each sequence's diffusion time in [0, 1], or each
            token's (block diffusion: the time of its block).
        mask_token_id (`int`): the id written at masked positions.
        maskable (`torch.Tensor` of shape `(batch, seq)`, *optional*): positions that may be masked (default: all).
        eps (`float`, *optional*, defaults to 1e-3): the smallest masking probability, which keeps `1 / p` finite.
        generator (`torch.Generator`, *optional*): source of the uniform noise `(batch, seq)`, drawn on its device
            (the CPU by default) and moved to that of `input_ids`.

    Returns:
        `(noisy_ids, masked_indices, p_mask)`: `(batch, seq)` ids with the masks applied, `(batch, seq)` bool, and
        `(batch, 1)` (or, with per-token times, `(batch, seq)`) masking probabilities (the weights `1 / p_mask` of
        [`masked_diffusion_loss`]).
    """
    masked_indices, p_mask = bernoulli_masks(t, input_ids.shape, maskable, eps, generator, input_ids.device)
    return input_ids.masked_fill(masked_indices, mask_token_id), masked_indices, p_mask


def uniform_count_masks(maskable: torch.Tensor, count: torch.Tensor, generator=None) -> torch.Tensor:
    """Masks `count` `(batch, 1)` of each row's maskable positions `(batch, seq)`, chosen uniformly at random (the
    smallest of a uniform key per position): `(batch, seq)` bool."""
    scores = torch.rand(maskable.shape, generator=generator).masked_fill(~maskable.bool(), 2.0)  # (batch, seq)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (batch, seq) rank of each position's score within its row
    return (ranks < count) & maskable.bool()


def exact_count_masks(maskable: torch.Tensor, t: torch.Tensor, generator=None):
    """Masks exactly `k = ceil(t n)` (at least 1) of each row's `n` maskable positions, uniformly at random.

    Returns the `(batch, seq)` bool masks and the `(batch, 1)` masking ratios `k / n` (the loss weights `1 / p`);
    a row without maskable positions masks nothing and gets the ratio 1 (a valid probability for the loss).
    """
    n = maskable.sum(dim=1, keepdim=True)  # (batch, 1)
    k = torch.ceil(t[:, None] * n).clamp(min=1).minimum(n)  # (batch, 1)
    return uniform_count_masks(maskable, k, generator), (k.clamp(min=1) / n.clamp(min=1)).float()


def training_masks(
    maskable: torch.Tensor,
    t_sampling: str = "uniform",
    masking: str = "bernoulli",
    complementary: bool = False,
    eps: float = 1e-3,
    generator: Optional[torch.Generator] = None,
):
    r"""
    The masks of a training batch of rows `(rows, n)`: one diffusion time per row, drawn by `t_sampling` across the
    rows (`"stratified"`: row k of R gets a uniform `t` in `[k / R, (k + 1) / R)`), then the masking scheme.

    - `masking="bernoulli"`: the [`forward_process`] at `t`; `"exact"`: [`exact_count_masks`], with `p_mask = k / n`.
    - `complementary=True`: also the masks of each row's other maskable tokens (the forward process at `1 - t`).
      With exact masking those weigh `n / (n - k)`, and a row masked whole (empty complement) has its `p_mask`
      halved: it counts twice, the weight the ELBO gives the fully masked count in a pair.

    Random draws, in this order: `t` `(rows,)`, then the token noise `(rows, n)`.

    Returns `(masked_indices, p_mask, complement, complement_p)`: the `(rows, n)` masks and `(rows, 1)`
    probabilities, and those of the complementary masks (`None, None` without `complementary`).
    """
    t = sample_times(1, maskable.shape[0], t_sampling, generator)[:, 0]  # (rows,)
    if masking == "exact":
        masked_indices, p_mask = exact_count_masks(maskable, t, generator)  # (rows, n), (rows, 1)
    else:
        masked_indices, p_mask = bernoulli_masks(t, maskable.shape, maskable, eps, generator, maskable.device)
    if not complementary:
        return masked_indices, p_mask, None, None
    complement = maskable & ~masked_indices  # (rows, n)
    if masking == "exact":  # n - k of n tokens masked: weight n / (n - k) (no weight when none is)
        n = maskable.sum(dim=1, keepdim=True).clamp(min=1)
        complement_p = (complement.sum(dim=1, keepdim=True) / n).clamp(min=1.0 / n)
        # With k ~ U{1..n} the complement's count n - k is U{0..n-1}: it is never n, so a pair would give the
        # fully masked row half the ELBO's weight (at block size 2 the expected loss would be a quarter below
        # the bound). A row masked whole therefore counts twice (weight 2, p_mask halved): what masking its
        # complement whole too would give, since the two would have the same logits, without the second pass.
        whole = maskable.any(dim=1, keepdim=True) & ~complement.any(dim=1, keepdim=True)  # (rows, 1)
        p_mask = torch.where(whole, p_mask / 2, p_mask)
    else:
        complement_p = masking_probability(1.0 - t[:, None], eps)
    return masked_indices, p_mask, complement, complement_p


def in_order_masks(maskable: torch.Tensor, index: torch.Tensor, first: torch.Tensor):
    """The in-order masks: the maskable positions whose `index` (their order inside a block, `(batch, seq)`) is
    `first` `(batch, 1)` or later are masked, and only the one at `first` is scored. Returns `(masked, scored)`,
    both `(batch, seq)` bool."""
    masked = maskable & (index >= first)
    return masked, masked & (index == first)


def in_order_blocks(maskable, masked, p_mask, complement, complement_p, probability: float, generator=None):
    """Turns a share `probability` of the blocks `(rows, n)` of [`training_masks`] into in-order ones: the block's
    maskable tokens from a uniform `j` on are masked and only the one at `j` is scored, with weight `n` (then `n`
    such blocks estimate the block's in-order NLL, `sum_j -log p(x_j | x_<j, earlier blocks)`, without bias).
    The complementary copy takes `j + n // 2 (mod n)`. Draws: which blocks, then `j`.

    Returns `(masked, p_mask, complement, complement_p, unscored)`, `unscored` the masked positions that get no
    label, `(rows or 2 rows, n)` (the rows, then their complements)."""
    rows = maskable.shape[0]
    count = maskable.sum(dim=1, keepdim=True)  # (rows, 1)
    rank = maskable.long().cumsum(dim=1) - 1  # (rows, n) index of each maskable token among its block's
    chosen = (torch.rand(rows, 1, generator=generator) < probability) & (count > 0)
    start = (torch.rand(rows, 1, generator=generator) * count).long().minimum((count - 1).clamp(min=0))
    weight = 1.0 / count.clamp(min=1).float()  # p_mask = 1 / n: weight n

    def in_order(first):  # (rows, 1) -> the masks and the masked positions that are not scored, (rows, n) each
        masked_from, scored = in_order_masks(maskable, rank, first)
        return masked_from, masked_from & ~scored

    io_masked, io_unscored = in_order(start)
    masked = torch.where(chosen, io_masked, masked)
    p_mask = torch.where(chosen, weight.to(p_mask.dtype), p_mask)
    unscored = chosen & io_unscored
    if complement is not None:
        other_masked, other_unscored = in_order((start + count // 2) % count.clamp(min=1))
        complement = torch.where(chosen, other_masked, complement)
        complement_p = torch.where(chosen, weight.to(complement_p.dtype), complement_p)
        unscored = torch.cat([unscored, chosen & other_unscored])
    return masked, p_mask, complement, complement_p, unscored


# ----------------------------------------------------------------------------------------------------------------
# The loss


def masked_diffusion_loss(
    logits: torch.Tensor,
    labels: torch.LongTensor,
    p_mask: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    answer_lengths: Optional[torch.Tensor] = None,
    token_reweighting_gamma: float = 0.0,
) -> torch.Tensor:
    r"""
    LLaDA's masked-diffusion loss, one path for pre-training and SFT.

    With `p_mask` (each sequence's or token's masking probability), every labelled position contributes
    `CE / p_mask`; the sum is divided by the number of non-padding token slots (pre-training,
    `sum CE/p / (B * L)` without padding) or, when `answer_lengths` (batch,) is given, each row's sum by its
    answer length and the total by the batch size (SFT). Without `p_mask` it is the mean CE over labelled positions.

    Args:
        logits (`(batch, seq, vocab)`, or `(n_labelled, vocab)`: those of the labelled positions only, in the order
            of `logits[labels != -100]`; the loss needs nothing else, so a training step can skip the head
            elsewhere), labels (`(batch, seq)`, -100 where not scored),
        p_mask (`(batch,)`, `(batch, 1)` or `(batch, seq)`), attention_mask (`(batch, seq)`),
        answer_lengths (`(batch,)`),
        token_reweighting_gamma (`float`): with `gamma > 0`, each token's CE is multiplied by `(1 - p) ** gamma`
            (`p = exp(-CE)`, the probability of the right token; a focal loss, Ye et al. 2025's token reweighting).
    """
    batch, seq = labels.shape
    labelled = labels != -100  # (batch, seq)
    labelled_logits = logits if logits.dim() == 2 else logits[labelled]  # (n_labelled, vocab)
    token_ce = F.cross_entropy(labelled_logits.float(), labels[labelled], reduction="none")  # (n_labelled,)
    if token_reweighting_gamma:
        token_ce = (1.0 - torch.exp(-token_ce)) ** token_reweighting_gamma * token_ce
    if p_mask is None:
        if token_ce.numel() == 0:
            return logits.sum() * 0.0  # nothing to score; keep the graph so backward still works
        return token_ce.mean()
    p_mask = _per_token(p_mask, batch, seq, "p_mask")
    _check_probabilities(p_mask)
    weights = 1.0 / p_mask.to(token_ce.dtype)  # (batch, seq)
    if answer_lengths is not None:
        lengths = _per_token(answer_lengths, batch, seq, "answer_lengths").to(token_ce.dtype).clamp(min=1.0)
        return (token_ce * weights[labelled] / lengths[labelled]).sum() / batch
    num_slots = attention_mask.sum() if attention_mask is not None else labels.numel()
    return (token_ce * weights[labelled]).sum() / num_slots


def _check_probabilities(p_mask: torch.Tensor) -> None:
    """`p_mask` weights the loss by 1 / p: a value outside (0, 1] (or NaN) would give an infinite, negative or NaN
    loss without any error, so it is refused. Skipped while compiling (the check needs the values on the host)."""
    if is_compiling():
        return
    bad = ~((p_mask > 0) & (p_mask <= 1))  # NaN compares False: counted as bad
    if bool(bad.any()):
        value = p_mask[bad][0].item()
        raise ValueError(
            f"`p_mask` must hold masking probabilities in (0, 1] (the loss divides by them), got {value!r}."
        )


def _per_token(values: torch.Tensor, batch: int, seq: int, name: str) -> torch.Tensor:
    """Broadcasts a per-sequence `(batch,)`/`(batch, 1)` or per-token `(batch, seq)` tensor to `(batch, seq)`."""
    values = torch.as_tensor(values)
    if values.dim() == 1 and values.shape[0] == batch:
        values = values[:, None]
    if values.dim() != 2 or values.shape[0] != batch or values.shape[1] not in (1, seq):
        raise ValueError(
            f"`{name}` must have shape (batch,), (batch, 1) or (batch, seq) = ({batch},), ({batch}, 1) or "
            f"({batch}, {seq}); got {tuple(values.shape)}."
        )
    return values.expand(batch, seq)


# ----------------------------------------------------------------------------------------------------------------
# Positions and the mask token


def position_ids_from_padding(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only, `(batch, seq)` 0/1 mask -> `(batch, seq)` long: 0 at each row's first
    real token (and on the padding before it), so a left-padded row has the positions of the same row unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def resolve_mask_token_id(
    model,
    mask_token_id: Optional[int] = None,
    caller: str = "Scoring a masked diffusion model",
    where: str = "`model.config.mask_token_id`",
) -> int:
    """`mask_token_id` if given, else `model.config.mask_token_id`; a `ValueError` naming `caller` and `where` the id
    can be set when neither is."""
    if mask_token_id is None:
        mask_token_id = getattr(getattr(model, "config", None), "mask_token_id", None)
    if mask_token_id is None:
        raise ValueError(
            f"{caller} needs its mask token: pass `mask_token_id=` or set {where} (no mask token id is set)."
        )
    return mask_token_id


__all__ = [
    "K_SAMPLING_SCHEMES",
    "MASKING_SCHEMES",
    "T_SAMPLING_SCHEMES",
    "bernoulli_masks",
    "block_times",
    "exact_count_masks",
    "forward_process",
    "in_order_blocks",
    "in_order_masks",
    "masked_diffusion_loss",
    "masking_probability",
    "position_ids_from_padding",
    "resolve_mask_token_id",
    "sample_mask_counts",
    "sample_times",
    "training_masks",
    "uniform_count_masks",
]
