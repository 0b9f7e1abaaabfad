"""Where a `diffusion_generate` step goes: backbone, output head, sampler ops, cache bookkeeping, host syncs.

    python benchmarks/profile_generate.py --model runs/llada-tinyshakespeare             # batch 8 x 256
    python benchmarks/profile_generate.py --model M --batch_size 1 --modes baseline dual
    python benchmarks/profile_generate.py --random_model --length 64         # no trained model needed (preset main)
    python benchmarks/profile_generate.py --model B --modes "block baseline" "block cache icdf"   # a block model

Each mode generates once (after a warm-up call), at `--temperature` (default 1.0, `seed=0`; 0 = greedy) and
`--top_p` (default 0.8, the main job's), with the parts of the sampler wrapped in timers:

    backbone   `LLaDAModel.forward` (embeddings, layers, final norm), without the cache's own work
    head       the output head (`lm_head`)
    sampler    the pure step functions `generation_llada` calls (`constrain_logits`, `denoise_block`, the schedule,
               the running rows, EOS handling)
    cache      `CanvasKVCache` or a block model's `BlockKVCache` (window plan, key/value writes, dropping rows)
    host sync  every tensor -> Python conversion (`bool(t)`, `int(t)`, `.item()`, `.tolist()`): the count per step
               and their time (on a CPU a conversion is cheap; on an accelerator each one waits for the device)
    other      the rest of the call: the loop, canvas copies, decode steps, argument checks

Times are exclusive (a part's time does not include the parts it calls), in ms per step (forward call), so the
columns add up to the time of a step. The timers add a few microseconds per wrapped call. One thread by default.
Appends the table to `--output` (markdown; its JSON beside it, a list of the runs) as well.
"""

import argparse
import functools
import time
from collections import defaultdict

import torch

import common
import llada.generation_llada as generation_module
from llada import LLaDAForMaskedDiffusion
from llada.cache_llada import BlockKVCache, CanvasKVCache
from llada.modeling_llada import LLaDAModel
from llada.rows_llada import RunningRows

PARTS = ("backbone", "head", "sampler", "cache", "host sync", "other")
SAMPLER_FUNCTIONS = (
    "constrain_logits",
    "denoise_block",
    "num_transfer_tokens",
    "fill_finished_rows",
    "pad_after_eos",
    "guided_logits",
    "guidance_inputs",
)
MODES = {
    "baseline": {},
    "dual": {"use_cache": "dual"},
    "dual+threshold": {"use_cache": "dual", "threshold": 0.9},
    "dual-masked": {"use_cache": "dual", "cache_window": "masked"},
    "b8 dual-masked": {"use_cache": "dual", "cache_window": "masked", "block_length": 8},
    "b8 vicinity": {
        "use_cache": "dual",
        "cache_window": "masked",
        "block_length": 8,
        "cache_refresh_window": "vicinity",
    },
    "vicinity icdf": {
        "use_cache": "dual",
        "cache_window": "masked",
        "cache_refresh_window": "vicinity",
        "token_sampling": "inverse_cdf",
    },
    "b8 vicinity icdf": {
        "use_cache": "dual",
        "cache_window": "masked",
        "block_length": 8,
        "cache_refresh_window": "vicinity",
        "token_sampling": "inverse_cdf",
    },
    # a block diffusion model (`config.block_size`) decodes its own blocks: no cache (the whole canvas every step),
    # its exact block cache, and that with inverse-CDF draws
    "block baseline": {"use_cache": False, "block_length": None},
    "block cache": {"block_length": None},
    "block cache icdf": {"block_length": None, "token_sampling": "inverse_cdf"},
}


class PartTimer:
    """Exclusive wall time and call counts per part, from nested wrapped calls."""

    def __init__(self):
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        self._children = []  # stack: time spent in wrapped calls below the current one

    def wrap(self, part, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[part] += elapsed - self._children.pop()
                self.calls[part] += 1
                if self._children:
                    self._children[-1] += elapsed

        return timed

    def reset(self):
        self.seconds.clear()
        self.calls.clear()


def install(timer: PartTimer, model) -> list:
    """Wraps the parts in `timer`; returns the undo list of (owner, name, original)."""
    undo = []

    def patch(owner, name, part):
        original = getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, timer.wrap(part, original))

    patch(LLaDAModel, "forward", "backbone")
    patch(model.lm_head, "forward", "head")
    for name in SAMPLER_FUNCTIONS:
        if hasattr(generation_module, name):
            patch(generation_module, name, "sampler")
    for name in ("take", "put", "drop_finished"):
        patch(RunningRows, name, "sampler")
    for cache_class in (CanvasKVCache, BlockKVCache):
        for name in ("plan_window", "update", "keep_rows"):
            patch(cache_class, name, "cache")
    for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
        patch(torch.Tensor, name, "host sync")
    return undo


