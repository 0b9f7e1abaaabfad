"""LoRA fine-tuning with PEFT: the options of `llada-train --lora_r`, wrapping the model, and merging an adapter.

Only the adapter trains: `get_peft_model` freezes every weight of the model and adds low-rank matrices to the
chosen linear layers (by default all those of the Transformer blocks; the output head and the embeddings stay as
they are). The Trainer then saves the adapter (`adapter_config.json`, `adapter_model.safetensors`) next to the
tokenizer; `PeftModel.from_pretrained(AutoModel.from_pretrained(base, trust_remote_code=True), folder)` loads it,
and `diffusion_generate` works through the wrapper. [`merge_lora_adapter`] (`--merge_lora`) writes, from the saved
adapter and its base model, a full model with the adapter merged in, which loads with `trust_remote_code` like any
other.
"""

import logging
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

ALL_BLOCK_LINEAR_LAYERS = "all-linear"  # PEFT's name for every linear layer but the output head
MERGED_SUBFOLDER = "merged"


def check_lora_arguments(args) -> None:
    """The LoRA options of `ModelArguments` (`--lora_r`, `--lora_alpha`, `--lora_dropout`, `--lora_target_modules`,
    `--merge_lora`) make sense together; a `ValueError` naming the option otherwise."""
    if args.lora_r is None:
        given = [name for name in ("lora_alpha", "lora_target_modules") if getattr(args, name) is not None]
        given += ["lora_dropout"] if args.lora_dropout else []
        given += ["merge_lora"] if args.merge_lora else []
        if given:
            raise ValueError(f"`--{given[0]}` needs `--lora_r` (the rank of the LoRA adapter).")
        return
    if isinstance(args.lora_r, bool) or not isinstance(args.lora_r, int) or args.lora_r < 1:
        raise ValueError(f"`--lora_r` must be an integer >= 1, got {args.lora_r!r}.")
    if args.init_from is None:
        raise ValueError("`--lora_r` needs `--init_from`: a LoRA adapter fine-tunes an existing model.")
    if not 0.0 <= args.lora_dropout < 1.0:
        raise ValueError(f"`--lora_dropout` must be in [0, 1), got {args.lora_dropout!r}.")
    if args.lora_target_modules is not None and not _target_modules(args):
        raise ValueError("`--lora_target_modules` names no module.")


def _target_modules(args):
    if args.lora_target_modules is None:
        return ALL_BLOCK_LINEAR_LAYERS
    return [name.strip() for name in args.lora_target_modules.split(",") if name.strip()]


def wrap_with_lora(model, args, activation_checkpointing: bool = False):
    """`get_peft_model` with the LoRA options of `args` (`ModelArguments`): a `PeftModel` whose only trainable
    weights are the adapter's.

    Raises:
        ValueError: a `--lora_target_modules` name matches no module of the model.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha or 2 * args.lora_r,
        lora_dropout=args.lora_dropout,
        target_modules=_target_modules(args),
        bias="none",
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as error:  # PEFT: "Target modules {...} not found in the base model"
        raise ValueError(f"`--lora_target_modules`: {error}") from error
    if activation_checkpointing:
        # Re-entrant checkpoints pass gradients on only when a layer's input needs them, which it does not when the
        # embeddings are frozen: the embedding output is made to require grad (what PEFT does for checkpointing).
        peft_model.enable_input_require_grads()
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable parameters of %d (%.2f %%).", trainable, total, 100 * trainable / total)
    return peft_model


def merge_lora_adapter(adapter_dir, output_dir, base_model: Optional[str] = None) -> str:
    """
    Loads the base model of the adapter saved in `adapter_dir` (`base_model`, or the one its `adapter_config.json`
    names), merges the adapter into it and saves the result, weights in the base's dtype, config, code files and
    generation config, with the adapter folder's tokenizer, to `output_dir`; returns that folder. The merged model
    loads like any other (`AutoModel.from_pretrained(output_dir, trust_remote_code=True)` for LLaDA).
    """
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..modeling_llada import LLaDAForMaskedDiffusion
    from ..saved_files import make_tokenizer_config_portable

    base_model = base_model or PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    is_llada = getattr(AutoConfig.from_pretrained(base_model, trust_remote_code=True), "model_type", None) == "llada"
    model_class = LLaDAForMaskedDiffusion if is_llada else AutoModelForCausalLM
    model = model_class.from_pretrained(base_model, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(output_dir)
    make_tokenizer_config_portable(output_dir)
    return str(Path(output_dir))


__all__ = [
    "ALL_BLOCK_LINEAR_LAYERS",
    "MERGED_SUBFOLDER",
    "check_lora_arguments",
    "merge_lora_adapter",
    "wrap_with_lora",
]
