"""Tests for the canvas key/value cache's own decisions (llada/cache_llada.py): which window each step runs, how
`update` records and serves keys, and which rows it keeps. Token-level exactness is in test_generation_cache.py."""

import pytest
import torch

from llada.cache_llada import CanvasKVCache


@pytest.mark.parametrize(
    "mode,interval,expected",
    [
        ("prefix", None, [(0, 20), (8, 20), (8, 20), (8, 20)]),
        ("dual", None, [(0, 20), (8, 12), (8, 12), (8, 12)]),
        ("dual", 2, [(0, 20), (8, 12), (0, 20), (8, 12)]),
        ("prefix", 1, [(0, 20)] * 4),
    ],
)
def test_window_of_each_step(mode, interval, expected):
    cache = CanvasKVCache(mode, refresh_interval=interval)
    assert [cache.plan_window(slice(8, 12), step, 20) for step in range(4)] == expected


def test_refresh_records_and_window_is_written_in_place():
    cache = CanvasKVCache("dual")
    keys, values = torch.zeros(2, 1, 6, 4), torch.ones(2, 1, 6, 4)
    cache.plan_window(slice(2, 4), 0, 6)
    assert cache.update(keys, values, 0) == (keys, values)
    cache.plan_window(slice(2, 4), 1, 6)
    all_keys, all_values = cache.update(torch.full((2, 1, 2, 4), 7.0), torch.full((2, 1, 2, 4), 8.0), 0)
    assert all_keys.shape == (2, 1, 6, 4) and all_keys is cache.keys[0]
    assert all_keys[:, :, 2:4].eq(7).all() and all_keys[:, :, [0, 1, 4, 5]].eq(0).all()
    assert all_values[:, :, 2:4].eq(8).all()


def test_a_window_covering_the_whole_canvas_is_a_refresh():
    cache = CanvasKVCache("prefix")
    assert cache.plan_window(slice(0, 4), 1, 8) == (0, 8)  # no prompt, first block: prefix runs everything
    keys = torch.zeros(1, 1, 8, 2)
    assert cache.update(keys, keys, 3)[0] is keys and cache.keys[3] is keys


def test_keep_rows_keeps_the_guidance_copies_too():
    cache = CanvasKVCache("prefix", copies=2)
    cache.keep_rows(torch.tensor([0]))  # nothing recorded yet: nothing to do
    rows = torch.arange(6.0).view(6, 1, 1, 1)  # rows 0-2, then their guidance copies 3-5
    cache.plan_window(slice(0, 1), 0, 1)
    cache.update(rows, rows + 10, 0)
    cache.keep_rows(torch.tensor([0, 2]))
    assert cache.keys[0].flatten().tolist() == [0, 2, 3, 5]
    assert cache.values[0].flatten().tolist() == [10, 12, 13, 15]


def test_bad_mode():
    with pytest.raises(ValueError, match="`mode` must be 'prefix' or 'dual', got 'full'"):
        CanvasKVCache("full")
