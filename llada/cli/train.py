"""`llada-train`: train a LLaDA model (or its autoregressive baseline) with the Hugging Face Trainer.

With no arguments it runs the main job (`llada/configs/tinyshakespeare.yaml`): a small bidirectional LLaDA on the
bundled TinyShakespeare in about eight CPU-minutes (`--config tinyshakespeare-block2`: the block diffusion option of
the same size; `--model_type autoregressive`: the Llama baseline). Every `TrainingArguments` flag works
(`HfArgumentParser`),
options can come from `--config FILE.yaml` (command-line flags win), and `--epochs`, `--batch_size`, `--lr` and
`--model_dir` are aliases. The run itself is `llada.training.run`.

    llada-train --output_dir runs/tiny --max_steps 30 --tokenizer bytes --hidden_size 64 --num_hidden_layers 2
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m llada.cli.train --config configs/x.yaml
"""

import json
import logging
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

from llada.cli.common import run_main
from llada.training.lora import MERGED_SUBFOLDER
from llada.training.run import evaluation_of_saved_model, parse_training_args, run_training


def main(argv: Optional[list] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2, a failed write in exit status 1
    (see `llada.cli.common`)."""
    return run_main("llada-train", _main, argv)


def _main(argv: Optional[list] = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, training_args = parse_training_args(argv)
    start = time.time()
    trainer = run_training(model_args, data_args, training_args)
    if trainer.is_world_process_zero():
        _print_summary(trainer, time.time() - start)
        if model_args.model_type == "llada" and model_args.init_from is None:
            _print_baseline(model_args, training_args, argv, metrics=evaluation_of_saved_model(trainer))
    return 0


def _print_summary(trainer, seconds: float) -> None:
    out = trainer.args.output_dir
    # the saved model's evaluation (the last log entry holds the training speed, not the evaluation)
    metrics = evaluation_of_saved_model(trainer) if trainer.args.eval_strategy != "no" else {}
    bound = metrics.get("eval_perplexity_bound") or metrics.get("eval_perplexity")
    print(f"\nTrained in {seconds:.0f} s ({seconds / 60:.1f} min).")
    if bound is not None:
        kind = "perplexity bound" if "eval_perplexity_bound" in metrics else "perplexity"
        print(f"Validation {kind}: {bound:.3f} (loss {metrics.get('eval_loss', float('nan')):.4f} nats/token)")
    if "eval_in_order_perplexity" in metrics:  # a block model's exact likelihood, decoded in order (--eval_in_order)
        print(f"In-order perplexity:        {metrics['eval_in_order_perplexity']:.3f} (exact, decoding in order)")
    if hasattr(trainer.model, "get_nb_trainable_parameters"):  # a LoRA run: the output folder holds the adapter
        trainable, total = trainer.model.get_nb_trainable_parameters()
        print(f"LoRA adapter:      {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f} %)")
        if os.path.isdir(os.path.join(out, MERGED_SUBFOLDER)):
            print(f"Merged model:      {os.path.join(os.path.abspath(out), MERGED_SUBFOLDER)}")
    print(f"Model + tokenizer: {os.path.abspath(out)}")
    print(f"Loss curve:        {os.path.join(os.path.abspath(out), 'loss_curve.png')}")
    print(f"TensorBoard:       tensorboard --logdir {os.path.join(os.path.abspath(out), 'runs')}")
    print(f"Sample:            llada-generate --model {out} --prompt 'ROMEO:'")


def autoregressive_baseline_dir(output_dir: str) -> str:
    """Where the autoregressive baseline of a LLaDA run goes: `runs/llada-x` -> `runs/autoregressive-x`."""
    path = Path(output_dir)
    name = path.name[len("llada-") :] if path.name.startswith("llada-") else path.name
    return str(path.with_name(f"autoregressive-{name}"))


def _print_baseline(model_args, training_args, argv: list, metrics: dict) -> None:
    """The command that trains the autoregressive baseline of this run (same options, same data and tokenizer), and,
    once that run exists, its best validation perplexity beside this model's bound. After an autoregressive first
    stage (`--autoregressive_init_steps`) the baseline is that stage trained on for the LLaDA stage's steps too."""
    ar_dir = autoregressive_baseline_dir(training_args.output_dir)
    dropped = ["--output_dir", "--model_dir"]
    extra = []
    if model_args.autoregressive_init_steps:
        dropped += ["--max_steps", "--learning_rate", "--lr"]
        extra = [
            "--max_steps",
            str(model_args.autoregressive_init_steps + training_args.max_steps),
            "--learning_rate",
            str(model_args.autoregressive_init_learning_rate or training_args.learning_rate),
        ]
    kept = [arg for arg in _without_option(argv, *dropped) if arg != "--overwrite_output_dir"]
    command = shlex.join(["llada-train", *kept, "--model_type", "autoregressive", *extra, "--output_dir", ar_dir])
    state_file = Path(ar_dir) / "trainer_state.json"
    history = json.loads(state_file.read_text()).get("log_history", []) if state_file.is_file() else []
    losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    bound = metrics.get("eval_perplexity_bound")
    if not losses or bound is None:
        print(f"AR baseline:       {command}")
        return
    ar_perplexity = math.exp(min(losses))
    print(
        f"AR baseline:       perplexity {ar_perplexity:.3f} ({ar_dir}, its best checkpoint); this model's bound is "
        f"{bound / ar_perplexity:.2f}x it"
    )


def _without_option(argv: list, *names: str) -> list:
    """`argv` without the options `names` and their values (`--name value` or `--name=value`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in names)):
            kept.append(arg)
    return kept


if __name__ == "__main__":
    sys.exit(main())
