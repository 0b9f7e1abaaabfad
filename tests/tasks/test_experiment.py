"""experiments/tasks.py: the accuracy-against-time curve reads each run's CPU time."""

import json

from helpers import script_module

tasks_experiment = script_module("tasks")


def test_checkpoint_minutes_are_the_runs_cpu_time_in_proportion_to_the_step(tmp_path):
    (tmp_path / "checkpoint-50").mkdir()
    (tmp_path / "checkpoint-100").mkdir()  # the last checkpoint is the final model itself
    (tmp_path / "trainer_state.json").write_text(json.dumps({"max_steps": 100}))
    (tmp_path / "train_results.json").write_text(json.dumps({"train_runtime": 1200.0}))
    found = tasks_experiment.checkpoints(tmp_path)
    assert [(step, minutes) for step, minutes, _ in found] == [(50, 10.0), (100, 20.0)]  # wall clock: no CPU file
    assert found[-1][2] == tmp_path
    (tmp_path / "cpu_seconds.json").write_text(json.dumps({"cpu_seconds": 600.0}))
    assert [minutes for _, minutes, _ in tasks_experiment.checkpoints(tmp_path)] == [5.0, 10.0]


def test_a_run_from_an_autoregressive_stage_counts_that_stage_first(tmp_path):
    run, stage_1 = tmp_path / "llada", tmp_path / "llada-ar-init"
    (run / "checkpoint-50").mkdir(parents=True)
    stage_1.mkdir()
    (run / "trainer_state.json").write_text(json.dumps({"max_steps": 100}))
    (run / "train_results.json").write_text(json.dumps({"train_runtime": 300.0}))
    (stage_1 / "train_results.json").write_text(json.dumps({"train_runtime": 100.0}))
    (run / "cpu_seconds.json").write_text(json.dumps({"cpu_seconds": 1200.0}))  # both stages: 5 + 15 min
    assert [minutes for _, minutes, _ in tasks_experiment.checkpoints(run)] == [12.5, 20.0]
