"""`llada-push`: publish a trained LLaDA model folder to the Hugging Face Hub in one commit.

    llada-push --model_dir runs/llada-tinyshakespeare --repo_id your-name/llada-tinyshakespeare

The model and tokenizer are re-saved to a temporary folder, reloaded in a fresh process through trust_remote_code
(forward pass + a short diffusion_generate; nothing is uploaded if that fails), given a model card, and uploaded:
config.json (with auto_map), generation_config.json, model.safetensors, the model code files, the tokenizer files
and README.md. The token comes from --token, HF_TOKEN or `hf auth login`. A LoRA adapter folder (what `llada-train
--lora_r` writes) is pushed as a full model with `--merge_lora`: the adapter merged into its base model. A folder
that a training run is still writing (it holds the folder's lock) is refused.
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

from .common import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llada-push", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_dir",
        required=True,
        help="Folder with the LLaDA model and its tokenizer (save_pretrained folder or Trainer output dir).",
    )
    parser.add_argument("--repo_id", required=True, help="Target model repo, 'namespace/name' (created if missing).")
    parser.add_argument("--private", action="store_true", help="Create the repo as private (if it does not exist).")
    parser.add_argument("--revision", default=None, help="Branch to commit to (created from main if missing).")
    parser.add_argument("--commit_message", default=None, help="Commit message (default: 'Upload LLaDA model').")
    parser.add_argument(
        "--token", default=None, help="Hub token with write access (default: HF_TOKEN, or the one of `hf auth login`)."
    )
    parser.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        default=None,
        help="Hub id of a training dataset, for the model card (repeatable).",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="In the same commit, delete the repo's other files (e.g. left by Trainer pushes).",
    )
    parser.add_argument(
        "--skip_check", action="store_true", help="Do not run the fresh-process reload check before uploading."
    )
    parser.add_argument(
        "--merge_lora",
        action="store_true",
        help="--model_dir holds a LoRA adapter: merge it into its base model and push the result.",
    )
    parser.add_argument(
        "--base_model",
        default=None,
        help="With --merge_lora: the base model folder or Hub id (default: the one the adapter names).",
    )
    return parser


def main(argv: Optional[list] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2 (see `llada.cli.common`)."""
    return run_main("llada-push", _main, argv)


def _main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..hub import HubPushError, push_to_hub
    from ..training.output_lock import check_not_being_written

    check_not_being_written(args.model_dir)  # before a LoRA merge reads it too

    has_adapter = (Path(args.model_dir) / "adapter_config.json").is_file()
    if args.merge_lora and not has_adapter:
        raise ValueError(f"--merge_lora: {args.model_dir!r} holds no LoRA adapter (no adapter_config.json).")
    if has_adapter and not args.merge_lora:
        raise ValueError(
            f"--model_dir {args.model_dir!r} holds a LoRA adapter, not a full model: add --merge_lora to "
            "push the adapter merged into its base model."
        )
    if args.base_model and not args.merge_lora:
        raise ValueError("--base_model is only used with --merge_lora.")
    print(f"Pushing {args.model_dir} to {args.repo_id} (save, reload check, model card, one commit)...", flush=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = args.model_dir
            if args.merge_lora:
                from ..training.lora import merge_lora_adapter

                print(f"Merging the LoRA adapter of {args.model_dir} into its base model...", flush=True)
                model_dir = merge_lora_adapter(args.model_dir, scratch, base_model=args.base_model)
            info = push_to_hub(
                model_dir,
                args.repo_id,
                private=True if args.private else None,
                revision=args.revision,
                commit_message=args.commit_message,
                token=args.token,
                datasets=args.datasets,
                check=not args.skip_check,
                prune=args.prune,
            )
    except (ValueError, HubPushError) as error:
        print(f"llada-push: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    print(f"Pushed to {args.repo_id} at revision {info.oid}")
    print(f"Commit: {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
