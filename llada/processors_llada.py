"""Transformers' logits processors in diffusion sampling, and the generation flags that cannot apply to it.

At every denoising step the logits of the block being decoded, `(rows, n, vocab)`, after the mask token and the
EOS rules (`sampling_llada.constrain_logits`), go through, in this order:

1. the processors that generation-config flags turn on, built from transformers' own classes as `generate` builds
   them: `repetition_penalty` (`RepetitionPenaltyLogitsProcessor`), `sequence_bias`, `bad_words_ids`
   (`NoBadWordsLogitsProcessor`, which never bans EOS), `suppress_tokens`, `begin_suppress_tokens` (at the first
   position after the prompt only) and `renormalize_logits`;
2. the `logits_processor` list of the call (a processor of a type the flags also built replaces that one, as in
   `generate`);
3. the warpers of `min_p`, `typical_p`, `epsilon_cutoff` and `eta_cutoff`. They decide on the logits divided by the
   temperature (transformers applies them after its temperature warper) and only remove tokens; the sampler
   applies them whether or not it samples, as it does `top_k` / `top_p`, which come next (`sampling_llada`),
   followed by the Gumbel-max draw at `temperature`.

What a processor sees, at every step: `scores` of shape `(rows * n, vocab)`, float32, the n positions of each row's
block one after the other, and `input_ids` of shape `(rows * n, seq)`: for each of those positions, its row's
current canvas (prompt, committed tokens, and `mask_token_id` at every position not decided yet and at left
padding). The canvas has the same length at every step and its end is the end of the generation, so processors
that read the length of `input_ids` or its last tokens as the text generated so far do not mean in diffusion
sampling what they mean in left-to-right decoding; the flags that build such processors are refused
([`reject_unsupported_generation_flags`]), and so are multi-token `bad_words_ids` / `sequence_bias` entries.

This is a Hub file: it imports only the standard library, torch and the public transformers API.
"""

from typing import Optional

import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitNormalization,
    LogitsProcessorList,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TypicalLogitsWarper,
)
from transformers.utils import logging

from .sampling_llada import scale_logits

logger = logging.get_logger(__name__)

_BEAMS = "beam search keeps several candidate sequences and extends them left to right; a canvas is decoded in place"
_NOT_LEFT_TO_RIGHT = "it needs a left-to-right decoder (the next token after the text so far)"

# flag -> (its value when off, why diffusion sampling cannot honour it)
INAPPLICABLE_FLAGS = {
    "num_beams": (1, _BEAMS),
    "num_beam_groups": (1, _BEAMS),
    "diversity_penalty": (0.0, _BEAMS),
    "length_penalty": (1.0, _BEAMS),
    "early_stopping": (False, _BEAMS + "; `early_stop=True` stops working on finished rows"),
    "constraints": (None, _BEAMS),
    "force_words_ids": (None, _BEAMS),
    "low_memory": (False, _BEAMS),
    "penalty_alpha": (None, "contrastive search " + _NOT_LEFT_TO_RIGHT),
    "dola_layers": (None, "DoLa decoding " + _NOT_LEFT_TO_RIGHT),
    "prompt_lookup_num_tokens": (None, "assisted decoding " + _NOT_LEFT_TO_RIGHT),
    "num_assistant_tokens": (None, "assisted decoding " + _NOT_LEFT_TO_RIGHT),
    "assistant_early_exit": (None, "assisted decoding " + _NOT_LEFT_TO_RIGHT),
    "use_mtp": (None, "multi-token prediction heads draft tokens left to right"),
    "speculation_type": (None, "speculative decoding " + _NOT_LEFT_TO_RIGHT),
    "top_h": (None, "not available to diffusion sampling; use `top_p`, `min_p` or `typical_p`"),
    "guidance_scale": (1.0, "classifier-free guidance is `cfg_scale` (0 = none)"),
    "no_repeat_ngram_size": (
        0,
        "it bans the token that would follow the last n - 1 tokens of the text so far, and "
        "a canvas decoded in any order has no such last tokens",
    ),
    "encoder_no_repeat_ngram_size": (0, "the model has no encoder"),
    "encoder_repetition_penalty": (1.0, "the model has no encoder"),
    "min_length": (0, "use `min_new_tokens` (no EOS in the first generated positions)"),
    "forced_bos_token_id": (None, "put the token in the prompt instead"),
    "forced_eos_token_id": (
        None,
        "it forces EOS once the text reaches `max_length`; here every position is decoded "
        "at once and EOS ends a row through `eos_token_id`",
    ),
    "exponential_decay_length_penalty": (
        None,
        "it depends on the number of tokens generated so far, which a diffusion step does not have",
    ),
    "max_time": (None, "the sampler always runs its steps; lower `steps` or use `threshold` to go faster"),
    "stop_strings": (
        None,
        "every position is decoded at once, so there is no point to stop at; cut the decoded "
        "text at the string instead",
    ),
    "remove_invalid_values": (False, "it would turn the -inf of forbidden tokens into finite values"),
    "output_scores": (False, "diffusion sampling returns no per-token scores; use `output_history`"),
    "output_logits": (False, "diffusion sampling returns no per-token logits; use `output_history`"),
    "output_attentions": (False, "call the model's forward for attentions"),
    "output_hidden_states": (False, "call the model's forward for hidden states"),
    "token_healing": (False, _NOT_LEFT_TO_RIGHT),
    "watermarking_config": (None, "watermarking " + _NOT_LEFT_TO_RIGHT),
    "cache_implementation": (
        None,
        "the sampler has its own cache (`use_cache='prefix'` or `'dual'`), and `compile=True` compiles its forward",
    ),
}


