"""Training data with `datasets`: load a corpus, hold out a validation split, tokenise and pack into fixed blocks.

Sources: the bundled TinyShakespeare (the default), local text files (one or many), json / jsonl / csv / parquet
files with a named text column, or a Hub dataset by name and config (for users who are online), optionally streamed.
SFT data (prompt / response pairs, or chat messages rendered with the tokenizer's chat template) becomes rows of
`input_ids` and `labels` with -100 on the prompt, which `DataCollatorForMaskedDiffusion` never masks.
"""

import codecs
import logging
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Iterator, Optional

import datasets
from datasets import DatasetDict, IterableDatasetDict, load_dataset

logger = logging.getLogger(__name__)

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"
STRUCTURED_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class DataArguments:
    """Where the training text comes from and how it is cut into training examples."""

    dataset_name: Optional[str] = field(
        default=None, metadata={"help": "A Hub dataset name such as 'wikitext' (needs network access)."}
    )
    dataset_config: Optional[str] = field(
        default=None, metadata={"help": "The Hub dataset configuration, such as 'wikitext-2-raw-v1'."}
    )
    train_file: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Local training file(s): .txt (any other extension is read as text), .json/.jsonl, .csv "
            "or .parquet. Default: the bundled TinyShakespeare."
        },
    )
    validation_file: Optional[list[str]] = field(
        default=None, metadata={"help": "Local validation file(s); without them a held-out split is cut off."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text in structured data."})
    validation_split_percentage: float = field(
        default=5.0,
        metadata={
            "help": "Percent of the training data held out for validation when no validation split exists. "
            "The tail of the corpus is taken (not a shuffle) so packed blocks stay contiguous text."
        },
    )
    streaming: bool = field(
        default=False, metadata={"help": "Stream the dataset (corpora larger than memory; needs --max_steps)."}
    )
    streaming_validation_examples: int = field(
        default=1000, metadata={"help": "With --streaming and no validation split: rows held out from the start."}
    )
    max_seq_length: int = field(default=256, metadata={"help": "Tokens per training block (or SFT example)."})
    add_eos_token: bool = field(
        default=False,
        metadata={"help": "Append EOS after every row before packing (for document-per-row data, not line files)."},
    )
    sft: bool = field(
        default=False,
        metadata={
            "help": "Supervised fine-tuning data: rows with --prompt_column/--response_column or chat "
            "--messages_column; the prompt is never masked."
        },
    )
    prompt_column: str = field(default="prompt", metadata={"help": "SFT: column holding the prompt."})
    response_column: str = field(default="response", metadata={"help": "SFT: column holding the response."})
    messages_column: str = field(
        default="messages", metadata={"help": "SFT: column holding chat messages (used when present)."}
    )
    preprocessing_num_workers: Optional[int] = field(
        default=None, metadata={"help": "Processes for tokenisation and packing (`datasets.map(num_proc=...)`)."}
    )
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Keep at most this many train blocks."})
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "Keep at most this many validation blocks (evaluation cost)."}
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached tokenised datasets."})

    def __post_init__(self):
        if isinstance(self.train_file, str):
            self.train_file = [self.train_file]
        if isinstance(self.validation_file, str):
            self.validation_file = [self.validation_file]
        if not isinstance(self.max_seq_length, int) or self.max_seq_length < 2:
            raise ValueError(f"`--max_seq_length` must be an integer >= 2, got {self.max_seq_length!r}.")
        if not 0.0 < self.validation_split_percentage < 100.0:
            raise ValueError(
                f"`--validation_split_percentage` must be in (0, 100), got {self.validation_split_percentage!r}."
            )


# --------------------------------------------------------------------------------------------------------------
# loading


def load_raw_datasets(args: DataArguments):
    """
    Loads the corpus as a `DatasetDict` (or `IterableDatasetDict` when streaming) with `train` and `validation`.

    Raises:
        ValueError: on a missing file, a file that is not UTF-8, an empty corpus or a missing text column.
    """
    if args.dataset_name is not None:
        raw = load_dataset(args.dataset_name, args.dataset_config, streaming=args.streaming)
    else:
        raw = _load_local_files(args)
    if "validation" not in raw:
        raw = _hold_out_validation(raw, args)
    for split in ("train", "validation"):
        _check_columns(raw[split], args, split)
        _check_not_empty(raw[split], args, split)
    return raw


def _load_local_files(args: DataArguments):
    train_files = [str(path) for path in (args.train_file or [DEFAULT_CORPUS])]
    data_files = {"train": train_files}
    if args.validation_file:
        data_files["validation"] = [str(path) for path in args.validation_file]
    builders = {_builder_for(path) for paths in data_files.values() for path in paths}
    if len(builders) != 1:
        raise ValueError(
            f"`--train_file`/`--validation_file` must all be of one kind (text, json, csv or parquet); "
            f"got a mix: {sorted(data_files.values())}."
        )
    builder = builders.pop()
    for split, paths in data_files.items():
        for path in paths:
            if not Path(path).is_file():
                raise ValueError(f"Data file not found: {path!r}.")
            if Path(path).stat().st_size == 0:
                raise ValueError(f"The {split} corpus is empty: data file {path!r} has 0 bytes.")
            if builder in ("text", "json", "csv"):
                check_utf8(path)
    # one row per line with its "\n" kept, so packing restores the running text exactly
    options = {"keep_linebreaks": True} if builder == "text" else {}
    builder_logger = logging.getLogger(f"datasets.packaged_modules.{builder}.{builder}")
    builder_logger.addFilter(_drop_errors)  # a parse failure is reported once, below, not also as a log line
    try:
        return load_dataset(builder, data_files=data_files, streaming=args.streaming, **options)
    except datasets.exceptions.DatasetGenerationError as error:
        raise ValueError(_unreadable_files_message(builder, data_files, error)) from None
    finally:
        builder_logger.removeFilter(_drop_errors)


def _drop_errors(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


def _unreadable_files_message(builder: str, data_files: dict, error: Exception) -> str:
    """`datasets` hides why a file could not be parsed behind a generic error: name the files and the cause."""
    cause = error.__cause__ or error.__context__ or error
    reason = " ".join(str(cause).split())[:300] or type(cause).__name__
    files = sorted({path for paths in data_files.values() for path in paths})
    hint = " Plain text files should end in .txt." if builder != "text" else ""
    return f"Cannot read {files} as {builder} data ({type(cause).__name__}: {reason}).{hint}"


def _builder_for(path: str) -> str:
    return STRUCTURED_BUILDERS.get(Path(path).suffix.lower(), "text")


def check_utf8(path, chunk_size: int = 1 << 20) -> None:
    """Raises a `ValueError` naming the file and byte offset when `path` is not valid UTF-8 (read in chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Data file {str(path)!r} is not UTF-8 text: undecodable byte at offset {offset + error.start} "
                    f"({error.reason}). Convert it to UTF-8 first, e.g. `iconv -f latin1 -t utf-8`."
                ) from None
            if not chunk:
                return
            offset += len(chunk)


def _hold_out_validation(raw, args: DataArguments):
    """Cuts a validation split off the end of `train` (contiguous) or, when streaming, off its start."""
    train = raw["train"]
    if args.streaming:
        count = args.streaming_validation_examples
        return IterableDatasetDict({"train": train.skip(count), "validation": train.take(count)})
    num_rows = len(train)
    num_validation = max(1, int(num_rows * args.validation_split_percentage / 100))
    if num_rows < 2:
        raise ValueError(
            f"The training data has {num_rows} row(s): too few to hold out a validation split; "
            f"pass `--validation_file` or more data."
        )
    return DatasetDict(
        {
            "train": train.select(range(num_rows - num_validation)),
            "validation": train.select(range(num_rows - num_validation, num_rows)),
        }
    )


def _check_columns(dataset, args: DataArguments, split: str) -> None:
    columns = dataset.column_names
    if columns is None:  # some streamed datasets only know their columns after the first row
        columns = list(next(iter(dataset), {}).keys())
    if args.sft:
        needed = (
            [args.messages_column] if args.messages_column in columns else [args.prompt_column, args.response_column]
        )
    else:
        needed = [args.text_column]
    missing = [name for name in needed if name not in columns]
    if missing:
        option = "--prompt_column/--response_column/--messages_column" if args.sft else "--text_column"
        raise ValueError(
            f"The {split} data has no column {missing[0]!r} (set by {option}); its columns are {columns}."
        )


def _check_not_empty(dataset, args: DataArguments, split: str) -> None:
    """Stops at the first non-blank row, so a normal corpus costs one row; only a blank one is read through."""
    for row in dataset:
        if args.sft or str(row[args.text_column] or "").strip():
            return
    what = "rows" if args.sft else f"non-blank text in column {args.text_column!r}"
    raise ValueError(
        f"The {split} corpus is empty: no {what}. Check `--train_file` / `--validation_file` / `--dataset_name`."
    )


def iter_texts(dataset, args: DataArguments, limit: Optional[int] = None) -> Iterator[str]:
    """The raw text of a split (prompt and response in SFT), e.g. to train a BPE tokenizer on it."""
    rows = dataset.take(limit) if (args.streaming and limit) else dataset
    for count, row in enumerate(rows):
        if limit is not None and count >= limit:
            return
        if not args.sft:
            yield row[args.text_column]
        elif args.messages_column in row:
            yield "\n".join(str(message.get("content", "")) for message in row[args.messages_column])
        else:
            yield f"{row[args.prompt_column]}\n{row[args.response_column]}"


# --------------------------------------------------------------------------------------------------------------
# tokenising and packing


def tokenize_and_pack(raw, tokenizer, args: DataArguments):
    """
    Tokenises every split and packs it into blocks of `max_seq_length` tokens (pre-training), or turns SFT rows into
    `input_ids` / `labels` with the prompt labelled -100. Uses `datasets.map`, so the work is cached and parallel.

    Raises:
        ValueError: when a split yields no block (a corpus shorter than one block).
    """
    processed = {}
    for split, dataset in raw.items():
        map_kwargs = _map_kwargs(args, f"{split}")
        columns = dataset.column_names or list(next(iter(dataset)).keys())
        if args.sft:
            dataset = dataset.map(
                _sft_tokenizer(tokenizer, args),
                batched=True,
                remove_columns=columns,
                **map_kwargs("Tokenising SFT examples"),
            )
            dataset = dataset.filter(
                lambda ids: len(ids) > 0, input_columns="input_ids", **map_kwargs("Dropping over-long prompts")
            )
        else:
            dataset = dataset.map(
                _text_tokenizer(tokenizer, args),
                batched=True,
                remove_columns=columns,
                **map_kwargs("Tokenising"),
            )
            dataset = dataset.map(
                _block_packer(args.max_seq_length),
                batched=True,
                batch_size=2000,
                **map_kwargs(f"Packing into blocks of {args.max_seq_length}"),
            )
        limit = args.max_train_samples if split == "train" else args.max_eval_samples
        if limit is not None:
            dataset = dataset.take(limit) if args.streaming else dataset.select(range(min(limit, len(dataset))))
        if not args.streaming and len(dataset) == 0:
            raise ValueError(
                f"The {split} split gives no training example: it has fewer tokens than one block of "
                f"`--max_seq_length` {args.max_seq_length}"
                + (
                    " (or every prompt is longer than that)."
                    if args.sft
                    else ". Use a longer corpus, a smaller --max_seq_length or a larger --validation_split_percentage."
                )
            )
        processed[split] = dataset
    return IterableDatasetDict(processed) if args.streaming else DatasetDict(processed)


def _map_kwargs(args: DataArguments, split: str):
    def kwargs(description: str) -> dict:
        if args.streaming:  # IterableDataset.map is lazy: no cache, no processes, no progress bar
            return {}
        return {
            "num_proc": args.preprocessing_num_workers,
            "load_from_cache_file": not args.overwrite_cache,
            "desc": f"{description} ({split})",
        }

    return kwargs


def _text_tokenizer(tokenizer, args: DataArguments):
    eos = [tokenizer.eos_token_id] if args.add_eos_token and tokenizer.eos_token_id is not None else []

    def tokenize(batch: dict) -> dict:
        ids = tokenizer(batch[args.text_column], add_special_tokens=False)["input_ids"]
        return {"input_ids": [row + eos for row in ids]}

    return tokenize


def _block_packer(block_size: int):
    def pack(batch: dict) -> dict:
        """Concatenates the batch's rows and cuts it into full blocks; the tail shorter than a block is dropped."""
        tokens = list(chain.from_iterable(batch["input_ids"]))
        usable = len(tokens) - len(tokens) % block_size
        return {"input_ids": [tokens[i : i + block_size] for i in range(0, usable, block_size)]}

    return pack


def _sft_tokenizer(tokenizer, args: DataArguments):
    """Rows -> `input_ids` = prompt + response + EOS and `labels` = -100 on the prompt, the ids on the rest."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def tokenize(batch: dict) -> dict:
        prompts, responses = _sft_texts(batch, tokenizer, args)
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(responses, add_special_tokens=False)["input_ids"]
        rows = {"input_ids": [], "labels": []}
        for prompt, response in zip(prompt_ids, response_ids):
            if len(prompt) >= args.max_seq_length:  # no room for an answer: dropped (filtered out afterwards)
                prompt, response = [], []
            answer = (response + eos)[: args.max_seq_length - len(prompt)] if prompt else []
            rows["input_ids"].append(prompt + answer)
            rows["labels"].append([-100] * len(prompt) + answer)
        return rows

    return tokenize


def _sft_texts(batch: dict, tokenizer, args: DataArguments):
    """Prompt and response strings of a batch: from its columns, or chat messages through the chat template."""
    if args.messages_column not in batch:
        return [str(p) for p in batch[args.prompt_column]], [str(r) for r in batch[args.response_column]]
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("SFT data with chat messages needs a tokenizer with a chat template; this one has none.")
    prompts, responses = [], []
    for messages in batch[args.messages_column]:
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError(f"SFT chat examples must end with an assistant message, got {messages!r}.")
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise ValueError(
                "The chat template renders the conversation differently from its prompt; cannot "
                "tell the prompt from the answer."
            )
        prompts.append(prompt)
        responses.append(full[len(prompt) :])
    return prompts, responses


def prepare_datasets(args: DataArguments, tokenizer):
    """`load_raw_datasets` then `tokenize_and_pack`: what the training CLI calls."""
    datasets.utils.logging.set_verbosity_warning()
    return tokenize_and_pack(load_raw_datasets(args), tokenizer, args)


__all__ = [
    "DEFAULT_CORPUS",
    "DataArguments",
    "check_utf8",
    "iter_texts",
    "load_raw_datasets",
    "prepare_datasets",
    "tokenize_and_pack",
]
