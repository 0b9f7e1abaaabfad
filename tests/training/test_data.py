"""Data loading with `datasets`: the bundled corpus, text / json / parquet files, held-out split, streaming, SFT,
and the clear errors for bad input."""

import json

import pytest

from helpers import FIXTURES
from llada.training.data import DEFAULT_CORPUS, DataArguments, load_raw_datasets, prepare_datasets
from llada.training.tokenizers import build_byte_tokenizer

WIKI_VALID = FIXTURES / "wikitext-2-valid-excerpt.txt"
WIKI_TEST = FIXTURES / "wikitext-2-test-excerpt.txt"


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_tokenizer()


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_bundled_tinyshakespeare_is_the_default(tokenizer):
    assert DEFAULT_CORPUS.is_file() and DEFAULT_CORPUS.stat().st_size == 1_115_394
    data = prepare_datasets(DataArguments(max_seq_length=512, max_eval_samples=3), tokenizer)
    first = tokenizer.decode(data["train"][0]["input_ids"])
    assert first.startswith("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    assert all(len(row) == 512 for row in data["train"][:5]["input_ids"])
    assert len(data["validation"]) == 3


def test_text_files_pack_into_contiguous_blocks(tmp_path, tokenizer):
    train = write(tmp_path / "a.txt", "abcdefghij\nklmnopqrst\n")
    args = DataArguments(train_file=[train, str(WIKI_TEST)], validation_file=[str(WIKI_VALID)], max_seq_length=8)
    data = prepare_datasets(args, tokenizer)
    blocks = data["train"]["input_ids"]
    assert blocks[0] == list(b"abcdefgh") and blocks[1] == list(b"ij\nklmno")  # line breaks kept, rows joined
    expected_validation = sum(len(line.encode()) for line in WIKI_VALID.read_text().splitlines(True)) // 8
    assert abs(len(data["validation"]) - expected_validation) <= 1


def test_held_out_split_is_the_tail_of_the_corpus(tmp_path):
    lines = [f"line {i}\n" for i in range(100)]
    train = write(tmp_path / "c.txt", "".join(lines))
    raw = load_raw_datasets(DataArguments(train_file=[train], validation_split_percentage=10))
    assert raw["train"]["text"] == lines[:90] and raw["validation"]["text"] == lines[90:]


def test_json_and_parquet_with_a_text_column(tmp_path, tokenizer):
    records = [{"id": i, "body": f"document number {i} " * 3} for i in range(40)]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records))
    args = DataArguments(train_file=[str(jsonl)], text_column="body", max_seq_length=16, add_eos_token=True)
    data = prepare_datasets(args, tokenizer)
    assert (
        tokenizer.eos_token_id
        in data["train"]["input_ids"][0]
        + data["train"]["input_ids"][1]
        + data["train"]["input_ids"][2]
        + data["train"]["input_ids"][3]
    )

    import pandas as pd

    parquet = tmp_path / "d.parquet"
    pd.DataFrame(records).to_parquet(parquet)
    data = prepare_datasets(DataArguments(train_file=[str(parquet)], text_column="body", max_seq_length=16), tokenizer)
    assert tokenizer.decode(data["train"][0]["input_ids"]) == "document number "


def test_streaming_yields_the_same_blocks(tmp_path, tokenizer):
    args = dict(train_file=[str(WIKI_TEST)], validation_file=[str(WIKI_VALID)], max_seq_length=32)
    eager = prepare_datasets(DataArguments(**args), tokenizer)
    streamed = prepare_datasets(DataArguments(**args, streaming=True), tokenizer)
    first = [row["input_ids"] for _, row in zip(range(5), streamed["train"])]
    assert first == eager["train"]["input_ids"][:5]


def test_streaming_holds_out_the_first_rows(tmp_path):
    train = write(tmp_path / "s.txt", "".join(f"row {i}\n" for i in range(50)))
    raw = load_raw_datasets(DataArguments(train_file=[train], streaming=True, streaming_validation_examples=5))
    assert [r["text"] for r in raw["validation"]] == [f"row {i}\n" for i in range(5)]
    assert next(iter(raw["train"]))["text"] == "row 5\n"


def test_sft_prompt_response_pairs(tmp_path, tokenizer):
    path = tmp_path / "sft.jsonl"
    rows = [{"prompt": "Q: two plus two?\n", "response": "A: four."}] * 10 + [
        {"prompt": "x" * 100, "response": "too long a prompt"}
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = prepare_datasets(
        DataArguments(train_file=[str(path)], sft=True, max_seq_length=40, validation_split_percentage=20), tokenizer
    )
    row = data["train"][0]
    prompt_length = len("Q: two plus two?\n")
    assert row["input_ids"] == list(b"Q: two plus two?\nA: four.") + [tokenizer.eos_token_id]
    assert row["labels"] == [-100] * prompt_length + list(b"A: four.") + [tokenizer.eos_token_id]
    assert all(len(ids) <= 40 for ids in data["validation"]["input_ids"])  # the over-long prompt was dropped
    assert len(data["train"]) + len(data["validation"]) == 10


def test_sft_chat_messages_use_the_chat_template(tmp_path, tokenizer):
    path = tmp_path / "chat.jsonl"
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    path.write_text("\n".join(json.dumps(chat) for _ in range(4)))
    data = prepare_datasets(
        DataArguments(train_file=[str(path)], sft=True, max_seq_length=64, validation_file=[str(path)]), tokenizer
    )
    row = data["train"][0]
    prompt = tokenizer.decode([i for i, label in zip(row["input_ids"], row["labels"]) if label == -100])
    answer = tokenizer.decode([label for label in row["labels"] if label != -100], skip_special_tokens=True)
    assert prompt == "<|user|>\nHi\n<|assistant|>\n" and answer == "Hello!\n"


# ---- errors: each a clear message ----


def test_empty_corpus(tmp_path):
    empty = write(tmp_path / "empty.txt", "\n\n  \n")
    with pytest.raises(ValueError, match="empty"):
        load_raw_datasets(DataArguments(train_file=[empty], validation_file=[str(WIKI_VALID)]))


def test_non_utf8_file(tmp_path):
    latin = write(tmp_path / "latin.txt", "caf\xe9 au lait\n" * 5, encoding="latin-1")
    with pytest.raises(ValueError, match=r"not UTF-8.*offset 3"):
        load_raw_datasets(DataArguments(train_file=[latin]))


def test_missing_text_column(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"content": "abc"}\n{"content": "def"}\n')
    with pytest.raises(ValueError, match=r"no column 'text'.*\['content'\]"):
        load_raw_datasets(DataArguments(train_file=[str(path)]))


def test_missing_file_and_corpus_shorter_than_a_block(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="not found"):
        load_raw_datasets(DataArguments(train_file=[str(tmp_path / "nope.txt")]))
    short = write(tmp_path / "short.txt", "tiny\ncorpus\n")
    with pytest.raises(ValueError, match="fewer tokens than one block"):
        prepare_datasets(DataArguments(train_file=[short], validation_file=[short], max_seq_length=64), tokenizer)
