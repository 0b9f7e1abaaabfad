"""Smoke test of experiments/compare_ar.py: both model types train at the same time budget and the report is
written."""

import json
import runpy
import sys

import pytest

from helpers import QUIET_CPU_ARGS, ROOT, TINY_DATA_ARGS, TINY_MODEL_ARGS


@pytest.mark.slow
def test_compare_ar_writes_table_plot_and_samples(tmp_path, monkeypatch):
    argv = [
        "compare_ar.py",
        "--output_dir",
        str(tmp_path),
        "--num_t_samples",
        "2",
        "--max_eval_blocks",
        "8",
        "--num_samples",
        "2",
        "--new_bytes",
        "24",
        "--prompt_bytes",
        "12",
        "--max_steps",
        "3",
        "--eval_steps",
        "3",
        *TINY_MODEL_ARGS,
        *TINY_DATA_ARGS,
        *QUIET_CPU_ARGS,
        "--num_sample_generations",
        "0",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "experiments" / "compare_ar.py"), run_name="__main__")
    assert done.value.code == 0
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["steps"]["autoregressive"] == 3 and result["steps"]["llada"] >= 1  # LLaDA's scaled to equal time
    assert result["llada_perplexity_bound"] > 1 and result["ar_perplexity"] > 1
    assert set(result["samples"]) == {"llada", "autoregressive", "validation text"}
    for name in ("llada", "autoregressive"):
        figures = result["samples"][name]
        assert len(figures["samples"]) == 2 and 0 <= figures["word_validity"] <= 1
        assert figures["generative_perplexity"] > 1
    assert (tmp_path / "compare.png").stat().st_size > 1000 and "| LLaDA" in (tmp_path / "compare.md").read_text()
