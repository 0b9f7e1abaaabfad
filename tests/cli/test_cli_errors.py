"""Every console script on bad input: exit status 2 (1 for a failed write), one `prog: error:` line naming the
argument or path, no traceback, nothing half-written. Also `--help` of every script. (A SIGKILL in the middle of a
checkpoint save, then a resume: training/test_checkpoints.py.)

Most cases call the script's `main(argv)` (what the console script runs) in this process, which is fast; the ones
that need a real process (exit status through the console script, a file-size limit) start one.
"""

import json
import os
import resource
import socket
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from helpers import (
    causal_lm,
    plain_tokenizer,
    random_original_weights,
    run_script,
    tiny_model,
    tiny_original_config,
    train_args,
    word_tokenizer,
    write_original_checkpoint,
)
from llada.cli import convert, generate, train

SCRIPTS = sorted((ep.name, ep.value) for ep in entry_points(group="console_scripts") if ep.name.startswith("llada-"))


def assert_one_line_error(code, err, expected_code, *needles, prog=None):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(lines) == 1, err
    if prog is not None:
        assert lines[0].startswith(f"{prog}: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def exit_code(main, argv) -> int:
    """What the console script exits with: `main`'s return value, or the status of a usage error (argparse exits)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def test_every_console_script_is_tested_here():
    assert {name for name, _ in SCRIPTS} == {
        "llada-generate",
        "llada-convert",
        "llada-lm-eval",
        "llada-push",
        "llada-train",
        "llada-serve",
        "llada-tasks",
    }


@pytest.mark.parametrize("name, target", SCRIPTS)
def test_help_of_every_console_script(name, target, capsys):
    module, function = target.split(":")
    main = getattr(__import__(module, fromlist=[function]), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out.lower() and "--help" in out


# ----------------------------------------------------------------------------------------------------------------
# llada-generate


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-models")
    good = root / "good"
    tiny_model().save_pretrained(good)
    word_tokenizer().save_pretrained(good)
    (root / "not-a-model").mkdir()
    (root / "not-a-model" / "notes.txt").write_text("hello")
    for name, damage in [("truncated-weights", "weights"), ("truncated-config", "config"), ("no-tokenizer", "tok")]:
        folder = root / name
        folder.mkdir()
        for item in good.iterdir():
            (folder / item.name).write_bytes(item.read_bytes())
        if damage == "weights":
            weights = folder / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:1000])
        elif damage == "config":
            config = folder / "config.json"
            config.write_text(config.read_text()[:50])
        else:
            for item in folder.glob("tokenizer*"):
                item.unlink()
    return root


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--model", "{root}/not-a-model"], ["--model", "not-a-model", "no config.json"]),
        (["--model", "{root}/truncated-weights"], ["--model", "truncated-weights", "corrupt or truncated"]),
        (["--model", "{root}/truncated-config"], ["--model", "config.json", "not a valid JSON"]),
        (["--model", "{root}/no-tokenizer"], ["--model", "no-tokenizer", "no usable tokenizer"]),
        (["--model", "{root}/good", "--tokenizer", "{root}/not-a-model"], ["--tokenizer", "not-a-model"]),
        (["--model", "{root}/good", "--device", "cuda:7"], ["--device cuda:7"]),
        (["--model", "{root}/good", "--device", "gpu0"], ["--device 'gpu0'", "not a torch device"]),
        (["--model", "{root}/good", "--prompt", ""], ["--prompt ''", "empty"]),
        (
            ["--model", "{root}/good", "--prompt", "to be", "--max_new_tokens", "10", "--block_length", "4"],
            ["`block_length` (4)"],
        ),
        (["--model", "{root}/good", "--prompt_file", "{root}/no-such-file.txt"], ["--prompt_file", "no-such-file"]),
        (["--model", "{root}/good", "--visualize", "view.gif"], ["--visualize"]),
    ],
)
def test_generate_bad_inputs(folders, args, needles, capsys):
    argv = [arg.format(root=folders) for arg in args] + ["--max_new_tokens", "4"] * ("--max_new_tokens" not in args)
    code = generate.main(argv)
    assert_one_line_error(code, capsys.readouterr().err, 2, *needles, prog="llada-generate")


def test_generate_unknown_hub_id_offline(capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code = generate.main(["--model", "nobody/no-such-model-here", "--max_new_tokens", "4"])
    assert_one_line_error(code, capsys.readouterr().err, 2, "--model 'nobody/no-such-model-here'", "no such folder")


def test_generate_error_through_the_console_script(folders):
    result = run_script("llada.cli.generate", "--model", folders / "not-a-model")
    assert_one_line_error(result.returncode, result.stderr, 2, "no config.json", prog="llada-generate")


# ----------------------------------------------------------------------------------------------------------------
# llada-convert


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    config = tiny_original_config()
    weights = random_original_weights(config)
    weights["model.transformer.blocks.0.surprise.weight"] = weights["model.transformer.ln_f.weight"].clone()
    return write_original_checkpoint(tmp_path_factory.mktemp("original") / "src", config, weights)


@pytest.mark.parametrize(
    "case, needles",
    [
        ("not-official", ["not an official", "config.json"]),
        ("missing-src", ["no-such-src"]),
        ("dst-exists", ["exists and is not empty", "--overwrite"]),
        ("unexpected-weight", ["Unexpected weight", "surprise"]),
        ("bad-shard-size", ["max_shard_size", "'5XB'"]),
    ],
)
def test_convert_bad_inputs(tmp_path, folders, original, case, needles, capsys):
    dst = tmp_path / "dst"
    argv = {
        "not-official": ["--src", folders / "good", "--dst", dst],
        "missing-src": ["--src", tmp_path / "no-such-src", "--dst", dst],
        "dst-exists": ["--src", original, "--dst", folders / "good"],
        "unexpected-weight": ["--src", original, "--dst", dst],
        "bad-shard-size": ["--src", folders / "good", "--dst", dst, "--to", "original", "--max_shard_size", "5XB"],
    }[case]
    code = convert.main([str(arg) for arg in argv])
    assert_one_line_error(code, capsys.readouterr().err, 2, *needles, prog="llada-convert")
    assert not dst.exists()


@pytest.fixture(scope="module")
def causal_sources(tmp_path_factory):
    """A GPT-2 (an architecture LLaDA cannot take) and a Mistral whose sliding window is shorter than its positions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("causal-sources")
    GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=1, n_head=4, n_positions=64)).save_pretrained(
        root / "gpt2"
    )
    causal_lm("mistral", sliding_window=16).save_pretrained(root / "mistral")
    plain_tokenizer().save_pretrained(root / "mistral")
    return root


