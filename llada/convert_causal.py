"""Masked diffusion from an autoregressive model: a Llama, Mistral, Qwen2 or Qwen3 causal LM as a LLaDA model.

These four architectures are Llama blocks with a few options (Qwen2's query/key/value biases, Qwen3's per-head
query/key RMSNorm, Mistral's sliding window), and so is [`LLaDAForMaskedDiffusion`]: the weights carry over one to
one under the same names (`model.layers.{i}.self_attn.q_proj.weight`, ...) and the same values. What changes is the
attention, causal before and bidirectional after (or block-causal with `block_size`, block diffusion), and what the
model is trained for.

`logit_shift=True` keeps the head's autoregressive meaning (Dream, Ye et al. 2025): the token at position i is
predicted from the final hidden state of position i - 1. With `block_size=1` the converted model then computes
exactly the causal LM's logits, one position later; with larger blocks or full attention it is a good start for
diffusion training.

The tokenizer gets a mask token (and a pad token) when it has none, and the embeddings (and the head) grow to fit
it. Anything LLaDA cannot express is refused with an error naming it (see [`check_causal_config`]).

Example:

```python
>>> from llada.convert_causal import convert_causal_to_llada
>>> convert_causal_to_llada("runs/autoregressive-tinyshakespeare", "runs/llada-from-ar", logit_shift=True)
```
"""

import logging
import os
from pathlib import Path
from typing import Optional, Union

import torch

from .configuration_llada import ALLOWED_ACTIVATIONS, LLaDAConfig
from .convert import _as_dtype, _write_atomically

logger = logging.getLogger(__name__)

# model_type -> the causal LM class whose weights map onto LLaDA's, and the options of that family
SUPPORTED_CAUSAL_LMS = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
SUPPORTED_ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3")
# Config fields of features LLaDA's blocks lack: any value but these is refused by name.
UNSUPPORTED_FEATURES = {
    "attn_logit_softcapping": "attention logit soft-capping",
    "final_logit_softcapping": "final logit soft-capping",
    "num_experts": "mixture of experts",
    "num_local_experts": "mixture of experts",
    "n_routed_experts": "mixture of experts",
}


