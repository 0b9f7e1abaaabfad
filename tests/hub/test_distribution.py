"""The installable distribution: `python -m build` makes an sdist and a wheel that hold the data, configs and metric
modules the package needs, `twine check` passes, and the wheel installed into a fresh virtual environment trains
and generates from a folder outside the checkout.

The fresh environment reuses the packages of the test's own (torch among them) through a `.pth` line, which adds
their folder to `sys.path` without running its `.pth` files: the editable install of this checkout stays out, and
`llada` is imported from the wheel (checked).
"""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

DISTRIBUTION = "llada_hf"  # the distribution `llada-hf` (import name `llada`), as file names spell it
PACKAGED = [
    "llada/data/tinyshakespeare.txt",
    "llada/configs/tinyshakespeare.yaml",
    "llada/metrics/elbo_perplexity/elbo_perplexity.py",
    "llada/metrics/generative_perplexity/generative_perplexity.py",
    "llada/modeling_llada.py",
]


def run(command, cwd, env=None, timeout=900):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # no isolation: the build uses this environment's setuptools and wheel, without a download
    run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        cwd=ROOT,
    )
    return out


def test_sdist_and_wheel_hold_the_data_configs_and_metrics_and_pass_twine(dist):
    (wheel,) = dist.glob(f"{DISTRIBUTION}-*.whl")
    (sdist,) = dist.glob(f"{DISTRIBUTION}-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(PACKAGED) <= names
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert set(PACKAGED) <= members
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=dist)


def test_the_wheel_in_a_fresh_venv_trains_and_generates_outside_the_checkout(dist, tmp_path):
    (wheel,) = dist.glob(f"{DISTRIBUTION}-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    fresh_site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).stdout.strip()
    )
    reused = [path for path in sys.path if path.endswith(("site-packages", "dist-packages"))]
    (fresh_site / "reuse_test_environment.pth").write_text("\n".join(dict.fromkeys(reused)) + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        cwd=tmp_path,
    )
    work = tmp_path / "work"  # not the checkout: the job's YAML and corpus must come from the installed package
    work.mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": "",
    }
    where = run([str(python), "-c", "import llada; print(llada.__file__)"], cwd=work, env=env).stdout.strip()
    assert where.startswith(str(fresh_site)), where
    run(
        [
            str(venv / "bin" / "llada-train"),
            "--max_steps",
            "3",
            "--autoregressive_init_steps",
            "3",
            "--disable_tqdm",
            "true",
        ],
        cwd=work,
        env=env,
    )
    model_dir = work / "runs" / "llada-tinyshakespeare"  # the main job's output folder, relative to here
    config = (model_dir / "config.json").read_text()
    assert '"hidden_size": 128' in config  # the main job's size, read from the packaged YAML
    result = run(
        [
            str(venv / "bin" / "llada-generate"),
            "--model",
            str(model_dir),
            "--prompt",
            "ROMEO:",
            "--max_new_tokens",
            "8",
            "--seed",
            "0",
        ],
        cwd=work,
        env=env,
    )
    assert "=== sample 0 ===" in result.stdout
