"""The canvas key/value cache of Fast-dLLM's fast sampling (Wu et al. 2025), and the decisions that go with it.

`use_cache="prefix"`: a block's first step runs the whole canvas and records every position's keys/values; later
steps of the block run the block and everything after it, reading the keys/values of the left part from the cache.
`"dual"`: later steps run only the block, reading the left part and the still-masked right part from the cache.
`cache_refresh_interval=k` also refreshes (runs the whole canvas) at every k-th step of a block; `k=1` gives exactly
the tokens of `use_cache=False`. `refresh_window="vicinity"` (dual only, without an interval) makes the refresh at a
block's start after the first a windowed pass over the block just finished and the new one: the finished block's
keys/values are recomputed from its final tokens, those of the prompt, the earlier blocks and the masked suffix
are kept as last computed (a smaller pass, a staler cache; dInfer's vicinity refresh in its simplest form). A refresh
is the step's own forward call, so `nfe` still counts steps and
`decode_step` means the same. The guidance copy has its own cache rows (2 x batch).

The cache decides which positions each step's forward pass runs ([`CanvasKVCache.plan_window`]), records or
serves keys/values during that pass (`update`, the protocol `LLaDAModel.forward` calls per layer), and drops the
rows that leave the forward batch ([`CanvasKVCache.keep_rows`]).

With static shapes (a compiled forward) a prefix window always starts at `static_start`, the first masked column,
whatever the block: its positions left of the block are run too but keep their cached keys/values, so the tokens
are those of the shorter window and one graph serves every windowed step. Windows are written through index
tensors, never Python slices, for the same reason.

A block diffusion model's cache ([`BlockKVCache`]) is exact instead: it holds the finished blocks, which never change.

Dream's logit shift (`config.logit_shift`, [`shift_hidden_states`]) predicts position i from the final hidden state
of position i - 1, which a windowed pass may not run. Both caches therefore also keep the final hidden state of every
position they have seen, recorded and served like the keys: the state before a window is exact with
[`BlockKVCache`] (a finished block's last position) and as fresh as the cached keys with [`CanvasKVCache`].

This is a Hub file: it imports only the standard library and torch.
"""

from typing import Optional

import torch

CACHE_MODES = (None, False, "prefix", "dual")  # None: the model's exact cache if it has one (block models)


