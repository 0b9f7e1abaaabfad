"""Generation for LLaDA: `LLaDAGenerationConfig`, the output dataclass, the sampler helpers and the
`diffusion_generate` mixin.

Sampling (LLaDA, Nie et al. 2025): the canvas is the prompt followed by `max_new_tokens` mask tokens, split into
blocks of `block_length` decoded left to right. At every step the model predicts all positions at once; inside the
current block the still-masked positions get a candidate token x0 (argmax, or Gumbel-max when `temperature > 0`)
and a confidence, and the most confident ones are committed. Committed tokens are never re-masked.

Conventions (documented once, relied upon by the tests):

- Steps per block: `steps` is spread over the blocks, the first `steps % num_blocks` blocks getting one step more;
  `steps < num_blocks` is an error. A block stops early once nothing is left to decode in it (e.g. `steps` larger
  than `block_length`), so `steps` is an upper bound.
- Tokens per step: with `m` masked positions left in the block and `s` steps left, a step commits `ceil(m / s)`
  tokens, which is LLaDA's `get_num_transfer_tokens` (`M // S`, plus one for the first `M % S` steps). With
  `remask_ratio=r` every step predicts all `m` masked positions and re-masks the `floor(r * m)` least confident
  (or random) ones, i.e. commits `m - floor(r * m)`; the block's last step commits everything.
- Random draws, in this order at each step, for the whole batch at once from `generator`: (1) if
  `temperature > 0`, uniform float64 noise of shape (batch, block_length, vocab) for the Gumbel-max; (2) if
  `remasking == "random"`, uniform float64 confidences of shape (batch, block_length). Sampled results are
  reproducible for the same batch and seed; deterministic settings give the same row whatever its companions.
- Ties in confidence go to the lower position (stable sort). The mask token is never proposed as x0.
- `nfe` counts model forward calls; with classifier-free guidance the conditional and the prompt-masked copy go
  through the model in one batched call (2 x batch rows), counted once.
- `decode_step[b, i]` is the step (0-based, counted over all blocks) at which position i was committed, and -1 for
  prompt and padding positions (never decoded). EOS post-processing does not change it.

Fast paths (Fast-dLLM, Wu et al. 2025), with the same conventions:

- Caches (`use_cache="prefix"` / `"dual"`): a cache refresh is the step's own forward call over the whole canvas,
  so `nfe` still counts steps, and `decode_step` means the same. The guidance copy has its own cache rows (2 x batch).
  `cache_refresh_interval=1` refreshes at every step and gives exactly the tokens of `use_cache=False`.
- Parallel decoding (`threshold` / `factor`): a step commits `max(scheduled count, parallel count)` per row, so
  `threshold=1.0` is the scheduled algorithm and with `steps = block_length` per block it is Fast-dLLM's rule
  (everything above the threshold, at least one). A block ends once no running row has a masked position in it.
- Rows whose generated part holds no masked position leave the forward batch (and the cache) for good; their random
  draws stay aligned because draws are made for the whole batch and indexed. With `early_stop=True` a row whose
  first EOS has nothing undecided before it is finished at once (its masked positions become padding).

This is a Hub file: it imports only the standard library, torch and the public transformers API.
"""

import copy
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from transformers import GenerationConfig
from transformers.utils import ModelOutput, logging


logger = logging.get_logger(__name__)

REMASKING_STRATEGIES = ("low_confidence", "random", "entropy", "margin")
CACHE_MODES = (False, "prefix", "dual")
CALL_ONLY_ARGUMENTS = ("streamer", "generator", "seed", "generation_tokens_hook_func", "generation_logits_hook_func")


