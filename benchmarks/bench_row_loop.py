"""Batched `diffusion_generate` vs a one-row-at-a-time implementation of the same algorithm.

The one-row loop is LLaDA's sampler written plainly (greedy, low-confidence remasking, full-canvas softmax and
confidence at every step); the batched call decodes the same prompts, of mixed lengths and left-padded, in one batch.
Both run alternately (benchmarks/common.py: the median of `--repeats` rounds) and the table gives their time, the
ratio batched / one row at a time (target <= 0.9x) and the share of identical tokens.

    python benchmarks/bench_row_loop.py                          # a random model of the `medium` preset
    python benchmarks/bench_row_loop.py --model runs/llada-tinyshakespeare
    python benchmarks/bench_row_loop.py --preset tiny --batch_size 2 --gen_length 16 --steps 16 --repeats 1   # smoke
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import common
from llada import LLaDAForMaskedDiffusion
from llada.prepare_llada import left_pad


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A saved model folder; default: a randomly initialised model of --preset.")
    parser.add_argument("--preset", default="medium", choices=list(common.PRESETS), help="The random model's size.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--min_prompt_len", type=int, default=8)
    parser.add_argument("--max_prompt_len", type=int, default=32)
    parser.add_argument("--gen_length", type=int, default=32)
    parser.add_argument("--block_length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per implementation (alternating)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    common.add_common_args(parser)
    return parser.parse_args(argv)


def build_model(args):
    dtype = getattr(torch, args.dtype)
    if args.model:
        return LLaDAForMaskedDiffusion.from_pretrained(args.model).to(args.device, dtype).eval()
    # wide initial weights: a random model's predictions are then not all ties
    model = common.random_model(args.preset, max_position_embeddings=1024, initializer_range=0.1, seed=args.seed)
    return model.to(args.device, dtype)


def make_prompts(args, model):
    """`batch_size` prompts (lists of ids) of lengths spread over [min_prompt_len, max_prompt_len]."""
    lengths = torch.linspace(args.min_prompt_len, args.max_prompt_len, args.batch_size).round().long().tolist()
    tokenizer_file = Path(args.model or "") / "tokenizer.json"
    if args.model and tokenizer_file.is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        ids = tokenizer(common.CORPUS.read_text()[:20000], add_special_tokens=False)["input_ids"]
        return [ids[i * 100 : i * 100 + n] for i, n in enumerate(lengths)]
    generator = torch.Generator().manual_seed(1)
    special = {model.config.mask_token_id, model.config.pad_token_id, model.config.eos_token_id}
    ids = [
        t for t in torch.randint(0, model.config.vocab_size, (5000,), generator=generator).tolist() if t not in special
    ]
    return [ids[i * 100 : i * 100 + n] for i, n in enumerate(lengths)]


@torch.no_grad()
def baseline_generate_one(model, prompt, gen_length, block_length, steps, mask_id):
    """LLaDA's sampler for ONE prompt, written plainly: full-canvas softmax and confidence at every step."""
    x = torch.tensor([prompt + [mask_id] * gen_length], device=model.device)  # (1, seq)
    prompt_len = len(prompt)
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for block in range(num_blocks):
        block_end = prompt_len + (block + 1) * block_length
        block_mask = x[:, prompt_len + block * block_length : block_end] == mask_id
        base, extra = divmod(int(block_mask.sum()), steps_per_block)
        schedule = [base + (1 if i < extra else 0) for i in range(steps_per_block)]
        for k in schedule:
            mask_index = x == mask_id
            logits = model(x).logits  # (1, seq, vocab)
            logits[..., mask_id] = float("-inf")  # as diffusion_generate: the mask is never a prediction
            x0 = logits.argmax(dim=-1)
            p = F.softmax(logits.float(), dim=-1)
            confidence = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # (1, seq)
            confidence[:, block_end:] = float("-inf")
            confidence = torch.where(mask_index, confidence, torch.tensor(float("-inf"), device=x.device))
            chosen = torch.topk(confidence[0], k).indices
            x[0, chosen] = x0[0, chosen]
    return x[0, prompt_len:]


def run_baseline(model, prompts, args):
    return [
        baseline_generate_one(model, p, args.gen_length, args.block_length, args.steps, model.config.mask_token_id)
        for p in prompts
    ]


def run_batched(model, prompts, args):
    input_ids, attention_mask = left_pad(prompts, model.config.pad_token_id, args.device)
    width = input_ids.shape[1]
    out = model.diffusion_generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=args.gen_length,
        steps=args.steps,
        block_length=args.block_length,
        remasking="low_confidence",
        temperature=0.0,
        eos_token_id=None,
    )
    return list(out[:, width:])


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    model = build_model(args)
    prompts = make_prompts(args, model)
    heading = (
        f"model: {args.model or f'random, preset {args.preset}'}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, batch {len(prompts)}, prompt "
        f"lengths {[len(p) for p in prompts]}, gen_length {args.gen_length}, block {args.block_length}, steps "
        f"{args.steps}, device {args.device}, {harness}; median of {args.repeats} alternated runs"
    )
    print(heading)
    run_batched(model, prompts[:2], args)  # warm-up (allocator, kernels)
    times = common.time_alternated(
        {
            "one row at a time": lambda: run_baseline(model, prompts, args),
            "diffusion_generate (batched)": lambda: run_batched(model, prompts, args),
        },
        args.repeats,
    )
    baseline, batched = times["one row at a time"].result, times["diffusion_generate (batched)"].result
    identical = sum(int((a.cpu() == b.cpu()).sum()) for a, b in zip(baseline, batched))
    total = sum(a.numel() for a in baseline)
    rows_identical = sum(bool(torch.equal(a.cpu(), b.cpu())) for a, b in zip(baseline, batched))
    rows = [
        dict(implementation=name, time=timing, tokens_per_s=total / timing.median) for name, timing in times.items()
    ]
    ratio = times["diffusion_generate (batched)"].median / times["one row at a time"].median
    notes = [
        f"identical-token rate: {identical / total:.4f} ({identical}/{total}; {rows_identical}/{len(prompts)} "
        "rows identical)",
        f"time ratio batched / one row at a time: {ratio:.2f}x (target <= 0.9x)",
    ]
    formats = {"tokens_per_s": ".0f"}
    print("\n".join([*common.markdown_table(rows, formats=formats), *notes]))
    written = common.write_report(
        args.output,
        rows,
        title="Batched sampler vs one row at a time",
        intro=heading,
        formats=formats,
        notes=notes,
        meta=dict(vars(args), ratio=ratio),
    )
    if written:
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
