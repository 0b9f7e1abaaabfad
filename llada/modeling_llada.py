"""LLaDA: a bidirectional Llama-shaped Transformer trained as a masked-diffusion language model.

This is a Hub file: `save_pretrained` copies it next to the weights and `trust_remote_code` imports it on the
user's machine, so it imports only the standard library, torch, the public transformers API and its sibling
Hub files. Read top-down: norm -> rotary -> MLP -> attention -> layer -> pre-trained base -> model -> head. The
attention layouts (bidirectional, cached windows, block diffusion) are in `masks_llada`, the masking process and
the loss in `diffusion_llada`.
"""

from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput
from transformers.utils import logging

# transformers 4.x copies, from a local folder, only the Hub files that the model's module imports itself (5.x also
# follows the imports of those): every sibling is imported here so that a saved folder loads on both.
from .cache_llada import CanvasKVCache, shift_hidden_states  # noqa: F401
from .checks_llada import check_labels, check_model_inputs
from .configuration_llada import LLaDAConfig
from .diffusion_llada import (
    forward_process,  # noqa: F401 - also importable from here, as the model's noising
    masked_diffusion_loss,
)
from .generation_config_llada import LLaDAGenerationConfig
from .generation_llada import LLaDAGenerationMixin
from .masks_llada import TrainingLayoutMask, attention_layout, stacked
from .prepare_llada import prepare_call  # noqa: F401
from .processors_llada import BlockLogitsProcessor  # noqa: F401
from .rows_llada import RunningRows  # noqa: F401
from .sampling_llada import REMASKING_STRATEGIES  # noqa: F401

try:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
except ImportError:  # pragma: no cover - transformers < 4.48
    ALL_ATTENTION_FUNCTIONS = {}
try:
    from transformers.modeling_layers import GradientCheckpointingLayer
except ImportError:  # pragma: no cover - transformers < 4.52
    GradientCheckpointingLayer = nn.Module
try:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
except ImportError:  # pragma: no cover
    ROPE_INIT_FUNCTIONS = {}

    def dynamic_rope_update(fn):
        return fn


logger = logging.get_logger(__name__)


class LLaDARMSNorm(nn.Module):
    """Root-mean-square layer norm, computed in float32 (as Llama's)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class LLaDARotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE); scaling types come from transformers' `ROPE_INIT_FUNCTIONS`."""

    def __init__(self, config: LLaDAConfig, device=None):
        super().__init__()
        self.config = config
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.rope_type = config.rope_parameters.get("rope_type", "default")
        rope_init_fn = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(config, device)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: LLaDAConfig, device=None, seq_len=None, **kwargs):
        """Inverse frequencies theta^(-2i/d) of the original RoPE; no attention scaling."""
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device, torch.float) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        # (batch, seq, head_dim / 2) angles, computed in float32 whatever the model dtype
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)  # (batch, seq, head_dim), rotate-half layout
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """Rotates queries and keys, (batch, heads, seq, head_dim), by the position angles (batch, seq, head_dim).

    The queries may be the first positions only (`q.shape[2] <= k.shape[2]`, see `LLaDAAttention.forward`).
    """
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    q_cos, q_sin = cos[:, :, : q.shape[2]], sin[:, :, : q.shape[2]]
    return (q * q_cos) + (rotate_half(q) * q_sin), (k * cos) + (rotate_half(k) * sin)


