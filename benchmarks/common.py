"""The benchmarks' one harness: set-up, models, timing and reports.

Every benchmark runs as `python benchmarks/NAME.py` and imports this module as a sibling, `import common`
(a script's own folder is the first entry of `sys.path`); `experiments/` and `tests/` put `benchmarks/` on `sys.path`
first. The parts:

- set-up: `add_common_args(parser)` gives `--threads`, `--seed` and `--output`; `setup(args)` applies the first two
  and returns a line that says them (on a shared 2-core machine two processes with torch's default threads fight for
  the cores, so every benchmark sets its thread count and reports it);
- models: `PRESETS`, the sizes the benchmarks build, and `random_model(preset, kind, **overrides)`: LLaDA, or the
  Llama baseline of the same size (`kind="llama"`), randomly initialised, with the special ids where the project's
  tokenizers put them (EOS, PAD, MASK: the last three ids);
- timing: `time_alternated({name: fn}, repeats)` calls the contenders in alternating rounds (the order reversed every
  other round, so that none always runs first) and returns `{name: Timing(median, low, high)}`: the median over the
  rounds, the fastest and the slowest run. Compare medians as ratios (`paired_ratio` pairs the runs of a round); an
  absolute time is only a note;
- reports: `write_report(path, rows, ...)` writes a markdown table and the same rows as JSON beside it.
"""

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.training.run import MAIN_JOB_CONFIG

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CORPUS = ROOT / "llada" / "data" / "tinyshakespeare.txt"
# where `make train` and the main job's autoregressive baseline (`llada-train --model_type autoregressive`) save
TRAINED_MODEL = ROOT / "runs" / "llada-tinyshakespeare"
TRAINED_AR_MODELS = (ROOT / "runs" / "autoregressive-tinyshakespeare", ROOT / "runs" / "compare" / "autoregressive")


# ----------------------------------------------------------------------------------------------------------------
# set-up


def add_common_args(parser, output: Optional[str] = None, threads: int = 1):
    """Adds `--threads`, `--seed` and `--output` (the report's markdown file, `output` by default; its JSON goes
    beside it) to `parser`, in a group of their own; returns the parser."""
    group = parser.add_argument_group("harness (benchmarks/common.py)")
    group.add_argument(
        "--threads",
        type=int,
        default=threads,
        help=f"torch intra-op threads (default {threads}; 0 keeps torch's default).",
    )
    group.add_argument("--seed", type=int, default=0, help="Seeds torch and `random` (default 0).")
    shown = "" if output is None else f" (default {relative(output)})"
    group.add_argument(
        "--output",
        default=None if output is None else str(output),
        help=f"The report, markdown with its JSON beside it{shown}; '' for none.",
    )
    return parser


def setup(args) -> str:
    """Sets torch's threads (`args.threads`, 0: torch's default) and seeds torch and `random` (`args.seed`); returns
    the line a report quotes."""
    threads, seed = getattr(args, "threads", 1), getattr(args, "seed", 0)
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), seed {seed}"


# ----------------------------------------------------------------------------------------------------------------
# models

# the options of the main job (llada/configs/tinyshakespeare.yaml), and its model's size: 1.9M parameters, the
# 4096-token BPE
MAIN_JOB = yaml.safe_load(MAIN_JOB_CONFIG.read_text(encoding="utf-8"))
SIZE_OPTIONS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
MAIN = {**{name: MAIN_JOB[name] for name in SIZE_OPTIONS}, "max_position_embeddings": MAIN_JOB["max_seq_length"]}
PRESETS = {
    "main": MAIN,
    # the same with the byte tokenizer's 259 ids (256 bytes, EOS, PAD, MASK; `llada-train --tokenizer bytes`)
    "bytes": dict(MAIN, vocab_size=259),
    # twice as wide: a forward less dominated by Python and framework overhead than the main job's
    "medium": dict(MAIN, hidden_size=256, intermediate_size=688, num_attention_heads=8, max_position_embeddings=256),
    # smoke runs and soak tests: many calls in little time
    "tiny": dict(MAIN, vocab_size=259, hidden_size=64, intermediate_size=192, num_hidden_layers=2),
}
# LLaDAConfig fields a Llama of the same size has no use for
LLADA_ONLY = (
    "mask_token_id",
    "block_size",
    "logit_shift",
    "attention_type",
    "kv_latent_dim",
    "qk_norm",
    "attention_output_bias",
)


