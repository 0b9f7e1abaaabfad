"""Generation for LLaDA: `LLaDAGenerationConfig`, the output dataclass and the `diffusion_generate` mixin.

The steps of a denoising step are pure functions in `sampling_llada`; the key/value cache and its refresh decisions
are in `cache_llada`. This file holds the settings, the loop over blocks and steps, and the model calls.

Sampling (LLaDA, Nie et al. 2025): the canvas is the prompt followed by `max_new_tokens` mask tokens, split into
blocks of `block_length` decoded left to right. At every step the model predicts all positions at once; inside the
current block the still-masked positions get a candidate token x0 (argmax, or Gumbel-max when `temperature > 0`)
and a confidence, and the most confident ones are committed. Committed tokens are never re-masked.

Infilling: mask tokens may also stand anywhere in the prompt. They are generated like the appended ones and every
other token stays as it is. The blocks then cover the "masked span", from the first to the last canvas column that
holds a mask token in some row (the generated part when the prompts hold none): `block_length` divides its length
and `steps` defaults to it. EOS is never chosen at a mask inside the prompt (text follows it); `max_new_tokens=0`
fills the prompt's masks only.

Conventions (documented once, relied upon by the tests; those of a single step, the schedule, the random draws and
ties, are in `sampling_llada`'s docstring):

- `nfe` counts model forward calls; with classifier-free guidance the conditional and the prompt-masked copy go
  through the model in one batched call (2 x batch rows), counted once.
- `decode_step[b, i]` is the step (0-based, counted over all blocks) at which position i was committed, and -1 for
  prompt and padding positions (never decoded). EOS post-processing does not change it.
- Fast paths (Fast-dLLM, Wu et al. 2025) keep these conventions: a cache refresh is the step's own forward call
  (see `cache_llada`), and a parallel-decoding step is one step however many tokens it commits. With
  `early_stop=True` a row whose first EOS has nothing undecided before it is finished at once (its masked positions
  become padding) and leaves the forward batch.
- Logits processors (transformers' classes, from the flags and the `logits_processor` argument) act on the logits
  of the block at every step; what they see is described in `processors_llada`.
- `compile=True` runs every step's forward through `torch.compile` with static shapes: the logits kept are given as
  index tensors, a prefix-cache window always starts where the masked span does (its positions left of the block
  keep their cached keys/values, as without compilation), and finished rows stay in the batch, so one graph serves
  every step of a kind (full pass, cache refresh, windowed pass). The tokens are those of the eager run.

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import copy
import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from transformers import GenerationConfig
from transformers.utils import ModelOutput, logging

from .cache_llada import CACHE_MODES, BlockKVCache, CanvasKVCache
from .processors_llada import BlockLogitsProcessor, apply_do_sample, reject_unsupported_generation_flags
from .sampling_llada import (
    POSITIONWISE_STRATEGIES,
    REMASKING_STRATEGIES,
    TOKEN_SAMPLERS,
    ConfidenceCredit,
    RandomDraws,
    RunningRows,
    SlotDraws,
    as_id_list,
    as_token_rows,
    block_position_ids,
    block_schedule,
    constrain_logits,
    denoise_block,
    fill_finished_rows,
    guidance_inputs,
    guided_logits,
    infill_canvas,
    masked_slots,
    num_transfer_tokens,
    pad_after_eos,
)


logger = logging.get_logger(__name__)

_COMPILED_FORWARDS = {}  # (model class, compile settings) -> the compiled `forward`, see `_compiled_forward`

CALL_ONLY_ARGUMENTS = ("streamer", "generator", "seed", "generation_tokens_hook_func", "generation_logits_hook_func",
                       "logits_processor")


class LLaDAGenerationConfig(GenerationConfig):
    r"""
    Generation settings of [`LLaDAGenerationMixin.diffusion_generate`]; saved as `generation_config.json`.

    Besides the standard fields it uses (`max_new_tokens`, `temperature`, `top_k`, `top_p`, `min_new_tokens`,
    `num_return_sequences`, `return_dict_in_generate`, `eos_token_id`, `pad_token_id`, `do_sample`, the logits
    processor flags `repetition_penalty`, `bad_words_ids`, `sequence_bias`, `suppress_tokens`,
    `begin_suppress_tokens`, `min_p`, `typical_p`, `epsilon_cutoff`, `eta_cutoff`, `renormalize_logits` (see
    `processors_llada`), and `compile_config`), it holds the fields below. Standard flags that cannot apply to
    diffusion sampling (`num_beams > 1`, `penalty_alpha`, `no_repeat_ngram_size`, ...) are a `ValueError`.

    Args:
        steps (`int`, *optional*):
            Number of denoising steps over the whole generation. Defaults to `max_new_tokens` (one token per step;
            with mask tokens in the prompt, the length of the masked span).
        block_length (`int`, *optional*):
            Length of the semi-autoregressive blocks; must divide `max_new_tokens` (the masked span's length with
            mask tokens in the prompt). Defaults to the whole length, or for a block diffusion model
            (`config.block_size`) to its block size, which it must divide.
        remasking (`str`, *optional*, defaults to `"low_confidence"`):
            Which masked positions a step commits first, a name of `sampling_llada.REMASKING_STRATEGIES`:
            `"low_confidence"` (highest probability of the predicted token), `"random"`, `"entropy"` (lowest
            entropy) or `"margin"` (largest top-1 minus top-2 probability).
        token_sampling (`str`, *optional*, defaults to `"gumbel"`):
            How a sampled candidate token is drawn (`temperature > 0`), a key of `sampling_llada.TOKEN_SAMPLERS`:
            `"gumbel"` LLaDA's Gumbel-max, a float64 uniform per position and vocabulary token; `"inverse_cdf"`
            one uniform per position (the token whose interval of the cumulative distribution holds it): the same
            distribution, another realisation, without the vocabulary-sized draws of every step.
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
        use_cache (`bool` or `str`, *optional*):
            Key/value caching across steps (Fast-dLLM, Wu et al. 2025; see `cache_llada`): `"prefix"` runs, after a
            block's first step, the block and everything after it; `"dual"` only the block. Stale keys/values make
            both approximations; `False` runs the whole canvas at every step. `None` (default): only an exact
            cache, i.e. none for a full-attention model and, for a block diffusion model, its cache of the finished
            blocks (`BlockKVCache`; any value but `False` selects it, and it needs no refresh).
        cache_refresh_interval (`int`, *optional*):
            With a cache, also refresh it (run the whole canvas) at every `k`-th step inside a block. `None`: only
            at block starts; `1`: every step, which gives exactly the tokens of `use_cache=False`.
        cache_window (`str`, *optional*):
            With `use_cache="dual"`, which positions of the block a windowed step runs: `None` or `"block"` all of
            them (Fast-dLLM); `"masked"` the still-masked ones and those committed since their keys/values were
            computed (at the previous step), the other committed positions of the block keeping their cached
            keys/values: a smaller forward pass, a staler cache. With a logits processor, and in a block where
            `min_new_tokens` forbids EOS, the block runs whole.
        cache_refresh_window (`str`, *optional*):
            With `use_cache="dual"` and no `cache_refresh_interval`, what the refresh at a block's start runs:
            `None` or `"canvas"` the whole canvas (Fast-dLLM); `"vicinity"` (after the first block) the block just
            finished and the new one, so that the finished block's keys/values come from its final tokens while the
            prompt's, the earlier blocks' and the masked suffix's stay as last computed (`cache_llada`): a pass
            of two blocks instead of the canvas, a staler cache.
        threshold (`float`, *optional*):
            Parallel decoding: a step commits `max(scheduled count, number of masked positions of the block whose
            confidence exceeds threshold)` positions, most confident first. `steps` then becomes an upper bound;
            `threshold=1.0` (nothing exceeds it) is the scheduled algorithm.
        factor (`float`, *optional*):
            Parallel decoding (Fast-dLLM's factor rule): commits `max(scheduled count, n)` with n the largest count
            such that `(n + 1) * (1 - c_n) < factor`, c_n the n-th largest confidence. Not with `threshold`.
        credit_decay (`float`, *optional*):
            Credit decoding (with `threshold` and the `"low_confidence"` or `"margin"` strategy): a position's
            confidence accumulates over the steps of a block while its candidate token stays the same,
            `credit = c + credit_decay * previous credit`, and the threshold applies to the credit
            (`sampling_llada.ConfidenceCredit`). In [0, 1]; 0 is plain threshold decoding.
        early_stop (`bool`, *optional*, defaults to `False`):
            Stop working on a row once it is done: it has an EOS among its committed generated tokens and no masked
            position before the first one. Its remaining masked positions are filled with padding (EOS without a
            pad id) and it leaves the forward batch; the loop ends when every row is done. The returned sequences
            are those of `early_stop=False` (everything after the first EOS becomes padding anyway); `nfe` and
            the decode steps after the stop differ.
        compile (`bool`, *optional*, defaults to `False`):
            Run each step's forward through `torch.compile` with static shapes (one compilation per canvas shape and
            kind of pass; see the module docstring), with the settings of `compile_config` (a transformers
            `CompileConfig`) or `fullgraph=True, dynamic=False`. Setting `compile_config` turns it on too;
            `disable_compile=True` turns it off.

    `max_new_tokens` defaults to 128; `temperature` None or 0 is greedy (left unset by default so that a plain
    `GenerationConfig` reading `generation_config.json` does not warn). `min_new_tokens` forbids EOS in the first
    generated positions; tokens after the first EOS become `pad_token_id` (EOS if no pad id).
    """

    # The fields of diffusion sampling and their defaults (the standard fields are the base class's).
    DIFFUSION_DEFAULTS = dict(steps=None, block_length=None, remasking="low_confidence", remask_ratio=None,
                              cfg_scale=0.0, mask_token_id=None, output_history=False, cache_refresh_interval=None,
                              threshold=None, factor=None, credit_decay=None, early_stop=False, compile=False,
                              cache_window=None, cache_refresh_window=None, token_sampling="gumbel")

    def __init__(self, **kwargs):
        for name, default in self.DIFFUSION_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        kwargs.setdefault("use_cache", None)  # a standard field, set by the base class: our meaning, our default
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
        for name, minimum in (("max_new_tokens", 0), ("steps", 1), ("block_length", 1), ("top_k", 0),
                              ("min_new_tokens", 0), ("mask_token_id", 0), ("pad_token_id", 0),
                              ("num_return_sequences", 1)):
            _check_int(self, name, minimum)
        for eos in as_id_list(self.eos_token_id):
            if not (isinstance(eos, int) and not isinstance(eos, bool) and eos >= 0):
                _fail(self, "eos_token_id", "None, an integer >= 0 or a list of them", self.eos_token_id)
        if self.temperature is not None and not (_is_number(self.temperature) and self.temperature >= 0):
            _fail(self, "temperature", "None or a number >= 0 (0 or None = greedy)", self.temperature)
        if self.top_p is not None and not (_is_number(self.top_p) and 0 < self.top_p <= 1):
            _fail(self, "top_p", "None or a number in (0, 1]", self.top_p)
        if self.remasking not in REMASKING_STRATEGIES:
            _fail(self, "remasking", f"one of {tuple(REMASKING_STRATEGIES)}", self.remasking)
        if self.token_sampling not in TOKEN_SAMPLERS:
            _fail(self, "token_sampling", f"one of {tuple(TOKEN_SAMPLERS)}", self.token_sampling)
        if self.remask_ratio is not None and not (_is_number(self.remask_ratio) and 0 <= self.remask_ratio < 1):
            _fail(self, "remask_ratio", "None or a number in [0, 1)", self.remask_ratio)
        if not _is_number(self.cfg_scale) or self.cfg_scale < 0:
            _fail(self, "cfg_scale", "a number >= 0 (0 = no guidance)", self.cfg_scale)
        if not isinstance(self.output_history, bool):
            _fail(self, "output_history", "a bool", self.output_history)
        if self.use_cache not in CACHE_MODES:
            _fail(self, "use_cache", "None, False, 'prefix' or 'dual'", self.use_cache)
        _check_int(self, "cache_refresh_interval", minimum=1)
        if self.threshold is not None and not (_is_number(self.threshold) and 0 <= self.threshold <= 1):
            _fail(self, "threshold", "None or a number in [0, 1]", self.threshold)
        if self.factor is not None and not (_is_number(self.factor) and self.factor > 0):
            _fail(self, "factor", "None or a number > 0", self.factor)
        if self.threshold is not None and self.factor is not None:
            raise ValueError(f"{type(self).__name__}: set `threshold` or `factor`, not both.")
        if self.cache_window not in (None, "block", "masked"):
            _fail(self, "cache_window", "None, 'block' or 'masked'", self.cache_window)
        if self.cache_window == "masked" and (self.use_cache != "dual" or self.remasking not in
                                              POSITIONWISE_STRATEGIES):
            raise ValueError(
                f"{type(self).__name__}: `cache_window='masked'` runs the masked positions of a dual-cache block: it "
                f"needs use_cache='dual' and remasking in {POSITIONWISE_STRATEGIES}; got use_cache={self.use_cache!r}, "
                f"remasking={self.remasking!r}.")
        if self.cache_refresh_window not in (None, "canvas", "vicinity"):
            _fail(self, "cache_refresh_window", "None, 'canvas' or 'vicinity'", self.cache_refresh_window)
        if self.cache_refresh_window == "vicinity" and (self.use_cache != "dual" or
                                                        self.cache_refresh_interval is not None):
            raise ValueError(
                f"{type(self).__name__}: `cache_refresh_window='vicinity'` narrows a dual cache's block-start "
                f"refresh: it needs use_cache='dual' and cache_refresh_interval None; got use_cache="
                f"{self.use_cache!r}, cache_refresh_interval={self.cache_refresh_interval!r}.")
        if self.credit_decay is not None:
            if not (_is_number(self.credit_decay) and 0 <= self.credit_decay <= 1):
                _fail(self, "credit_decay", "None or a number in [0, 1]", self.credit_decay)
            if self.threshold is None or self.remasking not in ("low_confidence", "margin"):
                raise ValueError(f"{type(self).__name__}: `credit_decay` accumulates confidences towards `threshold`: "
                                 f"set `threshold` too and `remasking` 'low_confidence' or 'margin' (got threshold="
                                 f"{self.threshold!r}, remasking={self.remasking!r}).")
        if not isinstance(self.early_stop, bool):
            _fail(self, "early_stop", "a bool", self.early_stop)
        if not isinstance(self.compile, bool):
            _fail(self, "compile", "a bool", self.compile)
        reject_unsupported_generation_flags(self, _plain_generation_config())
        if self.max_new_tokens and not getattr(self, "_schedule_checked_later", False):
            block_schedule(self.max_new_tokens, self.block_length, self.steps)  # without mask tokens in the prompt


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _fail(config, name, expected, value):
    raise ValueError(f"{type(config).__name__}: `{name}` must be {expected}, got {value!r}.")


def _check_int(config, name, minimum):
    value = getattr(config, name, None)
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        _fail(config, name, f"None or an integer >= {minimum}", value)


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
# The mixin


@dataclass
class DenoisingContext:
    """What stays fixed during one `diffusion_generate` call, and the key/value cache."""

    config: LLaDAGenerationConfig
    mask_token_id: int
    prompt_length: int
    attention_mask: Optional[torch.Tensor]  # (batch, seq), None when nothing is padded
    prompt_positions: torch.Tensor  # (batch, seq) bool: real prompt tokens (masked in the guidance copy)
    generation_start: int = 0  # the first canvas column holding a mask token: the blocks cover it to the end
    position_ids: Optional[torch.Tensor] = None  # (batch, seq): the canvas's positions, for windowed passes
    cache: Optional[CanvasKVCache] = None
    eos_token_ids: tuple = ()
    pad_token_id: Optional[int] = None  # what follows a row's first EOS: the pad id, else the first EOS id
    randomness: Optional[RandomDraws] = None
    streamer: Optional[object] = None
    tokens_hook: Optional[Callable] = None
    logits_hook: Optional[Callable] = None
    logits_processor: Optional[BlockLogitsProcessor] = None  # None when no processor or warper is on
    forward: Optional[Callable] = None  # the model, or its compiled forward with the model bound
    static_shapes: bool = False  # compiled: the same shapes at every step of a kind (see the module docstring)
    credit: Optional[ConfidenceCredit] = None  # credit decoding's state (`credit_decay`)
    kv_tokens: Optional[torch.Tensor] = None  # (batch, seq) `cache_window="masked"`: each cached key's token

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

    def infill(self, prefix_ids, suffix_ids, length: int, **kwargs) -> torch.LongTensor:
        r"""
        Fills in `length` tokens between each prefix and its suffix: [`diffusion_generate`] on the left-padded canvas
        `prefix + [mask] * length + suffix`, with nothing appended (`max_new_tokens=0`). The blocks, steps and
        every sampling option (keyword arguments) apply to the `length` masked positions.

        Args:
            prefix_ids, suffix_ids (`list[int]`, `list[list[int]]` or `torch.LongTensor`):
                The text before and after the gap, one of each per row (one list or a 1-D tensor: one row). Either
                may be empty (`[]`).
            length (`int`): the number of tokens to fill in, the same for every row.

        Returns:
            `torch.LongTensor` of shape `(batch * num_return_sequences, length)`: the tokens filled in.

        Example:

        ```python
        >>> prefix, suffix = tokenizer("To be, or ").input_ids, tokenizer(", that is the question").input_ids
        >>> middle = model.infill(prefix, suffix, length=8, steps=8)
        >>> tokenizer.decode(middle[0])
        ```
        """
        for name in ("max_new_tokens", "gen_length", "max_length", "input_ids", "attention_mask",
                     "return_dict_in_generate", "output_history"):
            if name in kwargs:
                raise ValueError(f"infill: `{name}` does not apply (the gap is `length` tokens and infill returns "
                                 "them); call diffusion_generate with mask tokens in `input_ids` for the full output.")
        ids = {name: kwargs[name] for name in ("mask_token_id", "pad_token_id") if name in kwargs}
        config = self._prepare_generation_config(kwargs.get("generation_config"), ids)
        mask_token_id = self._resolve_mask_token_id(config)
        pad_token_id = next((i for i in (config.pad_token_id, self.config.pad_token_id) if i not in (None, mask_token_id)),
                            0 if mask_token_id != 0 else 1)
        input_ids, attention_mask, middle_start = infill_canvas(
            as_token_rows(prefix_ids, "prefix_ids"), as_token_rows(suffix_ids, "suffix_ids"), length, mask_token_id,
            pad_token_id, device=self.device)
        out = self.diffusion_generate(input_ids, attention_mask, max_new_tokens=0, return_dict_in_generate=False,
                                      **kwargs)
        middle_start = middle_start.repeat_interleave(out.shape[0] // input_ids.shape[0])  # num_return_sequences
        columns = middle_start[:, None] + torch.arange(length, device=out.device)  # (rows, length)
        return out.gather(1, columns)

    @torch.no_grad()
    def diffusion_generate(self, input_ids=None, attention_mask=None, generation_config=None, **kwargs):
        r"""
        Generates `max_new_tokens` tokens after each prompt by iterative unmasking (conventions: module docstring).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, prompt_len)`, *optional*):
                Left-padded prompts. `None` generates unconditionally `num_return_sequences` (default 1) rows.
                Mask tokens in a prompt are generated too (infilling; see the module docstring and [`infill`]).
            attention_mask (`torch.Tensor` of shape `(batch, prompt_len)`, *optional*):
                1 for prompt tokens, 0 for padding. Padding never changes and is never attended to; positions count
                real tokens only, so right-padded prompts give the same continuations.
            generation_config ([`LLaDAGenerationConfig`] or `dict`, *optional*):
                Base settings; defaults to `model.generation_config`. Keyword arguments override its fields:
                `max_new_tokens` (alias `gen_length`; or `max_length` = prompt + new), `steps`, `block_length`,
                `temperature`, `top_k`, `top_p`, `token_sampling`, `remasking`, `remask_ratio`, `cfg_scale`,
                `mask_token_id`, `eos_token_id`, `pad_token_id`, `min_new_tokens`, `num_return_sequences` (copies of
                each prompt),
                `output_history`, `return_dict_in_generate`, the fast paths `use_cache` (`"prefix"`/`"dual"`),
                `cache_refresh_interval`, `cache_window`, `cache_refresh_window`, `threshold`, `factor`,
                `credit_decay`, `early_stop`, `compile`, the logits processor
                flags (`repetition_penalty`, `bad_words_ids`, `suppress_tokens`, `min_p`, ...) and `do_sample`
                (`True`: sample, at temperature 1 unless one is set; `False`: greedy).
            logits_processor (`LogitsProcessorList`, *optional*):
                transformers logits processors applied every step to the logits of the block being decoded, after
                those the flags build; each sees the current canvas as `input_ids` (`processors_llada`).
            seed (`int`, *optional*) or generator (`torch.Generator`, *optional*):
                Source of the random draws. `seed`: one stream per row, from `seed`, the row's prompt and its index
                among the copies of that prompt, so a prompt samples the same alone or in any batch and different
                prompts do not share their random draws; a `generator` (default:
                torch's global one) is one stream for the whole batch, as in LLaDA's code.
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
        logits_processor = options.pop("logits_processor")
        config = self._prepare_generation_config(generation_config, kwargs)
        prompt_ids, prompt_mask = self._prepare_prompt(input_ids, attention_mask, config.num_return_sequences)
        batch, prompt_length = prompt_ids.shape
        mask_token_id = self._resolve_mask_token_id(config)
        max_new_tokens = self._resolve_length(config, prompt_ids, prompt_mask, mask_token_id)

        canvas = torch.cat([prompt_ids, prompt_ids.new_full((batch, max_new_tokens), mask_token_id)], dim=1)
        attention_mask = torch.cat([prompt_mask, prompt_mask.new_ones((batch, max_new_tokens))], dim=1)
        # the masked span, from the first to the last column holding a mask token: the generated part, or more
        # with mask tokens in a prompt (infilling), or less with only those
        masked_columns = (canvas == mask_token_id).any(dim=0).nonzero().squeeze(-1)
        generation_start, generation_end = int(masked_columns[0]), int(masked_columns[-1]) + 1
        span_name = "max_new_tokens" if (generation_start, generation_end) == (prompt_length, canvas.shape[1]) else (
            f"the masked span (canvas columns {generation_start} to {generation_end - 1}, from the first to the last "
            "mask token)")
        block_size = getattr(self.config, "block_size", None)
        block_length = config.block_length
        if block_size is not None:
            block_length = _block_model_length(config, block_size, generation_start, prompt_length)
        block_length, steps_per_block = block_schedule(generation_end - generation_start, block_length,
                                                       config.steps, length_name=span_name)
        prompt_positions = attention_mask.bool() & (canvas != mask_token_id)  # (batch, seq), masked for guidance
        prompt_positions[:, prompt_length:] = False
        eos_token_ids = tuple(as_id_list(config.eos_token_id))
        randomness = RandomDraws.for_call(options.pop("seed"), options.pop("generator"), prompt_ids, prompt_mask,
                                          config.num_return_sequences or 1, self.device)
        context = DenoisingContext(
            config=config, mask_token_id=mask_token_id, prompt_length=prompt_length,
            attention_mask=None if bool(attention_mask.all()) else attention_mask, generation_start=generation_start,
            prompt_positions=prompt_positions, eos_token_ids=eos_token_ids,
            pad_token_id=config.pad_token_id if config.pad_token_id is not None else next(iter(eos_token_ids), None),
            randomness=randomness, **options,
        )
        processors = BlockLogitsProcessor(config, logits_processor, eos_token_ids,
                                          prompt_length if max_new_tokens else None, self.device)
        context.logits_processor = processors if processors else None
        compile_config = getattr(config, "compile_config", None)
        context.static_shapes = bool(config.compile or compile_config is not None) and not getattr(
            config, "disable_compile", None)
        if block_size is not None and context.static_shapes:
            raise ValueError(
                "diffusion_generate: `compile` is not supported for a block diffusion model (`config.block_size`): "
                "its exact cache grows by one block per block, so no single static shape serves the whole call. "
                "Leave `compile` unset."
            )
        context.forward = self._compiled_forward(compile_config) if context.static_shapes else self
        if config.use_cache and context.has_hooks:
            raise ValueError(
                "diffusion_generate: `use_cache` cannot be combined with `generation_tokens_hook_func` or "
                "`generation_logits_hook_func`: the hooks take the logits of the whole canvas at every step."
            )
        copies = 2 if config.cfg_scale > 0 else 1
        if block_size is not None:  # generated blocks start at the prompt's end; finished blocks are cached exactly
            context.position_ids = block_position_ids(attention_mask, prompt_length, block_size)
            if config.use_cache is not False and not context.has_hooks:
                context.cache = BlockKVCache(block_size, prompt_length, copies=copies)
        elif config.use_cache:
            context.position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)  # as the model's default
            context.cache = CanvasKVCache(config.use_cache, config.cache_refresh_interval, copies=copies,
                                          static_start=generation_start if context.static_shapes else None,
                                          refresh_window=config.cache_refresh_window)
        if config.credit_decay is not None:
            context.credit = ConfidenceCredit(config.credit_decay, batch, block_length, self.device)
        if config.cache_window == "masked":
            context.kv_tokens = torch.full_like(canvas, -1)
        canvas, decode_step, history, nfe = self._denoise(canvas, block_length, steps_per_block, context)
        sequences = canvas
        if eos_token_ids:  # generated tokens after a row's first EOS become padding
            generated = pad_after_eos(canvas[:, prompt_length:], eos_token_ids, context.pad_token_id)
            sequences = torch.cat([canvas[:, :prompt_length], generated], dim=1)
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
        rows, step = RunningRows(canvas.shape[0]), 0
        for block_index, block_steps in enumerate(steps_per_block):
            block_start = context.generation_start + block_index * block_length
            block = slice(block_start, block_start + block_length)
            for block_step in range(block_steps):
                # hooks take the whole batch, and static shapes keep it; otherwise finished rows leave it
                if not context.has_hooks and not context.static_shapes:
                    unfinished = (canvas[:, context.generation_start:] == mask_token_id).any(dim=-1)  # (batch,)
                    keep = rows.drop_finished(unfinished)
                    if keep is not None and context.cache is not None:
                        context.cache.keep_rows(keep)
                if not bool((rows.take(canvas)[:, block] == mask_token_id).any()):
                    break  # block finished early (parallel decoding, more steps than tokens, a hook, all rows done)
                masked = canvas == mask_token_id  # (batch, seq)
                canvas, logits = self._denoising_step(canvas, rows, step, block_step, block_steps, block, context)
                canvas = _call_hook(context.tokens_hook, "generation_tokens_hook_func", step, canvas, logits)
                decode_step.masked_fill_(masked & (canvas != mask_token_id), step)
                if config.early_stop and context.eos_token_ids:
                    generated = canvas[:, context.prompt_length:]  # a view: filling it fills the canvas
                    prompt_filled = ~(canvas[:, :context.prompt_length] == mask_token_id).any(dim=-1)  # (batch,)
                    fill_finished_rows(generated, mask_token_id, context.eos_token_ids, context.pad_token_id,
                                       ready=prompt_filled)
                if history is not None:
                    history.append(canvas)
                if context.streamer is not None:
                    context.streamer.put(canvas)
                step += 1
        if context.streamer is not None:
            context.streamer.end()
        return canvas, decode_step, history, step  # one forward call per step

    def _denoising_step(self, canvas, rows: RunningRows, step, block_step, block_steps, block: slice,
                        context: DenoisingContext):
        """One forward pass and one commit in the current block for the running rows.

        Returns the new canvas (a copy: history and streamers may keep the previous one) and the logits passed to
        the tokens hook.
        """
        config, mask_token_id = context.config, context.mask_token_id
        slots = None  # (rows, k) positions of the block that the step predicts; None: all of them
        if context.has_hooks:  # hooks see (and the logits hook may change) the logits of the whole canvas
            logits = self._denoiser_logits(canvas, context, rows)  # (batch, seq, vocab)
            logits = _call_hook(context.logits_hook, "generation_logits_hook_func", step, canvas, logits)
            block_logits = logits[:, block]
        else:
            window = None  # `cache_window="masked"`: (rows, k') block positions a windowed pass runs
            if _predicts_masked_only(config, context, block):  # the head and the sampler skip committed positions
                block_now = rows.take(canvas)[:, block]  # (rows, n)
                stale = None if context.kv_tokens is None else block_now != rows.take(context.kv_tokens)[:, block]
                slots = masked_slots(block_now, mask_token_id, stale)  # (rows, k)
                window = None if stale is None else masked_slots(block_now, mask_token_id, stale, with_stale=True)
            logits = block_logits = self._denoiser_logits(canvas, context, rows, block, block_step, slots, window)
        # block_offset < 0 for a block that starts inside the prompt: no EOS at the prompt's mask tokens
        block_logits = constrain_logits(block_logits, mask_token_id, context.eos_token_ids, config.min_new_tokens,
                                        block_offset=block.start - context.prompt_length)  # (rows, n, vocab)
        if context.logits_processor is not None:
            block_logits = context.logits_processor(rows.take(canvas), rows.take(context.attention_mask),
                                                    block_logits, block, mask_token_id, config.temperature or 0.0)
        block_tokens = rows.take(canvas)[:, block]  # (rows, n)
        masked_count = (block_tokens == mask_token_id).sum(dim=-1)  # (rows,)
        num_transfer = num_transfer_tokens(masked_count, block_steps - block_step, config.remask_ratio)
        credit = None
        if context.credit is not None:
            if block_step == 0:
                context.credit.reset()
            credit = functools.partial(context.credit.boost, rows=rows, slots=slots)
        new_block, _ = denoise_block(
            block_logits, block_tokens if slots is None else block_tokens.gather(1, slots), num_transfer,
            mask_token_id, config.temperature or 0.0, config.top_k, config.top_p, config.remasking,
            context.randomness if slots is None else SlotDraws(context.randomness, slots, block_tokens.shape[1]),
            config.threshold, config.factor, rows=rows, credit=credit, token_sampling=config.token_sampling,
        )
        if slots is not None:  # (rows, k) -> (rows, n): the committed slots write back their own tokens
            new_block = block_tokens.scatter(1, slots, new_block)
        canvas = canvas.clone()
        canvas[:, block] = rows.put(canvas[:, block], new_block)
        return canvas, logits

    def _denoiser_logits(self, canvas, context: DenoisingContext, rows: RunningRows, block: slice = slice(None),
                         block_step: int = 0, slots: Optional[torch.Tensor] = None,
                         window: Optional[torch.Tensor] = None):
        """Logits at `block` of the canvas for the running rows, (batch, seq) -> (rows, n, vocab), from one call of
        the model's `forward` (only the block goes through the output head: `logits_to_keep`); with `slots`
        (rows, k), indices into the block, the logits of those positions only, (rows, k, vocab). A dual-cache
        windowed step with `window` (rows, k'), block indices whose first k columns are `slots`, runs only those
        positions (`cache_window="masked"`).

        Guidance runs the canvas and its prompt-masked copy in one batched call. With a cache the pass covers the
        window the cache plans for `block_step` (the whole canvas at a refresh).
        """
        cfg_scale = context.config.cfg_scale
        input_ids = rows.take(canvas)  # (rows, seq)
        attention_mask, position_ids = rows.take(context.attention_mask), rows.take(context.position_ids)
        if cfg_scale > 0:  # a block model's unconditional copy drops the prompt (see `guidance_inputs`)
            input_ids, attention_mask, position_ids = guidance_inputs(
                input_ids, rows.take(context.prompt_positions), context.mask_token_id, attention_mask, position_ids,
                drop_prompt=getattr(self.config, "block_size", None) is not None)
        cache, forward = context.cache, context.forward or self
        start, stop = (0, input_ids.shape[1]) if cache is None else cache.plan_window(block, block_step,
                                                                                      input_ids.shape[1])
        keep = 0 if block.start is None else slice(block.start - start, block.stop - start)  # 0: every position
        if slots is not None:  # (rows, k) positions of the block: only those go through the head
            keep = slots + keep.start if cfg_scale == 0 else torch.cat([slots, slots]) + keep.start
        if context.kv_tokens is not None:
            input_ids, position_ids, start, stop, keep = self._masked_window(
                context, rows, block, window, input_ids, position_ids, (start, stop), keep)
        if context.static_shapes and keep != 0:  # an index tensor: the same graph for every block
            keep = torch.arange(keep.start, keep.stop, device=input_ids.device)
        if cache is None:  # position_ids: None unless set for a block model (its per-row shift)
            outputs = forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              logits_to_keep=keep, return_dict=True)
        else:
            outputs = forward(input_ids=input_ids[:, start:stop], attention_mask=attention_mask,
                              position_ids=position_ids[:, start:stop], past_key_values=cache, logits_to_keep=keep,
                              return_dict=True)
        return outputs.logits if cfg_scale == 0 else guided_logits(outputs.logits, cfg_scale)

    def _masked_window(self, context, rows, block, window, input_ids, position_ids, planned, keep):
        """`cache_window="masked"`: turns a planned dual-cache window (the block) into the per-row positions `window`
        (their ids and positions gathered, the cache told) and records which token each recomputed key belongs to.
        Returns `(input_ids, position_ids, start, stop, logits_to_keep)` for the forward pass."""
        canvas_rows = input_ids[:rows.take(context.kv_tokens).shape[0]]  # the conditional rows (not the guidance copy)
        if window is None or planned != (block.start, block.stop):  # a refresh, or a block that runs whole
            start, stop = planned
            context.kv_tokens[:, start:stop] = rows.put(context.kv_tokens[:, start:stop], canvas_rows[:, start:stop])
            return input_ids, position_ids, start, stop, keep
        columns = window + block.start  # (rows, k') canvas columns
        context.cache.plan_positions(columns)
        seen = rows.take(context.kv_tokens).scatter(1, columns, canvas_rows.gather(1, columns))
        context.kv_tokens = rows.put(context.kv_tokens, seen)
        copies = input_ids.shape[0] // columns.shape[0]
        keep = torch.arange(keep.shape[1], device=input_ids.device)  # slots = window[:, :k]
        gathered = columns.repeat(copies, 1)
        return (input_ids.gather(1, gathered), position_ids.gather(1, gathered), 0, columns.shape[1], keep)

    def _compiled_forward(self, compile_config=None) -> Callable:
        """This model's `forward` through `torch.compile`, with the model bound: compiled once per model class and
        settings (and then once per shape), kept for later calls."""
        options = _compile_options(compile_config)
        key = (type(self), repr(sorted(options.items())))
        if key not in _COMPILED_FORWARDS:
            _COMPILED_FORWARDS[key] = torch.compile(type(self).forward, **options)
        return functools.partial(_COMPILED_FORWARDS[key], self)

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
        # the blocks tile the masked span, known once the prompt is (mask tokens in it add to max_new_tokens):
        # diffusion_generate checks the schedule then, before any forward pass
        config._schedule_checked_later = True
        unused = config.update(**kwargs)
        if unused:
            raise ValueError(
                f"diffusion_generate: unexpected keyword arguments {sorted(unused)}. Expected fields of "
                f"LLaDAGenerationConfig or one of {CALL_ONLY_ARGUMENTS}."
            )
        apply_do_sample(config, kwargs)
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

    def _resolve_length(self, config, prompt_ids, prompt_mask, mask_token_id) -> int:
        """`max_new_tokens` (or `max_length` minus the prompt), checked against `max_position_embeddings`; 0 only
        when the prompts hold mask tokens to fill."""
        prompt_length = prompt_mask.shape[1]
        prompt_masks = prompt_ids == mask_token_id  # (batch, prompt_len)
        if bool((prompt_masks & (prompt_mask == 0)).any()):
            raise ValueError(f"diffusion_generate: padding positions (attention_mask 0) hold the mask token "
                             f"({mask_token_id}); pad with another id.")
        has_masks = bool(prompt_masks.any())
        max_new_tokens = config.max_new_tokens
        if max_new_tokens is None:
            if config.max_length is None:
                raise ValueError("diffusion_generate: set `max_new_tokens` (the number of tokens to generate).")
            max_new_tokens = config.max_length - prompt_length
            if max_new_tokens < (0 if has_masks else 1):
                raise ValueError(
                    f"diffusion_generate: `max_length` ({config.max_length}) leaves no room after the prompt "
                    f"({prompt_length} tokens); set `max_new_tokens` instead."
                )
        if max_new_tokens == 0 and not has_masks:
            raise ValueError(
                f"diffusion_generate: nothing to generate: `max_new_tokens=0` and no prompt holds the mask token "
                f"({mask_token_id}). Put mask tokens where text should be filled in, or set `max_new_tokens` > 0."
            )
        longest_prompt = int(prompt_mask.sum(dim=-1).max()) if prompt_length else 0
        limit = getattr(self.config, "max_position_embeddings", None)
        if limit is not None and longest_prompt + max_new_tokens > limit:  # as the forward pass: a warning
            logger.warning_once(
                f"diffusion_generate: prompt + `max_new_tokens` goes beyond the model's `max_position_embeddings` "
                f"({limit}), the length it is meant for; expect poorer text at the positions beyond it."
            )
        return max_new_tokens

    def _resolve_mask_token_id(self, config) -> int:
        """The mask id (the generation config's, else the model config's); it, the pad id and the EOS ids must be
        in the vocabulary (a pad id outside it would be written into the output)."""
        mask_token_id = config.mask_token_id
        if mask_token_id is None:
            mask_token_id = getattr(self.config, "mask_token_id", None)
        if mask_token_id is None:
            raise ValueError(
                "diffusion_generate: no mask token id: set `mask_token_id` in the generation config or the model "
                "config, or pass `mask_token_id=`."
            )
        vocab_size = getattr(self.config, "vocab_size", None)
        for name, values in (("mask_token_id", [mask_token_id]), ("pad_token_id", as_id_list(config.pad_token_id)),
                             ("eos_token_id", as_id_list(config.eos_token_id))):
            for value in values:
                if vocab_size is not None and not 0 <= value < vocab_size:
                    raise ValueError(f"diffusion_generate: `{name}` must be in [0, {vocab_size - 1}] (the "
                                     f"vocabulary), got {value}.")
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


@functools.lru_cache(maxsize=None)
def _plain_generation_config() -> GenerationConfig:
    """The installed transformers' default generation settings (what "not set" looks like there)."""
    return GenerationConfig()


def _predicts_masked_only(config, context, block: slice) -> bool:
    """Whether a step on `block` may run the head and the sampler on the block's masked positions only (see
    `sampling_llada.masked_slots`): a confidence of each position on its own, no logits processor (they see the
    whole block), dynamic shapes, and no EOS rule that depends on the position in this block."""
    eos_rule = context.eos_token_ids and (config.min_new_tokens or 0) > block.start - context.prompt_length
    return (config.remasking in POSITIONWISE_STRATEGIES and not eos_rule and context.logits_processor is None
            and not context.static_shapes)


def _block_model_length(config, block_size: int, generation_start: int, prompt_length: int) -> int:
    """The sampling block length of a block diffusion model: its `block_size` by default; a smaller one must divide
    it (each model block is then decoded in parts, left to right). Mask tokens in the prompt are refused: a block
    sees only the blocks before it, never a suffix to fill towards."""
    if generation_start < prompt_length:
        raise ValueError(
            f"diffusion_generate: a block diffusion model (`config.block_size`={block_size}) cannot fill mask tokens "
            f"inside a prompt (the first is at column {generation_start}, the prompt is {prompt_length} long): its "
            "attention is causal between blocks, so a masked middle would never see the text after it. Generate "
            "after the prompt, or use a full-attention model for infilling."
        )
    block_length = block_size if config.block_length is None else config.block_length
    if block_size % block_length:
        raise ValueError(
            f"diffusion_generate: `block_length` ({block_length}) must divide the model's `block_size` ({block_size}): "
            "a block diffusion model decodes one of its blocks, or a part of one, at a time given the finished "
            "blocks before it. Leave `block_length` unset to use the block size."
        )
    return block_length


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
    logits_processor = kwargs.pop("logits_processor", None)
    if logits_processor is not None and not (isinstance(logits_processor, (list, tuple))
                                             and all(callable(p) for p in logits_processor)):
        raise TypeError(
            "diffusion_generate: `logits_processor` must be a LogitsProcessorList (or a list of callables "
            f"(input_ids, scores) -> scores), got {type(logits_processor).__name__}."
        )
    generator, seed = kwargs.pop("generator", None), kwargs.pop("seed", None)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"diffusion_generate: `generator` must be a torch.Generator, got {type(generator).__name__}.")
    if seed is not None:
        if generator is not None:
            raise ValueError("diffusion_generate: pass `generator` or `seed`, not both.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"diffusion_generate: `seed` must be an int, got {seed!r}.")
    return dict(streamer=streamer, generator=generator, seed=seed, logits_processor=logits_processor, **hooks)


def _compile_options(compile_config) -> dict:
    """`torch.compile` keyword arguments from a transformers `CompileConfig` (or a dict of its fields); without one,
    a full graph with static shapes."""
    if compile_config is None:
        return dict(fullgraph=True, dynamic=False)
    names = ("fullgraph", "dynamic", "backend", "mode", "options")
    settings = compile_config if isinstance(compile_config, dict) else {n: getattr(compile_config, n, None)
                                                                         for n in names}
    if settings.get("backend", "inductor") != "inductor":
        names = names[:3]  # `mode` and `options` are inductor's
    return {name: settings[name] for name in names if settings.get(name) is not None}


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


__all__ = ["LLaDAGenerationConfig", "LLaDAGenerateOutput", "LLaDAGenerationMixin", "DenoisingContext"]