class LLaDAGenerationConfig(GenerationConfig):
    r"""
    Generation settings of [`LLaDAGenerationMixin.diffusion_generate`]; saved as `generation_config.json`.

    Besides the standard fields it uses (`max_new_tokens`, `temperature`, `top_k`, `top_p`, `min_new_tokens`,
    `num_return_sequences`, `return_dict_in_generate`, `eos_token_id`, `pad_token_id`), it holds:

    Args:
        steps (`int`, *optional*):
            Number of denoising steps over the whole generation. Defaults to `max_new_tokens` (one token per step).
        block_length (`int`, *optional*):
            Length of the semi-autoregressive blocks; must divide `max_new_tokens`. Defaults to the whole length.
        remasking (`str`, *optional*, defaults to `"low_confidence"`):
            Which masked positions a step commits first: `"low_confidence"` (highest probability of the predicted
            token), `"random"`, `"entropy"` (lowest entropy) or `"margin"` (largest top-1 minus top-2 probability).
        remask_ratio (`float`, *optional*):
            Geometric schedule: every step predicts all masked positions and re-masks this fraction of them,
            in [0, 1). `None` uses LLaDA's linear schedule.
        cfg_scale (`float`, *optional*, defaults to 0.0):
            Classifier-free guidance weight w >= 0: `logits = u + (w + 1)(c - u)` with u the prediction for the
            canvas whose prompt is masked. 0 disables guidance.
        mask_token_id (`int`, *optional*):
            The mask token; defaults to the model config's.
        output_history (`bool`, *optional*, defaults to `False`):
            Return the canvas after every step (with `return_dict_in_generate=True`).
        use_cache (`bool` or `str`, *optional*, defaults to `False`):
            Key/value caching across steps (Fast-dLLM, Wu et al. 2025). `"prefix"`: the first step of a block runs
            the whole canvas and records every position's keys/values; later steps of the block run only the block
            and everything after it, reading the keys/values of the left part from the cache. `"dual"`: later steps
            run only the block itself, reading both the left part and the still-masked right part from the cache.
            Stale keys/values make both approximations; `False` runs the whole canvas at every step.
        cache_refresh_interval (`int`, *optional*):
            With a cache, also refresh it (run the whole canvas) at every `k`-th step inside a block. `None`: only
            at block starts; `1`: every step, which gives exactly the tokens of `use_cache=False`.
        threshold (`float`, *optional*):
            Parallel decoding: a step commits `max(scheduled count, number of masked positions of the block whose
            confidence exceeds threshold)` positions, most confident first. `steps` then becomes an upper bound;
            `threshold=1.0` (nothing exceeds it) is the scheduled algorithm.
        factor (`float`, *optional*):
            Parallel decoding (Fast-dLLM's factor rule): commits `max(scheduled count, n)` with n the largest count
            such that `(n + 1) * (1 - c_n) < factor`, c_n the n-th largest confidence. Not with `threshold`.
        early_stop (`bool`, *optional*, defaults to `False`):
            Stop working on a row once it is done: it has an EOS among its committed generated tokens and no masked
            position before the first one. Its remaining masked positions are filled with padding (EOS without a
            pad id) and it leaves the forward batch; the loop ends when every row is done. The returned sequences
            are those of `early_stop=False` (everything after the first EOS becomes padding anyway); `nfe` and
            the decode steps after the stop differ.

    `max_new_tokens` defaults to 128; `temperature` None or 0 is greedy (left unset by default so that a plain
    `GenerationConfig` reading `generation_config.json` does not warn). `min_new_tokens` forbids EOS in the first
    generated positions; tokens after the first EOS become `pad_token_id` (EOS if no pad id).
    """

    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", None)
        self.block_length = kwargs.pop("block_length", None)
        self.remasking = kwargs.pop("remasking", "low_confidence")
        self.remask_ratio = kwargs.pop("remask_ratio", None)
        self.cfg_scale = kwargs.pop("cfg_scale", 0.0)
        self.mask_token_id = kwargs.pop("mask_token_id", None)
        self.output_history = kwargs.pop("output_history", False)
        self.cache_refresh_interval = kwargs.pop("cache_refresh_interval", None)
        self.threshold = kwargs.pop("threshold", None)
        self.factor = kwargs.pop("factor", None)
        self.early_stop = kwargs.pop("early_stop", False)
        kwargs.setdefault("use_cache", False)  # a standard field, set by the base class: our meaning, our default
        kwargs.setdefault("max_new_tokens", 128)
        for name in ("temperature", "top_k", "top_p"):  # unset = off, whatever the transformers version's default
            kwargs.setdefault(name, None)
        super().__init__(**kwargs)  # sets the standard fields, then calls `validate`

    @classmethod
    def from_model_config(cls, model_config) -> "LLaDAGenerationConfig":
        """Generation defaults for a model: the special token ids of its config, everything else default."""
        config_dict = model_config if isinstance(model_config, dict) else model_config.to_dict()
        token_ids = ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id")
        config = cls(**{name: config_dict[name] for name in token_ids if config_dict.get(name) is not None})
        config._original_object_hash = hash(config)
        return config

    def validate(self, strict=False, user_set_attributes=None):
        """Checks every field on its own and the block/step combination; raises `ValueError` naming the field.

        The autoregressive checks of the base class do not apply to diffusion sampling and are not run.
        """
        _check_int(self, "max_new_tokens", minimum=1, optional=True)
        _check_int(self, "steps", minimum=1, optional=True)
        _check_int(self, "block_length", minimum=1, optional=True)
        _check_int(self, "top_k", minimum=0, optional=True)
        _check_int(self, "min_new_tokens", minimum=0, optional=True)
        _check_int(self, "mask_token_id", minimum=0, optional=True)
        _check_int(self, "num_return_sequences", minimum=1, optional=True)
        if self.temperature is not None and not (_is_number(self.temperature) and self.temperature >= 0):
            _fail(self, "temperature", "None or a number >= 0 (0 or None = greedy)", self.temperature)
        if self.top_p is not None and not (_is_number(self.top_p) and 0 < self.top_p <= 1):
            _fail(self, "top_p", "None or a number in (0, 1]", self.top_p)
        if self.remasking not in REMASKING_STRATEGIES:
            _fail(self, "remasking", f"one of {REMASKING_STRATEGIES}", self.remasking)
        if self.remask_ratio is not None and not (_is_number(self.remask_ratio) and 0 <= self.remask_ratio < 1):
            _fail(self, "remask_ratio", "None or a number in [0, 1)", self.remask_ratio)
        if not _is_number(self.cfg_scale) or self.cfg_scale < 0:
            _fail(self, "cfg_scale", "a number >= 0 (0 = no guidance)", self.cfg_scale)
        if not isinstance(self.output_history, bool):
            _fail(self, "output_history", "a bool", self.output_history)
        if self.use_cache not in CACHE_MODES:
            _fail(self, "use_cache", "False, 'prefix' or 'dual'", self.use_cache)
        _check_int(self, "cache_refresh_interval", minimum=1, optional=True)
        if self.threshold is not None and not (_is_number(self.threshold) and 0 <= self.threshold <= 1):
            _fail(self, "threshold", "None or a number in [0, 1]", self.threshold)
        if self.factor is not None and not (_is_number(self.factor) and self.factor > 0):
            _fail(self, "factor", "None or a number > 0", self.factor)
        if self.threshold is not None and self.factor is not None:
            raise ValueError(f"{type(self).__name__}: set `threshold` or `factor`, not both.")
        if not isinstance(self.early_stop, bool):
            _fail(self, "early_stop", "a bool", self.early_stop)
        if self.max_new_tokens is not None:
            block_schedule(self.max_new_tokens, self.block_length, self.steps)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _fail(config, name, expected, value):
    raise ValueError(f"{type(config).__name__}: `{name}` must be {expected}, got {value!r}.")


def _check_int(config, name, minimum, optional):
    value = getattr(config, name, None)
    if value is None and optional:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        _fail(config, name, f"{'None or ' if optional else ''}an integer >= {minimum}", value)


