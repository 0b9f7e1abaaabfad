"""The denoising views (llada/visualize.py): the canvas as text, the masked fraction per step, the live terminal
view (against a VT100 emulator, and `llada-generate --stream` on a real pseudo-terminal) and the saved picture."""

import io
import os

import pytest
import torch

from helpers import tiny_model, word_tokenizer
from llada.visualize import (
    MASK_PLACEHOLDER,
    TerminalCanvasStreamer,
    canvas_text,
    masked_fraction_per_step,
    save_decode_view,
    screen_rows,
    token_pieces,
)


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
        [sys.executable, "-m", "llada.cli.generate", "--model", str(saved_model)]
        + ["--prompt", "to be", "--prompt", "the question whether"]
        + "--max_new_tokens 96 --steps 48 --block_length 32 --temperature 0.8 --seed 1 --show_prompt --stream".split(),
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
