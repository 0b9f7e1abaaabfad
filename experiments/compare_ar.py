"""LLaDA vs an autoregressive baseline of the same size, data and tokenizer, at the same wall-clock budget.

Trains `--model_type llada` and `--model_type autoregressive` (LlamaForCausalLM with identical dimensions, tokenizer
and data) with the same `llada-train` options, then on the same validation blocks reports:

- LLaDA's ELBO perplexity bound (16 stratified t per block, fixed seed) vs the baseline's perplexity, and the ratio;
- sample quality of both (`sample_quality.py`): word validity, distinct-2, generative perplexity under the baseline,
  32 samples of ~96 bytes after 32-byte prompts from the held-out text; LLaDA samples with its saved generation
  defaults (what `llada-generate` uses) unless `--remasking` / `--temperature` / `--block_length` are given;
- the validation curve of each model against training time, on one plot.

The budget is the same wall-clock time: before training, one step of each model is timed side by side (the real
Trainer step on real batches, alternating, the median of 6 rounds as benchmarks/common.py times, one thread unless
`--torch_num_threads` says otherwise), and the
LLaDA run gets `max_steps` scaled by the ratio of the two step times (evaluations and saves scaled alike), so that
both runs take the same time on an idle machine. `--equal steps` trains both for the same number of steps instead.

    python experiments/compare_ar.py --output_dir runs/compare      # both models, LLaDA from scratch
    python experiments/compare_ar.py --output_dir runs/compare --tokenizer bpe --vocab_size 4096
    python experiments/compare_ar.py --output_dir runs/compare --llada_dir runs/llada-tinyshakespeare \\
        --ar_dir runs/compare/autoregressive                                     # score two finished runs

It writes `compare.md` (table + samples), `compare.json` and `compare.png` into `--output_dir`, and prints the table.
"""

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

# the scripts of benchmarks/ import each other as siblings (benchmarks/common.py), and so does this experiment
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common
import sample_quality  # noqa: E402


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--output_dir", default="runs/compare")
    parser.add_argument("--llada_dir", default=None, help="A finished llada-train output to reuse (not retrained).")
    parser.add_argument("--ar_dir", default=None, help="A finished autoregressive run to reuse (not retrained).")
    parser.add_argument(
        "--equal",
        choices=["time", "steps"],
        default="time",
        help="Same wall-clock budget (LLaDA's steps scaled by the step-time ratio) or same steps.",
    )
    parser.add_argument("--num_t_samples", type=int, default=16, help="t samples per block for the bound.")
    parser.add_argument("--max_eval_blocks", type=int, default=256, help="Validation blocks to score.")
    parser.add_argument("--num_samples", type=int, default=32, help="Samples per model.")
    parser.add_argument("--prompt_bytes", type=int, default=32, help="Characters of held-out text per prompt.")
    parser.add_argument("--new_bytes", type=int, default=96, help="Characters (about) generated per sample.")
    parser.add_argument("--temperature", type=float, default=None, help="Both models (default: LLaDA's saved; 0.8).")
    parser.add_argument("--block_length", type=int, default=None, help="LLaDA block length (default: saved).")
    parser.add_argument("--remasking", default=None, help="LLaDA remasking strategy (default: saved).")
    return parser.parse_known_args(argv)  # everything else goes to llada-train


# ----------------------------------------------------------------------------------------------------------------
# equal wall-clock budget


def training_args_for(model_type, output_dir, train_argv, extra=()):
    from llada.training.run import parse_training_args

    return parse_training_args([*train_argv, *extra, "--model_type", model_type, "--output_dir", str(output_dir)])


def step_seconds(train_argv, repeats=6) -> dict:
    """Seconds per optimisation step of each model, timed alternately on real batches with the real Trainer."""
    from llada.training.data import load_raw_datasets, tokenize_and_pack
    from llada.training.models import build_model
    from llada.training.run import build_tokenizer_for
    from llada.training.runtime import resolve_num_threads
    from llada.training.trainer import LLaDATrainer

    steps = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in ("llada", "autoregressive"):
            model_args, data_args, args = training_args_for(
                kind,
                scratch,
                train_argv,
                ["--report_to", "none", "--num_sample_generations", "0", "--eval_strategy", "no"],
            )
            threads = resolve_num_threads(args.torch_num_threads)
            if threads:
                torch.set_num_threads(threads)
            raw = load_raw_datasets(data_args)
            tokenizer = build_tokenizer_for(model_args, data_args, raw)
            train = tokenize_and_pack(raw, tokenizer, data_args)["train"]
            model = build_model(model_args, tokenizer, data_args.max_seq_length)
            trainer = LLaDATrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
            trainer.create_optimizer()
            batches = iter(trainer.get_train_dataloader())  # drawn before the timing: the step alone is timed
            prepared = [trainer._prepare_inputs(next(batches)) for _ in range(repeats + 1)]
            steps[kind] = lambda trainer=trainer, prepared=prepared: optimizer_step(trainer, prepared.pop(0))
        times = common.time_alternated(steps, repeats, warmup=1)  # the warm-up round: allocator, kernels
    return {kind: timing.median for kind, timing in times.items()}


