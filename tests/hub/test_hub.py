"""Publishing to the Hub, against the loopback Hub server of tests/hub_server.py.

`huggingface_hub` reads HF_ENDPOINT when it is imported, so everything that talks to the server runs in a fresh
subprocess with HF_ENDPOINT, HF_TOKEN and a private HF_HOME in its environment. Loads run with the `llada` package
made unimportable, as on a user's machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, TINY_RUN_ARGS, tiny_byte_model
from hub_server import LoopbackHub
from llada import LLaDAForMaskedDiffusion
from llada.hub import HubPushError, check_loadable, check_model_dir, save_for_hub, write_model_card
from llada.saved_files import HUB_CODE_FILES
from llada.training.tokenizers import build_byte_tokenizer

TOKEN = "hf_loopbackSecretToken0123456789"
HUB_FILES = set(HUB_CODE_FILES)
EXPECTED_FILES = HUB_FILES | {
    ".gitattributes",  # written by the Hub itself when the repo is created
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "README.md",
}
PROMPT = "To be"
GENERATE = dict(max_new_tokens=8, steps=4, temperature=0.7, seed=3)

LOAD_AND_GENERATE = r"""
import json, sys
sys.modules["llada"] = None  # the package is not installed on a user's machine: only the Hub files exist
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

results = []
for repo_id, revision in json.loads(sys.argv[1]):
    config = AutoConfig.from_pretrained(repo_id, revision=revision, trust_remote_code=True)
    model = AutoModel.from_pretrained(repo_id, revision=revision, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision, trust_remote_code=True)
    inputs = tokenizer([sys.argv[2]], return_tensors="pt")
    out = model.diffusion_generate(**inputs, **json.loads(sys.argv[3]))
    results.append({"config": type(config).__name__, "model": type(model).__name__,
                    "module": type(model).__module__, "tokens": out[0].tolist(),
                    "weight_sum": float(sum(p.double().sum() for p in model.parameters()))})
