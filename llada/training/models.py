"""Model set-up for training: the architecture options, a fresh LLaDA or autoregressive baseline, or `--init_from`.

The autoregressive baseline is `transformers.LlamaForCausalLM` with exactly the same dimensions, tokenizer and data,
so that its perplexity and our perplexity bound compare like with like. `--init_from` a causal LM (that baseline, or
a Llama, Mistral, Qwen2 or Qwen3 model) with `--model_type llada` converts it into a LLaDA model first
(`llada.convert_causal`).
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from ..configuration_llada import LLaDAConfig
from ..convert_causal import SUPPORTED_CAUSAL_LMS, causal_lm_to_llada, check_causal_config, is_causal_lm_config
from ..modeling_llada import LLaDAForMaskedDiffusion
from .lora import MERGED_SUBFOLDER, check_lora_arguments

logger = logging.getLogger(__name__)

MODEL_TYPES = ("llada", "autoregressive")


@dataclass
class ModelArguments:
    """Which model to train: its kind, its tokenizer, and its size (or an existing model to start from)."""

    model_type: str = field(
        default="llada",
        metadata={
            "help": "'llada' (masked diffusion) or 'autoregressive' (LlamaForCausalLM baseline of the same size).",
            "choices": list(MODEL_TYPES),
        },
    )
    tokenizer: str = field(
        default="bytes",
        metadata={
            "help": "'bytes' (256 byte tokens + specials), 'bpe' (trained on the corpus, see --vocab_size), "
            "or a pretrained tokenizer folder / Hub id (a mask token is added when missing)."
        },
    )
    vocab_size: int = field(default=4096, metadata={"help": "Vocabulary size of a --tokenizer bpe."})
    init_from: Optional[str] = field(
        default=None,
        metadata={
            "help": "Fine-tune an existing model folder or Hub id instead of training from scratch (its "
            "tokenizer is used unless --tokenizer names another). With --model_type llada a causal LM "
            "(Llama, Mistral, Qwen2, Qwen3, such as the autoregressive baseline) is converted first."
        },
    )
    logit_shift: bool = field(
        default=False,
        metadata={
            "help": "LLaDA only: predict the token at position i from position i - 1 (Dream's logit shift), "
            "which keeps the meaning of a converted causal LM's head (--init_from a causal LM)."
        },
    )
    token_reweighting_gamma: float = field(
        default=0.0,
        metadata={
            "help": "LLaDA only: multiply each masked token's training loss by (1 - p) ** gamma, p the model's "
            "probability of the right token (Ye et al.'s token reweighting, a focal loss). 0: LLaDA's loss."
        },
    )
    autoregressive_init_steps: Optional[int] = field(
        default=None,
        metadata={
            "help": "LLaDA only: first train the autoregressive baseline of the same options for this many "
            "steps (in OUTPUT_DIR-ar-init), then convert it with Dream's logit shift and train the LLaDA "
            "model from it for --max_steps (the model starts from an AR model, as Dream did). 0: from random weights."
        },
    )
    autoregressive_init_learning_rate: Optional[float] = field(
        default=None,
        metadata={"help": "Learning rate of the --autoregressive_init_steps stage (default: --learning_rate)."},
    )
    hidden_size: int = field(default=256, metadata={"help": "Width of the residual stream."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Number of Transformer layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Number of attention (query) heads."})
    num_key_value_heads: Optional[int] = field(
        default=None, metadata={"help": "Key/value heads (grouped-query attention); default: as many as query heads."}
    )
    intermediate_size: int = field(default=768, metadata={"help": "Width of the gated feed-forward layer."})
    hidden_act: str = field(default="silu", metadata={"help": "Gate activation: silu (SwiGLU), mish, gelu, relu."})
    attention_type: str = field(default="standard", metadata={"help": "'standard' or 'latent' (LLaDA only)."})
    block_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "Block diffusion (BD3-LM; LLaDA only): attention bidirectional inside blocks of this many "
            "tokens and causal between them, trained on every block at once; exact K/V cache when "
            "sampling. Default: full attention."
        },
    )
    max_position_embeddings: Optional[int] = field(
        default=None, metadata={"help": "Longest sequence the model is built for; default: --max_seq_length."}
    )
    rope_theta: float = field(default=10000.0, metadata={"help": "RoPE base frequency."})
    tie_word_embeddings: bool = field(default=False, metadata={"help": "Share input embeddings and output head."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "Attention kernel: 'sdpa' or 'eager'."})
    lora_r: Optional[int] = field(
        default=None,
        metadata={"help": "Train a LoRA adapter of this rank (PEFT) instead of the whole model; needs --init_from."},
    )
    lora_alpha: Optional[float] = field(
        default=None, metadata={"help": "LoRA scaling: the update is scaled by alpha / r. Default: 2 r."}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA: dropout on the adapter's input."})
    lora_target_modules: Optional[str] = field(
        default=None,
        metadata={
            "help": "LoRA: comma-separated module names to adapt, e.g. q_proj,k_proj,v_proj,o_proj,gate_proj,"
            "up_proj,down_proj. Default: every linear layer of the blocks."
        },
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": f"LoRA: also write the model with the adapter merged in, to OUTPUT_DIR/{MERGED_SUBFOLDER}."},
    )

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"`--model_type` must be one of {MODEL_TYPES}, got {self.model_type!r}.")
        if self.block_size is not None and self.model_type != "llada":
            raise ValueError(
                f"`--block_size` is an option of `--model_type llada` (block diffusion), got --model_type "
                f"{self.model_type!r}."
            )
        if self.logit_shift and self.model_type != "llada":
            raise ValueError(
                f"`--logit_shift` is an option of `--model_type llada`, got --model_type {self.model_type!r}."
            )
        gamma = self.token_reweighting_gamma
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma < float("inf"):
            raise ValueError(f"`--token_reweighting_gamma` must be a finite number >= 0, got {gamma!r}.")
        if self.token_reweighting_gamma and self.model_type != "llada":
            raise ValueError(
                "`--token_reweighting_gamma` is an option of `--model_type llada`, got --model_type "
                f"{self.model_type!r}."
            )
        if self.autoregressive_init_steps == 0:
            self.autoregressive_init_steps = None  # 0: from random weights, as null in a YAML file
        if self.autoregressive_init_steps is not None:
            if self.model_type != "llada" or self.init_from is not None:
                raise ValueError(
                    "`--autoregressive_init_steps` trains a LLaDA model from a fresh autoregressive one; it cannot be "
                    f"combined with --model_type {self.model_type!r} or --init_from {self.init_from!r}."
                )
            if isinstance(self.autoregressive_init_steps, bool) or self.autoregressive_init_steps < 1:
                raise ValueError(
                    "`--autoregressive_init_steps` must be a positive number of steps, got "
                    f"{self.autoregressive_init_steps!r}."
                )
        check_lora_arguments(self)


def build_model(args: ModelArguments, tokenizer, max_seq_length: int):
    """
    The model to train: `--init_from` loaded (embeddings resized to the tokenizer), or a fresh one sized by `args`.

    Raises:
        ValueError: `--init_from` is not a LLaDA model (for `--model_type llada`), or `max_seq_length` exceeds the
            model's positions.
    """
    if args.init_from is not None:
        model = _load_existing(args, tokenizer)
    elif args.model_type == "llada":
        model = LLaDAForMaskedDiffusion(
            LLaDAConfig(
                **_shared_config(args, tokenizer, max_seq_length),
                mask_token_id=tokenizer.mask_token_id,
                attention_type=args.attention_type,
                block_size=args.block_size,
                logit_shift=args.logit_shift,
                token_reweighting_gamma=args.token_reweighting_gamma,
            )
        )
    else:
        model = LlamaForCausalLM(LlamaConfig(**_shared_config(args, tokenizer, max_seq_length)))
    positions = model.config.max_position_embeddings
    if max_seq_length > positions:
        raise ValueError(
            f"`--max_seq_length` ({max_seq_length}) is beyond the model's positions (max_position_embeddings = "
            f"{positions}); use a shorter --max_seq_length"
            + (" or a larger --max_position_embeddings." if args.init_from is None else ".")
        )
    return model


def _shared_config(args: ModelArguments, tokenizer, max_seq_length: int) -> dict:
    """Configuration fields LLaDA and the Llama baseline share, so the two have identical dimensions."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        num_key_value_heads=args.num_key_value_heads,
        hidden_act=args.hidden_act,
        max_position_embeddings=args.max_position_embeddings or max_seq_length,
        rope_parameters={"rope_type": "default", "rope_theta": float(args.rope_theta)},
        tie_word_embeddings=args.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation=args.attn_implementation,
    )


