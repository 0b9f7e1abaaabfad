"""LLaDA vs an autoregressive baseline of the same size, trained on the same data for the same steps.

Trains `--model_type llada` and `--model_type autoregressive` (LlamaForCausalLM with identical dimensions, tokenizer
and data) with the same `llada-train` options, then on the same validation blocks reports:

- LLaDA's ELBO perplexity bound (many stratified t samples, fixed seed) vs the baseline's perplexity;
- samples from both, continuing the same prompts;
- the generative perplexity of each model's samples scored by the baseline (real text as a reference).

It writes `compare.md` (table + samples), `compare.json` and `compare.png` into `--output_dir`, and prints the table.

    python benchmarks/compare_ar.py --output_dir runs/compare                    # TinyShakespeare job, both models
    python benchmarks/compare_ar.py --output_dir runs/compare --llada_dir runs/llada-tinyshakespeare
        # reuse a finished `llada-train` run (same options!) and train only the baseline; `--ar_dir` likewise
        # reuses a finished `llada-train --model_type autoregressive` run
"""

import argparse
import json
import math
import os
import sys
import time

import torch


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--output_dir", default="runs/compare")
    parser.add_argument("--llada_dir", default=None, help="A finished llada-train output to reuse (not retrained).")
    parser.add_argument("--ar_dir", default=None, help="A finished autoregressive run to reuse (not retrained).")
    parser.add_argument("--num_t_samples", type=int, default=16, help="t samples per sequence for the bound.")
    parser.add_argument("--max_eval_blocks", type=int, default=256, help="Validation blocks to score.")
    parser.add_argument("--num_samples", type=int, default=8, help="Samples per model for generative perplexity.")
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--block_length", type=int, default=8, help="LLaDA semi-autoregressive block length.")
    parser.add_argument("--remasking", default="random", help="LLaDA remasking strategy for the samples.")
    return parser.parse_known_args(argv)  # everything else goes to llada-train


def train(model_type, output_dir, train_argv):
    from llada.training.run import parse_training_args, run_training

    model_args, data_args, training_args = parse_training_args(
        [*train_argv, "--model_type", model_type, "--output_dir", output_dir])
    start = time.time()
    trainer = run_training(model_args, data_args, training_args)
    return trainer, time.time() - start


def load_run(run_dir, model_class, train_argv, with_validation=True):
    """The pieces of a finished run: model, tokenizer, validation blocks, log history, training seconds."""
    from transformers import AutoTokenizer

    from llada.training.data import load_raw_datasets, tokenize_and_pack
    from llada.training.run import parse_training_args

    _, data_args, _ = parse_training_args([*train_argv, "--output_dir", run_dir])
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    validation = None
    if with_validation:  # the baseline's run needs none: both are scored on the LLaDA run's blocks
        validation = tokenize_and_pack(load_raw_datasets(data_args), tokenizer, data_args)["validation"]
    with open(os.path.join(run_dir, "trainer_state.json")) as handle:
        state = json.load(handle)
    history, steps = state["log_history"], state["global_step"]
    with open(os.path.join(run_dir, "train_results.json")) as handle:
        runtime = json.load(handle)["train_runtime"]
    return model_class.from_pretrained(run_dir).eval(), tokenizer, validation, history, runtime, steps


@torch.no_grad()
def samples(model, prompts, options, is_llada):
    seed = 0
    if is_llada:
        return model.diffusion_generate(input_ids=prompts, max_new_tokens=options.max_new_tokens,
                                        steps=options.max_new_tokens, block_length=options.block_length,
                                        remasking=options.remasking, temperature=options.temperature, seed=seed)
    torch.manual_seed(seed)
    return model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                          temperature=options.temperature, top_k=None, top_p=None,
                          max_new_tokens=options.max_new_tokens, min_new_tokens=options.max_new_tokens)


