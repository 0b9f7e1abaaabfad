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
    python benchmarks/bench_generate.py row_loop --help            # batched sampler vs a one-row-at-a-time loop
    python benchmarks/bench_generate.py row_streams                # cost of batch-invariant sampling

A mode holds quality (the goal checks) when its word validity is within 0.03 of the baseline's and its generative
perplexity within 1.1x; against the autoregressive model, when its word validity is within 0.03 of the AR
samples'. Quality is judged on the batch-8 samples (a batch-1 row is the first of them: rows equal their
single-row results); batch-1 figures rest on one sample and are printed for what they are. Canvases longer than
the model's `max_position_embeddings` run on RoPE positions beyond those seen in training (a warning says so).
Perplexity of long samples is computed with a sliding window of the autoregressive model's context. One intra-op
thread by default (`--threads 0` keeps torch's default); `--repeats 2` times every mode twice, alternating, and
keeps the faster run.
"""

import argparse
import functools
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.prepare_llada import left_pad

ROOT = Path(__file__).resolve().parents[1]
MODEL_CANDIDATES = ("outputs/tinyshakespeare", "runs/llada-tinyshakespeare")
AR_CANDIDATES = ("runs/autoregressive-tinyshakespeare", "runs/compare/autoregressive")  # the main job's own first
UNCACHED_PARALLEL = ("threshold", "factor")
ROW_LOOP_DOC = "Batched `diffusion_generate` vs a one-row-at-a-time implementation of the same algorithm."


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
        modes[f"dual+credit {threshold}"] = {"use_cache": "dual", "threshold": threshold,
                                             "credit_decay": args.credit_decay}
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
                modes[f"b{length} vicinity icdf+credit {threshold}"] = {**icdf, **small, "threshold": threshold,
                                                                        "credit_decay": args.credit_decay}
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
    parser.add_argument("--model", help=f"LLaDA model folder; default: the first of {MODEL_CANDIDATES} found.")
    parser.add_argument("--ar_model", help=f"Autoregressive model folder; default: the first of {AR_CANDIDATES}.")
    parser.add_argument("--random_models", action="store_true", help="Tiny random models instead (smoke runs).")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--max_batch_tokens", type=int, default=4096,
                        help="Skip batch size x length above this (batch 8 x 1024: the uncached modes alone would take "
                             "about an hour on 2 CPU cores); 0 = no limit.")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="Sampling temperature of every mode and of the AR model (0 = greedy; the main job's "
                             "models sample at 1.0, and greedy decoding of them repeats one token).")
    parser.add_argument("--top_p", type=float, default=0.8,
                        help="Nucleus of every mode and of the AR model (the main job's sample_top_p; 1 = none). The "
                             "confidence of a candidate is its probability in the distribution it is drawn from.")
    parser.add_argument("--fast_block_lengths", type=int, nargs="+", default=[8, 16],
                        help="Block lengths of the `bL` modes (the first gets every lever, the others the sampler's).")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument("--extra_thresholds", type=float, nargs="*", default=[],
                        help="More dual+threshold modes with these thresholds (speed/quality trade-off).")
    parser.add_argument("--credit_thresholds", type=float, nargs="*", default=[0.9],
                        help="dual+credit modes (credit decoding) with these thresholds.")
    parser.add_argument("--credit_decay", type=float, default=1.0, help="`credit_decay` of the dual+credit modes.")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per mode (alternating); the fastest counts")
    parser.add_argument("--modes", nargs="+", default=None,
                        help=f"Subset of the modes (default: all but {UNCACHED_PARALLEL}, which add an uncached pass per "
                             "step for what their dual-cache versions show).")
    parser.add_argument("--quick", action="store_true", help="Lengths 32 and 64, batch sizes 1 and 2.")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output_dir", default=str(ROOT / "benchmarks" / "results"),
                        help="Where generate.md and generate.png go.")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.batch_sizes = [32, 64], [1, 2]
    modes = {**mode_settings(args), **block_mode_settings(args)}
    if args.modes is not None and (set(args.modes) - set(modes) or "baseline" not in args.modes):
        parser.error(f"--modes must include 'baseline' and be among {list(mode_settings(args))} (a full-attention "
                     f"model) or {list(block_mode_settings(args))} (a block diffusion model); got {args.modes}")
    bad = [length for length in args.lengths if any(length % block for block in [args.block_length,
                                                                                   *args.fast_block_lengths])]
    if bad:
        parser.error(f"--lengths must be multiples of --block_length ({args.block_length}) and of every "
                     f"--fast_block_lengths ({args.fast_block_lengths}); got {bad}")
    return args


def find_folder(given, candidates, what):
    if given:
        return Path(given)
    for candidate in candidates:
        if (ROOT / candidate / "config.json").is_file():
            return ROOT / candidate
    sys.exit(f"No trained {what} found in {candidates}: train one (see the docstring) or pass a folder.")


def load_models(args):
    """(llada, ar_model, tokenizer or None); random tiny models of the same shape with --random_models."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if args.random_models:
        config = LLaDAConfig(vocab_size=259, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                             num_attention_heads=4, max_position_embeddings=128, mask_token_id=258,
                             pad_token_id=257, bos_token_id=None, eos_token_id=256, initializer_range=0.1)
        torch.manual_seed(0)
        llada = LLaDAForMaskedDiffusion(config)
        ar_config = LlamaConfig(vocab_size=259, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                                num_attention_heads=4, max_position_embeddings=128, pad_token_id=257,
                                bos_token_id=None, eos_token_id=256)
        return llada.eval(), LlamaForCausalLM(ar_config).eval(), None
    llada_dir = find_folder(args.model, MODEL_CANDIDATES, "LLaDA model")
    ar_dir = find_folder(args.ar_model, AR_CANDIDATES, "autoregressive model")
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
    text = (ROOT / "llada" / "data" / "tinyshakespeare.txt").read_text()
    tail = text[int(len(text) * 0.95):]
    line_starts = [i + 1 for i, char in enumerate(tail[:-1]) if char == "\n" and tail[i + 1].isalpha()]
    chosen = [line_starts[i * len(line_starts) // batch_size] for i in range(batch_size)]
    rows = [tokenizer(tail[start:start + 4 * prompt_length], add_special_tokens=False)["input_ids"][:prompt_length]
            for start in chosen]
    return torch.tensor(rows)


def timed(fn, *args, **kwargs):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


# whatever the model's saved generation config says; temperature and top_p are the benchmark's (`diffusion_run`)
FIXED = dict(top_k=None, remasking="low_confidence", remask_ratio=None, cfg_scale=0.0, min_new_tokens=None,
             eos_token_id=None)


def diffusion_run(model, prompts, length, block_length, settings, temperature=0.0, top_p=None):
    """(seconds, generated tokens (batch, length), nfe) for one `diffusion_generate` call: greedy, or sampled at
    `temperature` with `seed=0` (a stream per row: every mode draws the same noise at a given step and position).
    `steps` = length / the mode's `tokens_per_step` (1 by default); its `block_length` replaces the given one."""
    settings = dict(settings)
    steps = length // settings.pop("tokens_per_step", 1)
    block_length = settings.pop("block_length", block_length)
    randomness = {"seed": 0} if temperature else {}
    seconds, out = timed(model.diffusion_generate, prompts.to(model.device), max_new_tokens=length, steps=steps,
                         block_length=block_length, return_dict_in_generate=True, temperature=temperature,
                         top_p=top_p if top_p is not None and top_p < 1 else None, **randomness, **FIXED, **settings)
    return seconds, out.sequences[:, prompts.shape[1]:].cpu(), out.nfe


def ar_run(ar_model, prompts, length, temperature=0.0, top_p=None):
    """(seconds, generated tokens) of `LlamaForCausalLM.generate` with its KV cache, exactly `length` tokens, greedy
    or sampled at `temperature` within the nucleus `top_p` (torch's generator seeded with 0)."""
    prompts = prompts.to(ar_model.device)
    sampling = dict(do_sample=True, temperature=temperature) if temperature else dict(do_sample=False,
                                                                                      temperature=None)
    torch.manual_seed(0)
    seconds, out = timed(ar_model.generate, prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=length,
                         min_new_tokens=length, pad_token_id=ar_model.config.pad_token_id, top_k=None,
                         top_p=top_p if temperature and top_p is not None and top_p < 1 else None, **sampling)
    return seconds, out[:, prompts.shape[1]:].cpu()


@torch.no_grad()
def sliding_perplexity(ar_model, prompts, generated, context: int) -> float:
    """exp(mean NLL) of the generated tokens under `ar_model`, each token seen with up to `context - 1` tokens
    before it (windows of `context` tokens, advancing by half of it)."""
    sequences = torch.cat([prompts, generated], dim=1).to(ar_model.device)  # (batch, seq)
    first_scored, seq = prompts.shape[1], sequences.shape[1]
    total_nll, count, stride = 0.0, 0, max(context // 2, 1)
    scored_until = first_scored  # tokens before this index are scored already (or are the prompt)
    end = min(seq, context)
    while scored_until < seq:
        start = max(0, end - context)
        window = sequences[:, start:end]
        logits = ar_model(input_ids=window).logits[:, :-1].float()  # (batch, w - 1, vocab)
        nll = F.cross_entropy(logits.transpose(1, 2), window[:, 1:], reduction="none")  # (batch, w - 1)
        new = nll[:, scored_until - start - 1:]  # targets at positions scored_until .. end - 1
        total_nll += new.double().sum().item()
        count += new.numel()
        scored_until, end = end, min(seq, end + stride)
    return math.exp(total_nll / count)


class SampleQuality:
    """Word validity and distinct-2 of decoded samples (`sample_quality.py`'s metrics), against the training text's
    vocabulary; NaN without a tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer, self.vocabulary = tokenizer, None
        if tokenizer is not None:
            metrics = _sample_quality_module()
            train_text, _ = metrics.corpus_splits()
            self.metrics, self.vocabulary = metrics, set(metrics.words_of(train_text))

    def __call__(self, generated) -> dict:
        if self.tokenizer is None:
            return dict(validity=float("nan"), distinct2=float("nan"))
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return dict(validity=self.metrics.word_validity(texts, self.vocabulary),
                    distinct2=self.metrics.distinct_n(texts, 2))


def _sample_quality_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sample_quality", Path(__file__).with_name("sample_quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_runs(contenders: dict, repeats: int) -> dict:
    """name -> (fastest seconds, output) of `repeats` alternated calls of each contender (a no-argument function)."""
    best = {}
    for _ in range(max(repeats, 1)):
        for name, run in contenders.items():
            seconds, *output = run()
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, *output)
    return best


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
    diffusion_run(llada, benchmark_prompts(tokenizer, 2, args.prompt_length, llada.config.vocab_size), 32,
                  block_length, {}, args.temperature, args.top_p)  # warm-up
    for batch_size in args.batch_sizes:
        prompts = benchmark_prompts(tokenizer, batch_size, args.prompt_length, llada.config.vocab_size)
        for length in args.lengths:
            if args.max_batch_tokens and batch_size * length > args.max_batch_tokens:
                print(f"(skipping batch {batch_size} x length {length}: above --max_batch_tokens)")
                continue
            contenders = {mode: functools.partial(diffusion_run, llada, prompts, length, block_length, settings,
                                                  args.temperature, args.top_p) for mode, settings in modes.items()}
            contenders["AR generate"] = lambda: (*ar_run(ar_model, prompts, length, args.temperature, args.top_p),
                                                 length)
            runs = timed_runs(contenders, args.repeats)
            baseline = runs["baseline"]
            for mode, (seconds, generated, nfe) in runs.items():
                results.append(dict(
                    batch=batch_size, length=length, mode=mode, nfe=nfe, seconds=seconds,
                    tokens_per_forward=length / nfe, ms_per_forward=1e3 * seconds / nfe,
                    tokens_per_s=generated.numel() / seconds, speedup=baseline[0] / seconds,
                    identical=float((generated == baseline[1]).float().mean()),
                    gen_ppl=sliding_perplexity(ar_model, prompts, generated, ar_context), **quality(generated)))
                print(format_row(results[-1]), flush=True)
    return results


COLUMNS = ("batch", "length", "mode", "NFE", "tokens/forward", "ms/forward", "seconds", "tokens/s", "speed-up",
           "identical", "gen. PPL", "word validity", "distinct-2")


def format_row(row) -> str:
    return (f"| {row['batch']} | {row['length']} | {row['mode']} | {row['nfe']} | {row['tokens_per_forward']:.2f} | "
            f"{row['ms_per_forward']:.1f} | {row['seconds']:.2f} | {row['tokens_per_s']:.0f} | {row['speedup']:.1f}x | "
            f"{row['identical']:.3f} | {row['gen_ppl']:.2f} | {row['validity']:.3f} | {row['distinct2']:.3f} |")


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
    largest = {length: max(r["batch"] for r in results if r["length"] == length) for length in {r["length"] for r in
                                                                                               results}}
    for batch, length in sorted({(r["batch"], r["length"]) for r in results}):
        judge = lambda mode: by_key.get((largest[length], length, mode))  # noqa: E731
        base, ar = judge("baseline"), judge("AR generate")
        if not (base and ar):
            continue
        fast = [r for r in results if (r["batch"], r["length"]) == (batch, length)
                and r["mode"] not in ("baseline", "AR generate")]
        held = [r for r in fast if holds_quality(judge(r["mode"]), base)]
        matched = [r for r in fast if holds_quality(judge(r["mode"]), ar, ppl_ratio=None)]
        own_ar = by_key[(batch, length, "AR generate")]
        best = max(held, key=lambda r: r["tokens_per_s"], default=None)
        text = f"batch {batch}, length {length}: "
        if best is None:
            text += "no fast mode holds the baseline's quality (target: >= 10x its tokens/s at it); "
        else:
            text += (f"best fast mode at the baseline's quality: {best['mode']}, {best['speedup']:.1f}x the baseline's "
                     f"tokens/s (target >= 10x), {best['tokens_per_forward']:.2f} tokens/forward, "
                     f"{best['ms_per_forward']:.1f} ms/forward; ")
        best_ar = max(matched, key=lambda r: r["tokens_per_s"], default=None)
        if best_ar is None:
            text += f"no diffusion mode matches the AR samples' word validity ({ar['validity']:.3f})"
        else:
            text += (f"best at the AR samples' word validity: {best_ar['mode']}, "
                     f"{best_ar['tokens_per_s'] / own_ar['tokens_per_s']:.2f}x the AR model's tokens/s "
                     f"(target >= 1.0x, then 1.5x; AR {own_ar['ms_per_forward']:.1f} ms/forward)")
        lines.append(text)
    return lines


SUMMARY_MODES = ("baseline", "dual", "dual+threshold", "steps/2", "vicinity icdf", "vicinity icdf steps/2",
                 "b16 vicinity icdf", "b8 vicinity icdf", "block cache", "block cache icdf",
                 "block cache icdf+threshold 0.9", "block cache icdf steps/2", "AR generate")


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


def write_markdown(results, args, path: Path, header: str):
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [format_row(row) for row in results]
    lines += ["", *[f"- {line}" for line in targets(results)], ""]
    longest = max(r["length"] for r in results)
    lines += [f"Summary (the README's table), length {longest}:", "", *summary_table(results, longest), ""]
    path.write_text("\n".join(lines))


def write_plot(results, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch_sizes = sorted({r["batch"] for r in results})
    figure, axes = plt.subplots(1, len(batch_sizes), figsize=(5.5 * len(batch_sizes), 4.2), squeeze=False)
    for axis, batch in zip(axes[0], batch_sizes):
        for mode in dict.fromkeys(r["mode"] for r in results):
            rows = sorted((r for r in results if r["batch"] == batch and r["mode"] == mode), key=lambda r: r["length"])
            axis.plot([r["length"] for r in rows], [r["seconds"] for r in rows], marker="o", label=mode,
                      linestyle="--" if mode == "AR generate" else "-")
        axis.set(xscale="log", yscale="log", xlabel="generated tokens", ylabel="seconds", title=f"batch {batch}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["row_loop"]:
        return row_loop_main(argv[1:])
    if argv[:1] == ["row_streams"]:
        return row_streams_main(argv[1:])
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    llada, ar_model, tokenizer = load_models(args)
    size = sum(p.numel() for p in llada.parameters()) / 1e6
    sampling = f"temperature {args.temperature} (seed 0, a stream per row)" if args.temperature else "greedy"
    if args.temperature and args.top_p is not None and args.top_p < 1:
        sampling += f", top_p {args.top_p}"
    block_size = getattr(llada.config, "block_size", None)
    blocks = (f"block {args.block_length} unless the mode says (bL: block L)" if block_size is None else
              f"a block diffusion model: its blocks of {block_size}")
    header = (f"LLaDA {size:.2f}M parameters, {sampling}, {blocks}, steps = length unless the mode says, prompt "
              f"{args.prompt_length} tokens, threshold {args.threshold}, factor {args.factor}, credit decay "
              f"{args.credit_decay}, device {args.device}, {torch.get_num_threads()} thread(s), fastest of "
              f"{args.repeats} alternated run(s)")
    print(header)
    print("| " + " | ".join(COLUMNS) + " |")
    results = measure(llada, ar_model, tokenizer, args)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_markdown(results, args, output_dir / "generate.md", header)
    write_plot(results, output_dir / "generate.png")
    print("\n".join(targets(results)))
    print(f"wrote {output_dir / 'generate.md'} and {output_dir / 'generate.png'}")
    return results


# ----------------------------------------------------------------------------------------------------------------
# Section `row_loop`: the batched sampler vs a straightforward one-row-at-a-time implementation (same algorithm)


def parse_row_loop_args(argv=None):
    parser = argparse.ArgumentParser(prog="bench_generate.py row_loop", description=ROW_LOOP_DOC)
    parser.add_argument("--model", help="A saved model folder; default: a randomly initialised model.")
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=8)
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--min_prompt_len", type=int, default=8)
    parser.add_argument("--max_prompt_len", type=int, default=32)
    parser.add_argument("--gen_length", type=int, default=32)
    parser.add_argument("--block_length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per implementation (alternating)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    return parser.parse_args(argv)


def build_model(args):
    if args.model:
        return LLaDAForMaskedDiffusion.from_pretrained(args.model).to(args.device, getattr(torch, args.dtype)).eval()
    config = LLaDAConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=int(args.hidden_size * 2.6875),
        num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads, max_position_embeddings=1024,
        mask_token_id=args.vocab_size - 1, pad_token_id=0, bos_token_id=None, eos_token_id=None,
        initializer_range=0.1,  # wide enough that a random model's predictions are not all ties
    )
    torch.manual_seed(0)
    return LLaDAForMaskedDiffusion(config).to(args.device, getattr(torch, args.dtype)).eval()


def make_prompts(args, model):
    """`batch_size` prompts (lists of ids) of lengths spread over [min_prompt_len, max_prompt_len]."""
    lengths = torch.linspace(args.min_prompt_len, args.max_prompt_len, args.batch_size).round().long().tolist()
    tokenizer_file = Path(args.model or "") / "tokenizer.json"
    if args.model and tokenizer_file.is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        text = (Path(__file__).resolve().parents[1] / "llada" / "data" / "tinyshakespeare.txt").read_text()
        ids = tokenizer(text[:20000], add_special_tokens=False)["input_ids"]
        return [ids[i * 100: i * 100 + n] for i, n in enumerate(lengths)]
    generator = torch.Generator().manual_seed(1)
    special = {model.config.mask_token_id, model.config.pad_token_id}
    ids = [t for t in torch.randint(2, model.config.vocab_size, (5000,), generator=generator).tolist()
           if t not in special]
    return [ids[i * 100: i * 100 + n] for i, n in enumerate(lengths)]


@torch.no_grad()
def baseline_generate_one(model, prompt, gen_length, block_length, steps, mask_id):
    """LLaDA's sampler for ONE prompt, written plainly: full-canvas softmax and confidence at every step."""
    x = torch.tensor([prompt + [mask_id] * gen_length], device=model.device)  # (1, seq)
    prompt_len = len(prompt)
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for block in range(num_blocks):
        block_end = prompt_len + (block + 1) * block_length
        block_mask = x[:, prompt_len + block * block_length: block_end] == mask_id
        base, extra = divmod(int(block_mask.sum()), steps_per_block)
        schedule = [base + (1 if i < extra else 0) for i in range(steps_per_block)]
        for k in schedule:
            mask_index = x == mask_id
            logits = model(x).logits  # (1, seq, vocab)
            logits[..., mask_id] = float("-inf")  # as diffusion_generate: the mask is never a prediction
            x0 = logits.argmax(dim=-1)
            p = F.softmax(logits.float(), dim=-1)
            confidence = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # (1, seq)
            confidence[:, block_end:] = float("-inf")
            confidence = torch.where(mask_index, confidence, torch.tensor(float("-inf"), device=x.device))
            chosen = torch.topk(confidence[0], k).indices
            x[0, chosen] = x0[0, chosen]
    return x[0, prompt_len:]


def run_baseline(model, prompts, args):
    return [baseline_generate_one(model, p, args.gen_length, args.block_length, args.steps,
                                  model.config.mask_token_id) for p in prompts]


def run_batched(model, prompts, args):
    input_ids, attention_mask = left_pad(prompts, model.config.pad_token_id, args.device)
    width = input_ids.shape[1]
    out = model.diffusion_generate(input_ids, attention_mask=attention_mask, max_new_tokens=args.gen_length,
                                   steps=args.steps, block_length=args.block_length, remasking="low_confidence",
                                   temperature=0.0, eos_token_id=None)
    return list(out[:, width:])


def row_loop_main(argv=None):
    args = parse_row_loop_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    prompts = make_prompts(args, model)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, batch {len(prompts)}, "
          f"prompt lengths {[len(p) for p in prompts]}, gen_length {args.gen_length}, block {args.block_length}, "
          f"steps {args.steps}, device {args.device}, {torch.get_num_threads()} threads")
    run_batched(model, prompts[:2], args)  # warm-up (allocator, kernels)
    baseline_times, batched_times = [], []
    for _ in range(args.repeats):
        seconds, baseline = timed(run_baseline, model, prompts, args)
        baseline_times.append(seconds)
        seconds, batched = timed(run_batched, model, prompts, args)
        batched_times.append(seconds)
    identical = sum(int((a.cpu() == b.cpu()).sum()) for a, b in zip(baseline, batched))
    total = sum(a.numel() for a in baseline)
    rows_identical = sum(bool(torch.equal(a.cpu(), b.cpu())) for a, b in zip(baseline, batched))
    baseline_s, batched_s = statistics.median(baseline_times), statistics.median(batched_times)
    print(f"baseline (one row at a time): {baseline_s:.3f} s  ({total / baseline_s:.0f} tokens/s)")
    print(f"diffusion_generate (batched): {batched_s:.3f} s  ({total / batched_s:.0f} tokens/s)")
    print(f"identical-token rate: {identical / total:.4f} ({identical}/{total}; {rows_identical}/{len(prompts)} "
          f"rows identical)")
    print(f"time ratio ours / baseline: {batched_s / baseline_s:.2f}x (target <= 0.9x)")



# --------------------------------------------------------------------------------------------------------------
# Section `row_streams`: what batch-invariant sampling costs (one random stream per row vs one for the batch)

ROW_STREAMS_DOC = ("Sampling with one random stream per row (`seed=`: a row's sample does not depend on its batch) "
                   "vs one stream for the whole batch (`generator=`).")


def parse_row_streams_args(argv=None):
    parser = argparse.ArgumentParser(prog="bench_generate.py row_streams", description=ROW_STREAMS_DOC)
    parser.add_argument("--model", help=f"LLaDA model folder; default: the first of {MODEL_CANDIDATES} found, else a "
                                        f"random model of the same dimensions (the speed does not depend on weights).")
    parser.add_argument("--random_models", action="store_true", help="A random model of the trained dimensions.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "row_streams.md"))
    return parser.parse_args(argv)


def row_streams_model(args):
    folder = args.model or next((str(ROOT / c) for c in MODEL_CANDIDATES if (ROOT / c / "config.json").is_file()), None)
    if folder is not None and not args.random_models:
        return LLaDAForMaskedDiffusion.from_pretrained(folder).eval(), folder
    config = LLaDAConfig(vocab_size=259, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, max_position_embeddings=args.length + 64, mask_token_id=258,
                         pad_token_id=257, eos_token_id=256, bos_token_id=None)
    torch.manual_seed(0)
    return LLaDAForMaskedDiffusion(config).eval(), "random model with the dimensions of the trained one"


def draw_cost_line(args, vocab_size: int, calls: int = 300) -> str:
    """The random draws alone, for one step's (batch, block, vocab) Gumbel noise: per-row streams vs one stream."""
    from llada.rows_llada import RandomDraws

    shape = (args.batch_size, args.block_length, vocab_size)
    sources = {"per_row": RandomDraws.per_row(0, torch.zeros(args.batch_size, dtype=torch.long), "cpu"),
               "shared": RandomDraws.shared(torch.Generator().manual_seed(0))}
    times = {name: [] for name in sources}
    for _ in range(calls):
        for name, source in sources.items():
            start = time.perf_counter()
            source.uniform(shape, "cpu")
            times[name].append(time.perf_counter() - start)
    per_row, shared = (statistics.median(times[name]) * 1e3 for name in ("per_row", "shared"))
    return (f"The draws alone, {shape} float64 per step, median of {calls} alternated calls: per-row {per_row:.3f} ms, "
            f"one stream {shared:.3f} ms, ratio {per_row / shared:.3f}x.")


def row_streams_main(argv=None):
    args = parse_row_streams_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, source = row_streams_model(args)
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 250, (int(length),), generator=generator).tolist()  # mixed prompt lengths
            for length in torch.randint(4, 17, (args.batch_size,), generator=generator)]
    prompts, attention_mask = left_pad(rows, model.config.pad_token_id or 0)
    modes = {"baseline": {}, "dual + threshold 0.9": {"use_cache": "dual", "threshold": 0.9}}
    lines = [f"{ROW_STREAMS_DOC}", "",
             f"Model: {source}; batch {args.batch_size}, {args.length} new tokens, block {args.block_length}, "
             f"temperature {args.temperature}; {torch.get_num_threads()} thread(s); best and median of {args.repeats} "
             f"runs, the two contenders alternated.", "",
             "| mode | per-row s (best / median) | one stream s (best / median) | ratio per-row / one stream (best; "
             "median of the paired runs) | rows equal alone vs in the batch: per-row, one stream |",
             "|---|---|---|---|---|"]
    for name, mode in modes.items():
        settings = dict(max_new_tokens=args.length, steps=args.length, block_length=args.block_length,
                        temperature=args.temperature, eos_token_id=None, **mode)
        times = {"per_row": [], "shared": []}
        outputs = {}
        for _ in range(args.repeats):
            for contender in ("per_row", "shared"):
                randomness = {"seed": 0} if contender == "per_row" else {"generator": torch.Generator().manual_seed(0)}
                start = time.perf_counter()
                outputs[contender] = model.diffusion_generate(prompts, attention_mask=attention_mask, **settings,
                                                              **randomness)
                times[contender].append(time.perf_counter() - start)
        equal = {}
        for contender in ("per_row", "shared"):
            same = 0
            for row, prompt in enumerate(rows):
                randomness = {"seed": 0} if contender == "per_row" else {"generator": torch.Generator().manual_seed(0)}
                alone = model.diffusion_generate(torch.tensor([prompt]), **settings, **randomness)[0, len(prompt):]
                same += alone.tolist() == outputs[contender][row, prompts.shape[1]:].tolist()
            equal[contender] = same
        best = {k: min(v) for k, v in times.items()}
        median = {k: statistics.median(v) for k, v in times.items()}
        paired = statistics.median(a / b for a, b in zip(times["per_row"], times["shared"]))
        lines.append(f"| {name} | {best['per_row']:.3f} / {median['per_row']:.3f} | {best['shared']:.3f} / "
                     f"{median['shared']:.3f} | {best['per_row'] / best['shared']:.3f}x; {paired:.3f}x | "
                     f"{equal['per_row']}/{args.batch_size}, {equal['shared']}/{args.batch_size} |")
    lines += ["", draw_cost_line(args, model.config.vocab_size)]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
