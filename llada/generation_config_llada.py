"""Generation settings: `LLaDAGenerationConfig`, and the checks that turn one `diffusion_generate` call's arguments
into its settings, prompt, length and per-call objects before the first forward pass.

Every field is checked on its own and in combination when the config is built or updated; a bad value is a
`ValueError` naming the field, what it must be and what it got. The block/step schedule is checked again once the
prompt is known (mask tokens in a prompt make the masked span longer than `max_new_tokens`).

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import copy
import functools
import math
from typing import Optional

import torch

from transformers import GenerationConfig
from transformers.utils import logging

from .cache_llada import CACHE_MODES
from .checks_llada import first_outside, position_limit
from .processors_llada import apply_do_sample, reject_unsupported_generation_flags
from .sampling_llada import POSITIONWISE_STRATEGIES, REMASKING_STRATEGIES, TOKEN_SAMPLERS, as_id_list, block_schedule


logger = logging.get_logger(__name__)

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
            entropy), `"margin"` (largest top-1 minus top-2 probability) or `"left_to_right"` (the leftmost
            masked position: in order, the factorisation `llada.evaluation.in_order_nll` scores).
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
        entropy_bound (`float`, *optional*):
            Parallel decoding (entropy-bounded, the EB sampler of Ben-Hamu et al. 2025): commits
            `max(scheduled count, n)` with n the largest count such that the n most confident positions have
            `sum(H) - max(H) <= entropy_bound`, H the entropy (nats) of the model's distribution at a position.
            0 commits together only positions whose predictions are certain. Not with `threshold` or `factor`.
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
                              threshold=None, factor=None, entropy_bound=None, credit_decay=None, early_stop=False,
                              compile=False, cache_window=None, cache_refresh_window=None, token_sampling="gumbel")

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
        if self.entropy_bound is not None and not (_is_number(self.entropy_bound) and self.entropy_bound >= 0):
            _fail(self, "entropy_bound", "None or a number >= 0", self.entropy_bound)
        rules = [name for name in ("threshold", "factor", "entropy_bound") if getattr(self, name) is not None]
        if len(rules) > 1:
            raise ValueError(f"{type(self).__name__}: set one parallel-decoding rule of `threshold`, `factor` and "
                             f"`entropy_bound`, not {' and '.join(rules)}.")
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


@functools.lru_cache(maxsize=None)
def _plain_generation_config() -> GenerationConfig:
    """The installed transformers' default generation settings (what "not set" looks like there)."""
    return GenerationConfig()


def convert_generation_config(generation_config) -> LLaDAGenerationConfig:
    """An `LLaDAGenerationConfig` from a plain `GenerationConfig`: the fields it changed from the transformers
    defaults (so transformers 4's `temperature=1.0, top_k=50` defaults do not turn sampling on), our defaults for
    the others; a `max_length` without `max_new_tokens` stays the length limit."""
    fields = {name: value for name, value in generation_config.to_diff_dict().items() if value is not None}
    if "max_length" in fields and "max_new_tokens" not in fields:
        fields["max_new_tokens"] = None
    return LLaDAGenerationConfig.from_dict(fields)


# ----------------------------------------------------------------------------------------------------------------
# a call's arguments: everything is checked before the first forward pass


def prepare_generation_config(model, generation_config, kwargs) -> LLaDAGenerationConfig:
    """A private copy of the base config (`generation_config`, else `model.generation_config`, else one made from
    `model.config`) with the keyword arguments applied; unknown arguments are errors."""
    if generation_config is None:
        generation_config = getattr(model, "generation_config", None)
    if generation_config is None:
        config = LLaDAGenerationConfig.from_model_config(model.config)
    elif isinstance(generation_config, dict):
        config = LLaDAGenerationConfig(**generation_config)
    elif isinstance(generation_config, LLaDAGenerationConfig):
        config = copy.deepcopy(generation_config)
    elif isinstance(generation_config, GenerationConfig):  # a plain one, or a copy of this class from elsewhere
        config = convert_generation_config(generation_config)
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


