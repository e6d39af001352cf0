"""The `label: text` format a language model is fine-tuned on and prompted with.

Each labelled example becomes one document, `label: text` and a newline, with the whitespace of
the text (newlines included) collapsed to single spaces. The documents are written as JSONL
records, which gpt2kit's data readers join with <|endoftext|> between them; so every example starts
right after an <|endoftext|>. Prompting with `<|endoftext|>label:` puts the model where an example
of that label starts, and the end of the line ends the generated text. A newline, not
<|endoftext|>, marks the end because every model has seen countless line ends, while a small model
trained on plain text may never have produced <|endoftext|>: the shipped model, fine-tuned for 100
steps on lines ended by <|endoftext|> alone, still ran on past the end of most examples.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.errors import DataError
from gpt2kit.tokenizer import Tokenizer

SEPARATOR = ": "
END_OF_LINE = "\n"  # a stop string of generation: an example is one line


def one_line(text: str) -> str:
    return " ".join(text.split())


def training_line(label: str, text: str) -> str:
    return f"{one_line(label)}{SEPARATOR}{one_line(text)}"


def write_training_lines(path: Path, texts: Sequence[str], labels: Sequence[str]) -> Path:
    """The examples as JSONL records {"text": "label: text\\n"}, the file a fine-tuning run reads."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts and {len(labels)} labels")
    records = "".join(json.dumps({"text": training_line(label, text) + END_OF_LINE}, ensure_ascii=False) + "\n"
                      for text, label in zip(texts, labels, strict=True))
    return atomic_write(path, records)


def prompt_ids(tokenizer: Tokenizer, label: str) -> list[int]:
    """`<|endoftext|>label:`: where an example of `label` starts in the training text. The space of
    the separator is left for the model to generate: GPT-2's tokens carry their leading space, so a
    prompt ending in a space would force an unusual split of the first word."""
    if not one_line(label):
        raise DataError("a label is empty or only whitespace; every example needs a label")
    return [tokenizer.eot_id, *tokenizer.encode(one_line(label) + SEPARATOR.rstrip())]


def generated_text(completion: str) -> str:
    """The example in a completion: up to the end of its line, without surrounding whitespace."""
    return completion.split(END_OF_LINE, 1)[0].strip()
