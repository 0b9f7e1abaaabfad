"""Training recipes side by side: for each, the perplexity bound, sample quality and wall time.

    python experiments/sweep_quality.py --recipes main,ar,plain,bytes --output_dir runs/sweep
    python experiments/sweep_quality.py --list

Each recipe is a set of `llada-train` options on top of the full-attention model's
(`llada/configs/tinyshakespeare-scratch.yaml`). The recipe is trained in its own process with `--threads` torch
threads (one by
default: the figures then hold on a machine where something else runs), then scored on the held-out split: the ELBO
perplexity bound (or the perplexity of an autoregressive recipe) on `--eval_blocks` blocks with 16 stratified `t` each,
and the samples of `benchmarks/sample_quality.py` under each sampler setting of `--samplers`. A finished recipe (its
folder holds `train_results.json`) is not retrained. Results are appended to `OUTPUT_DIR/sweep.jsonl` and the table of
all of them is written to `OUTPUT_DIR/sweep.md`.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

# the scripts of benchmarks/ import each other as siblings (benchmarks/common.py), and so does this experiment
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import sample_quality  # noqa: E402
from llada.training.run import SCRATCH_CONFIG  # noqa: E402

# name -> llada-train options on top of LLaDA from scratch (llada/configs/tinyshakespeare-scratch.yaml: a
# BPE-4096 LLaDA, 128 tokens per block, 1,200 steps of 16 sequences, each trained twice with complementary masks;
# "main": those options alone). PLAIN: one mask per sequence and 32 sequences per step instead (the same 32 rows).
PLAIN = ["--complementary_masking", "false", "--per_device_train_batch_size", "32"]
BYTES = ["--tokenizer", "bytes"]
AR = ["--model_type", "autoregressive"]  # complementary options give it 2x the batch: the same rows per step
RECIPES = {
    "main": [],
    "ar": AR,
    "plain": PLAIN,
    "seq256": [
        "--complementary_masking",
        "false",
        "--max_seq_length",
        "256",
        "--per_device_train_batch_size",
        "16",
        "--per_device_eval_batch_size",
        "32",
    ],
    "bpe2048": ["--vocab_size", "2048"],
    "strat_exact": ["--train_t_sampling", "stratified", "--masking", "exact"],
    "bytes": [*BYTES, *PLAIN],
    "bytes_ar": [*BYTES, *AR],
    "bytes_comp": BYTES,
    "bytes_strat": [*BYTES, *PLAIN, "--train_t_sampling", "stratified"],
    "bytes_strat_comp": [*BYTES, "--train_t_sampling", "stratified"],
    "bytes_strat_comp_exact": [*BYTES, "--train_t_sampling", "stratified", "--masking", "exact"],
}

SAMPLERS = {
    "random-b8": {"remasking": "random", "temperature": 0.8, "block_length": 8},
    "lowconf-b8": {"remasking": "low_confidence", "temperature": 0.8, "block_length": 8},
    "lowconf-T0.5-b8": {"remasking": "low_confidence", "temperature": 0.5, "block_length": 8},
    "lowconf-b1": {"remasking": "low_confidence", "temperature": 0.8, "block_length": 1},
    "lc-T1": {"remasking": "low_confidence", "temperature": 1.0, "block_length": 8},
    "lc-T1-p9": {"remasking": "low_confidence", "temperature": 1.0, "top_p": 0.9, "block_length": 8},
    "lc-T1-p8": {"remasking": "low_confidence", "temperature": 1.0, "top_p": 0.8, "block_length": 8},
    "ar-T0.8": {"temperature": 0.8},
    "saved": {},  # the model's own generation_config.json (what llada-generate uses)
}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="main,ar")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help="NAME=OPTIONS: a recipe given on the command line ('--lr 3e-3 --max_steps 900').",
    )
    parser.add_argument("--samplers", default="saved,random-b8,lowconf-b8,lowconf-b1")
    parser.add_argument("--sampler", action="append", default=[], help="NAME=JSON: an extra sampler setting.")
    parser.add_argument("--output_dir", default="runs/sweep")
    parser.add_argument("--ar_dir", default=None, help="Autoregressive model for the generative perplexity.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval_blocks", type=int, default=256)
    parser.add_argument("--num_samples", type=int, default=32)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--semi_ar", type=int, nargs="*", default=[], help="Block lengths of semi-AR bounds.")
    return parser.parse_args(argv)


def train(name, options, out_dir):
    if (out_dir / "train_results.json").is_file():
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(options.threads), TOKENIZERS_PARALLELISM="false")
    argv = [
        sys.executable,
        "-m",
        "llada.cli.train",
        "--config",
        str(SCRATCH_CONFIG),
        "--output_dir",
        str(out_dir),
        "--num_sample_generations",
        "0",
        *RECIPES[name],
    ]
    start, cpu = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_dir.with_suffix(".log"), "w") as log:
        subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = {"wall": time.time() - start, "cpu": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime}
    (out_dir / "sweep_timing.json").write_text(json.dumps(seconds))
    return seconds


@torch.no_grad()
def bound_of(model_dir, is_llada, eval_blocks, semi_ar=None):
    from llada.evaluation import generative_perplexity, perplexity_bound
    from llada.training.data import DataArguments, load_raw_datasets, tokenize_and_pack

    model, tokenizer, _ = sample_quality.load_model(model_dir)  # packed blocks: the padding side plays no part
    seq = model.config.max_position_embeddings
    blocks = tokenize_and_pack(
        load_raw_datasets(DataArguments(max_seq_length=seq)), tokenizer, DataArguments(max_seq_length=seq)
    )["validation"]
    ids = torch.tensor(blocks[: min(eval_blocks, len(blocks))]["input_ids"])
    text_bytes = sum(len(t.encode("utf-8")) for t in tokenizer.batch_decode(ids))
    bytes_per_token = text_bytes / ids.numel()
    if is_llada and not semi_ar:
        bound = perplexity_bound(model, ids, batch_size=32, num_samples=16, seed=0, show_progress=False)
        return bound["perplexity_bound"], bound["nll_bound"] / bytes_per_token
    if is_llada and semi_ar:
        return semi_ar_bound(model, ids[:64], semi_ar), None
    ppl = generative_perplexity(model, ids, batch_size=32)
    return ppl, math.log(ppl) / bytes_per_token


@torch.no_grad()
def semi_ar_bound(model, ids, block_length, num_samples=4, batch_size=32, seed=0):
    """Bound on -log p(x) of the model as a semi-autoregressive sampler with blocks of `block_length`: the sum over
    blocks of the ELBO of the block given the clean blocks before it, everything after it masked."""
    from llada.evaluation import masked_token_nll, sample_times

    generator = torch.Generator().manual_seed(seed)
    mask_id = model.config.mask_token_id
    n, seq = ids.shape
    total = 0.0
    positions = torch.arange(seq)
    for start in range(0, n, batch_size):
        x = ids[start : start + batch_size]
        for block_start in range(0, seq, block_length):
            in_block = (positions >= block_start) & (positions < block_start + block_length)
            after = positions >= block_start + block_length
            for t in sample_times(x.shape[0], num_samples, "stratified", generator):
                p = ((1 - 1e-3) * t + 1e-3)[:, None]
                noise = torch.rand(x.shape, generator=generator)
                masked = (noise < p) & in_block[None]
                noisy = x.masked_fill(masked | after[None], mask_id)
                nll = masked_token_nll(model, noisy, x, masked)
                total += (nll / p).sum().item() / num_samples
    return math.exp(total / ids.numel())


def main(argv=None):
    options = parse(argv)
    torch.set_num_threads(options.threads)
    for item in options.extra:
        name, _, args = item.partition("=")
        RECIPES[name] = args.split()
    for item in options.sampler:
        name, _, spec = item.partition("=")
        SAMPLERS[name] = json.loads(spec)
    if options.list:
        for name, args in RECIPES.items():
            print(f"{name:<24} {' '.join(args)}")
        return 0
    root = Path(options.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    train_text, heldout = sample_quality.corpus_splits()
    training = sample_quality.TrainingText(train_text)
    ar = None
    if options.ar_dir:
        ar_model, ar_tokenizer, _ = sample_quality.load_model(options.ar_dir)
        ar = (ar_model, ar_tokenizer)
    for name in options.recipes.split(","):
        out_dir = root / name
        out_dir.mkdir(exist_ok=True)
        train(name, options, out_dir)
        timing_file = out_dir / "sweep_timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        runtime = json.loads((out_dir / "train_results.json").read_text())["train_runtime"]
        is_llada = json.loads((out_dir / "config.json").read_text()).get("model_type") == "llada"
        bound, nats_per_byte = bound_of(out_dir, is_llada, options.eval_blocks)
        semi = {b: bound_of(out_dir, True, options.eval_blocks, b)[0] for b in options.semi_ar} if is_llada else {}
        print(f"{name}: bound {bound:.3f}, semi-AR bounds {semi}", flush=True)
        samplers = options.samplers.split(",") if is_llada else ["ar-T0.8"]
        for sampler in samplers:
            settings = argparse.Namespace(
                num_samples=options.num_samples,
                seeds=1,
                prompt_bytes=32,
                new_bytes=96,
                steps=None,
                top_k=None,
                top_p=None,
                threshold=None,
                remasking=None,
                block_length=None,
                temperature=None,
            )
            for key, value in SAMPLERS[sampler].items():
                setattr(settings, key, value)
            quality = sample_quality.evaluate_model(out_dir, settings, training, heldout, ar)
            row = {
                "recipe": name,
                "args": " ".join(RECIPES[name]),
                "sampler": sampler,
                "bound": bound,
                "nats_per_byte": nats_per_byte,
                "semi_ar": semi,
                "train_runtime": runtime,
                "cpu_seconds": timing.get("cpu"),
                "word_validity": quality["word_validity"],
                "distinct_2": quality["distinct_2"],
                "gen_ppl": quality["generative_perplexity"],
                "sample": quality["samples"][0],
                "threads": options.threads,
            }
            with open(root / "sweep.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"{name:<22} {sampler:<18} bound {bound:7.3f}  wv {row['word_validity']:.3f}  "
                f"d2 {row['distinct_2']:.3f}  gppl {row['gen_ppl'] or float('nan'):6.2f}  {runtime:5.0f}s  "
                f"{row['sample'][:60]!r}",
                flush=True,
            )
    write_table(root)
    return 0


def write_table(root):
    rows = [json.loads(line) for line in open(root / "sweep.jsonl")]
    lines = [
        "| recipe | options | sampler | bound / PPL per token | nats per byte | word validity | distinct-2 | "
        "gen. PPL | train wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gppl = f"{r['gen_ppl']:.2f}" if r.get("gen_ppl") else "-"
        npb = f"{r['nats_per_byte']:.3f}" if r.get("nats_per_byte") else "-"
        cpu = f"{r['cpu_seconds']:.0f}" if r.get("cpu_seconds") else "-"
        lines.append(
            f"| {r['recipe']} | `{r['args']}` | {r['sampler']} | {r['bound']:.3f} | {npb} | "
            f"{r['word_validity']:.3f} | {r['distinct_2']:.3f} | {gppl} | {r['train_runtime']:.0f} | {cpu} |"
        )
    (root / "sweep.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
