"""Training-step cost of LLaDA vs `transformers.LlamaForCausalLM` with identical dimensions.

Both models get the same hidden size, layers, heads, intermediate size, vocabulary, batch and sequence length and
run forward + backward of their own training loss (masked diffusion for LLaDA, next-token CE for Llama). The
sizes are the `--preset`'s of benchmarks/common.py (default `medium`: hidden 256, 4 layers, 8 heads, FFN 688,
vocabulary 4096), each replaced by its flag when given. Timings alternate between the two models in one process so
that machine noise hits both alike (the median of `--repeats` rounds, and the fastest and slowest step); memory is
measured for each model in a fresh subprocess (peak RSS on CPU, peak allocated on CUDA) plus, deterministically, the
bytes the autograd graph saves for backward. Prints the ratios LLaDA / Llama of the medians (target: time <= 1.0x,
memory <= 1.05x).

    python benchmarks/bench_train_step.py                # CPU defaults, about a minute on 2 cores
    python benchmarks/bench_train_step.py --repeats 2 --seq_len 64 --batch_size 2 --preset tiny   # a smoke run
    python benchmarks/bench_train_step.py --device cuda --hidden_size 1024 --num_layers 8 --seq_len 1024
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import torch

import common


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_size_args(parser, "medium")
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model (alternating)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--memory_of", choices=["llada", "llama"], help=argparse.SUPPRESS)  # subprocess mode
    common.add_common_args(parser, output=None)
    return parser.parse_args(argv)


def build(kind, args):
    """The model of `kind` ("llada" or "llama") with the shared dimensions, on the device, in train mode."""
    model = common.random_model(args.preset, kind, attn_implementation=args.attn_implementation, **common.sizes(args))
    return model.to(device=args.device, dtype=getattr(torch, args.dtype)).train()


def make_batch(kind, args):
    """A training batch as each model's trainer would feed it."""
    vocab_size = common.sizes(args)["vocab_size"]
    mask = vocab_size - 1  # the presets' mask id (benchmarks/common.py: special_ids)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab_size - 3, (args.batch_size, args.seq_len), generator=generator)
    if kind == "llama":
        return {"input_ids": ids.to(args.device), "labels": ids.to(args.device)}
    # masked diffusion: t ~ U(0, 1) per row, mask with p = (1 - eps) t + eps, loss on the masked positions
    p_mask = (1 - 1e-3) * torch.rand(args.batch_size, generator=generator) + 1e-3
    masked = torch.rand(ids.shape, generator=generator) < p_mask[:, None]
    noisy = torch.where(masked, torch.full_like(ids, mask), ids)
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
    harness = common.setup(args)
    if args.memory_of:
        return memory_report(args.memory_of, args)

    models = {kind: build(kind, args) for kind in ("llada", "llama")}
    batches = {kind: make_batch(kind, args) for kind in models}
    n_params = {kind: sum(p.numel() for p in m.parameters()) for kind, m in models.items()}
    times = common.time_alternated(
        {kind: lambda kind=kind: train_step(models[kind], batches[kind]) for kind in models}, args.repeats, warmup=1
    )  # the warm-up round: allocator, kernels
    memory = {kind: measure_memory_in_subprocess(kind, argv) for kind in models}

    dims = common.sizes(args)
    heading = (
        f"dims: hidden {dims['hidden_size']}, layers {dims['num_hidden_layers']}, heads "
        f"{dims['num_attention_heads']}, intermediate {dims['intermediate_size']}, vocab {dims['vocab_size']}, "
        f"batch {args.batch_size} x seq {args.seq_len}, {args.dtype} on {args.device}, attention "
        f"{args.attn_implementation}; {harness}; median of {args.repeats} alternated steps [fastest-slowest]"
    )
    print(heading)
    rows = [
        dict(
            model=kind,
            params=f"{n_params[kind]:,}",
            step=times[kind],
            peak_mib=memory[kind]["peak_bytes"] / 2**20,
            saved_mib=memory[kind]["saved_bytes"] / 2**20,
        )
        for kind in models
    ]
    time_ratio = times["llada"].median / times["llama"].median
    peak_ratio = memory["llada"]["peak_bytes"] / memory["llama"]["peak_bytes"]
    saved_ratio = memory["llada"]["saved_bytes"] / memory["llama"]["saved_bytes"]
    notes = [
        f"time ratio LLaDA/Llama (median step): {time_ratio:.3f}x (target <= 1.0x)",
        f"memory ratio LLaDA/Llama: peak {peak_ratio:.3f}x, saved-for-backward {saved_ratio:.3f}x (target <= 1.05x)",
    ]
    columns = {
        "model": "model",
        "params": "params",
        "step": "step ms",
        "peak_mib": "peak +MiB",
        "saved_mib": "saved-for-backward MiB",
    }
    formats = {"peak_mib": ".1f", "saved_mib": ".1f"}
    print("\n".join([*common.markdown_table(rows, columns, formats), *notes]))
    written = common.write_report(
        args.output,
        rows,
        title="Training step: LLaDA vs Llama of the same size",
        intro=heading,
        columns=columns,
        formats=formats,
        notes=notes,
        meta=dict(vars(args), time_ratio=time_ratio, peak_ratio=peak_ratio, saved_ratio=saved_ratio),
    )
    if written:
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
