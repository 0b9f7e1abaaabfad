"""The Hub files stay self-contained, and a saved model (a block diffusion one too) loads through trust_remote_code
in a fresh process."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

import llada
from helpers import random_ids, tiny_model
from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.saved_files import HUB_CODE_FILES

PACKAGE = Path(llada.__file__).parent
HUB_FILES = sorted(PACKAGE.glob("*_llada.py"))
ALLOWED_ROOTS = {
    "torch",
    "transformers",
    "math",
    "dataclasses",
    "typing",
    "warnings",
    "functools",
    "collections",
    "contextlib",
    "enum",
    "itertools",
    "copy",
    "inspect",
    "abc",
    "__future__",
    "numbers",
    "types",
    "sys",
    "difflib",
    "os",
}


def test_hub_file_set():
    assert [f.name for f in HUB_FILES] == [
        "cache_llada.py",
        "checks_llada.py",
        "configuration_llada.py",
        "diffusion_llada.py",
        "generation_config_llada.py",
        "generation_llada.py",
        "masks_llada.py",
        "modeling_llada.py",
        "prepare_llada.py",
        "processors_llada.py",
        "rows_llada.py",
        "sampling_llada.py",
    ]
    assert tuple(f.name for f in HUB_FILES) == HUB_CODE_FILES  # the one list that saving, pushing and converting use


def test_the_model_module_imports_every_other_hub_file_itself():
    """transformers 4.x copies, from a local folder, only the relative imports of the model's own module."""
    from transformers.dynamic_module_utils import get_relative_imports

    direct = set(get_relative_imports(str(PACKAGE / "modeling_llada.py")))
    assert direct == {f.stem for f in HUB_FILES} - {"modeling_llada"}


@pytest.mark.parametrize("path", HUB_FILES, ids=lambda p: p.name)
def test_hub_file_imports_only_what_trust_remote_code_can_resolve(path):
    tree = ast.parse(path.read_text())
    siblings = {f.stem for f in HUB_FILES}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1 and node.module in siblings, f"{path.name}:{node.lineno} relative import"
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_ROOTS, f"{path.name}:{node.lineno} imports {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in ALLOWED_ROOTS, f"{path.name}:{node.lineno} imports {alias.name}"
    source = path.read_text()
    assert "isinstance(config, LLaDAConfig)" not in source
    assert not path.name.startswith("_")


def test_auto_classes_work_locally(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LLaDAConfig)
    assert type(AutoModel.from_pretrained(tmp_path)) is LLaDAForMaskedDiffusion
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path)) is LLaDAForMaskedDiffusion
    assert type(AutoModel.from_config(model.config)) is LLaDAForMaskedDiffusion


def test_save_pretrained_writes_code_and_auto_map(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", *HUB_CODE_FILES} <= names
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForMaskedLM"}


REMOTE_LOAD = """
import sys
sys.modules["llada"] = None  # as on a user's machine: the package is not installed, only the Hub files exist
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM
folder = sys.argv[1]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
masked_lm = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
assert type(config).__module__.startswith("transformers_modules."), type(config).__module__
assert type(masked_lm).__name__ == "LLaDAForMaskedDiffusion"
ids = torch.load(folder + "/ids.pt")
with torch.no_grad():
    torch.save(model(ids).logits, folder + "/remote_logits.pt")
print(type(model).__module__)
"""


def run_isolated(code: str, *args: str, cwd) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter whose working directory is elsewhere and that cannot import llada."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_MODULES_CACHE"] = str(Path(cwd) / "modules_cache")
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_remote_code_load_in_fresh_process(tmp_path):
    model = tiny_model(attention_type="latent", kv_latent_dim=8)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    ids = torch.randint(2, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.save(ids, folder / "ids.pt")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = run_isolated(REMOTE_LOAD, str(folder), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transformers_modules" in result.stdout
    with torch.no_grad():
        expected = model(ids).logits
    torch.testing.assert_close(torch.load(folder / "remote_logits.pt"), expected, rtol=0, atol=0)


REMOTE_BLOCK_MODEL = """
import sys
sys.modules["llada"] = None  # only the files of the folder exist, as on a user's machine
import torch
from transformers import AutoModel
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
ids = torch.load(folder + "/ids.pt")
with torch.no_grad():
    torch.save(model(ids).logits, folder + "/remote_logits.pt")
torch.save(model.diffusion_generate(ids[:, :5], max_new_tokens=8, eos_token_id=None), folder + "/remote_tokens.pt")
print(model.config.block_size)
"""


def test_a_saved_block_model_loads_in_a_fresh_process(tmp_path):
    model = tiny_model(block_size=4)
    model.save_pretrained(tmp_path)
    ids = random_ids()
    torch.save(ids, tmp_path / "ids.pt")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_BLOCK_MODEL, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "4"
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), model(ids).logits)
    tokens = model.diffusion_generate(ids[:, :5], max_new_tokens=8, eos_token_id=None)
    assert torch.equal(torch.load(tmp_path / "remote_tokens.pt"), tokens)
