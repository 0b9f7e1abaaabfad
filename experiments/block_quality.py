"""Block diffusion vs full-attention LLaDA vs autoregressive, at the main job's size, data and CPU-time budget.

Contenders (all `llada-train` with the options of LLaDA from scratch, `llada/configs/tinyshakespeare-scratch.yaml`:
hidden 128, 4 layers, 4 heads,
FFN 384, 128-token blocks of TinyShakespeare, AdamW 2e-3 cosine; `--setting bytes` (default): byte tokenizer, one
mask per sequence, batch 32; `--setting main`: that YAML as it is, a 4096-token BPE with complementary masking,
batch 16 x 2 rows):
`ar` (LlamaForCausalLM of the same size),
`full` (LLaDA), `block4`, `block8`, `block16` (`--block_size`), and recipes for a block model's bound at the same
budget (`block2-lr4e-3`, `block2-batch8`, `block2-batch4`, `block4-batch8`, `block2-independent`,
`block2-batch8-lr3e-3`; `ar-batch8` is the AR model with the smaller batch, for a fair comparison), and block models
that train a share of their blocks on the in-order likelihood instead of the bound (`block2-batch8-in-order0.5`,
`...-in-order1`, the same for block 4; `--in_order_probability`). The budget is the CPU time of the full model's
1,200 steps: a calibration times a few alternating training steps of every contender in this process (one thread)
and gives each the number of steps that costs the same (a block model's step runs the noised and the clean copy,
about 2.2x the full model's).

Then, on the same held-out text, for every contender:

- the validation perplexity (AR) or perplexity bound (ELBO; block models: BD3-LM's, one `t` per block), on the same
  validation blocks with 16 `t` draws per block, and its ratio to the AR perplexity;
- for a diffusion model, also the in-order perplexity: the exact likelihood (no bound) of the model decoded left to
  right inside each block at temperature 1, on the tokens the AR perplexity scores (`--no-in_order_full` skips the
  full model's, which takes one forward per position);
- word validity and distinct-2 of 32 samples of ~96 bytes after 32-byte prompts from the held-out tail
  (`sample_quality.py`), for a few sampler settings each.

    python experiments/block_quality.py --output_dir runs/block_quality               # trains and evaluates all
    python experiments/block_quality.py --output_dir runs/block_quality --skip_training   # re-evaluate saved runs
    python experiments/block_quality.py --skip_training --calibration_from benchmarks/results/block_quality.json
    python experiments/block_quality.py --contenders block4 --reuse ar=runs/compare/autoregressive
    python experiments/block_quality.py --setting main --contenders ar full block2 block4 \
        --output_dir runs/block_quality_bpe --results_dir benchmarks/results/block_quality_bpe

Writes `block_quality.md` and `block_quality.json` into `--results_dir` (default `benchmarks/results`, where the
docs and the recipe YAMLs quote them from). One thread. The step calibration is
`benchmarks/bench_block_train_step.py`'s: the median CPU time of alternated steps (benchmarks/common.py).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

# the scripts of benchmarks/ import each other as siblings (benchmarks/common.py), and so does this experiment
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_block_train_step as step_bench  # noqa: E402
import common
import sample_quality as quality  # noqa: E402
from llada.training.run import SCRATCH_CONFIG  # noqa: E402

# the options every contender starts from: the full-attention model's, so that the contenders and their recorded
# figures keep their meaning
FULL = ["--config", str(SCRATCH_CONFIG)]
# the setting every contender trains in (the main job's options otherwise), and the training-step calibration's
SETTINGS = {
    "bytes": dict(
        argv=[
            *FULL,
            "--tokenizer",
            "bytes",
            "--complementary_masking",
            "false",
            "--per_device_train_batch_size",
            "32",
            "--torch_num_threads",
            "1",
        ],
        vocab_size=259,
        batch_size=32,
        complementary=False,
    ),
    "main": dict(argv=[*FULL, "--torch_num_threads", "1"], vocab_size=4096, batch_size=16, complementary=True),
}
SETTING_NOTES = {
    "bytes": "bytes (`--setting bytes`): byte tokenizer (259 ids), one mask per sequence, 32 rows per step.",
    "main": "the main job's (`--setting main`): 4096-token BPE learned from the corpus, complementary masking "
    "(16 sequences, 32 rows per step; a block model masks each block and its complement), as "
    "llada/configs/tinyshakespeare-scratch.yaml has it.",
}


def block(size, batch=None, lr=None, in_order=None, in_order_end=None, masking="exact", complementary=None) -> list:
    """The llada-train options of a block model of `size` (exact masking unless told) and its recipe."""
    argv = ["--block_size", str(size), "--masking", masking]
    if complementary is not None:
        argv += ["--complementary_masking", complementary]
    for flag, value in (
        ("--per_device_train_batch_size", batch),
        ("--learning_rate", lr),
        ("--in_order_probability", in_order),
        ("--in_order_probability_end", in_order_end),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def autoregressive(batch, lr=None) -> list:
    argv = ["--model_type", "autoregressive", "--per_device_train_batch_size", str(batch)]
    return argv + (["--learning_rate", lr] if lr else [])


CONTENDERS = {  # the block models mask exactly k ~ U{1..n} tokens per block; "-bernoulli": p per token instead
    "ar": ["--model_type", "autoregressive"],
    "full": [],
    **{f"block{size}": block(size) for size in (1, 2, 4, 8, 16)},
    **{f"block{size}-bernoulli": block(size, masking="bernoulli") for size in (4, 8, 16)},
    "block4-batch16": block(4, batch=16),
    # recipes for the block model's bound in the main setting (same CPU budget): a higher learning rate, half the
    # batch (about twice the steps), and independent sequences instead of complementary copies (the same rows)
    "block2-lr4e-3": block(2, lr="0.004"),
    "block2-batch8": block(2, batch=8),
    "block2-independent": block(2, complementary="false", batch=32),
    "block2-batch4": block(2, batch=4),
    "block4-batch8": block(4, batch=8),
    **{f"ar-batch{batch}": autoregressive(batch) for batch in (8, 4, 2)},
    "block2-batch8-lr3e-3": block(2, batch=8, lr="0.003"),
    # a share of the blocks trained on the in-order likelihood instead of the bound
    **{
        f"block{size}-batch{batch}-in-order{share}": block(size, batch=batch, in_order=share)
        for size, batch in ((2, 8), (4, 8), (2, 4))
        for share in ("0.5", "1")
    },
    "block2-batch2": block(2, batch=2),
    "block2-batch2-in-order0.5": block(2, batch=2, in_order="0.5"),
    # the bound at batch 2: a lower learning rate, a smaller in-order share
    **{f"block2-batch2-lr{lr}": block(2, batch=2, lr=value) for lr, value in (("1e-3", "0.001"), ("5e-4", "0.0005"))},
    "block2-batch2-in-order0.25": block(2, batch=2, in_order="0.25"),
    # the lower learning rate with half the blocks in order, and for the AR model (tuned like the block models)
    "block2-batch2-lr1e-3-in-order0.5": block(2, batch=2, lr="0.001", in_order="0.5"),
    "ar-batch4-lr1e-3": autoregressive(4, lr="0.001"),
    "block2-batch1-lr5e-4": block(2, batch=1, lr="0.0005"),
    "block2-batch2-lr1e-3-in-order1to0": block(2, batch=2, lr="0.001", in_order="1", in_order_end="0"),
    # a curriculum: in order first (as an autoregressive model learns), the bound at the end
    "block2-batch2-in-order1to0": block(2, batch=2, in_order="1", in_order_end="0"),
}

DEFAULT_CONTENDERS = ["ar", "full", "block4", "block8", "block16"]
AR_SAMPLERS = {
    "T0.8": dict(temperature=0.8),
    "T0.6": dict(temperature=0.6),
    "T1.0 top_p 0.8": dict(temperature=1.0, top_p=0.8),
}
FULL_SAMPLERS = {  # the main job's saved default (random, block 8) and the best setting found for it
    "random b8 T0.8": dict(remasking="random", block_length=8, temperature=0.8),
    "low_confidence b8 T0.8": dict(remasking="low_confidence", block_length=8, temperature=0.8),
    "low_confidence b8 T1.0 top_p 0.8": dict(remasking="low_confidence", block_length=8, temperature=1.0, top_p=0.8),
}
BLOCK_SAMPLERS = {  # block length = the model's block size; one token per step unless a threshold is set
    "low_confidence T0.8": dict(remasking="low_confidence", temperature=0.8),
    "low_confidence T0.6": dict(remasking="low_confidence", temperature=0.6),
    "low_confidence T1.0": dict(remasking="low_confidence", temperature=1.0),
    "low_confidence T0.8 top_p 0.9": dict(remasking="low_confidence", temperature=0.8, top_p=0.9),
    "low_confidence T1.0 top_p 0.8": dict(remasking="low_confidence", temperature=1.0, top_p=0.8),
    "random T0.8": dict(remasking="random", temperature=0.8),
    "random T1.0": dict(remasking="random", temperature=1.0),
    "random T0.8 top_p 0.9": dict(remasking="random", temperature=0.8, top_p=0.9),
    # in order, at temperature 1: the generative model whose exact likelihood is the in-order perplexity
    "left_to_right T1.0": dict(remasking="left_to_right", temperature=1.0),
    "left_to_right T1.0 top_p 0.8": dict(remasking="left_to_right", temperature=1.0, top_p=0.8),
}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/block_quality", help="Where the trained runs go.")
    parser.add_argument("--results_dir", default=str(common.RESULTS))
    parser.add_argument(
        "--setting",
        default="bytes",
        choices=list(SETTINGS),
        help="bytes: byte tokenizer, one mask per sequence, 32 rows (the figures of the README's "
        "block diffusion table); main: the main job's BPE recipe as its YAML has it.",
    )
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS, choices=list(CONTENDERS))
    parser.add_argument(
        "--reuse",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="Evaluate a finished run instead of training that contender.",
    )
    parser.add_argument("--skip_training", action="store_true", help="Evaluate the runs already in --output_dir.")
    parser.add_argument("--budget_steps", type=int, default=1200, help="Steps of the full model (the budget).")
    parser.add_argument("--calibration_steps", type=int, default=6)
    parser.add_argument(
        "--calibration_from",
        nargs="+",
        default=None,
        metavar="JSON",
        help="The calibration of earlier block_quality.json (or --calibration_only) files instead of "
        "measuring it again: with --skip_training the ones that set the saved runs' steps, or "
        "one measured on a quiet machine for runs trained side by side (the first file naming "
        "a contender wins).",
    )
    parser.add_argument(
        "--calibration_only",
        action="store_true",
        help="Only measure the CPU s per step of --contenders (and full) and write calibration.json "
        "into --results_dir.",
    )
    parser.add_argument("--evaluations", type=int, default=6, help="Evaluations (and checkpoints) per run.")
    parser.add_argument("--num_t_samples", type=int, default=16)
    parser.add_argument("--max_eval_blocks", type=int, default=256)
    parser.add_argument("--num_samples", type=int, default=32)
    parser.add_argument("--prompt_bytes", type=int, default=32)
    parser.add_argument("--new_bytes", type=int, default=96)
    parser.add_argument(
        "--perplexity_from",
        nargs="+",
        default=None,
        metavar="JSON",
        help="With --skip_training: the perplexities of earlier block_quality.json files (the bound "
        "is seeded, so scoring the same weights again gives the same figures; the first naming "
        "a contender wins); only the samples and the in-order perplexities are computed.",
    )
    parser.add_argument(
        "--in_order_full",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also the full model's in-order perplexity (one forward per position: 128 per batch).",
    )
    parser.add_argument(
        "--recompute_perplexity",
        nargs="*",
        default=[],
        metavar="NAME",
        help="With --perplexity_from: contenders whose perplexity is computed anyway, as a check "
        "against the reused figure (both are printed and kept in the JSON).",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="The training seed (the YAML's when not given). Runs and results are then named "
        "<contender>-seed<N>, so a second seed of a recipe sits beside the first.",
    )
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------------
# the budget and the training runs


def run_name(name: str, options) -> str:
    """The folder and result name of a contender's run: its name, with `-seed<N>` for a seed given on the command
    line."""
    return name if options.seed is None else f"{name}-seed{options.seed}"


def train_option(name: str, flag: str, default=None):
    """The value the contender's `llada-train` options give `flag` (e.g. "--block_size"), or `default`."""
    argv = CONTENDERS[name]
    return argv[argv.index(flag) + 1] if flag in argv else default


