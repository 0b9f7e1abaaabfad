"""Sampling speed of a block diffusion model (exact cache + parallel decoding) vs `LlamaForCausalLM.generate`.

Both models come from `block_quality.py` (same size, data, tokenizer and CPU budget). Each contender continues the
same 8 held-out prompts (32 characters, cut to one token length) with the same temperature and top-p; contenders alternate over `--repeats` rounds and the best
round counts. For every length it prints tokens/s, forward calls (NFE) and the quality of the samples: word validity,
distinct-2 and their generative perplexity under the autoregressive model, so that speed is read at matched quality.

    uncached        the block model, every step runs the whole canvas (block-causal): the reference tokens
    cached          the block model's default: only the current block runs, finished blocks come from the cache
    cached + tau    also commit every position whose confidence exceeds tau (parallel decoding)
    inverse-CDF     the cached sampler drawing its tokens with token_sampling="inverse_cdf" (one uniform per position)
    2 tokens / step half as many steps as tokens: two positions of the block per step
    AR generate     the autoregressive model with its own KV cache

    python benchmarks/bench_block_generate.py            # lengths 96 and 256, batch 8, one thread, a few minutes
    python benchmarks/bench_block_generate.py --model runs/block_quality/block8 --lengths 96
    python benchmarks/bench_block_generate.py --model runs/block_quality_bpe/block4 --ar_model runs/block_quality_bpe/ar \
        --temperature 1.0 --top_p 0.8 --output benchmarks/results/block_quality_bpe/block_generate.md

The models have 128 positions: 32 + 256 runs beyond them (RoPE extrapolates) for both contenders alike.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

import sample_quality as quality
from bench_generate import sliding_perplexity
from llada import LLaDAForMaskedDiffusion


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/block_quality/block4", help="A trained block diffusion model.")
    parser.add_argument("--ar_model", default="runs/block_quality/ar", help="The autoregressive baseline.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[96, 256])
    parser.add_argument("--prompt_bytes", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top_p", type=float, default=None,
                        help="Nucleus sampling for both models (default: none, whatever the block model saved).")
    parser.add_argument("--remasking", default="low_confidence")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.9, 0.7, 0.5])
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (alternating contenders); best counts.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/block_generate.md")
    return parser.parse_args(argv)


def contenders(args) -> dict:
    block = dict(temperature=args.temperature, top_p=args.top_p, remasking=args.remasking, eos_token_id=None)
    modes = {"uncached": dict(block, use_cache=False), "cached": dict(block, use_cache=None)}
    for threshold in args.thresholds:
        modes[f"cached + tau {threshold}"] = dict(block, use_cache=None, threshold=threshold)
    modes["cached, 2 tokens / step"] = dict(block, use_cache=None, steps_per_token=0.5)
    modes["cached, inverse-CDF draws"] = dict(block, use_cache=None, token_sampling="inverse_cdf")
    return modes


def run_block(model, prompts, length, settings):
    settings = dict(settings)
    steps = int(length * settings.pop("steps_per_token", 1))
    start = time.perf_counter()
    out = model.diffusion_generate(prompts, max_new_tokens=length, steps=steps, seed=0, return_dict_in_generate=True,
                                   **settings)
    return time.perf_counter() - start, out.sequences[:, prompts.shape[1]:], out.nfe


def run_ar(model, prompts, length, temperature, top_p=None):
    torch.manual_seed(0)
    start = time.perf_counter()
    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=temperature > 0,
                         temperature=temperature or None, top_k=None, top_p=top_p, max_new_tokens=length,
                         min_new_tokens=length, pad_token_id=model.config.pad_token_id)
    return time.perf_counter() - start, out[:, prompts.shape[1]:], length


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = LLaDAForMaskedDiffusion.from_pretrained(args.model).eval()
    ar_model = LlamaForCausalLM.from_pretrained(args.ar_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if model.config.block_size is None:
        sys.exit(f"{args.model} is not a block diffusion model (config.block_size is None).")
    train_text, heldout = quality.corpus_splits()
    vocabulary = set(quality.words_of(train_text))
    pairs = quality.prompts_from(heldout, args.batch_size, args.prompt_bytes, 0)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p, _ in pairs]
    width = min(len(row) for row in ids)  # every prompt cut to the shortest's tokens: one shape, no padding
    prompts = torch.tensor([row[:width] for row in ids])
    modes = contenders(args)
    header = (f"block model {args.model} (block size {model.config.block_size}), AR {args.ar_model}; batch "
              f"{args.batch_size}, held-out prompts of {args.prompt_bytes} characters ({prompts.shape[1]} tokens), "
              f"temperature {args.temperature}{f', top-p {args.top_p}' if args.top_p else ''}, "
              f"{args.remasking}, one token per step on schedule unless said, best of {args.repeats} alternating rounds, "
              f"{torch.get_num_threads()} thread(s)")
    lines = [header, "", "| length | contender | NFE | seconds | tokens/s | vs AR | word validity | distinct-2 | "
             "gen. PPL (AR) |", "|---|---|---|---|---|---|---|---|---|"]
    print(header)
    with torch.no_grad():
        for length in args.lengths:
            needed = prompts.shape[1] + length
            model.config.max_position_embeddings = max(model.config.max_position_embeddings, needed)
            runs = {name: None for name in [*modes, "AR generate"]}
            for _ in range(args.repeats):
                for name in runs:
                    if name == "AR generate":
                        result = run_ar(ar_model, prompts, length, args.temperature, args.top_p)
                    else:
                        result = run_block(model, prompts, length, modes[name])
                    if runs[name] is None or result[0] < runs[name][0]:
                        runs[name] = result
            ar_speed = prompts.shape[0] * length / runs["AR generate"][0]
            for name, (seconds, generated, nfe) in runs.items():
                texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
                speed = generated.numel() / seconds
                row = (f"| {length} | {name} | {nfe} | {seconds:.2f} | {speed:.0f} | {speed / ar_speed:.2f}x | "
                       f"{quality.word_validity(texts, vocabulary):.3f} | {quality.distinct_n(texts, 2):.3f} | "
                       f"{sliding_perplexity(ar_model, prompts, generated, 128):.2f} |")
                lines.append(row)
                print(row, flush=True)
            exact = torch.equal(runs["cached"][1], runs["uncached"][1])
            lines.append(f"| {length} | cached tokens == uncached tokens: {exact} | | | | | | | |")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
