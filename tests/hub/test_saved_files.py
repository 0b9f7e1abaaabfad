"""What a saved folder holds (llada/saved_files.py): one derived list of Hub code files, the same set that
`save_pretrained` copies, and a tokenizer config that transformers 4.x reads."""

import json
from pathlib import Path

import llada
from helpers import tiny_model
from llada.saved_files import HUB_CODE_FILES, copy_code_files, make_tokenizer_config_portable


def test_hub_code_files_are_every_llada_module_of_the_package():
    package = Path(llada.__file__).parent
    assert HUB_CODE_FILES == tuple(sorted(p.name for p in package.glob("*_llada.py")))
    assert {
        "configuration_llada.py",
        "modeling_llada.py",
        "generation_config_llada.py",
        "generation_llada.py",
        "sampling_llada.py",
        "cache_llada.py",
    } <= set(HUB_CODE_FILES)


def test_save_pretrained_copies_exactly_the_hub_code_files(tmp_path):
    """transformers follows the relative imports of the model's module: every Hub file must be reachable so."""
    tiny_model().save_pretrained(tmp_path)
    assert tuple(sorted(p.name for p in tmp_path.glob("*.py"))) == HUB_CODE_FILES


def test_copy_code_files(tmp_path):
    assert copy_code_files(tmp_path) == list(HUB_CODE_FILES)
    package = Path(llada.__file__).parent
    assert all((tmp_path / name).read_bytes() == (package / name).read_bytes() for name in HUB_CODE_FILES)


def test_portable_tokenizer_config_loads_as_a_fast_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    from llada.training.tokenizers import build_byte_tokenizer

    build_byte_tokenizer().save_pretrained(tmp_path)
    make_tokenizer_config_portable(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    assert "is_local" not in config
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert list(tokenizer("ab")) == ["input_ids", "attention_mask"]
