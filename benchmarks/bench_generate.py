"""Speed and quality of `diffusion_generate`'s fast paths: key/value caches and parallel decoding, batched.

For every batch size and generation length (block 32, `steps` = length: one token per step on schedule) each mode
generates from the same TinyShakespeare prompts (line starts of the held-out tail), sampling at `--temperature`
(default 1.0, the main job's setting; `seed=0`, so every mode draws the same noise per step and position) or
greedily at 0:

    baseline          no cache, LLaDA's schedule (the reference for speed-up and identical tokens)
    prefix            `use_cache="prefix"`: the block and everything after it run; the left part is cached
    dual              `use_cache="dual"`: only the block runs; left part and masked suffix are cached
    threshold         `threshold=0.9`: every position above 0.9 confidence commits at once (at least one)
    dual+threshold    both
    factor            `factor=1.0`: Fast-dLLM's factor rule
                      (`threshold` and `factor` run only when named in `--modes`: uncached, they add a full pass per
                      step for what their dual-cache versions show)
    dual+threshold T  more thresholds (`--extra_thresholds`)
    dual+credit T     credit decoding: confidence accumulated over the steps while the candidate stays
                      (`credit_decay=1.0`), against threshold T (`--credit_thresholds`)
    dual-masked...    `cache_window="masked"`: a windowed step runs only the block's masked positions and those
                      committed at the previous step (alone, with the threshold, with credit decoding)
    steps/2, steps/4  no cache, `steps` = length / 2 or / 4: a fixed 2 or 4 tokens per forward, how much parallel
                      decoding the model tolerates on schedule
    vicinity ...      dual-masked with `cache_refresh_window="vicinity"` (a block starts with a pass over the block
                      just finished and the new one instead of the canvas); `icdf`: `token_sampling="inverse_cdf"`
                      (one uniform draw per position instead of one per position and vocabulary token)
    bL ...            block L of `--fast_block_lengths` (8, the main job's sample block, and 16) instead of 32:
                      fewer positions per pass and per sampler step; the first L with each lever on its own, with
                      steps/2 and /4 and with credit decoding

A block diffusion model (`config.block_size`, the main job's) has its own modes, each decoding the model's blocks:

    baseline          no cache: every step runs the whole canvas (block-causal attention)
    block cache       the exact cache of the finished blocks (the same tokens as the baseline)
    block cache icdf  with `token_sampling="inverse_cdf"`; `+threshold T` also commits every position above T
    ... steps/2       half as many steps as tokens: both positions of a block of 2 in one forward

It prints NFE (forward calls), tokens committed per forward (per row: length / NFE), ms per forward, tokens/s,
speed-up over the baseline, identical-token rate vs the baseline and the sample quality of `sample_quality.py`:
generative perplexity under the autoregressive baseline (a LlamaForCausalLM of the same size, data and tokenizer),
word validity (share of the inner words found in the training text) and distinct-2, plus that model's own
`generate` (KV cache, same temperature) on the same prompts. It writes the table as markdown with the goal checks,
and a PNG of time vs generation length per mode.

    python benchmarks/bench_generate.py --repeats 2 --extra_thresholds 0.7 0.5   # the main job's model (make
                                   # train) and its AR baseline (runs/autoregressive-tinyshakespeare): about 7 min
    python benchmarks/bench_generate.py --model M --ar_model A     # the full table: about 10 min on 2 CPU cores
    python benchmarks/bench_generate.py --quick                    # smoke run: lengths 32 and 64, batch 1 and 2
    python benchmarks/bench_generate.py --random_models --quick    # without trained models (meaningless quality)

`bench_row_loop.py` times the batched sampler against a one-row-at-a-time loop, `bench_row_streams.py` the cost of
batch-invariant sampling.

A mode holds quality (the goal checks) when its word validity is within 0.03 of the baseline's and its generative
perplexity within 1.1x; against the autoregressive model, when its word validity is within 0.03 of the AR
samples'. Quality is judged on the batch-8 samples (a batch-1 row is the first of them: rows equal their
single-row results); batch-1 figures rest on one sample and are printed for what they are. Canvases longer than
the model's `max_position_embeddings` run on RoPE positions beyond those seen in training (a warning says so).
Perplexity of long samples is computed with a sliding window of the autoregressive model's context. One intra-op
thread by default (`--threads 0` keeps torch's default); `--repeats 3` times every mode three times, alternating,
and the median counts (benchmarks/common.py). The table goes to `--output` (markdown, its JSON beside it) and the
plot beside it (`.png`).
"""

