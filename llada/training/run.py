"""The whole training run behind `llada-train`: arguments (dataclasses + YAML), data, tokenizer, model, Trainer.

[`parse_training_args`] turns a command line into `(ModelArguments, DataArguments, LLaDATrainingArguments)` with
`HfArgumentParser`. The defaults are those of the dataclasses, overlaid by the main job's YAML file
(`llada/configs/tinyshakespeare.yaml`, package data, [`MAIN_JOB_CONFIG`]), then by a `--config FILE.yaml` if given,
then by the flags:
so a bare `llada-train` and `LLaDATrainingArguments()` from Python differ by that file and nothing else. YAML keys
are option names or their aliases (`epochs`, `batch_size`, `lr`, `model_dir`). The main job trains the
bidirectional LLaDA; `--config tinyshakespeare-block2` (a packaged config, by name) its block diffusion option.

[`run_training`] then loads the data, builds tokenizer and model, trains, saves and evaluates.

    from llada.training.run import parse_training_args, run_training
    trainer = run_training(*parse_training_args(["--max_steps", "30", "--output_dir", "runs/tiny"]))
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

# The main job: a small bidirectional LLaDA on the bundled TinyShakespeare. Package data, so that an installed
# wheel's bare `llada-train` runs the same job as a checkout's.
MAIN_JOB_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tinyshakespeare.yaml"
# The block diffusion option of the same size and data, as a --config over the main job's options (package data too).
BLOCK_CONFIG = MAIN_JOB_CONFIG.with_name("tinyshakespeare-block2.yaml")
# The main job's LLaDA from random weights, for the same CPU time (the experiments' base recipe).
SCRATCH_CONFIG = MAIN_JOB_CONFIG.with_name("tinyshakespeare-scratch.yaml")


def build_parser():
    """The `HfArgumentParser` of the three argument dataclasses, plus `--config FILE.yaml`."""
    from transformers import HfArgumentParser

    from .data import DataArguments
    from .models import ModelArguments
    from .trainer import LLaDATrainingArguments

    parser = HfArgumentParser(
        (ModelArguments, DataArguments, LLaDATrainingArguments),
        prog="llada-train",
        description="Train a LLaDA model (or its autoregressive baseline) with the Hugging Face Trainer.",
        epilog=f"Defaults: the dataclasses', then {MAIN_JOB_CONFIG.name} (the main job), then --config, then flags.",
        usage="llada-train [--config FILE.yaml] [OPTIONS]   (llada-train --help lists the options)",
    )
    parser.add_argument("--config", default=None, help="YAML file of options (flags given on the command line win).")
    return parser


def parse_training_args(argv: Optional[list] = None):
    """Command line (+ YAML files) -> `(ModelArguments, DataArguments, LLaDATrainingArguments)`; a bad option or value
    exits with a usage error naming it, as argparse does."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    defaults = read_config(MAIN_JOB_CONFIG, parser) if MAIN_JOB_CONFIG.is_file() else {}
    if not defaults:
        logger.warning("The main job's config %s is not there: the dataclass defaults apply.", MAIN_JOB_CONFIG)
    config_path = _peek_config(argv)
    if config_path is not None:
        defaults.update(read_config(_bundled_or_given(config_path), parser))
    parser.set_defaults(**defaults)
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    values = _leave_out_inapplicable(values, parser, argv)
    try:
        model_args, data_args, training_args = parser.parse_dict(values)
    except (ValueError, TypeError) as error:
        parser.error(" ".join(str(error).split()))  # one line
    return model_args, data_args, baseline_rows(model_args, training_args)


def baseline_rows(model_args, training_args):
    """An autoregressive run of options that use complementary masking (each sequence twice per batch, as the main
    job does) trains on twice the batch size instead, so that both models of one set of options process as many
    rows per step; complementary masking itself has no meaning for a causal LM."""
    if model_args.model_type == "autoregressive" and training_args.complementary_masking:
        training_args.complementary_masking = False
        training_args.per_device_train_batch_size *= 2
        logger.info(
            "Autoregressive model: complementary masking off, per_device_train_batch_size doubled to %d "
            "(the rows per step of the masked diffusion run).",
            training_args.per_device_train_batch_size,
        )
    return training_args


# Options of a fresh LLaDA model that a YAML file (the main job's, a --config) may set: an autoregressive run leaves
# them all out, a fine-tuning run (`--init_from`) the autoregressive first stage, unless given on the command line
# (where they are refused for a model they do not apply to).
AUTOREGRESSIVE_INIT_OPTIONS = ("autoregressive_init_steps", "autoregressive_init_learning_rate")
LLADA_ONLY_OPTIONS = (
    "block_size",
    "in_order_probability",
    "in_order_probability_end",
    "eval_in_order",
    "logit_shift",
    "token_reweighting_gamma",
    *AUTOREGRESSIVE_INIT_OPTIONS,
)


