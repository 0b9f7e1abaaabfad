"""Start from an autoregressive model: adapt the main job's AR baseline into LLaDA, against LLaDA from scratch at
equal total CPU time (AR pre-training + adaptation against the from-scratch run), on the main job's data.

    python experiments/adapt.py --output_dir runs/adapt                  # trains everything, one thread (~40 CPU-min)
    python experiments/adapt.py --output_dir runs/adapt --scratch_dir runs/llada-tinyshakespeare \\
        --scratch_cpu_s 560                                               # reuse a finished main job
    python experiments/adapt.py --output_dir runs/adapt --skip_training   # re-score the runs already there

Finished runs of an earlier call (with their CPU time in OUTPUT_DIR/cpu_seconds.json) are reused, not retrained.

Contenders (all `llada-train` with the main job's options, llada/configs/tinyshakespeare.yaml):
- `scratch`: the main job, LLaDA from random weights;
- `ar`: the autoregressive baseline (`--model_type autoregressive`) for `--ar_steps` steps: the source;
- `shift`: `--init_from` the AR run, full attention, with Dream's logit shift (position i-1 predicts token i, the AR
  head's meaning kept);
- `noshift`: the same without the shift (position i predicts token i);
- `block2`: the shifted conversion as a block diffusion model (`--block_size 2`, half of the blocks in order).

Each adapted run gets the steps that make AR + adaptation cost the from-scratch run's CPU time (the step costs are
measured from the runs themselves). Every evaluation's validation bound (perplexity for the AR model) is plotted
against cumulative CPU seconds. Writes `results.json`, `results.md` and `curves.png` to `--results_dir`
(default experiments/results/adapt).
"""

