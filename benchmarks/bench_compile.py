"""`diffusion_generate(compile=True)` against the eager sampler: tokens/s, batch 1 and 8, without and with the dual cache.

The compiled run uses the default settings (inductor, `fullgraph=True`, `dynamic=False`: one graph per kind of pass
and canvas shape). Its first call compiles; that time is reported apart. Then eager and compiled calls alternate
`--repeats` times on the same prompts (greedy, LLaDA's schedule: one token per step), and the table gives the median
tokens/s of each, their ratio and whether the tokens are identical. The first call compiles with an empty inductor
cache (a fresh `TORCHINDUCTOR_CACHE_DIR` unless one is set).

    python benchmarks/bench_compile.py                       # runs/llada-tinyshakespeare (the main job's
                                                             # full-attention model, `llada-train`), or
                                                             # a random model of that size when it is not there
    python benchmarks/bench_compile.py --quick               # batch 1 only, 2 repeats

One intra-op thread by default (`--threads 0` keeps torch's default); the machine's other load shows in the absolute
times, less in the ratios.
"""

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# A fresh inductor cache, so that "first call" is a cold compilation, not a read of an earlier run's kernels.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_compile_inductor_")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], True)

import torch  # noqa: E402

from llada import LLaDAConfig, LLaDAForMaskedDiffusion  # noqa: E402
from llada.prepare_llada import left_pad  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "llada" / "data" / "tinyshakespeare.txt"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "llada-tinyshakespeare"),
                        help="A saved full-attention LLaDA folder (`compile=True` is refused for block diffusion "
                             "models); a random model of the main job's size when it does not exist.")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 keeps torch's default.")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "compile.md"))
    parser.add_argument("--quick", action="store_true", help="Batch 1 only, 2 repeats (a smoke run).")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeats = [1], 2
    return args


def load_model(path: str):
    if Path(path).is_dir():
        shown = Path(path).resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        model = LLaDAForMaskedDiffusion.from_pretrained(path).eval()
        if getattr(model.config, "block_size", None) is not None:
            raise SystemExit(f"--model {path}: a block diffusion model (block_size {model.config.block_size}); "
                             "`compile=True` needs a full-attention model (the main job's, llada-train)")
        return model, str(shown)
    torch.manual_seed(0)  # the main job's dimensions (llada/configs/tinyshakespeare.yaml), random weights
    config = LLaDAConfig(vocab_size=259, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         mask_token_id=258, pad_token_id=257, bos_token_id=None, eos_token_id=256)
    return LLaDAForMaskedDiffusion(config).eval(), "random weights, the main job's size"


def prompts(batch: int, length: int):
    """Byte prompts from the bundled corpus (the byte tokenizer's ids are the bytes)."""
    data = CORPUS.read_bytes()
    return [list(data[10_000 * (i + 1): 10_000 * (i + 1) + length]) for i in range(batch)]


def timed(model, input_ids, attention_mask, settings):
    start = time.perf_counter()
    out = model.diffusion_generate(input_ids, attention_mask=attention_mask, **settings)
    return time.perf_counter() - start, out


def measure(model, batch, cache, args):
    input_ids, attention_mask = left_pad(prompts(batch, args.prompt_length), model.config.pad_token_id)
    # greedy and low-confidence remasking: no random draw (a saved model may default to random remasking), so the
    # two runs must give the same tokens
    settings = dict(max_new_tokens=args.max_new_tokens, steps=args.max_new_tokens, block_length=args.block_length,
                    temperature=0.0, remasking="low_confidence", eos_token_id=None, use_cache=cache)
    timed(model, input_ids, attention_mask, settings)  # warm-up of the eager path
    compile_seconds, _ = timed(model, input_ids, attention_mask, {**settings, "compile": True})
    eager_times, compiled_times, identical = [], [], True
    for _ in range(args.repeats):  # alternating, so that the machine's load falls on both alike
        seconds, eager = timed(model, input_ids, attention_mask, settings)
        eager_times.append(seconds)
        seconds, compiled = timed(model, input_ids, attention_mask, {**settings, "compile": True})
        compiled_times.append(seconds)
        identical &= torch.equal(eager, compiled)
    tokens = batch * args.max_new_tokens
    eager_rate, compiled_rate = tokens / statistics.median(eager_times), tokens / statistics.median(compiled_times)
    return dict(batch=batch, cache="dual" if cache else "none", eager=eager_rate, compiled=compiled_rate,
                speedup=compiled_rate / eager_rate, compile_seconds=compile_seconds, identical=identical)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, description = load_model(args.model)
    parameters = sum(p.numel() for p in model.parameters())
    header = (f"LLaDA {parameters / 1e6:.2f}M parameters ({description}), greedy low-confidence, {args.max_new_tokens} "
              f"new tokens "
              f"after {args.prompt_length}-token prompts, block {args.block_length}, one token per step, "
              f"median of {args.repeats} alternating runs, torch {torch.__version__}, cpu, "
              f"{torch.get_num_threads()} thread(s); compiled: inductor, fullgraph, static shapes")
    print(header, flush=True)
    rows = []
    for batch in args.batch_sizes:
        for cache in (False, "dual"):
            rows.append(measure(model, batch, cache, args))
            row = rows[-1]
            print(f"batch {batch} cache {row['cache']}: eager {row['eager']:.0f} tok/s, compiled "
                  f"{row['compiled']:.0f} tok/s, {row['speedup']:.2f}x (first call {row['compile_seconds']:.1f} s), "
                  f"identical tokens: {row['identical']}", flush=True)
    lines = [header, "", "| batch | cache | eager tokens/s | compiled tokens/s | speed-up | first compiled call (s) "
             "| identical tokens |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['cache']} | {r['eager']:.0f} | {r['compiled']:.0f} | {r['speedup']:.2f}x | "
              f"{r['compile_seconds']:.1f} | {'yes' if r['identical'] else 'no'} |" for r in rows]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
