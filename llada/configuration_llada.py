"""LLaDA model configuration.

This is a Hub file: `save_pretrained` copies it next to the weights and `trust_remote_code` imports it on the
user's machine, so it imports only the standard library, torch and the public transformers API.
"""

import dataclasses
import difflib
import functools
import math

from transformers import PretrainedConfig
from transformers.utils import logging

try:  # RoPE scaling types known to the installed transformers (besides "default")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS as _ROPE_INIT_FUNCTIONS
except ImportError:  # pragma: no cover - very old transformers
    _ROPE_INIT_FUNCTIONS = {}


ALLOWED_ACTIVATIONS = ("silu", "mish", "gelu", "gelu_pytorch_tanh", "relu")
ALLOWED_ATTENTION_TYPES = ("standard", "latent")
logger = logging.get_logger(__name__)

# LLaDA-8B's special ids: the defaults. One that the user leaves at its default and that does not fit a smaller
# vocabulary becomes None instead of failing validation (as transformers' own tiny test configs expect).
LLADA_8B_SPECIAL_IDS = {
    "mask_token_id": 126336,
    "pad_token_id": 126081,
    "bos_token_id": 126080,
    "eos_token_id": 126081,
}
# Keys a config.json may hold besides our own fields and the installed transformers' (older versions wrote these).
GENERIC_CONFIG_KEYS = (
    "auto_map",
    "model_type",
    "transformers_version",
    "_name_or_path",
    "name_or_path",
    "_commit_hash",
    "architectures",
    "dtype",
    "torch_dtype",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "attn_implementation",
    "_attn_implementation",
    "_attn_implementation_autoset",
    "torchscript",
    "pruned_heads",
    "is_decoder",
    "add_cross_attention",
    "tie_encoder_decoder",
    "cross_attention_hidden_size",
    "finetuning_task",
    "tokenizer_class",
    "prefix",
    "sep_token_id",
    "decoder_start_token_id",
    "task_specific_params",
    "tf_legacy_loss",
    "use_bfloat16",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "id2label",
    "label2id",
    "num_labels",
    "problem_type",
    "rope_theta",
    "rope_scaling",
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
)
DEFAULT_AUTO_MAP = {
    "AutoConfig": "configuration_llada.LLaDAConfig",
    "AutoModel": "modeling_llada.LLaDAForMaskedDiffusion",
    "AutoModelForMaskedLM": "modeling_llada.LLaDAForMaskedDiffusion",
}


