"""Checks of the tensors given to the model's `forward`: a bad argument is one `ValueError` that names it, says what
was expected and what was given, instead of an error deep inside torch (or none at all).

Two kinds of checks:

- dtype, rank and shape: always. They read only a tensor's metadata (nothing waits for a device), and
  `torch.compile` turns them into the guards it keeps anyway.
- values: token ids and labels inside the vocabulary, a 2-D `attention_mask` of 0/1, and the number of real tokens
  of a padded row against `max_position_embeddings`. Reading values from an accelerator waits for it (a device
  sync) at every forward pass, so they are checked on CPU tensors only; set the environment variable
  `LLADA_CHECK_INPUT_VALUES=1` to check them on every device (while debugging, say). They are skipped while
  `torch.compile` traces, where no value is known.

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import os
from typing import Optional

import torch

VALUE_CHECKS_VARIABLE = "LLADA_CHECK_INPUT_VALUES"  # "1": check values on accelerators too (one sync per forward)
IGNORE_INDEX = -100  # a label that is not scored
ID_DTYPES = (torch.long, torch.int)  # the index dtypes `nn.Embedding` takes
UNBOUNDED_ROPE_TYPES = ("dynamic",)  # RoPE scalings made to run beyond `max_position_embeddings`


def is_compiling() -> bool:
    """Whether `torch.compile` is tracing the calling code (then no tensor value can be read)."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def checks_values(tensor: torch.Tensor) -> bool:
    """Whether the value checks run for `tensor`: a CPU tensor, or any with `LLADA_CHECK_INPUT_VALUES=1`; never while
    compiling."""
    if is_compiling():
        return False
    return tensor.device.type == "cpu" or os.environ.get(VALUE_CHECKS_VARIABLE, "0") not in ("", "0")


def position_limit(config) -> Optional[int]:
    """The longest sequence the model takes: `max_position_embeddings`, or None when it has none or its RoPE scaling
    is made to go beyond it (`dynamic`)."""
    rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    return None if rope_type in UNBOUNDED_ROPE_TYPES else getattr(config, "max_position_embeddings", None)


def _fail(where: str, name: str, expected: str, given: str):
    raise ValueError(f"{where}: `{name}` must be {expected}, got {given}.")


def _shape(tensor: torch.Tensor) -> str:
    return f"shape {tuple(tensor.shape)}"


def _is_tensor(where: str, name: str, value, expected: str) -> torch.Tensor:
    if not torch.is_tensor(value):
        _fail(where, name, expected, type(value).__name__)
    return value


def first_outside(values: torch.Tensor, low: int, high: int, ignore: Optional[int] = None) -> Optional[str]:
    """`"value at (row, column)"` of the first entry of `values` outside [low, high] (`ignore` allowed), else None.

    The cheap test (min and max) runs first; the position is looked up only when something is wrong."""
    if values.numel() == 0:
        return None
    scored = values if ignore is None else values.masked_fill(values == ignore, low)
    smallest, largest = torch.aminmax(scored)
    if int(smallest) >= low and int(largest) <= high:
        return None
    where = ((scored < low) | (scored > high)).nonzero()[0]
    return f"{int(values[tuple(where)])} at {tuple(int(i) for i in where)}"


def check_ids(where: str, name: str, input_ids, vocab_size: int) -> None:
    """`input_ids`: a long/int tensor of shape (batch, seq), not empty, whose ids (on CPU) are in the vocabulary."""
    _is_tensor(where, name, input_ids, "a tensor of token ids of shape (batch, seq)")
    if input_ids.dtype not in ID_DTYPES:
        _fail(where, name, "token ids of dtype torch.long (or torch.int)", f"dtype {input_ids.dtype}")
    if input_ids.dim() != 2:
        hint = f" (one sequence: `{name}[None]`)" if input_ids.dim() == 1 else ""
        _fail(where, name, f"2-D, of shape (batch, seq){hint}", f"a {input_ids.dim()}-D tensor of {_shape(input_ids)}")
    if input_ids.numel() == 0:
        _fail(where, name, "non-empty: at least one row of at least one token", _shape(input_ids))
    if checks_values(input_ids):
        outside = first_outside(input_ids, 0, vocab_size - 1)
        if outside is not None:
            _fail(where, name, f"ids in [0, {vocab_size - 1}] (the vocabulary)", outside)


