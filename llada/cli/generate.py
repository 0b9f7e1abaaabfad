"""`llada-generate`: text from a LLaDA model by masked-diffusion sampling.

Examples:

    llada-generate --model runs/tiny --prompt "To be, or not" --max_new_tokens 64 --steps 64 --block_length 32
    llada-generate --model runs/tiny --prompt "ROMEO:" --prompt "JULIET:" --temperature 0.8 --seed 0 --stream
    llada-generate --model runs/tiny --prompt_file prompts.txt --remasking random --visualize view.html
    llada-generate --model runs/tiny --prompt "To be, or " --suffix ", that is the question" --max_new_tokens 16
    llada-generate --model llada-8b-instruct --chat --prompt "Hi!" --block_length 32 --dtype bfloat16

(`llada-8b-instruct`: the official LLaDA-8B-Instruct converted with `llada-convert`.)
"""

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

import torch

from ..prepare_llada import infill_canvas, left_pad
from ..sampling_llada import REMASKING_STRATEGIES, TOKEN_SAMPLERS
from .common import CLIError, one_line, run_main

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llada-generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("model and prompts")
    source.add_argument("--model", required=True, help="Saved model folder or Hub id.")
    source.add_argument("--tokenizer", help="Tokenizer folder or Hub id; defaults to --model.")
    source.add_argument(
        "--prompt",
        action="append",
        default=[],
        help="A prompt; repeat the flag for a batch. No prompt at all: unconditional generation.",
    )
    source.add_argument("--prompt_file", help="A text file with one prompt per line (added after --prompt).")
    source.add_argument(
        "--suffix",
        action="append",
        default=[],
        help="Infilling: the text after the gap. The --max_new_tokens tokens between each prompt and "
        "its suffix are generated and printed. One suffix for every prompt, or one per prompt.",
    )
    source.add_argument(
        "--chat", action="store_true", help="Wrap each prompt as a user message with the tokenizer's chat template."
    )
    source.add_argument(
        "--num_return_sequences",
        type=int,
        default=1,
        help="Samples per prompt (rows for unconditional generation); default 1.",
    )
    source.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Load --model through its own code files (needed only for models not of this package).",
    )

    sampling = parser.add_argument_group("sampling (defaults: the model's generation_config.json)")
    sampling.add_argument(
        "--max_new_tokens", "--gen_length", type=int, help="Number of tokens to generate (default: the model's, 128)."
    )
    sampling.add_argument("--steps", type=int, help="Denoising steps in total (default: one token per step).")
    sampling.add_argument("--block_length", type=int, help="Semi-autoregressive block length; divides the length.")
    sampling.add_argument(
        "--remasking",
        choices=list(REMASKING_STRATEGIES),
        help="Which masked positions a step commits first (default: low_confidence).",
    )
    sampling.add_argument(
        "--remask_ratio",
        type=float,
        help="Geometric schedule: re-mask this fraction of the predictions each step, in [0, 1).",
    )
    sampling.add_argument("--temperature", type=float, help="Gumbel-max sampling temperature; 0 = greedy.")
    sampling.add_argument("--top_k", type=int, help="Keep only the k most likely tokens.")
    sampling.add_argument("--top_p", type=float, help="Nucleus sampling mass in (0, 1].")
    sampling.add_argument("--cfg_scale", type=float, help="Classifier-free guidance weight (0 = none).")
    sampling.add_argument("--min_new_tokens", type=int, help="No EOS in the first this-many generated tokens.")
    sampling.add_argument(
        "--repetition_penalty",
        type=float,
        help="Penalise tokens already on the canvas (transformers' RepetitionPenaltyLogitsProcessor).",
    )
    sampling.add_argument("--seed", type=int, help="Seed of the random draws, for reproducible samples.")

    fast = parser.add_argument_group("fast paths (benchmarks/bench_generate.py measures them)")
    fast.add_argument(
        "--token_sampling",
        choices=list(TOKEN_SAMPLERS),
        help="How a sampled token is drawn: gumbel (default) or inverse_cdf (one uniform per position: "
        "the same distribution, fewer draws per step).",
    )
    fast.add_argument(
        "--use_cache",
        choices=["prefix", "dual", "none"],
        help="Key/value cache of a full-attention model (a block diffusion model caches its finished "
        "blocks exactly by default; 'none' turns that off).",
    )
    fast.add_argument(
        "--threshold",
        type=float,
        help="Parallel decoding: also commit every position whose confidence exceeds this, in (0, 1].",
    )
    fast.add_argument(
        "--factor",
        type=float,
        help="Parallel decoding (factor rule): commit the n most confident positions while "
        "(n + 1) * (1 - c_n) < factor.",
    )
    fast.add_argument(
        "--entropy_bound",
        type=float,
        help="Parallel decoding (entropy-bounded): commit the most confident positions while their "
        "summed entropy minus the largest stays under this many nats.",
    )

    runtime = add_device_args(parser.add_argument_group("runtime and output"))
    runtime.add_argument("--stream", action="store_true", help="Redraw the canvas live in the terminal each step.")
    runtime.add_argument(
        "--visualize", metavar="PATH", help="Write the decode-order view: .png (matplotlib) or .html."
    )
    runtime.add_argument("--show_prompt", action="store_true", help="Print the prompt before each completion.")
    return parser


