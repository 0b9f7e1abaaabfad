"""The docs test: every ```python block and every ```bash / ```sh / ```shell command of README.md and docs/*.md runs,
one test per block (`docs/generation.md:43` is the block whose opening fence is on line 43), and a block that fails
fails its test.

- A page runs in a working directory of its own, copied from one made once per session by the commands of `SETUP`:
  tiny models (hidden 32, 2 layers, 2 training steps of `llada-train` itself) at the paths the pages use and files
  standing for the reader's own (with `PLACEHOLDERS`), beside copies of the checkout's folders that commands read
  (`CHECKOUT_FOLDERS`).
- The Python blocks of a page share their names, in page order, as a reader's session would. Names that stand for
  the reader's own objects (a model, its inputs) and that no block of the page defines come from `reader_objects`.
- The commands of a shell block run in order (`\\` continues a line, `#` starts a comment, `&&` and `;` separate
  commands) in this process: a `llada-*` command through its `main(argv)` and `python FILE` / `python -m MODULE`
  through `runpy`, with the arguments of `OVERRIDES` appended (what makes a long command tiny: the last occurrence of
  a flag wins). Programs in `NOT_RUN` are checked instead of run; any other program runs as a subprocess.
- A block that cannot run here (a download from the Hub, a GPU, a run of hours) has a marker on the line before its
  fence, which the test reads and skips with its reason:

      <!-- docs-test: skip (downloads GSAI-ML/LLaDA-8B-Base from the Hub) -->

- `127.0.0.1:8000` in a block is replaced by the address of a `llada-serve` app on a free loopback port, and
  `llada-push` talks to the loopback Hub of `tests/hub_server.py` as the user `$HF_USER`.
"""

import ast
import configparser
import importlib
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from helpers import ROOT, TINY_SIZE_ARGS

PAGES = ["README.md"] + sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md"))
LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
SERVER_ADDRESS = "127.0.0.1:8000"  # what the serving blocks talk to
HUB_USER, HUB_TOKEN = "tester", "hf_docsTestToken0123456789"

# ----------------------------------------------------------------------------------------------------------------
# What the pages run against

TINY_MODEL = [*TINY_SIZE_ARGS, "--vocab_size", "300"]
TINY_RUN = [
    "--max_steps",
    "2",
    "--eval_steps",
    "2",
    "--per_device_train_batch_size",
    "2",
    "--max_train_samples",
    "16",
    "--max_eval_samples",
    "4",
    "--eval_num_t_samples",
    "1",
    "--num_sample_generations",
    "0",
    "--torch_num_threads",
    "1",
    "--disable_tqdm",
    "true",
    "--overwrite_output_dir",
]  # the working directory already holds the model a page may train again

# The commands that make the working directory every page starts from (run as the pages' commands are, OVERRIDES
# included): the models the pages load, at the paths they use, and files standing for the reader's own.
SETUP = [
    "llada-train --output_dir runs/llada-tinyshakespeare",
    "llada-train --output_dir runs/autoregressive-tinyshakespeare --model_type autoregressive",
    "llada-tasks generate countdown3 data/countdown3",
    "llada-train --output_dir runs/countdown3 --config countdown3 --train_file data/countdown3/train.jsonl",
    "python examples/shakespeare_dialogue.py pairs.jsonl",  # the reader's SFT pairs
    # the official format holds LLaDA from scratch (the main job's logit shift has no name in it)
    "llada-train --output_dir runs/llada-scratch --config tinyshakespeare-scratch",
    "llada-convert --src runs/llada-scratch --dst LLaDA-8B-Instruct --to original",
]
# Folders in the text that stand for the reader's own: name -> the folder it links to.
PLACEHOLDERS = {"DIR": "runs/llada-tinyshakespeare", "AR_DIR": "runs/autoregressive-tinyshakespeare"}
CHECKOUT_FOLDERS = ["benchmarks", "configs", "examples", "experiments", "tests/fixtures"]

