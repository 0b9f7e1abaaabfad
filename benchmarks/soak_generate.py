"""Soak test of `diffusion_generate`: many calls in one process, and whether memory and caches stay flat.

Every call draws (seeded) its batch size, left-padded prompt lengths, generated length, block length, steps and a
mode: no cache, the prefix or dual cache (with the masked-position window or the vicinity refresh), parallel
decoding, guidance, sampling with a seed, early stop, history; a third of the calls go to a block diffusion model
(its exact block cache, or none). Small random models (the `tiny` preset of benchmarks/common.py), so that thousands
of calls take minutes.

Every `--report_every` calls it records, after `gc.collect()`: the process's resident memory (VmRSS of
/proc/self/status, else `resource`'s peak), the live cache and context objects (`CanvasKVCache`, `BlockKVCache`,
`DenoisingContext`: none should outlive its call), all objects tracked by the garbage collector, and the sizes of
the module-level caches (`_COMPILED_FORWARDS`, the block-mask `lru_cache`, transformers' `warning_once` cache).
Growth is measured from the end of the warm-up (`--warmup` calls: the allocator and the caches fill up first):
RSS growth per 100 calls is the least-squares slope over the records after it.

`--compile` runs the full-attention model with `compile=True` (fullgraph, static shapes: one graph per prompt
length, batch size and kind of pass) on shapes that vary from call to call, so dynamo's recompile limit is soon
reached; the generation code then runs new shapes eagerly and says so in one warning, which must appear once. Its
backend is `eager` by default (dynamo's capture and guards without code generation; `--backend inductor` compiles
for real, about half a minute per graph on two cores).

    OMP_NUM_THREADS=1 python benchmarks/soak_generate.py                   # 2,000 calls, 1 thread, seed 0
    OMP_NUM_THREADS=1 python benchmarks/soak_generate.py --compile --calls 1000
    python benchmarks/soak_generate.py --calls 30 --report_every 10 --warmup 10 --output ''   # a smoke run

The results go to `benchmarks/results/soak.md` (a section per mode, the other mode's section kept); the exit status
is 1 when a check fails.
"""

import argparse
import gc
import logging
import random
import re
import resource
import sys
import time
from pathlib import Path

import torch

import common
from llada import masks_llada, prepare_llada
from llada.cache_llada import BlockKVCache, CanvasKVCache