def optimizer_step(trainer, batch):
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch).backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()


def equal_time_options(train_argv, seconds: dict) -> list:
    """llada-train options giving the LLaDA run the baseline's wall-clock budget."""
    _, _, args = training_args_for("autoregressive", "unused", train_argv)
    ratio = seconds["autoregressive"] / seconds["llada"]
    options = ["--max_steps", str(max(1, round(args.max_steps * ratio)))]
    if args.eval_steps:
        scaled = max(1, round(args.eval_steps * ratio))
        options += ["--eval_steps", str(scaled), "--save_steps", str(scaled)]
    return options


# ----------------------------------------------------------------------------------------------------------------
# runs


def train(model_type, output_dir, train_argv, extra=()):
    from llada.training.run import run_training

    trainer = run_training(*training_args_for(model_type, output_dir, train_argv, extra))
    return trainer


def finished_run(run_dir) -> dict:
    """Steps, training seconds and the evaluation history of a finished run."""
    state = json.loads((Path(run_dir) / "trainer_state.json").read_text())
    runtime = json.loads((Path(run_dir) / "train_results.json").read_text())["train_runtime"]
    return {"steps": state["global_step"], "train_seconds": runtime, "history": state["log_history"]}


@torch.no_grad()
def validation_figures(llada_dir, ar_dir, train_argv, options) -> dict:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from llada.evaluation import generative_perplexity, in_order_perplexity, perplexity_bound
    from llada.training.data import load_raw_datasets, tokenize_and_pack

    _, data_args, _ = training_args_for("llada", llada_dir, train_argv)
    tokenizer = AutoTokenizer.from_pretrained(llada_dir)
    validation = tokenize_and_pack(load_raw_datasets(data_args), tokenizer, data_args)["validation"]
    count = min(options.max_eval_blocks, len(validation))
    blocks = torch.tensor(validation[:count]["input_ids"])  # (blocks, seq)
    llada = AutoModel.from_pretrained(llada_dir).eval()
    ar = AutoModelForCausalLM.from_pretrained(ar_dir).eval()
    bound = perplexity_bound(llada, blocks, batch_size=32, num_samples=options.num_t_samples, seed=0)
    ar_ppl = generative_perplexity(ar, blocks, batch_size=32)
    figures = {
        "eval_blocks": count,
        "tokens_per_block": blocks.shape[1],
        "llada_perplexity_bound": bound["perplexity_bound"],
        "ar_perplexity": ar_ppl,
        "ratio_bound_over_ar": bound["perplexity_bound"] / ar_ppl,
    }
    if getattr(llada.config, "block_size", None) is not None:  # a block model's exact likelihood, decoded in order,
        in_order = in_order_perplexity(llada, blocks, batch_size=32)["perplexity"]  # on the tokens the AR one scores
        figures.update(llada_in_order_perplexity=in_order, ratio_in_order_over_ar=in_order / ar_ppl)
    return figures


def sample_figures(llada_dir, ar_dir, train_argv, options) -> dict:
    _, data_args, _ = training_args_for("llada", llada_dir, train_argv)
    train_text, heldout = sample_quality.corpus_splits(data_args)
    training = sample_quality.TrainingText(train_text)
    ar_model, ar_tokenizer, _ = sample_quality.load_model(ar_dir)
    settings = argparse.Namespace(
        num_samples=options.num_samples,
        seeds=1,
        prompt_bytes=options.prompt_bytes,
        new_bytes=options.new_bytes,
        steps=None,
        top_k=None,
        top_p=None,
        threshold=None,
        remasking=options.remasking,
        block_length=options.block_length,
        temperature=options.temperature,
    )
    figures = {
        "llada": sample_quality.evaluate_model(llada_dir, settings, training, heldout, (ar_model, ar_tokenizer))
    }
    settings.temperature = 0.8 if options.temperature is None else options.temperature
    figures["autoregressive"] = sample_quality.evaluate_model(
        ar_dir, settings, training, heldout, (ar_model, ar_tokenizer)
    )
    figures["validation text"] = sample_quality.reference_figures(
        heldout, training, settings, (ar_model, ar_tokenizer)
    )
    return figures


