"""Attention layouts: which positions each query may attend to, for every kind of forward pass of the model.

[`attention_layout`] is the one entry point: from the forward pass's inputs it returns what the layers need, the
input embeddings, the position ids and the attention mask, for the layout of the pass:

- full attention (`config.block_size` None): bidirectional; padding is excluded as a key
  (`transformers.masking_utils.create_bidirectional_mask` where available);
- a window of a longer canvas (the sampler's canvas cache, `past_key_values`): the window's queries against the
  whole canvas's keys;
- block diffusion (BD3-LM, Arriola et al. 2025; `config.block_size`): block-causal attention over one sequence, or
  after the cache of finished blocks; with `clean_input_ids`, the training layout `[noised copies; clean copy]` in
  which each noised block attends to itself and to the clean blocks before it ([`TrainingLayoutMask`] attends it
  in two parts instead of one mostly masked pass).

Block masks are boolean, True = may attend, of shape `(batch or 1, 1, queries, keys)`: SDPA and the eager path take
them as they are.

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling Hub
files.
"""

import functools
from typing import Optional

import torch

from .diffusion_llada import position_ids_from_padding

try:
    from transformers.masking_utils import create_bidirectional_mask
except ImportError:  # pragma: no cover - transformers without the bidirectional mask helper
    create_bidirectional_mask = None