import argparse
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTED = {
    "shift": ["--logit_shift", "true"],
    "noshift": ["--logit_shift", "false"],
    "block2": [
        "--logit_shift",
        "true",
        "--block_size",
        "2",
        "--in_order_probability",
        "0.5",
        "--eval_in_order",
        "true",
    ],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/adapt", help="Where the runs go.")
    parser.add_argument("--results_dir", default=str(ROOT / "experiments" / "results" / "adapt"))
    parser.add_argument(
        "--ar_steps",
        type=int,
        default=400,
        help="AR pre-training steps (the AR baseline's validation loss is lowest near step 400).",
    )
    parser.add_argument("--scratch_dir", default=None, help="A finished from-scratch run to compare against.")
    parser.add_argument(
        "--scratch_cpu_s", type=float, default=None, help="Its training CPU seconds (with --scratch_dir)."
    )
    parser.add_argument(
        "--contenders", default="shift,noshift,block2", help=f"Adapted runs, comma-separated, of {sorted(ADAPTED)}."
    )
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Learning rate of the adaptation.")
    parser.add_argument(
        "--baseline_dir",
        default=None,
        help="A finished autoregressive run whose best perplexity is the reference of the ratios (default: the "
        "AR pre-training run), e.g. the main job's baseline runs/autoregressive-tinyshakespeare.",
    )
    parser.add_argument("--threads", type=int, default=1, help="Torch threads of each training process.")
    parser.add_argument("--skip_training", action="store_true", help="Only score the runs already there.")
    args = parser.parse_args(argv)
    contenders = [name for name in args.contenders.split(",") if name]
    unknown = sorted(set(contenders) - set(ADAPTED))
    if unknown:
        parser.error(f"--contenders: unknown {unknown}; expected some of {sorted(ADAPTED)}.")
    if (args.scratch_dir is None) != (args.scratch_cpu_s is None):
        parser.error("--scratch_dir and --scratch_cpu_s go together (the run and its training CPU seconds).")

    out = Path(args.output_dir)
    cpu_file = out / "cpu_seconds.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    common = ["--torch_num_threads", str(args.threads), "--overwrite_output_dir"]
    dirs = {"scratch": Path(args.scratch_dir) if args.scratch_dir else out / "scratch", "ar": out / "ar"}
    if args.scratch_dir:
        cpu["scratch"] = args.scratch_cpu_s
    if not args.skip_training:
        if not args.scratch_dir and not finished(dirs["scratch"], cpu, "scratch"):
            cpu["scratch"] = train(["--output_dir", str(dirs["scratch"]), *common])
        if not finished(dirs["ar"], cpu, "ar"):
            cpu["ar"] = train(
                [
                    "--model_type",
                    "autoregressive",
                    "--max_steps",
                    str(args.ar_steps),
                    "--eval_steps",
                    str(max(1, args.ar_steps // 4)),
                    "--output_dir",
                    str(dirs["ar"]),
                    *common,
                ]
            )
        cpu_file.parent.mkdir(parents=True, exist_ok=True)
        cpu_file.write_text(json.dumps(cpu, indent=1))
    scratch_steps = max_steps_of(dirs["scratch"])
    step_cost = cpu["scratch"] / scratch_steps
    adapt_steps = max(8, int((cpu["scratch"] - cpu["ar"]) / step_cost))
    for name in contenders:
        dirs[name] = out / name
        if not args.skip_training and not finished(dirs[name], cpu, name):
            cpu[name] = train(
                [
                    "--init_from",
                    str(dirs["ar"]),
                    "--output_dir",
                    str(dirs[name]),
                    "--max_steps",
                    str(adapt_steps),
                    "--eval_steps",
                    str(max(1, adapt_steps // 4)),
                    "--learning_rate",
                    str(args.learning_rate),
                    *ADAPTED[name],
                    *common,
                ]
            )
            cpu_file.write_text(json.dumps(cpu, indent=1))

    report = {"ar_steps": args.ar_steps, "adapt_steps": adapt_steps, "scratch_steps": scratch_steps, "runs": {}}
    if args.baseline_dir:
        report["baseline"] = {
            "dir": args.baseline_dir,
            "best": min(p[2] for p in curve(Path(args.baseline_dir), 0, 0)),
        }
    for name, folder in dirs.items():
        offset = cpu["ar"] if name in ADAPTED else 0.0
        report["runs"][name] = {
            "dir": str(folder),
            "cpu_s": cpu.get(name),
            "cpu_total_s": offset + cpu.get(name, 0),
            "curve": curve(folder, offset, cpu.get(name, 0.0)),
        }
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps(report, indent=1))
    (results / "results.md").write_text(markdown(report, argv if argv is not None else sys.argv[1:]))
    plot(report, results / "curves.png")
    print((results / "results.md").read_text())
    return 0


def train(flags: list) -> float:
    """Runs `llada-train FLAGS` to the end and returns its CPU seconds (user + system, the process and its
    children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("+ llada-train " + " ".join(flags), flush=True)
    subprocess.run([sys.executable, "-m", "llada.cli.train", *flags], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def finished(folder: Path, cpu: dict, name: str) -> bool:
    """A run of an earlier call is reused when it finished and its CPU time was recorded (delete it to retrain)."""
    return name in cpu and (folder / "trainer_state.json").is_file()


def trainer_state(folder: Path) -> dict:
    path = folder / "trainer_state.json"
    if not path.is_file():
        raise SystemExit(f"No finished run at {folder} (no trainer_state.json): train it first.")
    return json.loads(path.read_text())


def max_steps_of(folder: Path) -> int:
    return trainer_state(folder)["max_steps"]


def curve(folder: Path, cpu_offset: float, cpu_s: float) -> list:
    """[(cumulative CPU s, step, perplexity or bound, in-order perplexity or None)] at every evaluation, the CPU
    time of a step taken as the run's mean."""
    state = trainer_state(folder)
    points = []
    for entry in state["log_history"]:
        if "eval_loss" not in entry:
            continue
        value = entry.get("eval_perplexity_bound", entry.get("eval_perplexity", math.exp(entry["eval_loss"])))
        points.append(
            (
                cpu_offset + cpu_s * entry["step"] / state["max_steps"],
                entry["step"],
                value,
                entry.get("eval_in_order_perplexity"),
            )
        )
    return points


def markdown(report: dict, argv: list) -> str:
    ar_best = min(point[2] for point in report["runs"]["ar"]["curve"])
    reference = f"the AR pre-training run's best, {ar_best:.1f}"
    if "baseline" in report:
        ar_best = report["baseline"]["best"]
        reference = f"the best of the autoregressive baseline {report['baseline']['dir']}, {ar_best:.1f}"
    lines = [
        "# Adapting the AR baseline into LLaDA, at equal total CPU time",
        "",
        f"`python experiments/adapt.py {' '.join(argv)}`",
        "",
        f"AR pre-training: {report['ar_steps']} steps; each adapted run: {report['adapt_steps']} steps, so that AR + "
        f"adaptation cost the from-scratch run's {report['scratch_steps']} steps. Validation perplexity per token on "
        "the main job's held-out blocks (LLaDA: the ELBO bound; block models also the exact in-order perplexity); "
        f"the ratios are to {reference}.",
        "",
        "| run | CPU s (total) | best bound / perplexity | x AR best | in-order perplexity |",
        "|---|---|---|---|---|",
    ]
    for name, run in report["runs"].items():
        best = min(run["curve"], key=lambda point: point[2])
        in_order = min((p[3] for p in run["curve"] if p[3] is not None), default=None)
        lines.append(
            f"| {name} | {run['cpu_total_s']:.0f} | {best[2]:.1f} (step {best[1]}) | "
            f"{best[2] / ar_best:.2f} | {'' if in_order is None else f'{in_order:.1f}'} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, run in report["runs"].items():
        points = run["curve"]
        axes.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=name)
    axes.set_xlabel("cumulative training CPU seconds (adapted runs include the AR pre-training)")
    axes.set_ylabel("validation perplexity per token (LLaDA: bound)")
    axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
