"""benchmarks/common.py, the benchmarks' harness: set-up, model presets, alternated timing, reports."""

import argparse
import json

import pytest
import torch

from helpers import script_module

common = script_module("common")


def test_setup_applies_threads_and_seed_and_says_them():
    parser = common.add_common_args(argparse.ArgumentParser(), output="report.md")
    args = parser.parse_args(["--threads", "0", "--seed", "3"])
    assert (args.threads, args.seed, args.output) == (0, 3, "report.md")
    threads = torch.get_num_threads()
    line = common.setup(args)  # threads 0: torch's own count is kept
    assert torch.get_num_threads() == threads and "seed 3" in line and f"{threads} thread(s)" in line


def test_the_seed_makes_random_draws_repeat():
    args = argparse.Namespace(threads=0, seed=5)
    common.setup(args)
    first = torch.rand(3)
    common.setup(args)
    assert torch.equal(first, torch.rand(3))


@pytest.mark.parametrize("preset", list(common.PRESETS))
def test_llada_and_llama_of_a_preset_have_the_same_size(preset):
    llada = common.random_model(preset, num_hidden_layers=1)
    llama = common.random_model(preset, "llama", num_hidden_layers=1)
    sizes = common.PRESETS[preset]
    for config in (llada.config, llama.config):
        assert (config.vocab_size, config.hidden_size, config.intermediate_size, config.num_attention_heads) == (
            sizes["vocab_size"],
            sizes["hidden_size"],
            sizes["intermediate_size"],
            sizes["num_attention_heads"],
        )
        assert config.num_hidden_layers == 1  # an override
    assert sum(p.numel() for p in llada.parameters()) == sum(p.numel() for p in llama.parameters())
    vocab = sizes["vocab_size"]  # the tokenizers' layout: EOS, PAD, MASK are the last three ids
    assert (llada.config.eos_token_id, llada.config.pad_token_id, llada.config.mask_token_id) == (
        vocab - 3,
        vocab - 2,
        vocab - 1,
    )
    assert not llada.training and not llama.training


def test_random_models_are_seeded_and_take_llada_options():
    a, b = common.random_model("tiny", seed=1), common.random_model("tiny", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert common.random_model("tiny", block_size=4).config.block_size == 4
    with pytest.raises(ValueError, match="block_size"):
        common.random_model("tiny", "llama", block_size=4)
    with pytest.raises(ValueError, match="preset 'huge'"):
        common.model_config("huge")


def test_time_alternated_reverses_the_order_every_other_round_and_keeps_the_spread():
    calls = []
    fns = {name: (lambda name=name: calls.append(name) or name.upper()) for name in ("a", "b", "c")}
    times = common.time_alternated(fns, repeats=4, warmup=1)
    assert calls == ["a", "b", "c"] + ["a", "b", "c", "c", "b", "a"] * 2
    for name, timing in times.items():
        assert len(timing.runs) == 4 and timing.low <= timing.median <= timing.high
        assert timing.result == name.upper()  # what the last call returned
    cpu = common.time_alternated({"x": lambda: sum(range(1000))}, repeats=3, clock="cpu")
    assert cpu["x"].result == 499500 and cpu["x"].median >= 0


def test_paired_ratio_pairs_the_runs_of_a_round():
    slow = common.Timing(2.0, 1.0, 9.0, (1.0, 9.0, 2.0))
    fast = common.Timing(1.0, 0.5, 4.5, (0.5, 4.5, 1.0))
    assert common.paired_ratio(slow, fast) == 2.0
    assert str(fast) == "1000.0 ms [500.0-4500.0]"


def test_write_report_writes_markdown_and_json_beside_it(tmp_path):
    rows = [
        dict(mode="baseline", time=common.Timing(0.01, 0.009, 0.012, (0.01,)), speedup=1.0, ppl=float("nan")),
        dict(mode="dual", time=common.Timing(0.005, 0.004, 0.006, (0.005,)), speedup=2.0, ppl=None),
    ]
    path = common.write_report(
        tmp_path / "out" / "bench.md",
        rows,
        title="A benchmark",
        intro="One thread.",
        columns={"mode": "mode", "time": "time", "speedup": "speed-up"},
        formats={"speedup": lambda x: f"{x:.1f}x"},
        notes=["- note"],
        meta={"threads": 1},
    )
    text = path.read_text()
    assert text.startswith("# A benchmark\n\nOne thread.\n\n| mode | time | speed-up |")
    assert "| dual | 5.0 ms [4.0-6.0] | 2.0x |" in text and text.endswith("- note\n")
    data = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert data["meta"] == {"threads": 1} and data["rows"][1]["time"]["median"] == 0.005
    assert data["rows"][0]["ppl"] is None  # NaN is written as null: strict JSON
    assert common.write_report("", rows) is None  # '' (--output ''): no report


def test_write_report_appends_a_run_to_the_same_files(tmp_path):
    for label in ("before", "after"):
        common.write_report(tmp_path / "profile.md", [dict(step=label)], intro=f"### {label}", append=True)
    assert (tmp_path / "profile.md").read_text().count("| step |") == 2
    runs = json.loads((tmp_path / "profile.json").read_text())
    assert [run["rows"][0]["step"] for run in runs] == ["before", "after"]