# the size flags of `add_size_args`: flag -> config field
SIZE_FLAGS = {
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
}


def add_size_args(parser, preset: str):
    """Adds `--preset` (default `preset`) and flags that replace its dimensions (`SIZE_FLAGS`); returns the
    parser. [`sizes`] reads them back."""
    parser.add_argument("--preset", default=preset, choices=list(PRESETS), help=f"The model size (default {preset}).")
    for flag in SIZE_FLAGS:
        parser.add_argument(f"--{flag}", type=int, help="Replaces the preset's.")
    return parser


def sizes(args) -> dict:
    """The dimensions of `args.preset` with the size flags given (see [`add_size_args`]), `args.seq_len` positions."""
    given = {field: getattr(args, flag, None) for flag, field in SIZE_FLAGS.items()}
    return {
        **PRESETS[args.preset],
        **{field: value for field, value in given.items() if value is not None},
        "max_position_embeddings": args.seq_len,
    }


def special_ids(vocab_size: int) -> dict:
    """The special ids of a vocabulary of `vocab_size`: the last three, EOS, PAD and MASK, as the project's byte and
    BPE tokenizers place them; no BOS."""
    return dict(
        eos_token_id=vocab_size - 3, pad_token_id=vocab_size - 2, mask_token_id=vocab_size - 1, bos_token_id=None
    )


def model_config(preset: str = "main", kind: str = "llada", **overrides):
    """The `LLaDAConfig` (`kind="llada"`) or `LlamaConfig` (`kind="llama"`) of `preset`, any field replaced by
    `overrides` (a LLaDA-only field with `kind="llama"` is an error)."""
    from transformers import LlamaConfig

    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: expected one of {sorted(PRESETS)}")
    if kind not in ("llada", "llama"):
        raise ValueError(f"kind {kind!r}: expected 'llada' or 'llama'")
    vocab_size = overrides.get("vocab_size", PRESETS[preset]["vocab_size"])
    fields = {
        **PRESETS[preset],
        **special_ids(vocab_size),
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        **overrides,
    }
    if kind == "llada":
        return LLaDAConfig(**fields)
    given = [name for name in LLADA_ONLY if name in overrides and name != "mask_token_id"]
    if given:
        raise ValueError(f"{given} are LLaDA's fields; a Llama model has none of them")
    return LlamaConfig(**{name: value for name, value in fields.items() if name not in LLADA_ONLY})


def random_model(preset: str = "main", kind: str = "llada", *, seed: int = 0, attn_implementation=None, **overrides):
    """A randomly initialised (torch seeded with `seed`) LLaDA, or the Llama baseline of the same size with
    `kind="llama"`, of `preset`'s size with `overrides` (e.g. `block_size=2`, `initializer_range=0.1`: a random
    model's predictions then are not all ties), in eval mode."""
    from transformers import LlamaForCausalLM

    config = model_config(preset, kind, **overrides)
    torch.manual_seed(seed)
    model = LLaDAForMaskedDiffusion(config) if kind == "llada" else LlamaForCausalLM(config)
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    return model.eval()


def find_model(given, candidates) -> Optional[Path]:
    """`given` (a folder), else the first of `candidates` that holds a saved model, else None."""
    if given:
        return Path(given)
    return next((Path(c) for c in candidates if (Path(c) / "config.json").is_file()), None)


