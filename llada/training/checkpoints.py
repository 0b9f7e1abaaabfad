"""Output folders and checkpoints that survive real failures.

- `prepare_output_dir`: before anything is written, the output folder must be writable and must not hold an
  earlier run that this one would mix with (refused unless `--resume_from_checkpoint` or `--overwrite_output_dir`).
- `resolve_resume_checkpoint`: `--resume_from_checkpoint last` picks the newest *complete* checkpoint (a
  checkpoint killed while being written is skipped, and removed), says which, and says so when there is none; a
  checkpoint past `--max_steps` or of another architecture is refused as belonging to a different run.
- `removing_partial_checkpoint` / `staged_folder`: a save that fails (disk full, quota, I/O error) leaves no
  half-written checkpoint or model file behind and ends in one `CheckpointWriteError` line.

The Trainer writes `trainer_state.json` last in every checkpoint (after weights, optimizer, scheduler and RNG
states), so a checkpoint is complete when that file parses and names the checkpoint's own step.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
# Settings that make a checkpoint another model: resuming it into this run's model cannot be right.
ARCHITECTURE_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "attention_type",
    "kv_latent_dim",
)
_STAGING_PREFIX = ".saving-"


class CheckpointWriteError(OSError):
    """Saving failed part-way (disk full, quota, I/O error); the partial files were removed."""


# ----------------------------------------------------------------------------------------------------------------
# what a folder holds


def checkpoint_step(path) -> Optional[int]:
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir) -> List[Path]:
    """`checkpoint-N` folders of `output_dir`, oldest step first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(found, key=checkpoint_step)


def is_complete_checkpoint(path) -> bool:
    """True when `path` holds a finished Trainer checkpoint: weights and a `trainer_state.json` (written last)
    that parses and names the folder's own step."""
    path = Path(path)
    try:
        state = json.loads((path / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    step = checkpoint_step(path)
    if step is not None and state.get("global_step") != step:
        return False
    try:
        has_weights = any((path / name).is_file() for name in WEIGHT_FILES) or any(
            child.is_dir() and child.name.startswith("pytorch_model_fsdp") for child in path.iterdir()
        )
    except OSError:  # removed meanwhile (by the main process, as a partial checkpoint)
        return False
    return has_weights and _index_shards_exist(path)


def _index_shards_exist(path: Path) -> bool:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError):
                return False
            return all((path / shard).is_file() for shard in shards)
    return True


def newest_complete_checkpoint(output_dir) -> Optional[Path]:
    for path in reversed(list_checkpoints(output_dir)):
        if is_complete_checkpoint(path):
            return path
    return None


def holds_a_run(output_dir) -> bool:
    """Whether `output_dir` holds an earlier training run (checkpoints or a final trainer state)."""
    return bool(list_checkpoints(output_dir)) or (Path(output_dir) / TRAINER_STATE_NAME).is_file()


# ----------------------------------------------------------------------------------------------------------------
# before training


def check_writable(output_dir) -> None:
    """Raises an `OSError` naming `--output_dir` when it cannot be created or written; creates nothing."""
    folder = Path(output_dir).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"--output_dir {str(output_dir)!r}: {str(existing)!r} is a file, not a folder.")
    try:
        probe = tempfile.mkdtemp(prefix=".llada-write-probe-", dir=existing)
    except OSError as error:
        raise type(error)(
            f"--output_dir {str(output_dir)!r} is not writable: {error.strerror or error} in {str(existing)!r}."
        ) from None
    os.rmdir(probe)


def prepare_output_dir(training_args) -> Optional[str]:
    """Refuses an output folder that is not writable or that holds another run this one would mix with (unless
    resuming, or with `--overwrite_output_dir`: then `remove_earlier_run` clears it once the inputs are checked).

    Returns: the checkpoint to resume from (`resolve_resume_checkpoint`), or None.
    """
    output_dir = training_args.output_dir
    check_writable(output_dir)
    if training_args.resume_from_checkpoint:
        return resolve_resume_checkpoint(training_args)
    if getattr(training_args, "overwrite_output_dir", False) or not holds_a_run(output_dir):
        return None
    found = [path.name for path in list_checkpoints(output_dir)] or [TRAINER_STATE_NAME]
    raise ValueError(
        f"--output_dir {output_dir!r} already holds a training run ({', '.join(found[-3:])}). Pass "
        f"--resume_from_checkpoint last to continue it, --overwrite_output_dir to start over (its checkpoints "
        f"are deleted), or another --output_dir."
    )


def remove_earlier_run(training_args) -> None:
    """With `--overwrite_output_dir` (and no resume), deletes the earlier run's checkpoints and trainer state on the
    main process, so that a later `--resume_from_checkpoint last` can only find this run's."""
    output_dir = training_args.output_dir
    if (
        not getattr(training_args, "overwrite_output_dir", False)
        or training_args.resume_from_checkpoint
        or training_args.process_index != 0
        or not holds_a_run(output_dir)
    ):
        return
    for path in list_checkpoints(output_dir):
        shutil.rmtree(path)
    (Path(output_dir) / TRAINER_STATE_NAME).unlink(missing_ok=True)
    logger.warning("--overwrite_output_dir: deleted the earlier run's checkpoints in %s.", output_dir)


