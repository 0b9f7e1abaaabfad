"""What the input checks of the model's `forward` cost: forward time with them against without them.

The model is the `main` preset's (benchmarks/common.py: hidden 128, 4 layers, 4 heads, intermediate 384, a 4,096-token
vocabulary) with random weights; the input is a batch of 8 sequences of 256 tokens, in eval mode under
`torch.no_grad()`. Two inputs:
the ids alone (what a sampler's step passes), and ids with a padded 2-D attention mask and labels (every check runs:
the id range, the 0/1 mask, the real-token count, the label range). "Without" replaces the check functions that
`modeling_llada` calls by no-ops. The contenders alternate in every round (ABBA order, benchmarks/common.py), each
timing `--forwards` calls; the table gives the median time per forward of each over the rounds with the fastest and
slowest, the ratio with / without and the median of the paired ratios of each round (neighbours in time, so a load
that comes and goes on a shared machine cancels more), plus the time of the checks alone, which is the cost itself.

    OMP_NUM_THREADS=1 python benchmarks/bench_forward_checks.py              # 100 rounds, 1 thread
    OMP_NUM_THREADS=1 python benchmarks/bench_forward_checks.py --rounds 6   # a smoke run
"""

import argparse
import sys
import time
from contextlib import contextmanager

import torch

import common
from llada import modeling_llada


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="Alternating rounds (default 100).")
    parser.add_argument(
        "--forwards",
        type=int,
        default=1,
        help="Forward calls timed per contender and round (default 1: the finest alternation).",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    common.add_common_args(parser, output=common.RESULTS / "forward_checks.md")
    return parser.parse_args(argv)


def build_model(seq: int, seed: int = 0):
    return common.random_model("main", max_position_embeddings=seq, seed=seed)


def inputs(batch: int, seq: int, config) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size - 3, (batch, seq), generator=generator)
    padding = torch.randint(0, seq // 4, (batch,), generator=generator)  # left padding of each row
    mask = (torch.arange(seq)[None] >= padding[:, None]).long()  # (batch, seq)
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    labels = torch.where(torch.rand(batch, seq, generator=generator) < 0.5, ids, -100).masked_fill(mask == 0, -100)
    return {
        "ids only": dict(input_ids=ids),
        "ids, padded mask, labels": dict(input_ids=ids, attention_mask=mask, labels=labels),
    }


@contextmanager
def without_checks():
    """`modeling_llada` calls its check functions by these names: no-ops while the block runs."""
    saved = modeling_llada.check_model_inputs, modeling_llada.check_labels
    modeling_llada.check_model_inputs = modeling_llada.check_labels = lambda *args, **kwargs: None
    try:
        yield
    finally:
        modeling_llada.check_model_inputs, modeling_llada.check_labels = saved


def forwards_of(model, batch_inputs: dict, forwards: int, checks: bool):
    """A function making `forwards` calls of the model, with the input checks or without them."""

    def run():
        if checks:
            for _ in range(forwards):
                model(**batch_inputs)
        else:
            with without_checks():
                for _ in range(forwards):
                    model(**batch_inputs)

    return run


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


def run(args) -> list:
    model = build_model(args.seq, args.seed)
    rows = []
    with torch.no_grad():
        for name, batch_inputs in inputs(args.batch, args.seq, model.config).items():
            forwards_of(model, batch_inputs, 2, checks=True)()  # warm-up
            times = common.time_alternated(
                {
                    "with_checks": forwards_of(model, batch_inputs, args.forwards, checks=True),
                    "without": forwards_of(model, batch_inputs, args.forwards, checks=False),
                },
                args.rounds,
            )
            checks = time_checks_alone(model, batch_inputs)
            rows.append(
                dict(
                    input=name,
                    **common.versus(times, "with_checks", "without"),
                    checks_us=1e6 * checks,
                    share=100 * checks / (times["without"].median / args.forwards),
                )
            )
            print(format_row(rows[-1], args.forwards), flush=True)
    return rows


def per_forward(timing, forwards: int) -> str:
    """A Timing of `forwards` calls, as ms per forward: median [fastest-slowest]."""
    return (
        f"{1e3 * timing.median / forwards:.2f} [{1e3 * timing.low / forwards:.2f}-{1e3 * timing.high / forwards:.2f}]"
    )


def format_row(row: dict, forwards: int) -> str:
    return (
        f"{row['input']}: with {per_forward(row['with_checks'], forwards)} ms, without "
        f"{per_forward(row['without'], forwards)} ms, ratio {row['ratio']:.4f}, paired median "
        f"{row['paired']:.4f}, checks alone {row['checks_us']:.1f} us"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    harness = common.setup(args)
    rows = run(args)
    command = (
        f"OMP_NUM_THREADS={args.threads} python benchmarks/bench_forward_checks.py --rounds {args.rounds} "
        f"--forwards {args.forwards} --threads {args.threads}"
    )
    intro = [
        f"`{command}` — {harness}. The main job's model size (preset main: hidden 128, 4 layers, 4 heads, "
        f"intermediate 384, vocabulary 4096), random weights, batch {args.batch} x {args.seq} tokens, eval mode, "
        f"no grad. {args.rounds} rounds alternating the contenders (ABBA), {args.forwards} forwards per "
        "contender and round; ms per forward, median over the rounds [fastest-slowest]."
    ]
    columns = {
        "input": "input",
        "with_checks": "with checks (ms)",
        "without": "without (ms)",
        "ratio": "ratio of medians",
        "paired": "median paired ratio",
        "checks_us": "the checks alone (us)",
        "share": "share of a forward",
    }
    ms = lambda timing: per_forward(timing, args.forwards)  # noqa: E731
    formats = {
        "with_checks": ms,
        "without": ms,
        "ratio": ".4f",
        "paired": ".4f",
        "checks_us": ".1f",
        "share": lambda x: f"{x:.3f} %",
    }
    notes = [
        "The checks alone: the same calls `forward` makes, timed on their own (2,000 calls); CPU tensors, so the "
        "value checks (id and label ranges, 0/1 mask, real tokens per row) run."
    ]
    written = common.write_report(
        args.output,
        rows,
        title="Forward time with the input checks against without them",
        intro=intro,
        columns=columns,
        formats=formats,
        notes=notes,
        meta=vars(args),
    )
    if written:
        print(f"Written to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