def block_schedule(max_new_tokens: int, block_length: Optional[int], steps: Optional[int]):
    """Splits the generation into blocks and spreads `steps` over them.

    Returns `(block_length, steps_per_block)`: the first `steps % num_blocks` blocks get one step more than the
    others. Raises `ValueError` when `block_length` does not divide `max_new_tokens` or `steps < num_blocks`.
    """
    block_length = max_new_tokens if block_length is None else block_length
    if max_new_tokens % block_length != 0:
        raise ValueError(
            f"`max_new_tokens` ({max_new_tokens}) must be a multiple of `block_length` ({block_length})."
        )
    num_blocks = max_new_tokens // block_length
    steps = max_new_tokens if steps is None else steps
    if steps < num_blocks:
        raise ValueError(
            f"`steps` ({steps}) must be at least the number of blocks, max_new_tokens / block_length = "
            f"{max_new_tokens} / {block_length} = {num_blocks}: every block needs a step."
        )
    base, extra = divmod(steps, num_blocks)
    return block_length, [base + (1 if block < extra else 0) for block in range(num_blocks)]


@dataclass
class LLaDAGenerateOutput(ModelOutput):
    r"""
    Output of [`LLaDAGenerationMixin.diffusion_generate`] with `return_dict_in_generate=True`.

    Args:
        sequences (`torch.LongTensor` of shape `(batch, prompt_len + max_new_tokens)`):
            Prompt followed by the generated tokens (after EOS post-processing).
        history (`tuple(torch.LongTensor)`, *optional*):
            The canvas after every step (before EOS post-processing), when `output_history=True`.
        nfe (`int`):
            Number of model forward calls (one per step; a guided step is one batched call).
        decode_step (`torch.LongTensor` of shape `(batch, prompt_len + max_new_tokens)`):
            Step at which each position was committed (0-based over all blocks); -1 for prompt and padding.
    """

    sequences: Optional[torch.LongTensor] = None
    history: Optional[tuple] = None
    nfe: Optional[int] = None
    decode_step: Optional[torch.LongTensor] = None


# ----------------------------------------------------------------------------------------------------------------
# Pure sampler helpers: tensors in, tensors out, no model.


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


def draw_uniform(shape, generator: Optional[torch.Generator], device, rows=None) -> torch.Tensor:
    """Uniform float64 draws on the generator's device (so a CPU generator also seeds GPU runs), moved to `device`.

    `rows=(batch, index)`: draw for all `batch` rows and keep the rows in `index`, so that a row sees the same
    numbers whether or not finished companions still take part.
    """
    draw_device = generator.device if generator is not None else device
    if rows is not None:
        batch, index = rows
        full = torch.rand((batch, *shape[1:]), generator=generator, device=draw_device, dtype=torch.float64)
        return full.to(device)[index.to(device)]
    return torch.rand(shape, generator=generator, device=draw_device, dtype=torch.float64).to(device)


def filter_logits(logits: torch.Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None,
                  temperature: float = 0.0) -> torch.Tensor:
    """Sets logits outside the top-k / nucleus to -inf, (..., vocab) -> (..., vocab).

    The nucleus is taken on `softmax(logits / temperature)` (on the raw logits when temperature is 0) and always
    keeps the most likely token.
    """
    if top_k:
        kth_largest = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        scaled = logits / temperature if temperature > 0 else logits
        sorted_logits, sorted_index = scaled.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of strictly better tokens
        remove_sorted = mass_before >= top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, sorted_index, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def gumbel_max_tokens(logits: torch.Tensor, temperature: float, generator=None, rows=None) -> torch.Tensor:
    """Candidate tokens x0, (batch, n, vocab) -> (batch, n).

    Temperature 0 is the argmax. Otherwise LLaDA's Gumbel-max in float64, `argmax exp(l) / (-log U)^T`, which
    samples from `softmax(l / T)` (low precision would make the noise ineffective for large vocabularies).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.to(torch.float64)
    uniform = draw_uniform(logits.shape, generator, logits.device, rows)  # (batch, n, vocab)
    gumbel_noise = (-torch.log(uniform)) ** temperature
    return (logits.exp() / gumbel_noise).argmax(dim=-1)


def token_confidence(logits: torch.Tensor, x0: torch.Tensor, remasking: str, generator=None,
                     rows=None) -> torch.Tensor:
    """How sure the model is of each candidate, (batch, n, vocab), (batch, n) -> (batch, n); higher commits first.

    `low_confidence`: p(x0) (LLaDA); `entropy`: minus the entropy of p (Dream); `margin`: top-1 minus top-2
    probability (Dream); `random`: a uniform draw (LLaDA).
    """
    if remasking == "random":
        return draw_uniform(x0.shape, generator, x0.device, rows)
    probs = logits.float().softmax(dim=-1)  # (batch, n, vocab)
    if remasking == "low_confidence":
        return probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if remasking == "entropy":
        return -torch.special.entr(probs).sum(dim=-1)
    if remasking == "margin":
        top2 = probs.topk(2, dim=-1).values  # (batch, n, 2)
        return top2[..., 0] - top2[..., 1]
    raise ValueError(f"`remasking` must be one of {REMASKING_STRATEGIES}, got {remasking!r}.")


def select_transfer(confidence: torch.Tensor, num_transfer: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, n): each row's `num_transfer[b]` most confident positions; ties go to the lower index.

    Not-eligible positions must carry -inf, and `num_transfer` must not exceed the eligible count of its row.
    One stable sort for the whole batch: no loop over rows, and a per-row count (threshold decoding) fits as is.
    """
    order = confidence.argsort(dim=-1, descending=True, stable=True)  # (batch, n)
    ranks = torch.arange(confidence.shape[-1], device=confidence.device)
    chosen_in_order = ranks.unsqueeze(0) < num_transfer.unsqueeze(-1)  # (batch, n), sorted order
    return torch.zeros_like(chosen_in_order).scatter(-1, order, chosen_in_order)