def is_causal_lm_config(config) -> bool:
    """Whether `config` describes a causal LM that `AutoModelForCausalLM` loads (supported for conversion or not)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    architectures = getattr(config, "architectures", None) or []
    return getattr(config, "model_type", None) in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or any(
        name.endswith("ForCausalLM") for name in architectures
    )


def check_causal_config(config, max_position_embeddings: Optional[int] = None) -> None:
    """
    Refuses a causal LM config that [`LLaDAForMaskedDiffusion`] cannot reproduce exactly.

    Args:
        config: the source model's config (`AutoConfig.from_pretrained(...)`).
        max_position_embeddings (`int`, *optional*): the converted model's positions, when fewer than the source's.

    Raises:
        `ValueError`: naming the architecture or the option: another model type than Llama, Mistral, Qwen2 or Qwen3;
            a sliding window shorter than the positions; soft-capping; mixture of experts; a RoPE type or a partial
            rotary embedding LLaDA lacks; another activation.
    """
    model_type = getattr(config, "model_type", None)
    architectures = getattr(config, "architectures", None) or []
    if model_type not in SUPPORTED_CAUSAL_LMS:
        named = f" ({', '.join(architectures)})" if architectures else ""
        raise ValueError(
            f"Cannot convert a {model_type!r} model{named} into LLaDA: only "
            f"{', '.join(SUPPORTED_CAUSAL_LMS.values())} map onto its Llama-shaped blocks."
        )
    if architectures and SUPPORTED_CAUSAL_LMS[model_type] not in architectures:
        raise ValueError(
            f"Cannot convert a {', '.join(architectures)} into LLaDA: expected a {SUPPORTED_CAUSAL_LMS[model_type]} "
            f"(its output head is the one LLaDA starts from)."
        )
    for name, feature in UNSUPPORTED_FEATURES.items():
        value = getattr(config, name, None)
        if value and not ("experts" in name and value == 1):  # one expert is a plain MLP
            raise ValueError(f"Cannot convert `{name}` = {value!r} into LLaDA: it has no {feature}.")
    hidden_act = getattr(config, "hidden_act", "silu")
    if hidden_act not in ALLOWED_ACTIVATIONS:
        raise ValueError(
            f"Cannot convert `hidden_act` = {hidden_act!r} into LLaDA: it supports {ALLOWED_ACTIVATIONS}."
        )
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ValueError(
            f"Cannot convert `rope_parameters['rope_type']` = {rope_type!r} into LLaDA: it supports "
            f"{SUPPORTED_ROPE_TYPES}."
        )
    partial = rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise ValueError(
            f"Cannot convert `partial_rotary_factor` = {partial!r} into LLaDA: it rotates every dimension of a head."
        )
    _check_attention_layout(config, max_position_embeddings or config.max_position_embeddings)


def _check_attention_layout(config, positions: int) -> None:
    """Every layer must attend to the whole sequence: a sliding window at least `positions` long is full attention."""
    layer_types = getattr(config, "layer_types", None)
    unknown = sorted(set(layer_types or ()) - {"full_attention", "sliding_attention"})
    if unknown:
        raise ValueError(f"Cannot convert `layer_types` {unknown} into LLaDA: it has full attention layers only.")
    window = getattr(config, "sliding_window", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        window = None  # e.g. Qwen2 with use_sliding_window=False: the window is not used
    if window is not None and window < positions:
        raise ValueError(
            f"Cannot convert `sliding_window` = {window} with {positions} positions into LLaDA: every position "
            f"attends to every other; pass max_position_embeddings <= {window} (--max_position_embeddings) to "
            f"convert it for sequences the window covers."
        )


def causal_config_to_llada(
    config,
    mask_token_id: int,
    vocab_size: Optional[int] = None,
    pad_token_id: Optional[int] = None,
    block_size: Optional[int] = None,
    logit_shift: bool = False,
    max_position_embeddings: Optional[int] = None,
) -> LLaDAConfig:
    """
    The [`LLaDAConfig`] of the network `config` (a Llama, Mistral, Qwen2 or Qwen3 config) describes, field by
    field, with the given mask token and attention.

    Args:
        config: the causal LM's config.
        mask_token_id (`int`): the tokenizer's mask token id.
        vocab_size (`int`, *optional*): the embedding rows after fitting the tokenizer; default: the source's.
        pad_token_id (`int`, *optional*): default: the source's.
        block_size (`int`, *optional*): block diffusion; `None`: full attention.
        logit_shift (`bool`, *optional*, defaults to `False`): Dream's logit shift (see the module docstring).
        max_position_embeddings (`int`, *optional*): fewer positions than the source's (e.g. a sliding window's).

    Raises:
        `ValueError`: see [`check_causal_config`].
    """
    check_causal_config(config, max_position_embeddings)
    model_type = config.model_type
    heads = config.num_attention_heads
    attention_bias = bool(getattr(config, "attention_bias", False)) or model_type == "qwen2"
    return LLaDAConfig(
        vocab_size=vocab_size or config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        hidden_act=getattr(config, "hidden_act", "silu"),
        max_position_embeddings=max_position_embeddings or config.max_position_embeddings,
        rope_parameters=dict(config.rope_parameters),
        rms_norm_eps=config.rms_norm_eps,
        attention_bias=attention_bias,
        attention_output_bias=attention_bias and model_type != "qwen2",  # Qwen2: q, k, v biases only
        mlp_bias=bool(getattr(config, "mlp_bias", False)),
        qk_norm=model_type == "qwen3",
        attention_dropout=float(getattr(config, "attention_dropout", 0.0) or 0.0),
        initializer_range=getattr(config, "initializer_range", 0.02),
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        block_size=block_size,
        logit_shift=logit_shift,
        mask_token_id=mask_token_id,
        pad_token_id=config.pad_token_id if pad_token_id is None else pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        dtype=getattr(config, "dtype", None),
        architectures=["LLaDAForMaskedDiffusion"],
    )


def causal_lm_to_llada(
    causal_lm,
    tokenizer,
    block_size: Optional[int] = None,
    logit_shift: bool = False,
    max_position_embeddings: Optional[int] = None,
):
    """
    Turns a loaded causal LM into a [`LLaDAForMaskedDiffusion`] that holds the same tensors (no copy: the causal
    LM should not be used afterwards).

    Args:
        causal_lm: a `LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM` or `Qwen3ForCausalLM`.
        tokenizer: its tokenizer with a mask token (see `llada.training.tokenizers.ensure_mask_token`); when it has
            more tokens than the embeddings have rows, the embeddings and the head are resized to fit.
        block_size, logit_shift, max_position_embeddings: see [`causal_config_to_llada`].

    Raises:
        `ValueError`: an unsupported architecture or option (see [`check_causal_config`]), a tokenizer without a
            mask token, or weights that do not match one to one.
    """
    from .modeling_llada import LLaDAForMaskedDiffusion, LLaDARotaryEmbedding

    if getattr(tokenizer, "mask_token_id", None) is None:
        raise ValueError(
            "The tokenizer has no mask token; add one first (llada.training.tokenizers.ensure_mask_token)."
        )
    check_causal_config(causal_lm.config, max_position_embeddings)
    if len(tokenizer) > causal_lm.get_input_embeddings().weight.shape[0]:
        logger.info("Resizing the embeddings to the tokenizer's %d tokens (mask token added).", len(tokenizer))
        causal_lm.resize_token_embeddings(len(tokenizer))
    config = causal_config_to_llada(
        causal_lm.config,
        tokenizer.mask_token_id,
        vocab_size=causal_lm.get_input_embeddings().weight.shape[0],
        pad_token_id=tokenizer.pad_token_id,
        block_size=block_size,
        logit_shift=logit_shift,
        max_position_embeddings=max_position_embeddings,
    )
    config.dtype = causal_lm.dtype
    config._attn_implementation = getattr(causal_lm.config, "_attn_implementation", None) or "sdpa"
    state_dict = causal_lm.state_dict()
    with torch.device("meta"):  # no memory: the parameters are the causal LM's tensors, assigned below
        model = LLaDAForMaskedDiffusion(config)
    check_weight_names(state_dict, model.state_dict())
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.model.rotary_emb = LLaDARotaryEmbedding(config, device=causal_lm.device)  # buffers are not weights
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = _generation_config(causal_lm, config)
    return model.train(causal_lm.training)


def check_weight_names(source: dict, target: dict) -> None:
    """Every source tensor must have exactly one place in the target, of the same shape, and every target tensor a
    source: a clear error listing the first few that do not."""
    extra, missing = sorted(set(source) - set(target)), sorted(set(target) - set(source))
    wrong = sorted(k for k in set(source) & set(target) if tuple(source[k].shape) != tuple(target[k].shape))
    if extra or missing or wrong:
        details = [
            f"source weights LLaDA has no place for: {extra[:5]}" if extra else "",
            f"LLaDA weights the source lacks: {missing[:5]}" if missing else "",
        ]
        details += [
            f"`{k}` has shape {tuple(source[k].shape)}, LLaDA expects {tuple(target[k].shape)}" for k in wrong[:5]
        ]
        raise ValueError("The causal LM's weights do not map onto LLaDA: " + "; ".join(d for d in details if d) + ".")


def _generation_config(causal_lm, config: LLaDAConfig):
    """A `LLaDAGenerationConfig` that stops on every EOS id of the source's model and generation configs."""
    from .generation_config_llada import LLaDAGenerationConfig

    stop_ids = []
    source_eos = getattr(getattr(causal_lm, "generation_config", None), "eos_token_id", None)
    for value in (config.eos_token_id, source_eos):
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and token_id not in stop_ids:
                stop_ids.append(token_id)
    return LLaDAGenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=stop_ids or None,
        pad_token_id=config.pad_token_id,
        mask_token_id=config.mask_token_id,
    )


