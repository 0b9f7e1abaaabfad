"""Tests for `llada-generate` (llada/cli/generate.py) and the denoising views (llada/visualize.py)."""

import io
import os

import pytest
import torch

from helpers import tiny_model, word_tokenizer
from llada.cli.generate import main
from llada.visualize import (
    MASK_PLACEHOLDER,
    TerminalCanvasStreamer,
    canvas_text,
    masked_fraction_per_step,
    save_decode_view,
    screen_rows,
    token_pieces,
)


def test_cli_generates_and_writes_png(saved_model, tmp_path, capsys):
    view = tmp_path / "view.png"
    assert (
        main(
            [
                "--model",
                str(saved_model),
                "--prompt",
                "to be",
                "--prompt",
                "the question whether",
                "--max_new_tokens",
                "8",
                "--steps",
                "4",
                "--visualize",
                str(view),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("=== sample") == 2
    assert view.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_infills_between_prompt_and_suffix(saved_model, capsys):
    assert (
        main(
            [
                "--model",
                str(saved_model),
                "--prompt",
                "to be",
                "--prompt",
                "or",
                "--suffix",
                "the question",
                "--max_new_tokens",
                "4",
                "--repetition_penalty",
                "1.3",
                "--show_prompt",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    samples = captured.out.split("=== sample ")[1:]
    assert len(samples) == 2 and "4 tokens filled in each" in captured.err
    first = samples[0].split("\n", 1)[1].split()
    assert first[:2] == ["to", "be"] and first[-2:] == ["the", "question"] and len(first) == 8  # one word a token
    assert (
        main(
            [
                "--model",
                str(saved_model),
                "--prompt",
                "a",
                "--prompt",
                "b",
                "--prompt",
                "c",
                "--suffix",
                "x",
                "--suffix",
                "y",
            ]
        )
        == 2
    )
    assert "one suffix for every prompt or one per prompt" in capsys.readouterr().err


def test_cli_html_view_prompt_file_and_sampling_flags(saved_model, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("to be or\n\nthat is\n")
    view = tmp_path / "view.html"
    args = [
        "--model",
        str(saved_model),
        "--tokenizer",
        str(saved_model),
        "--prompt_file",
        str(prompts),
        "--gen_length",
        "8",
        "--steps",
        "8",
        "--block_length",
        "4",
        "--remasking",
        "margin",
        "--temperature",
        "0.7",
        "--top_k",
        "20",
        "--top_p",
        "0.9",
        "--cfg_scale",
        "0.5",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--visualize",
        str(view),
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count("=== sample") == 2
    page = view.read_text()
    assert page.startswith("<!DOCTYPE html>") and "step 0" in page and "<svg" in page
    assert main(args) == 0
    assert capsys.readouterr().out == first  # --seed makes it reproducible


def test_cli_remask_ratio_and_unconditional(saved_model, capsys):
    assert (
        main(
            [
                "--model",
                str(saved_model),
                "--max_new_tokens",
                "8",
                "--steps",
                "8",
                "--remask_ratio",
                "0.5",
                "--num_return_sequences",
                "2",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.count("=== sample") == 2
    assert "4 forward passes" in captured.err  # 8 -> 4 -> 2 -> 1 -> 0 masked


def test_cli_stream_shows_canvas_filling(saved_model, capsys):
    assert (
        main(["--model", str(saved_model), "--prompt", "to be", "--max_new_tokens", "6", "--steps", "3", "--stream"])
        == 0
    )
    out = capsys.readouterr().out
    assert "[start]" in out and "[step 3]" in out
    frames = out.split("[step")
    assert frames[0].count(MASK_PLACEHOLDER) == 6 and MASK_PLACEHOLDER not in frames[-1]


def test_cli_fast_path_flags_reach_the_sampler(saved_model, capsys):
    common = [
        "--model",
        str(saved_model),
        "--prompt",
        "to be",
        "--max_new_tokens",
        "8",
        "--steps",
        "8",
        "--block_length",
        "4",
        "--temperature",
        "0",
    ]
    assert main(common) == 0
    plain = capsys.readouterr().out
    assert main([*common, "--use_cache", "none", "--token_sampling", "inverse_cdf"]) == 0  # greedy: no draws
    assert capsys.readouterr().out == plain
    assert main([*common, "--use_cache", "dual"]) == 0  # the dual cache (its suffix keys are stale: other tokens)
    assert "8 forward passes" in capsys.readouterr().err
    assert main([*common, "--threshold", "0.01"]) == 0  # every position above 0.01 commits: fewer forwards
    assert "2 forward passes" in capsys.readouterr().err
    assert main([*common, "--threshold", "1.5"]) == 2
    assert "threshold" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not a choice: argparse's usage error
        main([*common, "--token_sampling", "uniform"])


def test_cli_reports_bad_flags_as_usage_errors(saved_model, capsys):
    assert (
        main(["--model", str(saved_model), "--prompt", "to be", "--max_new_tokens", "10", "--block_length", "4"]) == 2
    )
    assert "must be a multiple of `block_length`" in capsys.readouterr().err
    assert main(["--model", str(saved_model), "--visualize", "view.jpg"]) == 2
    assert main(["--model", str(saved_model), "--chat", "--prompt", "hi"]) == 2  # no chat template
    assert "no chat template" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# visualize.py


def test_canvas_text_shows_masks_with_tokenizer_spacing():
    tokenizer = word_tokenizer()
    ids = tokenizer("to be or not")["input_ids"]
    assert canvas_text(tokenizer, [ids[0], 99, ids[2], 99, 0], 99) == f"to {MASK_PLACEHOLDER} or {MASK_PLACEHOLDER}"


def test_token_pieces_concatenate_to_the_text():
    tokenizer = word_tokenizer()
    ids = tokenizer("the question whether tis")["input_ids"]
    assert "".join(token_pieces(tokenizer, ids)) == "the question whether tis"


def test_masked_fraction_per_step():
    decode_step = torch.tensor([[-1, -1, 0, 1, 1, 2], [-1, -1, 2, 0, 1, 1]])
    fractions = masked_fraction_per_step(decode_step, prompt_length=2)
    assert fractions.tolist() == [[1.0, 0.75, 0.25, 0.0], [1.0, 0.75, 0.25, 0.0]]


class FakeTty(io.StringIO):
    """A stream that says it is a terminal of `columns` x `lines`."""

    def __init__(self, columns=80, lines=24):
        super().__init__()
        self.size = os.terminal_size((columns, lines))

    def isatty(self):
        return True

    def fileno(self):
        raise OSError("no file descriptor")


def screen_of(text: str, columns: int, lines: int) -> list:
    """What a VT100-style terminal of that size shows after receiving `text` (pyte), trailing blanks dropped."""
    import pyte

    screen = pyte.Screen(columns, lines)
    screen.set_mode(pyte.modes.LNM)  # "\n" starts a new line at column 0, as a tty's output translation does
    pyte.Stream(screen).feed(text)
    rows = [row.rstrip() for row in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def test_screen_rows_follow_newlines_wrapping_and_wide_characters():
    assert screen_rows("abcdef", 3) == ["abc", "def"]  # exactly full rows: no empty row in between
    assert screen_rows("ab\ncd\n", 5) == ["ab", "cd", ""]
    assert screen_rows("a漢字b", 4) == ["a漢", "字b"]  # a wide character that no longer fits moves down
    assert screen_rows("x\ty\x07", 80) == ["x    y·"]


@pytest.mark.parametrize("columns, lines", [(20, 40), (20, 6)])
def test_terminal_streamer_leaves_exactly_the_final_frame(columns, lines, monkeypatch):
    tokenizer = word_tokenizer()
    words = tokenizer("to be or not that is the question whether tis nobler in the mind")["input_ids"]
    stream = FakeTty(columns, lines)
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: stream.size)
    streamer = TerminalCanvasStreamer(tokenizer, 99, prompt_length=2, stream=stream)
    canvas = torch.tensor([[0, words[0]] + [99] * 12, words[:2] + [99] * 12])  # a padded and a full prompt
    streamer.put(canvas)
    for position in range(2, 14):  # one token per step, as the sampler commits them
        canvas = canvas.clone()
        canvas[:, position] = words[position]
        streamer.put(canvas)
    streamer.end()
    final = streamer.frame(canvas, step=12)  # what a terminal shows if only the final frame had been printed
    assert screen_of(stream.getvalue(), columns, lines) == screen_of("\n".join(final) + "\n\n", columns, lines)
    assert MASK_PLACEHOLDER not in "".join(screen_of(stream.getvalue(), columns, lines))
    assert final[1].startswith("0: to ") and final[2].startswith("1: to be ")  # the prompt is part of the view


def test_stream_on_a_real_pseudo_terminal_ends_with_the_final_text(tmp_path):
    """`llada-generate --stream` in a pseudo-terminal of 80 columns, on text with line breaks and rows that wrap:
    the screen a terminal emulator keeps holds the final canvas and the printed samples, and no frame drawn before
    them."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    saved_model = tmp_path / "model"
    tiny_model(initializer_range=0.2).save_pretrained(saved_model)
    word_tokenizer(line_break_every=4).save_pretrained(saved_model)
    columns, lines = 80, 60
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_PROGRESS_BARS="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llada.cli.generate",
            "--model",
            str(saved_model),
            "--prompt",
            "to be",
            "--prompt",
            "the question whether",
            "--max_new_tokens",
            "96",
            "--steps",
            "48",
            "--block_length",
            "32",
            "--temperature",
            "0.8",
            "--seed",
            "1",
            "--show_prompt",
            "--stream",
        ],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    text = output.decode("utf-8").replace("\r\n", "\n")
    assert text.count("[step ") > 1 and "\x1b[" in text  # redrawn in place, frame after frame
    # a terminal that had received only the final frame and what follows it shows:
    expected = screen_of(text[text.rindex("[step ") :], columns, lines)
    assert screen_of(text, columns, lines) == expected
    assert MASK_PLACEHOLDER not in "".join(expected)
    final_frame = text[text.rindex("[step ") : text.index("=== sample 0 ===")]
    printed = text[text.index("=== sample 0 ===") :]
    assert final_frame.count("\n") > 8 and max(len(line) for line in printed.split("\n")) > columns  # breaks, wraps
    assert "0: to be " in final_frame and "1: the question whether " in final_frame  # the prompt is shown too
    assert text.split("=== sample 0 ===\n")[1].startswith("to be") and "=== sample 1 ===\nthe question" in text


def test_save_decode_view_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="must end in .png or .html"):
        save_decode_view(tmp_path / "view.gif", word_tokenizer(), torch.tensor([[3]]), torch.tensor([[0]]), 0)
    assert not list(tmp_path.iterdir())


def test_text_generation_pipeline_calls_generate(saved_model):
    from transformers import AutoTokenizer, pipeline

    from llada import LLaDAForMaskedDiffusion

    generator = pipeline(
        "text-generation",
        model=LLaDAForMaskedDiffusion.from_pretrained(saved_model),
        tokenizer=AutoTokenizer.from_pretrained(saved_model),
    )
    outputs = generator(["to be or", "that is the question"], max_new_tokens=6, steps=3)
    assert [len(out) for out in outputs] == [1, 1]
    assert outputs[1][0]["generated_text"].startswith("that is the question")
