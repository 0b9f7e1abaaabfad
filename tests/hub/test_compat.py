"""A repo saved for the Hub loads and generates the same on the newest transformers 4.x as on 5.x.

The folder `llada-push` would upload is written with this environment (transformers 5), then loaded through
`trust_remote_code` (the `llada` package unimportable) twice: by this environment's interpreter and by the one of
`.venv-compat` (transformers 4.57, made by `scripts/setup_compat_venv.sh`). Both run the same script; logits must
agree to float tolerance and generated tokens exactly.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, tiny_byte_model
from hub_server import LoopbackHub
from llada.hub import save_for_hub
from llada.saved_files import HUB_CODE_FILES

COMPAT_PYTHON = ROOT / ".venv-compat" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not COMPAT_PYTHON.exists(),
    reason="no .venv-compat (transformers 4.57): create it with `bash scripts/setup_compat_venv.sh`",
)

USE_THE_REPO = r"""
import json, sys
sys.modules["llada"] = None  # only the files of the folder exist, as on a user's machine
import torch, transformers
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

folder = sys.argv[1]
report = {"transformers": transformers.__version__}
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
tokenizer.padding_side = "left"
inputs = tokenizer(["To be, or not", "Hi"], return_tensors="pt", padding=True)
report["input_keys"] = sorted(inputs.keys())
report["input_ids"] = inputs["input_ids"].tolist()
report["config"] = type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__name__
report["masked_lm"] = type(AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)).__name__
for implementation in ("eager", "sdpa"):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation=implementation).eval()
    with torch.no_grad():
        report[f"logits_{implementation}"] = model(**inputs).logits.tolist()
report["generation_config"] = {k: getattr(model.generation_config, k, None)
                               for k in ("mask_token_id", "eos_token_id", "pad_token_id", "max_new_tokens", "steps",
                                         "block_length")}
report["greedy"] = model.diffusion_generate(**inputs, max_new_tokens=8, steps=8, block_length=4).tolist()
report["sampled"] = model.diffusion_generate(**inputs, max_new_tokens=8, steps=4, temperature=0.8, top_k=20,
                                             remasking="random", seed=3).tolist()
report["generate"] = model.generate(**inputs, max_new_tokens=4, steps=4).tolist()
report["saved_defaults"] = model.diffusion_generate(**inputs).tolist()
for cache in ("prefix", "dual"):  # key/value caches go through the model's cache code path
    report[f"{cache}_cache"] = model.diffusion_generate(**inputs, max_new_tokens=8, steps=8, block_length=4,
                                                         use_cache=cache, threshold=0.9).tolist()
report["processors"] = model.diffusion_generate(**inputs, max_new_tokens=8, steps=8, repetition_penalty=1.5,
                                                suppress_tokens=[101], min_p=0.1, temperature=0.8, seed=3).tolist()
try:  # a block diffusion model refuses infilling (it sees only earlier blocks), on both versions alike
    report["infill"] = model.infill([[84, 111], [72]], [[32, 98, 101], [33]], length=4, steps=4).tolist()
except ValueError as error:
    report["infill"] = str(error)
try:
    model.diffusion_generate(**inputs, num_beams=2)
except ValueError as error:  # refused, with the same message on both versions
    report["refused"] = str(error)
