"""What the input checks of the model's `forward` cost: forward time with them against without them.

The model has the main job's size (hidden 128, 4 layers, 4 heads, intermediate 384) with a 4,096-token vocabulary and
random weights; the input is a batch of 8 sequences of 256 tokens, in eval mode under `torch.no_grad()`. Two inputs:
the ids alone (what a sampler's step passes), and ids with a padded 2-D attention mask and labels (every check runs:
the id range, the 0/1 mask, the real-token count, the label range). "Without" replaces the check functions that
`modeling_llada` calls by no-ops. The contenders alternate in every round (ABBA order), each timing `--forwards`
calls; the table gives the median time per forward of each over the rounds, the spread (interquartile range), the
ratio with / without and the median of the paired ratios of each round (neighbours in time, so a load that comes
and goes on a shared machine cancels more), plus the time of the checks alone, which is the cost itself.

    OMP_NUM_THREADS=1 python benchmarks/bench_forward_checks.py              # 100 rounds, 1 thread
    OMP_NUM_THREADS=1 python benchmarks/bench_forward_checks.py --rounds 6   # a smoke run
"""

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from llada import LLaDAConfig, LLaDAForMaskedDiffusion, modeling_llada

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="Alternating rounds (default 100).")
    parser.add_argument("--forwards", type=int, default=1,
                        help="Forward calls timed per contender and round (default 1: the finest alternation).")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1).")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "forward_checks.md"),
                        help="Markdown file for the results ('' for none).")
    return parser.parse_args(argv)


def build_model(seq: int):
    torch.manual_seed(0)
    config = LLaDAConfig(vocab_size=4096, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=seq,
                         mask_token_id=4095, pad_token_id=0, bos_token_id=None, eos_token_id=1)
    return LLaDAForMaskedDiffusion(config).eval()


def inputs(batch: int, seq: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 4095, (batch, seq), generator=generator)
    padding = torch.randint(0, seq // 4, (batch,), generator=generator)  # left padding of each row
    mask = (torch.arange(seq)[None] >= padding[:, None]).long()  # (batch, seq)
    ids = ids.masked_fill(mask == 0, 0)
    labels = torch.where(torch.rand(batch, seq, generator=generator) < 0.5, ids, -100).masked_fill(mask == 0, -100)
    return {"ids only": dict(input_ids=ids),
            "ids, padded mask, labels": dict(input_ids=ids, attention_mask=mask, labels=labels)}


@contextmanager
def without_checks():
    """`modeling_llada` calls its check functions by these names: no-ops while the block runs."""
    saved = modeling_llada.check_model_inputs, modeling_llada.check_labels
    modeling_llada.check_model_inputs = modeling_llada.check_labels = lambda *args, **kwargs: None
    try:
        yield
    finally:
        modeling_llada.check_model_inputs, modeling_llada.check_labels = saved


def time_forwards(model, batch_inputs: dict, forwards: int) -> float:
    """Seconds per forward, over `forwards` calls."""
    start = time.perf_counter()
    for _ in range(forwards):
        model(**batch_inputs)
    return (time.perf_counter() - start) / forwards


def time_checks_alone(model, batch_inputs: dict, calls: int = 2000) -> float:
    """Seconds per call of the checks themselves (those of the base model, and of the labels when given)."""
    config = model.config
    ids, mask, labels = (batch_inputs.get(name) for name in ("input_ids", "attention_mask", "labels"))
    start = time.perf_counter()
    for _ in range(calls):
        if labels is not None:
            modeling_llada.check_labels(config, labels, ids, None)
        modeling_llada.check_model_inputs(config, ids, None, mask, None)
    return (time.perf_counter() - start) / calls


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def run(args) -> list:
    model = build_model(args.seq)
    rows = []
    with torch.no_grad():
        for name, batch_inputs in inputs(args.batch, args.seq).items():
            time_forwards(model, batch_inputs, 2)  # warm-up
            times = {"with": [], "without": []}
            for round_index in range(args.rounds):
                order = ("with", "without") if round_index % 2 == 0 else ("without", "with")
                for contender in order:
                    if contender == "with":
                        times["with"].append(time_forwards(model, batch_inputs, args.forwards))
                    else:
                        with without_checks():
                            times["without"].append(time_forwards(model, batch_inputs, args.forwards))
            paired = [a / b for a, b in zip(times["with"], times["without"])]
            rows.append(dict(name=name, with_=times["with"], without=times["without"], paired=paired,
                             checks=time_checks_alone(model, batch_inputs)))
            print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict) -> str:
    w, wo = statistics.median(row["with_"]), statistics.median(row["without"])
    return (f"{row['name']}: with {1000 * w:.2f} ms, without {1000 * wo:.2f} ms, ratio {w / wo:.4f}, paired median "
            f"{statistics.median(row['paired']):.4f}, checks alone {1e6 * row['checks']:.1f} us")


def markdown(args, rows: list) -> str:
    command = (f"OMP_NUM_THREADS={args.threads} python benchmarks/bench_forward_checks.py --rounds {args.rounds} "
               f"--forwards {args.forwards} --threads {args.threads}")
    lines = [
        "# Forward time with the input checks against without them", "",
        f"`{command}` — torch {torch.__version__}, {args.threads} thread(s). The main job's model size (hidden 128, "
        f"4 layers, 4 heads, intermediate 384), vocabulary 4096, random weights, batch {args.batch} x {args.seq} "
        f"tokens, eval mode, no grad. {args.rounds} rounds alternating the contenders (ABBA), {args.forwards} "
        "forwards per contender and round; medians over the rounds, spread = interquartile range.", "",
        "| input | with checks (ms) | spread | without (ms) | spread | ratio of medians | median paired ratio "
        "[IQR] | the checks alone (us) | share of a forward |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        w, wo = statistics.median(row["with_"]), statistics.median(row["without"])
        (w1, w3), (o1, o3), (p1, p3) = quartiles(row["with_"]), quartiles(row["without"]), quartiles(row["paired"])
        lines.append(f"| {row['name']} | {1000 * w:.2f} | {1000 * w1:.2f}-{1000 * w3:.2f} | {1000 * wo:.2f} | "
                     f"{1000 * o1:.2f}-{1000 * o3:.2f} | {w / wo:.4f} | {statistics.median(row['paired']):.4f} "
                     f"[{p1:.4f}, {p3:.4f}] | {1e6 * row['checks']:.1f} | {100 * row['checks'] / wo:.3f} % |")
    lines += ["", "The checks alone: the same calls `forward` makes, timed on their own (2,000 calls); CPU tensors, "
              "so the value checks (id and label ranges, 0/1 mask, real tokens per row) run.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args)
    text = markdown(args, rows)
    print("\n" + text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
