"""Reasoning and planning tasks with checkable answers: star-graph path-finding, Countdown, Sudoku.

Each task makes seeded puzzles as `{"prompt", "response"}` rows (the SFT format of `llada-train --sft`) and checks an
answer by verifying it, not by comparing strings. [`write_task_data`] writes a train and a held-out split whose
prompts never overlap:

    from llada.tasks import write_task_data
    write_task_data("stargraph", "data/stargraph", num_train=20000, num_test=500, seed=0)
    # data/stargraph/train.jsonl, test.jsonl, task.json
"""

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import countdown, stargraph, sudoku


@dataclass(frozen=True)
class Task:
    """A puzzle family: how to make one puzzle, and how to check an answer to it."""

    name: str
    make_puzzle: Callable  # (random.Random, **options) -> {"prompt", "response"}
    check: Callable  # (prompt, answer) -> bool
    solve: Callable  # prompt -> an answer or None (a reference solver)
    options: dict = field(default_factory=dict)

    def puzzle(self, rng: random.Random, **options) -> dict:
        return self.make_puzzle(rng, **{**self.options, **options})


TASKS = {
    "stargraph": Task(
        "stargraph", stargraph.make_puzzle, stargraph.check, stargraph.solve, {"degree": 3, "path_length": 5}
    ),
    "countdown3": Task(
        "countdown3", countdown.make_puzzle, countdown.check, countdown.solve, {"num_numbers": 3, "width": 2}
    ),
    "countdown4": Task(
        "countdown4", countdown.make_puzzle, countdown.check, countdown.solve, {"num_numbers": 4, "width": 2}
    ),
    "sudoku": Task("sudoku", sudoku.make_puzzle, sudoku.check, sudoku.solve, {"min_givens": 30}),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; expected one of {sorted(TASKS)}.")
    return TASKS[name]


def make_splits(task: str, num_train: int, num_test: int, seed: int = 0, **options) -> tuple:
    """`(train_rows, test_rows)`: `num_test` distinct held-out puzzles, then `num_train` training puzzles none of
    whose prompts is held out (training puzzles may repeat among themselves, as a data set drawn at random may)."""
    spec = get_task(task)
    for name, value in (("num_train", num_train), ("num_test", num_test)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    # a bar on a terminal only (tqdm's `disable=None`): Sudoku's 50,000 puzzles take minutes
    progress = tqdm(total=num_test + num_train, desc=f"{task} puzzles", unit=" puzzles", disable=None, leave=False)
    test, held_out = [], set()
    for _ in range(100 * num_test + 100):
        if len(test) == num_test:
            break
        row = spec.puzzle(rng, **options)
        if row["prompt"] not in held_out:
            held_out.add(row["prompt"])
            test.append(row)
            progress.update()
    if len(test) < num_test:
        raise ValueError(
            f"{task}: only {len(test)} distinct puzzles could be made with options {options}; asked for "
            f"{num_test} held-out ones."
        )
    train = []
    for _ in range(100 * num_train + 100):
        if len(train) == num_train:
            break
        row = spec.puzzle(rng, **options)
        if row["prompt"] not in held_out:
            train.append(row)
            progress.update()
    progress.close()
    if len(train) < num_train:
        raise ValueError(f"{task}: the options {options} leave too few puzzles outside the held-out set.")
    return train, test


def write_task_data(task: str, out_dir, num_train: int, num_test: int, seed: int = 0, **options) -> dict:
    """Writes `train.jsonl`, `test.jsonl` and `task.json` (task, options, seed, counts) to `out_dir`; returns the
    paths. Each file is written to a temporary name first, so an interrupted run leaves no half-written split."""
    train, test = make_splits(task, num_train, num_test, seed, **options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "task": task,
        "options": {**get_task(task).options, **options},
        "seed": seed,
        "num_train": num_train,
        "num_test": num_test,
    }
    paths = {"train": out_dir / "train.jsonl", "test": out_dir / "test.jsonl", "meta": out_dir / "task.json"}
    for key, rows in (("train", train), ("test", test)):
        _write_atomic(paths[key], "".join(json.dumps(row) + "\n" for row in rows))
    _write_atomic(paths["meta"], json.dumps(meta, indent=2) + "\n")
    return paths


def read_rows(path) -> list:
    """The rows of a jsonl file of puzzles."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


__all__ = ["TASKS", "Task", "get_task", "make_splits", "read_rows", "write_task_data"]
