"""Speed of this package's model code against the Hub code files saved in a model folder (an older version).

The same weights run through both: this package's `LLaDAForMaskedDiffusion`, and the class that the folder's own
`*_llada.py` files define (loaded with `trust_remote_code`). For each sampler mode the two generate from the same
prompts, alternating, and a training step (forward + backward) is timed the same way. It prints the median time of
each and the ratio current / saved (below 1: the current code is faster), and checks that the generated tokens are
identical.

    python benchmarks/bench_code_versions.py                       # against tests/fixtures/saved_before_split
    python benchmarks/bench_code_versions.py --code_from DIR --hidden_size 256 --num_layers 4 --repeats 9

The default model has the shape of the TinyShakespeare model of `make train` (hidden 128, 4 layers, 4 heads,
FFN 384, 259 byte tokens, 128 positions), randomly initialised. One intra-op thread by default.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "baseline": {},
    "prefix": {"use_cache": "prefix"},
    "dual": {"use_cache": "dual"},
    "dual+threshold": {"use_cache": "dual", "threshold": 0.9},
    "guided": {"cfg_scale": 1.0},
    "sampled": {"temperature": 0.8, "remasking": "random", "seed": 0},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code_from", default=str(ROOT / "tests" / "fixtures" / "saved_before_split"),
                        help="A model folder whose *_llada.py files are the code to compare against.")
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_size", type=int, default=384)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--length", type=int, default=64, help="Tokens generated (block 32, one token per step).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs of each code per measurement.")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    args = parser.parse_args(argv)
    if not list(Path(args.code_from).glob("modeling_llada.py")):
        parser.error(f"--code_from {args.code_from!r} has no modeling_llada.py")
    return args


def load_both(args, folder: Path):
    """(current, saved): the same weights in this package's class and in the class of the folder's code files."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from llada import LLaDAConfig, LLaDAForMaskedDiffusion

    config = LLaDAConfig(vocab_size=259, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                         num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads,
                         max_position_embeddings=128, mask_token_id=258, pad_token_id=257, eos_token_id=256,
                         bos_token_id=None)
    torch.manual_seed(0)
    LLaDAForMaskedDiffusion(config).save_pretrained(folder / "current")
    saved = shutil.copytree(folder / "current", folder / "saved", ignore=shutil.ignore_patterns("*.py"))
    for path in Path(args.code_from).glob("*_llada.py"):
        shutil.copy(path, saved / path.name)
    current = LLaDAForMaskedDiffusion.from_pretrained(folder / "current").eval()
    # the class of the folder's files (AutoModel would pick this package's class, registered for "llada")
    saved_class = get_class_from_dynamic_module("modeling_llada.LLaDAForMaskedDiffusion", str(saved))
    saved_model = saved_class.from_pretrained(saved).eval()
    assert type(saved_model).__module__.startswith("transformers_modules."), type(saved_model).__module__
    return current, saved_model


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def alternate(fns: dict, repeats: int) -> dict:
    """Runs every function `repeats` times, alternating (the order flips every round, so neither always goes
    first); returns {name: (median seconds, last result)}."""
    times, results = {name: [] for name in fns}, {}
    for repeat in range(repeats):
        for name, fn in (list(fns.items()) if repeat % 2 == 0 else list(fns.items())[::-1]):
            seconds, results[name] = timed(fn)
            times[name].append(seconds)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def prompts_for(batch_size: int):
    generator = torch.Generator().manual_seed(batch_size)
    ids = torch.randint(0, 256, (batch_size, 16), generator=generator)
    attention_mask = torch.ones_like(ids)
    attention_mask[1::2, :4] = 0  # every other row left-padded
    return ids.masked_fill(attention_mask == 0, 257), attention_mask


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        current, saved = load_both(args, Path(tmp))
        code_from = Path(args.code_from).resolve()
        shown = code_from.relative_to(ROOT) if code_from.is_relative_to(ROOT) else code_from
        print(f"code compared: this package vs {shown}; hidden {args.hidden_size}, {args.num_layers} "
              f"layers, {torch.get_num_threads()} thread(s), median of {args.repeats}")
        print(f"{'measurement':<28} {'current ms':>11} {'saved ms':>9} {'ratio':>7}  tokens")
        ratios = []
        for batch_size in args.batch_sizes:
            ids, attention_mask = prompts_for(batch_size)
            for mode, settings in MODES.items():
                def run(model, settings=settings):
                    return model.diffusion_generate(ids, attention_mask=attention_mask, max_new_tokens=args.length,
                                                    steps=args.length, block_length=32, eos_token_id=None,
                                                    **settings)
                out = alternate({"current": lambda: run(current), "saved": lambda: run(saved)}, args.repeats)
                same = "identical" if torch.equal(out["current"][1], out["saved"][1]) else "DIFFERENT"
                ratio = out["current"][0] / out["saved"][0]
                ratios.append(ratio)
                print(f"{f'generate {mode} b{batch_size}':<28} {1e3 * out['current'][0]:>11.1f} "
                      f"{1e3 * out['saved'][0]:>9.1f} {ratio:>7.3f}  {same}")
        batch = torch.randint(0, 256, (8, 128), generator=torch.Generator().manual_seed(1))
        labels = torch.where(torch.rand(8, 128, generator=torch.Generator().manual_seed(2)) < 0.5, batch, -100)
        p_mask = torch.full((8,), 0.5)

        def train_step(model):
            model.zero_grad(set_to_none=True)
            loss = model(batch, labels=labels, p_mask=p_mask).loss
            loss.backward()
            return loss.detach()

        current.train(), saved.train()
        out = alternate({"current": lambda: train_step(current), "saved": lambda: train_step(saved)},
                        args.repeats * 2)
        same = "identical" if torch.equal(out["current"][1], out["saved"][1]) else "DIFFERENT"
        ratio = out["current"][0] / out["saved"][0]
        print(f"{'train step b8 x 128':<28} {1e3 * out['current'][0]:>11.1f} {1e3 * out['saved'][0]:>9.1f} "
              f"{ratio:>7.3f}  loss {same}")
        print(f"geometric mean of the generate ratios: {statistics.geometric_mean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
