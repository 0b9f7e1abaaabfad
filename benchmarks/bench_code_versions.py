"""Speed of this package's model code against the Hub code files saved in a model folder (an older version).

The same weights run through both: this package's `LLaDAForMaskedDiffusion`, and the class that the folder's own
`*_llada.py` files define (loaded with `trust_remote_code`). For each sampler mode the two generate from the same
prompts, alternating (benchmarks/common.py: the median of `--repeats` rounds), and a training step (forward +
backward) is timed the same way. It prints the median time of each and the ratio current / saved (below 1: the
current code is faster), and checks that the generated tokens are identical.

    python benchmarks/bench_code_versions.py                       # against tests/fixtures/saved_hub_files/v0.1.0-*
    python benchmarks/bench_code_versions.py --code_from DIR --preset medium --repeats 9
    python benchmarks/bench_code_versions.py --preset tiny --batch_sizes 1 --length 32 --repeats 1   # a smoke run

The default model has the size of the `main` preset, the model of `make train` (hidden 128, 4 layers, 4 heads, FFN
384, the 4096-token BPE, 128 positions), randomly initialised. One intra-op thread by default.
"""

import argparse
import shutil
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

import common

# the Hub files of version 0.1.0 before the sampler was split into sampling_llada.py and cache_llada.py
SAVED_BEFORE_THE_SPLIT = common.ROOT / "tests" / "fixtures" / "saved_hub_files" / "v0.1.0-aaad530.tar.gz"
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
    parser.add_argument(
        "--code_from",
        default=str(SAVED_BEFORE_THE_SPLIT),
        help="A model folder, or a .tar.gz archive of one, whose *_llada.py files are the code to compare against.",
    )
    parser.add_argument(
        "--preset", default="main", choices=list(common.PRESETS), help="The model size (default main)."
    )
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--length", type=int, default=64, help="Tokens generated (block 32, one token per step).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs of each code per measurement.")
    common.add_common_args(parser)
    args = parser.parse_args(argv)
    try:
        names = [Path(name).name for name in code_files(args.code_from)]
    except (OSError, tarfile.TarError) as error:
        parser.error(f"--code_from {args.code_from!r}: {error}")
    if "modeling_llada.py" not in names:
        parser.error(f"--code_from {args.code_from!r} has no modeling_llada.py")
    return args


def code_files(code_from) -> dict:
    """name -> contents of the *_llada.py files of a model folder or of a .tar.gz archive of one."""
    if str(code_from).endswith(".tar.gz"):
        with tarfile.open(code_from) as archive:
            return {
                Path(member.name).name: archive.extractfile(member).read()
                for member in archive.getmembers()
                if member.isfile() and "/" not in member.name.removeprefix("./") and member.name.endswith("_llada.py")
            }
    return {path.name: path.read_bytes() for path in Path(code_from).glob("*_llada.py")}


def load_both(args, folder: Path):
    """(current, saved): the same weights in this package's class and in the class of the folder's code files."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from llada import LLaDAForMaskedDiffusion

    common.random_model(args.preset, seed=args.seed).save_pretrained(folder / "current")
    saved = shutil.copytree(folder / "current", folder / "saved", ignore=shutil.ignore_patterns("*.py"))
    for name, contents in code_files(args.code_from).items():
        (saved / name).write_bytes(contents)
    current = LLaDAForMaskedDiffusion.from_pretrained(folder / "current").eval()
    # the class of the folder's files (AutoModel would pick this package's class, registered for "llada")
    saved_class = get_class_from_dynamic_module("modeling_llada.LLaDAForMaskedDiffusion", str(saved))
    saved_model = saved_class.from_pretrained(saved).eval()
    assert type(saved_model).__module__.startswith("transformers_modules."), type(saved_model).__module__
    return current, saved_model


def prompts_for(batch_size: int, config):
    generator = torch.Generator().manual_seed(batch_size)
    ids = torch.randint(0, config.vocab_size - 3, (batch_size, 16), generator=generator)
    attention_mask = torch.ones_like(ids)
    attention_mask[1::2, :4] = 0  # every other row left-padded
    return ids.masked_fill(attention_mask == 0, config.pad_token_id), attention_mask


def main(argv=None):
    args = parse_args(argv)
    harness = common.setup(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        current, saved = load_both(args, Path(tmp))
        heading = (
            f"code compared: this package vs {common.relative(args.code_from)}; preset {args.preset}, {harness}, "
            f"median of {args.repeats} alternated runs"
        )
        print(heading)

        def measure(name, fns, repeats, what="tokens"):
            times = common.time_alternated(fns, repeats)
            same = "identical" if torch.equal(times["current"].result, times["saved"].result) else "DIFFERENT"
            rows.append(
                dict(
                    measurement=name,
                    **common.versus(times, "current", "saved"),
                    same=f"{what} {same}",
                )
            )
            print(common.markdown_table(rows[-1:], COLUMNS, FORMATS)[-1], flush=True)

        for batch_size in args.batch_sizes:
            ids, attention_mask = prompts_for(batch_size, current.config)
            for mode, settings in MODES.items():

                def run(model, settings=settings):
                    return model.diffusion_generate(
                        ids,
                        attention_mask=attention_mask,
                        max_new_tokens=args.length,
                        steps=args.length,
                        block_length=32,
                        eos_token_id=None,
                        **settings,
                    )

                measure(
                    f"generate {mode} b{batch_size}",
                    {"current": lambda: run(current), "saved": lambda: run(saved)},
                    args.repeats,
                )
        vocab = current.config.vocab_size - 3
        batch = torch.randint(0, vocab, (8, 128), generator=torch.Generator().manual_seed(1))
        labels = torch.where(torch.rand(8, 128, generator=torch.Generator().manual_seed(2)) < 0.5, batch, -100)
        p_mask = torch.full((8,), 0.5)

        def train_step(model):
            model.zero_grad(set_to_none=True)
            loss = model(batch, labels=labels, p_mask=p_mask).loss
            loss.backward()
            return loss.detach()

        current.train(), saved.train()
        generate_ratios = [row["ratio"] for row in rows]
        measure(
            "train step b8 x 128",
            {"current": lambda: train_step(current), "saved": lambda: train_step(saved)},
            args.repeats * 2,
            what="loss",
        )
    notes = [f"geometric mean of the generate ratios: {statistics.geometric_mean(generate_ratios):.3f}"]
    print(notes[0])
    written = common.write_report(
        args.output, rows, intro=heading, columns=COLUMNS, formats=FORMATS, notes=notes, meta=vars(args)
    )
    if written:
        print(f"wrote {written}")
    return 0


COLUMNS = {
    "measurement": "measurement",
    "current": "current",
    "saved": "saved",
    "ratio": "ratio",
    "same": "tokens / loss",
}
FORMATS = {"ratio": ".3f"}


if __name__ == "__main__":
    sys.exit(main())