# Arguments appended to a command (the last occurrence of a flag wins): the key is the program, or the program and
# its first argument.
OVERRIDES = {
    "llada-train": TINY_RUN,  # and TINY_MODEL unless it starts from a trained model (--init_from)
    "llada-tasks generate": ["--num_train", "64", "--num_test", "8"],
    "llada-tasks evaluate": ["--limit", "8"],
    "llada-push": ["--skip_check"],  # the fresh-process reload check runs in tests/hub/test_hub.py
    "llada-lm-eval": ["--limit", "2"],
    "python benchmarks/bench_code_versions.py": [
        "--preset",
        "tiny",
        "--batch_sizes",
        "1",
        "--length",
        "32",
        "--repeats",
        "1",
    ],
}


def check_tensorboard(argv: list, workspace: Path) -> None:
    """`tensorboard --logdir DIR` serves until stopped: DIR must hold event files."""
    logdir = Path(argv[argv.index("--logdir") + 1])
    assert list(logdir.rglob("events.out.tfevents.*")), f"{logdir} holds no TensorBoard events"


NOT_RUN = {"tensorboard": check_tensorboard}

# ----------------------------------------------------------------------------------------------------------------
# Reading the pages


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str  # "python" or "shell"
    code: str
    skip: Optional[str]  # the reason of a skip marker


def read_blocks(page: str, root: Path = ROOT) -> list:
    """The Python and shell blocks of `page` (a path under `root`), with the reason of the skip marker on the line
    before each."""
    lines = (root / page).read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence, info = match.groups()
        end = next((i for i in range(index + 1, len(lines)) if lines[i].strip() == fence), len(lines))
        language = LANGUAGES.get(info.lower())
        if language is not None:
            code = textwrap.dedent("\n".join(lines[index + 1 : end]))
            blocks.append(Block(page, index + 1, language, code, skip_reason(page, lines, index)))
        index = end + 1
    return blocks


def skip_reason(page: str, lines: list, fence: int) -> Optional[str]:
    match = MARKER.match(lines[fence - 1]) if fence > 0 else None
    if match is None:
        return None
    reason = re.fullmatch(r"\s*skip\s*\((.+)\)\s*", match.group(1))
    if reason is None:
        raise ValueError(
            f"{page}:{fence}: unknown docs-test marker {match.group(0).strip()!r}; the only one is "
            "`<!-- docs-test: skip (why) -->`."
        )
    return reason.group(1).strip()


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def shell_commands(code: str) -> list:
    """The commands of a shell block, each a list of arguments, with environment variables expanded."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split, lexer.commenters = True, "#"
        command = []
        for token in lexer:
            if token in ("&&", ";"):
                commands.append(command)
                command = []
            elif token[0] in ";&|<>()" or "$(" in token or "`" in token:
                raise ValueError(
                    f"The docs test does not run the shell construct {token!r} in {line.strip()!r}: "
                    "write the command without it, or mark the block."
                )
            else:
                command.append(os.path.expandvars(token))
        commands.append(command)
    return [command for command in commands if command]


def entry_points() -> dict:
    """`llada-*` console scripts -> their module (setup.cfg)."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return {name.strip(): target.split(":")[0].strip() for name, target in (line.split("=") for line in lines)}


# ----------------------------------------------------------------------------------------------------------------
# Running commands


def overrides(argv: list) -> list:
    """The arguments `OVERRIDES` appends to `argv`."""
    key = " ".join(argv[:2]) if " ".join(argv[:2]) in OVERRIDES else argv[0]
    extra = list(OVERRIDES.get(key, []))
    if argv[0] == "llada-train" and "--init_from" not in argv:
        extra += TINY_MODEL
        if "autoregressive" not in argv and "--config" not in argv:  # the main job's autoregressive stage: 2 steps
            extra += ["--autoregressive_init_steps", "2"]
    return extra


def exit_code(call) -> int:
    """The exit status of `call()`, a `main` that returns it or raises `SystemExit`."""
    try:
        code = call()
    except SystemExit as done:
        code = done.code
    return 0 if code is None else code if isinstance(code, int) else 1


