"""The scorers of `llada.evaluation` with the output head at the scored positions only vs at every position.

`masked_token_nll` (behind `elbo_nll` / `perplexity_bound` and `in_order_nll` / `in_order_perplexity`) passes the
positions it scores as `logits_to_keep` when the model's `forward` takes it; a model that does not is scored from
the logits of every position. This runs both ways on the same sequences, alternating, and prints the time of each,
the ratio and the figures (which must be equal):

    python benchmarks/bench_scoring.py --model runs/llada-tinyshakespeare      # a trained model
    python benchmarks/bench_scoring.py                                          # a random model of the main job's size

One intra-op thread by default. Writes `benchmarks/results/scoring.md`.
"""

import argparse
import math
import time
from pathlib import Path

import torch

import llada.evaluation as evaluation
from llada import LLaDAConfig, LLaDAForMaskedDiffusion

ROOT = Path(__file__).resolve().parents[1]
KEEPS_LOGITS = evaluation._keeps_logits  # the package's check; swapped for `lambda _: False` to score every position


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A LLaDA model folder (default: a random model of the main job's size).")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--num_t_samples", type=int, default=16, help="t draws per sequence for the bound")
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each way; the fastest counts")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "scoring.md"))
    return parser.parse_args(argv)


def load_model(folder):
    if folder:
        return LLaDAForMaskedDiffusion.from_pretrained(folder).eval()
    torch.manual_seed(0)
    config = LLaDAConfig(vocab_size=4096, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, max_position_embeddings=128, mask_token_id=4095, pad_token_id=4094,
                         eos_token_id=4093, bos_token_id=None)
    return LLaDAForMaskedDiffusion(config).eval()


@torch.no_grad()
def score(model, ids, num_t_samples, kept: bool):
    """(seconds, in-order perplexity, perplexity bound) with the head at the scored positions (`kept`) or at all."""
    evaluation._keeps_logits = KEEPS_LOGITS if kept else (lambda _: False)
    start = time.perf_counter()
    in_order = evaluation.in_order_perplexity(model, ids, batch_size=len(ids), show_progress=False)["perplexity"]
    bound = evaluation.perplexity_bound(model, ids, batch_size=len(ids), num_samples=num_t_samples, seed=0,
                                        show_progress=False)["perplexity_bound"]
    return time.perf_counter() - start, in_order, bound


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    ids = torch.randint(0, model.config.mask_token_id, (args.sequences, args.length),
                        generator=torch.Generator().manual_seed(0))
    if args.model:  # held-out text rather than random ids
        from transformers import AutoTokenizer

        text = (ROOT / "llada" / "data" / "tinyshakespeare.txt").read_text()
        tokens = AutoTokenizer.from_pretrained(args.model)(text[int(len(text) * 0.95):], verbose=False)["input_ids"]
        ids = torch.tensor(tokens[:args.sequences * args.length]).view(args.sequences, args.length)
    best = {}
    try:
        for _ in range(args.repeats):
            for kept in (False, True):
                seconds, *figures = score(model, ids, args.num_t_samples, kept)
                if kept not in best or seconds < best[kept][0]:
                    best[kept] = (seconds, *figures)
    finally:
        evaluation._keeps_logits = KEEPS_LOGITS
    rows = [f"| {'scored positions only' if kept else 'every position'} | {s:.2f} | {ppl:.3f} | {bound:.3f} |"
            for kept, (s, ppl, bound) in sorted(best.items())]
    report = "\n".join([
        f"Model: {args.model or 'random, main job size'}; {args.sequences} sequences of {args.length} tokens; "
        f"in-order perplexity + perplexity bound ({args.num_t_samples} t each); {args.threads} thread(s); "
        f"fastest of {args.repeats} alternated runs.", "",
        "| output head at | seconds | in-order perplexity | perplexity bound |", "|---|---|---|---|", *rows, "",
        f"Speed-up: {best[False][0] / best[True][0]:.2f}x; figures equal (to 1e-6): "
        f"{all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(best[False][1:], best[True][1:]))}", ""])
    Path(args.output).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