class LLaDAConfig(PretrainedConfig):
    r"""
    Configuration of a LLaDA-style masked-diffusion language model: a bidirectional Llama-shaped Transformer
    (RoPE, RMSNorm, gated FFN) that predicts every masked token of its input at once.

    Field names follow [`LlamaConfig`], so converters and PEFT targets carry over. The defaults describe
    LLaDA-8B (GSAI-ML/LLaDA-8B-Base).

    Args:
        vocab_size (`int`, *optional*, defaults to 126464):
            Number of token ids, the mask token included.
        hidden_size (`int`, *optional*, defaults to 4096):
            Width of the residual stream.
        intermediate_size (`int`, *optional*, defaults to 12288):
            Width of the gated feed-forward layer.
        num_hidden_layers (`int`, *optional*, defaults to 32):
            Number of Transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 32):
            Number of query heads.
        num_key_value_heads (`int`, *optional*):
            Number of key/value heads (grouped-query attention when smaller than `num_attention_heads`).
            Defaults to `num_attention_heads`.
        head_dim (`int`, *optional*):
            Size of one attention head. Defaults to `hidden_size // num_attention_heads`.
        hidden_act (`str`, *optional*, defaults to `"silu"`):
            Gate activation of the feed-forward layer: `"silu"` (SwiGLU), `"mish"` (Mish-gated) or one of
            `"gelu"`, `"gelu_pytorch_tanh"`, `"relu"`.
        max_position_embeddings (`int`, *optional*, defaults to 4096):
            Longest sequence the model is meant to see (prompt plus generated tokens).
        rope_parameters (`dict`, *optional*):
            RoPE settings: `{"rope_type": "default", "rope_theta": 500000.0}` by default; any scaling type of
            the installed transformers (`"linear"`, `"dynamic"`, `"yarn"`, `"llama3"`, ...) with its keys. The
            legacy `rope_theta` / `rope_scaling` arguments are folded into it.
        rms_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the RMS normalisations.
        attention_bias (`bool`, *optional*, defaults to `False`):
            Whether the attention projections have biases.
        attention_output_bias (`bool`, *optional*):
            Whether the attention's output projection (`o_proj`) has a bias. Defaults to `attention_bias`; `False`
            with `attention_bias=True` gives Qwen2's biases on the query, key and value projections only.
        qk_norm (`bool`, *optional*, defaults to `False`):
            Whether each head's queries and keys go through an RMS normalisation (`q_norm`, `k_norm`, one weight
            of `head_dim` each) before the rotary embedding, as in Qwen3.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities during training.
        mlp_bias (`bool`, *optional*, defaults to `False`):
            Whether the feed-forward projections have biases.
        attention_type (`str`, *optional*, defaults to `"standard"`):
            `"standard"` projects keys and values from the hidden state; `"latent"` (simplified latent attention)
            projects the hidden state once to a small latent (`kv_down_proj`) and from it to keys (`k_up_proj`)
            and values (`v_up_proj`).
        kv_latent_dim (`int`, *optional*):
            Size of that latent when `attention_type="latent"`. Defaults to `hidden_size // 4`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of linear and embedding weights.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Whether the output head shares the input embedding matrix.
        block_size (`int`, *optional*):
            Block diffusion (BD3-LM, Arriola et al. 2025): the sequence is cut into blocks of this many positions
            (counted from position 0, `position_ids // block_size`); attention is bidirectional inside a block and
            causal between blocks, so each block is denoised given the clean blocks before it and finished blocks
            can be cached exactly. `None` (default): LLaDA's full bidirectional attention. `block_size=1` is an
            autoregressive model.
        logit_shift (`bool`, *optional*, defaults to `False`):
            Dream's logit shift (Ye et al. 2025): the token at position i is predicted from the final hidden state
            of position i - 1 (position 0 from its own), so that the head of a converted autoregressive model keeps
            its meaning. In block diffusion's training layout the first position of a block reads the clean copy's
            state before it, as sampling does. [`LLaDAModel`]'s `last_hidden_state` is then already shifted: its
            position i holds the state the head reads for position i.
        token_reweighting_gamma (`float`, *optional*, defaults to 0.0):
            Training only: each scored token's loss is multiplied by `(1 - p) ** gamma`, where `p` is the model's
            probability of the right token (the focal-loss token reweighting of Ye et al. 2025, which puts the
            training on the hard tokens of a planning task). 0 is LLaDA's loss; evaluation losses and likelihoods
            never use it.
        mask_token_id (`int`, *optional*, defaults to 126336):
            Id of the `[MASK]` token the forward process writes and the sampler fills in. `None` builds a model
            that runs its forward but cannot sample until a mask id is given (e.g. in the generation config).
        pad_token_id, bos_token_id, eos_token_id (`int`, *optional*):
            Special token ids (LLaDA-8B: pad = EOS = 126081, BOS = 126080). `eos_token_id` may be a list.

    A special id left at its LLaDA-8B default that does not fit a smaller `vocab_size` becomes `None` (an id the
    user passes is always checked against the vocabulary). A keyword that is not a field of this config (say, a
    misspelled `hiden_size`) is kept, as transformers does, with a warning that names it.

    Example:

    ```python
    >>> from llada import LLaDAConfig, LLaDAForMaskedDiffusion
    >>> config = LLaDAConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                      num_attention_heads=4, mask_token_id=99, pad_token_id=0, bos_token_id=None,
    ...                      eos_token_id=1)
    >>> model = LLaDAForMaskedDiffusion(config)
    ```
    """

    model_type = "llada"
    keys_to_ignore_at_inference = ["past_key_values"]
    _auto_class = "AutoConfig"  # save_pretrained copies this file and writes `auto_map`
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.k_up_proj": "colwise",  # latent attention: the latent is replicated, heads split
        "layers.*.self_attn.v_up_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }

    def __init__(
        self,
        vocab_size=126464,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=None,
        head_dim=None,
        hidden_act="silu",
        max_position_embeddings=4096,
        rope_parameters=None,
        rms_norm_eps=1e-5,
        attention_bias=False,
        attention_dropout=0.0,
        mlp_bias=False,
        attention_type="standard",
        kv_latent_dim=None,
        initializer_range=0.02,
        tie_word_embeddings=False,
        block_size=None,
        attention_output_bias=None,
        qk_norm=False,
        logit_shift=False,
        token_reweighting_gamma=0.0,
        mask_token_id=126336,
        pad_token_id=126081,
        bos_token_id=126080,
        eos_token_id=126081,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.head_dim = head_dim
        if head_dim is None and _is_positive_int(hidden_size) and _is_positive_int(num_attention_heads):
            self.head_dim = hidden_size // num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.rope_parameters = _standardize_rope(rope_parameters, kwargs)
        self.rms_norm_eps = rms_norm_eps
        self.attention_bias = attention_bias
        self.attention_output_bias = attention_bias if attention_output_bias is None else attention_output_bias
        self.qk_norm = qk_norm
        self.logit_shift = logit_shift
        self.token_reweighting_gamma = token_reweighting_gamma
        self.attention_dropout = attention_dropout
        self.mlp_bias = mlp_bias
        self.attention_type = attention_type
        if kv_latent_dim is None and attention_type == "latent" and _is_positive_int(hidden_size):
            kv_latent_dim = max(1, hidden_size // 4)
        self.kv_latent_dim = kv_latent_dim
        self.initializer_range = initializer_range
        special_ids = {
            "mask_token_id": mask_token_id,
            "pad_token_id": pad_token_id,
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
        }
        special_ids = _drop_default_ids_outside(special_ids, vocab_size)
        mask_token_id, pad_token_id, bos_token_id, eos_token_id = special_ids.values()
        self.block_size = block_size
        self.mask_token_id = mask_token_id
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
        _warn_unknown_keys(kwargs)
        # Our checks run first so that a bad value gets our message, not a deeper one from the base class.
        self._validate_llada(hidden_size_given=head_dim is None)
        kwargs.setdefault("auto_map", dict(DEFAULT_AUTO_MAP))
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    # ----------------------------------------------------------------------------------------------------------
    # validation: every error names the field, the value and what is allowed

    def _validate_llada(self, hidden_size_given=True):
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not _is_positive_int(value):
                raise ValueError(f"LLaDAConfig: `{name}` must be a positive integer, got {value!r}.")
        if hidden_size_given and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"LLaDAConfig: `hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}), or set `head_dim` explicitly."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"LLaDAConfig: `num_attention_heads` ({self.num_attention_heads}) must be divisible by "
                f"`num_key_value_heads` ({self.num_key_value_heads})."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"LLaDAConfig: `head_dim` must be even for rotary embeddings, got {self.head_dim}.")
        if self.hidden_act not in ALLOWED_ACTIVATIONS:
            raise ValueError(
                f"LLaDAConfig: `hidden_act` must be one of {ALLOWED_ACTIVATIONS}, got {self.hidden_act!r}."
            )
        if self.attention_type not in ALLOWED_ATTENTION_TYPES:
            raise ValueError(
                f"LLaDAConfig: `attention_type` must be one of {ALLOWED_ATTENTION_TYPES}, got {self.attention_type!r}."
            )
        if self.attention_type == "latent" and not _is_positive_int(self.kv_latent_dim):
            raise ValueError(
                f"LLaDAConfig: `kv_latent_dim` must be a positive integer with attention_type='latent', "
                f"got {self.kv_latent_dim!r}."
            )
        if self.block_size is not None and not _is_positive_int(self.block_size):
            raise ValueError(
                "LLaDAConfig: `block_size` must be None (full attention) or a positive integer, got "
                f"{self.block_size!r}."
            )
        for name in ("attention_bias", "attention_output_bias", "mlp_bias", "qk_norm", "logit_shift"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LLaDAConfig: `{name}` must be True or False, got {getattr(self, name)!r}.")
        if not (_is_finite_number(self.token_reweighting_gamma) and self.token_reweighting_gamma >= 0):
            raise ValueError(
                "LLaDAConfig: `token_reweighting_gamma` must be a finite number >= 0, got "
                f"{self.token_reweighting_gamma!r}."
            )
        if not (_is_finite_number(self.rms_norm_eps) and self.rms_norm_eps > 0):
            raise ValueError(
                f"LLaDAConfig: `rms_norm_eps` must be a positive finite number, got {self.rms_norm_eps!r}."
            )
        if not (_is_finite_number(self.attention_dropout) and 0.0 <= self.attention_dropout < 1.0):
            raise ValueError(f"LLaDAConfig: `attention_dropout` must be in [0, 1), got {self.attention_dropout!r}.")
        if not (_is_finite_number(self.initializer_range) and self.initializer_range >= 0):
            raise ValueError(
                f"LLaDAConfig: `initializer_range` must be a non-negative number, got {self.initializer_range!r}."
            )
        self._validate_token_ids()
        self._validate_rope()

    def _validate_token_ids(self):
        allowed = f"an integer in [0, {self.vocab_size - 1}] (the vocabulary)"
        for name in ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name, None)
            values = value if isinstance(value, (list, tuple)) and name == "eos_token_id" else [value]
            for v in values:
                if v is not None and not (_is_int(v) and 0 <= v < self.vocab_size):
                    raise ValueError(f"LLaDAConfig: `{name}` must be None or {allowed}, got {value!r}.")
        eos = self.eos_token_id if isinstance(self.eos_token_id, (list, tuple)) else [self.eos_token_id]
        if self.mask_token_id is not None and (
            self.mask_token_id in eos or self.mask_token_id in (self.pad_token_id, self.bos_token_id)
        ):
            raise ValueError(
                f"LLaDAConfig: `mask_token_id` ({self.mask_token_id}) must differ from the pad, BOS and EOS ids."
            )

    def _validate_rope(self):
        rope_type = self.rope_parameters.get("rope_type", "default")
        allowed = ("default", *_ROPE_INIT_FUNCTIONS)
        if rope_type not in allowed:
            raise ValueError(
                f"LLaDAConfig: `rope_parameters['rope_type']` must be one of {allowed}, got {rope_type!r}."
            )
        theta = self.rope_parameters.get("rope_theta")
        if not (_is_finite_number(theta) and theta > 0):
            raise ValueError(
                f"LLaDAConfig: `rope_parameters['rope_theta']` must be a positive finite number, got {theta!r}."
            )

    def validate_architecture(self):
        """Runs our checks where transformers validates configs (at save time in transformers 5)."""
        self._validate_llada()

    # Legacy attribute names read by older RoPE helpers and by tools that expect Llama's v4 fields.
    @property
    def rope_theta(self):
        return self.rope_parameters["rope_theta"]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value):
    return _is_int(value) and value > 0


