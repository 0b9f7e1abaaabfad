"""Tokenizers: bytes, trained BPE and a pretrained one each round-trip, carry a mask token and reload with
plain AutoTokenizer (no remote code)."""

import pytest
from transformers import AutoTokenizer

from helpers import FIXTURES
from llada.training.tokenizers import (
    MASK_TOKEN,
    build_bpe_tokenizer,
    build_byte_tokenizer,
    build_tokenizer,
    ensure_mask_token,
    load_pretrained_tokenizer,
)

GPT2_DIR = FIXTURES / "gpt2-tokenizer"
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJuliet — é ☃\n"


def assert_reloads(tokenizer, folder):
    tokenizer.save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert reloaded(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    assert reloaded.mask_token == tokenizer.mask_token and reloaded.mask_token_id == tokenizer.mask_token_id
    assert reloaded.pad_token_id == tokenizer.pad_token_id and len(reloaded) == len(tokenizer)
    return reloaded


def test_byte_tokenizer_is_one_token_per_byte(tmp_path):
    tokenizer = build_byte_tokenizer()
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ids == list(TEXT.encode("utf-8"))
    assert tokenizer.decode(ids) == TEXT
    assert (len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id) == (
        259,
        256,
        257,
        258,
    )
    assert tokenizer.convert_ids_to_tokens(258) == MASK_TOKEN
    assert_reloads(tokenizer, tmp_path)


def test_bpe_tokenizer_trains_to_the_requested_size(tmp_path):
    corpus = [TEXT * 3, "First Citizen:\nBefore we proceed any further, hear me speak.\n"] * 20
    tokenizer = build_bpe_tokenizer(corpus, vocab_size=300, show_progress=False)
    assert len(tokenizer) <= 300 and tokenizer.mask_token_id == len(tokenizer) - 1
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) < len(TEXT.encode("utf-8"))  # merges were learned
    assert tokenizer.decode(ids) == TEXT
    assert_reloads(tokenizer, tmp_path)


def test_bpe_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        build_bpe_tokenizer(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="corpus"):
        build_tokenizer("bpe", texts=None)


def test_pretrained_tokenizer_gets_a_mask_token(tmp_path):
    tokenizer = load_pretrained_tokenizer(str(GPT2_DIR))
    assert tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    assert tokenizer.mask_token == MASK_TOKEN and tokenizer.mask_token_id == 50257 and len(tokenizer) == 50258
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 50256  # LLaDA pads with EOS
    reloaded = assert_reloads(tokenizer, tmp_path)
    assert reloaded.decode([15496, 995]) == "Hello world"


def test_unknown_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--tokenizer"):
        load_pretrained_tokenizer(str(tmp_path / "nothing-here"))


def test_tokenizer_that_cannot_add_a_mask_token_is_a_clear_error():
    class FrozenTokenizer:  # no mask token and no way to add one
        mask_token_id = None
        pad_token_id = eos_token_id = bos_token_id = 0

    with pytest.raises(ValueError, match="no mask token"):
        ensure_mask_token(FrozenTokenizer())
