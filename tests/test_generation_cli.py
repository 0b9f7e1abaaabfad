"""Tests for `llada-generate` (llada/cli/generate.py) and the denoising views (llada/visualize.py)."""

import io

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from conftest import tiny_model
from llada.cli.generate import main
from llada.visualize import (
    MASK_PLACEHOLDER,
    TerminalCanvasStreamer,
    canvas_text,
    masked_fraction_per_step,
    save_decode_view,
    token_pieces,
)

WORDS = "to be or not that is the question whether tis nobler in the mind".split()


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer matching the tiny config: [PAD]=0, [EOS]=1, [UNK]=2, words, fillers, [MASK]=99."""
    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    while len(vocab) < 99:
        vocab[f"w{len(vocab)}"] = len(vocab)
    vocab["[MASK]"] = 99
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]",
                                   unk_token="[UNK]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model(initializer_range=0.2).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


def test_cli_generates_and_writes_png(saved_model, tmp_path, capsys):
    view = tmp_path / "view.png"
    assert main(["--model", str(saved_model), "--prompt", "to be", "--prompt", "the question whether",
                 "--max_new_tokens", "8", "--steps", "4", "--visualize", str(view)]) == 0
    out = capsys.readouterr().out
    assert out.count("=== sample") == 2
    assert view.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_html_view_prompt_file_and_sampling_flags(saved_model, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("to be or\n\nthat is\n")
    view = tmp_path / "view.html"
    args = ["--model", str(saved_model), "--tokenizer", str(saved_model), "--prompt_file", str(prompts),
            "--gen_length", "8", "--steps", "8", "--block_length", "4", "--remasking", "margin", "--temperature",
            "0.7", "--top_k", "20", "--top_p", "0.9", "--cfg_scale", "0.5", "--seed", "3", "--device", "cpu",
            "--dtype", "float32", "--visualize", str(view)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count("=== sample") == 2
    page = view.read_text()
    assert page.startswith("<!DOCTYPE html>") and "step 0" in page and "<svg" in page
    assert main(args) == 0
    assert capsys.readouterr().out == first  # --seed makes it reproducible


def test_cli_remask_ratio_and_unconditional(saved_model, capsys):
    assert main(["--model", str(saved_model), "--max_new_tokens", "8", "--steps", "8", "--remask_ratio", "0.5",
                 "--num_return_sequences", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("=== sample") == 2
    assert "4 forward passes" in captured.err  # 8 -> 4 -> 2 -> 1 -> 0 masked


def test_cli_stream_shows_canvas_filling(saved_model, capsys):
    assert main(["--model", str(saved_model), "--prompt", "to be", "--max_new_tokens", "6", "--steps", "3",
                 "--stream"]) == 0
    out = capsys.readouterr().out
    assert "[start]" in out and "[step 3]" in out
    frames = out.split("[step")
    assert frames[0].count(MASK_PLACEHOLDER) == 6 and MASK_PLACEHOLDER not in frames[-1]


def test_cli_reports_bad_flags_as_usage_errors(saved_model, capsys):
    assert main(["--model", str(saved_model), "--prompt", "to be", "--max_new_tokens", "10",
                 "--block_length", "4"]) == 2
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


def test_terminal_streamer_redraws_in_place_on_a_tty():
    class FakeTty(io.StringIO):
        def isatty(self):
            return True

    stream = FakeTty()
    streamer = TerminalCanvasStreamer(word_tokenizer(), 99, prompt_length=1, stream=stream)
    streamer.put(torch.tensor([[3, 99, 99]]))
    streamer.put(torch.tensor([[3, 4, 99]]))
    streamer.end()
    text = stream.getvalue()
    assert "\x1b[2F\x1b[J" in text  # the second frame moved back over the two lines of the first
    assert text.rstrip().endswith(f"0: be {MASK_PLACEHOLDER}")


def test_save_decode_view_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="must end in .png or .html"):
        save_decode_view(tmp_path / "view.gif", word_tokenizer(), torch.tensor([[3]]), torch.tensor([[0]]), 0)
    assert not list(tmp_path.iterdir())


def test_text_generation_pipeline_calls_generate(saved_model):
    from transformers import AutoTokenizer, pipeline

    from llada import LLaDAForMaskedDiffusion

    generator = pipeline("text-generation", model=LLaDAForMaskedDiffusion.from_pretrained(saved_model),
                         tokenizer=AutoTokenizer.from_pretrained(saved_model))
    outputs = generator(["to be or", "that is the question"], max_new_tokens=6, steps=3)
    assert [len(out) for out in outputs] == [1, 1]
    assert outputs[1][0]["generated_text"].startswith("that is the question")