def reject_unsupported_generation_flags(config, defaults=None) -> None:
    """
    Raises a `ValueError` naming the first generation-config flag that diffusion sampling cannot honour, with the
    reason (`num_beams > 1`, `penalty_alpha`, `no_repeat_ngram_size`, ...: `INAPPLICABLE_FLAGS`), and for
    multi-token `bad_words_ids` / `sequence_bias` entries: no flag is silently ignored. A flag counts as set when it
    is neither None, nor its off value, nor its value in `defaults` (a plain `GenerationConfig()` of the installed
    transformers: transformers 4 gives some of them non-None defaults).
    """
    name = type(config).__name__
    for flag, (off, reason) in INAPPLICABLE_FLAGS.items():
        value = getattr(config, flag, None)
        if not (value is None or _same(value, off) or _same(value, getattr(defaults, flag, None))):
            raise ValueError(
                f"{name}: `{flag}={value!r}` has no meaning for diffusion sampling: {reason}; leave it unset."
            )
    for flag, sequences in (
        ("bad_words_ids", getattr(config, "bad_words_ids", None)),
        ("sequence_bias", _biased_sequences(getattr(config, "sequence_bias", None))),
    ):
        longer = [list(ids) for ids in sequences or () if not isinstance(ids, int) and len(ids) != 1]
        if longer:
            raise ValueError(
                f"{name}: `{flag}` entries must be single tokens in diffusion sampling, got {longer}: a multi-token "
                "entry acts on its last token when the text so far ends with the others, and a canvas decoded in "
                "any order has no such end."
            )


def _same(value, off) -> bool:
    """`value` is the off value `off`: the same object, or an equal number (1 and 1.0), bools only as bools, or an
    equal string."""
    if value is off or (isinstance(value, str) and value == off):
        return True
    numbers = (int, float)
    return (
        isinstance(value, numbers)
        and isinstance(off, numbers)
        and not isinstance(value, bool)
        and not isinstance(off, bool)
        and value == off
    )


def _biased_sequences(sequence_bias):
    """The token sequences of a `sequence_bias` given as a dict (tuple -> bias) or a list of `[ids, bias]` pairs."""
    if sequence_bias is None:
        return []
    if isinstance(sequence_bias, dict):
        return list(sequence_bias)
    return [pair[0] for pair in sequence_bias]


def apply_do_sample(config, call_kwargs: dict) -> None:
    """
    Gives `do_sample` its transformers meaning in diffusion sampling, where `temperature` decides: `do_sample=True`
    samples (at temperature 1 when none is set; temperature 0 is then a `ValueError`), `do_sample=False` passed to
    the call decodes greedily (`temperature` 0) and is a `ValueError` together with a `temperature > 0` in the same
    call. A `do_sample=False` stored in a config (transformers 4's default) changes nothing.
    """
    if config.do_sample is True:
        if config.temperature is None:
            config.temperature = 1.0
        elif config.temperature == 0:
            raise ValueError(
                "diffusion_generate: `do_sample=True` with `temperature=0` (greedy): set a `temperature` > 0 to "
                "sample, or `do_sample=False` for greedy decoding."
            )
    elif call_kwargs.get("do_sample") is False:
        if (call_kwargs.get("temperature") or 0) > 0:
            raise ValueError(
                f"diffusion_generate: `do_sample=False` (greedy) conflicts with `temperature="
                f"{call_kwargs['temperature']}` (sampling); pass one of them."
            )
        config.temperature = 0.0