class LLaDAMLP(nn.Module):
    """Gated feed-forward: `down(act(gate(x)) * up(x))`; SwiGLU with `silu`, Mish-gated with `mish`."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(batch, kv_heads, seq, d) -> (batch, kv_heads * n_rep, seq, d) for grouped-query attention."""
    if n_rep == 1:
        return hidden_states
    batch, kv_heads, seq, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, kv_heads, n_rep, seq, head_dim)
    return hidden_states.reshape(batch, kv_heads * n_rep, seq, head_dim)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention. `attention_mask` is additive (float) or boolean (True = may attend)."""
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (batch, heads, q, k)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
        else:
            attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # (batch, q, heads, d)
    return attn_output, attn_weights


class LLaDAAttention(nn.Module):
    """Bidirectional multi-head attention with RoPE, GQA and an optional simplified latent K/V projection."""

    def __init__(self, config: LLaDAConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = False  # every token sees every token; SDPA reads this flag (its default is causal)

        q_dim = config.num_attention_heads * self.head_dim
        kv_dim = config.num_key_value_heads * self.head_dim
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, q_dim, bias=bias)
        if config.attention_type == "latent":
            # One shared down-projection to a small latent, then separate up-projections to K and V.
            self.kv_down_proj = nn.Linear(config.hidden_size, config.kv_latent_dim, bias=bias)
            self.k_up_proj = nn.Linear(config.kv_latent_dim, kv_dim, bias=bias)
            self.v_up_proj = nn.Linear(config.kv_latent_dim, kv_dim, bias=bias)
        else:
            self.k_proj = nn.Linear(config.hidden_size, kv_dim, bias=bias)
            self.v_proj = nn.Linear(config.hidden_size, kv_dim, bias=bias)
        self.o_proj = nn.Linear(q_dim, config.hidden_size, bias=getattr(config, "attention_output_bias", bias))
        if getattr(config, "qk_norm", False):  # Qwen3: each head's queries and keys RMS-normalised before RoPE
            self.q_norm = LLaDARMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = LLaDARMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def project_kv(self, hidden_states: torch.Tensor):
        """Keys and values before RoPE, each (batch, seq, kv_heads * head_dim)."""
        if self.config.attention_type == "latent":
            latent = self.kv_down_proj(hidden_states)  # (batch, seq, kv_latent_dim)
            return self.k_up_proj(latent), self.v_up_proj(latent)
        return self.k_proj(hidden_states), self.v_proj(hidden_states)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple,
        attention_mask: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
        past_key_values=None,
        num_queries: Optional[int] = None,
        **kwargs,
    ):
        """`num_queries`: only the first that many positions are queries (all of them give keys and values); the
        last layer of block diffusion's training layout needs no output for the clean copy."""
        batch, seq, _ = hidden_states.shape
        queries = hidden_states if num_queries is None else hidden_states[:, :num_queries]
        query = self.q_proj(queries).view(batch, queries.shape[1], -1, self.head_dim).transpose(1, 2)
        key, value = self.project_kv(hidden_states)
        key = key.view(batch, seq, -1, self.head_dim).transpose(1, 2)  # (batch, kv_heads, seq, head_dim)
        value = value.view(batch, seq, -1, self.head_dim).transpose(1, 2)
        if getattr(self.config, "qk_norm", False):
            query, key = self.q_norm(query), self.k_norm(key)
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if past_key_values is not None:
            # The cache returns keys/values for the whole canvas: the ones just computed for this window of
            # positions, and stored ones (already rotated) for the rest. See `LLaDAModel.forward`.
            key, value = past_key_values.update(key, value, self.layer_idx)

        attention_interface: Callable = eager_attention_forward
        implementation = self.config._attn_implementation or "eager"
        if implementation != "eager" and not output_attentions:
            attention_interface = ALL_ATTENTION_FUNCTIONS[implementation]
        options = dict(
            dropout=self.attention_dropout if self.training else 0.0, scaling=self.scaling, is_causal=False, **kwargs
        )
        if isinstance(attention_mask, TrainingLayoutMask):
            attn_output, attn_weights = attention_mask.attend(attention_interface, self, query, key, value, options)
        else:
            attn_output, attn_weights = attention_interface(self, query, key, value, attention_mask, **options)
        attn_output = self.o_proj(attn_output.reshape(batch, queries.shape[1], -1))
        return attn_output, attn_weights