def check_embeddings(where: str, inputs_embeds, hidden_size: int) -> None:
    """`inputs_embeds`: a float tensor of shape (batch, seq, hidden_size), not empty."""
    _is_tensor(where, "inputs_embeds", inputs_embeds, f"a float tensor of shape (batch, seq, {hidden_size})")
    if not inputs_embeds.is_floating_point():
        _fail(where, "inputs_embeds", "a floating-point tensor", f"dtype {inputs_embeds.dtype}")
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size:
        _fail(where, "inputs_embeds", f"of shape (batch, seq, hidden_size={hidden_size})", _shape(inputs_embeds))
    if inputs_embeds.shape[0] == 0 or inputs_embeds.shape[1] == 0:
        _fail(where, "inputs_embeds", "non-empty: at least one row of at least one position", _shape(inputs_embeds))


def check_attention_mask(where: str, attention_mask, batch: int, seq: int, windowed: bool) -> None:
    """`attention_mask`: 2-D (batch, seq) of 0/1 (with a cache, `windowed`: (batch, length >= seq), it covers the
    whole canvas), or 4-D (batch or 1, 1 or heads, queries, keys), boolean or additive float, used as given."""
    expected = "2-D (batch, seq) of 0/1, or a prepared 4-D (batch, 1, queries, keys) boolean or additive float mask"
    _is_tensor(where, "attention_mask", attention_mask, expected)
    if windowed and attention_mask.dim() != 2:
        _fail(
            where,
            "attention_mask",
            "2-D (batch, canvas length) of 0/1 with `past_key_values`",
            f"a {attention_mask.dim()}-D tensor of {_shape(attention_mask)}",
        )
    if attention_mask.dim() == 4:
        if not (attention_mask.dtype == torch.bool or attention_mask.is_floating_point()):
            _fail(
                where,
                "attention_mask",
                "a 4-D mask of booleans (True = may attend) or additive floats (0 or a large negative number)",
                f"dtype {attention_mask.dtype}",
            )
        if attention_mask.shape[0] == 0 or batch % attention_mask.shape[0]:
            _fail(
                where,
                "attention_mask",
                f"a 4-D mask whose first dimension is the batch ({batch}), 1, or the "
                "clean rows of a training layout of several noised copies",
                _shape(attention_mask),
            )
        return
    if attention_mask.dim() != 2:
        _fail(where, "attention_mask", expected, f"a {attention_mask.dim()}-D tensor of {_shape(attention_mask)}")
    rows, length = attention_mask.shape
    if rows != batch or (length < seq if windowed else length != seq):
        expected = (
            f"of shape (batch, seq) = {(batch, seq)} like the input"
            if not windowed
            else (f"of shape (batch, canvas length) = ({batch}, >= {seq}), covering the canvas of the cached keys")
        )
        _fail(where, "attention_mask", expected, _shape(attention_mask))
    if attention_mask.dtype != torch.bool and checks_values(attention_mask):
        bad = (attention_mask != 0) & (attention_mask != 1)
        if bool(bad.any()):
            _fail(
                where,
                "attention_mask",
                "0 (padding) or 1 (token) in a 2-D mask (an additive float mask is 4-D, (batch, 1, queries, keys))",
                repr(attention_mask[bad][0].item()),
            )


