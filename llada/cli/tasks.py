"""`llada-tasks`: reasoning and planning puzzles with checkable answers (star graph, Countdown, Sudoku).

    llada-tasks generate stargraph data/stargraph --num_train 50000 --num_test 500 --option degree=3
    llada-train --config stargraph --train_file data/stargraph/train.jsonl --output_dir runs/stargraph
    llada-tasks evaluate stargraph --model runs/stargraph --data data/stargraph/test.jsonl --remasking margin

`evaluate` verifies every answer with the task's checker and prints the accuracy and the tokens committed per forward
call; `--threshold`, `--factor` and `--entropy_bound` decode several positions per forward (LLaDA models only).
"""

import argparse
import json
import sys
from typing import List, Optional

from ..sampling_llada import REMASKING_STRATEGIES
from .common import CLIError, run_main


def build_parser() -> argparse.ArgumentParser:
    from ..tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="llada-tasks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="Write train.jsonl / test.jsonl of seeded puzzles.")
    generate.add_argument("task", choices=sorted(TASKS))
    generate.add_argument("out_dir", help="Folder for train.jsonl, test.jsonl and task.json.")
    generate.add_argument("--num_train", type=int, default=50000)
    generate.add_argument("--num_test", type=int, default=500, help="Held-out puzzles, none of them in training.")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="A task option, e.g. degree=4 or path_length=6 (stargraph), max_number=50 "
        "(countdown), min_givens=35 (sudoku).",
    )

    evaluate = commands.add_parser("evaluate", help="Accuracy of a trained model on held-out puzzles.")
    evaluate.add_argument("task", choices=sorted(TASKS))
    evaluate.add_argument("--model", required=True, help="Saved LLaDA model or autoregressive baseline.")
    evaluate.add_argument("--data", required=True, help="A jsonl file of puzzles (prompt/response).")
    evaluate.add_argument("--limit", type=int, help="Score the first this-many puzzles only.")
    evaluate.add_argument("--max_new_tokens", type=int, help="Canvas length (default: the longest answer + EOS).")
    evaluate.add_argument("--remasking", choices=list(REMASKING_STRATEGIES), help="LLaDA: which position first.")
    evaluate.add_argument("--steps", type=int, help="LLaDA: steps (default: one per canvas position).")
    evaluate.add_argument("--threshold", type=float, help="LLaDA: confidence-threshold parallel decoding.")
    evaluate.add_argument("--factor", type=float, help="LLaDA: factor-rule parallel decoding.")
    evaluate.add_argument("--entropy_bound", type=float, help="LLaDA: entropy-bounded parallel decoding.")
    evaluate.add_argument("--show", type=int, default=3, help="Print this many prompts with their answers.")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_main("llada-tasks", _main, argv)


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return _generate(args) if args.command == "generate" else _evaluate(args)


def _parse_options(items: List[str]) -> dict:
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            options[name] = int(value)
        except ValueError:
            raise CLIError(f"--option expects NAME=INT, got {item!r}.") from None
        if not sep or not name:
            raise CLIError(f"--option expects NAME=INT, got {item!r}.")
    return options


def _generate(args) -> int:
    from ..tasks import write_task_data

    try:
        paths = write_task_data(
            args.task, args.out_dir, args.num_train, args.num_test, args.seed, **_parse_options(args.option)
        )
    except TypeError as error:  # an option the task does not have
        raise CLIError(f"{args.task}: {error}") from error
    print(
        f"Wrote {args.num_train} training and {args.num_test} held-out {args.task} puzzles: {paths['train']}, "
        f"{paths['test']}"
    )
    return 0


def _evaluate(args) -> int:
    from ..tasks import read_rows
    from ..tasks.evaluate import evaluate_model, is_diffusion, load_model
    from .generate import check_model_folder, loading

    try:
        rows = read_rows(args.data)[: args.limit]
    except (ValueError, UnicodeDecodeError) as error:
        raise CLIError(f"--data {args.data!r}: not a jsonl file of puzzles ({error}).") from None
    if not rows or not all(isinstance(row, dict) and "prompt" in row for row in rows):
        raise CLIError(
            f"--data {args.data!r}: expected jsonl rows with a 'prompt' (and 'response'), got "
            f"{len(rows)} row(s) without one."
        )
    check_model_folder(args.model)
    with loading("--model", args.model):
        model, tokenizer = load_model(args.model)
    sampling = {
        name: getattr(args, name)
        for name in ("remasking", "steps", "threshold", "factor", "entropy_bound")
        if getattr(args, name) is not None
    }
    if sampling and not is_diffusion(model):
        raise CLIError(f"{args.model} is an autoregressive model: it decodes greedily; drop {sorted(sampling)}.")
    result = evaluate_model(model, tokenizer, args.task, rows, args.max_new_tokens, **sampling)
    for row, answer in list(zip(rows, result["answers"]))[: args.show]:
        print(f"{row['prompt']}  ->  {answer}")
    summary = {k: v for k, v in result.items() if k != "answers"}
    print(json.dumps(summary))
    print(
        f"[{args.task}: {result['correct']}/{result['total']} correct ({100 * result['accuracy']:.1f} %), "
        f"{result['tokens_per_forward']:.2f} tokens per forward]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