def _load_existing(args: ModelArguments, tokenizer):
    """Loads `--init_from`, checks it is the right kind, and fits its embeddings and token ids to the tokenizer."""
    try:
        config = AutoConfig.from_pretrained(args.init_from, trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"`--init_from`: cannot load a model config from {args.init_from!r} ({error}).") from error
    if args.model_type == "llada" and getattr(config, "model_type", None) != "llada":
        return _convert_causal_lm(args, config, tokenizer)
    if args.model_type == "llada":
        if args.logit_shift and not getattr(config, "logit_shift", False):
            raise ValueError(
                f"`--logit_shift` applies when `--init_from` is a causal LM being converted; {args.init_from!r} is "
                f"a LLaDA model without the shift (its config decides)."
            )
        model = LLaDAForMaskedDiffusion.from_pretrained(args.init_from, attn_implementation=args.attn_implementation)
        model.config.token_reweighting_gamma = args.token_reweighting_gamma  # the run's loss, not the saved one's
    else:
        model = AutoModelForCausalLM.from_pretrained(args.init_from, attn_implementation=args.attn_implementation)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.info("Resizing the embeddings of %s to the tokenizer's %d tokens.", args.init_from, len(tokenizer))
        model.resize_token_embeddings(len(tokenizer))
    if args.model_type == "llada":
        model.config.mask_token_id = tokenizer.mask_token_id
        if args.block_size is not None:  # fine-tune a full-attention model into a block diffusion one
            model.config.block_size = args.block_size
    return model


