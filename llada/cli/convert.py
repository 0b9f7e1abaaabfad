"""`llada-convert`: official LLaDA checkpoints (OLMo-style) <-> this project's format.

Examples:

    llada-convert --src LLaDA-8B-Instruct --dst llada-8b-instruct              # official -> ours
    llada-convert --src llada-8b-instruct --dst LLaDA-8B-Instruct-again --to original
"""

from dataclasses import dataclass, field
from typing import List, Optional

from transformers import HfArgumentParser

from .common import run_main


@dataclass
class ConvertArguments:
    src: str = field(metadata={"help": "Checkpoint folder to read (official LLaDA, or ours with --to original)."})
    dst: str = field(metadata={"help": "Folder to write; must not exist or be empty unless --overwrite."})
    to: str = field(
        default="llada",
        metadata={"help": "Target format: 'llada' (this project's, default) or 'original' (official LLaDA).",
                  "choices": ["llada", "original"]},
    )
    reverse: bool = field(default=False, metadata={"help": "Same as --to original."})
    max_shard_size: str = field(
        default="5GB", metadata={"help": "Largest output shard, e.g. '5GB' or '500MB'; bounds the peak memory."}
    )
    dtype: Optional[str] = field(
        default=None,
        metadata={"help": "Cast the weights to this dtype; default keeps the stored one.",
                  "choices": ["bfloat16", "float16", "float32"]},
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty --dst."})


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2 (see `llada.cli.common`)."""
    return run_main("llada-convert", _main, argv)


def _main(argv: Optional[List[str]] = None) -> int:
    parser = HfArgumentParser(ConvertArguments, prog="llada-convert", description=__doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    from ..convert import convert_llada_to_original, convert_original_to_llada

    convert = convert_llada_to_original if (args.reverse or args.to == "original") else convert_original_to_llada
    dst = convert(args.src, args.dst, max_shard_size=args.max_shard_size, dtype=args.dtype,
                  overwrite=args.overwrite)
    print(f"Wrote {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
