"""Call preparation for `diffusion_generate`: every check and every object of a call, before the first forward pass.

[`prepare_call`] runs the steps in order, as transformers' `generate` runs its `_prepare_*` steps:

1. the per-call objects out of the keyword arguments: streamer, hooks, logits processors, `seed` / `generator`;
2. the generation config: a private copy of the model's (or the given one) with the keyword arguments applied
   ([`prepare_generation_config`]; unknown arguments are errors);
3. the prompt: `(batch, prompt_len)` ids and attention mask on the model's device, repeated for
   `num_return_sequences`;
4. the special tokens: the mask id, and the mask, pad and EOS ids in the vocabulary ([`prepare_special_tokens`]);
5. the length to generate: `max_new_tokens`, or `max_length` minus the prompt, within `max_position_embeddings`;
6. the canvas: the prompt followed by that many mask tokens;
7. the blocks: the masked span (from the first to the last canvas column holding a mask token), the block length
   (a block diffusion model's: [`block_model_length`]) and the steps of each block;
8. the [`DenoisingContext`] of the sampling loop: the random draws, the logits processors, the forward (compiled
   with `compile=True`: [`compile_options`], [`CompiledForward`]), the key/value cache and the canvas positions,
   credit decoding's state.

The prompt batches of the package's callers are made here too: [`left_pad`] (token id lists -> the batch
`diffusion_generate` takes), [`prepare_infill`] / [`infill_canvas`] (the canvas of `infill`), and
[`block_position_ids`] (a block diffusion model's canvas positions).

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import copy
import functools
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from transformers import GenerationConfig
from transformers.utils import logging

from .cache_llada import BlockKVCache, CanvasKVCache
from .checks_llada import first_outside, position_limit
from .diffusion_llada import position_ids_from_padding, resolve_mask_token_id
from .generation_config_llada import LLaDAGenerationConfig, convert_generation_config
from .processors_llada import BlockLogitsProcessor, apply_do_sample
from .rows_llada import ConfidenceCredit, RandomDraws
from .sampling_llada import as_id_list, block_schedule

logger = logging.get_logger(__name__)

CALL_ONLY_ARGUMENTS = (
    "streamer",
    "generator",
    "seed",
    "generation_tokens_hook_func",
    "generation_logits_hook_func",
    "logits_processor",
)
_COMPILED_FORWARDS = {}  # (model class, compile settings) -> its `CompiledForward`, see `compiled_forward`


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
    static_shapes: bool = False  # compiled: the same shapes at every step of a kind (see `generation_llada`)
    credit: Optional[ConfidenceCredit] = None  # credit decoding's state (`credit_decay`)
    kv_tokens: Optional[torch.Tensor] = None  # (batch, seq) `cache_window="masked"`: each cached key's token

    @property
    def has_hooks(self) -> bool:
        return self.tokens_hook is not None or self.logits_hook is not None


def prepare_call(model, input_ids, attention_mask, generation_config, kwargs):
    """Everything `diffusion_generate(input_ids, attention_mask, generation_config, **kwargs)` checks and builds
    before its first forward pass (the steps: module docstring). A bad argument raises here, naming it.

    Returns `(canvas, block_length, steps_per_block, context)`: the `(batch, seq)` canvas, the length of the blocks,
    the most steps of each, and the [`DenoisingContext`] of the call.
    """
    options = _pop_call_options(kwargs)
    logits_processor = options.pop("logits_processor")
    config = prepare_generation_config(model, generation_config, kwargs)
    prompt_ids, prompt_mask = _prepare_prompt(
        input_ids, attention_mask, config.num_return_sequences, model.device, model.config.vocab_size
    )
    batch, prompt_length = prompt_ids.shape
    mask_token_id = prepare_special_tokens(model, config)
    max_new_tokens = _prepare_length(config, model.config, prompt_ids, prompt_mask, mask_token_id)
    canvas, attention_mask = _prepare_canvas(prompt_ids, prompt_mask, max_new_tokens, mask_token_id)
    block_size = getattr(model.config, "block_size", None)
    generation_start, block_length, steps_per_block = _prepare_blocks(
        config, block_size, canvas, prompt_length, mask_token_id
    )
    prompt_positions = attention_mask.bool() & (canvas != mask_token_id)  # (batch, seq), masked for guidance
    prompt_positions[:, prompt_length:] = False
    eos_token_ids = tuple(as_id_list(config.eos_token_id))
    randomness = RandomDraws.for_call(
        options.pop("seed"),
        options.pop("generator"),
        prompt_ids,
        prompt_mask,
        config.num_return_sequences or 1,
        model.device,
    )
    context = DenoisingContext(
        config=config,
        mask_token_id=mask_token_id,
        prompt_length=prompt_length,
        attention_mask=None if bool(attention_mask.all()) else attention_mask,
        generation_start=generation_start,
        prompt_positions=prompt_positions,
        eos_token_ids=eos_token_ids,
        pad_token_id=config.pad_token_id if config.pad_token_id is not None else next(iter(eos_token_ids), None),
        randomness=randomness,
        **options,
    )
    processors = BlockLogitsProcessor(
        config, logits_processor, eos_token_ids, prompt_length if max_new_tokens else None, model.device
    )
    context.logits_processor = processors if processors else None
    context.static_shapes, context.forward = _prepare_forward(model, config, block_size)
    if config.use_cache and context.has_hooks:
        raise ValueError(
            "diffusion_generate: `use_cache` cannot be combined with `generation_tokens_hook_func` or "
            "`generation_logits_hook_func`: the hooks take the logits of the whole canvas at every step."
        )
    _prepare_cache(context, attention_mask, block_size)
    if config.credit_decay is not None:
        context.credit = ConfidenceCredit(config.credit_decay, batch, block_length, model.device)
    if config.cache_window == "masked":
        context.kv_tokens = torch.full_like(canvas, -1)
    return canvas, block_length, steps_per_block, context


# ----------------------------------------------------------------------------------------------------------------
# The steps, in the order `prepare_call` runs them


def _pop_call_options(kwargs) -> dict:
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
    if logits_processor is not None and not (
        isinstance(logits_processor, (list, tuple)) and all(callable(p) for p in logits_processor)
    ):
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
        if not all(
            isinstance(one, int) and not isinstance(one, bool)
            for one in (seed if isinstance(seed, list) and seed else [seed])
        ):
            raise TypeError(
                f"diffusion_generate: `seed` must be an int or a list of ints (one per prompt), got {seed!r}."
            )
    return dict(streamer=streamer, generator=generator, seed=seed, logits_processor=logits_processor, **hooks)


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


def _prepare_prompt(input_ids, attention_mask, num_return_sequences, device, vocab_size: Optional[int] = None):
    """Prompts and their attention mask as (batch, prompt_len) long tensors on the model's device; the ids (padding
    included: it goes through the embedding too) must be in the vocabulary of `vocab_size` ids."""
    copies = num_return_sequences or 1
    if input_ids is None:
        if attention_mask is not None:
            raise ValueError("diffusion_generate: `attention_mask` was given without `input_ids`.")
        empty = torch.zeros((copies, 0), dtype=torch.long, device=device)  # unconditional generation
        return empty, empty.clone()
    if (
        not torch.is_tensor(input_ids)
        or input_ids.is_floating_point()
        or input_ids.dtype == torch.bool
        or input_ids.dim() not in (1, 2)
    ):
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
            raise ValueError(
                f"diffusion_generate: `input_ids` must be ids in [0, {vocab_size - 1}] (the vocabulary), "
                f"got {outside}."
            )
    input_ids = input_ids.to(device).long().repeat_interleave(copies, dim=0)
    attention_mask = attention_mask.to(device).long().repeat_interleave(copies, dim=0)
    return input_ids, attention_mask


def prepare_special_tokens(model, config) -> int:
    """The mask id of a call (the generation config's, else the model config's); it, the pad id and the EOS ids must
    be in the vocabulary (a pad id outside it would be written into the output)."""
    mask_token_id = resolve_mask_token_id(
        model,
        config.mask_token_id,
        "diffusion_generate",
        "`mask_token_id` in the generation config or the model config",
    )
    vocab_size = getattr(model.config, "vocab_size", None)
    for name, values in (
        ("mask_token_id", [mask_token_id]),
        ("pad_token_id", as_id_list(config.pad_token_id)),
        ("eos_token_id", as_id_list(config.eos_token_id)),
    ):
        for value in values:
            if vocab_size is not None and not 0 <= value < vocab_size:
                raise ValueError(
                    f"diffusion_generate: `{name}` must be in [0, {vocab_size - 1}] (the vocabulary), got {value}."
                )
    return mask_token_id


def _prepare_length(config, model_config, prompt_ids, prompt_mask, mask_token_id) -> int:
    """`max_new_tokens` (or `max_length` minus the prompt), checked against `max_position_embeddings`; 0 only
    when the prompts hold mask tokens to fill."""
    prompt_length = prompt_mask.shape[1]
    prompt_masks = prompt_ids == mask_token_id  # (batch, prompt_len)
    if bool((prompt_masks & (prompt_mask == 0)).any()):
        raise ValueError(
            f"diffusion_generate: padding positions (attention_mask 0) hold the mask token "
            f"({mask_token_id}); pad with another id."
        )
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


def _prepare_canvas(prompt_ids, prompt_mask, max_new_tokens: int, mask_token_id: int):
    """The canvas, each prompt followed by `max_new_tokens` mask tokens, and its attention mask: `(batch, seq)`
    each."""
    batch = prompt_ids.shape[0]
    canvas = torch.cat([prompt_ids, prompt_ids.new_full((batch, max_new_tokens), mask_token_id)], dim=1)
    attention_mask = torch.cat([prompt_mask, prompt_mask.new_ones((batch, max_new_tokens))], dim=1)
    return canvas, attention_mask


def _prepare_blocks(config, block_size: Optional[int], canvas, prompt_length: int, mask_token_id: int):
    """The blocks of a call: `(generation_start, block_length, steps_per_block)`. They tile the masked span, from the
    first to the last column holding a mask token: the generated part, or more with mask tokens in a prompt
    (infilling), or less with only those."""
    masked_columns = (canvas == mask_token_id).any(dim=0).nonzero().squeeze(-1)
    generation_start, generation_end = int(masked_columns[0]), int(masked_columns[-1]) + 1
    span_name = (
        "max_new_tokens"
        if (generation_start, generation_end) == (prompt_length, canvas.shape[1])
        else (
            f"the masked span (canvas columns {generation_start} to {generation_end - 1}, from the first to the last "
            "mask token)"
        )
    )
    block_length = config.block_length
    if block_size is not None:
        block_length = block_model_length(config, block_size, generation_start, prompt_length)
    block_length, steps_per_block = block_schedule(
        generation_end - generation_start, block_length, config.steps, length_name=span_name
    )
    return generation_start, block_length, steps_per_block


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
            f"diffusion_generate: `block_length` ({block_length}) must divide the model's `block_size` "
            f"({block_size}): a block diffusion model decodes one of its blocks, or a part of one, at a time given "
            "the finished blocks before it. Leave `block_length` unset to use the block size."
        )
    return block_length


def _prepare_forward(model, config, block_size: Optional[int]):
    """`(static_shapes, forward)`: whether the call compiles its forward (`compile`, `compile_config`, unless
    `disable_compile`), and what each step calls: the model, or its compiled forward with the model bound."""
    compile_config = getattr(config, "compile_config", None)
    static_shapes = bool(config.compile or compile_config is not None) and not getattr(config, "disable_compile", None)
    if block_size is not None and static_shapes:
        raise ValueError(
            "diffusion_generate: `compile` is not supported for a block diffusion model (`config.block_size`): "
            "its exact cache grows by one block per block, so no single static shape serves the whole call. "
            "Leave `compile` unset."
        )
    return static_shapes, compiled_forward(model, compile_config) if static_shapes else model


def _prepare_cache(context, attention_mask, block_size: Optional[int]) -> None:
    """The key/value cache of the call and the canvas positions it needs, set on `context`: a block diffusion model's
    exact cache of finished blocks (positions shifted so that generated blocks start at the prompt's end), or the
    canvas cache of `use_cache` (positions over real tokens, as the model's default); none without."""
    config, copies = context.config, 2 if context.config.cfg_scale > 0 else 1  # guidance: a cache row per copy
    if block_size is not None:
        context.position_ids = block_position_ids(attention_mask, context.prompt_length, block_size)
        if config.use_cache is not False and not context.has_hooks:
            context.cache = BlockKVCache(block_size, context.prompt_length, copies=copies)
    elif config.use_cache:
        context.position_ids = position_ids_from_padding(attention_mask)
        context.cache = CanvasKVCache(
            config.use_cache,
            config.cache_refresh_interval,
            copies=copies,
            static_start=context.generation_start if context.static_shapes else None,
            refresh_window=config.cache_refresh_window,
        )


def compile_options(compile_config) -> dict:
    """`torch.compile` keyword arguments from a transformers `CompileConfig` (or a dict of its fields); without one,
    a full graph with static shapes."""
    if compile_config is None:
        return dict(fullgraph=True, dynamic=False)
    names = ("fullgraph", "dynamic", "backend", "mode", "options")
    settings = (
        compile_config if isinstance(compile_config, dict) else {n: getattr(compile_config, n, None) for n in names}
    )
    if settings.get("backend", "inductor") != "inductor":
        names = names[:3]  # `mode` and `options` are inductor's
    return {name: settings[name] for name in names if settings.get(name) is not None}


def compiled_forward(model, compile_config=None) -> Callable:
    """`model.forward` through `torch.compile`, with the model bound: compiled once per model class and settings
    (and then once per shape), kept for later calls (see [`CompiledForward`])."""
    options = compile_options(compile_config)
    key = (type(model), repr(sorted(options.items())))
    if key not in _COMPILED_FORWARDS:
        _COMPILED_FORWARDS[key] = CompiledForward(type(model).forward, options)
    return functools.partial(_COMPILED_FORWARDS[key], model)


class CompiledForward:
    """A model class's `forward` through `torch.compile`, shared by every call with the same settings.

    Static shapes compile one graph per prompt length, batch size and kind of pass. Past dynamo's recompile limit
    (`torch._dynamo.config.recompile_limit`) a full graph (`fullgraph=True`, the default) would fail the call; instead
    new shapes then run eagerly, the graphs already compiled still serve theirs, and one warning says so.
    """

    def __init__(self, forward: Callable, options: dict):
        self.forward = forward
        self.compiled = torch.compile(forward, **options)
        self.limit_hit = False  # past the recompile limit: new shapes run eagerly

    def __call__(self, model, **kwargs):
        if not self.limit_hit:
            try:
                return self.compiled(model, **kwargs)
            except Exception as error:  # raised before anything runs: the call is simply made again, eagerly
                if type(error).__name__ != "FailOnRecompileLimitHit":
                    raise
            self.limit_hit = True
            logger.warning_once(
                "diffusion_generate: `compile=True` reached torch._dynamo's recompile limit (one graph per prompt "
                "length, batch size and kind of pass); new shapes now run eagerly, compiled ones stay compiled. Pad "
                "prompts to a few lengths, or raise `torch._dynamo.config.recompile_limit`."
            )
        set_stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
        if set_stance is None:  # torch < 2.6: no way to keep the compiled shapes without recompiling
            return self.forward(model, **kwargs)
        with set_stance("eager_on_recompile"):  # a cached graph when one fits, else eager; never a new compile
            return self.compiled(model, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Prompt batches


def prepare_infill(model, prefix_ids, suffix_ids, length: int, kwargs):
    """The canvas of `model.infill(prefix_ids, suffix_ids, length, **kwargs)`: `(input_ids, attention_mask,
    middle_start)` (see [`infill_canvas`]), padded with the pad id (the generation config's, else the model's, never
    the mask id)."""
    for name in (
        "max_new_tokens",
        "gen_length",
        "max_length",
        "input_ids",
        "attention_mask",
        "return_dict_in_generate",
        "output_history",
    ):
        if name in kwargs:
            raise ValueError(
                f"infill: `{name}` does not apply (the gap is `length` tokens and infill returns "
                "them); call diffusion_generate with mask tokens in `input_ids` for the full output."
            )
    ids = {name: kwargs[name] for name in ("mask_token_id", "pad_token_id") if name in kwargs}
    config = prepare_generation_config(model, kwargs.get("generation_config"), ids)
    mask_token_id = prepare_special_tokens(model, config)
    pad_token_id = next(
        (i for i in (config.pad_token_id, model.config.pad_token_id) if i not in (None, mask_token_id)),
        0 if mask_token_id != 0 else 1,
    )
    return infill_canvas(
        as_token_rows(prefix_ids, "prefix_ids"),
        as_token_rows(suffix_ids, "suffix_ids"),
        length,
        mask_token_id,
        pad_token_id,
        device=model.device,
    )


def left_pad(sequences, pad_token_id: int, device=None):
    """Token id lists -> the prompt batch `diffusion_generate` takes: `(input_ids, attention_mask)`, both
    `(batch, longest)` long tensors, each row's ids at the right end, `pad_token_id` and 0 before them."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long, device=device)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(sequences):
        input_ids[row, width - len(ids) :] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


def as_token_rows(token_ids, name: str = "token ids") -> list:
    """One row of ids (a list of ints or a 1-D tensor) or several (a list of lists or a 2-D tensor) -> a list of
    rows, each a list of ints; a `ValueError` naming `name` otherwise."""
    if torch.is_tensor(token_ids):
        if token_ids.dim() not in (1, 2) or token_ids.is_floating_point():
            raise ValueError(f"`{name}` must be a 1-D or 2-D integer tensor, got shape {tuple(token_ids.shape)}.")
        token_ids = torch.atleast_2d(token_ids).tolist()
    elif isinstance(token_ids, (list, tuple)) and all(isinstance(t, int) for t in token_ids):
        token_ids = [list(token_ids)]
    if not (
        isinstance(token_ids, (list, tuple))
        and token_ids
        and all(isinstance(row, (list, tuple)) and all(isinstance(t, int) for t in row) for row in token_ids)
    ):
        raise ValueError(
            f"`{name}` must be a list of token ids, a list of such lists, or a tensor; got {token_ids!r}."
        )
    return [list(row) for row in token_ids]


def infill_canvas(prefixes, suffixes, length: int, mask_token_id: int, pad_token_id: int, device=None):
    """The left-padded batch `prefix + [mask] * length + suffix` of each row, for `diffusion_generate` with
    `max_new_tokens=0`: returns `(input_ids, attention_mask, middle_start)`, the first two `(batch, longest)` and
    `middle_start` `(batch,)`, the column of each row's first mask token."""
    if len(prefixes) != len(suffixes):
        raise ValueError(f"infill: {len(prefixes)} prefixes but {len(suffixes)} suffixes; give one of each per row.")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"infill: `length` must be an integer >= 1 (tokens to fill in), got {length!r}.")
    rows = [list(prefix) + [mask_token_id] * length + list(suffix) for prefix, suffix in zip(prefixes, suffixes)]
    input_ids, attention_mask = left_pad(rows, pad_token_id, device)
    suffix_lengths = torch.tensor([len(suffix) for suffix in suffixes], device=input_ids.device)
    return input_ids, attention_mask, input_ids.shape[1] - suffix_lengths - length


def block_position_ids(attention_mask: torch.Tensor, prompt_length: int, block_size: int) -> torch.Tensor:
    """Canvas positions for a block diffusion model, (batch, seq) -> (batch, seq): the running count of real tokens,
    shifted per row by `(-prompt tokens) mod block_size` so that every row's prompt ends on a block boundary and the
    generated blocks are the same canvas columns for all rows (left padding included). RoPE sees only differences
    of positions, so the shift changes no attention score; it moves the block boundaries of the prompt."""
    prompt_tokens = attention_mask[:, :prompt_length].sum(dim=-1)  # (batch,)
    shift = (-prompt_tokens) % block_size  # (batch,)
    return position_ids_from_padding(attention_mask) + shift[:, None]


__all__ = [
    "CALL_ONLY_ARGUMENTS",
    "CompiledForward",
    "DenoisingContext",
    "as_token_rows",
    "block_model_length",
    "block_position_ids",
    "compile_options",
    "compiled_forward",
    "infill_canvas",
    "left_pad",
    "prepare_call",
    "prepare_generation_config",
    "prepare_infill",
    "prepare_special_tokens",
]