print("RESULT " + json.dumps(results))
"""


# ------------------------------------------------------------------------------------------------------------------
# helpers


def make_model_dir(path: Path, seed: int = 0) -> Path:
    """A tiny LLaDA model with a byte-level tokenizer, saved as by `save_pretrained`."""
    model, tokenizer = tiny_byte_model(seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@torch.no_grad()
def local_generation(model_dir: Path) -> dict:
    """What the loaded repo must reproduce: tokens with the same seed and the weight sum, from the local folder."""
    model = LLaDAForMaskedDiffusion.from_pretrained(model_dir).eval()
    tokenizer = build_byte_tokenizer(model_max_length=256)
    out = model.diffusion_generate(**tokenizer([PROMPT], return_tensors="pt"), **GENERATE)
    return {"tokens": out[0].tolist(), "weight_sum": float(sum(p.double().sum() for p in model.parameters()))}


def client_env(hub: LoopbackHub, home: Path, token=TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub.url if hub else "http://127.0.0.1:9",
        HF_HOME=str(home / "hf_home"),
        TMPDIR=str(home / "tmp"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT),
    )
    if token is not None:
        env["HF_TOKEN"] = token
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def run(args: list, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def llada_push(env: dict, *args) -> subprocess.CompletedProcess:
    return run(["-m", "llada.cli.push", *args], env)


def load_from_hub(env: dict, revisions: list) -> list:
    """Loads each `(repo_id, revision)` by repo id in one fresh process and generates with the test settings."""
    result = run(["-c", LOAD_AND_GENERATE, json.dumps(revisions), PROMPT, json.dumps(GENERATE)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def assert_no_secret(*roots: Path, files: dict = None) -> None:
    """The token appears in no file under `roots` nor in the `{path: bytes}` of a repo."""
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), f"the token was written to {path}"
    for path, content in (files or {}).items():
        assert TOKEN.encode() not in content, f"the token was uploaded in {path}"


@pytest.fixture(scope="module")
def hub():
    with LoopbackHub(token=TOKEN, user="tester") as server:
        yield server


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def pushed(hub, model_dir, tmp_path_factory):
    """`llada-push` of the tiny model to tester/tiny-llada: (completed process, client folder)."""
    home = tmp_path_factory.mktemp("client")
    result = llada_push(
        client_env(hub, home),
        "--model_dir",
        str(model_dir),
        "--repo_id",
        "tester/tiny-llada",
        "--dataset",
        "tiny_shakespeare",
    )
    return result, home


@pytest.fixture(scope="module")
def native_pushed(hub, model_dir, tmp_path_factory):
    """`model.push_to_hub` + `tokenizer.push_to_hub` to tester/native, as for any transformers model."""
    script = (
        "import sys, llada; from transformers import AutoModel, AutoTokenizer; "
        "m = AutoModel.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1]); "
        "m.push_to_hub('tester/native'); t.push_to_hub('tester/native')"
    )
    return run(["-c", script, str(model_dir)], client_env(hub, tmp_path_factory.mktemp("native")))


# ------------------------------------------------------------------------------------------------------------------
# the round trip


def test_push_uploads_exactly_the_model_files_in_one_commit(hub, pushed, model_dir):
    result, home = pushed
    assert result.returncode == 0, result.stderr[-3000:]
    files = hub.files_at("tester/tiny-llada")
    assert set(files) == EXPECTED_FILES
    assert hub.commit_titles("tester/tiny-llada") == ["Upload LLaDA model", "initial commit"]
    config = json.loads(files["config.json"])
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForMaskedLM"}
    for name in HUB_FILES:  # the code uploaded is the package's own
        assert files[name] == (ROOT / "llada" / name).read_bytes()
    card = files["README.md"].decode()
    assert "library_name: transformers" in card and "- masked-diffusion" in card and "- tiny_shakespeare" in card
    assert 'AutoModel.from_pretrained("tester/tiny-llada", trust_remote_code=True)' in card
    assert "diffusion_generate" in card
    tokenizer_config = json.loads(files["tokenizer_config.json"])  # loadable by transformers 4.x too
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast" and "is_local" not in tokenizer_config
    assert_no_secret(home, model_dir, files=files)


def test_pushed_repos_load_by_repo_id_and_generate_like_the_local_model(hub, pushed, native_pushed, model_dir):
    result, home = pushed
    assert result.returncode == 0 and native_pushed.returncode == 0, result.stderr[-3000:]
    revisions = [["tester/tiny-llada", None], ["tester/native", None]]  # llada-push, model/tokenizer.push_to_hub
    expected = local_generation(model_dir)
    for loaded in load_from_hub(client_env(hub, home), revisions):
        assert loaded["config"] == "LLaDAConfig" and loaded["model"] == "LLaDAForMaskedDiffusion"
        assert loaded["module"].startswith("transformers_modules.")
        assert loaded["tokens"] == expected["tokens"]
        assert loaded["weight_sum"] == pytest.approx(expected["weight_sum"], abs=1e-9)
    assert_no_secret(home)


def test_second_push_is_a_second_commit_and_the_first_revision_keeps_the_old_weights(
    hub, pushed, in_process_client, tmp_path
):
    result, home = pushed
    assert result.returncode == 0, result.stderr[-3000:]
    first = hub.repos["tester/tiny-llada"].branches["main"]
    retrained = make_model_dir(tmp_path / "retrained", seed=1)
    assert (
        in_process_client(
            [
                "--model_dir",
                str(retrained),
                "--repo_id",
                "tester/tiny-llada",
                "--commit_message",
                "Retrained",
                "--skip_check",
            ]
        )
        == 0
    )
    assert hub.commit_titles("tester/tiny-llada")[:2] == ["Retrained", "Upload LLaDA model"]
    old, new = load_from_hub(client_env(hub, tmp_path), [["tester/tiny-llada", first], ["tester/tiny-llada", "main"]])
    assert old["weight_sum"] != new["weight_sum"]
    assert new["weight_sum"] == pytest.approx(local_generation(retrained)["weight_sum"], abs=1e-9)
    assert (
        hub.files_at("tester/tiny-llada", first)["model.safetensors"]
        != hub.files_at("tester/tiny-llada")["model.safetensors"]
    )


def test_model_and_tokenizer_push_to_hub_work_as_for_any_model(hub, native_pushed):
    assert native_pushed.returncode == 0, native_pushed.stderr[-3000:]
    files = set(hub.files_at("tester/native"))
    assert HUB_FILES | {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
    # (loading is checked together with the llada-push repo, in one process)
    assert [t for t in hub.commit_titles("tester/native") if t != "initial commit"] == [
        "Upload tokenizer",
        "Upload LLaDAForMaskedDiffusion",
    ]


# ------------------------------------------------------------------------------------------------------------------
# failures


def test_server_down_gives_a_clear_error_and_non_zero_exit(model_dir, tmp_path):
    result = llada_push(client_env(None, tmp_path), "--model_dir", str(model_dir), "--repo_id", "tester/x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "llada-push: error:" in result.stderr and "http://127.0.0.1:9" in result.stderr
    assert "whoami" in result.stderr  # which endpoint failed


@pytest.fixture
def in_process_client(hub, monkeypatch, tmp_path):
    """`llada-push`'s main() in this process, talking to the loopback Hub (HfApi reads the endpoint constant when it is
    created) with no token file and HF_TOKEN set; a test deletes or changes HF_TOKEN as it needs."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token_file"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    from llada.cli.push import main

    return main