VOCAB = common.PRESETS["tiny"]["vocab_size"]
PAD = common.special_ids(VOCAB)["pad_token_id"]
TRACKED = (CanvasKVCache, BlockKVCache, prepare_llada.DenoisingContext)
LIMIT_MESSAGE = "reached torch._dynamo's recompile limit"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="diffusion_generate calls (default 2000).")
    parser.add_argument("--report_every", type=int, default=100, help="Calls between two records (default 100).")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Calls before the baseline record (default: --report_every, or 10 %% of the calls).",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile=True on the full-attention model, past dynamo's recompile limit.",
    )
    parser.add_argument("--backend", default="eager", help="torch.compile backend with --compile (default eager).")
    parser.add_argument(
        "--recompile_limit",
        type=int,
        default=None,
        help="Sets torch._dynamo.config.recompile_limit (default: torch's own, 8).",
    )
    # --seed seeds the models and every call's settings; --output: the markdown file this mode's section goes into
    common.add_common_args(parser, output=common.RESULTS / "soak.md")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(args.report_every, max(1, args.calls // 10))
    return args


def build_models(seed: int):
    """A full-attention and a block diffusion model (block size 8) of the `tiny` preset (hidden 64, 2 layers), with
    grouped-query attention (2 key/value heads) and wide random weights."""
    sizes = dict(num_key_value_heads=2, initializer_range=0.2, seed=seed)
    return common.random_model("tiny", **sizes), common.random_model("tiny", block_size=8, **sizes)


def prompts(rng: random.Random, batch: int):
    """Left-padded random prompts: ids (batch, longest) and their attention mask, lengths 1 to 24."""
    lengths = [rng.randint(1, 24) for _ in range(batch)]
    longest = max(lengths)
    ids = torch.full((batch, longest), PAD, dtype=torch.long)
    mask = torch.zeros((batch, longest), dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, longest - length :] = torch.tensor([rng.randint(0, VOCAB - 4) for _ in range(length)])
        mask[row, longest - length :] = 1
    return ids, mask


FULL_MODES = {  # name -> settings of a full-attention call
    "no cache": dict(),
    "prefix": dict(use_cache="prefix"),
    "prefix, refresh every 2": dict(use_cache="prefix", cache_refresh_interval=2),
    "dual": dict(use_cache="dual"),
    "dual, masked window": dict(use_cache="dual", cache_window="masked"),
    "dual, vicinity refresh": dict(use_cache="dual", cache_refresh_window="vicinity"),
    "dual, threshold 0.5": dict(use_cache="dual", threshold=0.5),
    "guidance": dict(cfg_scale=1.0),
    "prefix, guidance": dict(use_cache="prefix", cfg_scale=1.0),
    "sampled": dict(temperature=1.0, top_p=0.9),
    "early stop": dict(early_stop=True, threshold=0.3),
    "history": dict(output_history=True, return_dict_in_generate=True),
}
BLOCK_MODES = {  # a block diffusion model: its exact cache by default
    "block, cache": dict(),
    "block, no cache": dict(use_cache=False),
    "block, threshold 0.5": dict(threshold=0.5),
    "block, guidance": dict(cfg_scale=1.0),
}
COMPILE_MODES = {"no cache": dict(), "prefix": dict(use_cache="prefix"), "dual": dict(use_cache="dual")}


def call_settings(rng: random.Random, compile_mode: bool):
    """One call's (model kind, mode name, keyword arguments), drawn from `rng`."""
    use_block = not compile_mode and rng.random() < 1 / 3
    modes = COMPILE_MODES if compile_mode else BLOCK_MODES if use_block else FULL_MODES
    name = rng.choice(sorted(modes))
    block_length = 8 if use_block else rng.choice([4, 8])
    max_new_tokens = block_length * rng.choice([1, 2, 3])
    settings = dict(
        modes[name],
        max_new_tokens=max_new_tokens,
        block_length=block_length,
        steps=max_new_tokens // rng.choice([1, 2]),
        seed=rng.randrange(2**31),
    )
    return ("block" if use_block else "full"), name, settings


def rss_kib() -> int:
    """Resident memory now (VmRSS), in KiB; the peak (ru_maxrss) where /proc is missing."""
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE).group(1))
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class CountingHandler(logging.Handler):
    """Counts the log records whose message holds `needle`."""

    def __init__(self, needle: str):
        super().__init__(logging.WARNING)
        self.needle, self.count = needle, 0

    def emit(self, record):
        if self.needle in record.getMessage():
            self.count += 1


def record(calls: int, start: float) -> dict:
    gc.collect()
    objects = gc.get_objects()
    live = sum(type(obj) in TRACKED for obj in objects)  # type(), not isinstance: no lazy module is touched
    return dict(
        calls=calls,
        seconds=time.perf_counter() - start,
        rss_kib=rss_kib(),
        live_caches=live,
        gc_objects=len(objects),
        compiled_forwards=len(prepare_llada._COMPILED_FORWARDS),
        block_masks=masks_llada._canonical_block_mask.cache_info().currsize,
        warnings_once=_warning_once_size(),
    )


def _warning_once_size() -> int:
    from transformers.utils import logging as hf_logging

    info = getattr(hf_logging.warning_once, "cache_info", None)
    return info().currsize if info is not None else -1