SAMPLING_FLAGS = (
    "max_new_tokens",
    "steps",
    "block_length",
    "remasking",
    "remask_ratio",
    "temperature",
    "top_k",
    "top_p",
    "cfg_scale",
    "min_new_tokens",
    "repetition_penalty",
    "token_sampling",
    "use_cache",
    "threshold",
    "factor",
    "entropy_bound",
)


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2 (see `llada.cli.common`)."""
    return run_main("llada-generate", _main, argv)


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.visualize and not args.visualize.lower().endswith((".png", ".html", ".htm")):
        raise CLIError(f"--visualize must end in .png or .html, got {args.visualize!r}.")
    prompts = list(args.prompt) + read_prompt_file(args.prompt_file)
    if args.suffix and (args.chat or args.stream or args.visualize):
        raise CLIError("--suffix (infilling) cannot be combined with --chat, --stream or --visualize.")
    if args.suffix and len(args.suffix) not in (1, len(prompts or [""])):
        raise CLIError(
            f"--suffix: give one suffix for every prompt or one per prompt; got {len(args.suffix)} "
            f"suffixes for {len(prompts)} prompts."
        )
    device = check_device(args.device)

    model, tokenizer = load_model_and_tokenizer(args, device)
    settings = {name: getattr(args, name) for name in SAMPLING_FLAGS if getattr(args, name) is not None}
    if settings.get("use_cache") == "none":
        settings["use_cache"] = False
    if args.suffix:
        return infill_main(args, model, tokenizer, prompts or [""], settings)
    input_ids, attention_mask = encode_prompts(tokenizer, prompts, args.chat, model)
    streamer = make_streamer(args, tokenizer, model, 0 if input_ids is None else input_ids.shape[1], settings)
    try:
        out = model.diffusion_generate(
            input_ids,
            attention_mask=attention_mask,
            num_return_sequences=args.num_return_sequences,
            seed=args.seed,
            streamer=streamer,
            return_dict_in_generate=True,
            **settings,
        )
    except (ValueError, TypeError) as error:  # bad flag combinations: report them as usage errors
        raise CLIError(one_line(error)) from error
    prompt_length = 0 if input_ids is None else input_ids.shape[1]
    print_completions(tokenizer, out.sequences, prompt_length, args.show_prompt)
    print(
        f"[{out.sequences.shape[0]} sample(s), {out.sequences.shape[1] - prompt_length} tokens each, "
        f"{out.nfe} forward passes, {out.tokens_per_forward:.2f} tokens per forward]",
        file=sys.stderr,
    )
    if args.visualize:
        from ..visualize import save_decode_view

        path = save_decode_view(args.visualize, tokenizer, out.sequences.cpu(), out.decode_step.cpu(), prompt_length)
        print(f"Decode-order picture: {os.path.abspath(path)}", file=sys.stderr)
    return 0


def infill_main(args, model, tokenizer, prompts: List[str], settings: dict) -> int:
    """`--suffix`: fills `--max_new_tokens` tokens (default: the model's) between each prompt and its suffix and
    prints them (with --show_prompt: prompt, filled text and suffix)."""
    suffixes = args.suffix * len(prompts) if len(args.suffix) == 1 else args.suffix
    length = settings.pop("max_new_tokens", model.generation_config.max_new_tokens)
    mask_token_id = model.generation_config.mask_token_id
    mask_token_id = model.config.mask_token_id if mask_token_id is None else mask_token_id
    try:
        input_ids, attention_mask, middle_start = infill_canvas(
            [tokenizer(p)["input_ids"] if p else [] for p in prompts],
            [tokenizer(s, add_special_tokens=False)["input_ids"] for s in suffixes],
            length,
            mask_token_id,
            _pad_token_id(tokenizer, model),
        )
        out = model.diffusion_generate(
            input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=0,
            num_return_sequences=args.num_return_sequences,
            seed=args.seed,
            return_dict_in_generate=True,
            **settings,
        )
    except (ValueError, TypeError) as error:  # bad flag combinations: report them as usage errors
        raise CLIError(one_line(error)) from error
    middle_start = middle_start.repeat_interleave(args.num_return_sequences)
    for index, (row, start) in enumerate(zip(out.sequences.tolist(), middle_start.tolist())):
        shown = row if args.show_prompt else row[start : start + length]
        print(f"=== sample {index} ===\n{tokenizer.decode(shown, skip_special_tokens=True)}")
    print(
        f"[{out.sequences.shape[0]} sample(s), {length} tokens filled in each, {out.nfe} forward passes, "
        f"{out.tokens_per_forward:.2f} tokens per forward]",
        file=sys.stderr,
    )
    return 0


def read_prompt_file(path: Optional[str]) -> List[str]:
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle if line.strip()]
    except UnicodeDecodeError as error:
        raise CLIError(f"--prompt_file {path!r} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    except OSError as error:
        raise CLIError(f"--prompt_file: cannot read {path!r} ({error.strerror}).") from None


def add_device_args(group):
    """`--device` and `--dtype`, the options of every command that loads a model to run it; returns `group`."""
    group.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Torch device, e.g. cpu, cuda, cuda:1, mps (default: cuda if available).",
    )
    group.add_argument(
        "--dtype",
        default="float32",
        choices=["auto", *DTYPES],
        help="Weights dtype (default float32); 'auto' keeps the checkpoint's.",
    )
    return group


def check_device(name: str) -> torch.device:
    """`--device` as a torch device, refused early when this machine does not have it."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps).") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise CLIError(f"--device {name}: CUDA is not available on this machine ({why}); use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CLIError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available on this machine; use --device cpu.")
    return device