def test_missing_token_says_how_to_log_in(in_process_client, hub, model_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert in_process_client(["--model_dir", str(model_dir), "--repo_id", "tester/x"]) == 1
    error = capsys.readouterr().err
    assert "No Hugging Face token" in error and "hf auth login" in error and "HF_TOKEN" in error
    assert "tester/x" not in hub.repos


def test_invalid_token_is_refused_clearly(in_process_client, hub, model_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert in_process_client(["--model_dir", str(model_dir), "--repo_id", "tester/x"]) == 1
    error = capsys.readouterr().err
    assert "refused the token" in error and "hf auth login" in error and "Traceback" not in error


def test_server_dying_mid_commit_leaves_no_partial_repo(in_process_client, hub, model_dir, capsys):
    hub.fail_commits = 1
    try:
        code = in_process_client(["--model_dir", str(model_dir), "--repo_id", "tester/broken", "--skip_check"])
    finally:
        hub.fail_commits = 0
    assert code == 1
    error = capsys.readouterr().err
    assert "while uploading" in error and "/api/models/tester/broken/commit/main" in error
    assert set(hub.files_at("tester/broken")) == {".gitattributes"}  # the repo exists, with nothing of the push
    assert hub.commit_titles("tester/broken") == ["initial commit"]


def test_private_repo_and_branch_revision(in_process_client, hub, model_dir, capsys):
    args = ["--model_dir", str(model_dir), "--repo_id", "tester/private-llada", "--skip_check"]
    assert in_process_client([*args, "--private", "--revision", "dev", "--commit_message", "To a branch"]) == 0
    assert "Pushed to tester/private-llada" in capsys.readouterr().out
    repo = hub.repos["tester/private-llada"]
    assert repo.private and set(repo.branches) == {"main", "dev"}
    assert hub.commit_titles("tester/private-llada", "dev")[0] == "To a branch"
    assert set(hub.files_at("tester/private-llada", "main")) == {".gitattributes"}
    assert 'revision="dev"' in hub.files_at("tester/private-llada", "dev")["README.md"].decode()


def test_prune_leaves_exactly_the_model_files(in_process_client, hub, model_dir):
    repo = hub.create_repo("tester/after-training")
    hub.commit(
        repo,
        "main",
        {"summary": "Training in progress, step 2"},
        [
            ("file", {"path": name, "content": "eA=="})
            for name in ("training_args.bin", "runs/events.out", "config.json")
        ],
    )
    args = ["--model_dir", str(model_dir), "--repo_id", "tester/after-training", "--skip_check"]
    assert in_process_client(args) == 0
    assert "training_args.bin" in hub.files_at("tester/after-training")  # kept by default
    assert in_process_client([*args, "--prune"]) == 0
    assert set(hub.files_at("tester/after-training")) == EXPECTED_FILES


def test_model_dir_errors_name_what_is_missing(tmp_path, model_dir):
    with pytest.raises(ValueError, match="existing folder"):
        check_model_dir(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no config.json"):
        check_model_dir(str(tmp_path))
    no_tokenizer = tmp_path / "no_tokenizer"
    LLaDAForMaskedDiffusion.from_pretrained(model_dir).save_pretrained(no_tokenizer)
    with pytest.raises(ValueError, match="no tokenizer"):
        check_model_dir(str(no_tokenizer))
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="'llama' model"):
        check_model_dir(str(other))
    trainer_dir = tmp_path / "run"
    (trainer_dir / "checkpoint-20").mkdir(parents=True)
    with pytest.raises(ValueError, match="checkpoint-20"):
        check_model_dir(str(trainer_dir))


def test_model_card_reports_training_figures_and_eval_results(model_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "trainer_state.json").write_text(
        json.dumps(
            {
                "global_step": 1500,
                "epoch": 3.0,
                "log_history": [{"step": 1500, "eval_loss": 1.6, "eval_perplexity_bound": 4.953}],
            }
        )
    )
    (run_dir / "all_results.json").write_text(
        json.dumps({"train_loss": 1.8, "train_runtime": 612.3, "train_samples_per_second": 9.1})
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "config.json").write_text((model_dir / "config.json").read_text())
    card = Path(write_model_card(str(run_dir), str(staging), "me/llada-x", datasets=["tiny_shakespeare"])).read_text()
    assert "| training steps | 1500 |" in card and "| mean training loss | 1.8 |" in card
    assert "| eval perplexity bound (exp ELBO) | 4.953 |" in card and "samples_per_second" not in card
    assert "model-index:" in card and "value: 4.953" in card and "- tiny_shakespeare" in card
    assert "bidirectional Transformer" in card and "block size" not in card


def test_model_card_of_a_block_model_says_so(model_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "eval_results.json").write_text(json.dumps({"eval_loss": 4.9, "eval_in_order_perplexity": 119.4}))
    staging = tmp_path / "staging"
    staging.mkdir()
    config = json.loads((model_dir / "config.json").read_text())
    (staging / "config.json").write_text(json.dumps({**config, "block_size": 2}))
    card = Path(write_model_card(str(run_dir), str(staging), "me/llada-block")).read_text()
    assert "block diffusion" in card and "blocks of 2 tokens" in card and "block size 2" in card
    assert "| eval in-order perplexity (exact, decoding in order) | 119.4 |" in card


CARD_MODELS = {
    "full": (dict(), dict(remasking="low_confidence", temperature=1.0, top_p=0.8, block_length=8, steps=32)),
    "block": (dict(block_size=2), dict(remasking="random", temperature=0.8, top_p=0.9)),
}


@pytest.mark.parametrize("kind", sorted(CARD_MODELS))
def test_model_card_describes_the_model_it_publishes(kind, tmp_path):
    from llada.generation_config_llada import LLaDAGenerationConfig

    config_overrides, sampling = CARD_MODELS[kind]
    model, tokenizer = tiny_byte_model(**config_overrides)
    model.generation_config = LLaDAGenerationConfig(**sampling, max_new_tokens=64)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    staging = tmp_path / "staging"
    save_for_hub(str(tmp_path / "model"), str(staging))
    card = Path(write_model_card(str(tmp_path / "model"), str(staging), "me/llada-card")).read_text()

    kind_row = (
        "| kind | masked diffusion with full attention (LLaDA) |"
        if kind == "full"
        else "| kind | block diffusion, blocks of 2 tokens |"
    )
    assert kind_row in card
    assert f"| parameters | {model.num_parameters() / 1e3:.3g}K ({model.num_parameters():,}) |" in card
    assert (
        "| tokenizer | bytes: one token per UTF-8 byte and 3 special tokens, 259 in all; mask token "
        "`<|mdm_mask|>` |" in card
    )
    if kind == "full":
        assert "| `remasking` | low_confidence (the most probable predictions first) |" in card
        assert "| `temperature` | 1.0 |" in card and "| `top_p` | 0.8 |" in card
        assert "| `block_length` | 8 |" in card and "| `steps` | 32 |" in card
    else:
        assert "| `remasking` | random (positions in random order) |" in card
        assert "| `temperature` | 0.8 |" in card and "| `top_p` | 0.9 |" in card
        assert "| `block_length` | 2 (the block size) |" in card
        assert "| `steps` | one token per step (`max_new_tokens`) |" in card
    assert 'AutoModel.from_pretrained("me/llada-card", trust_remote_code=True)' in card
    assert "diffusion_generate(**inputs, max_new_tokens=64" in card
    # the card's snippet runs as written, with the local folder in place of the repo id
    snippet = card.split("```python\n")[1].split("```")[0].replace('"me/llada-card"', repr(str(staging)))
    exec(compile(snippet, "README.md", "exec"), {})


def test_reload_check_refuses_a_folder_that_does_not_load(model_dir, tmp_path):
    staging = tmp_path / "staging"
    files = save_for_hub(str(model_dir), str(staging))
    assert set(files) == EXPECTED_FILES - {".gitattributes", "README.md"}
    write_model_card(str(model_dir), str(staging), "tester/x")
    assert_no_secret(staging)
    with open(staging / "modeling_llada.py", "a") as handle:
        handle.write("\nraise RuntimeError('broken modeling file')\n")
    with pytest.raises(HubPushError, match="broken modeling file"):
        check_loadable(str(staging))


# ------------------------------------------------------------------------------------------------------------------
# pushes of a training run

TINY_TRAINING = [*TINY_RUN_ARGS, "--eval_strategy", "no"]


def test_code_files_callback_writes_the_model_code_only_for_remote_code_models(model_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from llada.training.hub_callback import write_code_files

    model = LLaDAForMaskedDiffusion.from_pretrained(model_dir)
    assert write_code_files(torch.compile(model), str(tmp_path / "llada")) == sorted(HUB_FILES)
    for name in HUB_FILES:
        assert (tmp_path / "llada" / name).read_bytes() == (ROOT / "llada" / name).read_bytes()
    baseline = LlamaForCausalLM(
        LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=50)
    )
    assert write_code_files(baseline, str(tmp_path / "baseline")) == []  # transformers' own model: no code


def test_llada_train_every_save_pushes_loadable_revisions(hub, tmp_path):
    out = tmp_path / "run"
    # The token given on the command line must reach the Hub but no file (training_args.bin is pickled).
    env = client_env(hub, tmp_path, token=None)
    result = run(
        [
            "-m",
            "llada.cli.train",
            "--output_dir",
            str(out),
            "--max_steps",
            "4",
            "--save_steps",
            "2",
            "--push_to_hub",
            "--hub_model_id",
            "tester/trained",
            "--hub_strategy",
            "every_save",
            "--hub_token",
            TOKEN,
            "--hub_always_push",
            "true",
            *TINY_TRAINING,
        ],
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    repo = hub.repos["tester/trained"]
    commits = [c for c in repo.history(repo.resolve("main")) if c.parent is not None]
    titles = [c.title for c in commits]
    assert "Training in progress, step 2" in titles and "Training in progress, step 4" in titles
    for commit in commits:  # each revision is complete: code, config with auto_map, weights, tokenizer
        assert HUB_FILES | {"config.json", "model.safetensors", "tokenizer.json"} <= set(commit.files), commit.title
        assert "auto_map" in json.loads(commit.files["config.json"])
        assert_no_secret(files=commit.files)
    loaded = load_from_hub(env, [["tester/trained", c.oid] for c in commits])
    assert all(entry["model"] == "LLaDAForMaskedDiffusion" for entry in loaded)
    assert len({entry["weight_sum"] for entry in loaded}) >= 2  # the revisions hold different weights
    assert_no_secret(out, tmp_path / "hf_home")


def test_merge_lora_pushes_the_adapter_merged_into_its_base(in_process_client, hub, model_dir, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from llada.training.lora import merge_lora_adapter

    model = LLaDAForMaskedDiffusion.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a trained adapter: merging changes the weights
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(adapter)

    args = ["--model_dir", str(adapter), "--repo_id", "tester/merged-lora", "--skip_check"]
    assert in_process_client(args) == 2  # an adapter folder is not a model
    assert "holds a LoRA adapter, not a full model: add --merge_lora" in capsys.readouterr().err
    assert in_process_client(["--model_dir", str(model_dir), "--repo_id", "tester/x", "--merge_lora"]) == 2
    assert "holds no LoRA adapter" in capsys.readouterr().err

    assert in_process_client([*args, "--merge_lora"]) == 0
    pushed = hub.files_at("tester/merged-lora")
    assert set(pushed) == EXPECTED_FILES
    merged = Path(merge_lora_adapter(adapter, tmp_path / "merged"))
    assert pushed["model.safetensors"] == (merged / "model.safetensors").read_bytes()
    assert pushed["model.safetensors"] != (model_dir / "model.safetensors").read_bytes()
