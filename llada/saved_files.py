"""What a saved or pushed model folder holds: the Hub code files, the tokenizer files, and how they get there.

- [`HUB_CODE_FILES`]: every `*_llada.py` file of the package, found by name, so a new sibling Hub module is saved,
  converted and pushed without being listed anywhere. `save_pretrained` copies the same files itself: it follows
  the relative imports of `modeling_llada.py` and `configuration_llada.py` (`from .x import ...`), and the tests
  check that the two sets agree.
- [`TOKENIZER_FILES`]: the files a tokenizer's `save_pretrained` may write.
- [`copy_code_files`]: the Hub files into a folder (for folders written without `save_pretrained`).
- [`make_tokenizer_config_portable`]: a saved tokenizer config that transformers 4.x also reads.
"""

import json
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
HUB_CODE_FILES = tuple(sorted(path.name for path in PACKAGE_DIR.glob("*_llada.py")))
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)


def copy_code_files(folder) -> list:
    """Copies the Hub code files next to the weights in `folder`, so that `trust_remote_code` finds them; returns
    their names."""
    for name in HUB_CODE_FILES:
        shutil.copy2(PACKAGE_DIR / name, Path(folder) / name)
    return list(HUB_CODE_FILES)


def make_tokenizer_config_portable(folder) -> None:
    """
    Rewrites `folder/tokenizer_config.json` so that transformers 4.x loads the tokenizer as 5.x does.

    transformers 5 saves a plain fast tokenizer as `"tokenizer_class": "TokenizersBackend"`, a name 4.x does not
    know; `PreTrainedTokenizerFast` is the same class in 5.x (an alias) and exists in 4.x. And 4.x fast tokenizers
    return `token_type_ids` unless `model_input_names` says otherwise; the model takes no token types, and
    `diffusion_generate(**tokenizer(...))` refuses unknown arguments.
    """
    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    for loading_option in ("is_local", "local_files_only", "cache_dir", "token", "_commit_hash"):
        config.pop(loading_option, None)  # how the tokenizer was loaded here, not a setting of it
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.setdefault("model_input_names", ["input_ids", "attention_mask"])
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


__all__ = ["HUB_CODE_FILES", "PACKAGE_DIR", "TOKENIZER_FILES", "copy_code_files", "make_tokenizer_config_portable"]
