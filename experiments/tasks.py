"""One command per reasoning / planning task: make the data, train LLaDA and the autoregressive baseline of the same
size on it (same data, steps and rows per step; one thread each, side by side), and print the accuracy table.

    python experiments/tasks.py stargraph            # ~30 min on 2 cores
    python experiments/tasks.py countdown3
    python experiments/tasks.py countdown4
    python experiments/tasks.py stargraph --skip_training   # re-evaluate the trained runs

Training goes through `llada-train --config TASK` (the task's YAML in llada/configs/) on the generated
`train.jsonl`; every checkpoint is scored on held-out puzzles for the accuracy-against-training-time curve, and the
final LLaDA model under every remasking strategy and parallel-decoding rule. Writes `results.json`, `results.md` and
`accuracy.png` to `experiments/results/TASK/` (the runs themselves go to `runs/tasks/TASK/`).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("llada", "autoregressive")
# Parallel-decoding rules measured on the final LLaDA model, beside one token per forward.
PARALLEL_RULES = [
    {"threshold": 0.9},
    {"threshold": 0.7},
    {"threshold": 0.5},
    {"threshold": 0.7, "credit_decay": 0.5},
    {"factor": 1.0},
    {"factor": 2.0},
    {"entropy_bound": 0.1},
    {"entropy_bound": 0.5},
    {"entropy_bound": 1.0},
    {"entropy_bound": 2.0},
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--num_train", type=int, default=50000)
    parser.add_argument("--num_test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_steps", type=int, help="Training steps (default: the task config's).")
    parser.add_argument("--runs", default=None, help="Where the data and models go (default runs/tasks/TASK).")
    parser.add_argument("--results", default=None, help="Where the tables go (default experiments/results/TASK).")
    parser.add_argument("--skip_training", action="store_true", help="Evaluate the runs already there.")
    parser.add_argument(
        "--train",
        nargs="+",
        choices=MODELS,
        default=list(MODELS),
        help="Which models to train (default both; the others must already be in RUNS).",
    )
    parser.add_argument("--threads", type=int, default=1, help="Torch threads of each process (default 1).")
    parser.add_argument("--train_args", default="", help="Extra llada-train flags for both models, one string.")
    parser.add_argument(
        "--llada_args",
        default="",
        help="Extra llada-train flags for the LLaDA run only, after the others (they win), e.g. "
        "'--autoregressive_init_steps 2000 --max_steps 2000': LLaDA from the AR model of the same size.",
    )
    parser.add_argument(
        "--llada_dir",
        default=None,
        help="Evaluate this LLaDA run instead of RUNS/llada (e.g. a longer run of the same recipe).",
    )
    parser.add_argument(
        "--curve_puzzles",
        type=int,
        default=200,
        help="Held-out puzzles scored at each checkpoint (the final tables use all of them).",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from llada.tasks import read_rows, write_task_data

    runs = Path(args.runs or ROOT / "runs" / "tasks" / args.task)
    results = Path(args.results or ROOT / "experiments" / "results" / args.task)
    data = runs / "data"
    if not (data / "test.jsonl").is_file():
        write_task_data(args.task, data, args.num_train, args.num_test, args.seed)
        print(f"Data: {data}", flush=True)
    if not args.skip_training:
        train_both(args, runs, data)
    rows = read_rows(data / "test.jsonl")
    dirs = {
        "llada": Path(args.llada_dir) if args.llada_dir else runs / "llada",
        "autoregressive": runs / "autoregressive",
    }
    report = evaluate_runs(args.task, dirs, rows, args.curve_puzzles)
    report["command"] = "python experiments/tasks.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    write_report(args.task, report, results)
    return 0


def train_both(args, runs: Path, data: Path) -> None:
    """Both models side by side, one process each with `--threads` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    procs = {}
    for model in args.train:
        command = [
            sys.executable,
            "-m",
            "llada.cli.train",
            "--config",
            args.task,
            "--model_type",
            model,
            "--train_file",
            str(data / "train.jsonl"),
            "--output_dir",
            str(runs / model),
            "--torch_num_threads",
            str(args.threads),
            "--overwrite_output_dir",
            *shlex.split(args.train_args),
        ]
        if args.max_steps:
            command += ["--max_steps", str(args.max_steps)]
        if model == "llada":
            command += shlex.split(args.llada_args)
        log = open(runs / f"{model}.log", "w")
        procs[model] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        print(f"Training {model}: log {runs / f'{model}.log'}", flush=True)
    for model, (proc, log) in procs.items():
        _, status, usage = os.wait4(proc.pid, 0)  # the process's own CPU time, whatever else ran on the machine
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if proc.returncode != 0:
            raise SystemExit(f"Training {model} failed; see {log.name}")
        cpu = {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1)}
        (runs / model / "cpu_seconds.json").write_text(json.dumps(cpu) + "\n")


