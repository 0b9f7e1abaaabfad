"""Repeated data: LLaDA trained for many epochs of the main job's corpus (from scratch, and adapted from the AR
baseline) against the autoregressive model's best, the curves on one plot and where they cross.

    llada-train --config tinyshakespeare-scratch --max_steps 6400 --eval_steps 640 --torch_num_threads 1 \\
        --output_dir runs/long/llada-scratch                                     # 40 epochs, about 1 CPU-hour
    llada-train --init_from runs/adapt/ar --logit_shift --learning_rate 0.001 --max_steps 4000 --eval_steps 800 \\
        --torch_num_threads 1 --output_dir runs/long/llada-adapted               # 25 epochs from the 400-step AR model
    python experiments/long_run.py --runs runs/long/llada-scratch runs/long/llada-adapted \\
        --ar runs/autoregressive-tinyshakespeare --epochs_before llada-adapted=5

Reads each run's `trainer_state.json` (every evaluation: the validation perplexity bound of a LLaDA run, the
perplexity of an autoregressive one) and writes `results.md`, `results.json` and `curves.png` (against epochs) to
`--results_dir` (default experiments/results/long_run).
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="LLaDA runs (llada-train output folders).")
    parser.add_argument("--ar", required=True, help="The autoregressive run whose best perplexity is the reference.")
    parser.add_argument("--results_dir", default=str(ROOT / "experiments" / "results" / "long_run"))
    parser.add_argument(
        "--epochs_before",
        nargs="*",
        default=[],
        metavar="RUN=EPOCHS",
        help="Epochs a run saw before it started (an adapted run: its AR model's), added to its own.",
    )
    args = parser.parse_args(argv)
    before = {}
    for item in args.epochs_before:
        name, _, value = item.partition("=")
        try:
            before[name] = float(value)
        except ValueError:
            parser.error(f"--epochs_before: expected RUN=EPOCHS (a run folder's name and a number), got {item!r}.")

    curves = {
        Path(folder).name: curve(Path(folder), before.get(Path(folder).name, 0.0)) for folder in [*args.runs, args.ar]
    }
    ar_name = Path(args.ar).name
    ar_best = min(value for _, _, value in curves[ar_name])
    report = {"ar_best": ar_best, "curves": curves, "crossing": {}}
    lines = [
        "# Repeated data: LLaDA for many epochs against the autoregressive model's best",
        "",
        f"`python experiments/long_run.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"The autoregressive model's best validation perplexity: {ar_best:.1f} ({ar_name}).",
        "",
        "| run | epochs | best bound | x AR best | first evaluation at or below the AR best |",
        "|---|---|---|---|---|",
    ]
    for name in curves:
        if name == ar_name:
            continue
        points = curves[name]
        best = min(points, key=lambda point: point[2])
        crossed = next((point for point in points if point[2] <= ar_best), None)
        report["crossing"][name] = crossed
        where = f"epoch {crossed[0]:.1f} (step {crossed[1]})" if crossed else "not reached"
        lines.append(
            f"| {name} | {points[-1][0]:.1f} | {best[2]:.1f} (epoch {best[0]:.1f}) | "
            f"{best[2] / ar_best:.2f} | {where} |"
        )
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps(report, indent=1))
    (results / "results.md").write_text("\n".join(lines) + "\n")
    plot(curves, ar_best, results / "curves.png")
    print("\n".join(lines))
    return 0


def curve(folder: Path, epochs_before: float = 0.0) -> list:
    """[(epoch, step, bound or perplexity)] at every evaluation of the run in `folder` (epochs counted from
    `epochs_before`)."""
    path = folder / "trainer_state.json"
    if not path.is_file():
        raise SystemExit(f"No run at {folder} (no trainer_state.json).")
    history = json.loads(path.read_text())["log_history"]
    points = [entry for entry in history if "eval_loss" in entry]
    value = "eval_perplexity_bound" if points and "eval_perplexity_bound" in points[0] else "eval_perplexity"
    return [(epochs_before + entry["epoch"], entry["step"], entry[value]) for entry in points]


def plot(curves: dict, ar_best: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        axes.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=name)
    axes.axhline(ar_best, color="grey", linestyle="--", label=f"AR best ({ar_best:.1f})")
    axes.set_xlabel("epochs of the training text")
    axes.set_ylabel("validation perplexity per token (LLaDA: bound)")
    axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