class LLaDADecoderLayer(GradientCheckpointingLayer):
    """Pre-norm Transformer block: x + attn(norm(x)), then + mlp(norm(.))."""

    def __init__(self, config: LLaDAConfig, layer_idx: int):
        super().__init__()
        self.self_attn = LLaDAAttention(config, layer_idx)
        self.mlp = LLaDAMLP(config)
        self.input_layernorm = LLaDARMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LLaDARMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        position_embeddings=None,
        output_attentions=False,
        num_queries=None,
        **kwargs,
    ):
        attn_output, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            num_queries=num_queries,
            **kwargs,
        )
        if num_queries is not None:  # the other positions only served as keys and values
            hidden_states = hidden_states[:, :num_queries]
        hidden_states = hidden_states + attn_output
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, attn_weights


class LLaDAPreTrainedModel(PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDADecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # untested with bidirectional masks here: not claimed
    _supports_flex_attn = False
    # The loss is normalised inside `forward` (by token slots or answer lengths), not by `num_items_in_batch`:
    # without this, Trainer would believe the model scales for gradient accumulation and report loss x GA.
    accepts_loss_kwargs = False


class LLaDAModel(LLaDAPreTrainedModel):
    """The bare Transformer: token embeddings, bidirectional layers and the final RMSNorm."""

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(LLaDADecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LLaDARMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LLaDARotaryEmbedding(config)
        self.post_init()

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        past_key_values=None,
        clean_input_ids: Optional[torch.LongTensor] = None,
        **kwargs,
    ) -> Union[tuple, BaseModelOutput]:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq)`): token ids, `mask_token_id` where masked.
            attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens, 0 for padding.
                Padding is excluded as a key for every query; padded positions still get (meaningless) outputs. A
                prepared 4-D mask `(batch, 1, queries, keys)`, boolean (True = may attend) or additive float, is
                used as given.
            position_ids (`torch.LongTensor` of shape `(batch, seq)`, *optional*): defaults to the running count
                of real tokens, so a left-padded row sees the same positions as the same row unpadded.
            past_key_values (*optional*):
                A key/value cache for sampling with a cache: the input is then a window of a longer canvas, whose
                other positions' keys and values come from the cache. It must provide
                `update(key, value, layer_idx) -> (key, value)` returning the keys/values of the whole canvas
                `(batch, kv_heads, canvas_len, head_dim)`, and `attention_mask` (if given) covers the whole canvas
                `(batch, canvas_len)`; `position_ids` of the window are then required. On a block model
                (`config.block_size`) the cache holds the finished blocks before the window instead (see
                [`BlockKVCache`]): `update` returns the cached keys/values followed by the window's, and
                `attention_mask` (if given) covers both, `(batch, cached_len + seq)`, or a whole canvas of which
                the first `cached_len + seq` positions are used.
            clean_input_ids (`torch.LongTensor` of shape `(batch, seq)` or `(batch / copies, seq)`, *optional*):
                Block models only: the clean tokens of the same rows. The model then runs BD3-LM's training layout,
                the noised copy followed by the clean one in one pass of length `2 * seq` (positions shared): each
                noised block attends to itself and to the clean blocks before it, each clean block to the clean
                blocks up to its own. `last_hidden_state` is that of the noised copy, `(batch, seq, hidden)`;
                `hidden_states` and `attentions` cover both copies. With fewer clean rows than input rows, the
                input holds `copies` noisings of each clean row (row `c * len(clean_input_ids) + i` is copy `c` of
                clean row `i`, with its padding and positions): they share one clean copy, a pass of length
                `(copies + 1) * seq` per clean row that costs less than `copies` separate ones (complementary
                masking: 3 sequence lengths instead of 4). `hidden_states` and `attentions` then have that layout.

        With `config.block_size` set and no `clean_input_ids`, attention is block-causal: a position sees the
        positions of its own block (`position_ids // block_size`) and of every earlier block.

        A bad input is one `ValueError` naming the argument (see `checks_llada`). Dtypes, ranks and shapes are always
        checked; values (ids in the vocabulary, a 2-D mask of 0/1, at most `max_position_embeddings` real tokens
        in a row) on CPU tensors only, as reading them elsewhere waits for the device: set the environment variable
        `LLADA_CHECK_INPUT_VALUES=1` to check them on every device. Nothing is checked from values while compiling.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # one clear error per bad argument; values (ids, 0/1 masks) on CPU tensors only (see `checks_llada`)
        check_model_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, position_ids, windowed=past_key_values is not None
        )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (batch, seq, hidden)
        batch, seq = inputs_embeds.shape[:2]
        # the embeddings (with `clean_input_ids`: the clean copy after the noised ones), positions and attention mask
        # of this pass's layout: bidirectional, a cached window, block-causal or block diffusion's training layout
        inputs_embeds, position_ids, mask = attention_layout(
            self.config,
            inputs_embeds,
            attention_mask,
            position_ids,
            past_key_values,
            clean_input_ids,
            self.embed_tokens,
            output_attentions,
        )
        position_embeddings = self.rotary_emb(inputs_embeds, position_ids)

        hidden_states = inputs_embeds
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        logit_shift = getattr(self.config, "logit_shift", False)  # then a block starts from the clean copy's state
        for index, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if clean_input_ids is not None and index == len(self.layers) - 1 and not logit_shift:
                # the last layer's clean-copy outputs would be thrown away: it gives only keys and values
                noised = hidden_states.shape[1] - seq  # the noised copies' positions come first
                kwargs["num_queries"] = noised
                if not isinstance(mask, TrainingLayoutMask):
                    mask = mask[:, :, :noised]
            hidden_states, attn_weights = layer(
                hidden_states,
                attention_mask=mask,
                position_embeddings=position_embeddings,
                output_attentions=output_attentions,
                past_key_values=past_key_values,
                **kwargs,
            )
            if output_attentions:
                all_attentions += (attn_weights,)
        hidden_states = self.norm(hidden_states)  # with clean_input_ids: the noised copies' only (and clean to shift)
        if logit_shift:  # Dream: the head reads position i from position i - 1 (see `shift_hidden_states`)
            copies = 0 if clean_input_ids is None else hidden_states.shape[1] // seq - 1
            hidden_states = shift_hidden_states(
                hidden_states, past_key_values, position_ids, getattr(self.config, "block_size", None), copies
            )
        if clean_input_ids is not None:
            hidden_states = stacked(hidden_states, batch // clean_input_ids.shape[0])  # (batch, seq, hidden)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        if not return_dict:
            return tuple(v for v in (hidden_states, all_hidden_states, all_attentions) if v is not None)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


class LLaDAForMaskedDiffusion(LLaDAPreTrainedModel, LLaDAGenerationMixin):
    """LLaDA with its language-model head: logits for every position, the masked-diffusion loss, and
    `diffusion_generate` / `generate`."""

    _auto_class = "AutoModel"  # save_pretrained copies the Hub files and writes `auto_map`
    # Tensor parallelism: the head is split by vocabulary rows and gathered (as Llama's), so a tied head and the
    # row-wise embedding transformers plans for `embed_tokens` are sharded alike.
    _tp_plan = {"lm_head": "colwise_gather_output"}
    generation_config_class = LLaDAGenerationConfig  # model.generation_config and generation_config.json
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        p_mask: Optional[torch.Tensor] = None,
        answer_lengths: Optional[torch.Tensor] = None,
        past_key_values=None,
        logits_to_keep: Union[int, slice, torch.Tensor] = 0,
        clean_input_ids: Optional[torch.LongTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> Union[tuple, MaskedLMOutput]:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*):
                The clean token at masked positions and -100 elsewhere (checked on CPU tensors as the input ids are,
                see [`LLaDAModel.forward`]).
            p_mask (`torch.Tensor` of shape `(batch,)` or `(batch, seq)`, *optional*):
                Masking probability of each sequence (or token); weights the loss by `1 / p_mask`.
            answer_lengths (`torch.Tensor` of shape `(batch,)`, *optional*):
                SFT normalisation: each row's loss is divided by its answer length (see `masked_diffusion_loss`).
            past_key_values (*optional*):
                A key/value cache for windowed passes over a longer canvas, see [`LLaDAModel.forward`].
            logits_to_keep (`int`, `slice` or `torch.Tensor`, *optional*, defaults to 0):
                The positions that go through the output head (as in transformers' Llama): an `int` keeps the last
                that many (0: all), a `slice` or a 1-D tensor of indices keeps those positions, a 2-D `(batch, k)`
                tensor keeps `k` positions of each row (its own indices per row). The sampler asks
                only for the current block: the vocabulary-wide head is a large share of a small model's cost.
                Not with `labels` (the loss needs every position).
            clean_input_ids (`torch.LongTensor` of shape `(batch, seq)` or `(batch / copies, seq)`, *optional*):
                Block models: the clean rows, for BD3-LM's training layout (see [`LLaDAModel.forward`], also for
                several noised copies sharing a clean row); the logits are those of the noised input, each block
                predicted from itself and the clean blocks before it.
                With `labels` and without `clean_input_ids`, a block model builds them as `input_ids` with the
                labels filled in, so its loss is always the block-diffusion loss.

        In training mode with `labels`, only the labelled positions go through the head (that is all the loss
        needs) and the output's `logits` is `None`; in eval mode the logits of every position are returned with
        the loss.

        Returns: [`~modeling_outputs.MaskedLMOutput`] with `loss` when `labels` are given.

        Example:

        ```python
        >>> out = model(input_ids, attention_mask=attention_mask)
        >>> out.logits.shape  # (batch, seq, vocab_size)
        >>> model(input_ids, logits_to_keep=slice(4, 8)).logits.shape  # (batch, 4, vocab_size)
        ```
        """
        keep_all = isinstance(logits_to_keep, int) and logits_to_keep == 0
        if labels is not None and not keep_all:
            raise ValueError(
                f"LLaDAForMaskedDiffusion.forward: `labels` need the logits of every position; got `logits_to_keep`="
                f"{logits_to_keep!r} (leave it at 0)."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            check_labels(self.config, labels, input_ids, inputs_embeds)
        if labels is not None and clean_input_ids is None and getattr(self.config, "block_size", None) is not None:
            if input_ids is None:
                raise ValueError(
                    "LLaDAForMaskedDiffusion.forward: a block model's loss needs `input_ids` (or `clean_input_ids`) "
                    "to build the clean copy of the rows; got only `inputs_embeds`."
                )
            clean_input_ids = torch.where(labels != -100, labels, input_ids)  # (batch, seq)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            past_key_values=past_key_values,
            clean_input_ids=clean_input_ids,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (batch, seq, hidden)
        loss = None
        if labels is not None and self.training:
            # The loss needs the head only where a token is labelled (the masked ones, about half): skipping the
            # others saves a large share of a small model's step. `logits` is None then; eval mode returns them.
            labelled_logits = self.lm_head(hidden_states[labels != -100])  # (n_labelled, vocab)
            loss = masked_diffusion_loss(
                labelled_logits,
                labels,
                p_mask,
                attention_mask,
                answer_lengths,
                self.config.token_reweighting_gamma,
            )
            logits = None
        else:
            if torch.is_tensor(logits_to_keep) and logits_to_keep.dim() == 2:  # per-row positions (batch, k)
                hidden_states = hidden_states.gather(
                    1, logits_to_keep[..., None].expand(-1, -1, hidden_states.shape[-1])
                )  # (batch, k, hidden)
            elif not keep_all:
                kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
                hidden_states = hidden_states[:, kept]
            logits = self.lm_head(hidden_states)  # (batch, kept positions, vocab)
            if labels is not None:
                loss = masked_diffusion_loss(logits, labels, p_mask, attention_mask, answer_lengths)
        if not return_dict:
            output = (logits, outputs.hidden_states, outputs.attentions)
            output = tuple(v for v in output if v is not None)
            return (loss,) + output if loss is not None else output
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "LLaDAPreTrainedModel",
    "LLaDAModel",
    "LLaDAForMaskedDiffusion",
    "forward_process",
    "masked_diffusion_loss",
]
