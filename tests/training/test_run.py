"""`llada.training.run`: the arguments of a training run (dataclasses, the main job's YAML, --config, aliases)."""

import dataclasses
import os

import pytest
import torch
import yaml

from llada.training.data import DataArguments
from llada.training.models import ModelArguments
from llada.training.run import BLOCK_CONFIG, MAIN_JOB_CONFIG, build_parser, parse_training_args, read_config
from llada.training.trainer import LLaDATrainingArguments


def test_defaults_are_the_tinyshakespeare_job():
    model_args, data_args, training_args = parse_training_args([])
    assert data_args.train_file is None and data_args.dataset_name is None  # bundled corpus
    assert (model_args.model_type, model_args.tokenizer, model_args.vocab_size) == ("llada", "bpe", 4096)
    assert training_args.complementary_masking and training_args.torch_num_threads == "auto"
    assert training_args.eval_strategy == "steps" and training_args.load_best_model_at_end
    assert training_args.save_steps == training_args.eval_steps
    assert training_args.report_to == ["tensorboard"]


def test_a_bare_run_differs_from_the_dataclasses_by_the_main_job_file_only():
    values = read_config(MAIN_JOB_CONFIG, build_parser())
    assert values == yaml.safe_load(MAIN_JOB_CONFIG.read_text())  # plain field names, all known
    expected = []
    for dataclass_type in (ModelArguments, DataArguments, LLaDATrainingArguments):
        names = {f.name for f in dataclasses.fields(dataclass_type)}
        expected.append(dataclass_type(**{k: v for k, v in values.items() if k in names}))
    for parsed, made_in_python in zip(parse_training_args([]), expected):
        differences = {
            f.name: (getattr(parsed, f.name), getattr(made_in_python, f.name))
            for f in dataclasses.fields(parsed)
            if getattr(parsed, f.name) != getattr(made_in_python, f.name)
        }
        assert differences == {}


def test_yaml_config_aliases_and_flag_precedence(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 3\nbatch_size: 5\nhidden_size: 48\nmodel_dir: from-yaml\nlearning_rate: 0.01\n")
    model_args, data_args, training_args = parse_training_args(
        ["--config", str(config), "--hidden_size", "64", "--lr=0.02", "--max_steps", "-1"]
    )
    assert training_args.num_train_epochs == 3 and training_args.per_device_train_batch_size == 5
    assert model_args.hidden_size == 64 and training_args.learning_rate == 0.02  # flags win over the file
    assert training_args.output_dir == "from-yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden_size: 3\n")
    with pytest.raises(SystemExit):
        parse_training_args(["--config", str(bad)])


def test_aliases_on_the_command_line():
    _, _, training_args = parse_training_args(["--model_dir", "out", "--batch_size", "3", "--epochs", "2"])
    assert (training_args.output_dir, training_args.per_device_train_batch_size) == ("out", 3)
    assert training_args.num_train_epochs == 2


def test_bad_option_values_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_training_args(["--sample_remasking", "lowest"])
    assert "--sample_remasking" in capsys.readouterr().err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SystemExit):
        parse_training_args(["--config", str(tmp_path / "list.yaml")])
    assert "expected a mapping" in capsys.readouterr().err


def test_training_arguments_from_python(tmp_path):
    aligned = LLaDATrainingArguments(
        output_dir=str(tmp_path), eval_strategy="steps", eval_steps=7, load_best_model_at_end=True, use_cpu=True
    )
    assert aligned.save_steps == 7 and aligned.dataloader_pin_memory == torch.cuda.is_available()
    unevaluated = LLaDATrainingArguments(output_dir=str(tmp_path), load_best_model_at_end=True, use_cpu=True)
    assert unevaluated.load_best_model_at_end is False and unevaluated.save_steps == 500
    with pytest.raises(ValueError, match="`sample_remasking` must be one of"):
        LLaDATrainingArguments(output_dir=str(tmp_path), sample_remasking="lowest")
    with pytest.raises(ValueError, match=r"`sample_top_p` must be in \(0, 1\], got 1.5"):
        LLaDATrainingArguments(output_dir=str(tmp_path), sample_top_p=1.5)
    with pytest.raises(ValueError, match="`sample_top_k` must be a positive integer, got 0"):
        LLaDATrainingArguments(output_dir=str(tmp_path), sample_top_k=0)
    with pytest.raises(ValueError, match="`torch_num_threads` must be a positive integer or 'auto', got 'many'"):
        LLaDATrainingArguments(output_dir=str(tmp_path), torch_num_threads="many")
    assert LLaDATrainingArguments(output_dir=str(tmp_path), torch_num_threads="3").torch_num_threads == 3