def pop_call_options(kwargs) -> dict:
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
        if isinstance(seed, tuple):
            seed = list(seed)
        if not all(isinstance(one, int) and not isinstance(one, bool) for one in
                   (seed if isinstance(seed, list) and seed else [seed])):
            raise TypeError(f"diffusion_generate: `seed` must be an int or a list of ints (one per prompt), "
                            f"got {seed!r}.")
    return dict(streamer=streamer, generator=generator, seed=seed, logits_processor=logits_processor, **hooks)


def prepare_prompt(input_ids, attention_mask, num_return_sequences, device, vocab_size: Optional[int] = None):
    """Prompts and their attention mask as (batch, prompt_len) long tensors on the model's device; the ids (padding
    included: it goes through the embedding too) must be in the vocabulary of `vocab_size` ids."""
    copies = num_return_sequences or 1
    if input_ids is None:
        if attention_mask is not None:
            raise ValueError("diffusion_generate: `attention_mask` was given without `input_ids`.")
        empty = torch.zeros((copies, 0), dtype=torch.long, device=device)  # unconditional generation
        return empty, empty.clone()
    if (not torch.is_tensor(input_ids) or input_ids.is_floating_point() or input_ids.dtype == torch.bool
            or input_ids.dim() not in (1, 2)):
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
    if vocab_size is not None:  # once per call, so on any device
        outside = first_outside(input_ids, 0, vocab_size - 1)
        if outside is not None:
            raise ValueError(f"diffusion_generate: `input_ids` must be ids in [0, {vocab_size - 1}] (the vocabulary), "
                             f"got {outside}.")
    input_ids = input_ids.to(device).long().repeat_interleave(copies, dim=0)
    attention_mask = attention_mask.to(device).long().repeat_interleave(copies, dim=0)
    return input_ids, attention_mask


def resolve_mask_token_id(config, model_config) -> int:
    """The mask id (the generation config's, else the model config's); it, the pad id and the EOS ids must be
    in the vocabulary (a pad id outside it would be written into the output)."""
    mask_token_id = config.mask_token_id
    if mask_token_id is None:
        mask_token_id = getattr(model_config, "mask_token_id", None)
    if mask_token_id is None:
        raise ValueError(
            "diffusion_generate: no mask token id: set `mask_token_id` in the generation config or the model "
            "config, or pass `mask_token_id=`."
        )
    vocab_size = getattr(model_config, "vocab_size", None)
    for name, values in (("mask_token_id", [mask_token_id]), ("pad_token_id", as_id_list(config.pad_token_id)),
                         ("eos_token_id", as_id_list(config.eos_token_id))):
        for value in values:
            if vocab_size is not None and not 0 <= value < vocab_size:
                raise ValueError(f"diffusion_generate: `{name}` must be in [0, {vocab_size - 1}] (the "
                                 f"vocabulary), got {value}.")
    return mask_token_id


def resolve_length(config, model_config, prompt_ids, prompt_mask, mask_token_id) -> int:
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
    limit = position_limit(model_config)
    if limit is not None and longest_prompt + max_new_tokens > limit:  # as the forward pass refuses
        raise ValueError(
            f"diffusion_generate: the prompt ({longest_prompt} tokens) + `max_new_tokens` ({max_new_tokens}) must be "
            f"at most the model's `max_position_embeddings` ({limit}), got {longest_prompt + max_new_tokens}."
        )
    return max_new_tokens


def block_model_length(config, block_size: int, generation_start: int, prompt_length: int) -> int:
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


def compile_options(compile_config) -> dict:
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


__all__ = ["LLaDAGenerationConfig", "CALL_ONLY_ARGUMENTS", "prepare_generation_config", "prepare_prompt",
           "resolve_length", "resolve_mask_token_id", "convert_generation_config", "pop_call_options", "compile_options",
           "block_model_length"]
