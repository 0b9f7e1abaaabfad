"""`llada-train`: train a LLaDA model (or its autoregressive baseline) with the Hugging Face Trainer.

With no arguments it trains a small byte-level model on the bundled TinyShakespeare in six to ten minutes on a
2-core CPU. Every `TrainingArguments` flag works (`HfArgumentParser`), options can come from `--config FILE.yaml`
(command-line flags win), and seed-style aliases `--epochs`, `--batch_size`, `--lr` and `--model_dir` are accepted.

    llada-train --output_dir runs/tiny --max_steps 30 --tokenizer bytes --hidden_size 64 --num_hidden_layers 2
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m llada.cli.train --config configs/x.yaml
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

ALIASES = {
    "--epochs": "--num_train_epochs",
    "--batch_size": "--per_device_train_batch_size",
    "--lr": "--learning_rate",
    "--model_dir": "--output_dir",
}

# The defaults of a bare `llada-train`: the TinyShakespeare job (also spelled out in configs/tinyshakespeare.yaml).
MAIN_JOB_DEFAULTS = {
    "output_dir": "runs/llada-tinyshakespeare",
    "max_steps": 1200,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 2e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.1,
    "max_grad_norm": 1.0,
    "logging_steps": 25,
    "eval_strategy": "steps",
    "eval_steps": 200,
    "save_steps": None,  # None: same as --eval_steps (load_best_model_at_end needs them aligned)
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
    "report_to": "tensorboard",
    "dataloader_num_workers": 0,
    "ddp_find_unused_parameters": False,  # every parameter is used in every step
    "max_eval_samples": 128,
    "sample_block_length": 8,
    "sample_remasking": "random",  # ancestral sampling reads better than low-confidence at this model size
    "sample_max_new_tokens": 96,
    "max_seq_length": 128,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 384,
}


def build_parser():
    from transformers import HfArgumentParser

    from llada.training.data import DataArguments
    from llada.training.models import ModelArguments
    from llada.training.trainer import LLaDATrainingArguments

    parser = HfArgumentParser(
        (ModelArguments, DataArguments, LLaDATrainingArguments),
        prog="llada-train",
        description=__doc__.split("\n\n")[0],
        epilog="Aliases: --epochs, --batch_size, --lr, --model_dir. Options may also come from --config FILE.yaml.",
    )
    parser.add_argument("--config", default=None, help="YAML file of options (flags given on the command line win).")
    parser.set_defaults(**MAIN_JOB_DEFAULTS)
    import torch

    parser.set_defaults(dataloader_pin_memory=torch.cuda.is_available())  # pinning only helps host -> GPU copies
    return parser


def parse_args(argv: Optional[list] = None):
    """Command line (+ YAML) -> `(ModelArguments, DataArguments, LLaDATrainingArguments)`."""
    argv = [ALIASES.get(arg.split("=", 1)[0], arg.split("=", 1)[0]) + arg[len(arg.split("=", 1)[0]):]
            for arg in (sys.argv[1:] if argv is None else list(argv))]
    parser = build_parser()
    config_path = _peek_config(argv)
    if config_path is not None:
        parser.set_defaults(**_read_yaml(config_path, parser))
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    if values.get("save_steps") is None:
        values["save_steps"] = values.get("eval_steps") or 500
    if values.get("eval_strategy") in (None, "no") and values.get("load_best_model_at_end"):
        values["load_best_model_at_end"] = False  # nothing to pick the best from without evaluation
    try:
        return parser.parse_dict(values)
    except (ValueError, TypeError) as error:
        parser.error(str(error))


def _peek_config(argv: list) -> Optional[str]:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default=None)
    known, _ = peek.parse_known_args(argv)
    return known.config


def _read_yaml(path: str, parser) -> dict:
    import yaml

    if not Path(path).is_file():
        parser.error(f"--config: file not found: {path!r}")
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        parser.error(f"--config {path!r}: expected a mapping of option names to values, got {type(values).__name__}.")
    values = {ALIASES.get(f"--{k}", f"--{k}")[2:]: v for k, v in values.items()}
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        parser.error(f"--config {path!r}: unknown option(s) {unknown}.")
    return values


# --------------------------------------------------------------------------------------------------------------


def build_tokenizer_for(model_args, data_args, raw):
    """The tokenizer named by `--tokenizer`, or `--init_from`'s own when `--tokenizer` is left at its default."""
    from llada.training.data import iter_texts
    from llada.training.tokenizers import build_tokenizer, load_pretrained_tokenizer

    if model_args.init_from is not None and model_args.tokenizer == "bytes":
        try:
            return load_pretrained_tokenizer(model_args.init_from)
        except ValueError:
            pass  # a model folder without tokenizer files: fall back to bytes
    texts = iter_texts(raw["train"], data_args, limit=200_000) if model_args.tokenizer == "bpe" else None
    return build_tokenizer(model_args.tokenizer, texts, model_args.vocab_size,
                           model_max_length=model_args.max_position_embeddings or data_args.max_seq_length)


