"""Helpers the tests share: tiny models and tokenizers, reference computations and paths. `tests/` is on
`sys.path` for every test file (setup.cfg: `[tool:pytest] pythonpath = tests`), so a test in any folder imports them
with `from helpers import ...`; pytest's fixtures stay in conftest.py."""

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from llada import LLaDAConfig, LLaDAForMaskedDiffusion

ROOT = Path(__file__).resolve().parents[1]  # the checkout
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"

# ----------------------------------------------------------------------------------------------------------------
# tiny models

TINY = dict(
    vocab_size=100,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    mask_token_id=99,
    pad_token_id=0,
    bos_token_id=None,
    eos_token_id=1,
)


def tiny_config(**overrides) -> LLaDAConfig:
    """A 2-layer, hidden-32 LLaDA config; keyword arguments override any field."""
    return LLaDAConfig(**{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides) -> LLaDAForMaskedDiffusion:
    """A seeded, randomly initialised tiny model in eval mode (fp32)."""
    torch.manual_seed(seed)
    return LLaDAForMaskedDiffusion(tiny_config(**overrides)).eval()


def vocabulary_of(tokenizer) -> dict:
    """The config fields that fit a model to `tokenizer`: its vocabulary size and its mask, pad and EOS ids."""
    return dict(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


MASK, PAD, EOS = 99, 0, 1  # the tiny config's mask, pad and EOS ids


def generate_output(model, ids, attention_mask=None, length: int = 16, **settings):
    """`diffusion_generate`'s output object for `length` new tokens, one per step in blocks of 4, EOS ignored;
    keyword arguments override any setting."""
    settings = {
        "max_new_tokens": length,
        "steps": length,
        "block_length": 4,
        "eos_token_id": None,
        "return_dict_in_generate": True,
        **settings,
    }
    return model.diffusion_generate(ids, attention_mask=attention_mask, **settings)


def varied_model(seed: int = 0) -> LLaDAForMaskedDiffusion:
    """A tiny random model with a wide initialisation, so that its logits differ clearly between tokens."""
    return tiny_model(seed, initializer_range=0.2)


def shifted_pair(seed: int = 0, **overrides):
    """The same random weights without and with the logit shift (eval mode)."""
    plain = tiny_model(seed, initializer_range=0.2, **overrides)
    shifted = LLaDAForMaskedDiffusion(tiny_config(initializer_range=0.2, logit_shift=True, **overrides)).eval()
    shifted.load_state_dict(plain.state_dict())
    return plain, shifted


class GraphCounter:
    """A torch.compile backend that runs the captured graph as is and counts the graphs it was given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


def llada_num_transfer_tokens(M, S):
    """LLaDA's get_num_transfer_tokens for one row: M // S per step, +1 for the first M % S steps."""
    return [M // S + (1 if i < M % S else 0) for i in range(S)]


def prompts_batch():
    """Three left-padded prompts of lengths 5, 3 and 1: ids (3, 5) and attention mask (3, 5)."""
    ids = torch.tensor([[11, 12, 13, 14, 15], [PAD, PAD, 21, 22, 23], [PAD, PAD, PAD, PAD, 31]])
    return ids, (ids != PAD).long()


# ----------------------------------------------------------------------------------------------------------------
# the scripts of benchmarks/ and experiments/


SCRIPT_FOLDERS = [ROOT / folder for folder in ("benchmarks", "experiments")]


def script_module(name: str):
    """A script of benchmarks/ or experiments/ as a module, imported the way the scripts import each other: with
    their folders on `sys.path` (`import common`, benchmarks/common.py)."""
    for folder in SCRIPT_FOLDERS:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return importlib.import_module(name)


# ----------------------------------------------------------------------------------------------------------------
# block diffusion: inputs, the reference loss of one pass per block, a context-free model


def random_ids(batch=2, seq=12, seed=1):
    return torch.randint(2, 99, (batch, seq), generator=torch.Generator().manual_seed(seed))


def noised(ids, probability=0.4, seed=2):
    """(noisy ids, labels) with about `probability` of the positions masked."""
    masked = torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)) < probability
    return ids.masked_fill(masked, MASK), ids.masked_fill(~masked, -100)


def per_block_reference_loss(model, noisy, labels, p_mask, block_size):
    """Each block in its own forward pass: the clean blocks before it, then the noised block (block-causal)."""
    clean = torch.where(labels != -100, labels, noisy)
    batch, seq = noisy.shape
    total = 0.0
    for start in range(0, seq, block_size):
        stop = min(start + block_size, seq)
        logits = model(torch.cat([clean[:, :start], noisy[:, start:stop]], dim=1)).logits[:, start:]
        block_labels = labels[:, start:stop]
        ce = F.cross_entropy(logits.transpose(1, 2), block_labels.clamp(min=0), reduction="none")
        total = total + (ce * (block_labels != -100) / p_mask[:, start:stop]).sum()
    return total / (batch * seq)


class ContextFreeBlockModel(torch.nn.Module):
    """Predicts the same distribution everywhere and declares a block size: the bound is exact in expectation."""

    def __init__(self, log_probs, block_size):
        super().__init__()
        self.log_probs = torch.nn.Parameter(log_probs, requires_grad=False)
        self.config = LLaDAConfig(
            vocab_size=len(log_probs),
            hidden_size=8,
            intermediate_size=8,
            num_hidden_layers=1,
            num_attention_heads=1,
            mask_token_id=len(log_probs) - 1,
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
            block_size=block_size,
        )

    def forward(self, input_ids, attention_mask=None, clean_input_ids=None):
        assert clean_input_ids is not None  # scored as a block model: each block given the clean ones before
        return type("Output", (), {"logits": self.log_probs.expand(*input_ids.shape, -1)})()


# ----------------------------------------------------------------------------------------------------------------
# training: the options of a tiny `llada-train` run, and a tiny model, data and arguments for LLaDATrainer


# The pieces of a tiny training run's command line: the model and batch, the wikitext excerpts, a quiet CPU run.
TINY_SIZE_ARGS = "--hidden_size 32 --num_hidden_layers 2 --num_attention_heads 4 --intermediate_size 64".split()
TINY_MODEL_ARGS = [*TINY_SIZE_ARGS, *"--max_seq_length 32 --per_device_train_batch_size 4".split()]
TINY_DATA_ARGS = [
    "--train_file",
    str(FIXTURES / "wikitext-2-test-excerpt.txt"),
    "--validation_file",
    str(FIXTURES / "wikitext-2-valid-excerpt.txt"),
]
# the start of a command that runs a script in two processes (CPU, gloo)
TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
QUIET_CPU_ARGS = ["--use_cpu", "--report_to", "none", "--disable_tqdm", "true"]
# a tiny llada-train run on the wikitext excerpts, from random weights, without a sampling callback's cost
TINY_RUN_ARGS = [
    "--autoregressive_init_steps",
    "0",
    *TINY_MODEL_ARGS,
    *TINY_DATA_ARGS,
    *QUIET_CPU_ARGS,
    "--dataloader_num_workers",
    "0",
    "--num_sample_generations",
    "0",
]

TINY_TRAIN_ARGS = [  # the same with a byte tokenizer, a small evaluation and short samples
    "--autoregressive_init_steps",
    "0",
    "--tokenizer",
    "bytes",
    *TINY_MODEL_ARGS,
    "--per_device_eval_batch_size",
    "8",
    *TINY_DATA_ARGS,
    "--max_eval_samples",
    "8",
    *QUIET_CPU_ARGS,
    "--dataloader_num_workers",
    "0",
    "--eval_num_t_samples",
    "2",
    "--sample_max_new_tokens",
    "8",
    "--sample_prompt_length",
    "4",
]

TEXT = (FIXTURES / "wikitext-2-valid-excerpt.txt").read_bytes()[:6000]


def blocks(count=48, length=32, offset=0):
    """`count` rows of `length` bytes of the wikitext excerpt, from byte `offset` on (a `datasets.Dataset`)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {"input_ids": [list(TEXT[offset + i * length : offset + (i + 1) * length]) for i in range(count)]}
    )


def make_model(tokenizer, seed=0, block_size=None):
    """A tiny random LLaDA (64 positions, train mode) for `tokenizer`'s vocabulary and special ids."""
    return tiny_model(seed, **vocabulary_of(tokenizer), max_position_embeddings=64, block_size=block_size).train()


def arguments(output_dir, **overrides):
    """LLaDATrainingArguments of a quiet CPU run that saves nothing and evaluates only when asked."""
    from llada.training.trainer import LLaDATrainingArguments

    values = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to="none",
        dataloader_num_workers=0,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        seed=0,
        num_sample_generations=0,
        plot_loss_curve=False,
        random_length_probability=0.0,
        disable_tqdm=True,
    )
    values.update(overrides)
    return LLaDATrainingArguments(**values)


