"""Sampling speed of a block diffusion model (exact cache + parallel decoding) vs `LlamaForCausalLM.generate`.

Both models come from `experiments/block_quality.py` (same size, data, tokenizer and CPU budget). Each contender
continues the same 8 held-out prompts (32 characters, cut to one token length) with the same temperature and top-p;
contenders alternate over `--repeats` rounds and the median counts (benchmarks/common.py). For every length it prints
tokens/s, forward calls (NFE) and the quality of the samples: word validity, distinct-2 and their generative
perplexity under the autoregressive model, so that speed is read at matched quality.

    uncached        the block model, every step runs the whole canvas (block-causal): the reference tokens
    cached          the block model's default: only the current block runs, finished blocks come from the cache
    cached + tau    also commit every position whose confidence exceeds tau (parallel decoding)
    inverse-CDF     the cached sampler drawing its tokens with token_sampling="inverse_cdf" (one uniform per position)
    2 tokens / step half as many steps as tokens: two positions of the block per step
    AR generate     the autoregressive model with its own KV cache

    python benchmarks/bench_block_generate.py            # lengths 96 and 256, batch 8, one thread, a few minutes
    python benchmarks/bench_block_generate.py --model runs/block_quality/block8 --lengths 96
    python benchmarks/bench_block_generate.py --model runs/block_quality_bpe/block4 \
        --ar_model runs/block_quality_bpe/ar --temperature 1.0 --top_p 0.8 \
        --output benchmarks/results/block_quality_bpe/block_generate.md
    python benchmarks/bench_block_generate.py --random_models --lengths 8 --batch_size 2 --repeats 1   # smoke run

The models have 128 positions: 32 + 256 runs beyond them (RoPE extrapolates) for both contenders alike.
"""

import argparse
import functools
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

import common
import sample_quality as quality
from llada import LLaDAForMaskedDiffusion


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/block_quality/block4", help="A trained block diffusion model.")
    parser.add_argument("--ar_model", default="runs/block_quality/ar", help="The autoregressive baseline.")
    parser.add_argument(
        "--random_models",
        action="store_true",
        help="A random block model (blocks of 4) and Llama of the `main` preset with the byte "
        "tokenizer's ids: a smoke run (meaningless quality).",
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[96, 256])
    parser.add_argument("--prompt_bytes", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument(
        "--top_p",
        type=float,
        default=None,
        help="Nucleus sampling for both models (default: none, whatever the block model saved).",
    )
    parser.add_argument("--remasking", default="low_confidence")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.9, 0.7, 0.5])
    parser.add_argument(
        "--repeats", type=int, default=3, help="Timed rounds (alternating contenders); the median counts."
    )
    common.add_common_args(parser, output=common.RESULTS / "block_generate.md")
    return parser.parse_args(argv)


def contenders(args) -> dict:
    block = dict(temperature=args.temperature, top_p=args.top_p, remasking=args.remasking, eos_token_id=None)
    modes = {"uncached": dict(block, use_cache=False), "cached": dict(block, use_cache=None)}
    for threshold in args.thresholds:
        modes[f"cached + tau {threshold}"] = dict(block, use_cache=None, threshold=threshold)
    modes["cached, 2 tokens / step"] = dict(block, use_cache=None, steps_per_token=0.5)
    modes["cached, inverse-CDF draws"] = dict(block, use_cache=None, token_sampling="inverse_cdf")
    return modes


def run_block(model, prompts, length, settings, seed=0):
    """(generated tokens, nfe) of the block model."""
    settings = dict(settings)
    steps = int(length * settings.pop("steps_per_token", 1))
    out = model.diffusion_generate(
        prompts, max_new_tokens=length, steps=steps, seed=seed, return_dict_in_generate=True, **settings
    )
    return out.sequences[:, prompts.shape[1] :], out.nfe


def run_ar(model, prompts, length, temperature, top_p=None, seed=0):
    """(generated tokens, nfe = length) of the autoregressive model."""
    torch.manual_seed(seed)
    out = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=temperature > 0,
        temperature=temperature or None,
        top_k=None,
        top_p=top_p,
        max_new_tokens=length,
        min_new_tokens=length,
        pad_token_id=model.config.pad_token_id,
    )
    return out[:, prompts.shape[1] :], length