def convert_causal_to_llada(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    block_size: Optional[int] = None,
    logit_shift: bool = False,
    tokenizer: Optional[str] = None,
    max_position_embeddings: Optional[int] = None,
    dtype: Optional[Union[str, torch.dtype]] = None,
    max_shard_size: Union[int, str] = "5GB",
    overwrite: bool = False,
) -> Path:
    """
    Converts a causal LM (local folder or Hub id) into a LLaDA model folder: `config.json` with `auto_map`, the Hub
    code files, safetensors weights, `generation_config.json` and the tokenizer with its mask token.
    `AutoModel.from_pretrained(dst, trust_remote_code=True)` then loads it. The folder is written next to `dst` and
    moved into place only when complete.

    Args:
        src: the causal LM's folder or Hub id.
        dst: output folder; must not exist or be empty unless `overwrite`.
        block_size, logit_shift, max_position_embeddings: see [`causal_config_to_llada`].
        tokenizer: a tokenizer folder or Hub id; default: the one of `src`.
        dtype: cast the weights (`"bfloat16"`, `"float16"`, `"float32"`); default keeps the stored dtype.
        max_shard_size: largest output shard (`"5GB"`, `"500MB"` or bytes).
        overwrite: replace a non-empty `dst`.

    Raises:
        `ValueError`: the source is not a supported causal LM (refused before any weight is read), has no
            tokenizer, or uses an option LLaDA cannot express.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from .saved_files import make_tokenizer_config_portable
    from .training.tokenizers import load_pretrained_tokenizer

    src, dst = str(src), Path(dst)
    try:
        source_config = AutoConfig.from_pretrained(src)
    except (OSError, ValueError) as error:
        raise ValueError(f"`--from_causal_lm`: cannot load a model config from {src!r} ({error}).") from error
    check_causal_config(source_config, max_position_embeddings)
    try:
        tokenizer = load_pretrained_tokenizer(tokenizer or src)
    except ValueError as error:
        raise ValueError(
            f"No tokenizer loads from {tokenizer or src!r}; the converted model needs one (it gets a mask token): "
            f"name a tokenizer folder or Hub id with --tokenizer."
        ) from error
    dtype = _as_dtype(dtype)

    def write(folder: Path):  # loads the weights only once `dst` is known to be writable
        causal_lm = AutoModelForCausalLM.from_pretrained(src, dtype=dtype or "auto")
        model = causal_lm_to_llada(
            causal_lm,
            tokenizer,
            block_size=block_size,
            logit_shift=logit_shift,
            max_position_embeddings=max_position_embeddings,
        )
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        tokenizer.save_pretrained(folder)
        make_tokenizer_config_portable(folder)

    return _write_atomically(dst, overwrite, write)


__all__ = [
    "SUPPORTED_CAUSAL_LMS",
    "causal_config_to_llada",
    "causal_lm_to_llada",
    "check_causal_config",
    "check_weight_names",
    "convert_causal_to_llada",
    "is_causal_lm_config",
]