def load_model_and_tokenizer(args, device=None):
    from transformers import AutoModel, AutoTokenizer

    from .. import LLaDAForMaskedDiffusion

    check_model_folder(args.model)
    # the tokenizer first: it is cheap to load, so its errors come before a large model is read
    flag = "--tokenizer" if args.tokenizer else "--model"
    with loading(flag, args.tokenizer or args.model, what="tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(
            args.tokenizer or args.model, trust_remote_code=args.trust_remote_code
        )
    dtype = "auto" if args.dtype == "auto" else DTYPES[args.dtype]
    with loading("--model", args.model):
        if args.trust_remote_code:
            model = AutoModel.from_pretrained(args.model, dtype=dtype, trust_remote_code=True)
        else:
            model = LLaDAForMaskedDiffusion.from_pretrained(args.model, dtype=dtype)
    model = model.to(device if device is not None else args.device).eval()
    return model, tokenizer


def check_model_folder(name: str) -> None:
    """A local `--model` folder must hold a readable config.json (the tokenizer and the model both read it)."""
    import json

    config_file = Path(name) / "config.json"
    if not Path(name).is_dir():
        return  # a Hub id, or a missing path: the loaders say which
    if not config_file.is_file():
        raise CLIError(f"--model {name!r} is not a model folder: it has no config.json.")
    try:
        json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CLIError(
            f"--model {name!r}: config.json is not a valid JSON file, truncated or corrupt ({one_line(error)})."
        ) from None


