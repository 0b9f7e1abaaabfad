"""Publishing a trained model to the Hugging Face Hub: save, reload check, model card, one commit.

[`push_to_hub`] takes a model folder (a `save_pretrained` folder or a Trainer output dir) and

1. loads the model and tokenizer and `save_pretrained`s both into a temporary folder, so the upload holds the
   current Hub code files, `config.json` with its `auto_map` and `generation_config.json`;
2. reloads that folder in a fresh Python process through `trust_remote_code` (with the `llada` package made
   unimportable, as on a user's machine) and runs a forward pass and a short `diffusion_generate`; a failure stops
   the push and shows why;
3. writes a model card (`README.md`): what the model is (full attention or block diffusion, parameters,
   tokenizer), how to load it and generate, its sampling defaults (`generation_config.json`), and the training
   figures and evaluation results found in the folder (`trainer_state.json`, `all_results.json`,
   `eval_results.json`);
4. uploads exactly those files in one commit: nothing of the training state (optimizer, `training_args.bin`, ...).

A folder whose lock a live training run holds (`llada.training.output_lock`) is refused: its files may change under
the upload. The token is handed to `huggingface_hub` only; it is never written to any file.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .saved_files import HUB_CODE_FILES, TOKENIZER_FILES, make_tokenizer_config_portable
from .training.output_lock import check_not_being_written

MODEL_FILES = ("config.json", "generation_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json")
CARD_FILE = "README.md"
KEPT_HUB_FILES = (".gitattributes",)  # the Hub's own file: never pruned
LOGIN_HELP = "Log in with `hf auth login`, or set the HF_TOKEN environment variable, or pass --token."


class HubPushError(RuntimeError):
    """A push that could not be done: no token, the Hub unreachable or refusing, or the reload check failing."""


def push_to_hub(
    model_dir: str,
    repo_id: str,
    *,
    private: Optional[bool] = None,
    revision: Optional[str] = None,
    commit_message: Optional[str] = None,
    token: Optional[str] = None,
    datasets: Optional[list] = None,
    check: bool = True,
    prune: bool = False,
):
    r"""
    Uploads the LLaDA model in `model_dir` with its tokenizer, code, generation config and a model card to the Hub
    repo `repo_id`, in one commit.

    Args:
        model_dir (`str`): a folder with a LLaDA `config.json`, weights and tokenizer files (a `save_pretrained`
            folder or a Trainer `output_dir`).
        repo_id (`str`): `"namespace/name"` of the model repo; created when missing.
        private (`bool`, *optional*): visibility of a newly created repo (an existing repo keeps its own).
        revision (`str`, *optional*): branch to commit to (created from `main` when missing); default `main`.
        commit_message (`str`, *optional*): default "Upload LLaDA model".
        token (`str`, *optional*): a Hub token with write access; default: `HF_TOKEN` or the `hf auth login` one.
        datasets (`list[str]`, *optional*): Hub dataset ids the model was trained on, for the model card.
        check (`bool`, defaults to `True`): run the fresh-process reload check before uploading.
        prune (`bool`, defaults to `False`): delete, in the same commit, every other file of the repo at that
            revision (files of earlier Trainer pushes, say), so that it holds exactly the uploaded files.

    Returns:
        `huggingface_hub.CommitInfo` of the commit (its `oid` is the new revision).

    Raises:
        ValueError: `model_dir` does not hold a LLaDA model with a tokenizer, a training run still holds its lock
            (`llada.training.output_lock`), or `repo_id` is malformed.
        HubPushError: no token, the Hub unreachable or answering with an error, or the reload check failed.
    """
    check_model_dir(model_dir)
    check_not_being_written(model_dir)  # a training run still writing there: its files may change under the upload
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"`repo_id` must look like 'namespace/name', got {repo_id!r}.")
    api, user = _logged_in_api(_resolve_token(token))  # fail fast: before the slow preparation
    with tempfile.TemporaryDirectory(prefix="llada-push-") as staging:
        files = save_for_hub(model_dir, staging)
        if check:
            check_loadable(staging)
        write_model_card(model_dir, staging, repo_id, revision=revision, datasets=datasets)
        files.append(CARD_FILE)
        return _upload(
            api,
            user,
            staging,
            sorted(files),
            repo_id,
            private,
            revision,
            commit_message or "Upload LLaDA model",
            prune=prune,
        )


# --------------------------------------------------------------------------------------------------------------
# 1. the folder to upload


def check_model_dir(model_dir: str) -> None:
    """Raises a `ValueError` saying what is missing unless `model_dir` holds a LLaDA config, weights, a tokenizer."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ValueError(f"`model_dir` must be an existing folder, got {str(model_dir)!r}.")
    config_path = folder / "config.json"
    hint = _checkpoint_hint(folder)
    if not config_path.is_file():
        raise ValueError(f"`model_dir` {str(folder)!r} has no config.json: it is not a saved model.{hint}")
    model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    if model_type != "llada":
        raise ValueError(f"`model_dir` {str(folder)!r} holds a {model_type!r} model, expected a 'llada' one.")
    if not any(
        p.name.endswith(WEIGHT_SUFFIXES) or p.name in ("pytorch_model.bin", "pytorch_model.bin.index.json")
        for p in folder.iterdir()
    ):
        raise ValueError(f"`model_dir` {str(folder)!r} has a config.json but no weights (*.safetensors).{hint}")
    if not ((folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()):
        raise ValueError(
            f"`model_dir` {str(folder)!r} has no tokenizer (tokenizer_config.json / tokenizer.json). Save it next to "
            "the model with `tokenizer.save_pretrained(model_dir)`."
        )


def _checkpoint_hint(folder: Path) -> str:
    checkpoints = sorted(
        folder.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    return f" Its latest checkpoint is {str(checkpoints[-1])!r}: pass that instead." if checkpoints else ""


def save_for_hub(model_dir: str, staging: str) -> list:
    """
    Loads model and tokenizer from `model_dir`, `save_pretrained`s both into `staging` and returns the names of the
    files to upload (config, generation config, weights, Hub code files, tokenizer files).
    """
    from transformers import AutoTokenizer

    from .modeling_llada import LLaDAForMaskedDiffusion

    model = LLaDAForMaskedDiffusion.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    make_tokenizer_config_portable(staging)
    names = sorted(p.name for p in Path(staging).iterdir() if p.is_file())
    files = [
        n
        for n in names
        if n in MODEL_FILES or n in HUB_CODE_FILES or n.endswith(WEIGHT_SUFFIXES) or n in TOKENIZER_FILES
    ]
    missing = [n for n in (*MODEL_FILES, *HUB_CODE_FILES) if n not in files]
    if missing:
        raise HubPushError(
            f"save_pretrained did not write {missing}: the upload would not load with trust_remote_code."
        )
    return files


# --------------------------------------------------------------------------------------------------------------
# 2. the reload check

RELOAD_CHECK = r"""
import json, sys
sys.modules["llada"] = None  # as on a user's machine: only the files of the folder exist
import torch
from transformers import AutoModel, AutoTokenizer

folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)  # reads config.json, whose code is remote
inputs = tokenizer(["Hello"], return_tensors="pt")
with torch.no_grad():
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
assert logits.shape[-1] == model.config.vocab_size, f"logits of shape {tuple(logits.shape)}"
assert bool(torch.isfinite(logits).all()), "the forward pass gave non-finite logits"
out = model.diffusion_generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               max_new_tokens=8, steps=4, seed=0)
assert out.shape == (1, inputs["input_ids"].shape[1] + 8), f"diffusion_generate gave shape {tuple(out.shape)}"
report = {"class": type(model).__name__, "module": type(model).__module__, "sample": out[0].tolist()}
print("RELOAD-CHECK " + json.dumps(report))
"""


def check_loadable(folder: str, timeout: float = 300.0) -> dict:
    """
    Loads `folder` in a fresh Python process through `trust_remote_code` (the `llada` package unimportable) and
    runs a forward pass and an 8-token `diffusion_generate`. Returns what the process reported.

    Raises:
        HubPushError: the process failed; the message ends with its error output.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch
    try:
        result = subprocess.run(
            [sys.executable, "-c", RELOAD_CHECK, os.path.abspath(folder)],
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise HubPushError(
            f"The reload check did not finish within {timeout:.0f} s, so nothing was uploaded."
        ) from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise HubPushError(
            "The saved model does not load and generate through trust_remote_code in a fresh "
            f"process, so nothing was uploaded. The check said:\n{tail}"
        )
    reports = [line for line in result.stdout.splitlines() if line.startswith("RELOAD-CHECK ")]
    return json.loads(reports[-1][len("RELOAD-CHECK ") :])


# --------------------------------------------------------------------------------------------------------------
# 3. the model card


def write_model_card(
    model_dir: str, staging: str, repo_id: str, revision: Optional[str] = None, datasets: Optional[list] = None
) -> str:
    """
    Writes `staging/README.md` for the model saved in `staging` (by [`save_for_hub`]): metadata, what the model is
    (full attention or block diffusion, parameters, architecture, tokenizer), how to load it and generate, its
    sampling defaults (`generation_config.json`), and the training and evaluation figures found in `model_dir`.
    Returns the card's path.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(staging)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    generation = _generation_defaults(folder)
    figures = _training_figures(Path(model_dir))
    name = repo_id.split("/")[-1]
    data = ModelCardData(
        library_name="transformers",
        tags=["masked-diffusion", "llada", "diffusion-language-model", "custom_code"],
        datasets=list(datasets) if datasets else None,
        model_name=name if datasets and "eval_loss" in figures else None,
        eval_results=_eval_results(figures, datasets),
    )
    sections = [
        f"# {name}",
        _description(config, folder),
        _usage(repo_id, revision, config, generation),
        _sampling_defaults(config, generation),
    ]
    if figures:
        sections.append(
            "## Training and evaluation\n\n| figure | value |\n|---|---|\n"
            + "\n".join(f"| {FIGURE_NAMES.get(key, key)} | {_format(value)} |" for key, value in figures.items())
        )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    path = folder / CARD_FILE
    card.save(path)
    return str(path)


def _description(config: dict, folder: Path) -> str:
    """What the model is: its kind, then a table of its size, architecture and tokenizer."""
    dims = ", ".join(
        f"{name} {config[key]}"
        for key, name in (
            ("num_hidden_layers", "layers"),
            ("hidden_size", "hidden size"),
            ("num_attention_heads", "heads"),
            ("num_key_value_heads", "key/value heads"),
            ("intermediate_size", "MLP width"),
            ("vocab_size", "vocabulary"),
            ("max_position_embeddings", "positions"),
            ("mask_token_id", "mask token id"),
            ("block_size", "block size"),
        )
        if config.get(key) is not None
    )
    block_size = config.get("block_size")
    if block_size is not None:
        kind = f"block diffusion, blocks of {block_size} tokens"
        text = (
            "A block diffusion language model in the style of LLaDA and BD3-LM: a Transformer whose attention is "
            f"bidirectional inside blocks of {block_size} tokens and causal between them. Each block is "
            "generated by unmasking a canvas of `[MASK]` tokens given the finished blocks before it, whose keys "
            "and values are cached exactly."
        )
    else:
        kind = "masked diffusion with full attention (LLaDA)"
        text = (
            "A masked-diffusion language model in the style of LLaDA: a bidirectional Transformer (full "
            "attention: every position sees every other) that predicts all masked tokens at once and generates "
            "text by unmasking a canvas of `[MASK]` tokens over a number of steps. It can also fill in masked "
            "middles of a text."
        )
    rows = [("kind", kind)]
    parameters = _parameter_count(folder)
    if parameters is not None:
        rows.append(("parameters", f"{_human(parameters)} ({parameters:,})"))
    rows.append(("architecture", dims))
    tokenizer = _tokenizer_summary(folder)
    if tokenizer is not None:
        rows.append(("tokenizer", tokenizer))
    return text + "\n\n| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def _usage(repo_id: str, revision: Optional[str], config: dict, generation) -> str:
    rev = f', revision="{revision}"' if revision and revision != "main" else ""
    unit = generation.block_length or config.get("block_size") or 1
    new_tokens = -(-64 // unit) * unit  # a multiple of the block length, as diffusion_generate requires
    block_note = f" `max_new_tokens` must be a multiple of the block length ({unit})." if unit > 1 else ""
    return (
        "## Usage\n\nThe model code ships with the weights, so loading needs `trust_remote_code=True` (the tokenizer "
        "is a plain fast tokenizer, but `AutoTokenizer` reads the config to find it):\n\n"
        "```python\nfrom transformers import AutoModel, AutoTokenizer\n\n"
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True{rev}).eval()\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True{rev})\n\n'
        'inputs = tokenizer(["To be, or not"], return_tensors="pt")\n'
        f"out = model.diffusion_generate(**inputs, max_new_tokens={new_tokens}, seed=0)   # the sampling defaults "
        "below\n"
        'print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))\n```\n\n'
        "Every sampling setting can be given per call: fewer `steps` than new tokens commit several tokens per "
        "forward pass (faster, usually worse text), `temperature=0.0` decodes greedily, `remasking` chooses which "
        f"masked positions are committed first.{block_note} `model.generate(...)` takes the same arguments."
    )


REMASKING_NAMES = {
    "low_confidence": "low_confidence (the most probable predictions first)",
    "random": "random (positions in random order)",
    "entropy": "entropy (the lowest-entropy predictions first)",
    "margin": "margin (the largest top-1 minus top-2 probability first)",
    "left_to_right": "left_to_right (in order)",
}


def _sampling_defaults(config: dict, generation) -> str:
    """The sampler settings `diffusion_generate` uses when a call does not give them (`generation_config.json`)."""
    block_size = config.get("block_size")
    block_length = generation.block_length or (
        f"{block_size} (the block size)" if block_size else "the whole generation (one block)"
    )
    rows = [
        ("remasking", REMASKING_NAMES.get(generation.remasking, generation.remasking)),
        ("temperature", "0 (greedy)" if not generation.temperature else generation.temperature),
        ("top_p", generation.top_p if generation.top_p is not None else "none (1.0)"),
        ("block_length", block_length),
        ("steps", generation.steps if generation.steps is not None else "one token per step (`max_new_tokens`)"),
        ("max_new_tokens", generation.max_new_tokens),
    ]
    for key in ("top_k", "threshold", "factor", "entropy_bound", "remask_ratio", "use_cache"):
        if getattr(generation, key, None) is not None:
            rows.append((key, getattr(generation, key)))
    if getattr(generation, "cfg_scale", 0.0):
        rows.append(("cfg_scale", generation.cfg_scale))
    return (
        "## Sampling defaults\n\n`diffusion_generate` uses these settings of `generation_config.json` unless the "
        "call gives others:\n\n| setting | default |\n|---|---|\n"
        + "\n".join(f"| `{key}` | {value} |" for key, value in rows)
    )


def _generation_defaults(folder: Path):
    """The folder's `LLaDAGenerationConfig` (the class's defaults where it has no `generation_config.json`)."""
    from .generation_config_llada import LLaDAGenerationConfig

    if (folder / "generation_config.json").is_file():
        return LLaDAGenerationConfig.from_pretrained(str(folder))
    return LLaDAGenerationConfig()


def _parameter_count(folder: Path) -> Optional[int]:
    """Parameters in the folder's safetensors files, from their headers (nothing is loaded); None without any."""
    files = sorted(folder.glob("*.safetensors"))
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        total += sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    return total if files else None


def _tokenizer_summary(folder: Path) -> Optional[str]:
    """A line on the tokenizer of `tokenizer.json`: bytes, a byte-level BPE or another model, and its size."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    vocab = model.get("vocab") or {}
    pieces = set(vocab) if isinstance(vocab, dict) else {entry[0] for entry in vocab}  # Unigram: [piece, score]
    added = [token["content"] for token in spec.get("added_tokens", []) if token["content"] not in pieces]
    size = len(pieces) + len(added)
    byte_level = "ByteLevel" in json.dumps(spec.get("pre_tokenizer"))
    if model.get("type") == "BPE" and byte_level and not model.get("merges") and len(pieces) == 256:
        summary = f"bytes: one token per UTF-8 byte and {len(added)} special tokens, {size} in all"
    elif model.get("type") == "BPE":
        summary = f"{'byte-level ' if byte_level else ''}BPE, {size:,} tokens"
    else:
        summary = f"{model.get('type', 'a')} tokenizer, {size:,} tokens"
    config_path = folder / "tokenizer_config.json"
    mask = json.loads(config_path.read_text(encoding="utf-8")).get("mask_token") if config_path.is_file() else None
    if isinstance(mask, dict):
        mask = mask.get("content")
    return summary + (f"; mask token `{mask}`" if mask else "")


def _human(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)


FIGURE_NAMES = {
    "global_step": "training steps",
    "epoch": "epochs",
    "train_loss": "mean training loss",
    "train_runtime": "training time (s)",
    "eval_loss": "eval loss (ELBO, nats/token)",
    "eval_perplexity_bound": "eval perplexity bound (exp ELBO)",
    "best_metric": "best eval metric",
    "eval_in_order_perplexity": "eval in-order perplexity (exact, decoding in order)",
}


def _training_figures(folder: Path) -> dict:
    """Figures from a Trainer output dir: `trainer_state.json`, then `all_results.json` / `train_results.json` /
    `eval_results.json` (later files win); per-second rates and FLOs are left out."""
    figures = {}
    state_path = folder / "trainer_state.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        figures.update({key: state.get(key) for key in ("global_step", "epoch", "best_metric")})
        evals = [entry for entry in state.get("log_history", []) if "eval_loss" in entry]
        if evals:
            figures.update({k: v for k, v in evals[-1].items() if k.startswith("eval_")})
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        path = folder / name
        if path.is_file():
            figures.update(json.loads(path.read_text(encoding="utf-8")))
    return {
        key: value
        for key, value in figures.items()
        if isinstance(value, (int, float))
        and not key.endswith(("_per_second", "flos", "_runtime"))
        or key == "train_runtime"
    }


def _eval_results(figures: dict, datasets: Optional[list]):
    """Model-index entries (the Hub's evaluation widget) for the perplexity bound, when the dataset is named."""
    from huggingface_hub import EvalResult

    if not datasets or "eval_loss" not in figures:
        return None
    bound = figures.get("eval_perplexity_bound")
    metric = (
        ("perplexity", "Perplexity bound (exp ELBO)", bound)
        if bound is not None
        else ("loss", "ELBO (nats/token)", figures["eval_loss"])
    )
    return [
        EvalResult(
            task_type="text-generation",
            dataset_type=datasets[0],
            dataset_name=datasets[0],
            metric_type=metric[0],
            metric_name=metric[1],
            metric_value=round(float(metric[2]), 4),
        )
    ]


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------------------
# 4. the upload


def _resolve_token(token: Optional[str]) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubPushError(f"No Hugging Face token found. {LOGIN_HELP}")
    return token


def _logged_in_api(token: str):
    """An `HfApi` holding `token`, and the user the Hub says it belongs to."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with _hub_call("checking the token", api.endpoint):
        user = api.whoami()
    return api, user.get("name")


def _upload(
    api, user: str, staging: str, files: list, repo_id: str, private, revision, commit_message, prune: bool = False
):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    with _hub_call(f"creating the repo {repo_id}", api.endpoint):
        api.create_repo(repo_id, private=private, exist_ok=True)
    if revision and revision != "main":
        with _hub_call(f"creating the branch {revision!r}", api.endpoint):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(staging, name)) for name in files]
    if prune:  # the same commit removes what earlier pushes left (training_args.bin, checkpoints, ...)
        with _hub_call(f"listing the files of {repo_id}", api.endpoint):
            present = api.list_repo_files(repo_id, revision=revision)
        operations += [
            CommitOperationDelete(path_in_repo=path)
            for path in present
            if path not in files and path not in KEPT_HUB_FILES
        ]
    with _hub_call(f"uploading {len(files)} files to {repo_id} as {user}", api.endpoint, commit=True):
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)


@contextmanager
def _hub_call(what: str, endpoint: str, commit: bool = False):
    """Turns the errors of a Hub call into a `HubPushError` saying what was being done and where."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status == 401:
            raise HubPushError(f"The Hub at {endpoint} refused the token while {what} (401). {LOGIN_HELP}") from None
        if status == 403:
            raise HubPushError(
                f"The Hub at {endpoint} refused {what} (403): the token needs write access to "
                "that namespace (a 'write' or fine-grained token)."
            ) from None
        message = str(error).strip().splitlines()
        raise HubPushError(
            f"The Hub at {endpoint} answered with an error while {what}: "
            f"{' '.join(line.strip() for line in message if line.strip())}"
        ) from None
    except OSError as error:
        raise HubPushError(f"Could not reach the Hub at {endpoint} while {what}: {error}") from None
    except Exception as error:  # the HTTP client's transport errors (connection refused, dropped)
        request = _request_of(error)
        if request is None:
            raise
        outcome = (
            " A Hub commit lands entirely or not at all: the repo's history shows whether it did." if commit else ""
        )
        raise HubPushError(
            f"The connection to the Hub at {endpoint} failed while {what} ({request}): "
            f"{type(error).__name__}: {error}.{outcome}"
        ) from None


def _request_of(error: Exception) -> Optional[str]:
    """`"METHOD URL"` of the request behind a transport error of the HTTP client, when it has one."""
    try:
        request = error.request  # httpx-style errors carry their request
        return f"{request.method} {request.url}"
    except Exception:
        return None


__all__ = [
    "HubPushError",
    "check_loadable",
    "check_model_dir",
    "push_to_hub",
    "save_for_hub",
    "write_model_card",
]