def soak(
    calls: int,
    compile_mode: bool = False,
    seed: int = 0,
    report_every: int = 100,
    warmup: int = 100,
    backend: str = "eager",
    recompile_limit=None,
    log=print,
) -> dict:
    """Runs the calls; returns the records, the per-mode call counts and the warnings counted."""
    from transformers import CompileConfig

    rng = random.Random(seed)
    models = dict(zip(("full", "block"), build_models(seed)))
    ours, dynamo = CountingHandler(LIMIT_MESSAGE), CountingHandler("recompile_limit")
    handlers = {prepare_llada.__name__: ours, "torch._dynamo": dynamo}
    limit = {} if recompile_limit is None else dict(recompile_limit=recompile_limit)
    # compile=True alone is the default (inductor, fullgraph, static shapes); another backend through compile_config
    compiled = (
        {}
        if not compile_mode
        else dict(compile=True)
        if backend == "inductor"
        else dict(compile=True, compile_config=CompileConfig(backend=backend, fullgraph=True, dynamic=False))
    )
    for name, handler in handlers.items():
        logging.getLogger(name).addHandler(handler)
    try:
        with torch._dynamo.config.patch(**limit):
            records, counts = run_calls(calls, rng, models, compiled, report_every, warmup, log)
            limit_in_force = torch._dynamo.config.recompile_limit
    finally:
        for name, handler in handlers.items():
            logging.getLogger(name).removeHandler(handler)
    return dict(
        records=records,
        counts=counts,
        limit_warnings=ours.count,
        dynamo_limit_warnings=dynamo.count,
        unique_graphs=_unique_graphs() if compile_mode else None,
        recompile_limit=limit_in_force,
    )


def run_calls(calls: int, rng: random.Random, models: dict, compiled: dict, report_every: int, warmup: int, log):
    """The calls themselves, with a record after the warm-up and every `report_every` calls."""
    records, counts, start = [], {}, time.perf_counter()
    for call in range(1, calls + 1):
        kind, name, settings = call_settings(rng, bool(compiled))
        ids, mask = prompts(rng, rng.choice([1, 2, 3, 4, 8]))
        settings.update(compiled)
        out = models[kind].diffusion_generate(ids, attention_mask=mask, **settings)
        sequences = out.sequences if hasattr(out, "sequences") else out
        assert sequences.shape == (ids.shape[0], ids.shape[1] + settings["max_new_tokens"])
        counts[name] = counts.get(name, 0) + 1
        del out, sequences
        if call == warmup or call % report_every == 0 or call == calls:
            records.append(dict(record(call, start), baseline=call == warmup))
            log(_format_record(records[-1]))
    return records, counts


def _unique_graphs():
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _format_record(r: dict) -> str:
    return (
        f"calls {r['calls']:5d}  {r['seconds']:7.1f} s  RSS {r['rss_kib'] / 1024:7.1f} MiB  live caches "
        f"{r['live_caches']}  gc objects {r['gc_objects']}  compiled forwards {r['compiled_forwards']}  block "
        f"masks {r['block_masks']}  warnings_once {r['warnings_once']}"
    )


def summarise(result: dict, compile_mode: bool) -> dict:
    """RSS slope per 100 calls and total growth after the warm-up; whether every check holds."""
    records = result["records"]
    base_index = next(i for i, r in enumerate(records) if r["baseline"])
    after = records[base_index:]
    base, last = after[0], after[-1]
    xs, ys = [r["calls"] for r in after], [r["rss_kib"] for r in after]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0  # KiB per call
    total = (last["rss_kib"] - base["rss_kib"]) / base["rss_kib"]
    block_mask_limit = masks_llada._canonical_block_mask.cache_info().maxsize
    checks = {
        "RSS growth < 1 %": total < 0.01,
        "no cache or context outlives its call": all(r["live_caches"] == 0 for r in records),
        "_COMPILED_FORWARDS and warning_once flat after the warm-up": all(
            base[name] == last[name] for name in ("compiled_forwards", "warnings_once")
        ),
        f"block-mask cache within its maxsize ({block_mask_limit})": all(
            r["block_masks"] <= block_mask_limit for r in records
        ),
    }
    if compile_mode:
        checks["the eager fallback reported once"] = result["limit_warnings"] == 1
    return dict(
        base=base,
        last=last,
        slope_kib_per_100=100 * slope,
        total=total,
        checks=checks,
        gc_growth=last["gc_objects"] - base["gc_objects"],
    )