def kind_of(name: str):
    """The contender's kind for the step calibration: "llama", None (full attention) or its block size."""
    if train_option(name, "--model_type") == "autoregressive":
        return "llama"
    block_size = train_option(name, "--block_size")
    return None if block_size is None else int(block_size)


def calibrate(names, repeats: int, setting: str) -> dict:
    """CPU seconds per training step (forward, backward and AdamW step) of each contender at the main job's
    dimensions (alternating, medians). Calibrations before the in-order recipes timed forward and backward only."""
    figures = SETTINGS[setting]
    args = step_bench.parse_args(
        ["--vocab_size", str(figures["vocab_size"]), "--batch_size", str(figures["batch_size"])]
        + (["--complementary_masking"] if figures["complementary"] else [])
    )
    kinds = {name: kind_of(name) for name in set(names) | {"full"}}
    models = {name: step_bench.build(kind, args) for name, kind in kinds.items()}
    batches = {}
    for name, kind in kinds.items():  # the contender's own batch size and masking, if its options change them
        batch_size = int(train_option(name, "--per_device_train_batch_size", args.batch_size))
        complementary = train_option(name, "--complementary_masking", str(args.complementary_masking)).lower()
        shared = train_option(name, "--shared_clean_copy", "true").lower() == "true"
        own = {"batch_size": batch_size, "complementary_masking": complementary == "true"}
        batches[name] = step_bench.make_batch(kind, argparse.Namespace(**{**vars(args), **own}), shared)
    # the optimizer's step too: with small batches it is a visible share of a step (AdamW, as llada-train runs it)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}

    def step(name):
        step_bench.train_step(models[name], batches[name])
        optimizers[name].step()

    times = common.time_alternated(
        {name: lambda name=name: step(name) for name in models}, repeats, warmup=1, clock="cpu"
    )
    return {name: timing.median for name, timing in times.items()}