def tiny_trainer(model, tokenizer, args):
    """An `LLaDATrainer` of `model` on the wikitext byte rows of [`blocks`], evaluated on 8 rows further on."""
    from llada.training.trainer import LLaDATrainer

    return LLaDATrainer(
        model=model,
        args=args,
        train_dataset=blocks(),
        eval_dataset=blocks(8, offset=2000),
        processing_class=tokenizer,
    )


# ----------------------------------------------------------------------------------------------------------------
# tokenizers


WORDS = "to be or not that is the question whether tis nobler in the mind".split()


def word_tokenizer(line_break_every: int = 0) -> PreTrainedTokenizerFast:
    """A word-level tokenizer matching the tiny config: [PAD]=0, [EOS]=1, [UNK]=2, words, fillers, [MASK]=99.
    With `line_break_every=n`, every n-th filler ends in a line break (text with newlines, for the live view)."""
    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    while len(vocab) < 99:
        breaks = line_break_every and len(vocab) % line_break_every == 0
        vocab[f"w{len(vocab)}" + ("\n" if breaks else "")] = len(vocab)
    vocab["[MASK]"] = 99
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]", mask_token="[MASK]"
    )


def tiny_tokenizer(vocab_size: int = 100) -> PreTrainedTokenizerFast:
    """A word-level tokenizer laid out like LLaDA's: `<|mdm_mask|>` is the last id, `<|eot_id|>` the one before;
    the mask token is in the vocabulary but not registered (as in the official tokenizer files)."""
    specials = {
        "<pad>": 0,
        "<|endoftext|>": 1,
        "<unk>": 2,
        "<|startoftext|>": 3,
        "<|eot_id|>": vocab_size - 2,
        "<|mdm_mask|>": vocab_size - 1,
    }
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "on",
        "mat",
        "is",
        "red",
        "blue",
        "yes",
        "no",
        "one",
        "two",
        "three",
        "four",
        "what",
        "color",
        "sky",
        "grass",
        "green",
        "answer",
        ":",
        "?",
        ".",
        "question",
    ]
    free_ids = [i for i in range(vocab_size) if i not in specials.values()]
    vocab = dict(specials, **dict(zip(words + [f"w{i}" for i in range(vocab_size)], free_ids)))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|endoftext|>",
        bos_token="<|startoftext|>",
    )