class BlockLogitsProcessor:
    r"""
    The logits processors and warpers of one `diffusion_generate` call, applied to the logits of the block at
    every step (see the module docstring for the order and for what the processors see).

    Args:
        config ([`LLaDAGenerationConfig`]): the call's settings; its processor flags are read once here.
        logits_processor (`LogitsProcessorList` or `list`, *optional*): the call's own processors.
        eos_token_ids (`tuple`): EOS ids, which `bad_words_ids` never bans.
        first_generated (`int`, *optional*): the canvas column after the prompt, where `begin_suppress_tokens`
            applies; `None` when nothing is appended.
        device: where the processors' token tensors live.
    """

    def __init__(self, config, logits_processor=None, eos_token_ids=(), first_generated=None, device="cpu"):
        flags = LogitsProcessorList()
        if config.sequence_bias is not None:
            flags.append(SequenceBiasLogitsProcessor(sequence_bias=config.sequence_bias))
        if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
            flags.append(RepetitionPenaltyLogitsProcessor(penalty=config.repetition_penalty))
        if config.bad_words_ids is not None:
            flags.append(NoBadWordsLogitsProcessor(config.bad_words_ids, list(eos_token_ids) or None))
        if config.suppress_tokens is not None:
            flags.append(SuppressTokensLogitsProcessor(config.suppress_tokens, device=device))
        self.processors = _merge_processors(flags, list(logits_processor or []))
        if config.renormalize_logits:
            self.processors.append(LogitNormalization())
        self.begin_suppress = None
        if config.begin_suppress_tokens is not None and first_generated is not None:
            self.begin_suppress = SuppressTokensLogitsProcessor(config.begin_suppress_tokens, device=device)
        self.first_generated = first_generated
        self.warpers = LogitsProcessorList()
        if config.min_p is not None:
            self.warpers.append(MinPLogitsWarper(min_p=config.min_p))
        if config.typical_p is not None and config.typical_p < 1.0:
            self.warpers.append(TypicalLogitsWarper(mass=config.typical_p))
        if config.epsilon_cutoff is not None and 0.0 < config.epsilon_cutoff < 1.0:
            self.warpers.append(EpsilonLogitsWarper(epsilon=config.epsilon_cutoff))
        if config.eta_cutoff is not None and 0.0 < config.eta_cutoff < 1.0:
            self.warpers.append(EtaLogitsWarper(epsilon=config.eta_cutoff, device=device))

    def __bool__(self) -> bool:
        return bool(self.processors or self.warpers or self.begin_suppress is not None)

    def __call__(
        self,
        canvas: torch.Tensor,
        attention_mask: Optional[torch.Tensor],
        block_logits: torch.Tensor,
        block: slice,
        mask_token_id: int,
        temperature: float = 0.0,
    ) -> torch.Tensor:
        """`block_logits` (rows, n, vocab) of the block `block` of `canvas` (rows, seq) -> processed logits, same
        shape. `attention_mask` (rows, seq) marks the padding, shown to the processors as mask tokens."""
        rows, n, vocab = block_logits.shape
        if attention_mask is not None:
            canvas = canvas.masked_fill(attention_mask == 0, mask_token_id)
        input_ids = canvas[:, None, :].expand(rows, n, canvas.shape[1]).reshape(rows * n, -1)  # (rows * n, seq)
        scores = self.processors(input_ids, block_logits.reshape(rows * n, vocab))  # (rows * n, vocab)
        if self.warpers:
            scaled = scale_logits(scores, temperature) if temperature > 0 else scores
            removed = self.warpers(input_ids, scaled) == float("-inf")
            scores = scores.masked_fill(removed, float("-inf"))
        scores = scores.view(rows, n, vocab)
        if self.begin_suppress is not None and block.start <= self.first_generated < block.stop:
            column = self.first_generated - block.start
            scores = scores.clone()
            scores[:, column] = self.begin_suppress(canvas, scores[:, column])
        return scores


def _merge_processors(flags: LogitsProcessorList, custom: list) -> LogitsProcessorList:
    """The flags' processors with those of the call: a call's processor of the same type takes the place of the
    flag's (as in transformers' `generate`), the others follow."""
    merged = LogitsProcessorList()
    for processor in flags:
        replacement = next((c for c in custom if type(c) is type(processor)), None)
        if replacement is not None:
            logger.warning_once(
                f"The `logits_processor` {type(processor).__name__} passed to the call replaces the "
                "one its generation flags built."
            )
        merged.append(replacement if replacement is not None else processor)
    merged.extend(c for c in custom if not any(c is m for m in merged))
    return merged


__all__ = ["INAPPLICABLE_FLAGS", "BlockLogitsProcessor", "apply_do_sample", "reject_unsupported_generation_flags"]