def _convert_causal_lm(args: ModelArguments, config, tokenizer):
    """`--init_from` a causal LM with `--model_type llada`: the LLaDA model holding its weights, fitted to the
    tokenizer (see `llada.convert_causal`); an unsupported one is refused before its weights are read."""
    model_type = getattr(config, "model_type", "unknown")
    if not is_causal_lm_config(config):
        raise ValueError(
            f"`--init_from` {args.init_from!r} is a {model_type!r} model, neither a LLaDA model (model_type 'llada') "
            f"nor a causal LM to convert ({', '.join(SUPPORTED_CAUSAL_LMS)})."
        )
    try:
        check_causal_config(config, args.max_position_embeddings)
    except ValueError as error:
        raise ValueError(
            f"`--init_from` {args.init_from!r}: {error} Use --model_type autoregressive to fine-tune it "
            f"as a causal LM."
        ) from error
    causal_lm = AutoModelForCausalLM.from_pretrained(args.init_from, attn_implementation=args.attn_implementation)
    logger.info(
        "Converting the %s causal LM %s into a LLaDA model (block_size=%s, logit_shift=%s).",
        model_type,
        args.init_from,
        args.block_size,
        args.logit_shift,
    )
    model = causal_lm_to_llada(
        causal_lm,
        tokenizer,
        block_size=args.block_size,
        logit_shift=args.logit_shift,
        max_position_embeddings=args.max_position_embeddings,
    )
    model.config.token_reweighting_gamma = args.token_reweighting_gamma
    return model.train()


def is_masked_diffusion_model(model) -> bool:
    """True for LLaDA models (ours or loaded with remote code), False for causal LMs such as the baseline."""
    return getattr(getattr(model, "config", None), "model_type", None) == "llada"


__all__ = ["MODEL_TYPES", "ModelArguments", "build_model", "is_masked_diffusion_model"]