def main(argv=None):
    from llada.evaluation import generative_perplexity, perplexity_bound

    from transformers import LlamaForCausalLM

    from llada import LLaDAForMaskedDiffusion

    options, train_argv = parse(argv)
    os.makedirs(options.output_dir, exist_ok=True)
    if options.llada_dir:
        llada, tokenizer, validation, llada_history, llada_time, steps = load_run(
            options.llada_dir, LLaDAForMaskedDiffusion, train_argv)
    else:
        trainer, llada_time = train("llada", os.path.join(options.output_dir, "llada"), train_argv)
        llada, tokenizer, validation = trainer.model.eval(), trainer.processing_class, trainer.eval_dataset
        llada_history, steps = trainer.state.log_history, trainer.state.global_step
    if options.ar_dir:
        ar, _, _, ar_history, ar_time, ar_steps = load_run(options.ar_dir, LlamaForCausalLM, train_argv,
                                                             with_validation=False)
    else:
        ar_trainer, ar_time = train("autoregressive", os.path.join(options.output_dir, "autoregressive"),
                                    train_argv)
        ar, ar_history, ar_steps = ar_trainer.model.eval(), ar_trainer.state.log_history, ar_trainer.state.global_step
    if ar_steps != steps:
        raise SystemExit(f"compare_ar: the runs trained for different numbers of steps ({steps} vs {ar_steps}).")

    count = min(options.max_eval_blocks, len(validation))
    blocks = torch.tensor(validation[:count]["input_ids"])  # (blocks, seq)
    bound = perplexity_bound(llada, blocks, batch_size=32, num_samples=options.num_t_samples, seed=0)
    ar_ppl = generative_perplexity(ar, blocks, batch_size=32)

    prompts = blocks[: options.num_samples, : options.prompt_length]  # (samples, prompt)
    llada_out = samples(llada, prompts, options, is_llada=True)
    ar_out = samples(ar, prompts, options, is_llada=False)
    real = blocks[: options.num_samples, : options.prompt_length + options.max_new_tokens]
    gen_ppl = {name: generative_perplexity(ar, seqs, prompt_length=options.prompt_length)
               for name, seqs in (("llada", llada_out), ("autoregressive", ar_out), ("validation text", real))}

    result = {
        "steps": steps,
        "tokens_per_block": blocks.shape[1],
        "eval_blocks": count,
        "llada_perplexity_bound": bound["perplexity_bound"],
        "ar_perplexity": ar_ppl,
        "ratio_bound_over_ar": bound["perplexity_bound"] / ar_ppl,
        "generative_perplexity_by_ar": gen_ppl,
        "train_seconds": {"llada": llada_time, "autoregressive": ar_time},
        "samples": {"llada": tokenizer.batch_decode(llada_out, skip_special_tokens=True),
                    "autoregressive": tokenizer.batch_decode(ar_out, skip_special_tokens=True)},
    }
    write_report(result, options.output_dir, llada_history, ar_history)
    return 0


def write_report(result, output_dir, llada_history, ar_history):
    table = [
        "| model | validation perplexity | generative perplexity of its samples (scored by AR) | train time |",
        "|---|---|---|---|",
        f"| LLaDA (ELBO bound, upper) | {result['llada_perplexity_bound']:.3f} | "
        f"{result['generative_perplexity_by_ar']['llada']:.3f} | {result['train_seconds']['llada']:.0f} s |",
        f"| autoregressive (Llama, same size) | {result['ar_perplexity']:.3f} | "
        f"{result['generative_perplexity_by_ar']['autoregressive']:.3f} | "
        f"{result['train_seconds']['autoregressive']:.0f} s |",
        f"| validation text itself | | {result['generative_perplexity_by_ar']['validation text']:.3f} | |",
    ]
    summary = (f"{result['steps']} steps each; {result['eval_blocks']} validation blocks of "
               f"{result['tokens_per_block']} tokens; bound / AR perplexity = {result['ratio_bound_over_ar']:.3f}.")
    lines = ["# LLaDA vs autoregressive baseline", "", summary, "", *table, ""]
    for name in ("llada", "autoregressive"):
        lines += [f"## Samples: {name}", ""]
        lines += [f"```\n{text}\n```\n" for text in result["samples"][name][:3]]
    with open(os.path.join(output_dir, "compare.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    with open(os.path.join(output_dir, "compare.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    plot(result, output_dir, llada_history, ar_history)
    print("\n".join([summary, "", *table]))
    print(f"\nReport: {os.path.join(output_dir, 'compare.md')}, plot: {os.path.join(output_dir, 'compare.png')}")


def plot(result, output_dir, llada_history, ar_history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, history, color in (("LLaDA", llada_history, "tab:red"), ("autoregressive", ar_history, "tab:blue")):
        evals = [(e["step"], math.exp(e["eval_loss"])) for e in history if "eval_loss" in e]
        if evals:
            curves.plot(*zip(*evals), "o-", color=color, label=f"{name} (eval)")
    curves.set_xlabel("step")
    curves.set_ylabel("validation perplexity (LLaDA: ELBO bound)")
    curves.set_yscale("log")
    curves.grid(alpha=0.3)
    curves.legend()
    names = ["LLaDA bound", "AR perplexity", "LLaDA samples\n(gen. ppl)", "AR samples\n(gen. ppl)"]
    values = [result["llada_perplexity_bound"], result["ar_perplexity"],
              result["generative_perplexity_by_ar"]["llada"], result["generative_perplexity_by_ar"]["autoregressive"]]
    bars.bar(names, values, color=["tab:red", "tab:blue", "salmon", "lightblue"])
    for i, value in enumerate(values):
        bars.text(i, value, f"{value:.2f}", ha="center", va="bottom")
    bars.set_title(f"{result['steps']} steps, same size and data")
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "compare.png"), dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