def markdown(args, result: dict, summary: dict) -> str:
    base, last = summary["base"], summary["last"]
    mode = heading(args)[3:]
    command = (
        f"OMP_NUM_THREADS={args.threads} python benchmarks/soak_generate.py --calls {args.calls} --threads "
        f"{args.threads} --seed {args.seed}"
        + (f" --compile --backend {args.backend}" if args.compile else "")
        + (f" --recompile_limit {args.recompile_limit}" if args.recompile_limit is not None else "")
    )
    lines = [
        f"## {mode}",
        "",
        f"`{command}` — torch {torch.__version__}, {args.threads} thread(s); {args.calls} calls in "
        f"{last['seconds']:.0f} s ({1000 * last['seconds'] / args.calls:.0f} ms per call), warm-up {args.warmup} "
        "calls.",
        "",
        f"- RSS after the warm-up {base['rss_kib'] / 1024:.1f} MiB, at the end {last['rss_kib'] / 1024:.1f} MiB: "
        f"**{100 * summary['total']:+.2f} %** in {last['calls'] - base['calls']} calls; least-squares slope "
        f"**{summary['slope_kib_per_100']:+.1f} KiB per 100 calls**.",
        f"- Objects tracked by the garbage collector: {base['gc_objects']} after the warm-up, {last['gc_objects']} at "
        f"the end ({summary['gc_growth']:+d}). Live `CanvasKVCache` / `BlockKVCache` / `DenoisingContext` objects "
        f"between calls: {max(r['live_caches'] for r in result['records'])} at most.",
        f"- Module-level caches, after the warm-up -> at the end: `_COMPILED_FORWARDS` {base['compiled_forwards']} -> "
        f"{last['compiled_forwards']}, block-mask `lru_cache` {base['block_masks']} -> {last['block_masks']}, "
        f"`warning_once` {base['warnings_once']} -> {last['warnings_once']}.",
    ]
    if args.compile:
        lines.append(
            f"- dynamo: {result['unique_graphs']} graphs compiled (recompile limit "
            f"{result['recompile_limit']}); dynamo's own recompile-limit warning logged "
            f"{result['dynamo_limit_warnings']} time(s); ours (`{LIMIT_MESSAGE}`, new shapes run eagerly) "
            f"**{result['limit_warnings']} time(s)**."
        )
    lines.append("- Calls per mode: " + ", ".join(f"{name} {n}" for name, n in sorted(result["counts"].items())) + ".")
    lines += [
        "",
        "| calls | s | RSS (MiB) | live caches | gc objects | compiled forwards | block masks | warning_once |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["records"]:
        mark = " (baseline)" if r["baseline"] else ""
        lines.append(
            f"| {r['calls']}{mark} | {r['seconds']:.0f} | {r['rss_kib'] / 1024:.1f} | {r['live_caches']} | "
            f"{r['gc_objects']} | {r['compiled_forwards']} | {r['block_masks']} | {r['warnings_once']} |"
        )
    lines += [
        "",
        "Checks: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in summary["checks"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


HEADER = """# Soak: thousands of `diffusion_generate` calls in one process

Made by `benchmarks/soak_generate.py` (its docstring says what varies and what is recorded). Small random models
(the `tiny` preset: hidden 64, 2 layers, vocabulary 259; a full-attention one and a block diffusion one), so the
figures are about the code's own memory and caches, not about a model's speed.

"""


def write_section(path: Path, section: str, mode_heading: str) -> None:
    """Replaces this mode's section of `path` (or appends it), keeping the other mode's."""
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    sections = re.split(r"(?m)^(?=## )", text)
    kept = [s for s in sections if not s.startswith(mode_heading + "\n")]
    head, rest = kept[0], kept[1:]
    rest.append(section)
    rest.sort(key=lambda s: s.startswith("## compile"))  # eager first
    path.write_text(head + "".join(part.rstrip("\n") + "\n\n" for part in rest).rstrip("\n") + "\n", encoding="utf-8")


def heading(args) -> str:
    return f"## compile=True, backend {args.backend}" if args.compile else "## eager"


def main(argv=None) -> int:
    args = parse_args(argv)
    common.setup(args)
    result = soak(
        args.calls, args.compile, args.seed, args.report_every, args.warmup, args.backend, args.recompile_limit
    )
    summary = summarise(result, args.compile)
    section = markdown(args, result, summary)
    print("\n" + section)
    if args.output:
        write_section(Path(args.output), section, heading(args))
        print(f"Written to {args.output}")
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