@pytest.mark.parametrize(
    "case, needles",
    [
        ("architecture", ["Cannot convert a 'gpt2' model (GPT2LMHeadModel)", "Qwen3ForCausalLM"]),
        ("short-window", ["`sliding_window` = 16 with 64 positions", "--max_position_embeddings"]),
        ("causal-options-alone", ["--block_size, --logit_shift apply to --from_causal_lm only"]),
        ("two-sources", ["Give one source", "not both"]),
        ("no-destination", ["output folder is required"]),
        ("to-original", ["--from_causal_lm converts into this project's format only"]),
        ("bad-block-size", ["--block_size must be a positive integer, got 0"]),
    ],
)
def test_convert_from_causal_lm_bad_inputs(tmp_path, folders, causal_sources, case, needles, capsys):
    dst = tmp_path / "dst"
    mistral = causal_sources / "mistral"
    argv = {
        "architecture": ["--from_causal_lm", causal_sources / "gpt2", dst],
        "short-window": ["--from_causal_lm", mistral, dst, "--logit_shift"],
        "causal-options-alone": ["--src", folders / "good", "--dst", dst, "--block_size", "2", "--logit_shift"],
        "two-sources": ["--from_causal_lm", mistral, "--src", folders / "good", "--dst", dst],
        "no-destination": ["--from_causal_lm", mistral],
        "to-original": ["--from_causal_lm", mistral, dst, "--to", "original"],
        "bad-block-size": ["--from_causal_lm", mistral, dst, "--block_size", "0"],
    }[case]
    code = convert.main([str(arg) for arg in argv])
    assert_one_line_error(code, capsys.readouterr().err, 2, *needles, prog="llada-convert")
    assert not dst.exists()