import argparse
import functools
import math
import sys

import torch

import common
import sample_quality
from llada import LLaDAForMaskedDiffusion

UNCACHED_PARALLEL = ("threshold", "factor")
MOVED = {"row_loop": "bench_row_loop.py", "row_streams": "bench_row_streams.py"}


def mode_settings(args) -> dict:
    modes = {
        "baseline": {},
        "prefix": {"use_cache": "prefix"},
        "dual": {"use_cache": "dual"},
        "threshold": {"threshold": args.threshold},
        "dual+threshold": {"use_cache": "dual", "threshold": args.threshold},
        "factor": {"factor": args.factor},
    }
    for threshold in args.extra_thresholds:
        modes[f"dual+threshold {threshold}"] = {"use_cache": "dual", "threshold": threshold}
    for threshold in args.credit_thresholds:
        modes[f"dual+credit {threshold}"] = {
            "use_cache": "dual",
            "threshold": threshold,
            "credit_decay": args.credit_decay,
        }
    masked_window = {"use_cache": "dual", "cache_window": "masked"}
    modes["dual-masked"] = masked_window
    for divisor in (2, 4):  # mode keys `tokens_per_step` / `block_length`: see `diffusion_run`
        modes[f"steps/{divisor}"] = {"tokens_per_step": divisor}
    vicinity = {**masked_window, "cache_refresh_window": "vicinity"}
    icdf = {**vicinity, "token_sampling": "inverse_cdf"}
    modes["vicinity"] = vicinity
    modes["vicinity icdf"] = icdf
    modes["vicinity icdf steps/2"] = {**icdf, "tokens_per_step": 2}
    for length in args.fast_block_lengths:
        small = {"block_length": length}
        if length == args.fast_block_lengths[0]:  # the first: each lever on its own
            modes[f"b{length} dual-masked"] = {**masked_window, **small}
            modes[f"b{length} vicinity"] = {**vicinity, **small}
        modes[f"b{length} vicinity icdf"] = {**icdf, **small}
        for divisor in (2, 4):
            modes[f"b{length} vicinity icdf steps/{divisor}"] = {**icdf, **small, "tokens_per_step": divisor}
        if length == args.fast_block_lengths[0]:
            for threshold in args.credit_thresholds:
                modes[f"b{length} vicinity icdf+credit {threshold}"] = {
                    **icdf,
                    **small,
                    "threshold": threshold,
                    "credit_decay": args.credit_decay,
                }
    return modes


