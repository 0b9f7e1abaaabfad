"""Smoke tests of the sampling benchmarks: benchmarks/bench_generate.py (its table, plot and a block model's
modes), benchmarks/profile_generate.py and benchmarks/bench_row_streams.py, on tiny random models."""

import json

import pytest
import torch

from helpers import script_module, tiny_model


@pytest.mark.slow
def test_generation_benchmark_writes_table_and_plot(tmp_path):
    results = script_module("bench_generate").main(
        [
            "--random_models",
            "--lengths",
            "32",
            "--batch_sizes",
            "2",
            "--output",
            str(tmp_path / "generate.md"),
            "--threads",
            "0",
            "--extra_thresholds",
        ]
    )
    modes = [row["mode"] for row in results]
    assert modes == [
        "baseline",
        "prefix",
        "dual",
        "dual+threshold",
        "dual+credit 0.9",
        "dual-masked",
        "steps/2",
        "steps/4",
        "vicinity",
        "vicinity icdf",
        "vicinity icdf steps/2",
        "b8 dual-masked",
        "b8 vicinity",
        "b8 vicinity icdf",
        "b8 vicinity icdf steps/2",
        "b8 vicinity icdf steps/4",
        "b8 vicinity icdf+credit 0.9",
        "b16 vicinity icdf",
        "b16 vicinity icdf steps/2",
        "b16 vicinity icdf steps/4",
        "AR generate",
    ]
    assert [row["nfe"] for row in results if row["mode"].endswith("steps/4")] == [8, 8, 8]
    assert all(row["gen_ppl"] > 1 and row["tokens_per_s"] > 0 for row in results)
    assert results[0]["identical"] == 1.0 and results[0]["nfe"] == 32
    table = (tmp_path / "generate.md").read_text()
    assert "| 2 | 32 | dual+threshold |" in table and "target >= 10x" in table
    assert (tmp_path / "generate.png").stat().st_size > 1000
    assert json.loads((tmp_path / "generate.json").read_text())["rows"][0]["mode"] == "baseline"


def test_generation_benchmark_runs_a_block_model_with_its_own_modes():
    bench = script_module("bench_generate")
    args = bench.parse_args(["--random_models", "--lengths", "32", "--batch_sizes", "2", "--extra_thresholds"])
    model = tiny_model(initializer_range=0.2, block_size=2)
    modes, block_length = bench.model_modes(model, args)
    assert block_length is None and list(modes) == [
        "baseline",
        "block cache",
        "block cache icdf",
        "block cache icdf+threshold 0.9",
        "block cache icdf steps/2",
    ]
    prompts = torch.tensor([[11, 12, 13, 14], [21, 22, 23, 24]])
    runs = {
        mode: bench.diffusion_run(model, prompts, 16, block_length, settings, temperature=1.0, top_p=0.8)
        for mode, settings in modes.items()
    }  # mode -> (tokens, nfe)
    assert torch.equal(runs["block cache"][0], runs["baseline"][0])  # the exact cache: the plain sampler's tokens
    assert [runs[mode][1] for mode in ("baseline", "block cache", "block cache icdf steps/2")] == [16, 16, 8]
    args.modes = ["baseline", "vicinity"]  # a full-attention mode: refused for a block model, with its modes named
    with pytest.raises(SystemExit, match="not modes of this block diffusion"):
        bench.model_modes(model, args)


def test_profile_of_a_block_model_times_its_modes(tmp_path):
    tiny_model(initializer_range=0.2, block_size=2).save_pretrained(tmp_path / "block")
    profile = script_module("profile_generate")
    output = tmp_path / "profile.md"
    profile.main(
        [
            "--model",
            str(tmp_path / "block"),
            "--batch_size",
            "2",
            "--length",
            "8",
            "--prompt_length",
            "4",
            "--threads",
            str(torch.get_num_threads()),
            "--output",
            str(output),
        ]
    )
    table = output.read_text()
    assert "blocks of 2 (the model's)" in table
    assert [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| block")] == [
        "| block baseline",
        "| block cache",
        "| block cache icdf",
    ]
    with pytest.raises(SystemExit, match="for full-attention models"):
        profile.main(["--model", str(tmp_path / "block"), "--modes", "dual", "--output", str(output)])


def test_row_streams_benchmark_reports_the_cost_and_the_invariance(tmp_path):
    output = tmp_path / "row_streams.md"
    script_module("bench_row_streams").main(
        [
            "--batch_size",
            "3",
            "--length",
            "8",
            "--block_length",
            "4",
            "--repeats",
            "1",
            "--threads",
            "0",
            "--output",
            str(output),
            "--random_models",
        ]
    )
    rows = json.loads(output.with_suffix(".json").read_text())["rows"]
    assert [row["mode"] for row in rows] == ["baseline", "dual + threshold 0.9"]
    assert "| baseline |" in output.read_text()
    # per-row streams: every row the same alone and in the batch
    assert [row["equal_per_row"] for row in rows] == ["3/3", "3/3"]
    assert all(row["per_row"]["median"] > 0 and row["paired"] > 0 for row in rows)
