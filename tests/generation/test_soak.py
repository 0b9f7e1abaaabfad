"""benchmarks/soak_generate.py, short: many `diffusion_generate` calls leave no cache object behind and no
module-level cache growing; past dynamo's recompile limit the eager fallback is reported once."""

import torch

from helpers import script_module
from llada import prepare_llada

soak_generate = script_module("soak_generate")


def quiet(_):
    pass


def test_thirty_calls_of_every_mode_leave_nothing_behind():
    result = soak_generate.soak(30, report_every=10, warmup=10, log=quiet)
    summary = soak_generate.summarise(result, compile_mode=False)
    checks = summary["checks"]
    assert checks["no cache or context outlives its call"]
    assert checks["_COMPILED_FORWARDS and warning_once flat after the warm-up"]
    assert checks["block-mask cache within its maxsize (16)"]
    assert summary["gc_growth"] < 200  # tracked objects: no per-call leak (objects of earlier tests may go)
    assert sum(result["counts"].values()) == 30 and len(result["counts"]) >= 8  # many modes, both models


def test_past_the_recompile_limit_the_fallback_is_reported_once():
    from transformers.utils import logging as hf_logging

    torch._dynamo.reset()
    hf_logging.warning_once.cache_clear()  # "once" is once per process: this test must see the first time
    try:
        result = soak_generate.soak(30, compile_mode=True, report_every=10, warmup=10, recompile_limit=2, log=quiet)
    finally:
        torch._dynamo.reset()
        prepare_llada._COMPILED_FORWARDS.clear()  # its fallback state is this test's, not the next one's
    summary = soak_generate.summarise(result, compile_mode=True)
    assert result["limit_warnings"] == 1 and summary["checks"]["the eager fallback reported once"]
    assert summary["checks"]["no cache or context outlives its call"]
    assert summary["base"]["compiled_forwards"] == summary["last"]["compiled_forwards"]


def test_results_keep_the_other_modes_section(tmp_path):
    path = tmp_path / "soak.md"
    soak_generate.write_section(path, "## eager\n\nfirst\n", "## eager")
    soak_generate.write_section(path, "## compile=True, backend eager\n\ncompiled\n", "## compile=True, backend eager")
    soak_generate.write_section(path, "## eager\n\nsecond\n", "## eager")
    text = path.read_text()
    assert text.startswith("# Soak") and "second" in text and "first" not in text and "compiled" in text
    assert text.index("## eager") < text.index("## compile=True")