def block_mode_settings(args) -> dict:
    """The modes of a block diffusion model (`config.block_size`): its blocks are decoded left to right, each given
    only the finished ones, so their keys/values are cached exactly; `block_length` is the model's block size."""
    icdf = {"token_sampling": "inverse_cdf"}
    modes = {
        "baseline": {"use_cache": False},  # every step runs the whole canvas (block-causal): the reference tokens
        "block cache": {},  # the default: only the current block runs, the finished blocks come from the cache
        "block cache icdf": icdf,
    }
    for threshold in (args.threshold, *args.extra_thresholds):
        modes[f"block cache icdf+threshold {threshold}"] = {**icdf, "threshold": threshold}
    modes["block cache icdf steps/2"] = {**icdf, "tokens_per_step": 2}
    return modes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", help=f"LLaDA model folder; default: {common.relative(common.TRAINED_MODEL)} (make train)."
    )
    parser.add_argument(
        "--ar_model",
        help="Autoregressive model folder; default: the first of "
        f"{[common.relative(p) for p in common.TRAINED_AR_MODELS]} found.",
    )
    parser.add_argument("--random_models", action="store_true", help="Tiny random models instead (smoke runs).")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument(
        "--max_batch_tokens",
        type=int,
        default=4096,
        help="Skip batch size x length above this (batch 8 x 1024: the uncached modes alone would "
        "take about an hour on 2 CPU cores); 0 = no limit.",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="Sampling temperature of every mode and of the AR model (0 = greedy; the main job's "
        "models sample at 1.0, and greedy decoding of them repeats one token).",
    )
    parser.add_argument(
        "--top_p",
        type=float,
        default=0.8,
        help="Nucleus of every mode and of the AR model (the main job's sample_top_p; 1 = none). The "
        "confidence of a candidate is its probability in the distribution it is drawn from.",
    )
    parser.add_argument(
        "--fast_block_lengths",
        type=int,
        nargs="+",
        default=[8, 16],
        help="Block lengths of the `bL` modes (the first gets every lever, the others the sampler's).",
    )
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument(
        "--extra_thresholds",
        type=float,
        nargs="*",
        default=[],
        help="More dual+threshold modes with these thresholds (speed/quality trade-off).",
    )
    parser.add_argument(
        "--credit_thresholds",
        type=float,
        nargs="*",
        default=[0.9],
        help="dual+credit modes (credit decoding) with these thresholds.",
    )
    parser.add_argument("--credit_decay", type=float, default=1.0, help="`credit_decay` of the dual+credit modes.")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per mode (alternating); the median counts")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=None,
        help=f"Subset of the modes (default: all but {UNCACHED_PARALLEL}, which add an uncached pass "
        "per step for what their dual-cache versions show).",
    )
    parser.add_argument("--quick", action="store_true", help="Lengths 32 and 64, batch sizes 1 and 2.")
    parser.add_argument("--device", default="cpu")
    common.add_common_args(parser, output=common.RESULTS / "generate.md")  # the plot goes beside it, generate.png
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.batch_sizes = [32, 64], [1, 2]
    modes = {**mode_settings(args), **block_mode_settings(args)}
    if args.modes is not None and (set(args.modes) - set(modes) or "baseline" not in args.modes):
        parser.error(
            f"--modes must include 'baseline' and be among {list(mode_settings(args))} (a full-attention "
            f"model) or {list(block_mode_settings(args))} (a block diffusion model); got {args.modes}"
        )
    bad = [
        length
        for length in args.lengths
        if any(length % block for block in [args.block_length, *args.fast_block_lengths])
    ]
    if bad:
        parser.error(
            f"--lengths must be multiples of --block_length ({args.block_length}) and of every "
            f"--fast_block_lengths ({args.fast_block_lengths}); got {bad}"
        )
    return args


def find_folder(given, candidates, what):
    folder = common.find_model(given, candidates)
    if folder is None:
        sys.exit(
            f"No trained {what} found in {[str(c) for c in candidates]}: train one (see the docstring) or pass "
            "a folder."
        )
    return folder


