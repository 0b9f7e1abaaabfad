"""A model saved before the sampler was split into `sampling_llada.py` / `cache_llada.py` still loads and generates
the same tokens: with today's package, through its own (older) Hub files with `trust_remote_code`, and once re-saved
with today's Hub files. The folder and the tokens the older code generated are in fixtures/saved_before_split
(made by its make_fixture.py)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from helpers import FIXTURES
from llada import LLaDAForMaskedDiffusion
from llada.hub import save_for_hub
from llada.saved_files import HUB_CODE_FILES

FIXTURE = FIXTURES / "saved_before_split"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
OLD_HUB_FILES = ("configuration_llada.py", "generation_llada.py", "modeling_llada.py")

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


def generate_in_fresh_process(folder: Path, tmp_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", GENERATE_ALL, str(folder), str(FIXTURE)],
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


@pytest.fixture(scope="module")
def fixture_module():
    sys.path.insert(0, str(FIXTURE))
    try:
        import make_fixture

        yield make_fixture
    finally:
        sys.path.remove(str(FIXTURE))


def test_the_fixture_is_a_folder_of_the_older_code():
    assert tuple(sorted(p.name for p in FIXTURE.glob("*_llada.py"))) == OLD_HUB_FILES


def test_todays_package_loads_it_and_generates_the_same_tokens(fixture_module):
    model = LLaDAForMaskedDiffusion.from_pretrained(FIXTURE).eval()
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE)
    for name, settings in fixture_module.SETTINGS.items():
        assert fixture_module.generate(model, tokenizer, settings) == EXPECTED[name], name


def test_its_own_hub_files_still_load_through_remote_code(tmp_path):
    folder = shutil.copytree(FIXTURE, tmp_path / "saved_before")
    assert generate_in_fresh_process(folder, tmp_path) == EXPECTED


def test_resaved_with_todays_hub_files_it_generates_the_same_tokens(tmp_path):
    staging = tmp_path / "resaved"
    staging.mkdir()
    files = save_for_hub(str(FIXTURE), str(staging))
    assert set(HUB_CODE_FILES) <= set(files) and set(HUB_CODE_FILES) - set(OLD_HUB_FILES)
    assert generate_in_fresh_process(staging, tmp_path) == EXPECTED