class CanvasKVCache:
    r"""
    Keys and values of every canvas position, per layer, for windowed forward passes.

    A *refresh* is a forward pass over the whole canvas: `update` records each layer's keys/values
    (rows, kv_heads, seq, head_dim) and returns them unchanged. A *windowed* pass runs only positions
    `[start, stop)`: `update` writes the window's fresh keys/values over the stored ones and returns the whole
    canvas's, so the window attends to the stored keys of every other position. The window is recomputed at
    every windowed step, so writing it in place loses nothing, and no copy of the canvas's keys is made.

    Our own small class: transformers' `Cache` classes append along the sequence (autoregressive decoding); here
    the length is fixed and a window in the middle is replaced at every step.

    Args:
        mode (`str`): `"prefix"` or `"dual"` (see the module docstring).
        refresh_interval (`int`, *optional*): refresh at every `k`-th step of a block too; `None`: at block starts.
        copies (`int`, *optional*, defaults to 1): forward rows per batch row, 2 with classifier-free guidance (the
            running rows, then their prompt-masked copies in the same order).
        static_start (`int`, *optional*): static shapes: every prefix window starts at this column (see the module
            docstring). `None`: a prefix window starts at its block.
        refresh_window (`str`, *optional*): `None` or `"canvas"`: a refresh runs the whole canvas; `"vicinity"`
            (dual, no `refresh_interval`): a block's first step, once the cache holds keys, runs the previous block
            and the block (see the module docstring).
    """

    def __init__(
        self,
        mode: str,
        refresh_interval: Optional[int] = None,
        copies: int = 1,
        static_start: Optional[int] = None,
        refresh_window: Optional[str] = None,
    ):
        if mode not in CACHE_MODES[2:]:
            raise ValueError(f"CanvasKVCache: `mode` must be 'prefix' or 'dual', got {mode!r}.")
        if refresh_window not in (None, "canvas", "vicinity") or (
            refresh_window == "vicinity" and (mode != "dual" or refresh_interval is not None)
        ):
            raise ValueError(
                f"CanvasKVCache: `refresh_window` must be None, 'canvas' or 'vicinity' (the last with "
                f"mode 'dual' and no refresh_interval), got {refresh_window!r}."
            )
        self.mode, self.refresh_interval, self.copies = mode, refresh_interval, copies
        self.static_start, self.refresh_window = static_start, refresh_window
        self.keys, self.values = {}, {}
        self._window = None  # (window,) canvas positions of the pass in progress; None: a refresh
        self._cached = None  # (window,) bool: positions of the window that keep their cached keys/values
        self._positions = None  # (rows, k) per-row canvas columns of the pass in progress, see `plan_positions`
        self.hidden = None  # (rows, seq, hidden) final hidden states, kept for the logit shift

    def plan_window(self, block: slice, block_step: int, seq_len: int):
        """Decides which canvas positions step `block_step` of the block `block` runs, and prepares `update` for
        that pass. Returns `(start, stop)`: `(0, seq_len)` for a refresh (the block's first step and every
        `refresh_interval`-th step), otherwise the block and what follows it (prefix) or the block (dual); a
        vicinity refresh runs the previous block and the block."""
        interval = self.refresh_interval
        refresh = block_step == 0 if interval is None else block_step % interval == 0
        self._window = self._cached = self._positions = None
        vicinity = refresh and self.refresh_window == "vicinity" and bool(self.keys)
        if refresh and not vicinity:  # every layer's keys/values recorded anew (from empty: the same graph each time)
            self.keys, self.values = {}, {}
            return 0, seq_len
        start, stop = block.start, seq_len if self.mode == "prefix" else block.stop
        if vicinity:  # the block just finished gets the keys/values of its final tokens
            start = max(block.start - (block.stop - block.start), 0)
        device = next(iter(self.keys.values())).device if self.keys else None
        if self.mode == "prefix" and self.static_start is not None:
            start = self.static_start
            self._cached = torch.arange(start, stop, device=device) < block.start  # (window,)
        if (start, stop) != (0, seq_len):
            self._window = torch.arange(start, stop, device=device)
        return start, stop

    def plan_positions(self, positions: torch.Tensor):
        """Turns the windowed pass just planned into one over `positions` (rows, k): canvas columns, distinct within
        a row, their own for every row (`cache_window="masked"`); the guidance copies use the same columns. `update`
        writes their fresh keys/values and returns the whole canvas's."""
        self._window, self._cached = None, None
        self._positions = positions.repeat(self.copies, 1)  # (copies * rows, k)

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self._positions is not None:  # per-row columns: (rows, kv_heads, k, head_dim)
            index = self._positions[:, None, :, None].expand(-1, key.shape[1], -1, key.shape[3])
            self.keys[layer_idx].scatter_(2, index, key)
            self.values[layer_idx].scatter_(2, index, value)
            return self.keys[layer_idx], self.values[layer_idx]
        if self._window is None:
            self.keys[layer_idx], self.values[layer_idx] = key, value
            return key, value
        keys, values = self.keys[layer_idx], self.values[layer_idx]  # (rows, kv_heads, seq, head_dim)
        if self._cached is not None:  # a static prefix window: its positions left of the block stay as cached
            kept = self._cached[:, None]  # (window, 1), broadcast over (rows, kv_heads, window, head_dim)
            key = torch.where(kept, keys.index_select(2, self._window), key)
            value = torch.where(kept, values.index_select(2, self._window), value)
        keys.index_copy_(2, self._window, key)
        values.index_copy_(2, self._window, value)
        return keys, values

    def shift_hidden_states(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The logit shift in the pass in progress: records the pass's final hidden states `(rows, window, hidden)`
        as `update` records keys (a refresh all of them, a static window not those left of the block) and returns
        each position's predecessor's, read from the record (column 0: its own)."""
        if self._positions is not None:  # per-row columns (rows, k)
            index = self._positions[..., None].expand(-1, -1, hidden_states.shape[-1])  # (rows, k, hidden)
            self.hidden.scatter_(1, index, hidden_states)
            return self.hidden.gather(1, (index - 1).clamp(min=0))
        if self._window is None:
            self.hidden = hidden_states
            return _shifted(hidden_states)
        if self._cached is not None:
            kept = self._cached[:, None]  # (window, 1)
            hidden_states = torch.where(kept, self.hidden.index_select(1, self._window), hidden_states)
        self.hidden.index_copy_(1, self._window, hidden_states)
        return self.hidden.index_select(1, (self._window - 1).clamp(min=0))

    def keep_rows(self, keep: torch.Tensor):
        """Keeps only the batch rows at positions `keep` (indices into the rows the cache holds now), and their
        guidance copies: finished rows leave the forward batch."""
        _keep_rows(self, keep)


class BlockKVCache:
    r"""
    The exact key/value cache of a block diffusion model (`config.block_size`): keys and values of the finished
    blocks, per layer.

    Attention is block-causal, so a finished block's keys and values depend only on it and the blocks before it:
    once computed from its final tokens they never change, and no refresh is needed (unlike [`CanvasKVCache`],
    whose caches of a bidirectional model are approximations). Each step's forward pass runs the window from the
    first position not yet final to the end of the model block being decoded: at a block's first step the previous
    block (now final) and the new one, at later steps only the block. The window's queries attend to the stored
    keys before it and to the window, which is what `LLaDAModel.forward` builds for a block model
    (`get_seq_length` tells it how many positions precede the window).

    Generated blocks start at the end of the prompt (`generation_start`, a block boundary: the sampler shifts each
    row's positions so that it is), and the prompt's blocks are all final after the first pass.

    Args:
        block_size (`int`): the model's `config.block_size`.
        generation_start (`int`): canvas index of the first generated position (the padded prompt length).
        copies (`int`, *optional*, defaults to 1): forward rows per batch row, 2 with classifier-free guidance.
    """

    def __init__(self, block_size: int, generation_start: int, copies: int = 1):
        self.block_size, self.generation_start, self.copies = block_size, generation_start, copies
        self.keys, self.values = {}, {}  # layer -> (rows, kv_heads, canvas_len, head_dim), written in place
        self.final_length = 0  # canvas positions [0, final_length) hold final keys/values
        self._start, self._canvas_length = 0, None  # the pass in progress: its first position; the canvas length
        self.hidden = None  # (rows, canvas_len, hidden) final hidden states, kept for the logit shift

    def plan_window(self, block: slice, block_step: int, seq_len: int):
        """The canvas positions `(start, stop)` the next pass runs to decode positions `block` (a sampling block,
        inside one model block): from the first position not yet final to the end of that model block. After the pass
        everything before the model block is final."""
        offset = (block.start - self.generation_start) // self.block_size * self.block_size
        model_block_start = self.generation_start + offset
        start, stop = self.final_length, min(model_block_start + self.block_size, seq_len)
        self._start, self._canvas_length, self.final_length = start, seq_len, model_block_start
        return start, stop

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """How many canvas positions precede the window of the pass in progress (all of them cached)."""
        return self._start

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Writes the window's keys/values `(rows, kv_heads, window, head_dim)` after the cached ones and returns
        both, `(rows, kv_heads, start + window, head_dim)` (views of the stored buffers, no copy)."""
        start, stop = self._start, self._start + key.shape[2]
        if layer_idx not in self.keys:  # the first pass: buffers for the whole canvas
            length = max(stop, self._canvas_length or stop)
            self.keys[layer_idx] = key.new_empty((*key.shape[:2], length, key.shape[3]))
            self.values[layer_idx] = value.new_empty((*value.shape[:2], length, value.shape[3]))
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, start:stop] = key
        values[:, :, start:stop] = value
        return keys[:, :, :stop], values[:, :, :stop]

    def shift_hidden_states(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The logit shift in the pass in progress: records the window's final hidden states `(rows, window,
        hidden)` and returns each position's predecessor's; the one before the window is the last position of a
        finished block, recorded when that block was last run (with its final tokens)."""
        start, stop = self._start, self._start + hidden_states.shape[1]
        if self.hidden is None:
            length = max(stop, self._canvas_length or stop)
            self.hidden = hidden_states.new_empty((hidden_states.shape[0], length, hidden_states.shape[2]))
        self.hidden[:, start:stop] = hidden_states
        previous = self.hidden[:, start - 1 : start] if start > 0 else hidden_states[:, :1]  # (rows, 1, hidden)
        return torch.cat([previous, hidden_states[:, :-1]], dim=1)

    def keep_rows(self, keep: torch.Tensor):
        """Keeps only the batch rows at positions `keep` and their guidance copies (see [`CanvasKVCache`])."""
        _keep_rows(self, keep)


def _keep_rows(cache, keep: torch.Tensor):
    """`cache.keys` / `cache.values` (layer -> (copies * rows, ...)) reduced to the rows `keep` of each copy."""
    if not cache.keys:
        return
    rows = next(iter(cache.keys.values())).shape[0] // cache.copies
    index = torch.cat([keep + copy * rows for copy in range(cache.copies)])
    for layer_idx in cache.keys:
        cache.keys[layer_idx] = cache.keys[layer_idx].index_select(0, index)
        cache.values[layer_idx] = cache.values[layer_idx].index_select(0, index)
    if cache.hidden is not None:
        cache.hidden = cache.hidden.index_select(0, index)


def _shifted(hidden_states: torch.Tensor) -> torch.Tensor:
    """(batch, seq, hidden) -> the same, position i holding position i - 1's state and position 0 its own (Dream's
    `cat([logits[:, :1], logits[:, :-1]], dim=1)`)."""
    return torch.cat([hidden_states[:, :1], hidden_states[:, :-1]], dim=1)


def shift_hidden_states(
    hidden_states: torch.Tensor,
    past_key_values=None,
    position_ids=None,
    block_size: Optional[int] = None,
    copies: int = 0,
) -> torch.Tensor:
    r"""
    Dream's logit shift (`config.logit_shift`, Ye et al. 2025): the final hidden states the head reads, position i
    taking position i - 1's (position 0 its own), so that a converted autoregressive model's head keeps predicting
    the next token.

    Args:
        hidden_states (`torch.Tensor` of shape `(batch, seq, hidden)`, or `(rows, (copies + 1) * seq, hidden)` in
            block diffusion's training layout): the final (normalised) hidden states.
        past_key_values (*optional*): the cache of a windowed pass; it provides the state before the window
            (`shift_hidden_states(hidden_states)`, see [`CanvasKVCache`] and [`BlockKVCache`]).
        position_ids (`torch.LongTensor`, *optional*), block_size (`int`, *optional*), copies (`int`, *optional*):
            the training layout, `copies` noised copies of each row then its clean copy, with their positions
            `(rows, (copies + 1) * seq)`. The first position of a block then reads the clean copy's state before
            it, as when sampling, where the blocks before the one being decoded are finished.

    Returns:
        `torch.Tensor` of shape `(batch, seq, hidden)`, or `(rows, copies * seq, hidden)` (the noised copies).
    """
    if past_key_values is not None:
        if not callable(getattr(past_key_values, "shift_hidden_states", None)):
            raise ValueError(
                f"`config.logit_shift` needs the final hidden state before a windowed pass, which the cache "
                f"{type(past_key_values).__name__} does not provide (no `shift_hidden_states` method); use this "
                f"project's CanvasKVCache or BlockKVCache, or a model with logit_shift=False."
            )
        return past_key_values.shift_hidden_states(hidden_states)
    if copies == 0:
        return _shifted(hidden_states)
    rows, length, width = hidden_states.shape
    seq = length // (copies + 1)
    noised = hidden_states[:, : copies * seq].reshape(rows, copies, seq, width)
    previous = torch.cat([noised[:, :, :1], noised[:, :, :-1]], dim=2)  # (rows, copies, seq, hidden)
    clean_previous = _shifted(hidden_states[:, copies * seq :])[:, None]  # (rows, 1, seq, hidden)
    blocks = position_ids[:, copies * seq :] // block_size  # (rows, seq), shared by the copies
    block_starts = torch.cat(
        [torch.zeros_like(blocks[:, :1], dtype=torch.bool), blocks[:, 1:] != blocks[:, :-1]], dim=1
    )  # (rows, seq); column 0 reads its own noised state, never the clean one
    shifted = torch.where(block_starts[:, None, :, None], clean_previous, previous)
    return shifted.reshape(rows, copies * seq, width)


__all__ = ["CACHE_MODES", "BlockKVCache", "CanvasKVCache", "shift_hidden_states"]
