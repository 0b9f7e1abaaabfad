"""`llada-convert`: official LLaDA checkpoints (OLMo-style) <-> this project's format, and causal LMs -> LLaDA.

Examples:

    llada-convert --src LLaDA-8B-Instruct --dst llada-8b-instruct              # official -> ours
    llada-convert --src llada-8b-instruct --dst LLaDA-8B-Instruct-again --to original
    llada-convert --from_causal_lm runs/autoregressive-tinyshakespeare runs/llada-from-ar --logit_shift
"""

from dataclasses import dataclass, field
from typing import List, Optional

from transformers import HfArgumentParser

from .common import run_main

CAUSAL_ONLY_OPTIONS = ("block_size", "logit_shift", "tokenizer", "max_position_embeddings")


@dataclass
class ConvertArguments:
    src: Optional[str] = field(
        default=None, metadata={"help": "Checkpoint folder to read (official LLaDA, or ours with --to original)."}
    )
    dst: Optional[str] = field(
        default=None,
        metadata={
            "help": "Folder to write; must not exist or be empty unless --overwrite. May also "
            "follow the source as a positional argument."
        },
    )
    from_causal_lm: Optional[str] = field(
        default=None,
        metadata={
            "help": "Convert this causal LM (folder or Hub id: Llama, Mistral, Qwen2 or Qwen3) into a LLaDA "
            "model instead: llada-convert --from_causal_lm SRC DST."
        },
    )
    to: str = field(
        default="llada",
        metadata={
            "help": "Target format: 'llada' (this project's, default) or 'original' (official LLaDA).",
            "choices": ["llada", "original"],
        },
    )
    reverse: bool = field(default=False, metadata={"help": "Same as --to original."})
    block_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "--from_causal_lm: a block diffusion model with blocks of this many tokens; default: full "
            "attention."
        },
    )
    logit_shift: bool = field(
        default=False,
        metadata={
            "help": "--from_causal_lm: predict the token at position i from position i - 1 (Dream), keeping "
            "the head's next-token meaning."
        },
    )
    tokenizer: Optional[str] = field(
        default=None, metadata={"help": "--from_causal_lm: the tokenizer folder or Hub id; default: the model's."}
    )
    max_position_embeddings: Optional[int] = field(
        default=None,
        metadata={
            "help": "--from_causal_lm: fewer positions than the model's (a sliding window at least this long "
            "is then full attention)."
        },
    )
    max_shard_size: str = field(
        default="5GB", metadata={"help": "Largest output shard, e.g. '5GB' or '500MB'; bounds the peak memory."}
    )
    dtype: Optional[str] = field(
        default=None,
        metadata={
            "help": "Cast the weights to this dtype; default keeps the stored one.",
            "choices": ["bfloat16", "float16", "float32"],
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty --dst."})


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2 (see `llada.cli.common`)."""
    return run_main("llada-convert", _main, argv)


def _main(argv: Optional[List[str]] = None) -> int:
    parser = HfArgumentParser(ConvertArguments, prog="llada-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("positional_dst", nargs="?", default=None, metavar="DST", help="The same as --dst.")
    args, extra = parser.parse_args_into_dataclasses(args=argv)
    dst = _destination(args, extra.positional_dst)
    if args.from_causal_lm is not None:
        return _convert_causal(args, dst)
    given = [f"--{name}" for name in CAUSAL_ONLY_OPTIONS if getattr(args, name) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)} apply to --from_causal_lm only; got --src {args.src!r}.")
    if args.src is None:
        raise ValueError(
            "Give the checkpoint to convert: --src SRC --dst DST (official LLaDA <-> ours), or "
            "--from_causal_lm SRC DST (a causal LM)."
        )
    from ..convert import convert_llada_to_original, convert_original_to_llada

    convert = convert_llada_to_original if (args.reverse or args.to == "original") else convert_original_to_llada
    dst = convert(args.src, dst, max_shard_size=args.max_shard_size, dtype=args.dtype, overwrite=args.overwrite)
    print(f"Wrote {dst}")
    return 0


def _destination(args: ConvertArguments, positional: Optional[str]) -> str:
    if args.dst is not None and positional is not None:
        raise ValueError(f"Give the output folder once: --dst {args.dst!r} and DST {positional!r} were both given.")
    dst = args.dst if args.dst is not None else positional
    if dst is None:
        raise ValueError("The output folder is required: --dst DST, or DST after the source.")
    return dst


def _convert_causal(args: ConvertArguments, dst: str) -> int:
    if args.src is not None:
        raise ValueError(
            f"Give one source: --from_causal_lm {args.from_causal_lm!r} (a causal LM) or --src "
            f"{args.src!r} (an official LLaDA checkpoint), not both."
        )
    if args.reverse or args.to != "llada":
        raise ValueError("--from_causal_lm converts into this project's format only; drop --to original / --reverse.")
    if args.block_size is not None and args.block_size < 1:
        raise ValueError(f"--block_size must be a positive integer, got {args.block_size}.")
    from ..convert_causal import convert_causal_to_llada

    dst = convert_causal_to_llada(
        args.from_causal_lm,
        dst,
        block_size=args.block_size,
        logit_shift=args.logit_shift,
        tokenizer=args.tokenizer,
        max_position_embeddings=args.max_position_embeddings,
        dtype=args.dtype,
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
    )
    print(f"Wrote {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