def parallel_transfer_count(confidence: torch.Tensor, threshold: Optional[float] = None,
                            factor: Optional[float] = None) -> torch.Tensor:
    """Fast-dLLM's parallel decoding counts, (batch, n) -> (batch,); not-eligible positions carry -inf.

    `threshold`: the number of confidences above it. `factor`: the largest n with `(n + 1) * (1 - c_n) < factor`,
    c_n the n-th largest confidence; c_n falls and n + 1 grows with n, so the condition holds for a leading run of
    n and the count is the length of that run. Neither: zeros (the schedule alone decides).
    """
    if threshold is not None:
        return (confidence > threshold).sum(dim=-1)
    if factor is not None:
        sorted_confidence = confidence.sort(dim=-1, descending=True).values  # (batch, n)
        n = torch.arange(1, confidence.shape[-1] + 1, device=confidence.device, dtype=sorted_confidence.dtype)
        return ((n + 1) * (1 - sorted_confidence) < factor).sum(dim=-1)
    return torch.zeros(confidence.shape[0], dtype=torch.long, device=confidence.device)


def denoise_block(block_logits, block_tokens, num_transfer, mask_token_id, temperature=0.0, top_k=None,
                  top_p=None, remasking="low_confidence", generator=None, threshold=None, factor=None,
                  noise_rows=None):
    """One denoising step on the current block.

    Args:
        block_logits (`(batch, n, vocab)`): the model's logits for the block (after guidance and hooks).
        block_tokens (`(batch, n)`): the block's tokens, `mask_token_id` where still masked.
        num_transfer (`(batch,)`): how many masked positions each row commits at least (capped at what is left);
            with `threshold` or `factor` a row commits more when [`parallel_transfer_count`] says so.
        noise_rows (`(batch_size, row_index)`, *optional*): the rows are these rows of a larger batch; random
            draws are made for the larger batch (see [`draw_uniform`]).

    Returns: `(new_block_tokens, transfer)`, both `(batch, n)`; `transfer` marks the committed positions.
    """
    masked = block_tokens == mask_token_id  # (batch, n)
    logits = filter_logits(block_logits, top_k, top_p, temperature)
    x0 = gumbel_max_tokens(logits, temperature, generator, noise_rows)  # (batch, n)
    confidence = token_confidence(logits, x0, remasking, generator, noise_rows)
    confidence = confidence.masked_fill(~masked, float("-inf"))  # (batch, n)
    num_transfer = torch.maximum(num_transfer, parallel_transfer_count(confidence, threshold, factor))
    transfer = select_transfer(confidence, torch.minimum(num_transfer, masked.sum(dim=-1)))
    return torch.where(transfer, x0, block_tokens), transfer


def pad_after_eos(tokens: torch.Tensor, eos_token_ids, pad_token_id: int) -> torch.Tensor:
    """Replaces every token after a row's first EOS by `pad_token_id`, (batch, n) -> (batch, n)."""
    eos = torch.as_tensor(eos_token_ids, device=tokens.device).view(-1)
    is_eos = torch.isin(tokens, eos).long()  # (batch, n)
    after_first_eos = (is_eos.cumsum(dim=-1) - is_eos) > 0
    return tokens.masked_fill(after_first_eos, pad_token_id)


def _as_id_list(token_ids) -> list:
    if token_ids is None:
        return []
    return list(token_ids) if isinstance(token_ids, (list, tuple)) else [token_ids]


def rows_done(generated: torch.Tensor, mask_token_id: int, eos_token_ids) -> torch.Tensor:
    """Early stop: (batch, n) generated tokens -> (batch,) bool, True where the row has a committed EOS and no
    masked position before its first EOS (nothing the row will return is still undecided)."""
    eos = torch.as_tensor(eos_token_ids, device=generated.device).view(-1)
    is_eos = torch.isin(generated, eos)  # (batch, n)
    before_first_eos = is_eos.long().cumsum(dim=-1) == 0
    undecided = (generated == mask_token_id) & before_first_eos
    return is_eos.any(dim=-1) & ~undecided.any(dim=-1)


# ----------------------------------------------------------------------------------------------------------------
# Key/value cache


class CanvasKVCache:
    """Keys and values of every canvas position, per layer, for windowed forward passes (Fast-dLLM's caches).

    A *refresh* is a forward pass over the whole canvas: `update` records each layer's keys/values
    (rows, kv_heads, seq, head_dim) and returns them unchanged. A *windowed* pass runs only positions
    `[start, stop)`: `update` writes the window's fresh keys/values over the stored ones and returns the whole
    canvas's, so the window attends to the stored keys of every other position. The window is recomputed at
    every windowed step, so writing it in place loses nothing, and no copy of the canvas's keys is made.

    Our own small class: transformers' `Cache` classes append along the sequence (autoregressive decoding); here
    the length is fixed and a window in the middle is replaced at every step.
    """

    def __init__(self):
        self.keys, self.values = {}, {}
        self.window = None  # None: the next pass is a refresh

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.window is None:
            self.keys[layer_idx], self.values[layer_idx] = key, value
            return key, value
        start, stop = self.window
        keys, values = self.keys[layer_idx], self.values[layer_idx]  # (rows, kv_heads, seq, head_dim)
        keys[:, :, start:stop] = key
        values[:, :, start:stop] = value
        return keys, values

    def keep_rows(self, index: torch.Tensor):
        """Keeps only these rows (finished rows leave the forward batch)."""
        for layer_idx in self.keys:
            self.keys[layer_idx] = self.keys[layer_idx].index_select(0, index)
            self.values[layer_idx] = self.values[layer_idx].index_select(0, index)


# ----------------------------------------------------------------------------------------------------------------
# The mixin


@dataclass
class DenoisingContext:
    """What stays fixed during one `diffusion_generate` call, and the key/value cache."""

    config: LLaDAGenerationConfig
    mask_token_id: int
    prompt_length: int
    attention_mask: Optional[torch.Tensor]  # (batch, seq), None when nothing is padded
    prompt_positions: torch.Tensor  # (batch, seq) bool: real prompt tokens (masked in the guidance copy)
    position_ids: Optional[torch.Tensor] = None  # (batch, seq): the canvas's positions, for windowed passes
    cache: Optional[CanvasKVCache] = None
    generator: Optional[torch.Generator] = None
    streamer: Optional[object] = None
    tokens_hook: Optional[Callable] = None
    logits_hook: Optional[Callable] = None

    @property
    def has_hooks(self) -> bool:
        return self.tokens_hook is not None or self.logits_hook is not None