def test_auto_threads_follow_omp_num_threads_else_the_idle_cores(monkeypatch):
    from llada.training import runtime as runtime_module
    from llada.training.runtime import resolve_num_threads

    assert resolve_num_threads(None) is None and resolve_num_threads(2) == 2
    assert 0 <= runtime_module._idle_cores(2) <= (os.cpu_count() or 2) + 0.01  # measured on this machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_num_threads("auto") == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for idle, expected in ((1.9, 2), (1.2, 1), (0.0, 1)):
        monkeypatch.setattr(runtime_module, "_idle_cores", lambda cores, idle=idle: idle)
        assert resolve_num_threads("auto") == expected


def test_help_lists_every_option_and_the_aliases(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_training_args(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--model_dir OUTPUT_DIR" in help_text and "--lr LEARNING_RATE" in help_text
    assert "--sample_remasking {low_confidence,random,entropy,margin,left_to_right}" in help_text


def test_an_autoregressive_run_of_complementary_options_trains_as_many_rows_per_step():
    _, _, args = parse_training_args(
        [
            "--model_type",
            "autoregressive",
            "--complementary_masking",
            "--per_device_train_batch_size",
            "16",
            "--output_dir",
            "unused",
        ]
    )
    assert (args.complementary_masking, args.per_device_train_batch_size) == (False, 32)
    _, _, args = parse_training_args(
        ["--complementary_masking", "--per_device_train_batch_size", "16", "--output_dir", "unused"]
    )
    assert (args.complementary_masking, args.per_device_train_batch_size) == (True, 16)
    _, _, args = parse_training_args(
        ["--complementary_masking", "false", "--per_device_train_batch_size", "32", "--output_dir", "unused"]
    )
    assert (args.complementary_masking, args.per_device_train_batch_size) == (False, 32)


def test_the_main_job_is_the_full_model_and_the_block_config_adds_blocks():
    model_args, data_args, training_args = parse_training_args([])
    assert model_args.block_size is None and training_args.in_order_probability == 0.0
    assert training_args.output_dir == "runs/llada-tinyshakespeare"
    for name in ("tinyshakespeare-block2", str(BLOCK_CONFIG)):  # a packaged config by its name, or its path
        block_args, _, block_training = parse_training_args(["--config", name])
        assert block_args.block_size == 2 and block_training.in_order_probability > 0 and block_training.eval_in_order
        assert block_training.output_dir == "runs/llada-block2-tinyshakespeare"
        for option in ("hidden_size", "num_hidden_layers", "tokenizer", "vocab_size"):  # the same model and data
            assert getattr(block_args, option) == getattr(model_args, option)


def test_the_autoregressive_baseline_is_the_main_job_without_diffusion():
    model_args, _, training_args = parse_training_args(["--model_type", "autoregressive"])
    assert model_args.block_size is None and training_args.in_order_probability == 0.0
    with pytest.raises(SystemExit):  # block options are refused for it
        parse_training_args(["--model_type", "autoregressive", "--block_size", "2"])


@pytest.mark.parametrize("saved_block_size", [None, 4])
def test_fine_tuning_takes_the_attention_of_the_model_it_starts_from(tmp_path, saved_block_size):
    from llada import LLaDAConfig

    folder = tmp_path / "saved"
    LLaDAConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        block_size=saved_block_size,
    ).save_pretrained(folder)
    model_args, _, _ = parse_training_args(["--init_from", str(folder)])
    assert model_args.block_size is None  # the loaded config's own block size stays (no conversion)
    model_args, _, _ = parse_training_args(["--init_from", str(folder), "--block_size", "2"])
    assert model_args.block_size == 2  # converting