def train(name: str, steps: int, options) -> dict:
    """Trains one contender with the main job's options and `steps` steps; returns its step count and CPU time."""
    from llada.training.run import parse_training_args, run_training

    eval_steps = max(1, steps // options.evaluations)
    steps = eval_steps * options.evaluations  # the last step is evaluated, so the best checkpoint can be the last
    run_dir = os.path.join(options.output_dir, run_name(name, options))
    argv = [
        *SETTINGS[options.setting]["argv"],
        *CONTENDERS[name],
        "--output_dir",
        run_dir,
        "--max_steps",
        str(steps),
        "--eval_steps",
        str(eval_steps),
        "--report_to",
        "none",
    ]
    if options.seed is not None:
        argv += ["--seed", str(options.seed)]
    start = time.process_time()
    run_training(*parse_training_args(argv))
    record = {"steps": steps, "run_cpu_seconds": time.process_time() - start, "threads": torch.get_num_threads()}
    Path(run_dir, "budget.json").write_text(json.dumps(record, indent=2))
    return record


# ----------------------------------------------------------------------------------------------------------------
# evaluation


def validation_blocks(count: int, tokenizer=None):
    """The first `count` validation blocks of the main job (128 tokens each: bytes, or `tokenizer`'s) as a
    (count, 128) tensor."""
    from llada.training.data import load_raw_datasets, tokenize_and_pack
    from llada.training.run import parse_training_args
    from llada.training.tokenizers import build_tokenizer

    _, data_args, _ = parse_training_args([*FULL, "--output_dir", "unused", "--max_eval_samples", str(count)])
    if tokenizer is None:
        tokenizer = build_tokenizer("bytes", None, None, model_max_length=data_args.max_seq_length)
    validation = tokenize_and_pack(load_raw_datasets(data_args), tokenizer, data_args)["validation"]
    return torch.tensor(validation[:count]["input_ids"])


def shared_tokenizer(run_dirs: dict, setting: str):
    """None for the byte setting; else the tokenizer every contender trained with (the same BPE, learned from the
    same corpus with the same settings), checked, so that every perplexity is per token of one vocabulary."""
    if setting == "bytes":
        return None
    from transformers import AutoTokenizer

    tokenizers = {name: AutoTokenizer.from_pretrained(run_dir) for name, run_dir in run_dirs.items()}
    first, tokenizer = next(iter(tokenizers.items()))
    for name, other in tokenizers.items():
        if other.get_vocab() != tokenizer.get_vocab():
            raise SystemExit(
                f"block_quality: {name}'s tokenizer differs from {first}'s; perplexities per token "
                "would not compare. Train every contender in the same setting."
            )
    return tokenizer


def in_order(model, blocks) -> float:
    """The exact perplexity of a diffusion model decoded in order, on the tokens the AR perplexity scores."""
    from llada.evaluation import in_order_perplexity

    return in_order_perplexity(model, blocks, batch_size=32, show_progress=False)["perplexity"]


def perplexity(model, is_llada: bool, blocks, options) -> float:
    from llada.evaluation import generative_perplexity, perplexity_bound

    if is_llada:
        return perplexity_bound(
            model, blocks, batch_size=32, num_samples=options.num_t_samples, seed=0, show_progress=False
        )["perplexity_bound"]
    return generative_perplexity(model, blocks, batch_size=32)


def sample_figures(model, tokenizer, is_llada, settings, options, vocabulary, heldout) -> dict:
    pairs = quality.prompts_from(heldout, options.num_samples, options.prompt_bytes, options.new_bytes)
    # a whole number of the largest block (16) for every contender: a block model generates whole blocks
    max_new_tokens = quality.new_tokens_for(tokenizer, heldout, options.new_bytes, multiple=16)
    start = time.process_time()
    _, _, new_ids, _ = quality.generate(
        model, tokenizer, is_llada, [p for p, _ in pairs], max_new_tokens, settings, seed=0
    )
    seconds = time.process_time() - start
    texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    return {
        "word_validity": quality.word_validity(texts, vocabulary),
        "distinct_2": quality.distinct_n(texts, 2),
        "sampling_cpu_seconds": seconds,
        "samples": texts,
    }


def evaluate(name, run_dir, options, blocks, vocabulary, heldout, reused_perplexity=None) -> dict:
    model, tokenizer, is_llada = quality.load_model(run_dir)
    block_size = getattr(model.config, "block_size", None)
    if is_llada:
        model.generation_config.use_cache = None  # exact caches only (a block model's), whatever the run saved
        # a sampler's own settings only: a top-k / top-p the run saved (the main job's sample_top_p) would apply to
        # every setting that does not name one
        model.generation_config.top_k = model.generation_config.top_p = None
    if not is_llada:
        samplers = AR_SAMPLERS
    elif block_size is None:
        samplers = FULL_SAMPLERS
    else:
        samplers = {label: dict(settings, block_length=block_size) for label, settings in BLOCK_SAMPLERS.items()}
    if reused_perplexity is None:
        result = {"run_dir": str(run_dir), "perplexity": perplexity(model, is_llada, blocks, options)}
    else:
        result = {"run_dir": str(run_dir), "perplexity": reused_perplexity, "perplexity_reused": True}
        if name in options.recompute_perplexity:
            result["perplexity_recomputed"] = perplexity(model, is_llada, blocks, options)
            print(
                f"  {name}: perplexity reused {reused_perplexity:.6f}, recomputed "
                f"{result['perplexity_recomputed']:.6f}",
                flush=True,
            )
    if is_llada and (block_size is not None or options.in_order_full):
        result["in_order_perplexity"] = in_order(model, blocks)
        print(f"  {name}: in-order perplexity {result['in_order_perplexity']:.3f}", flush=True)
    result["samplers"] = {}
    budget = Path(run_dir, "budget.json")
    if budget.is_file():
        result.update(json.loads(budget.read_text()))
    for label, settings in samplers.items():
        result["samplers"][label] = sample_figures(model, tokenizer, is_llada, settings, options, vocabulary, heldout)
        figures = result["samplers"][label]
        print(
            f"  {name:<8} {label:<32} word validity {figures['word_validity']:.3f}  distinct-2 "
            f"{figures['distinct_2']:.3f}",
            flush=True,
        )
    return result


# ----------------------------------------------------------------------------------------------------------------
# report


def best_sampler(result: dict) -> str:
    """The setting with the best word validity among those whose distinct-2 is at least 0.9 (no repetition loops)."""
    varied = [label for label, figures in result["samplers"].items() if figures["distinct_2"] >= 0.9]
    return max(varied or result["samplers"], key=lambda label: result["samplers"][label]["word_validity"])


def perplexity_note(results: dict, options) -> str:
    """A sentence on reused perplexities, if any, with the recomputed checks."""
    if not options.perplexity_from:
        return ""
    checks = ", ".join(
        f"{name} {result['perplexity']:.4f} -> {result['perplexity_recomputed']:.4f}"
        for name, result in results.items()
        if "perplexity_recomputed" in result
    )
    return (
        f"Perplexities read from {', '.join(options.perplexity_from)} (same weights, seeded bound)"
        f"{'; recomputed as a check: ' + checks if checks else ''}; the samples are drawn again. "
    )


def write_report(results: dict, calibration: dict, reference: dict, options) -> str:
    ar_ppl = next((result["perplexity"] for result in results.values() if result.get("contender", "") == "ar"), None)
    lines = [
        "# Block diffusion vs LLaDA vs autoregressive (main job size, data and CPU budget)",
        "",
        f"Setting: {SETTING_NOTES[options.setting]}",
        "",
        f"Budget: the CPU time of {options.budget_steps} steps of the full model, one thread (steps = budget / the "
        f"contender's CPU s per step, measured alternating in one process"
        f"{'; here read from ' + ', '.join(options.calibration_from) if options.calibration_from else ''}). "
        f"{perplexity_note(results, options)}Validation: {options.max_eval_blocks} "
        f"held-out blocks of 128 {'bytes' if options.setting == 'bytes' else 'tokens'}, {options.num_t_samples} "
        f"`t` draws per block. Samples: {options.num_samples} x ~{options.new_bytes} characters (rounded up to "
        f"whole 16-token blocks) after {options.prompt_bytes}-character held-out prompts, one token per step. Block "
        "models mask exactly k ~ U{1..n} tokens per block (`--masking exact`, the default for block models) unless "
        "marked bernoulli.",
        "",
        "In-order perplexity: the exact likelihood (no bound) of the diffusion model decoded in order, each block "
        "left to right at temperature 1 (the `left_to_right T1.0` sampler), on the tokens the AR perplexity scores "
        "(every token of a validation sequence but its first); `llada.evaluation.in_order_perplexity`.",
        "",
        "| model | steps | CPU s / step | budget CPU s | perplexity (AR) or bound | / AR | in-order perplexity | / AR "
        "| best sampler (distinct-2 >= 0.9) | word validity | distinct-2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        ratio = f"{result['perplexity'] / ar_ppl:.2f}" if ar_ppl else "-"
        label, step_seconds = best_sampler(result), calibration.get(result.get("contender", name), float("nan"))
        figures = result["samplers"][label]
        in_order_ppl = result.get("in_order_perplexity")
        in_order_cells = (f"{in_order_ppl:.3f} | " if in_order_ppl else "- | ") + (
            f"{in_order_ppl / ar_ppl:.2f}" if in_order_ppl and ar_ppl else "-"
        )
        lines.append(
            f"| {name} | {result.get('steps', '-')} | {step_seconds:.3f} | "
            f"{result.get('steps', float('nan')) * step_seconds:.0f} | {result['perplexity']:.3f} | "
            f"{ratio} | {in_order_cells} | {label} | {figures['word_validity']:.3f} | "
            f"{figures['distinct_2']:.3f} |"
        )
    lines.append(
        f"| held-out text | | | | | | | | | {reference['word_validity']:.3f} | {reference['distinct_2']:.3f} |"
    )
    lines += [
        "",
        "Every sampler setting:",
        "",
        "| model | sampler | word validity | distinct-2 | sampling CPU s |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for label, figures in result["samplers"].items():
            lines.append(
                f"| {name} | {label} | {figures['word_validity']:.3f} | {figures['distinct_2']:.3f} | "
                f"{figures['sampling_cpu_seconds']:.1f} |"
            )
    lines.append("")
    for name, result in results.items():
        label = best_sampler(result)
        lines += [f"## {name} ({label}): first samples", ""]
        lines += [f"```\n{text}\n```\n" for text in result["samplers"][label]["samples"][:3]]
    return "\n".join(lines)


def read_earlier(paths, key: str) -> dict:
    """`key` ("calibration" or "results") of earlier block_quality.json files, merged by contender: the first file
    that names a contender gives its entry."""
    merged = {}
    for path in paths:
        for name, value in json.loads(Path(path).read_text())[key].items():
            merged.setdefault(name, value)
    return merged


def main(argv=None) -> int:
    options = parse(argv)
    torch.set_num_threads(options.threads)
    reuse = dict(item.split("=", 1) for item in options.reuse)
    names = [name for name in options.contenders if name not in reuse]
    if options.calibration_from:
        calibration = read_earlier(options.calibration_from, "calibration")
    else:
        calibration = calibrate(options.contenders, options.calibration_steps, options.setting)
    print("CPU s per training step:", json.dumps({k: round(v, 3) for k, v in calibration.items()}), flush=True)
    if options.calibration_only:
        os.makedirs(options.results_dir, exist_ok=True)
        record = {"calibration": calibration, "calibration_steps": options.calibration_steps}
        Path(options.results_dir, "calibration.json").write_text(json.dumps(record, indent=2))
        return 0
    for name in names:
        if options.skip_training:
            continue
        steps = round(options.budget_steps * calibration["full"] / calibration[name])
        print(f"training {name}: {steps} steps", flush=True)
        train(name, steps, options)
    train_text, heldout = quality.corpus_splits()
    vocabulary = set(quality.words_of(train_text))
    run_dirs = {
        name: reuse.get(name, os.path.join(options.output_dir, run_name(name, options))) for name in options.contenders
    }
    blocks = validation_blocks(options.max_eval_blocks, shared_tokenizer(run_dirs, options.setting))
    reused = {}
    if options.perplexity_from:
        reused = {
            name: result["perplexity"] for name, result in read_earlier(options.perplexity_from, "results").items()
        }
    results = {}
    for name in options.contenders:
        key = run_name(name, options)
        results[key] = {
            "contender": name,
            **evaluate(key, run_dirs[name], options, blocks, vocabulary, heldout, reused.get(key)),
        }
        print(f"{key}: perplexity {results[key]['perplexity']:.3f}", flush=True)
    os.makedirs(options.results_dir, exist_ok=True)
    reference = quality.reference_figures(heldout, vocabulary, options)
    report = write_report(results, calibration, reference, options)
    Path(options.results_dir, "block_quality.md").write_text(report)
    Path(options.results_dir, "block_quality.json").write_text(
        json.dumps({"calibration": calibration, "results": results, "reference": reference}, indent=2)
    )
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