def load_models(args):
    """(llada, ar_model, tokenizer or None); random tiny models of the same shape with --random_models."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    if args.random_models:  # wide initial weights: a random model's predictions are then not all ties
        return common.random_model("tiny", initializer_range=0.1), common.random_model("tiny", "llama"), None
    llada_dir = find_folder(args.model, [common.TRAINED_MODEL], "LLaDA model")
    ar_dir = find_folder(args.ar_model, common.TRAINED_AR_MODELS, "autoregressive model")
    llada = LLaDAForMaskedDiffusion.from_pretrained(llada_dir).to(args.device).eval()
    ar_model = LlamaForCausalLM.from_pretrained(ar_dir).to(args.device).eval()
    print(f"LLaDA: {llada_dir}  autoregressive: {ar_dir}")
    return llada, ar_model, AutoTokenizer.from_pretrained(llada_dir)


def benchmark_prompts(tokenizer, batch_size, prompt_length, vocab_size):
    """`batch_size` prompts of `prompt_length` tokens: line starts spread over the end of TinyShakespeare (the
    held-out part), or random ids without a tokenizer."""
    if tokenizer is None:
        generator = torch.Generator().manual_seed(1)
        return torch.randint(0, 256, (batch_size, prompt_length), generator=generator)
    text = common.CORPUS.read_text()
    tail = text[int(len(text) * 0.95) :]
    line_starts = [i + 1 for i, char in enumerate(tail[:-1]) if char == "\n" and tail[i + 1].isalpha()]
    chosen = [line_starts[i * len(line_starts) // batch_size] for i in range(batch_size)]
    rows = [
        tokenizer(tail[start : start + 4 * prompt_length], add_special_tokens=False)["input_ids"][:prompt_length]
        for start in chosen
    ]
    return torch.tensor(rows)


# whatever the model's saved generation config says; temperature and top_p are the benchmark's (`diffusion_run`)
FIXED = dict(
    top_k=None, remasking="low_confidence", remask_ratio=None, cfg_scale=0.0, min_new_tokens=None, eos_token_id=None
)


def diffusion_run(model, prompts, length, block_length, settings, temperature=0.0, top_p=None, seed=0):
    """(generated tokens (batch, length), nfe) of one `diffusion_generate` call: greedy, or sampled at `temperature`
    with `seed` (a stream per row: every mode draws the same noise at a given step and position). `steps` = length /
    the mode's `tokens_per_step` (1 by default); its `block_length` replaces the given one."""
    settings = dict(settings)
    steps = length // settings.pop("tokens_per_step", 1)
    block_length = settings.pop("block_length", block_length)
    randomness = {"seed": seed} if temperature else {}
    out = model.diffusion_generate(
        prompts.to(model.device),
        max_new_tokens=length,
        steps=steps,
        block_length=block_length,
        return_dict_in_generate=True,
        temperature=temperature,
        top_p=top_p if top_p is not None and top_p < 1 else None,
        **randomness,
        **FIXED,
        **settings,
    )
    return out.sequences[:, prompts.shape[1] :].cpu(), out.nfe


def ar_run(ar_model, prompts, length, temperature=0.0, top_p=None, seed=0):
    """(generated tokens, nfe = length) of `LlamaForCausalLM.generate` with its KV cache, exactly `length` tokens,
    greedy or sampled at `temperature` within the nucleus `top_p` (torch's generator seeded with `seed`)."""
    prompts = prompts.to(ar_model.device)
    sampling = (
        dict(do_sample=True, temperature=temperature) if temperature else dict(do_sample=False, temperature=None)
    )
    torch.manual_seed(seed)
    out = ar_model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=length,
        min_new_tokens=length,
        pad_token_id=ar_model.config.pad_token_id,
        top_k=None,
        top_p=top_p if temperature and top_p is not None and top_p < 1 else None,
        **sampling,
    )
    return out[:, prompts.shape[1] :].cpu(), length


