"""Training-step cost of LLaDA vs `transformers.LlamaForCausalLM` with identical dimensions.

Both models get the same hidden size, layers, heads, intermediate size, vocabulary, batch and sequence length and
run forward + backward of their own training loss (masked diffusion for LLaDA, next-token CE for Llama). Timings
alternate between the two models in one process so that machine noise hits both alike; memory is measured for
each model in a fresh subprocess (peak RSS on CPU, peak allocated on CUDA) plus, deterministically, the bytes the
autograd graph saves for backward. Prints the ratios LLaDA / Llama (target: time <= 1.0x, memory <= 1.05x).

    python benchmarks/bench_train_step.py                # CPU defaults, about a minute on 2 cores
    python benchmarks/bench_train_step.py --device cuda --hidden_size 1024 --num_layers 8 --seq_len 1024
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llada import LLaDAConfig, LLaDAForMaskedDiffusion


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=8)
    parser.add_argument("--intermediate_size", type=int, default=688)
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model (alternating)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--memory_of", choices=["llada", "llama"], help=argparse.SUPPRESS)  # subprocess mode
    return parser.parse_args(argv)


def build(kind, args):
    """The model of `kind` ("llada" or "llama") with the shared dimensions, on the device, in train mode."""
    shared = dict(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads, max_position_embeddings=args.seq_len,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    if kind == "llada":
        model = LLaDAForMaskedDiffusion(LLaDAConfig(**shared, mask_token_id=args.vocab_size - 1))
    else:
        model = LlamaForCausalLM(LlamaConfig(**shared))
    model.set_attn_implementation(args.attn_implementation)
    return model.to(device=args.device, dtype=getattr(torch, args.dtype)).train()


def make_batch(kind, args):
    """A training batch as each model's trainer would feed it."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, args.vocab_size - 1, (args.batch_size, args.seq_len), generator=generator)
    if kind == "llama":
        return {"input_ids": ids.to(args.device), "labels": ids.to(args.device)}
    # masked diffusion: t ~ U(0, 1) per row, mask with p = (1 - eps) t + eps, loss on the masked positions
    p_mask = (1 - 1e-3) * torch.rand(args.batch_size, generator=generator) + 1e-3
    masked = torch.rand(ids.shape, generator=generator) < p_mask[:, None]
    noisy = torch.where(masked, torch.full_like(ids, args.vocab_size - 1), ids)
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    return {k: v.to(args.device) for k, v in dict(input_ids=noisy, labels=labels, p_mask=p_mask).items()}


def train_step(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def saved_activation_bytes(model, batch):
    """Bytes of the distinct tensor storages autograd keeps for backward in one forward pass."""
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    return sum(seen.values())


def measure_memory_in_subprocess(kind, argv):
    """Peak memory of warm-up + 3 training steps of one model, measured in a fresh interpreter."""
    result = subprocess.run([sys.executable, __file__, *argv, "--memory_of", kind], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"memory measurement of {kind} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def current_rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RSSSampler(threading.Thread):
    """Samples the resident set size every millisecond; `peak` is the largest value seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = current_rss_bytes(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(0.001)


def memory_report(kind, args):
    model, batch = build(kind, args), make_batch(kind, args)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            train_step(model, batch)
        synchronize(args.device)
        peak = torch.cuda.max_memory_allocated()
    else:  # growth of the resident set over the built model while training
        baseline, sampler = current_rss_bytes(), RSSSampler()
        sampler.start()
        for _ in range(3):
            train_step(model, batch)
        sampler.running = False
        sampler.join()
        peak = sampler.peak - baseline
    print(json.dumps({"peak_bytes": peak, "saved_bytes": saved_activation_bytes(model, batch)}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.memory_of:
        return memory_report(args.memory_of, args)

    models = {kind: build(kind, args) for kind in ("llada", "llama")}
    batches = {kind: make_batch(kind, args) for kind in models}
    n_params = {kind: sum(p.numel() for p in m.parameters()) for kind, m in models.items()}
    for kind in models:  # warm-up (allocator, kernels)
        train_step(models[kind], batches[kind])
    times = {kind: [] for kind in models}
    for _ in range(args.repeats):
        for kind in models:
            synchronize(args.device)
            start = time.perf_counter()
            train_step(models[kind], batches[kind])
            synchronize(args.device)
            times[kind].append(time.perf_counter() - start)
    memory = {kind: measure_memory_in_subprocess(kind, argv) for kind in models}

    print(f"dims: hidden {args.hidden_size}, layers {args.num_layers}, heads {args.num_heads}, "
          f"intermediate {args.intermediate_size}, vocab {args.vocab_size}, batch {args.batch_size} x seq "
          f"{args.seq_len}, {args.dtype} on {args.device}, attention {args.attn_implementation}")
    print(f"{'model':<8}{'params':>12}{'step ms (best)':>16}{'(median)':>10}{'peak +MiB':>12}"
          f"{'saved-for-backward MiB':>26}")
    for kind in models:
        print(f"{kind:<8}{n_params[kind]:>12,}{1000 * min(times[kind]):>16.1f}"
              f"{1000 * statistics.median(times[kind]):>10.1f}"
              f"{memory[kind]['peak_bytes'] / 2**20:>12.1f}{memory[kind]['saved_bytes'] / 2**20:>26.1f}")
    # the best of several alternating runs is the least disturbed by whatever else the machine is doing
    time_ratio = min(times["llada"]) / min(times["llama"])
    peak_ratio = memory["llada"]["peak_bytes"] / memory["llama"]["peak_bytes"]
    saved_ratio = memory["llada"]["saved_bytes"] / memory["llama"]["saved_bytes"]
    print(f"time ratio LLaDA/Llama (best step): {time_ratio:.3f}x (target <= 1.0x)")
    print(f"memory ratio LLaDA/Llama: peak {peak_ratio:.3f}x, saved-for-backward {saved_ratio:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    main()
