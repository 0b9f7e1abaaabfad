"""experiments/block_quality.py: the step calibration times each contender as the model its options train (an AR
recipe as Llama, a block recipe as a block model of its size), earlier runs merge by contender, a calibration-only
run writes only the step costs, and a seed trains into a folder of its own."""

import json

import pytest

from helpers import script_module

block_quality = script_module("block_quality")


def test_a_contender_is_calibrated_as_the_model_its_options_train():
    # an autoregressive recipe is timed as Llama, a block recipe as a block model of its size, the rest as full
    # attention, whatever other options they set
    assert block_quality.kind_of("ar-batch8") == "llama"
    assert block_quality.kind_of("block4-batch16") == 4 and block_quality.kind_of("block2-independent") == 2
    assert block_quality.kind_of("full") is None
    assert block_quality.train_option("ar-batch8", "--per_device_train_batch_size") == "8"
    assert block_quality.train_option("full", "--block_size", "default") == "default"


def test_earlier_runs_merge_by_contender_and_the_first_file_wins(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"calibration": {"ar": 0.2, "block2": 0.6}, "results": {"ar": {"perplexity": 110}}}))
    second.write_text(
        json.dumps(
            {
                "calibration": {"ar": 0.3, "block4-batch8": 0.35},
                "results": {"ar": {"perplexity": 99}, "block4-batch8": {"perplexity": 210}},
            }
        )
    )
    assert block_quality.read_earlier([first, second], "calibration") == {
        "ar": 0.2,
        "block2": 0.6,
        "block4-batch8": 0.35,
    }
    results = block_quality.read_earlier([first, second], "results")
    assert results["ar"]["perplexity"] == 110 and results["block4-batch8"]["perplexity"] == 210


def test_calibration_only_writes_the_step_costs_that_a_later_run_reads(tmp_path, monkeypatch):
    measured = {}

    def fake_calibrate(names, repeats, setting):
        measured.update(names=list(names), repeats=repeats, setting=setting)
        return {"full": 0.4, "block2-batch4": 0.15}

    monkeypatch.setattr(block_quality, "calibrate", fake_calibrate)
    assert (
        block_quality.main(
            [
                "--setting",
                "main",
                "--contenders",
                "full",
                "block2-batch4",
                "--calibration_only",
                "--calibration_steps",
                "20",
                "--results_dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert measured == {"names": ["full", "block2-batch4"], "repeats": 20, "setting": "main"}
    written = tmp_path / "calibration.json"
    assert block_quality.read_earlier([written], "calibration") == {"full": 0.4, "block2-batch4": 0.15}
    assert list(tmp_path.iterdir()) == [written]  # nothing trained, nothing else written


@pytest.mark.parametrize("seed", [None, 1])
def test_a_seed_given_trains_with_it_into_its_own_folder(tmp_path, monkeypatch, seed):
    import llada.training.run as run

    seen = {}

    def fake_parse(argv):
        seen["argv"] = argv
        return ()

    monkeypatch.setattr(run, "parse_training_args", fake_parse)
    monkeypatch.setattr(run, "run_training", lambda *parsed: None)
    argv = ["--setting", "main", "--output_dir", str(tmp_path), "--evaluations", "2"]
    options = block_quality.parse(argv + ([] if seed is None else ["--seed", str(seed)]))
    run_dir = tmp_path / ("ar-batch4" if seed is None else "ar-batch4-seed1")
    run_dir.mkdir()
    record = block_quality.train("ar-batch4", 10, options)
    assert record["steps"] == 10
    trained = seen["argv"]
    assert trained[trained.index("--output_dir") + 1] == str(run_dir)
    assert ("--seed" in trained) == (seed is not None)
    if seed is not None:
        assert trained[trained.index("--seed") + 1] == "1"
    assert (run_dir / "budget.json").is_file()
    assert block_quality.run_name("ar-batch4", options) == run_dir.name