class SampleQuality:
    """Word validity and distinct-2 of decoded samples (`sample_quality.py`'s metrics), against the training text's
    vocabulary; NaN without a tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer, self.vocabulary = tokenizer, None
        if tokenizer is not None:
            train_text, _ = sample_quality.corpus_splits()
            self.vocabulary = set(sample_quality.words_of(train_text))

    def __call__(self, generated) -> dict:
        if self.tokenizer is None:
            return dict(validity=float("nan"), distinct2=float("nan"))
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return dict(
            validity=sample_quality.word_validity(texts, self.vocabulary),
            distinct2=sample_quality.distinct_n(texts, 2),
        )


def model_modes(llada, args):
    """({mode: settings} to run, block length): `--modes` (default: all but `UNCACHED_PARALLEL`) among the modes of
    the model's kind; a block diffusion model decodes its own blocks (`block_length` None)."""
    block_size = getattr(llada.config, "block_size", None)
    modes = mode_settings(args) if block_size is None else block_mode_settings(args)
    chosen = args.modes or [mode for mode in modes if mode not in UNCACHED_PARALLEL]
    unknown = [mode for mode in chosen if mode not in modes]
    if unknown:
        kind = "full-attention" if block_size is None else f"block diffusion (block_size {block_size})"
        sys.exit(f"--modes {unknown} are not modes of this {kind} model; its modes: {list(modes)}")
    return {mode: modes[mode] for mode in chosen}, (args.block_length if block_size is None else None)


def measure(llada, ar_model, tokenizer, args):
    """One row of results per (batch size, length, mode), the autoregressive reference included."""
    modes, block_length = model_modes(llada, args)
    ar_context = ar_model.config.max_position_embeddings
    quality = SampleQuality(tokenizer)
    results = []
    diffusion_run(
        llada,
        benchmark_prompts(tokenizer, 2, args.prompt_length, llada.config.vocab_size),
        32,
        block_length,
        {},
        args.temperature,
        args.top_p,
        args.seed,
    )  # warm-up
    for batch_size in args.batch_sizes:
        prompts = benchmark_prompts(tokenizer, batch_size, args.prompt_length, llada.config.vocab_size)
        for length in args.lengths:
            if args.max_batch_tokens and batch_size * length > args.max_batch_tokens:
                print(f"(skipping batch {batch_size} x length {length}: above --max_batch_tokens)")
                continue
            contenders = {
                mode: functools.partial(
                    diffusion_run,
                    llada,
                    prompts,
                    length,
                    block_length,
                    settings,
                    args.temperature,
                    args.top_p,
                    args.seed,
                )
                for mode, settings in modes.items()
            }
            contenders["AR generate"] = functools.partial(
                ar_run, ar_model, prompts, length, args.temperature, args.top_p, args.seed
            )
            runs = common.time_alternated(contenders, args.repeats)
            baseline = runs["baseline"]
            for mode, timing in runs.items():
                (generated, nfe), seconds = timing.result, timing.median
                results.append(
                    dict(
                        batch=batch_size,
                        length=length,
                        mode=mode,
                        nfe=nfe,
                        seconds=seconds,
                        low=timing.low,
                        high=timing.high,
                        tokens_per_forward=length / nfe,
                        ms_per_forward=1e3 * seconds / nfe,
                        tokens_per_s=generated.numel() / seconds,
                        speedup=baseline.median / seconds,
                        identical=float((generated == baseline.result[0]).float().mean()),
                        gen_ppl=sample_quality.sliding_perplexity(ar_model, prompts, generated, ar_context),
                        **quality(generated),
                    )
                )
                print(format_row(results[-1]), flush=True)
    return results


COLUMNS = (
    "batch",
    "length",
    "mode",
    "NFE",
    "tokens/forward",
    "ms/forward",
    "seconds",
    "tokens/s",
    "speed-up",
    "identical",
    "gen. PPL",
    "word validity",
    "distinct-2",
)


KEYS = (
    "batch",
    "length",
    "mode",
    "nfe",
    "tokens_per_forward",
    "ms_per_forward",
    "seconds",
    "tokens_per_s",
    "speedup",
    "identical",
    "gen_ppl",
    "validity",
    "distinct2",
)
FORMATS = {
    "tokens_per_forward": ".2f",
    "ms_per_forward": ".1f",
    "seconds": ".2f",
    "tokens_per_s": ".0f",
    "speedup": lambda x: f"{x:.1f}x",
    "identical": ".3f",
    "gen_ppl": ".2f",
    "validity": ".3f",
    "distinct2": ".3f",
}