def run_python(argv: list) -> int:
    """`python FILE args` or `python -m MODULE args` in this process, as `python` would run it."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    try:
        if argv[1] == "-m":
            sys.argv = [argv[2], *argv[3:]]
            return exit_code(lambda: runpy.run_module(argv[2], run_name="__main__", alter_sys=True) and 0)
        path = Path(argv[1]).resolve()
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, str(path.parent))
        return exit_code(lambda: runpy.run_path(str(path), run_name="__main__") and 0)  # its globals: it ended
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def run_command(argv: list, workspace: Path) -> None:
    """Runs one command of a shell block in `workspace` (the current directory); fails unless it exits with 0."""
    argv = argv + overrides(argv)
    programs = entry_points()
    if argv[0] in programs:
        main = importlib.import_module(programs[argv[0]]).main
        code = exit_code(lambda: main(argv[1:]))
    elif argv[0] in ("python", "python3"):
        code = run_python(argv)
    elif argv[0] in NOT_RUN:
        NOT_RUN[argv[0]](argv, workspace)
        return
    else:
        result = subprocess.run(
            argv, cwd=workspace, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        print(result.stdout, result.stderr, sep="\n")
        code = result.returncode
    assert code == 0, f"`{shlex.join(argv)}` exited with status {code} (its output is below)"


def free_names(code: str) -> set:
    """Names a block reads but never assigns."""
    tree = ast.parse(code)
    loaded, stored = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return loaded - stored


# Names the pages use for the reader's own objects, without making them (`reader_objects` makes them).
READER_NAMES = (
    "model",
    "tokenizer",
    "inputs",
    "texts",
    "samples",
    "input_ids",
    "attention_mask",
    "answer_positions",
    "sample_ids",
    "ar_model",
    "prompt_ids",
    "answer_ids",
    "choice_a_ids",
    "choice_b_ids",
    "blocks",
)


def reader_objects(workspace: Path) -> dict:
    """The reader's own objects that pages use without making them: a model with its tokenizer and inputs, texts and
    their ids, an autoregressive model of the same tokenizer, a dataset of token blocks."""
    import datasets
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    folder = workspace / "runs" / "llada-tinyshakespeare"
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    texts = ["First Citizen:\nBefore we proceed any further, hear me speak.", "All:\nSpeak, speak. You are all"]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    corpus = tokenizer((ROOT / "llada" / "data" / "tinyshakespeare.txt").read_text()[:4000])["input_ids"]
    return {
        "model": model,
        "tokenizer": tokenizer,
        "inputs": tokenizer(["To be, or not", "ROMEO:"], return_tensors="pt", padding=True),
        "texts": texts,
        "samples": texts,
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "answer_positions": torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"]) >= 8,
        "sample_ids": torch.tensor([corpus[:24], corpus[24:48]]),
        "ar_model": AutoModelForCausalLM.from_pretrained(workspace / "runs" / "autoregressive-tinyshakespeare"),
        "prompt_ids": tokenizer("Before we proceed any further, hear")["input_ids"],
        "answer_ids": tokenizer(" me speak.")["input_ids"],
        "choice_a_ids": tokenizer(" me speak.")["input_ids"],
        "choice_b_ids": tokenizer(" the sea.")["input_ids"],
        "blocks": datasets.Dataset.from_dict({"input_ids": [corpus[i : i + 32] for i in range(0, 512, 32)]}),
    }


# ----------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The working directory every page starts from: the checkout's folders, then what SETUP makes."""
    root = tmp_path_factory.mktemp("docs-workspace")
    for folder in CHECKOUT_FOLDERS:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for command in SETUP:
            run_command(shlex.split(command), root)
    finally:
        os.chdir(cwd)
    for checkpoint in root.glob("runs/*/checkpoint-*"):
        shutil.rmtree(checkpoint)
    for placeholder, target in PLACEHOLDERS.items():
        (root / placeholder).symlink_to(root / target)
    return root


@pytest.fixture(scope="session")
def workspaces(template, tmp_path_factory):
    """page -> (its working directory, its Python names), made when the page's first block runs."""
    made = {}

    def workspace(page: str):
        if page not in made:
            folder = tmp_path_factory.mktemp("page")
            shutil.copytree(template, folder, symlinks=True, dirs_exist_ok=True)
            made[page] = (folder, {"__name__": "__main__"})
        return made[page]

    return workspace


