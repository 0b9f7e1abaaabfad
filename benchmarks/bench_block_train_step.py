"""Training-step cost of block diffusion (BD3-LM's two-copy layout) vs full-attention LLaDA and Llama, same size.

Every contender has the dimensions of the main job (`llada-train` defaults: hidden 128, 4 layers, 4 heads, FFN 384,
byte vocabulary, batch 32 x 128 tokens; `--vocab_size 4096 --batch_size 16 --complementary_masking` is the main
job's BPE setting) and runs forward + backward of its own training loss on the batch its
collator makes: masked diffusion for LLaDA, the same with one diffusion time per block and the clean copy in the
same pass (sequence 2 x 128) for the block models, next-token CE for Llama. With `--complementary_masking` the two
noised copies of a sequence share one clean copy (3 x 128); "block N sep." is the older layout, one clean copy per
noised row (2 x 2 x 128), for comparison. Steps alternate between the contenders
in one process; the figure is CPU time per step (`time.process_time`, robust to other jobs on the machine) and the
ratio to the full model, which is what sets how many steps a block model gets in the main job's time budget.

    python benchmarks/bench_block_train_step.py                    # one thread, about two minutes
    python benchmarks/bench_block_train_step.py --block_sizes 4 16 --attn_implementation eager
    python benchmarks/bench_block_train_step.py --vocab_size 4096 --batch_size 16 --complementary_masking
"""

import argparse
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.training.block_collator import DataCollatorForBlockDiffusion
from llada.training.collator import DataCollatorForMaskedDiffusion

BYTE_VOCABULARY = 259  # 256 bytes, then EOS, PAD and MASK (the byte tokenizer's ids)


def special_ids(vocab_size: int):
    """(mask, pad, eos) ids: the last three of the vocabulary, as both of the project's tokenizers place them."""
    return vocab_size - 1, vocab_size - 2, vocab_size - 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block_sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_size", type=int, default=384)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--vocab_size", type=int, default=BYTE_VOCABULARY)
    parser.add_argument("--complementary_masking", action="store_true",
                        help="Each sequence also with the complementary mask (2 x batch rows for the diffusion models).")
    parser.add_argument("--repeats", type=int, default=8, help="timed steps per contender (alternating)")
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def build(block_size, args):
    """`block_size`: None for full-attention LLaDA, an int for a block model, "llama" for the baseline."""
    mask, pad, eos = special_ids(args.vocab_size)
    shared = dict(vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                  num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads,
                  max_position_embeddings=args.seq_len, pad_token_id=pad, bos_token_id=None, eos_token_id=eos,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    torch.manual_seed(0)
    if block_size == "llama":
        model = LlamaForCausalLM(LlamaConfig(**shared))
    else:
        model = LLaDAForMaskedDiffusion(LLaDAConfig(**shared, mask_token_id=mask, block_size=block_size))
    model.set_attn_implementation(args.attn_implementation)
    return model.train()


def make_batch(block_size, args, shared_clean_copy=True):
    """A batch as the contender's collator makes it (seeded)."""
    generator = torch.Generator().manual_seed(1)
    mask, pad, _ = special_ids(args.vocab_size)
    rows = torch.randint(0, args.vocab_size - 3, (args.batch_size, args.seq_len), generator=generator)
    if block_size == "llama":
        return {"input_ids": rows, "labels": rows}
    examples = [{"input_ids": row} for row in rows]
    if block_size is None:
        collator = DataCollatorForMaskedDiffusion(mask_token_id=mask, pad_token_id=pad, seed=0,
                                                  complementary_masking=args.complementary_masking)
    else:
        collator = DataCollatorForBlockDiffusion(mask_token_id=mask, pad_token_id=pad, seed=0, block_size=block_size,
                                                 complementary_masking=args.complementary_masking,
                                                 shared_clean_copy=shared_clean_copy)
    return collator(examples)


def train_step(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    contenders = {"llada (full)": None, **{f"block {b}": b for b in args.block_sizes}, "llama": "llama"}
    separate = {f"block {b} sep.": b for b in args.block_sizes} if args.complementary_masking else {}
    models = {name: build(kind, args) for name, kind in {**contenders, **separate}.items()}
    batches = {name: make_batch(kind, args) for name, kind in contenders.items()}
    # with complementary masking, also the block models with one clean copy per noised row (the older layout)
    batches.update({name: make_batch(kind, args, shared_clean_copy=False) for name, kind in separate.items()})
    for name in models:  # warm-up (allocator, kernels)
        train_step(models[name], batches[name])
    cpu, wall = {name: [] for name in models}, {name: [] for name in models}
    for _ in range(args.repeats):
        for name in models:
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            train_step(models[name], batches[name])
            cpu[name].append(time.process_time() - cpu_start)
            wall[name].append(time.perf_counter() - wall_start)

    print(f"dims: hidden {args.hidden_size}, layers {args.num_layers}, heads {args.num_heads}, FFN "
          f"{args.intermediate_size}, vocab {args.vocab_size}, batch {args.batch_size} x seq {args.seq_len}"
          f"{' (complementary masking: 2 x the rows)' if args.complementary_masking else ''}, float32 on cpu, "
          f"attention {args.attn_implementation}, {args.threads} thread(s), {args.repeats} alternating steps each")
    print(f"{'contender':<16}{'CPU ms/step (median)':>22}{'(best)':>9}{'wall ms (median)':>18}{'CPU vs full':>13}")
    full = statistics.median(cpu["llada (full)"])
    for name in models:
        median = statistics.median(cpu[name])
        print(f"{name:<16}{1000 * median:>22.1f}{1000 * min(cpu[name]):>9.1f}"
              f"{1000 * statistics.median(wall[name]):>18.1f}{median / full:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