def load_models(args):
    """(block model, AR model, tokenizer): the trained ones, or random ones of the main preset with the byte
    tokenizer (`--random_models`)."""
    if args.random_models:
        from llada.training.tokenizers import build_tokenizer

        tokenizer = build_tokenizer("bytes", None, None, model_max_length=128)
        sizes = dict(
            vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        return (
            common.random_model("main", block_size=4, mask_token_id=tokenizer.mask_token_id, **sizes),
            common.random_model("main", "llama", **sizes),
            tokenizer,
        )
    model = LLaDAForMaskedDiffusion.from_pretrained(args.model).eval()
    ar_model = LlamaForCausalLM.from_pretrained(args.ar_model).eval()
    return model, ar_model, AutoTokenizer.from_pretrained(args.model)


def main(argv=None) -> int:
    args = parse_args(argv)
    harness = common.setup(args)
    model, ar_model, tokenizer = load_models(args)
    if model.config.block_size is None:
        sys.exit(f"{args.model} is not a block diffusion model (config.block_size is None).")
    train_text, heldout = quality.corpus_splits()
    vocabulary = set(quality.words_of(train_text))
    pairs = quality.prompts_from(heldout, args.batch_size, args.prompt_bytes, 0)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p, _ in pairs]
    width = min(len(row) for row in ids)  # every prompt cut to the shortest's tokens: one shape, no padding
    prompts = torch.tensor([row[:width] for row in ids])
    modes = contenders(args)
    source = "random models (preset main)" if args.random_models else f"block model {args.model}, AR {args.ar_model}"
    header = (
        f"{source} (block size {model.config.block_size}); batch {args.batch_size}, held-out prompts of "
        f"{args.prompt_bytes} characters ({prompts.shape[1]} tokens), temperature {args.temperature}"
        f"{f', top-p {args.top_p}' if args.top_p else ''}, {args.remasking}, one token per step on schedule "
        f"unless said, median of {args.repeats} alternating rounds, {harness}"
    )
    print(header)
    rows, notes = [], []
    with torch.no_grad():
        for length in args.lengths:
            needed = prompts.shape[1] + length
            model.config.max_position_embeddings = max(model.config.max_position_embeddings, needed)
            runs = {
                name: functools.partial(run_block, model, prompts, length, settings, args.seed)
                for name, settings in modes.items()
            }
            runs["AR generate"] = functools.partial(
                run_ar, ar_model, prompts, length, args.temperature, args.top_p, args.seed
            )
            times = common.time_alternated(runs, args.repeats)
            ar_speed = prompts.shape[0] * length / times["AR generate"].median
            for name, timing in times.items():
                generated, nfe = timing.result
                texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
                speed = generated.numel() / timing.median
                rows.append(
                    dict(
                        length=length,
                        contender=name,
                        nfe=nfe,
                        seconds=timing.median,
                        low=timing.low,
                        high=timing.high,
                        tokens_per_s=speed,
                        vs_ar=speed / ar_speed,
                        word_validity=quality.word_validity(texts, vocabulary),
                        distinct_2=quality.distinct_n(texts, 2),
                        gen_ppl=quality.sliding_perplexity(ar_model, prompts, generated, 128),
                    )
                )
                print(common.markdown_table(rows[-1:], COLUMNS, FORMATS)[-1], flush=True)
            exact = torch.equal(times["cached"].result[0], times["uncached"].result[0])
            notes.append(f"- length {length}: cached tokens == uncached tokens: {exact}")
    written = common.write_report(
        args.output, rows, intro=header, columns=COLUMNS, formats=FORMATS, notes=notes, meta=vars(args)
    )
    print("\n".join(notes))
    if written:
        print(f"wrote {written}")
    return 0


COLUMNS = {
    "length": "length",
    "contender": "contender",
    "nfe": "NFE",
    "seconds": "seconds",
    "tokens_per_s": "tokens/s",
    "vs_ar": "vs AR",
    "word_validity": "word validity",
    "distinct_2": "distinct-2",
    "gen_ppl": "gen. PPL (AR)",
}
FORMATS = {"seconds": ".2f", "tokens_per_s": ".0f", "vs_ar": lambda x: f"{x:.2f}x", "gen_ppl": ".2f"}


if __name__ == "__main__":
    sys.exit(main())
