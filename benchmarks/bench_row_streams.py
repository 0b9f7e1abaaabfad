"""Sampling with one random stream per row (`seed=`: a row's sample does not depend on its batch) vs one stream for
the whole batch (`generator=`).

Batch `--batch_size` with mixed prompt lengths (left-padded), `--length` new tokens at `--temperature`, without a
cache and with the dual cache + threshold 0.9; the two contenders alternate (benchmarks/common.py: the median of
`--repeats` rounds and the median of the paired ratios of a round). It also checks the invariance itself: each row
generated alone must equal its row of the batch with per-row streams (with one stream it need not), and times the
random draws of one step alone.

    python benchmarks/bench_row_streams.py                   # runs/llada-tinyshakespeare, else a random `main` model
    python benchmarks/bench_row_streams.py --random_models --batch_size 3 --length 8 --block_length 4 --repeats 1
"""

import argparse
import sys

import torch

import common
from llada import LLaDAForMaskedDiffusion
from llada.prepare_llada import left_pad
from llada.rows_llada import RandomDraws

CONTENDERS = ("per_row", "shared")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help=f"LLaDA model folder; default: {common.relative(common.TRAINED_MODEL)} if it is there, "
        "else a random model of the `main` preset (the speed does not depend on the "
        "weights).",
    )
    parser.add_argument("--random_models", action="store_true", help="A random model of the `main` preset.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5)
    common.add_common_args(parser, output=common.RESULTS / "row_streams.md")
    return parser.parse_args(argv)


def load_model(args):
    folder = None if args.random_models else common.find_model(args.model, [common.TRAINED_MODEL])
    if folder is not None:
        return LLaDAForMaskedDiffusion.from_pretrained(folder).eval(), common.relative(folder)
    model = common.random_model("main", max_position_embeddings=args.length + 64, seed=args.seed)
    return model, "random model of the main job's size (preset main)"


def randomness(contender: str, seed: int) -> dict:
    return {"seed": seed} if contender == "per_row" else {"generator": torch.Generator().manual_seed(seed)}


def draw_cost_line(args, vocab_size: int, calls: int = 300) -> str:
    """The random draws alone, for one step's (batch, block, vocab) Gumbel noise: per-row streams vs one stream."""
    shape = (args.batch_size, args.block_length, vocab_size)
    sources = {
        "per_row": RandomDraws.per_row(args.seed, torch.zeros(args.batch_size, dtype=torch.long), "cpu"),
        "shared": RandomDraws.shared(torch.Generator().manual_seed(args.seed)),
    }
    times = common.time_alternated(
        {name: lambda source=source: source.uniform(shape, "cpu") for name, source in sources.items()}, calls
    )
    per_row, shared = (1e3 * times[name].median for name in CONTENDERS)
    return (
        f"The draws alone, {shape} float64 per step, median of {calls} alternated calls: per-row "
        f"{per_row:.3f} ms, one stream {shared:.3f} ms, ratio {per_row / shared:.3f}x."
    )


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    model, source = load_model(args)
    generator = torch.Generator().manual_seed(args.seed)
    rows = [
        torch.randint(0, 250, (int(length),), generator=generator).tolist()  # mixed prompt lengths
        for length in torch.randint(4, 17, (args.batch_size,), generator=generator)
    ]
    prompts, attention_mask = left_pad(rows, model.config.pad_token_id or 0)
    modes = {"baseline": {}, "dual + threshold 0.9": {"use_cache": "dual", "threshold": 0.9}}
    table = []
    for name, mode in modes.items():
        settings = dict(
            max_new_tokens=args.length,
            steps=args.length,
            block_length=args.block_length,
            temperature=args.temperature,
            eos_token_id=None,
            **mode,
        )

        def generate(contender, settings=settings):
            return model.diffusion_generate(
                prompts, attention_mask=attention_mask, **settings, **randomness(contender, args.seed)
            )

        times = common.time_alternated(
            {contender: lambda c=contender: generate(c) for contender in CONTENDERS}, args.repeats
        )
        equal = {}
        for contender in CONTENDERS:
            same = 0
            for row, prompt in enumerate(rows):
                alone = model.diffusion_generate(
                    torch.tensor([prompt]), **settings, **randomness(contender, args.seed)
                )[0, len(prompt) :]
                same += alone.tolist() == times[contender].result[row, prompts.shape[1] :].tolist()
            equal[contender] = f"{same}/{args.batch_size}"
        table.append(
            dict(
                mode=name,
                **common.versus(times, "per_row", "shared"),
                equal_per_row=equal["per_row"],
                equal_shared=equal["shared"],
            )
        )
    intro = [
        __doc__.split("\n\n")[0].replace("\n", " "),
        f"Model: {source}; batch {args.batch_size}, {args.length} new tokens, block {args.block_length}, "
        f"temperature {args.temperature}; {harness}; median [fastest-slowest] of {args.repeats} runs, the two "
        "contenders alternated.",
    ]
    columns = {
        "mode": "mode",
        "per_row": "per-row streams",
        "shared": "one stream",
        "ratio": "ratio per-row / one stream (medians)",
        "paired": "median of the paired ratios",
        "equal_per_row": "rows equal alone vs in the batch: per-row",
        "equal_shared": "one stream",
    }
    ratio = {"ratio": lambda x: f"{x:.3f}x", "paired": lambda x: f"{x:.3f}x"}
    written = common.write_report(
        args.output,
        table,
        intro=intro,
        columns=columns,
        formats=ratio,
        notes=[draw_cost_line(args, model.config.vocab_size)],
        meta=vars(args),
    )
    print("\n\n".join(intro))
    print("\n".join(common.markdown_table(table, columns, ratio)))
    if written:
        print(f"Wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