def _is_finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _drop_default_ids_outside(special_ids: dict, vocab_size) -> dict:
    """Special ids still at their LLaDA-8B default become None when that id does not fit `vocab_size`."""
    if not _is_positive_int(vocab_size):
        return special_ids  # the size check reports it
    return {
        name: None if value == LLADA_8B_SPECIAL_IDS[name] and value >= vocab_size else value
        for name, value in special_ids.items()
    }


@functools.lru_cache(maxsize=None)
def _known_config_keys():
    from inspect import signature

    known = set(signature(LLaDAConfig.__init__).parameters) | set(GENERIC_CONFIG_KEYS)
    known |= set(vars(PretrainedConfig()))
    if dataclasses.is_dataclass(PretrainedConfig):
        known |= {f.name for f in dataclasses.fields(PretrainedConfig)}
    return known


def _warn_unknown_keys(kwargs: dict) -> None:
    """A keyword that no config field reads is most likely a typo: name it (and the field it resembles)."""
    known = _known_config_keys()
    for key in kwargs:
        if key in known or key.startswith("_"):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        logger.warning(f"LLaDAConfig: unknown key `{key}` is kept as an attribute but nothing reads it.{hint}")


def _standardize_rope(rope_parameters, kwargs):
    """Folds legacy `rope_theta` / `rope_scaling` kwargs into one `rope_parameters` dict (popped from `kwargs`)."""
    legacy_theta = kwargs.pop("rope_theta", None)
    legacy_scaling = kwargs.pop("rope_scaling", None)
    if rope_parameters is not None and not isinstance(rope_parameters, dict):
        raise ValueError(
            f"LLaDAConfig: `rope_parameters` must be a dict such as {{'rope_type': 'default', 'rope_theta': "
            f"500000.0}}, got {rope_parameters!r}."
        )
    params = dict(rope_parameters or legacy_scaling or {})
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params.pop("type")
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", float(legacy_theta) if legacy_theta is not None else 500000.0)
    return params


__all__ = ["LLaDAConfig"]