def uninstall(undo):
    for owner, name, original in reversed(undo):
        setattr(owner, name, original)


def load(args):
    if args.random_model:  # wide initial weights: a random model's predictions are then not all ties
        model = common.random_model(
            args.preset,
            max_position_embeddings=args.prompt_length + args.length,
            initializer_range=0.1,
            seed=args.seed,
        )
        return model, f"random model (preset {args.preset})"
    model = LLaDAForMaskedDiffusion.from_pretrained(args.model).eval()
    model.config.max_position_embeddings = max(model.config.max_position_embeddings, args.prompt_length + args.length)
    return model, args.model


def profile_mode(model, prompts, args, settings):
    """(ms per step per part, host syncs per step, nfe, seconds) of one call."""
    kwargs = dict(
        max_new_tokens=args.length,
        steps=args.length,
        block_length=args.block_length,
        temperature=args.temperature,
        remasking="low_confidence",
        eos_token_id=None,
        top_p=args.top_p if args.temperature and args.top_p < 1 else None,
        return_dict_in_generate=True,
        **({"seed": args.seed} if args.temperature else {}),
    )
    kwargs.update(settings)  # a mode's block length replaces --block_length
    model.diffusion_generate(prompts, **kwargs)  # warm-up, untimed
    timer = PartTimer()
    undo = install(timer, model)
    try:
        total = timer.wrap("other", model.diffusion_generate)
        start = time.perf_counter()
        out = total(prompts, **kwargs)
        seconds = time.perf_counter() - start
    finally:
        uninstall(undo)
    per_step = {part: 1e3 * timer.seconds[part] / out.nfe for part in PARTS}
    return per_step, timer.calls["host sync"] / out.nfe, out.nfe, seconds


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="LLaDA model folder")
    parser.add_argument("--random_model", action="store_true", help="a random model of --preset's size")
    parser.add_argument("--preset", default="main", choices=list(common.PRESETS), help="its size (default main)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        help="default: the `block ...` modes for a block diffusion model, the others otherwise",
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top_p", type=float, default=0.8, help="nucleus when sampling (the main job's); 1 = none")
    parser.add_argument("--label", default="", help="a name for this run in the table's heading")
    common.add_common_args(parser, output=common.RESULTS / "profile.md")
    args = parser.parse_args(argv)
    if not (args.model or args.random_model):
        parser.error("pass --model FOLDER or --random_model")
    return args


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    model, source = load(args)
    block_model = getattr(model.config, "block_size", None) is not None
    modes = args.modes or [mode for mode in MODES if mode.startswith("block ") == block_model]
    wrong = [mode for mode in modes if mode.startswith("block ") != block_model]
    if wrong:
        raise SystemExit(
            f"--modes {wrong} are for {'full-attention' if block_model else 'block diffusion'} models; "
            f"{source} is a {'block diffusion' if block_model else 'full-attention'} model"
        )
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size - 8  # clear of the special ids at the top of the vocabulary
    prompts = torch.randint(0, vocab, (args.batch_size, args.prompt_length), generator=generator)
    intro = [
        f"### {args.label or 'profile'}: {source}",
        f"Batch {args.batch_size} x {args.length} new tokens, "
        + (
            f"blocks of {model.config.block_size} (the model's), "
            if block_model
            else f"block {args.block_length} (b8 modes: 8), "
        )
        + f"temperature {args.temperature}"
        + (f", top_p {args.top_p}" if args.temperature else "")
        + ", "
        f"{harness}; ms per step (exclusive), host syncs per step.",
    ]
    print("\n\n".join(intro))
    columns = {
        "mode": "mode",
        "nfe": "NFE",
        "seconds": "s",
        "ms_per_step": "ms/step",
        **{p: p for p in PARTS},
        "syncs": "syncs/step",
    }
    formats = {"seconds": ".2f", "ms_per_step": ".2f", **{p: ".2f" for p in PARTS}, "syncs": ".1f"}
    rows = []
    for mode in modes:
        per_step, syncs, nfe, seconds = profile_mode(model, prompts, args, MODES[mode])
        rows.append(
            dict(mode=mode, nfe=nfe, seconds=seconds, ms_per_step=sum(per_step.values()), **per_step, syncs=syncs)
        )
        print(common.markdown_table(rows[-1:], columns, formats)[-1], flush=True)
    written = common.write_report(
        args.output, rows, intro=intro, columns=columns, formats=formats, meta=vars(args), append=True
    )
    if written:
        print(f"appended to {written} and its .json")


if __name__ == "__main__":
    main()
