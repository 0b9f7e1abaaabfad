"""One writer per output folder: a second training run into a held folder is refused, a stale lock is taken over,
the lock goes at the end of a run (an exception too), and llada-push refuses a folder a live run holds."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from llada.training import output_lock
from llada.training.output_lock import (
    LOCK_NAME,
    OutputDirLock,
    OutputDirLockedError,
    check_not_being_written,
    live_holder,
    output_dir_lock,
)

HOLDER = textwrap.dedent("""
    import fcntl, json, os, socket, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(), started="now")).encode())
    print("held", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def other_process(tmp_path):
    """Another live process holding `tmp_path / "run"`'s lock, as a training run does; yields its pid."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder / LOCK_NAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def dead_pid() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(finished.stdout)


def test_the_lock_file_names_its_holder_and_goes_at_release(tmp_path):
    folder = tmp_path / "new" / "run"
    with OutputDirLock(folder):
        held = json.loads((folder / LOCK_NAME).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        assert live_holder(folder)["pid"] == os.getpid()
    assert not folder.exists()  # created for the lock and left empty: removed again
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text("x")
    with OutputDirLock(folder):
        pass
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors"] and live_holder(folder) is None


def test_a_second_writer_is_refused(tmp_path):
    with OutputDirLock(tmp_path):
        with pytest.raises(
            OutputDirLockedError,
            match=rf"--output_dir '{tmp_path}' is being written by another "
            rf"training run \(pid {os.getpid()} on {socket.gethostname()}",
        ):
            OutputDirLock(tmp_path).acquire()
    OutputDirLock(tmp_path).acquire().release()  # free again


def test_another_process_holding_the_folder_refuses_llada_train(tmp_path, other_process, capsys):
    from llada.cli.train import main

    folder = tmp_path / "run"
    assert main(["--output_dir", str(folder), "--max_steps", "1", "--tokenizer", "bytes"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"llada-train: error: --output_dir '{folder}' is being written by another training run "
        f"(pid {other_process} on {socket.gethostname()}, since now)"
    )
    assert "\n" not in error


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    gone = dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(pid=gone, host=socket.gethostname(), started="earlier")))
    assert live_holder(tmp_path) is None  # nobody holds it: llada-push does not wait for it either
    with caplog.at_level("WARNING", logger=output_lock.__name__), OutputDirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock (pid {gone} on {socket.gethostname()}, since earlier)" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_goes_when_the_run_fails(tmp_path, monkeypatch):
    from llada.training import trainer
    from llada.training.run import parse_training_args, run_training

    seen = {}

    def failing_train(self, **kwargs):
        seen["holder"] = live_holder(self.args.output_dir)
        raise RuntimeError("the run failed")

    monkeypatch.setattr(trainer.LLaDATrainer, "train", failing_train)
    out = tmp_path / "out"
    args = parse_training_args(
        [
            "--output_dir",
            str(out),
            "--max_steps",
            "1",
            "--tokenizer",
            "bytes",
            "--autoregressive_init_steps",
            "0",
            "--hidden_size",
            "32",
            "--num_hidden_layers",
            "1",
            "--num_attention_heads",
            "2",
            "--intermediate_size",
            "32",
            "--max_seq_length",
            "16",
            "--max_train_samples",
            "8",
            "--max_eval_samples",
            "4",
            "--use_cpu",
            "--report_to",
            "none",
        ]
    )
    with pytest.raises(RuntimeError, match="the run failed"):
        run_training(*args)
    assert seen["holder"]["pid"] == os.getpid()  # held while training
    assert live_holder(out) is None and not (out / LOCK_NAME).exists()


def test_only_the_main_process_of_a_distributed_run_holds_it(tmp_path):
    with output_dir_lock(SimpleNamespace(output_dir=str(tmp_path / "a"), process_index=1)) as lock:
        assert lock is None and not (tmp_path / "a").exists()
    with output_dir_lock(SimpleNamespace(output_dir=str(tmp_path / "b"), process_index=0)) as lock:
        assert live_holder(tmp_path / "b")["pid"] == os.getpid()


def test_llada_push_refuses_a_folder_a_live_run_holds(tmp_path, other_process, capsys):
    from llada.cli.push import main

    folder = tmp_path / "run"
    assert main(["--model_dir", str(folder), "--repo_id", "someone/model", "--skip_check"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"llada-push: error: `model_dir` '{folder}' is still being written by a training run "
        f"(pid {other_process} on {socket.gethostname()}, since now"
    )
    checkpoint = folder / "checkpoint-10"
    checkpoint.mkdir()
    with pytest.raises(OutputDirLockedError, match="still being written"):  # its run may rotate it away
        check_not_being_written(checkpoint)


def test_without_flock_the_pid_decides(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(output_lock, "fcntl", None)
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(pid=os.getpid(), host=socket.gethostname())))
    with pytest.raises(OutputDirLockedError, match=f"pid {os.getpid()}"):
        OutputDirLock(tmp_path).acquire()
    assert live_holder(tmp_path)["pid"] == os.getpid()
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(pid=dead_pid(), host=socket.gethostname())))
    assert live_holder(tmp_path) is None
    with caplog.at_level("WARNING", logger=output_lock.__name__), OutputDirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "removed a stale lock" in caplog.text and not (tmp_path / LOCK_NAME).exists()