def format_row(row) -> str:
    return common.markdown_table([row], dict(zip(KEYS, COLUMNS)), FORMATS)[-1]


def holds_quality(row, reference, ppl_ratio: float = 1.1, validity_gap: float = 0.03) -> bool:
    """The issue's rule: word validity within `validity_gap` of the reference's (and, against the diffusion
    baseline, generative perplexity within `ppl_ratio` of it; None skips that test). NaN validity (no tokenizer)
    falls back to the perplexity test alone."""
    ppl_ok = ppl_ratio is None or row["gen_ppl"] <= ppl_ratio * reference["gen_ppl"]
    if math.isnan(row["validity"]) or math.isnan(reference["validity"]):
        return ppl_ok
    return ppl_ok and row["validity"] >= reference["validity"] - validity_gap


def targets(results) -> list:
    """The goal checks, as lines of text: the fastest mode that holds quality against the baseline (>= 10x its
    tokens/s) and against the AR model (>= 1.0x its tokens/s, 1.5x the next mark). Quality is judged on the samples
    of the largest batch of the same length (see the module docstring)."""
    lines = []
    by_key = {(r["batch"], r["length"], r["mode"]): r for r in results}
    largest = {
        length: max(r["batch"] for r in results if r["length"] == length) for length in {r["length"] for r in results}
    }
    for batch, length in sorted({(r["batch"], r["length"]) for r in results}):
        judge = lambda mode: by_key.get((largest[length], length, mode))  # noqa: E731
        base, ar = judge("baseline"), judge("AR generate")
        if not (base and ar):
            continue
        fast = [
            r
            for r in results
            if (r["batch"], r["length"]) == (batch, length) and r["mode"] not in ("baseline", "AR generate")
        ]
        held = [r for r in fast if holds_quality(judge(r["mode"]), base)]
        matched = [r for r in fast if holds_quality(judge(r["mode"]), ar, ppl_ratio=None)]
        own_ar = by_key[(batch, length, "AR generate")]
        best = max(held, key=lambda r: r["tokens_per_s"], default=None)
        text = f"batch {batch}, length {length}: "
        if best is None:
            text += "no fast mode holds the baseline's quality (target: >= 10x its tokens/s at it); "
        else:
            text += (
                f"best fast mode at the baseline's quality: {best['mode']}, {best['speedup']:.1f}x the "
                f"baseline's tokens/s (target >= 10x), {best['tokens_per_forward']:.2f} tokens/forward, "
                f"{best['ms_per_forward']:.1f} ms/forward; "
            )
        best_ar = max(matched, key=lambda r: r["tokens_per_s"], default=None)
        if best_ar is None:
            text += f"no diffusion mode matches the AR samples' word validity ({ar['validity']:.3f})"
        else:
            text += (
                f"best at the AR samples' word validity: {best_ar['mode']}, "
                f"{best_ar['tokens_per_s'] / own_ar['tokens_per_s']:.2f}x the AR model's tokens/s "
                f"(target >= 1.0x, then 1.5x; AR {own_ar['ms_per_forward']:.1f} ms/forward)"
            )
        lines.append(text)
    return lines


SUMMARY_MODES = (
    "baseline",
    "dual",
    "dual+threshold",
    "steps/2",
    "vicinity icdf",
    "vicinity icdf steps/2",
    "b16 vicinity icdf",
    "b8 vicinity icdf",
    "block cache",
    "block cache icdf",
    "block cache icdf+threshold 0.9",
    "block cache icdf steps/2",
    "AR generate",
)