def resolve_resume_checkpoint(training_args) -> Optional[str]:
    """The checkpoint to resume from, or None to start from scratch (see the module docstring)."""
    requested = training_args.resume_from_checkpoint
    if not requested:
        return None
    output_dir = training_args.output_dir
    if requested == "last":
        checkpoint = _newest_dropping_partial(output_dir, training_args.process_index == 0)
        if checkpoint is None:
            logger.warning(
                "--resume_from_checkpoint last: no complete checkpoint in %s; starting from scratch.", output_dir
            )
            return None
    else:
        checkpoint = Path(requested)
        if not checkpoint.is_dir():
            raise ValueError(f"--resume_from_checkpoint {requested!r}: no such folder.")
        if not is_complete_checkpoint(checkpoint):
            newest = newest_complete_checkpoint(checkpoint.parent)
            raise ValueError(
                f"--resume_from_checkpoint {requested!r} is not a complete checkpoint (no valid {TRAINER_STATE_NAME}"
                f", written last: the save was interrupted)"
                + (f"; the newest complete one is {str(newest)!r}." if newest else ".")
            )
    step = checkpoint_step(checkpoint)
    max_steps = training_args.max_steps
    if step is not None and max_steps is not None and 0 < max_steps < step:
        raise ValueError(
            f"--resume_from_checkpoint: {str(checkpoint)!r} is at step {step}, past --max_steps {max_steps}: it holds "
            f"a different, longer run. Use another --output_dir, or --overwrite_output_dir to start over."
        )
    logger.warning("Resuming from %s (step %s).", checkpoint, step)
    return str(checkpoint)


def _newest_dropping_partial(output_dir, is_main_process: bool) -> Optional[Path]:
    """The newest complete checkpoint; newer half-written ones are removed (they would confuse the Trainer's
    rotation and any later resume)."""
    newest = None
    for path in reversed(list_checkpoints(output_dir)):
        if is_complete_checkpoint(path):
            newest = path
            break
        logger.warning("Skipping %s: it is incomplete (the save was interrupted); removing it.", path)
        if is_main_process:
            shutil.rmtree(path, ignore_errors=True)
    return newest


def check_checkpoint_matches_model(checkpoint: Optional[str], model_config) -> None:
    """Refuses to resume a checkpoint of another architecture (it would fail deep in weight loading)."""
    if checkpoint is None:
        return
    try:
        saved = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not every checkpoint has a config (e.g. adapters); the Trainer will judge
    ours = model_config.to_dict()
    different = [
        f"{key} {saved[key]!r} vs {ours.get(key)!r}"
        for key in ARCHITECTURE_KEYS
        if key in saved and saved[key] != ours.get(key)
    ]
    if different:
        raise ValueError(
            f"--resume_from_checkpoint: {checkpoint!r} is another model than this run's ({'; '.join(different)} "
            f"given now). Use another --output_dir, or --overwrite_output_dir to start over."
        )


def check_max_steps(training_args) -> None:
    if training_args.max_steps == 0:
        raise ValueError(
            "`--max_steps` must be a positive number of optimiser steps, or -1 to train for "
            "`--num_train_epochs`; got 0."
        )


# ----------------------------------------------------------------------------------------------------------------
# while saving


@contextmanager
def removing_partial_checkpoint(folder, is_main_process: bool = True):
    """Runs a checkpoint save; if it fails, the half-written `folder` is deleted and a `CheckpointWriteError`
    (an `OSError`) says so in one line."""
    existed = os.path.exists(folder)
    try:
        yield
    except Exception as error:
        if is_main_process and not existed:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, OSError) or _is_write_failure(error):
            raise CheckpointWriteError(
                f"Saving the checkpoint {str(folder)!r} failed ({_short(error)}); the partial checkpoint was removed. "
                f"Free some space, then continue with --resume_from_checkpoint last."
            ) from error
        raise


@contextmanager
def staged_folder(output_dir):
    """Yields a staging folder inside `output_dir`; once the body has written everything there, each file is moved
    into `output_dir` (an atomic rename per file). On failure the staging folder is removed and nothing half-written
    is left in `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob(f"{_STAGING_PREFIX}*"):  # left by a process killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=output_dir))
    try:
        yield str(staging)
        for item in staging.iterdir():
            target = output_dir / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    except Exception as error:
        if isinstance(error, OSError) or _is_write_failure(error):
            raise CheckpointWriteError(
                f"Saving into {str(output_dir)!r} failed ({_short(error)}); nothing half-written was left there."
            ) from error
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_write_failure(error: BaseException) -> bool:
    """torch.save reports a failed write (disk full) as a RuntimeError from its zip writer, safetensors as a
    SafetensorError 'Error while serializing: I/O error'."""
    text = str(error)
    if type(error).__name__ == "SafetensorError":
        return "I/O error" in text
    return isinstance(error, RuntimeError) and (
        "inline_container" in text or "file write failed" in text or "PytorchStreamWriter" in text
    )


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] + ("..." if len(text) > 200 else "")


__all__ = [
    "CheckpointWriteError",
    "check_checkpoint_matches_model",
    "check_max_steps",
    "check_writable",
    "holds_a_run",
    "is_complete_checkpoint",
    "list_checkpoints",
    "newest_complete_checkpoint",
    "prepare_output_dir",
    "remove_earlier_run",
    "removing_partial_checkpoint",
    "resolve_resume_checkpoint",
    "staged_folder",
]