def test_convert_error_through_the_console_script(tmp_path, folders):
    result = run_script("llada.cli.convert", "--src", folders / "good", "--dst", tmp_path / "dst")
    assert_one_line_error(result.returncode, result.stderr, 2, "not an official", prog="llada-convert")


# ----------------------------------------------------------------------------------------------------------------
# llada-tasks


def test_llada_tasks_bad_inputs(tmp_path, capsys):
    from llada.cli import tasks

    (tmp_path / "bad.jsonl").write_text("not json\n")
    (tmp_path / "empty.jsonl").write_text("{}\n")
    cases = [
        (["generate", "chess", str(tmp_path)], "invalid choice"),
        (["generate", "stargraph", str(tmp_path), "--option", "degree"], "NAME=INT"),
        (["generate", "stargraph", str(tmp_path), "--option", "colour=3"], "colour"),
        (["generate", "stargraph", str(tmp_path), "--option", "degree=1"], "degree"),
        (["evaluate", "stargraph", "--model", str(tmp_path), "--data", str(tmp_path / "missing.jsonl")], "missing"),
        (["evaluate", "stargraph", "--model", str(tmp_path), "--data", str(tmp_path / "bad.jsonl")], "--data"),
        (["evaluate", "stargraph", "--model", str(tmp_path), "--data", str(tmp_path / "empty.jsonl")], "prompt"),
        (
            ["evaluate", "stargraph", "--model", str(tmp_path / "nope"), "--data", str(tmp_path / "empty.jsonl")],
            "--data",
        ),
    ]
    for argv, needle in cases:
        code = exit_code(tasks.main, argv)
        line = assert_one_line_error(code, capsys.readouterr().err, 2, needle)
        assert line.startswith("llada-tasks")  # argparse's errors name the subcommand too
    (tmp_path / "ok.jsonl").write_text('{"prompt": "ab /ab=", "response": "ab"}\n')
    code = exit_code(
        tasks.main, ["evaluate", "stargraph", "--model", str(tmp_path / "nope"), "--data", str(tmp_path / "ok.jsonl")]
    )
    assert_one_line_error(code, capsys.readouterr().err, 2, "--model", prog="llada-tasks")
    code = exit_code(
        tasks.main, ["evaluate", "stargraph", "--model", str(tmp_path), "--data", str(tmp_path / "ok.jsonl")]
    )
    assert_one_line_error(code, capsys.readouterr().err, 2, "config.json", prog="llada-tasks")


# ----------------------------------------------------------------------------------------------------------------
# llada-serve: every bad input ends before the server starts


@pytest.mark.parametrize(
    "args, needles",
    [
        (["{root}/not-a-model"], ["not-a-model", "no config.json"]),
        (["{root}/truncated-weights"], ["truncated-weights", "corrupt or truncated"]),
        (["{root}/no-tokenizer"], ["no-tokenizer", "no usable tokenizer"]),
        (["{root}/good", "--device", "cuda:7"], ["--device cuda:7"]),
        (["{root}/good", "--max_batch_size", "0"], ["--max_batch_size must be >= 1"]),
        (["{root}/good", "--batch_window_ms", "-5"], ["--batch_window_ms must be >= 0"]),
        (["{root}/good", "--host", "no.such.host.invalid"], ["--host 'no.such.host.invalid'"]),
        (["{root}/good", "--port", "{busy}"], ["--port {busy}", "cannot listen there"]),
        (["{root}/good", "--chat_template", "{root}/no-such-template.jinja"], ["--chat_template", "no-such-template"]),
    ],
)
def test_serve_bad_inputs(folders, args, needles, capsys):
    from llada.cli import serve

    pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [arg.format(root=folders, busy=port) for arg in args]
        code = serve.main(argv + ["--port", "0"] * ("--port" not in args))
    needles = [needle.format(busy=port) for needle in needles]
    assert_one_line_error(code, capsys.readouterr().err, 2, *needles, prog="llada-serve")


# ----------------------------------------------------------------------------------------------------------------
# llada-train: data, config file, output folder


