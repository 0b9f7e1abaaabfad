"""A Trainer callback that makes every push of a training run loadable with `trust_remote_code`.

With `push_to_hub=True` the Trainer uploads `output_dir` after each save (`hub_strategy="every_save"`, the
default) but copies only the config, generation config and weights there from the checkpoint, and re-saves the
tokenizer: the model code files are not in `output_dir` before the first `save_model`, so those commits hold a
`config.json` whose `auto_map` points at files the repo does not have. This callback writes the code files into
`output_dir` at the start of every push (`on_push_begin`, which the Trainer calls before it copies and uploads).

It also keeps a `--hub_token` out of the files the Trainer writes: the Trainer pickles its arguments into
`training_args.bin` (in every checkpoint, and uploaded with every push). The token is moved to the `HF_TOKEN`
environment variable of this process, where `huggingface_hub` finds it.
"""

import logging
import os
import shutil
from pathlib import Path

from transformers import TrainerCallback
from transformers.dynamic_module_utils import custom_object_save

logger = logging.getLogger(__name__)


class HubCodeFilesCallback(TrainerCallback):
    r"""
    Puts the model's Hub code files (`configuration_*.py`, `modeling_*.py` and what they import) into `output_dir`
    before each Trainer push, so every pushed revision loads with `AutoModel.from_pretrained(repo,
    trust_remote_code=True)`; keeps `hub_token` out of `training_args.bin`. Does nothing unless `push_to_hub`.
    """

    def on_init_end(self, args, state, control, **kwargs):
        if getattr(args, "push_to_hub", False) and getattr(args, "hub_token", None):
            os.environ["HF_TOKEN"] = args.hub_token  # read by huggingface_hub at every call
            args.hub_token = None
            logger.info(
                "hub_token moved to the HF_TOKEN environment variable, so that it is not pickled into "
                "training_args.bin."
            )

    def on_push_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        written = write_code_files(model, args.output_dir, _latest_checkpoint(args.output_dir, state.global_step))
        if not written:
            logger.warning(
                "No model code files could be written to %s: this push may not load with trust_remote_code.",
                args.output_dir,
            )


def write_code_files(model, folder: str, checkpoint: str = None) -> list:
    """
    Writes the code files of `model`'s class (and its relative imports) into `folder`; returns their names.

    Falls back to copying the `*.py` files of `checkpoint` (which `save_pretrained` wrote) when the class's source
    cannot be found.
    """
    model = getattr(model, "module", model)  # DDP / DataParallel wrappers
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    if getattr(model, "_auto_class", None) is None and not getattr(model.config, "auto_map", None):
        return []  # a model of transformers itself (the autoregressive baseline): no code to ship
    os.makedirs(folder, exist_ok=True)
    try:
        written = custom_object_save(model, folder) or []  # no config: `auto_map` is already in config.json
    except (OSError, TypeError) as error:
        logger.warning("Could not save the code of %s (%s).", type(model).__name__, error)
        written = []
    if not written and checkpoint is not None:
        for path in Path(checkpoint).glob("*.py"):
            shutil.copy(path, Path(folder) / path.name)
            written.append(str(Path(folder) / path.name))
    return sorted(Path(p).name for p in written)


def _latest_checkpoint(output_dir: str, step: int):
    path = Path(output_dir) / f"checkpoint-{step}"
    return str(path) if path.is_dir() else None


__all__ = ["HubCodeFilesCallback", "write_code_files"]
