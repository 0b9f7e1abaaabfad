"""Tokenizers for training: byte-level, a BPE trained on the corpus, or a pretrained one with a mask token added.

Every tokenizer built here is a plain fast tokenizer (`tokenizer.json` + `tokenizer_config.json`), so
`AutoTokenizer.from_pretrained(folder)` reloads it without remote code. The mask token the forward process writes is
registered as the tokenizer's `mask_token`, and its id is what the model config stores as `mask_token_id`.
"""

import logging
from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2TokenizerFast, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
MASK_TOKEN = "<|mdm_mask|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, MASK_TOKEN)

# A minimal chat format for our own tokenizers, so SFT data given as chat messages renders without a template of
# the user's. Pretrained tokenizers keep their own template.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_byte_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """
    A byte-level tokenizer: one token per UTF-8 byte (ids 0-255, in byte order), then `<|endoftext|>` (EOS, 256),
    `<|pad|>` (257) and `<|mdm_mask|>` (258). Any text round-trips exactly; nothing is learned.
    """
    char_of_byte = bytes_to_unicode()  # GPT-2's printable stand-in of each byte, as ByteLevel uses
    vocab = {char_of_byte[byte]: byte for byte in range(256)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # no merges: each byte stays one token
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return _wrap(backend, model_max_length)


def build_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 4096, model_max_length: int = 1024, show_progress: bool = True
) -> PreTrainedTokenizerFast:
    """
    Trains a byte-level BPE tokenizer (the GPT-2 scheme) on `texts` with the `tokenizers` library.

    Args:
        texts (`Iterable[str]`): the training corpus, streamed; iterated once.
        vocab_size (`int`): size of the final vocabulary, the three special tokens included (at least 259 + 1).
    """
    minimum = 256 + len(SPECIAL_TOKENS) + 1
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(f"`vocab_size` must be an integer >= {minimum} for a byte-level BPE, got {vocab_size!r}.")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),  # the special tokens follow the learned ones
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    backend.train_from_iterator(_non_empty(texts), trainer=trainer)
    if backend.get_vocab_size() <= 256:
        raise ValueError("Cannot train a BPE tokenizer: the corpus is empty.")
    return _wrap(backend, model_max_length)


def load_pretrained_tokenizer(name_or_path: str, **kwargs) -> PreTrainedTokenizerBase:
    """Loads a tokenizer by folder or Hub id and makes sure it has a mask and a pad token (see `ensure_mask_token`)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as error:
        if _is_bare_byte_level_bpe(name_or_path):  # just GPT-2-style vocab.json + merges.txt, no tokenizer config
            return ensure_mask_token(GPT2TokenizerFast.from_pretrained(name_or_path, **kwargs))
        raise ValueError(
            f"`--tokenizer`: expected 'bytes', 'bpe', or a tokenizer folder / Hub id, got {name_or_path!r} which "
            f"could not be loaded ({error})."
        ) from error
    return ensure_mask_token(tokenizer)


def ensure_mask_token(tokenizer) -> PreTrainedTokenizerBase:
    """
    Adds `<|mdm_mask|>` as the mask token when the tokenizer has none, and a pad token when it has none (the EOS token
    when there is one, as LLaDA pads with EOS, otherwise `<|pad|>`). The caller resizes the model's embeddings to
    `len(tokenizer)`.

    Raises:
        ValueError: when the tokenizer has no mask token and offers no way to add one, or adding it fails.
    """
    if getattr(tokenizer, "mask_token_id", None) is None:
        if not callable(getattr(tokenizer, "add_special_tokens", None)):
            raise ValueError(
                f"The tokenizer ({type(tokenizer).__name__}) has no mask token and no `add_special_tokens` method to "
                f"add one; masked diffusion needs a mask token. Use a tokenizer with a mask token, or "
                f"`--tokenizer bytes` / `--tokenizer bpe`."
            )
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise ValueError(
                f"Adding the mask token {MASK_TOKEN!r} to the tokenizer ({type(tokenizer).__name__}) did not give it "
                f"an id; masked diffusion needs a mask token."
            )
        logger.info("Added mask token %r with id %d to the tokenizer.", MASK_TOKEN, tokenizer.mask_token_id)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if tokenizer.mask_token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        raise ValueError(
            f"The tokenizer's mask token id ({tokenizer.mask_token_id}) must differ from its pad, EOS and BOS ids."
        )
    return tokenizer


def build_tokenizer(
    kind: str, texts: Optional[Iterable[str]] = None, vocab_size: int = 4096, model_max_length: int = 1024
) -> PreTrainedTokenizerBase:
    """
    The tokenizer named by `--tokenizer`: `"bytes"`, `"bpe"` (trained on `texts`) or a pretrained folder / Hub id.
    """
    if kind == "bytes":
        return build_byte_tokenizer(model_max_length)
    if kind == "bpe":
        if texts is None:
            raise ValueError("`--tokenizer bpe` needs the training corpus to learn its merges.")
        return build_bpe_tokenizer(texts, vocab_size=vocab_size, model_max_length=model_max_length)
    return load_pretrained_tokenizer(kind)


def _wrap(backend: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """Adds our special tokens after the learned vocabulary and wraps the backend as a transformers fast tokenizer."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def _is_bare_byte_level_bpe(name_or_path: str) -> bool:
    folder = Path(name_or_path)
    return folder.is_dir() and (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text:
            yield text


__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "EOS_TOKEN",
    "MASK_TOKEN",
    "PAD_TOKEN",
    "build_bpe_tokenizer",
    "build_byte_tokenizer",
    "build_tokenizer",
    "ensure_mask_token",
    "load_pretrained_tokenizer",
]