def checkpoints(run: Path) -> list:
    """`(step, minutes, path)` of every checkpoint and the final model; the minutes are the run's CPU time
    (`cpu_seconds.json`, written by `train_both`; the wall-clock `train_runtime` for a run trained elsewhere) in
    proportion to the step. A run that started from an autoregressive stage (`autoregressive_init_steps`, trained
    in `RUN-ar-init` by the same process) counts that stage's time first: the CPU time is split between the stages
    as their wall-clock times are."""
    state = json.loads((run / "trainer_state.json").read_text())
    stage_2 = json.loads((run / "train_results.json").read_text())["train_runtime"]
    ar_init = run.with_name(f"{run.name}-ar-init") / "train_results.json"
    stage_1 = json.loads(ar_init.read_text())["train_runtime"] if ar_init.is_file() else 0.0
    if (run / "cpu_seconds.json").is_file():
        seconds = json.loads((run / "cpu_seconds.json").read_text())["cpu_seconds"]
    else:
        seconds = stage_1 + stage_2
    max_steps, minutes = state["max_steps"], seconds / 60
    before = stage_1 / (stage_1 + stage_2)  # the AR stage's share of the time, spent before step 0
    found = sorted((int(p.name.split("-")[1]), p) for p in run.glob("checkpoint-*") if p.is_dir())
    found = [(step, path) for step, path in found if step < max_steps] + [(max_steps, run)]
    return [(step, minutes * (before + (1 - before) * step / max_steps), path) for step, path in found]


def evaluate_runs(task: str, dirs: dict, rows: list, curve_puzzles: int) -> dict:
    from llada.tasks.evaluate import STRATEGIES, evaluate_model, load_model

    report = {
        "task": task,
        "num_test": len(rows),
        "curve_puzzles": min(curve_puzzles, len(rows)),
        "curves": {},
        "strategies": {},
        "parallel": [],
    }
    for model_name in MODELS:
        curve = []
        for step, minutes, path in checkpoints(dirs[model_name]):
            model, tokenizer = load_model(str(path))
            scored = rows if path == dirs[model_name] else rows[:curve_puzzles]
            result = evaluate_model(model, tokenizer, task, scored)
            curve.append({"step": step, "minutes": round(minutes, 2), "accuracy": result["accuracy"]})
            print(f"{model_name} step {step} ({minutes:.1f} min): {100 * result['accuracy']:.1f} %", flush=True)
        report["curves"][model_name] = curve
    model, tokenizer = load_model(str(dirs["llada"]))
    for strategy in STRATEGIES:
        result = evaluate_model(model, tokenizer, task, rows, remasking=strategy)
        report["strategies"][strategy] = _summary(result)
        print(f"llada {strategy}: {100 * result['accuracy']:.1f} %", flush=True)
    base = report["strategies"]["low_confidence"]["accuracy"]
    for rule in PARALLEL_RULES:
        result = evaluate_model(model, tokenizer, task, rows, **rule)
        report["parallel"].append({"rule": rule, **_summary(result)})
        print(
            f"llada {rule}: {100 * result['accuracy']:.1f} %, {result['tokens_per_forward']:.2f} tokens/forward",
            flush=True,
        )
    matched = [r for r in report["parallel"] if r["accuracy"] >= base - 0.01]
    report["best_matched"] = max(matched, key=lambda r: r["tokens_per_forward"]) if matched else None
    report["autoregressive"] = report["curves"]["autoregressive"][-1]  # the final model, on every puzzle
    return report


def _summary(result: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items() if k != "answers"}


def write_report(task: str, report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    curves = report["curves"]
    lines = [
        f"# {task}: LLaDA against the autoregressive baseline",
        "",
        f"`{report['command']}` ({report['num_test']} held-out puzzles, answers verified by the checker; "
        "both models of the same size, data and rows per step, trained side by side with one thread each; "
        "the steps are the recipe's unless `--max_steps` or `--llada_args` say otherwise).",
        "",
        "| model | decoding | accuracy | tokens / forward | training CPU minutes |",
        "|---|---|---|---|---|",
    ]
    ar = curves["autoregressive"][-1]
    lines.append(f"| autoregressive | greedy | {100 * ar['accuracy']:.1f} % | 1.00 | {ar['minutes']:.1f} |")
    minutes = curves["llada"][-1]["minutes"]
    for strategy, r in report["strategies"].items():
        lines.append(
            f"| LLaDA | {strategy}, one token per forward | {100 * r['accuracy']:.1f} % | "
            f"{r['tokens_per_forward']:.2f} | {minutes:.1f} |"
        )
    for r in report["parallel"]:
        rule = ", ".join(f"{k} {v}" for k, v in r["rule"].items())
        lines.append(
            f"| LLaDA | low_confidence, {rule} | {100 * r['accuracy']:.1f} % | "
            f"{r['tokens_per_forward']:.2f} | {minutes:.1f} |"
        )
    best = report["best_matched"]
    lines += [
        "",
        "Tokens per forward at accuracy within 1 point of one token per forward: "
        + (f"**{best['tokens_per_forward']:.2f}** ({best['rule']})." if best else "none of the rules."),
        "",
        f"Accuracy against training time (one thread; checkpoints on the first {report['curve_puzzles']} "
        "puzzles, the final model on all):",
        "",
        "| model | step | CPU minutes | accuracy |",
        "|---|---|---|---|",
    ]
    for name, curve in curves.items():
        lines += [f"| {name} | {c['step']} | {c['minutes']:.1f} | {100 * c['accuracy']:.1f} % |" for c in curve]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot_curves(task, curves, out / "accuracy.png")
    print("\n".join(lines))
    print(f"\nWrote {out / 'results.md'}, {out / 'results.json'}, {out / 'accuracy.png'}")


def plot_curves(task: str, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in curves.items():
        ax.plot(
            [c["minutes"] for c in curve],
            [100 * c["accuracy"] for c in curve],
            marker="o",
            label="LLaDA (low_confidence)" if name == "llada" else "autoregressive (greedy)",
        )
    ax.set_xlabel("training CPU minutes (one thread)")
    ax.set_ylabel("held-out exact accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(task)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    started = time.time()
    code = main()
    print(f"[{(time.time() - started) / 60:.1f} min]")
    sys.exit(code)