print("REPORT " + json.dumps(report))
"""


def use_the_repo(pythons: list, folder: Path) -> list:
    """Runs USE_THE_REPO on `folder` with each interpreter (at the same time) and returns their reports."""
    processes = [
        subprocess.Popen(
            [str(python), "-c", USE_THE_REPO, str(folder)],
            cwd=folder,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for python in pythons
    ]
    reports = []
    for python, process in zip(pythons, processes):
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{python}:\n{stderr[-4000:]}"
        line = next(line for line in stdout.splitlines() if line.startswith("REPORT "))
        reports.append(json.loads(line[len("REPORT ") :]))
    return reports


def saved_for_hub(tmp_path_factory, **config):
    """What `llada-push` uploads (minus the card), for a tiny model with a byte-level tokenizer."""
    source, staging = tmp_path_factory.mktemp("model"), tmp_path_factory.mktemp("staging")
    model, tokenizer = tiny_byte_model(**config)
    model.generation_config.update(max_new_tokens=6, steps=3, block_length=2)  # saved defaults must be used
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    save_for_hub(str(source), str(staging))
    return staging


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    return saved_for_hub(tmp_path_factory)


# what both transformers versions must sample alike, token for token
SAMPLED_OUTPUTS = (
    "greedy",
    "sampled",
    "generate",
    "saved_defaults",
    "prefix_cache",
    "dual_cache",
    "processors",
    "infill",
)


def assert_same_logits(current: dict, compat: dict) -> None:
    """The logits of both attention implementations agree across the two transformers versions."""
    for implementation in ("eager", "sdpa"):
        torch.testing.assert_close(
            torch.tensor(compat[f"logits_{implementation}"]),
            torch.tensor(current[f"logits_{implementation}"]),
            rtol=1e-5,
            atol=1e-5,
        )


def test_transformers_4_loads_and_generates_like_transformers_5(hub_folder):
    assert set(HUB_CODE_FILES) <= {p.name for p in hub_folder.iterdir()}  # every Hub module, sampler split included
    current, compat = use_the_repo([sys.executable, COMPAT_PYTHON], hub_folder)
    assert current["transformers"].startswith("5.") and compat["transformers"].startswith("4.57")
    assert compat["config"] == current["config"] == "LLaDAConfig"
    assert compat["masked_lm"] == "LLaDAForMaskedDiffusion"
    assert compat["input_keys"] == current["input_keys"] == ["attention_mask", "input_ids"]
    assert compat["input_ids"] == current["input_ids"]
    assert_same_logits(current, compat)
    assert compat["generation_config"] == current["generation_config"]
    assert len(current["saved_defaults"][0]) == len(current["input_ids"][0]) + 6
    for key in (*SAMPLED_OUTPUTS, "refused"):
        assert compat[key] == current[key], key
    assert "`num_beams=2` has no meaning for diffusion sampling" in current["refused"]


@pytest.fixture(scope="module")
def block_hub_folder(tmp_path_factory):
    """The same for a block diffusion model: block-causal attention and its exact cache."""
    return saved_for_hub(tmp_path_factory, block_size=4, initializer_range=0.2)


def test_transformers_4_runs_a_block_model_like_transformers_5(block_hub_folder):
    current, compat = use_the_repo([sys.executable, COMPAT_PYTHON], block_hub_folder)
    assert compat["transformers"].startswith("4.57")
    assert_same_logits(current, compat)
    for key in SAMPLED_OUTPUTS:
        assert compat[key] == current[key], key
    assert "cannot fill mask tokens inside a prompt" in current["infill"]


LOAD_BY_REPO_ID = r"""
import sys
sys.modules["llada"] = None
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained("tester/tiny", trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained("tester/tiny", trust_remote_code=True)
print("TOKENS", model.diffusion_generate(**tokenizer(["Hi"], return_tensors="pt"), max_new_tokens=4, steps=4).tolist())
"""


def test_transformers_4_loads_the_repo_by_id_from_a_hub(hub_folder, tmp_path):
    """Through the loopback Hub: transformers 4.57 with its own huggingface_hub (0.x) downloads and generates."""
    with LoopbackHub(token="hf_compat") as hub:
        repo = hub.create_repo("tester/tiny")
        hub.commit(
            repo,
            "main",
            {"summary": "upload"},
            [
                ("file", {"path": p.name, "content": base64.b64encode(p.read_bytes()).decode()})
                for p in hub_folder.iterdir()
                if p.is_file()
            ],
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
        result = subprocess.run(
            [str(COMPAT_PYTHON), "-c", LOAD_BY_REPO_ID],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert ("GET", "/tester/tiny/resolve/main/model.safetensors") in hub.requests
    tokens = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("TOKENS "))[7:])
    assert len(tokens[0]) == 2 + 4
