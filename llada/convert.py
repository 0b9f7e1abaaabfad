"""Official LLaDA checkpoints (GSAI-ML, OLMo-style `model.transformer.*`) <-> this project's Llama-style format.

The official release (LLaDA-8B-Base, LLaDA-8B-Instruct, LLaDA-1.5) stores an OLMo-style `config.json` (`d_model`,
`n_heads`, `mlp_hidden_size`, ...) and sharded safetensors with `model.transformer.blocks.{i}.*` keys. The same
network in this project is a [`LLaDAForMaskedDiffusion`] with Llama names. Conversion is a pure renaming: no
tensor is reshaped, so both directions are bit-exact.

Weights are streamed: one source shard is open at a time and output shards are flushed once they reach
`max_shard_size`, so peak memory stays near one shard (an 8B checkpoint is 16 GB) whatever the model size.
The output is written into a temporary folder next to `dst` and moved into place only when complete.

Example:

```python
>>> from llada.convert import convert_original_to_llada
>>> convert_original_to_llada("LLaDA-8B-Instruct", "llada-8b-instruct")   # then AutoModel.from_pretrained(...)
```
"""

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .configuration_llada import LLaDAConfig
from .saved_files import TOKENIZER_FILES, copy_code_files

logger = logging.getLogger(__name__)

# Token ids and names of the official LLaDA tokenizer.
OFFICIAL_VOCAB_SIZE = 126464
OFFICIAL_MASK_TOKEN = "<|mdm_mask|>"
OFFICIAL_MASK_TOKEN_ID = 126336
OFFICIAL_BOS_TOKEN_ID = 126080
OFFICIAL_EOT_TOKEN = "<|eot_id|>"
OFFICIAL_EOT_TOKEN_ID = 126348

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

# Architecture options of the original config with the only values this project's model can reproduce.
# None means "key absent", which the original code reads as its default (the supported value).
SUPPORTED_ORIGINAL_OPTIONS = {
    "block_type": ("llama",),
    "layer_norm_type": ("rms",),
    "activation_type": ("silu",),
    "include_bias": (False, None),
    "include_qkv_bias": (False, None),
    "bias_for_layer_norm": (False, None),
    "layer_norm_with_affine": (True, None),
    "attention_layer_norm": (False, None),
    "alibi": (False, None),
    "rope": (True, None),
    "clip_qkv": (None,),
    "scale_logits": (False, None),
    "input_emb_norm": (False, None),
    "block_group_size": (1, None),
}
_UNSUPPORTED_HINTS = {
    "activation_type": "the llama block multiplies act(ff_proj(x)) by up_proj(x); 'swiglu' halves the width "
    "and only fits the fused 'sequential' block",
    "block_type": "only the separate q/k/v + ff_proj/up_proj layout of the 'llama' block maps onto this model",
}