# ----------------------------------------------------------------------------------------------------------------
# official LLaDA checkpoints (llada/convert.py)


# The published LLaDA-8B-Base config.json (architecture keys).
LLADA_8B_CONFIG = {
    "activation_type": "silu",
    "alibi": False,
    "block_group_size": 1,
    "block_type": "llama",
    "d_model": 4096,
    "embedding_size": 126464,
    "eos_token_id": 126081,
    "include_bias": False,
    "include_qkv_bias": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mask_token_id": 126336,
    "max_sequence_length": 4096,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "pad_token_id": 126081,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "vocab_size": 126464,
    "weight_tying": False,
    "attention_layer_norm": False,
    "input_emb_norm": False,
    "bias_for_layer_norm": False,
    "clip_qkv": None,
    "multi_query_attention": None,
    "model_type": "llada",
    "architectures": ["LLaDAModelLM"],
}


def tiny_original_config(**overrides) -> dict:
    config = dict(
        LLADA_8B_CONFIG,
        d_model=32,
        n_heads=4,
        n_kv_heads=2,
        n_layers=2,
        mlp_hidden_size=64,
        vocab_size=100,
        embedding_size=100,
        max_sequence_length=256,
        mask_token_id=99,
        eos_token_id=1,
        pad_token_id=0,
    )
    config.update(overrides)
    return config


def random_original_weights(config: dict, seed: int = 0) -> dict:
    """Random tensors under the official key names and shapes."""
    generator = torch.Generator().manual_seed(seed)
    d, heads, kv_heads = config["d_model"], config["n_heads"], config["n_kv_heads"]
    head_dim, hidden, vocab = d // heads, config["mlp_hidden_size"], config["embedding_size"]

    def randn(*shape, scale=0.1):
        return torch.randn(*shape, generator=generator) * scale

    weights = {
        "model.transformer.wte.weight": randn(vocab, d, scale=0.5),
        "model.transformer.ln_f.weight": 1 + randn(d, scale=0.1),
    }
    if not config["weight_tying"]:
        weights["model.transformer.ff_out.weight"] = randn(vocab, d)
    for i in range(config["n_layers"]):
        block = f"model.transformer.blocks.{i}."
        weights.update(
            {
                block + "attn_norm.weight": 1 + randn(d, scale=0.1),
                block + "ff_norm.weight": 1 + randn(d, scale=0.1),
                block + "q_proj.weight": randn(d, d),
                block + "k_proj.weight": randn(kv_heads * head_dim, d),
                block + "v_proj.weight": randn(kv_heads * head_dim, d),
                block + "attn_out.weight": randn(d, d),
                block + "ff_proj.weight": randn(hidden, d),
                block + "up_proj.weight": randn(hidden, d),
                block + "ff_out.weight": randn(d, hidden),
            }
        )
    return weights


