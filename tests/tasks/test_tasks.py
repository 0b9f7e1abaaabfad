"""Reasoning / planning tasks: generators, checkers, held-out splits, the evaluation pipeline end to end, and the
parallel-decoding measures it reports (tokens per forward, entropy-bounded commits)."""

import json
import random

import pytest
import torch

from helpers import MASK, tiny_model
from llada.sampling_llada import parallel_transfer_count
from llada.tasks import TASKS, countdown, make_splits, read_rows, stargraph, sudoku, write_task_data


@pytest.mark.parametrize("task", ["stargraph", "countdown3", "countdown4"])
def test_generated_puzzles_check_and_solve(task):
    spec = TASKS[task]
    train, test = make_splits(task, num_train=200, num_test=50, seed=3)
    assert all(spec.check(row["prompt"], row["response"]) for row in train + test)
    assert all(spec.check(row["prompt"], spec.solve(row["prompt"])) for row in test)
    assert not {row["prompt"] for row in test} & {row["prompt"] for row in train}  # held out
    assert len({row["prompt"] for row in test}) == 50
    assert make_splits(task, 200, 50, seed=3) == (train, test)  # seeded


def test_stargraph_shape_and_checker():
    row = stargraph.make_puzzle(random.Random(0), degree=4, path_length=6)
    edges, source, target = stargraph.parse_prompt(row["prompt"])
    assert len(edges) == 4 * 5 and len(row["response"]) == 6
    assert row["response"][0] == source and row["response"][-1] == target
    assert not stargraph.check(row["prompt"], row["response"][:-1])
    wrong = source + "".join(c for p, c in sorted(edges) if p == source and c != row["response"][1])[:1]
    assert not stargraph.check(row["prompt"], wrong + row["response"][2:])
    with pytest.raises(ValueError, match="degree"):
        stargraph.make_puzzle(random.Random(0), degree=1)
    with pytest.raises(ValueError, match="node names"):
        stargraph.make_puzzle(random.Random(0), degree=20, path_length=5)


def test_countdown_checker_accepts_any_correct_solution():
    prompt = "2,3,4>20:"
    assert countdown.check(prompt, "2+3=5,5*4=20")
    assert countdown.check(prompt, "3+2=5,4*5=20")  # another order: also correct
    assert not countdown.check(prompt, "2+3=5,5*4=21")  # wrong arithmetic
    assert not countdown.check(prompt, "2+2=4,4*5=20")  # 2 used twice
    assert not countdown.check(prompt, "2+3=5")  # does not use every number
    assert not countdown.check(prompt, "4/3=1,2+1=3")  # inexact division
    assert not countdown.check(prompt, "2+3=5,5*4=20,")  # a trailing separator is not an answer
    assert countdown.check(prompt, " 2+3=5,5*4=20 ")


def test_countdown_fixed_width():
    rng = random.Random(3)
    for _ in range(20):
        row = countdown.make_puzzle(rng, num_numbers=4, width=2)
        assert countdown.check(row["prompt"], row["response"])
        assert len(row["response"]) == 3 * len("07*03=21,") - 1  # every equation takes the same positions
        assert all(len(n) == 2 for n in row["prompt"].rstrip(":").replace(">", ",").split(","))
    assert countdown.check("02,03,04>20:", "2+3=5,5*4=20")  # the checker reads numbers, not their widths
    with pytest.raises(ValueError, match="too narrow"):
        countdown.make_puzzle(rng, max_result=100, width=2)
    with pytest.raises(ValueError, match="width"):
        countdown.make_puzzle(rng, width=-1)


def test_sudoku_unique_and_checker():
    row = sudoku.make_puzzle(random.Random(1), min_givens=45)
    givens = [int(c) for c in row["prompt"].rstrip("=")]
    assert sudoku.count_solutions(givens)[0] == 1
    assert sudoku.check(row["prompt"], row["response"])
    broken = row["response"][1] + row["response"][0] + row["response"][2:]
    assert not sudoku.check(row["prompt"], broken)  # two cells of a row swapped: a column breaks


def test_sudoku_solver_counts_solutions():
    solution = [int(c) for c in sudoku.make_puzzle(random.Random(2), min_givens=81)["response"]]
    assert sudoku.count_solutions(solution) == (1, solution)
    assert sudoku.count_solutions([0] * 81)[0] == 2  # counting stops at the limit
    assert sudoku.count_solutions([0] * 81, limit=5)[0] == 5
    # two rows of one band whose digits x, y sit crosswise in two columns: emptied, the four cells take x and y
    # either way, so the grid has exactly two solutions
    found = [
        (a, b, c, d)
        for a in range(9)
        for b in range(a + 1, (a // 3 + 1) * 3)
        for c in range(9)
        for d in range(c + 1, 9)
        if solution[a * 9 + c] == solution[b * 9 + d] and solution[a * 9 + d] == solution[b * 9 + c]
    ]
    a, b, c, d = found[0]
    grid = list(solution)
    for cell in (a * 9 + c, a * 9 + d, b * 9 + c, b * 9 + d):
        grid[cell] = 0
    assert sudoku.count_solutions(grid)[0] == 2


def test_write_task_data(tmp_path):
    paths = write_task_data("countdown3", tmp_path / "cd", num_train=30, num_test=10, seed=0, max_number=9)
    assert len(read_rows(paths["train"])) == 30 and len(read_rows(paths["test"])) == 10
    meta = json.loads(paths["meta"].read_text())
    assert meta["options"] == {"num_numbers": 3, "width": 2, "max_number": 9} and meta["seed"] == 0
    assert not list(tmp_path.glob("cd/*.partial"))
    with pytest.raises(ValueError, match="Unknown task"):
        write_task_data("chess", tmp_path, 1, 1)
    with pytest.raises(ValueError, match="num_test"):
        make_splits("stargraph", 1, -1)


def test_entropy_bounded_count():
    confidence = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.9, -float("inf"), 0.5, 0.4]])
    entropy = torch.tensor([[0.1, 0.2, 0.3, 5.0], [0.0, 0.0, 0.0, 0.0]])
    # row 0: excess after 1, 2, 3, 4 positions = 0, 0.1, 0.3, 0.6 (sum minus max); row 1: the -inf slot never counts
    assert parallel_transfer_count(confidence, entropy=entropy, entropy_bound=0.15).tolist() == [2, 3]
    assert parallel_transfer_count(confidence, entropy=entropy, entropy_bound=0.0).tolist() == [1, 3]
    assert parallel_transfer_count(confidence, entropy=entropy, entropy_bound=10.0).tolist() == [4, 3]


