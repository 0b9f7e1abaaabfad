"""Resuming from checkpoints (llada/training/checkpoints.py) after a crash: a `llada-train` killed with SIGKILL in
the middle of a checkpoint save resumes with `--resume_from_checkpoint last` from the newest complete checkpoint and
ends with the weights of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

from safetensors.torch import load_file

from helpers import QUIET, run_script, train_args
from llada.cli import train

KILLED_MID_SAVE = """
import sys, time
from pathlib import Path
from transformers import Trainer
from llada.cli.train import main

original = Trainer._save_rng_state
def save_rng_state(self, output_dir):  # runs after weights and optimizer, before trainer_state.json
    if self.state.global_step == 4:
        Path(output_dir, "..", "SAVING").resolve().touch()
        time.sleep(600)
    original(self, output_dir)
Trainer._save_rng_state = save_rng_state
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_save_then_resume_picks_the_newest_complete_checkpoint(tmp_path):
    out, reference = tmp_path / "out", tmp_path / "reference"
    args = train_args(out, "--max_steps", "6", "--save_steps", "2", "--eval_strategy", "no", "--save_total_limit", "5")
    env = {**os.environ, **QUIET}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_SAVE, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (out / "SAVING").exists():
        assert process.poll() is None and time.time() < deadline, "training ended before the save at step 4"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "checkpoint-4" / "model.safetensors").is_file()  # half-written: no trainer_state.json
    assert not (out / "checkpoint-4" / "trainer_state.json").exists()

    result = run_script("llada.cli.train", *args, "--resume_from_checkpoint", "last")
    assert result.returncode == 0, result.stderr
    assert "checkpoint-4" in result.stderr and "incomplete" in result.stderr
    assert f"Resuming from {out / 'checkpoint-2'} (step 2)" in result.stderr
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6

    # the resumed run ends with the weights of a run that was never interrupted
    assert train.main(train_args(reference, "--max_steps", "6", "--save_steps", "2", "--eval_strategy", "no")) == 0
    resumed, uninterrupted = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert all(resumed[name].equal(uninterrupted[name]) for name in uninterrupted)