def attention_layout(
    config,
    inputs_embeds: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    position_ids: Optional[torch.LongTensor] = None,
    past_key_values=None,
    clean_input_ids: Optional[torch.LongTensor] = None,
    embed_tokens=None,
    output_attentions: bool = False,
):
    r"""
    The inputs of the layers for one forward pass of `LLaDAModel`: `(inputs_embeds, position_ids, mask)`.

    Args:
        config: the model config (`block_size`, and what `create_bidirectional_mask` reads).
        inputs_embeds (`(batch, seq, hidden)`), attention_mask, position_ids, past_key_values, clean_input_ids:
            those of `LLaDAModel.forward` (see its docstring).
        embed_tokens (`nn.Module`): the token embedding, for the clean copy of the training layout.
        output_attentions (`bool`): the attention weights are wanted, so the mask is one tensor (the eager path).

    Returns:
        `inputs_embeds` (with `clean_input_ids`: `(rows, (copies + 1) * seq, hidden)`, the clean copy after the
        noised ones), `position_ids` (of the same length; by default the running count of real tokens) and the
        attention mask: None when every key may be seen, a prepared 4-D `attention_mask` as given, a boolean
        `(batch or 1, 1, q, k)` mask, what `create_bidirectional_mask` makes, or a [`TrainingLayoutMask`].
    """
    batch, seq = inputs_embeds.shape[:2]
    if getattr(config, "block_size", None) is not None:
        if past_key_values is not None:
            if clean_input_ids is not None:
                raise ValueError("LLaDAModel.forward: `clean_input_ids` cannot be combined with `past_key_values`.")
            return (
                inputs_embeds,
                *_cached_block_layout(
                    config.block_size, attention_mask, position_ids, past_key_values, batch, seq, inputs_embeds.device
                ),
            )
        inputs_embeds, position_ids, mask = _block_layout(
            config.block_size, inputs_embeds, attention_mask, position_ids, clean_input_ids, embed_tokens
        )
        prepared = attention_mask is not None and attention_mask.dim() == 4
        if clean_input_ids is not None and not prepared and not output_attentions:
            mask = TrainingLayoutMask(mask, inputs_embeds.shape[1] // seq - 1, seq)  # attended in two parts
        return inputs_embeds, position_ids, mask
    if clean_input_ids is not None:
        raise ValueError(
            "LLaDAModel.forward: `clean_input_ids` is for block diffusion models; this model has "
            "`config.block_size=None` (full attention)."
        )
    if past_key_values is not None:
        if position_ids is None:
            raise ValueError("LLaDAModel.forward: `position_ids` of the window are required with `past_key_values`.")
        # queries are the window, keys the whole canvas: a (batch, 1, 1, canvas_len) key-padding mask (pass None
        # when nothing is padded; no test on the values here, which would break a compiled graph)
        return inputs_embeds, position_ids, None if attention_mask is None else attention_mask.bool()[:, None, None]
    if position_ids is None:
        position_ids = _default_position_ids(attention_mask, batch, seq, inputs_embeds.device)
    return inputs_embeds, position_ids, _bidirectional_mask(config, inputs_embeds, attention_mask, output_attentions)


def _bidirectional_mask(config, inputs_embeds, attention_mask, output_attentions):
    """Key-padding mask in the form the attention implementation wants (None when nothing is padded)."""
    if attention_mask is None or attention_mask.dim() == 4:
        return attention_mask
    if create_bidirectional_mask is not None and not output_attentions:
        return create_bidirectional_mask(config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask)
    if bool(attention_mask.all()):
        return None
    # (batch, 1, 1, seq) boolean: True where the key is a real token; broadcast over heads and queries
    return attention_mask.bool()[:, None, None, :]


def _cached_block_layout(block_size, attention_mask, position_ids, past_key_values, batch, seq, device):
    """A block model's windowed pass after the cached finished blocks: `(position_ids, mask)`, the mask
    `(batch, 1, seq, cached + seq)` or None (one block, nothing padded: every key)."""
    cached = past_key_values.get_seq_length()
    if attention_mask is not None and attention_mask.dim() == 2:
        attention_mask = attention_mask[:, : cached + seq]  # a mask over a whole canvas: its first keys
    key_padding = _key_padding(attention_mask, batch, cached + seq, "cached length + seq")
    if position_ids is None:
        position_ids = _default_position_ids(key_padding, batch, cached + seq, device)[:, cached:]
    # every cached key is in an earlier, finished block; inside the window the pattern is block-causal
    blocks = position_ids // block_size  # (batch, seq)
    if key_padding is None and bool((blocks == blocks[:, :1]).all()):
        return position_ids, None
    mask = torch.cat(
        [blocks.new_ones((batch, seq, cached), dtype=torch.bool), blocks[:, None, :] <= blocks[:, :, None]], dim=-1
    )[:, None]  # (batch, 1, seq, all)
    return position_ids, _and_key_padding(mask, key_padding, first_query_key=cached)


def _block_layout(block_size, inputs_embeds, attention_mask, position_ids, clean_input_ids, embed_tokens):
    """Block diffusion without a cache: the inputs, positions and boolean attention mask `(batch or 1, 1, q, k)` of
    BD3-LM's training layout (noised + clean copy) or of one block-causal sequence."""
    batch, seq = inputs_embeds.shape[:2]
    device = inputs_embeds.device
    copies = 1 if clean_input_ids is None else _noised_copies(clean_input_ids, batch, seq)
    if attention_mask is not None and attention_mask.dim() == 4:  # a prepared mask: used as given
        if position_ids is None:
            position_ids = _default_position_ids(None, batch, seq, device)
        if clean_input_ids is not None:
            inputs_embeds, position_ids, _ = _training_layout(
                copies, inputs_embeds, position_ids, None, clean_input_ids, embed_tokens
            )
        return inputs_embeds, position_ids, attention_mask
    key_padding = _key_padding(attention_mask, batch, seq, "seq")
    layout = "causal" if clean_input_ids is None else "diffusion"
    mask = _canonical_block_mask(layout, seq, block_size, device, copies)  # (1, 1, q, k), once per shape
    if position_ids is None and key_padding is None:
        position_ids = _default_position_ids(None, batch, seq, device)
    else:  # e.g. left padding: a row's blocks start at its first real token
        if position_ids is None:
            position_ids = _default_position_ids(key_padding, batch, seq, device)
        blocks = position_ids // block_size  # (batch, seq)
        if not _has_canonical_blocks(blocks, key_padding, block_size):
            rows = blocks[: batch // copies]  # the noised copies are copies of these rows: same positions
            mask = block_causal_mask(blocks, blocks) if layout == "causal" else block_diffusion_mask(rows, copies)
    if clean_input_ids is not None:
        inputs_embeds, position_ids, key_padding = _training_layout(
            copies, inputs_embeds, position_ids, key_padding, clean_input_ids, embed_tokens
        )
    return inputs_embeds, position_ids, _and_key_padding(mask, key_padding)


def _training_layout(copies, inputs_embeds, position_ids, key_padding, clean_input_ids, embed_tokens):
    """BD3-LM's layout: each clean row after its `copies` noised copies, `(rows, (copies + 1) * seq, ...)`; the
    copies share the clean row's positions."""
    rows = clean_input_ids.shape[0]
    inputs_embeds = torch.cat([side_by_side(inputs_embeds, copies), embed_tokens(clean_input_ids)], dim=1)
    position_ids = torch.cat([side_by_side(position_ids, copies), position_ids[:rows]], dim=1)
    if key_padding is not None:
        key_padding = torch.cat([side_by_side(key_padding, copies), key_padding[:rows]], dim=1)
    return inputs_embeds, position_ids, key_padding


class TrainingLayoutMask:
    """BD3-LM's training layout `[noised copy 1; ...; noised copy c; clean copy]` (each `seq` long) attended in two
    parts instead of one `((c + 1) seq)^2` pass that is mostly masked: each noised copy against its own positions and
    the clean copy (`(c rows, seq, 2 seq)`), and the clean copy against itself (`(rows, seq, seq)`), so the
    attention costs `(2 c + 1) seq^2` per row instead of `(c + 1)^2 seq^2` (5 against 9 for complementary masking).
    The outputs are those of the one pass (tested)."""

    def __init__(self, mask: torch.Tensor, copies: int, seq: int):
        # mask: the layout's boolean (1 or rows, 1, (c + 1) seq, (c + 1) seq); the copies share their rows' padding
        clean = slice(copies * seq, (copies + 1) * seq)
        own = [slice(c * seq, (c + 1) * seq) for c in range(copies)]
        parts = [
            torch.cat([mask[:, :, span, span], mask[:, :, span, clean]], dim=-1) for span in own
        ]  # (1 or rows, 1, seq, 2 seq) each
        # a mask built once per shape is the same for every copy; one per row follows the copies' order of rows
        self.noised = parts[0] if mask.shape[0] == 1 else torch.cat(parts)  # (1 or c rows, 1, seq, 2 seq)
        self.clean = mask[:, :, clean, clean]  # (1 or rows, 1, seq, seq)
        self.copies, self.seq = copies, seq

    def attend(self, attention_interface, module, query, key, value, options):
        """`query` `(rows, heads, q, d)` with q = c seq (no clean queries: the last layer) or (c + 1) seq, `key`
        and `value` `(rows, kv_heads, (c + 1) seq, d)` -> the one pass's `(rows, q, heads, d)` output, None."""
        copies, seq = self.copies, self.seq
        clean = slice(copies * seq, (copies + 1) * seq)

        def copies_of(x, with_clean):  # (rows, h, ., d) -> (c rows, h, seq or 2 seq, d), copy-major like the input
            return torch.cat(
                [
                    torch.cat([x[:, :, c * seq : (c + 1) * seq], x[:, :, clean]], dim=2)
                    if with_clean
                    else x[:, :, c * seq : (c + 1) * seq]
                    for c in range(copies)
                ]
            )

        noised, _ = attention_interface(
            module, copies_of(query, False), copies_of(key, True), copies_of(value, True), self.noised, **options
        )  # (c rows, seq, heads, d)
        output = side_by_side(noised, copies)  # (rows, c seq, heads, d)
        if query.shape[2] > copies * seq:  # the clean copy's queries
            clean_output, _ = attention_interface(
                module, query[:, :, clean], key[:, :, clean], value[:, :, clean], self.clean, **options
            )  # (rows, seq, heads, d)
            output = torch.cat([output, clean_output], dim=1)
        return output, None


def _noised_copies(clean_input_ids: torch.Tensor, batch: int, seq: int) -> int:
    """How many noised copies of each clean row the input holds (its rows: copy c of clean row i is row
    `c * len(clean_input_ids) + i`); a clear error unless `clean_input_ids` is `(batch / copies, seq)`."""
    rows = clean_input_ids.shape[0] if clean_input_ids.dim() == 2 else 0
    if clean_input_ids.dim() != 2 or clean_input_ids.shape[1] != seq or rows == 0 or batch % rows:
        raise ValueError(
            f"LLaDAModel.forward: `clean_input_ids` must have the shape of the input {(batch, seq)}, or "
            f"(batch / copies, {seq}) when the input holds several noised copies of each clean row; "
            f"got {tuple(clean_input_ids.shape)}."
        )
    return batch // rows


def side_by_side(x: torch.Tensor, copies: int) -> torch.Tensor:
    """`(copies * rows, seq, ...)` -> `(rows, copies * seq, ...)`: the copies of each row one after another."""
    rows, seq = x.shape[0] // copies, x.shape[1]
    return x.reshape(copies, rows, seq, *x.shape[2:]).transpose(0, 1).reshape(rows, copies * seq, *x.shape[2:])


def stacked(x: torch.Tensor, copies: int) -> torch.Tensor:
    """The inverse of `side_by_side`: `(rows, copies * seq, ...)` -> `(copies * rows, seq, ...)`."""
    rows, seq = x.shape[0], x.shape[1] // copies
    return x.reshape(rows, copies, seq, *x.shape[2:]).transpose(0, 1).reshape(copies * rows, seq, *x.shape[2:])


# ----------------------------------------------------------------------------------------------------------------
# Block diffusion attention patterns (BD3-LM, Arriola et al. 2025). Boolean masks, True = may attend, of shape
# (batch or 1, 1, queries, keys): SDPA and the eager path take them as they are.


def block_causal_mask(query_blocks: torch.Tensor, key_blocks: torch.Tensor) -> torch.Tensor:
    """(batch, q), (batch, k) block indices -> (batch, 1, q, k): a query sees the keys of its block and earlier
    blocks (bidirectional inside a block, causal between blocks)."""
    return key_blocks[:, None, None, :] <= query_blocks[:, None, :, None]


def block_diffusion_mask(blocks: torch.Tensor, copies: int = 1) -> torch.Tensor:
    """BD3-LM's vectorised training pattern for the sequence [noised copy; clean copy], (batch, L) block indices
    -> (batch, 1, 2L, 2L). A noised block attends to itself (noised) and to the earlier blocks of the clean copy; a
    clean block attends block-causally to the clean copy and never to the noised one. One pass thus gives every
    block's prediction given the clean blocks before it.

    `copies` > 1: the sequence [noised copy 1; ...; noised copy `copies`; clean copy] of several noisings sharing
    one clean copy, `(batch, 1, (copies + 1) L, (copies + 1) L)`: each noised copy attends to its own blocks only.
    """
    query, key = blocks[:, :, None], blocks[:, None, :]  # (batch, L, 1), (batch, 1, L)
    same_block, earlier_block = key == query, key < query  # (batch, L, L) each
    nothing = torch.zeros_like(same_block)
    noised_queries = [
        torch.cat([same_block if own == copy else nothing for own in range(copies)] + [earlier_block], dim=-1)
        for copy in range(copies)
    ]  # (batch, L, (copies + 1) L) each
    clean_queries = torch.cat([nothing] * copies + [same_block | earlier_block], dim=-1)
    return torch.cat(noised_queries + [clean_queries], dim=1)[:, None]


@functools.lru_cache(maxsize=16)
def _canonical_block_mask(
    layout: str, seq: int, block_size: int, device: torch.device, copies: int = 1
) -> torch.Tensor:
    """The mask of a row whose positions are 0..seq-1, built once per shape: (1, 1, q, k)."""
    blocks = (torch.arange(seq, device=device) // block_size)[None]  # (1, seq)
    return block_causal_mask(blocks, blocks) if layout == "causal" else block_diffusion_mask(blocks, copies)


def _has_canonical_blocks(blocks: torch.Tensor, key_padding: Optional[torch.Tensor], block_size: int) -> bool:
    """Whether every real position of every row is in the block of a row numbered 0..seq-1 (the cached mask)."""
    canonical = torch.arange(blocks.shape[1], device=blocks.device) // block_size  # (seq,)
    agree = blocks == canonical
    return bool((agree if key_padding is None else agree | ~key_padding).all())


def _key_padding(attention_mask, batch: int, length: int, what: str) -> Optional[torch.Tensor]:
    """A 2-D attention mask as (batch, length) bool (True = real token), or None when nothing is padded."""
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2 or tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"LLaDAModel.forward: `attention_mask` must have shape (batch, {what}) = {(batch, length)}, "
            f"got {tuple(attention_mask.shape)}."
        )
    return None if bool(attention_mask.all()) else attention_mask.bool()


def _and_key_padding(mask: torch.Tensor, key_padding: Optional[torch.Tensor], first_query_key: int = 0):
    """Removes padded keys from a (batch or 1, 1, q, k) boolean mask; query i's own key is `first_query_key + i`.

    A query always keeps its own key, so that no row is empty: a padded query (e.g. the prompt of a guidance copy
    that drops it) gets a finite, unused output instead of NaN, which would reach every row through its values.
    """
    if key_padding is None:
        return mask
    queries, keys = mask.shape[-2:]
    query_index = torch.arange(queries, device=mask.device)[:, None] + first_query_key  # (q, 1)
    own_key = torch.arange(keys, device=mask.device) == query_index  # (q, k)
    return (mask & key_padding[:, None, None, :]) | own_key  # (batch, 1, q, k)


def _default_position_ids(attention_mask, batch, seq, device):
    """Positions count real tokens only: (batch, seq), 0 at each row's first real token."""
    if attention_mask is None or attention_mask.dim() != 2:
        return torch.arange(seq, device=device).unsqueeze(0).expand(batch, seq)
    return position_ids_from_padding(attention_mask)


__all__ = [
    "TrainingLayoutMask",
    "attention_layout",
    "block_causal_mask",
    "block_diffusion_mask",
    "side_by_side",
    "stacked",
]