def test_tokens_per_forward_in_output():
    model = tiny_model()
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    one = model.diffusion_generate(ids, max_new_tokens=8, steps=8, return_dict_in_generate=True)
    assert one.tokens_per_forward == 1.0 and one.nfe == 8
    # every position is committed at the first step when any entropy is allowed: 8 tokens in one forward
    wide = model.diffusion_generate(ids, max_new_tokens=8, steps=8, entropy_bound=1e9, return_dict_in_generate=True)
    assert wide.nfe == 1 and wide.tokens_per_forward == 8.0
    assert (wide.sequences[:, 3:] != MASK).all()
    # a bound of 0 with a random model (no certain position) is the schedule: one per step
    zero = model.diffusion_generate(ids, max_new_tokens=8, steps=8, entropy_bound=0.0, return_dict_in_generate=True)
    assert torch.equal(zero.sequences, one.sequences)
    with pytest.raises(ValueError, match="not threshold and entropy_bound"):
        model.diffusion_generate(ids, max_new_tokens=8, threshold=0.9, entropy_bound=1.0)


@pytest.fixture(scope="module")
def tiny_stargraph_runs(tmp_path_factory):
    """A tiny LLaDA and autoregressive model trained for a few steps on tiny star graphs through llada-train's
    own code path (`--config stargraph`)."""
    from llada.training.run import parse_training_args, run_training

    root = tmp_path_factory.mktemp("stargraph")
    paths = write_task_data("stargraph", root / "data", num_train=64, num_test=8, seed=0, degree=2, path_length=3)
    runs = {}
    for kind in ("llada", "autoregressive"):
        runs[kind] = root / kind
        run_training(
            *parse_training_args(
                [
                    "--config",
                    "stargraph",
                    "--model_type",
                    kind,
                    "--train_file",
                    str(paths["train"]),
                    "--output_dir",
                    str(runs[kind]),
                    "--max_steps",
                    "4",
                    "--per_device_train_batch_size",
                    "4",
                    "--hidden_size",
                    "32",
                    "--intermediate_size",
                    "64",
                    "--num_hidden_layers",
                    "1",
                    "--save_steps",
                    "2",
                    "--logging_steps",
                    "2",
                    "--plot_loss_curve",
                    "false",
                    "--torch_num_threads",
                    "1",
                ]
            )
        )
    return paths, runs


def test_task_pipeline_end_to_end(tiny_stargraph_runs):
    from llada.tasks.evaluate import evaluate_model, load_model

    paths, runs = tiny_stargraph_runs
    rows = read_rows(paths["test"])
    model, tokenizer = load_model(str(runs["llada"]))
    assert model.generation_config.max_new_tokens == 6  # the config's canvas: the path and EOS (greedy)
    for options in ({}, {"remasking": "left_to_right"}, {"threshold": 0.5}, {"entropy_bound": 0.5}):
        result = evaluate_model(model, tokenizer, "stargraph", rows, **options)
        assert result["total"] == 8 and 0 <= result["accuracy"] <= 1
        assert result["correct"] == sum(stargraph.check(r["prompt"], a) for r, a in zip(rows, result["answers"]))
        assert result["tokens_per_forward"] >= 1.0
    baseline, ar_tokenizer = load_model(str(runs["autoregressive"]))
    result = evaluate_model(baseline, ar_tokenizer, "stargraph", rows)
    assert result["total"] == 8 and result["tokens_per_forward"] == 1.0
    with pytest.raises(ValueError, match="autoregressive model decodes greedily"):
        evaluate_model(baseline, ar_tokenizer, "stargraph", rows, threshold=0.9)


def test_tasks_cli(tiny_stargraph_runs, tmp_path, capsys):
    from llada.cli.tasks import main

    paths, runs = tiny_stargraph_runs
    evaluate = ["evaluate", "stargraph", "--data", str(paths["test"]), "--model"]
    assert main([*evaluate, str(runs["llada"]), *"--entropy_bound 0.5 --show 1".split()]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["total"] == 8 and "tokens per forward" in err
    assert main(["generate", "countdown3", str(tmp_path / "cd"), "--num_train", "5", "--num_test", "2"]) == 0
    assert main(["generate", "countdown3", str(tmp_path / "cd"), "--option", "max_number"]) == 2
    assert "NAME=INT" in capsys.readouterr().err
    assert main([*evaluate, str(runs["autoregressive"]), "--threshold", "0.9"]) == 2
