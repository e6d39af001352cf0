"""The `label: text` format: what fine-tuning reads, and prompts that match it token for token."""

from __future__ import annotations

import pytest

from gpt2kit.augmentation.lines import generated_text, prompt_ids, training_line, write_training_lines
from gpt2kit.data.sources import iter_documents
from gpt2kit.errors import DataError
from gpt2kit.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained()


def test_lines_are_documents_of_the_data_readers(tmp_path):
    path = write_training_lines(tmp_path / "lines.jsonl", ["In the beginning\nGod created", "Jesus wept."],
                                ["OT", " NT "])
    documents = ["".join(pieces) for pieces in iter_documents(path)]
    assert documents == ["OT: In the beginning God created\n", "NT: Jesus wept.\n"]


@pytest.mark.parametrize("label", ["OT", "law", "positive", "1", "Science/Tech", "négatif"])
def test_the_prompt_is_how_a_training_document_starts(tok, label):
    """Training text is <|endoftext|> + line: the prompt must be a prefix of its tokens, or the
    model would be prompted with a token split it never saw."""
    document = [tok.eot_id, *tok.encode(training_line(label, "And the LORD spake unto Moses"))]
    prompt = prompt_ids(tok, label)
    assert prompt[0] == tok.eot_id and tok.decode(prompt[1:]) == f"{label}:"
    assert document[:len(prompt)] == prompt


def test_an_empty_label_is_refused(tok):
    with pytest.raises(DataError, match="label is empty"):
        prompt_ids(tok, "  ")


def test_a_completion_ends_at_its_line():
    assert generated_text(" And he went out.\nOT: more") == "And he went out."
    assert generated_text("  \n") == ""