class LLaDAGenerationMixin:
    """Gives `LLaDAForMaskedDiffusion` its `diffusion_generate` / `generate` methods and generation config loading.

    The class name ends in "GenerationMixin" on purpose: transformers then reports `can_generate()` as true, creates
    `model.generation_config` (of the model's `generation_config_class`) and saves it as `generation_config.json`.
    """

    def generate(self, input_ids=None, attention_mask=None, generation_config=None, **kwargs):
        """Same as [`~LLaDAGenerationMixin.diffusion_generate`] (users and pipelines call `generate`); `inputs` is
        accepted as another name for `input_ids`."""
        if "inputs" in kwargs:
            if input_ids is not None:
                raise ValueError("generate: pass the prompt as `input_ids` or `inputs`, not both.")
            input_ids = kwargs.pop("inputs")
        return self.diffusion_generate(input_ids, attention_mask, generation_config, **kwargs)

    @torch.no_grad()
    def diffusion_generate(self, input_ids=None, attention_mask=None, generation_config=None, **kwargs):
        r"""
        Generates `max_new_tokens` tokens after each prompt by iterative unmasking (conventions: module docstring).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, prompt_len)`, *optional*):
                Left-padded prompts. `None` generates unconditionally `num_return_sequences` (default 1) rows.
            attention_mask (`torch.Tensor` of shape `(batch, prompt_len)`, *optional*):
                1 for prompt tokens, 0 for padding. Padding never changes and is never attended to; positions count
                real tokens only, so right-padded prompts give the same continuations.
            generation_config ([`LLaDAGenerationConfig`] or `dict`, *optional*):
                Base settings; defaults to `model.generation_config`. Keyword arguments override its fields:
                `max_new_tokens` (alias `gen_length`; or `max_length` = prompt + new), `steps`, `block_length`,
                `temperature`, `top_k`, `top_p`, `remasking`, `remask_ratio`, `cfg_scale`, `mask_token_id`,
                `eos_token_id`, `pad_token_id`, `min_new_tokens`, `num_return_sequences` (copies of each prompt),
                `output_history`, `return_dict_in_generate`, and the fast paths `use_cache` (`"prefix"`/`"dual"`),
                `cache_refresh_interval`, `threshold`, `factor`, `early_stop`.
            generator (`torch.Generator`, *optional*) or seed (`int`, *optional*):
                Source of the random draws (Gumbel noise, random remasking); default: torch's global generator.
            streamer (*optional*):
                An object with `put(canvas)` and `end()`: receives the starting canvas `(batch, seq)`, the canvas
                after every step, then `end()`.
            generation_tokens_hook_func (`Callable[[step, x, logits], x]`, *optional*):
                Called as `(None, x, None)` before the first step and as `(step, x, logits)` after each step;
                returns the canvas to continue from (Dream's hook).
            generation_logits_hook_func (`Callable[[step, x, logits], logits]`, *optional*):
                Called after each forward pass with the full logits `(batch, seq, vocab)`; returns those to use.

        Returns:
            `torch.LongTensor` of shape `(batch, prompt_len + max_new_tokens)`, or a [`LLaDAGenerateOutput`] with
            `return_dict_in_generate=True`.

        Example:

        ```python
        >>> inputs = tokenizer(["To be, or not"], return_tensors="pt")
        >>> out = model.diffusion_generate(**inputs, max_new_tokens=64, steps=64, block_length=32)
        >>> tokenizer.batch_decode(out[:, inputs.input_ids.shape[1]:], skip_special_tokens=True)
        >>> fast = model.diffusion_generate(**inputs, max_new_tokens=256, block_length=32, use_cache="dual",
        ...                                 threshold=0.9)  # Fast-dLLM: dual cache + parallel decoding
        ```
        """
        kwargs.pop("token_type_ids", None)  # some tokenizers return it; the model has no segment embeddings
        options = _pop_call_options(kwargs, self.device)
        config = self._prepare_generation_config(generation_config, kwargs)
        prompt_ids, prompt_mask = self._prepare_prompt(input_ids, attention_mask, config.num_return_sequences)
        batch, prompt_length = prompt_ids.shape
        max_new_tokens = self._resolve_length(config, prompt_mask)
        block_length, steps_per_block = block_schedule(max_new_tokens, config.block_length, config.steps)
        mask_token_id = self._resolve_mask_token_id(config)

        canvas = torch.cat([prompt_ids, prompt_ids.new_full((batch, max_new_tokens), mask_token_id)], dim=1)
        attention_mask = torch.cat([prompt_mask, prompt_mask.new_ones((batch, max_new_tokens))], dim=1)
        prompt_positions = attention_mask.bool()  # (batch, seq)
        prompt_positions[:, prompt_length:] = False
        context = DenoisingContext(
            config=config, mask_token_id=mask_token_id, prompt_length=prompt_length,
            attention_mask=None if bool(attention_mask.all()) else attention_mask,
            prompt_positions=prompt_positions, **options,
        )
        if config.use_cache:
            if context.has_hooks:
                raise ValueError(
                    "diffusion_generate: `use_cache` cannot be combined with `generation_tokens_hook_func` or "
                    "`generation_logits_hook_func`: the hooks take the logits of the whole canvas at every step."
                )
            context.position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)  # as the model's default
            context.cache = CanvasKVCache()
        canvas, decode_step, history, nfe = self._denoise(canvas, block_length, steps_per_block, context)
        sequences = _pad_generated_after_eos(canvas, prompt_length, config)
        if not config.return_dict_in_generate:
            if config.output_history:
                logger.warning_once("`output_history=True` needs `return_dict_in_generate=True`; ignored.")
            return sequences
        history = tuple(history) if history is not None else None
        return LLaDAGenerateOutput(sequences=sequences, history=history, nfe=nfe, decode_step=decode_step)

    def _denoise(self, canvas, block_length, steps_per_block, context: DenoisingContext):
        """The sampling loop: blocks left to right, `steps_per_block[i]` steps at most for block i."""
        config, mask_token_id = context.config, context.mask_token_id
        decode_step = torch.full_like(canvas, -1)  # (batch, seq)
        history = [] if config.output_history else None
        canvas = _call_hook(context.tokens_hook, "generation_tokens_hook_func", None, canvas, None)
        if context.streamer is not None:
            context.streamer.put(canvas)
        step, rows = 0, None  # rows: indices of the rows in the forward batch, None for all of them
        for block, block_steps in enumerate(steps_per_block):
            block_start = context.prompt_length + block * block_length
            block_slice = slice(block_start, block_start + block_length)
            for block_step in range(block_steps):
                rows = self._rows_to_run(canvas, rows, context)
                running = canvas if rows is None else canvas[rows]  # (rows, seq)
                if not bool((running[:, block_slice] == mask_token_id).any()):
                    break  # block finished early (parallel decoding, more steps than tokens, a hook, all rows done)
                masked = canvas == mask_token_id  # (batch, seq)
                canvas, logits = self._denoising_step(canvas, rows, step, block_step, block_steps, block_slice,
                                                      context)
                canvas = _call_hook(context.tokens_hook, "generation_tokens_hook_func", step, canvas, logits)
                decode_step.masked_fill_(masked & (canvas != mask_token_id), step)
                if config.early_stop:
                    canvas = _fill_finished_rows(canvas, context.prompt_length, config, mask_token_id)
                if history is not None:
                    history.append(canvas)
                if context.streamer is not None:
                    context.streamer.put(canvas)
                step += 1
        if context.streamer is not None:
            context.streamer.end()
        return canvas, decode_step, history, step  # one forward call per step

    def _denoising_step(self, canvas, rows, step, block_step, block_steps, block_slice, context: DenoisingContext):
        """One forward pass and one commit in the current block for the running `rows` (None: all).

        Returns the new canvas (a copy: history and streamers may keep the previous one) and the logits passed to
        the tokens hook. With a cache the pass is a refresh at the block's first step and every
        `cache_refresh_interval`-th step, windowed otherwise.
        """
        config, mask_token_id = context.config, context.mask_token_id
        if not context.has_hooks:
            interval = config.cache_refresh_interval
            refresh = block_step == 0 if interval is None else block_step % interval == 0
            logits = block_logits = self._denoiser_logits(canvas, context, block_slice, rows, refresh)
        else:  # hooks see (and the logits hook may change) the logits of the whole canvas
            logits = self._denoiser_logits(canvas, context)  # (batch, seq, vocab)
            logits = _call_hook(context.logits_hook, "generation_logits_hook_func", step, canvas, logits)
            block_logits = logits[:, block_slice]
        block_offset = block_slice.start - context.prompt_length
        block_logits = _constrain_logits(block_logits, block_offset, config, mask_token_id)  # (rows, n, vocab)
        block_tokens = (canvas if rows is None else canvas[rows])[:, block_slice]  # (rows, n)
        masked_count = (block_tokens == mask_token_id).sum(dim=-1)  # (rows,)
        num_transfer = num_transfer_tokens(masked_count, block_steps - block_step, config.remask_ratio)
        new_block, _ = denoise_block(
            block_logits, block_tokens, num_transfer, mask_token_id, config.temperature or 0.0, config.top_k,
            config.top_p, config.remasking, context.generator, config.threshold, config.factor,
            noise_rows=None if rows is None else (canvas.shape[0], rows),
        )
        canvas = canvas.clone()
        if rows is None:
            canvas[:, block_slice] = new_block
        else:
            canvas[:, block_slice] = canvas[:, block_slice].index_copy(0, rows, new_block)
        return canvas, logits

    def _rows_to_run(self, canvas, rows, context: DenoisingContext):
        """The rows that still have masked positions; the others leave the forward batch, and the cache, for good.

        Returns indices into the batch, or None while every row runs (always None with hooks: they take the
        whole batch).
        """
        if context.has_hooks:
            return None
        unfinished = (canvas[:, context.prompt_length:] == context.mask_token_id).any(dim=-1)  # (batch,)
        if rows is None:
            if bool(unfinished.all()):
                return None
            rows = torch.arange(canvas.shape[0], device=canvas.device)
        still_running = unfinished[rows]  # (rows,)
        if bool(still_running.all()):
            return rows
        keep = still_running.nonzero().squeeze(-1)
        if context.cache is not None:  # cache rows: the running rows, then their guidance copies
            copies = [keep + copy * rows.numel() for copy in range(2 if context.config.cfg_scale > 0 else 1)]
            context.cache.keep_rows(torch.cat(copies))
        return rows[keep]

    def _denoiser_logits(self, canvas, context: DenoisingContext, positions: slice = slice(None), rows=None,
                         refresh=True):
        """Logits at `positions` of the canvas, (batch, seq) -> (rows, n, vocab); guided when `cfg_scale > 0`.

        Only `rows` (indices, None for all) go through the model. Guidance runs the canvas and its prompt-masked
        copy in one batched call: u + (w + 1)(c - u).
        """
        cfg_scale = context.config.cfg_scale
        attention_mask, prompt_positions, position_ids = (
            context.attention_mask, context.prompt_positions, context.position_ids)
        if rows is not None:
            canvas, prompt_positions = canvas[rows], prompt_positions[rows]
            attention_mask = None if attention_mask is None else attention_mask[rows]
            position_ids = None if position_ids is None else position_ids[rows]
        input_ids = canvas
        if cfg_scale > 0:
            unconditional = canvas.masked_fill(prompt_positions, context.mask_token_id)  # (rows, seq)
            input_ids = torch.cat([canvas, unconditional])  # (2 * rows, seq)
            attention_mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
            position_ids = None if position_ids is None else torch.cat([position_ids, position_ids])
        if context.cache is None:
            logits = self._logits_at(input_ids, attention_mask, positions)
        else:
            window = slice(0, None) if refresh else slice(
                positions.start, None if context.config.use_cache == "prefix" else positions.stop)
            logits = self._cached_logits_at(input_ids, attention_mask, position_ids, positions, window,
                                            context.cache)
        if cfg_scale == 0:
            return logits
        conditional_logits, unconditional_logits = logits.chunk(2)
        return unconditional_logits + (cfg_scale + 1) * (conditional_logits - unconditional_logits)

    def _logits_at(self, input_ids, attention_mask, positions: slice):
        """`forward(...).logits[:, positions]`, with only those positions sent through the output head: a step
        needs the current block only, and the vocabulary-wide head is a large share of a small model's cost."""
        hidden_states = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.lm_head(hidden_states[:, positions])  # (rows, n, vocab)

    def _cached_logits_at(self, input_ids, attention_mask, position_ids, positions: slice, window: slice, cache):
        """Logits at `positions` from a pass over the canvas positions in `window` only, (rows, seq) ->
        (rows, n, vocab). A window starting at 0 is a refresh: the cache records the keys/values of the whole
        canvas. Otherwise the window's queries attend to the cached keys/values of the other positions."""
        seq = input_ids.shape[1]
        start, stop = window.indices(seq)[:2]
        cache.window = None if (start, stop) == (0, seq) else (start, stop)
        kwargs = dict(input_ids=input_ids[:, start:stop], attention_mask=attention_mask,
                      position_ids=position_ids[:, start:stop], past_key_values=cache)
        block = slice(positions.start - start, positions.stop - start)
        return self.lm_head(self.model(**kwargs).last_hidden_state[:, block])  # (rows, n, vocab)

    # ------------------------------------------------------------------------------------------------------------
    # argument handling: everything is checked before the first forward pass

    def _prepare_generation_config(self, generation_config, kwargs) -> LLaDAGenerationConfig:
        """A private copy of the base config with the keyword arguments applied; unknown arguments are errors."""
        if generation_config is None:
            generation_config = getattr(self, "generation_config", None)
        if generation_config is None:
            config = LLaDAGenerationConfig.from_model_config(self.config)
        elif isinstance(generation_config, dict):
            config = LLaDAGenerationConfig(**generation_config)
        elif isinstance(generation_config, LLaDAGenerationConfig):
            config = copy.deepcopy(generation_config)
        elif isinstance(generation_config, GenerationConfig):  # a plain one, or a copy of this class from elsewhere
            config = _convert_generation_config(generation_config)
        else:
            raise TypeError(
                f"diffusion_generate: `generation_config` must be a GenerationConfig or a dict, "
                f"got {type(generation_config).__name__}."
            )
        if "gen_length" in kwargs:
            if "max_new_tokens" in kwargs:
                raise ValueError("diffusion_generate: pass `max_new_tokens` or its alias `gen_length`, not both.")
            kwargs["max_new_tokens"] = kwargs.pop("gen_length")
        if "max_length" in kwargs and "max_new_tokens" not in kwargs:
            kwargs["max_new_tokens"] = None  # derived from max_length once the prompt length is known
        unused = config.update(**kwargs)
        if unused:
            raise ValueError(
                f"diffusion_generate: unexpected keyword arguments {sorted(unused)}. Expected fields of "
                f"LLaDAGenerationConfig or one of {CALL_ONLY_ARGUMENTS}."
            )
        return config

    def _prepare_prompt(self, input_ids, attention_mask, num_return_sequences):
        """Prompts and their attention mask as (batch, prompt_len) long tensors on the model's device."""
        copies = num_return_sequences or 1
        if input_ids is None:
            if attention_mask is not None:
                raise ValueError("diffusion_generate: `attention_mask` was given without `input_ids`.")
            empty = torch.zeros((copies, 0), dtype=torch.long, device=self.device)  # unconditional generation
            return empty, empty.clone()
        if not torch.is_tensor(input_ids) or input_ids.is_floating_point() or input_ids.dim() not in (1, 2):
            shape = f"{tuple(input_ids.shape)} of dtype {input_ids.dtype}" if torch.is_tensor(input_ids) else ""
            raise ValueError(
                "diffusion_generate: `input_ids` must be an integer tensor of shape (batch, prompt_len), got "
                f"{type(input_ids).__name__}{shape}."
            )
        input_ids = torch.atleast_2d(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = torch.atleast_2d(torch.as_tensor(attention_mask, device=input_ids.device))
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"diffusion_generate: `attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, "
                f"got {tuple(attention_mask.shape)}."
            )
        input_ids = input_ids.to(self.device).long().repeat_interleave(copies, dim=0)
        attention_mask = attention_mask.to(self.device).long().repeat_interleave(copies, dim=0)
        return input_ids, attention_mask

    def _resolve_length(self, config, prompt_mask) -> int:
        """`max_new_tokens` (or `max_length` minus the prompt), checked against `max_position_embeddings`."""
        prompt_length = prompt_mask.shape[1]
        max_new_tokens = config.max_new_tokens
        if max_new_tokens is None:
            if config.max_length is None:
                raise ValueError("diffusion_generate: set `max_new_tokens` (the number of tokens to generate).")
            max_new_tokens = config.max_length - prompt_length
            if max_new_tokens < 1:
                raise ValueError(
                    f"diffusion_generate: `max_length` ({config.max_length}) leaves no room after the prompt "
                    f"({prompt_length} tokens); set `max_new_tokens` instead."
                )
        longest_prompt = int(prompt_mask.sum(dim=-1).max()) if prompt_length else 0
        limit = getattr(self.config, "max_position_embeddings", None)
        if limit is not None and longest_prompt + max_new_tokens > limit:
            raise ValueError(
                f"diffusion_generate: prompt ({longest_prompt} tokens) + `max_new_tokens` ({max_new_tokens}) = "
                f"{longest_prompt + max_new_tokens} exceeds the model's `max_position_embeddings` ({limit})."
            )
        return max_new_tokens

    def _resolve_mask_token_id(self, config) -> int:
        mask_token_id = config.mask_token_id
        if mask_token_id is None:
            mask_token_id = getattr(self.config, "mask_token_id", None)
        if mask_token_id is None:
            raise ValueError(
                "diffusion_generate: no mask token id: set `mask_token_id` in the generation config or the model "
                "config, or pass `mask_token_id=`."
            )
        vocab_size = getattr(self.config, "vocab_size", None)
        if vocab_size is not None and not 0 <= mask_token_id < vocab_size:
            raise ValueError(
                f"diffusion_generate: `mask_token_id` must be in [0, {vocab_size - 1}] (the vocabulary), "
                f"got {mask_token_id}."
            )
        return mask_token_id

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path,
                             **kwargs):
        """Called by `from_pretrained`: loads `generation_config.json` as an `LLaDAGenerationConfig`.

        Without that file the config built from the model config (its token ids) stays.
        """
        if generation_config is not None:
            self.generation_config = _convert_generation_config(generation_config)
            return
        if pretrained_model_name_or_path is None:
            return
        download_names = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision",
                          "subfolder")
        download_kwargs = {name: kwargs[name] for name in download_names if kwargs.get(name) is not None}
        try:
            self.generation_config = LLaDAGenerationConfig.from_pretrained(
                pretrained_model_name_or_path, _from_auto=from_auto_class, _from_pipeline=from_pipeline,
                **download_kwargs,
            )
        except OSError:
            logger.info("No generation_config.json found; using the generation config made from the model config.")


