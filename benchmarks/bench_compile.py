"""`diffusion_generate(compile=True)` against the eager sampler: tokens/s, batch 1 and 8, without and with the dual
cache.

The compiled run uses the default settings (inductor, `fullgraph=True`, `dynamic=False`: one graph per kind of pass
and canvas shape). Its first call compiles; that time is reported apart. Then eager and compiled calls alternate
`--repeats` times on the same prompts (greedy, LLaDA's schedule: one token per step), and the table gives the median
tokens/s of each (benchmarks/common.py), their ratio and whether the tokens are identical. The first call compiles
with an empty inductor cache (a fresh `TORCHINDUCTOR_CACHE_DIR` unless one is set).

    python benchmarks/bench_compile.py                       # runs/llada-tinyshakespeare (the main job's
                                                             # full-attention model, `llada-train`), or
                                                             # a random model of that size when it is not there
    python benchmarks/bench_compile.py --quick               # batch 1 only, 2 repeats
    python benchmarks/bench_compile.py --quick --preset tiny --max_new_tokens 32 --output ''   # a smoke run

One intra-op thread by default (`--threads 0` keeps torch's default); the machine's other load shows in the absolute
times, less in the ratios.
"""

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# A fresh inductor cache, so that "first call" is a cold compilation, not a read of an earlier run's kernels.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_compile_inductor_")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], True)

import torch  # noqa: E402

import common
from llada import LLaDAForMaskedDiffusion  # noqa: E402
from llada.prepare_llada import left_pad  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=str(common.TRAINED_MODEL),
        help="A saved full-attention LLaDA folder (`compile=True` is refused for block diffusion "
        "models); a random model of --preset when it does not exist.",
    )
    parser.add_argument(
        "--preset",
        default="main",
        choices=list(common.PRESETS),
        help="The random model's size (default main, the main job's).",
    )
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    common.add_common_args(parser, output=common.RESULTS / "compile.md")
    parser.add_argument("--quick", action="store_true", help="Batch 1 only, 2 repeats (a smoke run).")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeats = [1], 2
    return args


def load_model(path: str, preset: str = "main", seed: int = 0):
    if Path(path).is_dir():
        shown = common.relative(path)
        model = LLaDAForMaskedDiffusion.from_pretrained(path).eval()
        if getattr(model.config, "block_size", None) is not None:
            raise SystemExit(
                f"--model {path}: a block diffusion model (block_size {model.config.block_size}); "
                "`compile=True` needs a full-attention model (the main job's, llada-train)"
            )
        return model, shown
    return common.random_model(preset, seed=seed), f"random weights, preset {preset}"


def prompts(batch: int, length: int):
    """Byte prompts from the bundled corpus (the byte tokenizer's ids are the bytes)."""
    data = common.CORPUS.read_bytes()
    return [list(data[10_000 * (i + 1) : 10_000 * (i + 1) + length]) for i in range(batch)]


def measure(model, batch, cache, args):
    input_ids, attention_mask = left_pad(prompts(batch, args.prompt_length), model.config.pad_token_id)
    # greedy and low-confidence remasking: no random draw (a saved model may default to random remasking), so the
    # two runs must give the same tokens
    settings = dict(
        max_new_tokens=args.max_new_tokens,
        steps=args.max_new_tokens,
        block_length=args.block_length,
        temperature=0.0,
        remasking="low_confidence",
        eos_token_id=None,
        use_cache=cache,
    )
    runs = {
        "eager": lambda: model.diffusion_generate(input_ids, attention_mask=attention_mask, **settings),
        "compiled": lambda: model.diffusion_generate(
            input_ids, attention_mask=attention_mask, **settings, compile=True
        ),
    }
    runs["eager"]()  # warm-up of the eager path
    compile_seconds = common.time_alternated({"compiled": runs["compiled"]}, 1)["compiled"].median  # the first call
    outputs = []
    # alternating, so that the machine's load falls on both alike; every call's tokens compared
    times = common.time_alternated(
        {name: lambda run=run: outputs.append(run()) for name, run in runs.items()}, args.repeats
    )
    identical = all(torch.equal(outputs[0], out) for out in outputs)
    tokens = batch * args.max_new_tokens
    eager_rate, compiled_rate = tokens / times["eager"].median, tokens / times["compiled"].median
    return dict(
        batch=batch,
        cache="dual" if cache else "none",
        eager=eager_rate,
        compiled=compiled_rate,
        speedup=compiled_rate / eager_rate,
        compile_seconds=compile_seconds,
        identical=identical,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    harness = common.setup(args)
    model, description = load_model(args.model, args.preset, args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    header = (
        f"LLaDA {parameters / 1e6:.2f}M parameters ({description}), greedy low-confidence, "
        f"{args.max_new_tokens} new tokens after {args.prompt_length}-token prompts, block {args.block_length}, "
        f"one token per step, median of {args.repeats} alternating runs, {harness}, cpu; compiled: inductor, "
        "fullgraph, static shapes"
    )
    print(header, flush=True)
    rows = []
    for batch in args.batch_sizes:
        for cache in (False, "dual"):
            rows.append(measure(model, batch, cache, args))
            print(common.markdown_table(rows[-1:], COLUMNS, FORMATS)[-1], flush=True)
    written = common.write_report(args.output, rows, intro=header, columns=COLUMNS, formats=FORMATS, meta=vars(args))
    if written:
        print(f"Wrote {written}")
    return 0


COLUMNS = {
    "batch": "batch",
    "cache": "cache",
    "eager": "eager tokens/s",
    "compiled": "compiled tokens/s",
    "speedup": "speed-up",
    "compile_seconds": "first compiled call (s)",
    "identical": "identical tokens",
}
FORMATS = {
    "eager": ".0f",
    "compiled": ".0f",
    "speedup": lambda x: f"{x:.2f}x",
    "compile_seconds": ".1f",
    "identical": lambda same: "yes" if same else "no",
}


if __name__ == "__main__":
    sys.exit(main())