class loading:
    """Turns a failure to load a model or tokenizer from `name` into one `CLIError` naming `flag` and `name`."""

    def __init__(self, flag: str, name: str, what: str = "model"):
        self.flag, self.name, self.what = flag, name, what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, CLIError) or not isinstance(error, Exception):
            return False
        prefix = f"{self.flag} {self.name!r}"
        if type(error).__name__ == "SafetensorError":
            raise CLIError(f"{prefix}: the weights file is corrupt or truncated ({one_line(error)}).") from None
        if not Path(self.name).exists() and isinstance(error, OSError):
            raise CLIError(
                f"{prefix}: no such folder, and no Hub model of that id could be fetched "
                f"({one_line(error).split('. ')[0]})."
            ) from None
        if self.what == "tokenizer" and isinstance(error, (ValueError, OSError, TypeError)):
            hint = "; pass --tokenizer" if self.flag == "--model" else ""
            raise CLIError(
                f"{prefix}: no usable tokenizer there (tokenizer.json, or tokenizer_config.json with "
                f"its vocabulary files){hint}."
            ) from None
        if isinstance(error, (OSError, ValueError, RuntimeError, KeyError)):
            raise CLIError(f"{prefix}: cannot load the {self.what}: {one_line(error)}") from None
        return False


def encode_prompts(tokenizer, prompts: List[str], chat: bool, model):
    """Left-padded (batch, prompt_len) ids and attention mask, or (None, None) without prompts."""
    if not prompts:
        return None, None
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise CLIError("--chat: the tokenizer has no chat template.")
        prompts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]
    encoded = [tokenizer(p, add_special_tokens=not chat)["input_ids"] for p in prompts]
    for number, (prompt, ids) in enumerate(zip(prompts, encoded)):
        if not ids:
            raise CLIError(
                f"--prompt {prompt!r} (prompt {number}) is empty: it gives no tokens. Leave out --prompt "
                f"for unconditional generation."
            )
    return left_pad(encoded, _pad_token_id(tokenizer, model))


def _pad_token_id(tokenizer, model) -> int:
    pad_token_id = model.generation_config.pad_token_id
    if pad_token_id is None:
        pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad_token_id


class ProgressStreamer:
    """A tqdm bar over the denoising steps (the bound `steps`; blocks that fill early finish it sooner)."""

    def __init__(self, total: Optional[int]):
        self.total = total
        self.bar = None  # drawn from the first canvas on, so a call refused before any step draws nothing

    def put(self, canvas):
        if self.bar is None:  # the first canvas is the starting one, before any step
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="denoising", unit="step", leave=False)
        else:
            self.bar.update(1)

    def end(self):
        if self.bar is not None:
            self.bar.close()


def make_streamer(args, tokenizer, model, prompt_length: int, settings: dict):
    if not args.stream:
        config = model.generation_config
        steps = settings.get("steps", config.steps) or settings.get("max_new_tokens", config.max_new_tokens)
        return ProgressStreamer(steps)
    from ..visualize import TerminalCanvasStreamer

    mask_token_id = model.generation_config.mask_token_id
    if mask_token_id is None:
        mask_token_id = model.config.mask_token_id
    return TerminalCanvasStreamer(tokenizer, mask_token_id, prompt_length)


def print_completions(tokenizer, sequences, prompt_length: int, show_prompt: bool):
    for index, row in enumerate(sequences):
        completion = tokenizer.decode(row[prompt_length:], skip_special_tokens=True)
        prompt = tokenizer.decode(row[:prompt_length], skip_special_tokens=True) if show_prompt else ""
        print(f"=== sample {index} ===\n{prompt}{completion}")


if __name__ == "__main__":
    raise SystemExit(main())
