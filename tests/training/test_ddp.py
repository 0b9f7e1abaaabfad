"""Two-process CPU data-parallel training (gloo) through `torchrun`: both ranks train in step and one checkpoint
is written. `accelerate launch --multi_gpu --num_processes 2` with `--use_cpu` runs the same way (note that
`accelerate launch --cpu --num_processes 2` would start a single process)."""

import json
import os
import subprocess

import pytest

from helpers import ROOT, TINY_RUN_ARGS, TWO_PROCESSES

RANK_SCRIPT = """
import json, os, sys
import torch
from llada.training.run import parse_training_args, run_training

trainer = run_training(*parse_training_args(sys.argv[1:]))
rank = int(os.environ["RANK"])
checksum = sum(float(p.detach().double().sum()) for p in trainer.model.parameters())
record = {"rank": rank, "world_size": trainer.args.world_size, "global_step": trainer.state.global_step,
          "checksum": checksum, "initialized": torch.distributed.is_initialized()}
with open(os.path.join(trainer.args.output_dir, f"rank{rank}.json"), "w") as handle:
    json.dump(record, handle)
"""


# a block diffusion model also evaluates (its ELBO goes through the wrapped model)
BLOCK_MODEL = "--block_size 4 --eval_strategy steps --eval_steps 4 --max_eval_samples 8 --eval_num_t_samples 2".split()


@pytest.mark.parametrize("model_args", [["--eval_strategy", "no"], BLOCK_MODEL], ids=["full", "block"])
def test_two_process_cpu_ddp(tmp_path, model_args):
    script = tmp_path / "train_rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "out"
    args = ["--output_dir", str(out), *"--max_steps 4 --save_steps 4".split(), *model_args, *TINY_RUN_ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [*TWO_PROCESSES, str(script), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]

    records = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(r["initialized"] and r["world_size"] == 2 and r["global_step"] == 4 for r in records)
    assert records[0]["checksum"] == records[1]["checksum"]  # gradients were all-reduced: same weights
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4"]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 4 and state["global_step"] == 4
    if model_args is BLOCK_MODEL:
        assert json.loads((out / "eval_results.json").read_text())["eval_perplexity_bound"] > 1.0