def run_training(model_args, data_args, training_args):
    """Loads data, builds tokenizer and model, trains, saves to `output_dir` and evaluates; returns the trainer."""
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from llada.training.data import load_raw_datasets, tokenize_and_pack
    from llada.training.models import build_model
    from llada.training.trainer import LLaDATrainer

    set_seed(training_args.seed)
    # Everything that can fail on bad input runs before the trainer writes anything to output_dir.
    with training_args.main_process_first(desc="loading and tokenising the data"):
        raw = load_raw_datasets(data_args)
        tokenizer = build_tokenizer_for(model_args, data_args, raw)
        processed = tokenize_and_pack(raw, tokenizer, data_args)
    model = build_model(model_args, tokenizer, data_args.max_seq_length)

    trainer = LLaDATrainer(
        model=model, args=training_args, train_dataset=processed["train"], eval_dataset=processed["validation"],
        processing_class=tokenizer,
    )
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint == "last":
        checkpoint = get_last_checkpoint(training_args.output_dir)
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # the best model when load_best_model_at_end, with code files and tokenizer
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if training_args.eval_strategy != "no":
        metrics = _evaluation_of_saved_model(trainer)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return trainer


def _evaluation_of_saved_model(trainer) -> dict:
    """The evaluation metrics of the model just saved: those logged at its step (the evaluation is seeded, so
    re-running it would give the same numbers), or a fresh evaluation when none was logged there."""
    state = trainer.state
    step = state.best_global_step if trainer.args.load_best_model_at_end and state.best_global_step else state.global_step
    logged = [entry for entry in state.log_history if entry.get("step") == step and "eval_loss" in entry]
    return {k: v for k, v in logged[-1].items() if k != "step"} if logged else trainer.evaluate()


def main(argv: Optional[list] = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    model_args, data_args, training_args = parse_args(argv)
    start = time.time()
    try:
        trainer = run_training(model_args, data_args, training_args)
    except ValueError as error:
        print(f"llada-train: error: {error}", file=sys.stderr)
        return 2
    if trainer.is_world_process_zero():
        _print_summary(trainer, time.time() - start)
    return 0


def _print_summary(trainer, seconds: float) -> None:
    out = trainer.args.output_dir
    # the saved model's evaluation (the last log entry holds the training speed, not the evaluation)
    metrics = _evaluation_of_saved_model(trainer) if trainer.args.eval_strategy != "no" else {}
    bound = metrics.get("eval_perplexity_bound") or metrics.get("eval_perplexity")
    print(f"\nTrained in {seconds:.0f} s ({seconds / 60:.1f} min).")
    if bound is not None:
        kind = "perplexity bound" if "eval_perplexity_bound" in metrics else "perplexity"
        print(f"Validation {kind}: {bound:.3f} (loss {metrics.get('eval_loss', float('nan')):.4f} nats/token)")
    print(f"Model + tokenizer: {os.path.abspath(out)}")
    print(f"Loss curve:        {os.path.join(os.path.abspath(out), 'loss_curve.png')}")
    print(f"TensorBoard:       tensorboard --logdir {os.path.join(os.path.abspath(out), 'runs')}")
    print(f"Sample:            llada-generate --model {out} --prompt 'ROMEO:'")


if __name__ == "__main__":
    sys.exit(main())