@pytest.mark.parametrize(
    "case, needles",
    [
        ("zero-bytes", ["empty", "0 bytes"]),
        ("text-named-json", ["as json data", "rows.json", ".txt"]),
        ("yaml-syntax", ["--config", "not valid YAML", "line 2"]),
        ("max-steps-0", ["--max_steps", "got 0"]),
        ("output-is-a-file", ["--output_dir", "is a file"]),
    ],
)
def test_train_bad_inputs(tmp_path, case, needles, capsys):
    out = tmp_path / "out"
    extra = []
    if case == "zero-bytes":
        (tmp_path / "empty.txt").write_bytes(b"")
        extra = ["--train_file", str(tmp_path / "empty.txt")]
    elif case == "text-named-json":
        (tmp_path / "rows.json").write_text("To be, or not to be\nthat is the question\n" * 20)
        extra = ["--train_file", str(tmp_path / "rows.json"), "--validation_file", str(tmp_path / "rows.json")]
    elif case == "yaml-syntax":
        (tmp_path / "run.yaml").write_text("max_steps: 3\nhidden_size: 32: 64\n")
        extra = ["--config", str(tmp_path / "run.yaml")]
    elif case == "max-steps-0":
        extra = ["--max_steps", "0"]
    elif case == "output-is-a-file":
        (tmp_path / "a-file").write_text("x")
        out = tmp_path / "a-file" / "out"
    code = exit_code(train.main, train_args(out, *extra))
    assert_one_line_error(code, capsys.readouterr().err, 2, *needles, prog="llada-train")
    assert not (tmp_path / "out").exists()


def _unwritable_dir(tmp_path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "out"
    return Path("/sys/llada-test-out")  # root may write anywhere but into a read-only or virtual file system


def test_train_unwritable_output_dir_is_an_io_error(tmp_path, capsys):
    out = _unwritable_dir(tmp_path)
    code = train.main(train_args(out))
    assert_one_line_error(code, capsys.readouterr().err, 1, "--output_dir", "not writable", prog="llada-train")


def test_train_refuses_a_folder_holding_another_run_and_resume_past_max_steps(tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(train_args(out, "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no")) == 0
    capsys.readouterr()
    code = train.main(train_args(out, "--eval_strategy", "no"))  # a new run, same folder
    assert_one_line_error(
        code, capsys.readouterr().err, 2, "already holds a training run", "checkpoint-4", "--overwrite_output_dir"
    )
    code = train.main(train_args(out, "--eval_strategy", "no", "--resume_from_checkpoint", "last"))
    assert_one_line_error(code, capsys.readouterr().err, 2, "at step 4, past --max_steps 2", "different")
    code = train.main(
        train_args(
            out, "--eval_strategy", "no", "--max_steps", "6", "--hidden_size", "64", "--resume_from_checkpoint", "last"
        )
    )
    assert_one_line_error(code, capsys.readouterr().err, 2, "another model", "hidden_size 32 vs 64")
    assert train.main(train_args(out, "--eval_strategy", "no", "--overwrite_output_dir")) == 0
    assert sorted(path.name for path in out.glob("checkpoint-*")) == ["checkpoint-2"]  # only the new run's
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_train_resume_last_with_nothing_there_says_so(tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="llada.training.checkpoints"):
        assert train.main(train_args(out, "--eval_strategy", "no", "--resume_from_checkpoint", "last")) == 0
    assert f"no complete checkpoint in {out}; starting from scratch" in caplog.text
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_train_write_failure_while_saving_leaves_no_partial_checkpoint(tmp_path):
    # A real failed write: a file-size limit makes the OS refuse the optimizer state part-way (EFBIG), as a full disk
    # refuses it (ENOSPC); torch reports both through the same writer error.
    out = tmp_path / "out"

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (250_000, 250_000))

    result = run_script(
        "llada.cli.train", *train_args(out, "--save_steps", "2", "--eval_strategy", "no"), preexec_fn=limit_file_size
    )
    line = assert_one_line_error(
        result.returncode, result.stderr, 1, "checkpoint-2", "partial checkpoint was removed", prog="llada-train"
    )
    assert "--resume_from_checkpoint last" in line
    assert not (out / "checkpoint-2").exists() and not list(out.glob(".saving-*"))
