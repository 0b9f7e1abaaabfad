"""SFT data from the bundled TinyShakespeare: a speech and the next speaker's name as the prompt, the reply as the
response; a JSON-lines file with `prompt` and `response` columns for `llada-train --sft`.

    python examples/shakespeare_dialogue.py runs/shakespeare_dialogue.jsonl [--max_bytes 128]

Only exchanges whose prompt and response fit in `--max_bytes` bytes together (the main job's 128-byte blocks) are
kept, in the order of the play text, so the last rows (the `--validation_split_percentage` that `llada-train` holds
out) come from its end.
"""

import argparse
import json
from pathlib import Path

from llada.training.data import DEFAULT_CORPUS


def speeches(text: str):
    """(speaker, speech) pairs of a play text in which turns are separated by blank lines, "Name:" first."""
    for turn in text.split("\n\n"):
        speaker, _, speech = turn.strip().partition(":\n")
        if speech and "\n" not in speaker:
            yield speaker, speech.strip()


def exchanges(text: str, max_bytes: int):
    turns = list(speeches(text))
    for (speaker, speech), (next_speaker, reply) in zip(turns, turns[1:]):
        prompt, response = f"{speaker}:\n{speech}\n\n{next_speaker}:\n", f"{reply}\n"
        if len(prompt.encode()) + len(response.encode()) + 1 <= max_bytes:  # + EOS
            yield {"prompt": prompt, "response": response}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="The JSON-lines file to write.")
    parser.add_argument("--max_bytes", type=int, default=128, help="Longest prompt + response + EOS, in bytes.")
    args = parser.parse_args()
    rows = list(exchanges(DEFAULT_CORPUS.read_text(encoding="utf-8"), args.max_bytes))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"Wrote {len(rows)} exchanges to {args.output}")


if __name__ == "__main__":
    main()
