"""Batched `diffusion_generate` vs a straightforward one-row-at-a-time implementation of the same algorithm.

Both run LLaDA's sampler (low-confidence remasking, greedy, semi-autoregressive blocks) with the same model on the
same prompts of different lengths. The baseline below is written the way LLaDA's reference `generate()` is: one
prompt at a time, softmax and confidence over the whole canvas at every step. `diffusion_generate` takes the whole
batch at once (left padding), works only on the current block, and selects positions for all rows with one sort.
Runs alternate between the two so that machine noise hits both alike. Prints the identical-token rate (generated
tokens equal to the baseline's) and the time ratio ours / baseline (target <= 0.9x).

    python benchmarks/bench_generate.py                      # random model (hidden 256, 4 layers), < 1 min on 2 cores
    python benchmarks/bench_generate.py --model runs/tiny    # a trained model; prompts from TinyShakespeare
    python benchmarks/bench_generate.py --gen_length 128 --block_length 32 --steps 128 --threads 0
    python benchmarks/bench_generate.py --device cuda --gen_length 256 --block_length 32 --steps 256

One intra-op thread by default: on a small shared CPU machine more threads mostly wait on each other and make the
timings erratic; `--threads 0` keeps torch's default.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llada import LLaDAConfig, LLaDAForMaskedDiffusion


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A saved model folder; default: a randomly initialised model.")
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=8)
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--min_prompt_len", type=int, default=8)
    parser.add_argument("--max_prompt_len", type=int, default=32)
    parser.add_argument("--gen_length", type=int, default=32)
    parser.add_argument("--block_length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per implementation (alternating)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    return parser.parse_args(argv)


def build_model(args):
    if args.model:
        return LLaDAForMaskedDiffusion.from_pretrained(args.model).to(args.device, getattr(torch, args.dtype)).eval()
    config = LLaDAConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=int(args.hidden_size * 2.6875),
        num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads, max_position_embeddings=1024,
        mask_token_id=args.vocab_size - 1, pad_token_id=0, bos_token_id=None, eos_token_id=None,
        initializer_range=0.1,  # wide enough that a random model's predictions are not all ties
    )
    torch.manual_seed(0)
    return LLaDAForMaskedDiffusion(config).to(args.device, getattr(torch, args.dtype)).eval()


def make_prompts(args, model):
    """`batch_size` prompts (lists of ids) of lengths spread over [min_prompt_len, max_prompt_len]."""
    lengths = torch.linspace(args.min_prompt_len, args.max_prompt_len, args.batch_size).round().long().tolist()
    tokenizer_file = Path(args.model or "") / "tokenizer.json"
    if args.model and tokenizer_file.is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        text = (Path(__file__).resolve().parents[1] / "llada" / "data" / "tinyshakespeare.txt").read_text()
        ids = tokenizer(text[:20000], add_special_tokens=False)["input_ids"]
        return [ids[i * 100: i * 100 + n] for i, n in enumerate(lengths)]
    generator = torch.Generator().manual_seed(1)
    special = {model.config.mask_token_id, model.config.pad_token_id}
    ids = [t for t in torch.randint(2, model.config.vocab_size, (5000,), generator=generator).tolist()
           if t not in special]
    return [ids[i * 100: i * 100 + n] for i, n in enumerate(lengths)]


@torch.no_grad()
def baseline_generate_one(model, prompt, gen_length, block_length, steps, mask_id):
    """LLaDA's sampler for ONE prompt, written plainly: full-canvas softmax and confidence at every step."""
    x = torch.tensor([prompt + [mask_id] * gen_length], device=model.device)  # (1, seq)
    prompt_len = len(prompt)
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for block in range(num_blocks):
        block_end = prompt_len + (block + 1) * block_length
        block_mask = x[:, prompt_len + block * block_length: block_end] == mask_id
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
    return [baseline_generate_one(model, p, args.gen_length, args.block_length, args.steps,
                                  model.config.mask_token_id) for p in prompts]


def run_batched(model, prompts, args):
    width = max(len(p) for p in prompts)
    pad = model.config.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=args.device)
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=args.device)
    out = model.diffusion_generate(input_ids, attention_mask=attention_mask, max_new_tokens=args.gen_length,
                                   steps=args.steps, block_length=args.block_length, remasking="low_confidence",
                                   temperature=0.0, eos_token_id=None)
    return list(out[:, width:])


def timed(fn, *args):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    prompts = make_prompts(args, model)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, batch {len(prompts)}, "
          f"prompt lengths {[len(p) for p in prompts]}, gen_length {args.gen_length}, block {args.block_length}, "
          f"steps {args.steps}, device {args.device}, {torch.get_num_threads()} threads")
    run_batched(model, prompts[:2], args)  # warm-up (allocator, kernels)
    baseline_times, batched_times = [], []
    for _ in range(args.repeats):
        seconds, baseline = timed(run_baseline, model, prompts, args)
        baseline_times.append(seconds)
        seconds, batched = timed(run_batched, model, prompts, args)
        batched_times.append(seconds)
    identical = sum(int((a.cpu() == b.cpu()).sum()) for a, b in zip(baseline, batched))
    total = sum(a.numel() for a in baseline)
    rows_identical = sum(bool(torch.equal(a.cpu(), b.cpu())) for a, b in zip(baseline, batched))
    baseline_s, batched_s = statistics.median(baseline_times), statistics.median(batched_times)
    print(f"baseline (one row at a time): {baseline_s:.3f} s  ({total / baseline_s:.0f} tokens/s)")
    print(f"diffusion_generate (batched): {batched_s:.3f} s  ({total / batched_s:.0f} tokens/s)")
    print(f"identical-token rate: {identical / total:.4f} ({identical}/{total}; {rows_identical}/{len(prompts)} "
          f"rows identical)")
    print(f"time ratio ours / baseline: {batched_s / baseline_s:.2f}x (target <= 0.9x)")


if __name__ == "__main__":
    main()
