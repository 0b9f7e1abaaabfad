"""Training-step cost of block diffusion (BD3-LM's two-copy layout) vs full-attention LLaDA and Llama, same size.

Every contender has the size of `--preset` (benchmarks/common.py; default `main`, the main job's: hidden 128, 4
layers, 4 heads, FFN 384, the 4096-token BPE; `--preset bytes` the byte vocabulary of 259 ids), batch 32 x 128
tokens (`--batch_size 16 --complementary_masking` is the main job's setting), and runs forward + backward of its own
training loss on the batch its collator makes: masked diffusion for LLaDA, the same with one diffusion time per block
and the clean copy in the same pass (sequence 2 x 128) for the block models, next-token CE for Llama. With
`--complementary_masking` the two noised copies of a sequence share one clean copy (3 x 128); "block N sep." is the
older layout, one clean copy per noised row (2 x 2 x 128), for comparison. Steps alternate between the contenders in
one process; the figure is the median CPU time per step (`time.process_time`: a budget of CPU seconds is what it sets,
and it is less moved by other jobs on the machine) and its ratio to the full model's, which is what sets how many
steps a block model gets in the main job's time budget.

    python benchmarks/bench_block_train_step.py                    # one thread, about two minutes
    python benchmarks/bench_block_train_step.py --block_sizes 4 16 --attn_implementation eager
    python benchmarks/bench_block_train_step.py --batch_size 16 --complementary_masking       # the main job's setting
    python benchmarks/bench_block_train_step.py --preset tiny --block_sizes 4 --batch_size 2 --repeats 2   # smoke run
"""

import argparse
import sys

import torch

import common
from llada.training.block_collator import DataCollatorForBlockDiffusion
from llada.training.collator import DataCollatorForMaskedDiffusion


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_size_args(parser, "main")
    parser.add_argument("--block_sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--complementary_masking",
        action="store_true",
        help="Each sequence also with the complementary mask (2 x batch rows for the diffusion models).",
    )
    parser.add_argument("--repeats", type=int, default=8, help="timed steps per contender (alternating)")
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    common.add_common_args(parser)
    return parser.parse_args(argv)


def build(block_size, args):
    """`block_size`: None for full-attention LLaDA, an int for a block model, "llama" for the baseline; in train
    mode."""
    if block_size == "llama":
        model = common.random_model(
            args.preset, "llama", attn_implementation=args.attn_implementation, **common.sizes(args)
        )
    else:
        model = common.random_model(
            args.preset,
            block_size=block_size,
            attn_implementation=args.attn_implementation,
            **common.sizes(args),
        )
    return model.train()


def make_batch(block_size, args, shared_clean_copy=True):
    """A batch as the contender's collator makes it (seeded)."""
    generator = torch.Generator().manual_seed(1)
    vocab_size = common.sizes(args)["vocab_size"]
    mask, pad = common.special_ids(vocab_size)["mask_token_id"], common.special_ids(vocab_size)["pad_token_id"]
    rows = torch.randint(0, vocab_size - 3, (args.batch_size, args.seq_len), generator=generator)
    if block_size == "llama":
        return {"input_ids": rows, "labels": rows}
    examples = [{"input_ids": row} for row in rows]
    if block_size is None:
        collator = DataCollatorForMaskedDiffusion(
            mask_token_id=mask, pad_token_id=pad, seed=0, complementary_masking=args.complementary_masking
        )
    else:
        collator = DataCollatorForBlockDiffusion(
            mask_token_id=mask,
            pad_token_id=pad,
            seed=0,
            block_size=block_size,
            complementary_masking=args.complementary_masking,
            shared_clean_copy=shared_clean_copy,
        )
    return collator(examples)


def train_step(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    contenders = {"llada (full)": None, **{f"block {b}": b for b in args.block_sizes}, "llama": "llama"}
    separate = {f"block {b} sep.": b for b in args.block_sizes} if args.complementary_masking else {}
    models = {name: build(kind, args) for name, kind in {**contenders, **separate}.items()}
    batches = {name: make_batch(kind, args) for name, kind in contenders.items()}
    # with complementary masking, also the block models with one clean copy per noised row (the older layout)
    batches.update({name: make_batch(kind, args, shared_clean_copy=False) for name, kind in separate.items()})
    steps = {name: lambda name=name: train_step(models[name], batches[name]) for name in models}
    cpu = common.time_alternated(steps, args.repeats, warmup=1, clock="cpu")  # the warm-up round: allocator, kernels

    dims = common.sizes(args)
    heading = (
        f"dims: hidden {dims['hidden_size']}, layers {dims['num_hidden_layers']}, heads "
        f"{dims['num_attention_heads']}, FFN {dims['intermediate_size']}, vocab {dims['vocab_size']}, batch "
        f"{args.batch_size} x seq {args.seq_len}"
        f"{' (complementary masking: 2 x the rows)' if args.complementary_masking else ''}, float32 on cpu, "
        f"attention {args.attn_implementation}; {harness}; CPU time per step, median of {args.repeats} "
        "alternated steps [fastest-slowest]"
    )
    full = cpu["llada (full)"].median
    rows = [dict(contender=name, cpu=timing, vs_full=timing.median / full) for name, timing in cpu.items()]
    columns = {"contender": "contender", "cpu": "CPU per step", "vs_full": "CPU vs full"}
    formats = {"vs_full": lambda ratio: f"{ratio:.2f}x"}
    print(heading)
    print("\n".join(common.markdown_table(rows, columns, formats)))
    written = common.write_report(
        args.output,
        rows,
        title="Training step: block diffusion vs full LLaDA vs Llama",
        intro=heading,
        columns=columns,
        formats=formats,
        meta=vars(args),
    )
    if written:
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