def check_position_ids(where: str, position_ids, batch: int, seq: int) -> None:
    """`position_ids`: long/int of shape (batch or 1, seq)."""
    _is_tensor(where, "position_ids", position_ids, f"a tensor of positions of shape (batch, seq) = {(batch, seq)}")
    if position_ids.dtype not in ID_DTYPES:
        _fail(
            where,
            "position_ids",
            "integer positions of dtype torch.long (or torch.int)",
            f"dtype {position_ids.dtype}",
        )
    if position_ids.dim() != 2 or position_ids.shape[0] not in (1, batch) or position_ids.shape[1] != seq:
        _fail(
            where,
            "position_ids",
            f"of shape (batch, seq) = {(batch, seq)} (or (1, {seq})) like the input",
            _shape(position_ids),
        )


def check_length(where: str, name: str, config, attention_mask, seq: int) -> None:
    """A row may hold at most `max_position_embeddings` tokens (see `position_limit`): padding does not count, so
    beyond that length in columns a 2-D mask's rows are counted (on CPU tensors)."""
    limit = position_limit(config)
    if limit is None or seq <= limit:
        return
    longest = seq
    if attention_mask is not None and attention_mask.dim() == 2:
        if not checks_values(attention_mask):
            return
        longest = int((attention_mask != 0).sum(dim=-1).max())
        if longest <= limit:
            return
    _fail(
        where,
        name,
        f"at most `max_position_embeddings` = {limit} tokens long (the positions the model was built "
        "for; diffusion_generate refuses the same)",
        f"{longest} tokens in a row",
    )


def check_model_inputs(
    config,
    input_ids,
    inputs_embeds,
    attention_mask,
    position_ids,
    windowed: bool = False,
    where: str = "LLaDAModel.forward",
) -> None:
    """The checks of `LLaDAModel.forward`'s inputs (see the module docstring). `windowed`: a pass over a window of a
    longer canvas with a key/value cache; the mask covers the canvas, and the canvas's length was checked when the
    cache was made (the window alone cannot tell it)."""
    if (input_ids is None) == (inputs_embeds is None):
        given = "both" if input_ids is not None else "neither"
        raise ValueError(f"{where}: pass exactly one of `input_ids` or `inputs_embeds`; got {given}.")
    name = "input_ids" if input_ids is not None else "inputs_embeds"
    if input_ids is not None:
        check_ids(where, "input_ids", input_ids, config.vocab_size)
    else:
        check_embeddings(where, inputs_embeds, config.hidden_size)
    batch, seq = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
    if attention_mask is not None:
        check_attention_mask(where, attention_mask, batch, seq, windowed)
    if position_ids is not None:
        check_position_ids(where, position_ids, batch, seq)
    if not windowed:
        check_length(where, name, config, attention_mask, seq)


def check_labels(config, labels, input_ids, inputs_embeds, where: str = "LLaDAForMaskedDiffusion.forward") -> None:
    """`labels`: torch.long of the input's shape (batch, seq), each a vocabulary id or -100 (not scored; on CPU)."""
    _is_tensor(where, "labels", labels, "a tensor of token ids of shape (batch, seq)")
    if labels.dtype != torch.long:
        _fail(where, "labels", "token ids of dtype torch.long (-100 where not scored)", f"dtype {labels.dtype}")
    inputs = input_ids if input_ids is not None else inputs_embeds
    if torch.is_tensor(inputs) and inputs.dim() >= 2 and tuple(labels.shape) != tuple(inputs.shape[:2]):
        _fail(where, "labels", f"of the input's shape (batch, seq) = {tuple(inputs.shape[:2])}", _shape(labels))
    if checks_values(labels):
        outside = first_outside(labels, 0, config.vocab_size - 1, ignore=IGNORE_INDEX)
        if outside is not None:
            _fail(
                where,
                "labels",
                f"ids in [0, {config.vocab_size - 1}] (the vocabulary) or {IGNORE_INDEX} (not scored)",
                outside,
            )


__all__ = [
    "VALUE_CHECKS_VARIABLE",
    "check_labels",
    "check_model_inputs",
    "checks_values",
    "first_outside",
    "is_compiling",
    "position_limit",
]
