"""Generation for LLaDA: the output dataclass and the `diffusion_generate` mixin.

The settings (`LLaDAGenerationConfig`) are in `generation_config_llada`; everything a call checks and builds before
its first forward pass (its settings, prompt, length, canvas, blocks, forward, cache) in `prepare_llada`; the steps
of a denoising step are pure functions in `sampling_llada`; the key/value cache and its refresh decisions are in
`cache_llada`. This file holds the loop over blocks and steps and the model calls.

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

import functools
from dataclasses import dataclass
from typing import Optional

import torch
from transformers.utils import ModelOutput, logging

from .generation_config_llada import LLaDAGenerationConfig, convert_generation_config
from .prepare_llada import DenoisingContext, prepare_call, prepare_infill
from .rows_llada import RunningRows, SlotDraws, fill_finished_rows, pad_after_eos
from .sampling_llada import (
    POSITIONWISE_STRATEGIES,
    constrain_logits,
    denoise_block,
    guidance_inputs,
    guided_logits,
    masked_slots,
    num_transfer_tokens,
)

logger = logging.get_logger(__name__)


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
        tokens_per_forward (`float`):
            Canvas positions committed per forward call, averaged over the rows: `(decode_step >= 0).sum() /
            (batch * nfe)` (EOS padding committed by the sampler counts; padding filled by `early_stop` does not).
            One token per step gives 1.0; parallel decoding (`threshold`, `factor`, `entropy_bound`) raises it.
    """

    sequences: Optional[torch.LongTensor] = None
    history: Optional[tuple] = None
    nfe: Optional[int] = None
    decode_step: Optional[torch.LongTensor] = None
    tokens_per_forward: Optional[float] = None