def _leave_out_inapplicable(values: dict, parser, argv: list) -> dict:
    """`values` with the YAML-given options that do not apply to the run reset to their dataclass defaults (see
    `LLADA_ONLY_OPTIONS`): so `--config tinyshakespeare-block2 --model_type autoregressive` trains that recipe's
    autoregressive baseline."""
    if values["model_type"] == "llada" and values.get("init_from") is None:
        return values
    names = LLADA_ONLY_OPTIONS if values["model_type"] != "llada" else AUTOREGRESSIVE_INIT_OPTIONS
    given = {arg.split("=")[0].lstrip("-") for arg in argv if arg.startswith("--")}
    defaults = {f.name: f.default for cls in parser.dataclass_types for f in dataclasses.fields(cls)}
    for name in names:
        if name not in given and name in defaults:
            values[name] = defaults[name]
    return values


def read_config(path, parser) -> dict:
    """A YAML file of options as a dict of dataclass field names; unknown options are a usage error."""
    import yaml

    if not Path(path).is_file():
        parser.error(f"--config: file not found: {str(path)!r}")
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        parser.error(f"--config {str(path)!r} is not valid YAML: {problem}{where}.")
    except UnicodeDecodeError as error:
        parser.error(f"--config {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start}).")
    if not isinstance(values, dict):
        parser.error(
            f"--config {str(path)!r}: expected a mapping of option names to values, got {type(values).__name__}."
        )
    fields = [f for dataclass_type in parser.dataclass_types for f in dataclasses.fields(dataclass_type) if f.init]
    names = {alias.lstrip("-"): f.name for f in fields for alias in f.metadata.get("aliases", [])}
    names.update({f.name: f.name for f in fields})
    unknown = sorted(set(values) - set(names))
    if unknown:
        parser.error(f"--config {str(path)!r}: unknown option(s) {unknown}.")
    return {names[key]: value for key, value in values.items()}


def _bundled_or_given(path: str):
    """`--config`'s file: the path given, or, when there is none such and it is a bare name, the packaged
    `llada/configs/NAME.yaml` (`--config tinyshakespeare-block2` works from an installed wheel)."""
    bundled = MAIN_JOB_CONFIG.parent / (path if path.endswith(".yaml") else f"{path}.yaml")
    if not Path(path).exists() and Path(path).name == path and bundled.is_file():
        return bundled
    return path


def _peek_config(argv: list) -> Optional[str]:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default=None)
    known, _ = peek.parse_known_args(argv)
    return known.config


# --------------------------------------------------------------------------------------------------------------


def build_tokenizer_for(model_args, data_args, raw):
    """The tokenizer named by `--tokenizer`, or `--init_from`'s own unless `--tokenizer` names a tokenizer folder or
    Hub id (a fine-tuned model keeps the vocabulary its embeddings were trained for)."""
    from .data import iter_texts
    from .tokenizers import build_tokenizer, load_pretrained_tokenizer

    if model_args.init_from is not None and model_args.tokenizer in ("bytes", "bpe"):
        try:
            return load_pretrained_tokenizer(model_args.init_from)
        except ValueError:
            pass  # a model folder without tokenizer files: build the kind asked for
    texts = iter_texts(raw["train"], data_args, limit=200_000) if model_args.tokenizer == "bpe" else None
    return build_tokenizer(
        model_args.tokenizer,
        texts,
        model_args.vocab_size,
        model_max_length=model_args.max_position_embeddings or data_args.max_seq_length,
    )


def run_training(model_args, data_args, training_args):
    """Loads data, builds tokenizer and model, trains, saves to `output_dir` and evaluates; returns the trainer.

    The run holds `output_dir`'s lock throughout (`output_lock`): a second run pointed at the same folder is refused.
    """
    from .output_lock import output_dir_lock

    with output_dir_lock(training_args):
        if model_args.autoregressive_init_steps:  # this run's folder is held first: a refused run trains nothing
            model_args = train_autoregressive_init(model_args, data_args, training_args)
        return _train(model_args, data_args, training_args)


def autoregressive_init_dir(output_dir: str) -> str:
    """Where `--autoregressive_init_steps` trains the AR model a LLaDA run starts from: beside the run's folder, so
    that the folder a user pushes holds the LLaDA model only."""
    return f"{str(output_dir).rstrip('/')}-ar-init"


