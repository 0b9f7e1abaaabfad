"""Tests for `llada-generate` (llada/cli/generate.py); its views are tested in generation/test_visualize.py."""

import pytest

from llada.cli.generate import main
from llada.visualize import MASK_PLACEHOLDER


def test_cli_generates_and_writes_png(saved_model, tmp_path, capsys):
    view = tmp_path / "view.png"
    two_prompts = ["--model", str(saved_model), "--prompt", "to be", "--prompt", "the question whether"]
    assert main([*two_prompts, *"--max_new_tokens 8 --steps 4 --visualize".split(), str(view)]) == 0
    out = capsys.readouterr().out
    assert out.count("=== sample") == 2
    assert view.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_infills_between_prompt_and_suffix(saved_model, capsys):
    assert (
        main(
            ["--model", str(saved_model), "--prompt", "to be", "--prompt", "or", "--suffix", "the question"]
            + "--max_new_tokens 4 --repetition_penalty 1.3 --show_prompt".split()
        )
        == 0
    )
    captured = capsys.readouterr()
    samples = captured.out.split("=== sample ")[1:]
    assert len(samples) == 2 and "4 tokens filled in each" in captured.err
    first = samples[0].split("\n", 1)[1].split()
    assert first[:2] == ["to", "be"] and first[-2:] == ["the", "question"] and len(first) == 8  # one word a token
    assert main(["--model", str(saved_model), *"--prompt a --prompt b --prompt c --suffix x --suffix y".split()]) == 2
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
