"""Generation settings: `LLaDAGenerationConfig` (saved as `generation_config.json`) and its validation.

Every field is checked on its own and in combination when the config is built or updated; a bad value is a
`ValueError` naming the field, what it must be and what it got. The block/step schedule is checked again once the
prompt is known (mask tokens in a prompt make the masked span longer than `max_new_tokens`), by the call
preparation of `prepare_llada`.

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import functools
import math

from transformers import GenerationConfig

from .cache_llada import CACHE_MODES
from .processors_llada import reject_unsupported_generation_flags
from .sampling_llada import POSITIONWISE_STRATEGIES, REMASKING_STRATEGIES, TOKEN_SAMPLERS, as_id_list, block_schedule


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
            (`rows_llada.ConfidenceCredit`). In [0, 1]; 0 is plain threshold decoding.
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
    DIFFUSION_DEFAULTS = dict(
        steps=None,
        block_length=None,
        remasking="low_confidence",
        remask_ratio=None,
        cfg_scale=0.0,
        mask_token_id=None,
        output_history=False,
        cache_refresh_interval=None,
        threshold=None,
        factor=None,
        entropy_bound=None,
        credit_decay=None,
        early_stop=False,
        compile=False,
        cache_window=None,
        cache_refresh_window=None,
        token_sampling="gumbel",
    )

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
        for name, minimum in (
            ("max_new_tokens", 0),
            ("steps", 1),
            ("block_length", 1),
            ("top_k", 0),
            ("min_new_tokens", 0),
            ("mask_token_id", 0),
            ("pad_token_id", 0),
            ("num_return_sequences", 1),
        ):
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
            raise ValueError(
                f"{type(self).__name__}: set one parallel-decoding rule of `threshold`, `factor` and "
                f"`entropy_bound`, not {' and '.join(rules)}."
            )
        if self.cache_window not in (None, "block", "masked"):
            _fail(self, "cache_window", "None, 'block' or 'masked'", self.cache_window)
        if self.cache_window == "masked" and (
            self.use_cache != "dual" or self.remasking not in POSITIONWISE_STRATEGIES
        ):
            raise ValueError(
                f"{type(self).__name__}: `cache_window='masked'` runs the masked positions of a dual-cache block: it "
                f"needs use_cache='dual' and remasking in {POSITIONWISE_STRATEGIES}; got "
                f"use_cache={self.use_cache!r}, remasking={self.remasking!r}."
            )
        if self.cache_refresh_window not in (None, "canvas", "vicinity"):
            _fail(self, "cache_refresh_window", "None, 'canvas' or 'vicinity'", self.cache_refresh_window)
        if self.cache_refresh_window == "vicinity" and (
            self.use_cache != "dual" or self.cache_refresh_interval is not None
        ):
            raise ValueError(
                f"{type(self).__name__}: `cache_refresh_window='vicinity'` narrows a dual cache's block-start "
                f"refresh: it needs use_cache='dual' and cache_refresh_interval None; got use_cache="
                f"{self.use_cache!r}, cache_refresh_interval={self.cache_refresh_interval!r}."
            )
        if self.credit_decay is not None:
            if not (_is_number(self.credit_decay) and 0 <= self.credit_decay <= 1):
                _fail(self, "credit_decay", "None or a number in [0, 1]", self.credit_decay)
            if self.threshold is None or self.remasking not in ("low_confidence", "margin"):
                raise ValueError(
                    f"{type(self).__name__}: `credit_decay` accumulates confidences towards `threshold`: "
                    f"set `threshold` too and `remasking` 'low_confidence' or 'margin' (got threshold="
                    f"{self.threshold!r}, remasking={self.remasking!r})."
                )
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


__all__ = ["LLaDAGenerationConfig", "convert_generation_config"]
