"""A model folder saved by an earlier version, with the Hub code files of that version, still loads and generates the
same tokens: with today's package, through its own (older) Hub files with `trust_remote_code`, and once re-saved with
today's Hub files.

Each archive of fixtures/saved_hub_files/ is one such folder, named after the version and commit that saved it: the
weights, tokenizer and `*_llada.py` files as that version wrote them, `expected.json` (the tokens that version's code
generated) and `make_fixture.py` (the script that made the folder, and the settings and prompts it generated with).
The folder is unpacked into a temporary folder for the tests.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from transformers import AutoTokenizer

from helpers import FIXTURES, ROOT
from llada import LLaDAForMaskedDiffusion
from llada.hub import save_for_hub
from llada.saved_files import HUB_CODE_FILES

ARCHIVES = sorted((FIXTURES / "saved_hub_files").glob("*.tar.gz"))

GENERATE_ALL = r"""
import json, sys
sys.modules["llada"] = None  # only the files of the folder exist, as on a user's machine
sys.path.insert(0, sys.argv[2])
from make_fixture import SETTINGS, generate
from transformers import AutoModel, AutoTokenizer
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)  # it reads config.json too
results = {name: generate(model, tokenizer, settings) for name, settings in SETTINGS.items()}
print("RESULTS " + json.dumps({"module": type(model).__module__, "results": results}))
"""


@dataclass
class SavedFolder:
    path: Path  # the unpacked folder (read it, copy it; never write into it)
    expected: dict  # setting name -> the sequences and forward passes of the saving version
    maker: ModuleType  # its make_fixture.py: SETTINGS and generate(model, tokenizer, settings)


@pytest.fixture(scope="module", params=ARCHIVES, ids=lambda path: path.name.removesuffix(".tar.gz"))
def saved(request, tmp_path_factory) -> SavedFolder:
    folder = tmp_path_factory.mktemp(request.param.name.removesuffix(".tar.gz"))
    with tarfile.open(request.param) as archive:
        archive.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    spec = importlib.util.spec_from_file_location(f"make_fixture_{folder.name}", folder / "make_fixture.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    return SavedFolder(folder, json.loads((folder / "expected.json").read_text()), maker)


def generate_in_fresh_process(folder: Path, maker_folder: Path, tmp_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", GENERATE_ALL, str(folder), str(maker_folder)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env={
            "HF_HUB_OFFLINE": "1",
            "HF_MODULES_CACHE": str(tmp_path / "modules"),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULTS "))[8:])
    assert report["module"].startswith("transformers_modules.")
    return report["results"]


def code_files(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in folder.glob("*_llada.py")}


def test_the_archive_holds_a_saved_model_with_older_hub_files(saved):
    assert {"config.json", "model.safetensors", "expected.json", "make_fixture.py"} <= {
        p.name for p in saved.path.iterdir()
    }
    today = {name: (ROOT / "llada" / name).read_bytes() for name in HUB_CODE_FILES}
    old = code_files(saved.path)
    assert "modeling_llada.py" in old and old != today  # another version's code, or the tests check nothing
    assert set(saved.expected) == set(saved.maker.SETTINGS)


def test_todays_package_loads_it_and_generates_the_same_tokens(saved):
    model = LLaDAForMaskedDiffusion.from_pretrained(saved.path).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved.path)
    for name, settings in saved.maker.SETTINGS.items():
        assert saved.maker.generate(model, tokenizer, settings) == saved.expected[name], name


def test_its_own_hub_files_still_load_through_remote_code(saved, tmp_path):
    folder = shutil.copytree(saved.path, tmp_path / "saved")
    assert generate_in_fresh_process(folder, saved.path, tmp_path) == saved.expected


def test_resaved_with_todays_hub_files_it_generates_the_same_tokens(saved, tmp_path):
    staging = tmp_path / "resaved"
    staging.mkdir()
    files = save_for_hub(str(saved.path), str(staging))
    assert set(HUB_CODE_FILES) <= set(files)
    assert code_files(staging) == {name: (ROOT / "llada" / name).read_bytes() for name in HUB_CODE_FILES}
    assert generate_in_fresh_process(staging, saved.path, tmp_path) == saved.expected