def summary_table(results, length: int) -> list:
    """The README's table: for each batch size at `length`, tokens/s (speed-up), tokens per forward, ms per
    forward, word validity and generative perplexity of the main modes (those run among `SUMMARY_MODES`)."""
    present = dict.fromkeys(r["mode"] for r in results if r["length"] == length)
    modes = [m for m in SUMMARY_MODES if m in present]
    lines = [f"| batch × {length} | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for batch in sorted({r["batch"] for r in results if r["length"] == length}):
        row = {r["mode"]: r for r in results if (r["batch"], r["length"]) == (batch, length)}
        cells = {
            "tokens/s": lambda r: f"{r['tokens_per_s']:.0f} ({r['speedup']:.1f}×)",
            "tokens/forward": lambda r: f"{r['tokens_per_forward']:.2f}",
            "ms/forward": lambda r: f"{r['ms_per_forward']:.1f}",
            "word validity": lambda r: f"{r['validity']:.3f}",
            "gen. PPL": lambda r: f"{r['gen_ppl']:.2f}",
        }
        for name, cell in cells.items():
            lines.append(f"| {batch}: {name} | " + " | ".join(cell(row[m]) if m in row else "-" for m in modes) + " |")
    return lines


def write_markdown(results, args, path, header: str):
    """The table, the goal checks and the README's summary table to `path` (markdown, its JSON beside it)."""
    longest = max(r["length"] for r in results)
    notes = [
        *[f"- {line}" for line in targets(results)],
        "",
        f"Summary (the README's table), length {longest}:",
        "",
        *summary_table(results, longest),
    ]
    return common.write_report(
        path, results, intro=header, columns=dict(zip(KEYS, COLUMNS)), formats=FORMATS, notes=notes, meta=vars(args)
    )


def write_plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch_sizes = sorted({r["batch"] for r in results})
    figure, axes = plt.subplots(1, len(batch_sizes), figsize=(5.5 * len(batch_sizes), 4.2), squeeze=False)
    for axis, batch in zip(axes[0], batch_sizes):
        for mode in dict.fromkeys(r["mode"] for r in results):
            rows = sorted((r for r in results if r["batch"] == batch and r["mode"] == mode), key=lambda r: r["length"])
            axis.plot(
                [r["length"] for r in rows],
                [r["seconds"] for r in rows],
                marker="o",
                label=mode,
                linestyle="--" if mode == "AR generate" else "-",
            )
        axis.set(xscale="log", yscale="log", xlabel="generated tokens", ylabel="seconds", title=f"batch {batch}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in MOVED:
        sys.exit(f"`bench_generate.py {argv[0]}` is now its own program: python benchmarks/{MOVED[argv[0]]}")
    args = parse_args(argv)
    harness = common.setup(args)
    llada, ar_model, tokenizer = load_models(args)
    size = sum(p.numel() for p in llada.parameters()) / 1e6
    sampling = f"temperature {args.temperature} (seed {args.seed}, a stream per row)" if args.temperature else "greedy"
    if args.temperature and args.top_p is not None and args.top_p < 1:
        sampling += f", top_p {args.top_p}"
    block_size = getattr(llada.config, "block_size", None)
    blocks = (
        f"block {args.block_length} unless the mode says (bL: block L)"
        if block_size is None
        else f"a block diffusion model: its blocks of {block_size}"
    )
    header = (
        f"LLaDA {size:.2f}M parameters, {sampling}, {blocks}, steps = length unless the mode says, prompt "
        f"{args.prompt_length} tokens, threshold {args.threshold}, factor {args.factor}, credit decay "
        f"{args.credit_decay}, device {args.device}, {harness}, median of {args.repeats} alternated run(s)"
    )
    print(header)
    print("| " + " | ".join(COLUMNS) + " |")
    results = measure(llada, ar_model, tokenizer, args)
    print("\n".join(targets(results)))
    written = write_markdown(results, args, args.output, header)
    if written:
        write_plot(results, written.with_suffix(".png"))
        print(f"wrote {written}, its .json and .png")
    return results


if __name__ == "__main__":
    main()