@pytest.fixture(scope="session")
def served(template):
    """The main job's tiny model behind the OpenAI-compatible app on a free loopback port, as `llada-serve
    runs/llada-tinyshakespeare` serves it."""
    pytest.importorskip("fastapi", reason="the `serve` extra (fastapi, uvicorn) is not installed")
    from transformers import AutoModel, AutoTokenizer

    from helpers import ServerThread
    from llada.serving import create_app

    folder = template / "runs" / "llada-tinyshakespeare"
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    app = create_app(model, AutoTokenizer.from_pretrained(folder), "runs/llada-tinyshakespeare")
    with ServerThread(app) as server:
        yield server


@pytest.fixture(scope="session")
def hub():
    from hub_server import LoopbackHub

    with LoopbackHub(token=HUB_TOKEN, user=HUB_USER) as server:
        yield server


def use_hub(hub, monkeypatch, home: Path) -> None:
    """Points huggingface_hub at the loopback Hub (its endpoint is read when an `HfApi` is made) with a token."""
    from huggingface_hub import constants
    from transformers.utils import hub as transformers_hub

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(transformers_hub, "_hf_api", None)  # transformers' shared HfApi, made anew for this endpoint
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "no_token_file"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)


# ----------------------------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.page}:{block.line}" for block in BLOCKS])
def test_docs_block(block, workspaces, request, monkeypatch):
    if block.skip is not None:
        pytest.skip(block.skip)
    workspace, names = workspaces(block.page)
    code = block.code
    if SERVER_ADDRESS in code:
        code = code.replace(SERVER_ADDRESS, request.getfixturevalue("served").url.split("//")[1])
    if "llada-push" in code or "push_to_hub" in code:
        use_hub(request.getfixturevalue("hub"), monkeypatch, workspace)
    monkeypatch.setenv("HF_USER", HUB_USER)
    monkeypatch.chdir(workspace)
    environment = dict(os.environ)
    try:
        if block.language == "python":
            missing = free_names(code) - names.keys()
            if missing & set(READER_NAMES):
                names.update({k: v for k, v in reader_objects(workspace).items() if k in missing})
            exec(compile(code, f"{block.page}:{block.line}", "exec"), names)
        else:
            for argv in shell_commands(code):
                run_command(argv, workspace)
    finally:
        os.environ.clear()
        os.environ.update(environment)


def test_every_marker_is_right_before_a_block():
    """A marker anywhere else would skip nothing."""
    for page in PAGES:
        lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if MARKER.match(line):
                following = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
                assert following and LANGUAGES.get(following.group(3).lower()), (
                    f"{page}:{index + 1}: a docs-test marker must be on the line right before a python or shell block"
                )


def test_shell_commands_parse_continuations_comments_and_separators():
    code = 'make train && llada-train --a 1 \\\n    --b "x y"   # a comment\nllada-generate --prompt "#1"; ls\n'
    assert shell_commands(code) == [
        ["make", "train"],
        ["llada-train", "--a", "1", "--b", "x y"],
        ["llada-generate", "--prompt", "#1"],
        ["ls"],
    ]
    with pytest.raises(ValueError, match="shell construct"):
        shell_commands("HF_USER=$(hf auth whoami)")


def test_blocks_are_read_with_their_line_and_marker(tmp_path):
    (tmp_path / "page.md").write_text(
        textwrap.dedent("""\
        # Title

        ```python
        print(1)
        ```
        <!-- docs-test: skip (needs a GPU) -->
        ```bash
        llada-train --bf16
        ```
        ```
        not run
        ```
        - a list item:
          ```sh
          llada-generate --help
          ```
        """)
    )
    blocks = read_blocks("page.md", tmp_path)
    assert [(b.line, b.language, b.code, b.skip) for b in blocks] == [
        (3, "python", "print(1)", None),
        (7, "shell", "llada-train --bf16", "needs a GPU"),
        (14, "shell", "llada-generate --help", None),
    ]
    (tmp_path / "typo.md").write_text("<!-- docs-test: skipp (x) -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="unknown docs-test marker"):
        read_blocks("typo.md", tmp_path)