def write_original_checkpoint(folder: Path, config: dict, weights: dict, num_shards: int = 3) -> Path:
    """An official-layout folder: config.json, `num_shards` safetensors shards and their index."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    names = sorted(weights)
    weight_map = {}
    for shard in range(num_shards):
        file = f"model-{shard + 1:05d}-of-{num_shards:05d}.safetensors"
        part = {name: weights[name] for name in names[shard::num_shards]}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


# ----------------------------------------------------------------------------------------------------------------
# causal LMs (llada/convert_causal.py)


CAUSAL_VOCAB = 96  # the causal LMs' vocabulary; the converted models add the mask token (id 96)
# TINY's size as a causal LM's config (no mask token; BOS 2, EOS 1, no PAD)
CAUSAL_TINY = {name: value for name, value in TINY.items() if name not in ("mask_token_id", "initializer_range")}
CAUSAL_TINY.update(
    vocab_size=CAUSAL_VOCAB, max_position_embeddings=64, bos_token_id=2, eos_token_id=1, pad_token_id=None
)
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
CAUSAL_FAMILIES = {  # each with the options that make it differ from a plain Llama
    "llama": (LlamaConfig, LlamaForCausalLM, dict(attention_bias=True, mlp_bias=True, rope_parameters=LLAMA3_ROPE)),
    "mistral": (MistralConfig, MistralForCausalLM, dict(sliding_window=64)),  # a window as long as the positions
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True)),  # q/k/v biases, no o_proj bias
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(head_dim=16)),  # per-head q/k RMSNorm
}


def plain_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer of 96 tokens with BOS and EOS but neither a mask nor a pad token."""
    vocab = {"<unk>": 0, "</s>": 1, "<s>": 2, **{f"w{i}": i for i in range(3, CAUSAL_VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>", bos_token="<s>")


def causal_lm(family: str, seed: int = 0, **overrides):
    """A tiny causal LM of `family` with every parameter drawn wide (biases and norms included), in eval mode."""
    config_class, model_class, options = CAUSAL_FAMILIES[family]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**CAUSAL_TINY, **options, **overrides})).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    return model


# ----------------------------------------------------------------------------------------------------------------
# console scripts in a process of their own


QUIET = {
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONPATH": str(ROOT),
}


def run_script(module: str, *args, extra_env=None, preexec_fn=None, timeout=300):
    """`python -m module args` in a fresh process, quiet and offline, with this checkout importable."""
    env = {**os.environ, **QUIET, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def train_args(out, *extra):
    """The options of a two-step tiny `llada-train` run into `out`, then `extra`."""
    return ["--output_dir", str(out), "--max_steps", "2", "--num_sample_generations", "0", *TINY_TRAIN_ARGS, *extra]


# ----------------------------------------------------------------------------------------------------------------
# serving: a tiny byte-level model and a server on a free loopback port (needs the `serve` extra and `openai`)


BYTE_EOS, BYTE_PAD, BYTE_MASK = 256, 257, 258  # the byte tokenizer's special ids
NAME = "tiny"


def tiny_byte_model(seed: int = 0, **overrides):
    """`(model, tokenizer)`: a seeded tiny random LLaDA (eval mode) with the byte tokenizer's vocabulary and special
    ids, and that tokenizer (256 positions); keyword arguments override any config field."""
    from llada.training.tokenizers import build_byte_tokenizer

    tokenizer = build_byte_tokenizer(model_max_length=256)
    return tiny_model(seed, **{**vocabulary_of(tokenizer), **overrides}), tokenizer


def save_tiny_byte_model(folder: Path, positions: int = 96) -> Path:
    """A tiny random LLaDA with the byte tokenizer, its generation defaults saved beside it."""
    from llada.training.tokenizers import build_byte_tokenizer

    model, _ = tiny_byte_model(max_position_embeddings=positions, initializer_range=0.2)
    generation = model.generation_config
    generation.max_new_tokens, generation.block_length = 16, 4
    generation.suppress_tokens = list(range(128, 256))  # ASCII text: every streamed prefix decodes whole
    model.save_pretrained(folder)
    build_byte_tokenizer().save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """A uvicorn server for `app` on a free loopback port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.app, self.port = app, free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the test server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs):
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=60, **kwargs)