def _convert_generation_config(generation_config) -> LLaDAGenerationConfig:
    """An `LLaDAGenerationConfig` from a plain `GenerationConfig`: the fields it changed from the transformers
    defaults (so transformers 4's `temperature=1.0, top_k=50` defaults do not turn sampling on), our defaults for
    the others; a `max_length` without `max_new_tokens` stays the length limit."""
    fields = {name: value for name, value in generation_config.to_diff_dict().items() if value is not None}
    if "max_length" in fields and "max_new_tokens" not in fields:
        fields["max_new_tokens"] = None
    return LLaDAGenerationConfig.from_dict(fields)


def _pop_call_options(kwargs, device) -> dict:
    """Takes the per-call objects (streamer, hooks, randomness) out of `kwargs`, checking their types."""
    streamer = kwargs.pop("streamer", None)
    if streamer is not None and not all(callable(getattr(streamer, name, None)) for name in ("put", "end")):
        raise TypeError(
            f"diffusion_generate: `streamer` must have `put(canvas)` and `end()`, got {type(streamer).__name__}."
        )
    hooks = {}
    for name in ("generation_tokens_hook_func", "generation_logits_hook_func"):
        hook = hooks[name.split("_")[1] + "_hook"] = kwargs.pop(name, None)
        if hook is not None and not callable(hook):
            raise TypeError(
                f"diffusion_generate: `{name}` must be a callable (step, x, logits) -> tensor, "
                f"got {type(hook).__name__}."
            )
    generator, seed = kwargs.pop("generator", None), kwargs.pop("seed", None)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"diffusion_generate: `generator` must be a torch.Generator, got {type(generator).__name__}.")
    if seed is not None:
        if generator is not None:
            raise ValueError("diffusion_generate: pass `generator` or `seed`, not both.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"diffusion_generate: `seed` must be an int, got {seed!r}.")
        generator = torch.Generator(device=device).manual_seed(seed)
    return dict(streamer=streamer, generator=generator, **hooks)


def _call_hook(hook, name, step, canvas, logits):
    """Applies a Dream-style hook and checks that it returned a tensor of the right shape."""
    expected = logits if name == "generation_logits_hook_func" else canvas
    if hook is None:
        return expected
    result = hook(step, canvas, logits)
    if not torch.is_tensor(result) or result.shape != expected.shape:
        shape = tuple(result.shape) if torch.is_tensor(result) else ""
        raise TypeError(f"diffusion_generate: `{name}` must return a tensor of shape {tuple(expected.shape)}, "
                        f"got {type(result).__name__}{shape}.")
    return result


def _constrain_logits(block_logits, block_offset: int, config, mask_token_id: int) -> torch.Tensor:
    """Float32 copy of the block's logits (batch, n, vocab) where the mask token, and EOS in the first
    `min_new_tokens` generated positions, can never be chosen."""
    block_logits = block_logits.to(torch.float32, copy=True)
    block_logits[..., mask_token_id] = float("-inf")
    eos_ids = _as_id_list(config.eos_token_id)
    forbidden = min(max((config.min_new_tokens or 0) - block_offset, 0), block_logits.shape[1])
    if forbidden and eos_ids:
        block_logits[:, :forbidden, eos_ids] = float("-inf")
    return block_logits


def _fill_finished_rows(canvas, prompt_length: int, config, mask_token_id: int) -> torch.Tensor:
    """Early stop: the masked positions of rows that are done ([`rows_done`]) become padding (EOS without a pad
    id), in place; they would become padding after the first EOS anyway."""
    eos_ids = _as_id_list(config.eos_token_id)
    if not eos_ids:
        return canvas
    generated = canvas[:, prompt_length:]  # a view: filling it fills the canvas
    done = rows_done(generated, mask_token_id, eos_ids)  # (batch,)
    pad_token_id = config.pad_token_id if config.pad_token_id is not None else eos_ids[0]
    generated.masked_fill_(done.unsqueeze(-1) & (generated == mask_token_id), pad_token_id)
    return canvas


def _pad_generated_after_eos(canvas, prompt_length: int, config) -> torch.Tensor:
    """The final sequences: generated tokens after a row's first EOS become padding (EOS when no pad id)."""
    eos_ids = _as_id_list(config.eos_token_id)
    if not eos_ids:
        return canvas
    pad_token_id = config.pad_token_id if config.pad_token_id is not None else eos_ids[0]
    generated = pad_after_eos(canvas[:, prompt_length:], eos_ids, pad_token_id)
    return torch.cat([canvas[:, :prompt_length], generated], dim=1)


__all__ = [
    "LLaDAGenerationConfig", "LLaDAGenerateOutput", "LLaDAGenerationMixin", "block_schedule", "num_transfer_tokens",
    "filter_logits", "gumbel_max_tokens", "token_confidence", "select_transfer", "parallel_transfer_count",
    "denoise_block", "pad_after_eos", "rows_done", "CanvasKVCache",
]