def main(argv=None):
    options, train_argv = parse(argv)
    train_argv = [
        "--torch_num_threads",
        "1",  # one thread unless given: figures that hold when shared
        *([] if "--config" in train_argv else ["--config", "tinyshakespeare-scratch"]),
        *train_argv,
    ]
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    llada_dir = Path(options.llada_dir or out / "llada")
    ar_dir = Path(options.ar_dir or out / "autoregressive")
    seconds, llada_extra = None, []
    if options.equal == "time" and not options.llada_dir:
        seconds = step_seconds(train_argv)
        llada_extra = equal_time_options(train_argv, seconds)
        print(
            f"step time: LLaDA {seconds['llada'] * 1e3:.0f} ms, autoregressive "
            f"{seconds['autoregressive'] * 1e3:.0f} ms -> LLaDA runs {' '.join(llada_extra)}",
            flush=True,
        )
    if not options.ar_dir:
        train("autoregressive", ar_dir, train_argv)
    if not options.llada_dir:
        train("llada", llada_dir, train_argv, llada_extra)

    runs = {"llada": finished_run(llada_dir), "autoregressive": finished_run(ar_dir)}
    result = {
        "equal": options.equal,
        "step_seconds": seconds,
        "steps": {k: v["steps"] for k, v in runs.items()},
        "train_seconds": {k: v["train_seconds"] for k, v in runs.items()},
        **validation_figures(llada_dir, ar_dir, train_argv, options),
    }
    samples = sample_figures(llada_dir, ar_dir, train_argv, options)
    result["samples"] = samples
    write_report(result, out, runs)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# report


def write_report(result, out: Path, runs: dict):
    samples = result["samples"]

    def row(name, label, ppl, train):
        s = samples[name]
        gen = f"{s['generative_perplexity']:.2f}" if s.get("generative_perplexity") else "-"
        return f"| {label} | {ppl} | {s['word_validity']:.3f} | {s['distinct_2']:.3f} | {gen} | {train} |"

    steps, secs = result["steps"], result["train_seconds"]
    table = [
        "| model | validation perplexity | word validity | distinct-2 | generative PPL (by AR) | training |",
        "|---|---|---|---|---|---|",
        row(
            "llada",
            "LLaDA (ELBO bound, upper)",
            f"{result['llada_perplexity_bound']:.3f}",
            f"{steps['llada']} steps, {secs['llada']:.0f} s",
        ),
        *(
            [
                f"| LLaDA, in order (exact likelihood of a block model) | {result['llada_in_order_perplexity']:.3f} |"
                " | | | |"
            ]
            if "llada_in_order_perplexity" in result
            else []
        ),
        row(
            "autoregressive",
            "autoregressive (Llama, same size)",
            f"{result['ar_perplexity']:.3f}",
            f"{steps['autoregressive']} steps, {secs['autoregressive']:.0f} s",
        ),
        row("validation text", "held-out text itself", "", ""),
    ]
    budget = (
        "same wall-clock budget (LLaDA's steps scaled by the measured step-time ratio "
        f"{result['step_seconds']['autoregressive'] / result['step_seconds']['llada']:.3f})"
        if result.get("step_seconds")
        else f"{result['equal']}: as trained"
    )
    summary = (
        f"{budget}; {result['eval_blocks']} validation blocks of {result['tokens_per_block']} tokens; "
        f"bound / AR perplexity = {result['ratio_bound_over_ar']:.3f}"
        + (f"; in order / AR = {result['ratio_in_order_over_ar']:.3f}" if "ratio_in_order_over_ar" in result else "")
        + "."
    )
    settings = json.dumps({k: v for k, v in samples["llada"]["settings"].items() if v is not None})
    lines = [
        "# LLaDA vs autoregressive baseline",
        "",
        summary,
        "",
        *table,
        "",
        f"LLaDA sampler: {settings}; autoregressive: temperature "
        f"{samples['autoregressive']['settings']['temperature']}.",
        "",
    ]
    for name in ("llada", "autoregressive"):
        lines += [f"## Samples: {name}", ""]
        lines += [f"```\n{p}|{t}\n```\n" for p, t in zip(samples[name]["prompts"][:3], samples[name]["samples"][:3])]
    (out / "compare.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "compare.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(result, out, runs)
    print("\n".join([summary, "", *table]))
    print(f"\nReport: {out / 'compare.md'}, plot: {out / 'compare.png'}")


def plot(result, out: Path, runs: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for name, label, color in (
        ("llada", "LLaDA (ELBO bound)", "tab:red"),
        ("autoregressive", "autoregressive (perplexity)", "tab:blue"),
    ):
        run = runs[name]
        per_step = run["train_seconds"] / max(run["steps"], 1)  # evaluations included, as the user waits for them
        evals = [(e["step"] * per_step / 60, math.exp(e["eval_loss"])) for e in run["history"] if "eval_loss" in e]
        if evals:
            axis.plot(*zip(*evals), "o-", color=color, label=label)
    axis.set_xlabel("training time (min)")
    axis.set_ylabel("validation perplexity")
    axis.set_yscale("log")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    axis.set_title(f"bound / AR perplexity = {result['ratio_bound_over_ar']:.2f}")
    figure.tight_layout()
    figure.savefig(out / "compare.png", dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