# ----------------------------------------------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Timing:
    """Seconds of one contender over alternated rounds: the median, the fastest (`low`) and slowest (`high`) run, the
    runs in round order, and what the last call returned."""

    median: float
    low: float
    high: float
    runs: tuple = ()
    result: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{1e3 * self.median:.1f} ms [{1e3 * self.low:.1f}-{1e3 * self.high:.1f}]"

    def as_dict(self) -> dict:
        return {"median": self.median, "low": self.low, "high": self.high, "runs": list(self.runs)}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_alternated(fns: dict, repeats: int, *, warmup: int = 0, clock: str = "wall") -> dict:
    """Calls every contender of `fns` (name -> function of no arguments) once per round for `repeats` rounds, the
    order reversed every other round, after `warmup` untimed rounds; returns name -> `Timing`.

    `clock`: "wall" (`time.perf_counter`; CUDA is synchronised around each call) or "cpu" (`time.process_time`, the
    process's CPU seconds: what a CPU-time budget is made of, and less moved by other jobs on the machine)."""
    timer = CLOCKS[clock]
    names = list(fns)
    results = {}
    for _ in range(warmup):
        for name in names:
            results[name] = fns[name]()
    runs = {name: [] for name in names}
    for round_index in range(max(repeats, 1)):
        for name in names if round_index % 2 == 0 else names[::-1]:
            _synchronize()
            start = timer()
            results[name] = fns[name]()
            _synchronize()
            runs[name].append(timer() - start)
    return {
        name: Timing(statistics.median(values), min(values), max(values), tuple(values), results[name])
        for name, values in runs.items()
    }


def paired_ratio(a: Timing, b: Timing) -> float:
    """The median over the rounds of a's run / b's run: the runs of one round are neighbours in time, so a load that
    comes and goes on a shared machine cancels more than in the ratio of the medians."""
    return statistics.median(x / y for x, y in zip(a.runs, b.runs))


def versus(times: dict, first: str, second: str) -> dict:
    """The report columns of `first` against `second` (keys of [`time_alternated`]'s result): both timings, the
    ratio of their medians and the [`paired_ratio`]."""
    a, b = times[first], times[second]
    return {first: a, second: b, "ratio": a.median / b.median, "paired": paired_ratio(a, b)}


def _synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------------------------
# reports


def markdown_table(rows: list, columns=None, formats=None) -> list:
    """The lines of a markdown table of `rows` (dicts). `columns`: the keys shown, or {key: heading} (default:
    every key of the first row); `formats`: {key: format spec or function} (default: floats with 3 decimals, a
    `Timing` as "median ms [low-high]", None as "-")."""
    if not rows:
        return []
    columns = dict(columns) if isinstance(columns, dict) else {key: key for key in (columns or rows[0])}
    formats = formats or {}

    def cell(key, value):
        if value is None:
            return "-"
        spec = formats.get(key)
        if callable(spec):
            return str(spec(value))
        if spec is not None:
            return format(value, spec)
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(key, row.get(key)) for key in columns) + " |" for row in rows]
    return lines


def write_report(
    path, rows: list, *, title=None, intro=(), columns=None, formats=None, notes=(), meta=None, append: bool = False
) -> Optional[Path]:
    """Writes the report to `path` (markdown: `# title`, the `intro` paragraphs, the table of `rows` as
    `markdown_table` makes it, the `notes` lines) and the same data as JSON beside it (`path` with the suffix .json:
    title, meta, intro, notes, rows). With `append`, the markdown goes after what `path` holds and the JSON file
    becomes a list of the reports. Returns the markdown path; nothing is written when `path` is empty or None."""
    if not path:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""] if title else []
    for paragraph in [intro] if isinstance(intro, str) else intro:
        lines += [paragraph, ""]
    table = markdown_table(rows, columns, formats)
    lines += [*table, ""] if table else []
    lines += [notes] if isinstance(notes, str) else list(notes)
    text = "\n".join(lines).rstrip("\n") + "\n"
    if append and path.is_file():
        text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + text
    path.write_text(text, encoding="utf-8")
    data = _jsonable(
        {
            "title": title,
            "meta": meta or {},
            "intro": [intro] if isinstance(intro, str) else list(intro),
            "notes": [notes] if isinstance(notes, str) else list(notes),
            "rows": rows,
        }
    )
    json_path = path.with_suffix(".json")
    if append and json_path.is_file():
        earlier = json.loads(json_path.read_text(encoding="utf-8"))
        data = [*(earlier if isinstance(earlier, list) else [earlier]), data]
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _jsonable(value):
    """`value` with Timings as dicts, paths and other objects as strings, tensors as lists and NaN as None."""
    if isinstance(value, Timing):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def relative(path) -> str:
    """`path` relative to the repository when it is inside it (for reports that name files)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)