# (original name, our name); "{i}" stands for the layer index.
WEIGHT_NAME_TABLE = (
    ("model.transformer.wte.weight", "model.embed_tokens.weight"),
    ("model.transformer.blocks.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("model.transformer.blocks.{i}.q_proj.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("model.transformer.blocks.{i}.k_proj.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("model.transformer.blocks.{i}.v_proj.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("model.transformer.blocks.{i}.attn_out.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("model.transformer.blocks.{i}.ff_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("model.transformer.blocks.{i}.ff_proj.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("model.transformer.blocks.{i}.up_proj.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("model.transformer.blocks.{i}.ff_out.weight", "model.layers.{i}.mlp.down_proj.weight"),
    ("model.transformer.ln_f.weight", "model.norm.weight"),
    ("model.transformer.ff_out.weight", "lm_head.weight"),
)


# ----------------------------------------------------------------------------------------------------------------
# configs


def original_config_to_llada(original: dict, dtype: Optional[torch.dtype] = None) -> LLaDAConfig:
    """
    Maps an official (OLMo-style) LLaDA `config.json` dict onto a [`LLaDAConfig`], field by field.

    Raises:
        `ValueError`: naming the option and its value when the original uses something this model cannot
            reproduce (biases, ALiBi, other block or norm types, QK-norm, logit scaling, ...).
    """
    for name, allowed in SUPPORTED_ORIGINAL_OPTIONS.items():
        value = original.get(name)
        # compare types too: `1 == True`, but `include_bias: 1` is not a value this converter knows
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            hint = f" ({_UNSUPPORTED_HINTS[name]})" if name in _UNSUPPORTED_HINTS else ""
            supported = " or ".join(repr(a) for a in allowed if a is not None)
            raise ValueError(
                f"Unsupported original LLaDA option `{name}` = {value!r}: only {supported} can be converted{hint}."
            )
    missing = [key for key in ("d_model", "n_heads", "n_layers") if key not in original]
    if missing:
        raise ValueError(f"The original config lacks required key(s) {missing}; is it an OLMo-style LLaDA config?")
    d_model, n_heads = original["d_model"], original["n_heads"]
    intermediate_size = original.get("mlp_hidden_size") or original.get("mlp_ratio", 4) * d_model
    vocab_size = original.get("embedding_size") or original.get("vocab_size")
    if vocab_size is None:
        raise ValueError("The original config has neither `embedding_size` nor `vocab_size`.")
    return LLaDAConfig(
        vocab_size=vocab_size,  # the embedding rows: `embedding_size` may pad `vocab_size` up
        hidden_size=d_model,
        intermediate_size=intermediate_size,
        num_hidden_layers=original["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=_original_kv_heads(original),
        hidden_act="silu",
        max_position_embeddings=original.get("max_sequence_length", 1024),
        rope_parameters={"rope_type": "default", "rope_theta": float(original.get("rope_theta", 10000.0))},
        rms_norm_eps=original.get("rms_norm_eps", 1e-5),
        attention_dropout=original.get("attention_dropout", 0.0),
        initializer_range=original.get("init_std", 0.02),
        tie_word_embeddings=bool(original.get("weight_tying", False)),
        mask_token_id=original.get("mask_token_id", OFFICIAL_MASK_TOKEN_ID),
        pad_token_id=original.get("pad_token_id"),
        bos_token_id=original.get("bos_token_id"),
        eos_token_id=original.get("eos_token_id"),
        dtype=dtype,
        architectures=["LLaDAForMaskedDiffusion"],
    )


def _original_kv_heads(original: dict) -> int:
    """OLMo's rule: `multi_query_attention` True means one K/V head, False means one per query head."""
    mqa = original.get("multi_query_attention")
    if mqa is True:
        return 1
    if mqa is False:
        return original["n_heads"]
    return original.get("n_kv_heads") or original["n_heads"]


def llada_config_to_original(config: LLaDAConfig) -> dict:
    """
    The official (OLMo-style) `config.json` dict describing the same network as `config`.

    Raises:
        `ValueError`: naming the field when `config` uses a feature the official architecture lacks
            (latent attention, biases, another activation, RoPE scaling, a non-default `head_dim`).
    """
    checks = (
        ("attention_type", config.attention_type, "standard"),
        ("attention_bias", config.attention_bias, False),
        ("mlp_bias", config.mlp_bias, False),
        ("attention_output_bias", config.attention_output_bias, False),
        ("qk_norm", config.qk_norm, False),
        ("logit_shift", config.logit_shift, False),
        ("hidden_act", config.hidden_act, "silu"),
        ("rope_parameters['rope_type']", config.rope_parameters.get("rope_type", "default"), "default"),
        ("head_dim", config.head_dim, config.hidden_size // config.num_attention_heads),
    )
    for name, value, required in checks:
        if value != required:
            raise ValueError(
                f"Cannot express `{name}` = {value!r} in the official LLaDA format: it requires {required!r}."
            )
    original = {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "d_model": config.hidden_size,
        "n_heads": config.num_attention_heads,
        "n_kv_heads": config.num_key_value_heads,
        "n_layers": config.num_hidden_layers,
        "mlp_hidden_size": config.intermediate_size,
        "mlp_ratio": 4,  # the original's default; unused since `mlp_hidden_size` is set
        "max_sequence_length": config.max_position_embeddings,
        "vocab_size": config.vocab_size,
        "embedding_size": config.vocab_size,
        "weight_tying": bool(config.tie_word_embeddings),
        "rope_theta": config.rope_parameters["rope_theta"],
        "rms_norm_eps": config.rms_norm_eps,
        "attention_dropout": config.attention_dropout,
        "init_std": config.initializer_range,
        "mask_token_id": config.mask_token_id,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "bos_token_id": config.bos_token_id,
        "rope_full_precision": True,
        "multi_query_attention": None,
    }
    for name, allowed in SUPPORTED_ORIGINAL_OPTIONS.items():
        original.setdefault(name, allowed[0])
    if config.dtype is not None:
        original["torch_dtype"] = str(config.dtype).replace("torch.", "")
    return original


# ----------------------------------------------------------------------------------------------------------------
# weight names


def _compile_table(from_column: int) -> List[Tuple[re.Pattern, str]]:
    to_column = 1 - from_column
    rules = []
    for row in WEIGHT_NAME_TABLE:
        pattern = re.escape(row[from_column]).replace(r"\{i\}", r"(?P<i>\d+)")
        rules.append((re.compile(pattern + "$"), row[to_column]))
    return rules


_TO_OURS = _compile_table(from_column=0)
_TO_ORIGINAL = _compile_table(from_column=1)


def _rename(key: str, rules, source_format: str) -> str:
    for pattern, template in rules:
        match = pattern.match(key)
        if match:
            return template.format(i=match.group("i")) if "{i}" in template else template
    raise ValueError(
        f"Unexpected weight `{key}` in the {source_format} checkpoint: no mapping for it (an unsupported option, "
        f"or not a LLaDA checkpoint)."
    )


def original_to_llada_key(key: str) -> str:
    """`model.transformer.blocks.3.ff_proj.weight` -> `model.layers.3.mlp.gate_proj.weight` (see the table)."""
    return _rename(key, _TO_OURS, "original")


def llada_to_original_key(key: str) -> str:
    """`model.layers.3.mlp.gate_proj.weight` -> `model.transformer.blocks.3.ff_proj.weight`."""
    return _rename(key, _TO_ORIGINAL, "llada")


def expected_llada_shapes(config: LLaDAConfig) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every tensor a checkpoint of `config` stores (built on the meta device: no memory)."""
    from .modeling_llada import LLaDAForMaskedDiffusion

    with torch.device("meta"):
        model = LLaDAForMaskedDiffusion(config)
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    return shapes


# ----------------------------------------------------------------------------------------------------------------
# streaming shards


def parse_size(size: Union[int, str]) -> int:
    """`"5GB"` -> 5_000_000_000, `"500MiB"` -> 524_288_000; ints are bytes."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", str(size), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"`max_shard_size` must be bytes or a size like '5GB' or '500MiB', got {size!r}.")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** "_KMGT".index(unit.upper() or "_"))


def list_weight_files(folder: Path) -> List[Path]:
    """The weight shards of a checkpoint folder, in index order; safetensors preferred, `.bin` accepted."""
    for index_name in (WEIGHTS_INDEX_NAME, "pytorch_model.bin.index.json"):
        if (folder / index_name).is_file():
            weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            return [folder / name for name in sorted(set(weight_map.values()))]
    for pattern in ("*.safetensors", "*.bin"):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    raise FileNotFoundError(f"No weights (*.safetensors or *.bin) found in {folder}.")


def iter_tensors(path: Path) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yields (name, tensor) from one shard, reading one tensor at a time."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device="cpu") as shard:
            for name in shard.keys():
                yield name, shard.get_tensor(name)
    else:  # pytorch pickle shard: memory-mapped, so only the tensors being copied are resident
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        for name in list(state):
            yield name, state.pop(name)


class ShardWriter:
    """Collects tensors and writes safetensors shards of at most `max_shard_bytes` (one tensor may exceed it),
    then names them `model-0000k-of-0000n.safetensors` with an index, or `model.safetensors` when one suffices."""

    def __init__(self, folder: Path, max_shard_bytes: int):
        self.folder = folder
        self.max_shard_bytes = max_shard_bytes
        self.buffer: Dict[str, torch.Tensor] = {}
        self.buffer_bytes = 0
        self.shards: List[List[str]] = []  # names written to each flushed shard
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.total_size = 0

    def add(self, name: str, tensor: torch.Tensor):
        if name in self.shapes:
            raise ValueError(f"Weight `{name}` appears twice in the source checkpoint.")
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffer_bytes + size > self.max_shard_bytes:
            self.flush()
        self.buffer[name] = tensor.contiguous()
        self.buffer_bytes += size
        self.shapes[name] = tuple(tensor.shape)
        self.total_size += size

    def flush(self):
        if not self.buffer:
            return
        save_file(self.buffer, str(self._temporary_name(len(self.shards))), metadata={"format": "pt"})
        self.shards.append(list(self.buffer))
        self.buffer, self.buffer_bytes = {}, 0

    def finish(self):
        self.flush()
        count = len(self.shards)
        if count == 1:
            os.replace(self._temporary_name(0), self.folder / WEIGHTS_NAME)
            return
        weight_map = {}
        for number, names in enumerate(self.shards):
            final = f"model-{number + 1:05d}-of-{count:05d}.safetensors"
            os.replace(self._temporary_name(number), self.folder / final)
            weight_map.update({name: final for name in names})
        index = {"metadata": {"total_size": self.total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (self.folder / WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")

    def _temporary_name(self, number: int) -> Path:
        return self.folder / f"shard-{number:05d}.partial"


def stream_weights(src: Path, writer: ShardWriter, rename, dtype: Optional[torch.dtype], skip=()):
    """Copies every tensor of `src` through `rename` into `writer`, one source shard open at a time."""
    from tqdm.auto import tqdm

    for path in tqdm(list_weight_files(src), desc="Converting shards", unit="shard"):
        for name, tensor in iter_tensors(path):
            if name in skip:
                continue
            writer.add(rename(name), tensor if dtype is None else tensor.to(dtype))
            del tensor


def _weights_dtype(src: Path) -> Optional[torch.dtype]:
    """The dtype of the checkpoint, read from the first shard's header (no tensor is loaded)."""
    path = list_weight_files(src)[0]
    if path.suffix != ".safetensors":
        return None
    names = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}
    with safe_open(str(path), framework="pt", device="cpu") as shard:
        for name in shard.keys():
            return names.get(shard.get_slice(name).get_dtype())
    return None


# ----------------------------------------------------------------------------------------------------------------
# whole folders


def convert_original_to_llada(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    max_shard_size: Union[int, str] = "5GB",
    dtype: Optional[Union[str, torch.dtype]] = None,
    overwrite: bool = False,
) -> Path:
    """
    Converts an official LLaDA checkpoint folder into this project's format.

    Writes `config.json` ([`LLaDAConfig`] with `auto_map`), the Hub code files, sharded safetensors with an
    index, `generation_config.json` (EOS and end-of-turn ids) and the tokenizer with `<|mdm_mask|>` registered as
    its mask token. `AutoModel.from_pretrained(dst, trust_remote_code=True)` then loads it.

    Args:
        src: folder with the official `config.json` and weights (`*.safetensors`, or `*.bin`).
        dst: output folder; must not exist or be empty unless `overwrite`.
        max_shard_size: largest output shard (`"5GB"`, `"500MB"` or bytes); bounds the peak memory.
        dtype: cast the weights (`"bfloat16"`, `"float16"`, `"float32"`); default keeps the stored dtype.
        overwrite: replace a non-empty `dst`.
    """
    src, dst = Path(src), Path(dst)
    original = _read_json(src / "config.json", "the original LLaDA config")
    if "d_model" not in original:
        raise ValueError(f"{src / 'config.json'} is not an official (OLMo-style) LLaDA config: no `d_model` key.")
    dtype, max_shard_bytes = _as_dtype(dtype), parse_size(max_shard_size)
    config = original_config_to_llada(original, dtype=dtype or _weights_dtype(src))
    skip = ("model.transformer.ff_out.weight",) if config.tie_word_embeddings else ()

    def write(folder: Path):
        writer = ShardWriter(folder, max_shard_bytes)
        stream_weights(src, writer, original_to_llada_key, dtype, skip=skip)
        _check_shapes(writer.shapes, expected_llada_shapes(config))
        writer.finish()
        tokenizer = _convert_tokenizer(src, folder, config)
        if config.bos_token_id is None:  # the official config.json has no BOS; its tokenizer does
            config.bos_token_id = _bos_token_id(config, tokenizer)
        config.save_pretrained(folder)
        copy_code_files(folder)
        _write_generation_config(src, folder, config, tokenizer)

    return _write_atomically(dst, overwrite, write)


def convert_llada_to_original(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    max_shard_size: Union[int, str] = "5GB",
    dtype: Optional[Union[str, torch.dtype]] = None,
    overwrite: bool = False,
) -> Path:
    """
    Converts a checkpoint of this project back into the official LLaDA layout (OLMo-style `config.json` and
    `model.transformer.*` weights); the tokenizer and generation config are copied as they are. The official
    modelling code files are not part of this project: put them next to the result to load it with the official
    `trust_remote_code` classes.
    """
    src, dst = Path(src), Path(dst)
    config = LLaDAConfig.from_dict(_read_json(src / "config.json", "the llada config"))
    dtype, max_shard_bytes = _as_dtype(dtype), parse_size(max_shard_size)
    original = llada_config_to_original(config)
    if dtype is not None:
        original["torch_dtype"] = str(dtype).replace("torch.", "")
    skip = ("lm_head.weight",) if config.tie_word_embeddings else ()

    def write(folder: Path):
        writer = ShardWriter(folder, max_shard_bytes)
        stream_weights(src, writer, llada_to_original_key, dtype, skip=skip)
        expected = {llada_to_original_key(k): v for k, v in expected_llada_shapes(config).items()}
        _check_shapes(writer.shapes, expected)
        writer.finish()
        (folder / "config.json").write_text(json.dumps(original, indent=2, sort_keys=True) + "\n")
        for name in (*TOKENIZER_FILES, "generation_config.json"):
            if (src / name).is_file():
                shutil.copy2(src / name, folder / name)

    return _write_atomically(dst, overwrite, write)


def _check_shapes(written: Dict[str, Tuple[int, ...]], expected: Dict[str, Tuple[int, ...]]):
    missing = sorted(set(expected) - set(written))
    extra = sorted(set(written) - set(expected))
    wrong = sorted(k for k in set(expected) & set(written) if expected[k] != written[k])
    if missing or extra or wrong:
        details = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else ""]
        details += [f"`{k}` has shape {written[k]}, the config implies {expected[k]}" for k in wrong[:5]]
        raise ValueError("The converted weights do not match the config: " + "; ".join(d for d in details if d))


def _write_atomically(dst: Path, overwrite: bool, write) -> Path:
    """Runs `write(folder)` on a temporary sibling of `dst` and moves it into place only if it succeeds."""
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise FileExistsError(f"`dst` {dst} exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.parent / f".{dst.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    os.replace(partial, dst)
    return dst


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"Expected {what} at {path}, found nothing.")
    return json.loads(path.read_text())


def _as_dtype(dtype) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    allowed = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if dtype not in allowed:
        raise ValueError(f"`dtype` must be one of {sorted(allowed)} or None, got {dtype!r}.")
    return allowed[dtype]


def _convert_tokenizer(src: Path, folder: Path, config: LLaDAConfig):
    """Saves the source tokenizer with the token at `config.mask_token_id` registered as its mask token."""
    if not any((src / name).is_file() for name in TOKENIZER_FILES):
        logger.warning("No tokenizer files in %s: the converted folder has no tokenizer.", src)
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(src))
    if config.mask_token_id >= len(tokenizer):
        raise ValueError(
            f"The tokenizer in {src} has {len(tokenizer)} tokens: it has no token for mask_token_id "
            f"{config.mask_token_id}."
        )
    mask_token = tokenizer.convert_ids_to_tokens(config.mask_token_id)
    tokenizer.add_special_tokens({"mask_token": mask_token})
    if tokenizer.mask_token_id != config.mask_token_id:
        raise ValueError(
            f"Registering {mask_token!r} as mask token gave id {tokenizer.mask_token_id}, expected "
            f"{config.mask_token_id}."
        )
    if mask_token != OFFICIAL_MASK_TOKEN:
        logger.warning("Mask token id %d is %r, not %r.", config.mask_token_id, mask_token, OFFICIAL_MASK_TOKEN)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _write_generation_config(src: Path, folder: Path, config: LLaDAConfig, tokenizer):
    """generation_config.json: stop on EOS and on end-of-turn (`<|eot_id|>`, what the instruct models emit)."""
    from .generation_config_llada import LLaDAGenerationConfig

    stop_ids = []
    for value in (config.eos_token_id, _source_generation_eos(src), _end_of_turn_id(config, tokenizer)):
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and token_id not in stop_ids:
                stop_ids.append(token_id)
    generation_config = LLaDAGenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=stop_ids or None,
        pad_token_id=config.pad_token_id,
        mask_token_id=config.mask_token_id,
    )
    generation_config.save_pretrained(str(folder))


def _source_generation_eos(src: Path):
    path = src / "generation_config.json"
    return json.loads(path.read_text()).get("eos_token_id") if path.is_file() else None


def _bos_token_id(config: LLaDAConfig, tokenizer) -> Optional[int]:
    if tokenizer is not None:
        return tokenizer.bos_token_id
    return OFFICIAL_BOS_TOKEN_ID if config.vocab_size == OFFICIAL_VOCAB_SIZE else None


def _end_of_turn_id(config: LLaDAConfig, tokenizer) -> Optional[int]:
    if tokenizer is not None:
        token_id = tokenizer.convert_tokens_to_ids(OFFICIAL_EOT_TOKEN)
        return token_id if token_id is not None and token_id != tokenizer.unk_token_id else None
    return OFFICIAL_EOT_TOKEN_ID if config.vocab_size == OFFICIAL_VOCAB_SIZE else None


__all__ = [
    "convert_original_to_llada",
    "convert_llada_to_original",
    "original_config_to_llada",
    "llada_config_to_original",
    "original_to_llada_key",
    "llada_to_original_key",
    "expected_llada_shapes",
    "ShardWriter",
]