def train_autoregressive_init(model_args, data_args, training_args):
    """`--autoregressive_init_steps N`: trains the autoregressive baseline of the same options for N steps (or reuses
    the one an earlier run finished there) and returns the model arguments that start the LLaDA run from it,
    converted with Dream's logit shift (`--init_from` that folder, `--logit_shift`)."""

    from .checkpoints import prepare_output_dir

    if not training_args.resume_from_checkpoint:
        prepare_output_dir(training_args)  # the LLaDA run's folder is refused now, not after stage 1
    steps = model_args.autoregressive_init_steps
    ar_dir = autoregressive_init_dir(training_args.output_dir)
    state = Path(ar_dir) / "trainer_state.json"
    finished = state.is_file() and json.loads(state.read_text()).get("global_step") == steps
    # a resumed run (or one whose stage 2 never started) reuses a finished stage 1; --overwrite_output_dir redoes it
    fresh = training_args.overwrite_output_dir and not training_args.resume_from_checkpoint
    if finished and (Path(ar_dir) / "config.json").is_file() and not fresh:
        logger.warning("Starting from the autoregressive model already trained for %d steps in %s.", steps, ar_dir)
    else:
        logger.warning("Stage 1 of 2: the autoregressive model of the same options, %d steps, in %s.", steps, ar_dir)
        ar_model_args = dataclasses.replace(
            model_args,
            model_type="autoregressive",
            autoregressive_init_steps=None,
            autoregressive_init_learning_rate=None,
            logit_shift=False,
            block_size=None,
            lora_r=None,
        )
        learning_rate = model_args.autoregressive_init_learning_rate or training_args.learning_rate
        ar_training_args = dataclasses.replace(
            training_args,
            output_dir=ar_dir,
            max_steps=steps,
            learning_rate=learning_rate,
            eval_steps=steps,
            save_steps=steps,
            num_sample_generations=0,
            resume_from_checkpoint=None,
            overwrite_output_dir=True,
            push_to_hub=False,
            load_best_model_at_end=False,
            in_order_probability=0.0,
            in_order_probability_end=None,
            eval_in_order=False,
        )
        run_training(ar_model_args, data_args, baseline_rows(ar_model_args, ar_training_args))
        logger.warning(
            "Stage 2 of 2: LLaDA from the autoregressive model (logit shift), %d steps.", training_args.max_steps
        )
    return dataclasses.replace(
        model_args,
        init_from=ar_dir,
        logit_shift=True,
        autoregressive_init_steps=None,
        autoregressive_init_learning_rate=None,
    )


def _train(model_args, data_args, training_args):
    """The run of `run_training`, once the output folder's lock is held."""
    from transformers import set_seed

    from .checkpoints import check_checkpoint_matches_model, prepare_output_dir, remove_earlier_run
    from .data import load_raw_datasets, tokenize_and_pack
    from .lora import MERGED_SUBFOLDER, merge_lora_adapter, wrap_with_lora
    from .models import build_model
    from .runtime import resolve_num_threads
    from .trainer import LLaDATrainer

    threads = resolve_num_threads(training_args.torch_num_threads)
    if threads:
        import torch

        torch.set_num_threads(threads)
        logger.warning(
            "Training with %d torch thread(s) (torch_num_threads=%s).", threads, training_args.torch_num_threads
        )
    set_seed(training_args.seed)
    # Everything that can fail on bad input runs before the trainer writes anything to output_dir.
    checkpoint = prepare_output_dir(training_args)  # writable, not another run's; the checkpoint to resume
    with training_args.main_process_first(desc="loading and tokenising the data"):
        raw = load_raw_datasets(data_args)
        tokenizer = build_tokenizer_for(model_args, data_args, raw)
        processed = tokenize_and_pack(raw, tokenizer, data_args)
    model = build_model(model_args, tokenizer, data_args.max_seq_length)
    check_checkpoint_matches_model(checkpoint, model.config)
    if model_args.lora_r is not None:
        checkpointing = (
            getattr(training_args, "activation_checkpointing", None) or training_args.gradient_checkpointing
        )
        model = wrap_with_lora(model, model_args, activation_checkpointing=bool(checkpointing))
    remove_earlier_run(training_args)  # --overwrite_output_dir: only now that every input is known to be good

    trainer = LLaDATrainer(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed["validation"],
        processing_class=tokenizer,
    )
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # the best model when load_best_model_at_end, with code files and tokenizer
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if training_args.eval_strategy != "no":
        metrics = evaluation_of_saved_model(trainer)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if model_args.merge_lora and trainer.is_world_process_zero():
        merge_lora_adapter(training_args.output_dir, os.path.join(training_args.output_dir, MERGED_SUBFOLDER))
    return trainer


def evaluation_of_saved_model(trainer) -> dict:
    """The evaluation metrics of the model just saved: those logged at its step (the evaluation is seeded, so
    re-running it would give the same numbers), or a fresh evaluation when none was logged there."""
    state = trainer.state
    step = (
        state.best_global_step if trainer.args.load_best_model_at_end and state.best_global_step else state.global_step
    )
    logged = [entry for entry in state.log_history if entry.get("step") == step and "eval_loss" in entry]
    return {k: v for k, v in logged[-1].items() if k != "step"} if logged else trainer.evaluate()


__all__ = [
    "BLOCK_CONFIG",
    "MAIN_JOB_CONFIG",
    "SCRATCH_CONFIG",
    "autoregressive_init_dir",
    "baseline_rows",
    "build_parser",
    "build_tokenizer_for",
    "evaluation_of_saved_model",
    "parse_training_args",
    "read_config",
    "run_training",
    "train_autoregressive_init",
]