# ----------------------------------------------------------------------------------------------------------------
# The mixin


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
        input_ids, attention_mask, middle_start = prepare_infill(self, prefix_ids, suffix_ids, length, kwargs)
        out = self.diffusion_generate(
            input_ids, attention_mask, max_new_tokens=0, return_dict_in_generate=False, **kwargs
        )
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
                `entropy_bound`, `credit_decay`, `early_stop`, `compile`, the logits processor
                flags (`repetition_penalty`, `bad_words_ids`, `suppress_tokens`, `min_p`, ...) and `do_sample`
                (`True`: sample, at temperature 1 unless one is set; `False`: greedy).
            logits_processor (`LogitsProcessorList`, *optional*):
                transformers logits processors applied every step to the logits of the block being decoded, after
                those the flags build; each sees the current canvas as `input_ids` (`processors_llada`).
            seed (`int`, *optional*) or generator (`torch.Generator`, *optional*):
                Source of the random draws. `seed`: one stream per row, from `seed`, the row's prompt and its index
                among the copies of that prompt, so a prompt samples the same alone or in any batch and different
                prompts do not share their random draws; a list of ints gives each prompt its own seed (a row
                then samples as its prompt alone with that seed); a `generator` (default:
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
        canvas, block_length, steps_per_block, context = prepare_call(
            self, input_ids, attention_mask, generation_config, kwargs
        )
        config, prompt_length, eos_token_ids = context.config, context.prompt_length, context.eos_token_ids
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
        tokens_per_forward = float((decode_step >= 0).sum()) / max(1, nfe * canvas.shape[0])
        return LLaDAGenerateOutput(
            sequences=sequences,
            history=history,
            nfe=nfe,
            decode_step=decode_step,
            tokens_per_forward=tokens_per_forward,
        )

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
                    unfinished = (canvas[:, context.generation_start :] == mask_token_id).any(dim=-1)  # (batch,)
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
                    generated = canvas[:, context.prompt_length :]  # a view: filling it fills the canvas
                    prompt_filled = ~(canvas[:, : context.prompt_length] == mask_token_id).any(dim=-1)  # (batch,)
                    fill_finished_rows(
                        generated, mask_token_id, context.eos_token_ids, context.pad_token_id, ready=prompt_filled
                    )
                if history is not None:
                    history.append(canvas)
                if context.streamer is not None:
                    context.streamer.put(canvas)
                step += 1
        if context.streamer is not None:
            context.streamer.end()
        return canvas, decode_step, history, step  # one forward call per step

    def _denoising_step(
        self, canvas, rows: RunningRows, step, block_step, block_steps, block: slice, context: DenoisingContext
    ):
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
        block_logits = constrain_logits(
            block_logits,
            mask_token_id,
            context.eos_token_ids,
            config.min_new_tokens,
            block_offset=block.start - context.prompt_length,
        )  # (rows, n, vocab)
        if context.logits_processor is not None:
            block_logits = context.logits_processor(
                rows.take(canvas),
                rows.take(context.attention_mask),
                block_logits,
                block,
                mask_token_id,
                config.temperature or 0.0,
            )
        block_tokens = rows.take(canvas)[:, block]  # (rows, n)
        masked_count = (block_tokens == mask_token_id).sum(dim=-1)  # (rows,)
        num_transfer = num_transfer_tokens(masked_count, block_steps - block_step, config.remask_ratio)
        credit = None
        if context.credit is not None:
            if block_step == 0:
                context.credit.reset()
            credit = functools.partial(context.credit.boost, rows=rows, slots=slots)
        new_block, _ = denoise_block(
            block_logits,
            block_tokens if slots is None else block_tokens.gather(1, slots),
            num_transfer,
            mask_token_id,
            config.temperature or 0.0,
            config.top_k,
            config.top_p,
            config.remasking,
            context.randomness if slots is None else SlotDraws(context.randomness, slots, block_tokens.shape[1]),
            config.threshold,
            config.factor,
            rows=rows,
            credit=credit,
            token_sampling=config.token_sampling,
            entropy_bound=config.entropy_bound,
        )
        if slots is not None:  # (rows, k) -> (rows, n): the committed slots write back their own tokens
            new_block = block_tokens.scatter(1, slots, new_block)
        canvas = canvas.clone()
        canvas[:, block] = rows.put(canvas[:, block], new_block)
        return canvas, logits

    def _denoiser_logits(
        self,
        canvas,
        context: DenoisingContext,
        rows: RunningRows,
        block: slice = slice(None),
        block_step: int = 0,
        slots: Optional[torch.Tensor] = None,
        window: Optional[torch.Tensor] = None,
    ):
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
                input_ids,
                rows.take(context.prompt_positions),
                context.mask_token_id,
                attention_mask,
                position_ids,
                drop_prompt=getattr(self.config, "block_size", None) is not None,
            )
        cache, forward = context.cache, context.forward or self
        start, stop = (
            (0, input_ids.shape[1]) if cache is None else cache.plan_window(block, block_step, input_ids.shape[1])
        )
        keep = 0 if block.start is None else slice(block.start - start, block.stop - start)  # 0: every position
        if slots is not None:  # (rows, k) positions of the block: only those go through the head
            keep = slots + keep.start if cfg_scale == 0 else torch.cat([slots, slots]) + keep.start
        if context.kv_tokens is not None:
            input_ids, position_ids, start, stop, keep = self._masked_window(
                context, rows, block, window, input_ids, position_ids, (start, stop), keep
            )
        if context.static_shapes and keep != 0:  # an index tensor: the same graph for every block
            keep = torch.arange(keep.start, keep.stop, device=input_ids.device)
        if cache is None:  # position_ids: None unless set for a block model (its per-row shift)
            outputs = forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=keep,
                return_dict=True,
            )
        else:
            outputs = forward(
                input_ids=input_ids[:, start:stop],
                attention_mask=attention_mask,
                position_ids=position_ids[:, start:stop],
                past_key_values=cache,
                logits_to_keep=keep,
                return_dict=True,
            )
        return outputs.logits if cfg_scale == 0 else guided_logits(outputs.logits, cfg_scale)

    def _masked_window(self, context, rows, block, window, input_ids, position_ids, planned, keep):
        """`cache_window="masked"`: turns a planned dual-cache window (the block) into the per-row positions `window`
        (their ids and positions gathered, the cache told) and records which token each recomputed key belongs to.
        Returns `(input_ids, position_ids, start, stop, logits_to_keep)` for the forward pass."""
        canvas_rows = input_ids[
            : rows.take(context.kv_tokens).shape[0]
        ]  # the conditional rows (not the guidance copy)
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

    def adjust_generation_fn(
        self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs
    ):
        """Called by `from_pretrained`: loads `generation_config.json` as an `LLaDAGenerationConfig`.

        Without that file the config built from the model config (its token ids) stays.
        """
        if generation_config is not None:
            self.generation_config = convert_generation_config(generation_config)
            return
        if pretrained_model_name_or_path is None:
            return
        download_names = (
            "cache_dir",
            "force_download",
            "proxies",
            "local_files_only",
            "token",
            "revision",
            "subfolder",
        )
        download_kwargs = {name: kwargs[name] for name in download_names if kwargs.get(name) is not None}
        try:
            self.generation_config = LLaDAGenerationConfig.from_pretrained(
                pretrained_model_name_or_path,
                _from_auto=from_auto_class,
                _from_pipeline=from_pipeline,
                **download_kwargs,
            )
        except OSError:
            logger.info("No generation_config.json found; using the generation config made from the model config.")


def _predicts_masked_only(config, context, block: slice) -> bool:
    """Whether a step on `block` may run the head and the sampler on the block's masked positions only (see
    `sampling_llada.masked_slots`): a confidence of each position on its own, no logits processor (they see the
    whole block), dynamic shapes, and no EOS rule that depends on the position in this block."""
    eos_rule = context.eos_token_ids and (config.min_new_tokens or 0) > block.start - context.prompt_length
    return (
        config.remasking in POSITIONWISE_STRATEGIES
        and not eos_rule
        and context.logits_processor is None
        and not context.static_shapes
    )


def _call_hook(hook, name, step, canvas, logits):
    """Applies a Dream-style hook and checks that it returned a tensor of the right shape."""
    expected = logits if name == "generation_logits_hook_func" else canvas
    if hook is None:
        return expected
    result = hook(step, canvas, logits)
    if not torch.is_tensor(result) or result.shape != expected.shape:
        shape = tuple(result.shape) if torch.is_tensor(result) else ""
        raise TypeError(
            f"diffusion_generate: `{name}` must return a tensor of shape {tuple(expected.shape)}, "
            f"got {type(result).__name__}{shape}."
        )
    return result


__all__ = ["LLaDAGenerationConfig", "LLaDAGenerateOutput", "LLaDAGenerationMixin", "DenoisingContext"]
