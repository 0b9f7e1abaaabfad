"""The scorers of `llada.evaluation` with the output head at the scored positions only vs at every position.

`masked_token_nll` (behind `elbo_nll` / `perplexity_bound` and `in_order_nll` / `in_order_perplexity`) passes the
positions it scores as `logits_to_keep` when the model's `forward` takes it; a model that does not is scored from
the logits of every position. This runs both ways on the same sequences, alternating (benchmarks/common.py: the
median of `--repeats` rounds), and prints the time of each, the ratio and the figures (which must be equal):

    python benchmarks/bench_scoring.py --model runs/llada-tinyshakespeare      # a trained model
    python benchmarks/bench_scoring.py                                          # a random model of the main job's size
    python benchmarks/bench_scoring.py --sequences 2 --length 32 --num_t_samples 2 --repeats 1 --output ''   # smoke

One intra-op thread by default. Writes `benchmarks/results/scoring.md`.
"""

import argparse
import math
import sys

import torch

import common
import llada.evaluation as evaluation
from llada import LLaDAForMaskedDiffusion

KEEPS_LOGITS = evaluation._keeps_logits  # the package's check; swapped for `lambda _: False` to score every position


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A LLaDA model folder (default: a random model of the main job's size).")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--num_t_samples", type=int, default=16, help="t draws per sequence for the bound")
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each way; the median counts")
    common.add_common_args(parser, output=common.RESULTS / "scoring.md")
    return parser.parse_args(argv)


def load_model(folder, seed: int = 0):
    if folder:
        return LLaDAForMaskedDiffusion.from_pretrained(folder).eval()
    return common.random_model("main", seed=seed)


@torch.no_grad()
def score(model, ids, num_t_samples, kept: bool):
    """(in-order perplexity, perplexity bound) with the head at the scored positions (`kept`) or at all."""
    evaluation._keeps_logits = KEEPS_LOGITS if kept else (lambda _: False)
    in_order = evaluation.in_order_perplexity(model, ids, batch_size=len(ids), show_progress=False)["perplexity"]
    bound = evaluation.perplexity_bound(
        model, ids, batch_size=len(ids), num_samples=num_t_samples, seed=0, show_progress=False
    )["perplexity_bound"]
    return in_order, bound


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    model = load_model(args.model, args.seed)
    ids = torch.randint(
        0, model.config.vocab_size - 3, (args.sequences, args.length), generator=torch.Generator().manual_seed(0)
    )
    if args.model:  # held-out text rather than random ids
        from transformers import AutoTokenizer

        text = common.CORPUS.read_text()
        tokens = AutoTokenizer.from_pretrained(args.model)(text[int(len(text) * 0.95) :], verbose=False)["input_ids"]
        ids = torch.tensor(tokens[: args.sequences * args.length]).view(args.sequences, args.length)
    ways = {"every position": False, "scored positions only": True}
    try:
        times = common.time_alternated(
            {way: lambda kept=kept: score(model, ids, args.num_t_samples, kept) for way, kept in ways.items()},
            args.repeats,
        )
    finally:
        evaluation._keeps_logits = KEEPS_LOGITS
    rows = [
        dict(
            way=way,
            seconds=timing.median,
            low=timing.low,
            high=timing.high,
            in_order=timing.result[0],
            bound=timing.result[1],
        )
        for way, timing in times.items()
    ]
    every, kept = times["every position"], times["scored positions only"]
    equal = all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(every.result, kept.result))
    intro = (
        f"Model: {args.model or 'random, preset main'}; {args.sequences} sequences of {args.length} tokens; "
        f"in-order perplexity + perplexity bound ({args.num_t_samples} t each); {harness}; median of "
        f"{args.repeats} alternated runs."
    )
    columns = {
        "way": "output head at",
        "seconds": "seconds",
        "in_order": "in-order perplexity",
        "bound": "perplexity bound",
    }
    formats = {"seconds": ".2f"}
    notes = [f"Speed-up: {every.median / kept.median:.2f}x; figures equal (to 1e-6): {equal}"]
    print("\n".join([intro, "", *common.markdown_table(rows, columns, formats), "", *notes]))
    common.write_report(args.output, rows, intro=intro, columns=columns, formats=formats, notes=notes, meta=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
