"""CNN/DailyMail readers: the .story folder, the 3.0.0 tables (.jsonl, .csv, .parquet), MindSpore's
article<TAB>highlights file and any article/summary table, against the records the fixture's tables
hold (written from the stories by tests/fixtures/cnndm/make_tables.py, read here with json alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpt2kit.data.articles import read_articles, read_story
from gpt2kit.errors import DataError

CNNDM = Path(__file__).parents[1] / "fixtures" / "cnndm"


def table_rows() -> list[dict]:
    return [json.loads(line) for line in (CNNDM / "test.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["stories", "test.jsonl", "test.csv", "test.parquet"])
def test_every_form_reads_the_same_records(name):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    records = read_articles(CNNDM / name)
    expected = table_rows()
    assert [r.id for r in records] == [row["id"] for row in expected]
    assert [r.article for r in records] == [row["article"] for row in expected]
    assert [r.summary for r in records] == [row["highlights"] for row in expected]
    assert records[0].highlights == ("Riverton will build a footbridge over the Elm River .",
                                     "It will cost 4 million dollars .")
    assert records[0].article.endswith("since the old ferry stopped running .")  # the missing period added


def test_mindspore_tab_separated_file():
    records = read_articles(CNNDM / "test.txt")
    assert [r.article for r in records] == [row["article"] for row in table_rows()]
    assert [r.highlights for r in records] == [(row["highlights"].replace("\n", " "),) for row in table_rows()]


def test_limit_and_deterministic_shuffle():
    ids = [row["id"] for row in table_rows()]
    assert [r.id for r in read_articles(CNNDM / "stories", limit=3)] == ids[:3]
    shuffled = [r.id for r in read_articles(CNNDM / "test.jsonl", limit=4, seed=1)]
    assert shuffled == [r.id for r in read_articles(CNNDM / "test.jsonl", limit=4, seed=1)]
    assert shuffled != ids[:4] and set(shuffled) <= set(ids)
    with pytest.raises(DataError, match="--limit must be at least 1, got 0"):
        read_articles(CNNDM / "test.jsonl", limit=0)


def test_any_table_by_its_columns(tmp_path):
    rows = [{"body": "Package foo does things.\nIt is fast.", "synopsis": "does things", "name": "foo"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (record,) = read_articles(tmp_path / "d.jsonl", source_column="body", target_column="synopsis", id_column="name")
    assert (record.id, record.article, record.highlights) == ("foo", rows[0]["body"], ("does things",))


def test_bad_input(tmp_path):
    (tmp_path / "a.story").write_text("An article without its summary.\n\nSecond line.\n")
    with pytest.raises(DataError, match=r"a.story: no @highlight line"):
        read_story(tmp_path / "a.story")
    (tmp_path / "b.story").write_text("\n\n@highlight\n\nA summary of nothing\n")
    with pytest.raises(DataError, match=r"b.story: empty article"):
        read_articles(tmp_path / "b.story")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "x", "title": "y"}) + "\n")
    with pytest.raises(DataError, match=r"c.jsonl: no 'article' column \(columns: text, title; choose one with "
                                        r"--source-column\)"):
        read_articles(tmp_path / "c.jsonl")
    (tmp_path / "d.csv").write_text("article,summary\nsome text,a summary\n")
    with pytest.raises(DataError, match=r"d.csv: no 'highlights' column \(columns: article, summary; choose one "
                                        r"with --target-column\)"):
        read_articles(tmp_path / "d.csv")
    (tmp_path / "e.txt").write_text("an article with no summary column\n")
    with pytest.raises(DataError, match=r"e.txt:1: expected 'article<TAB>summary' \(one tab\), found 0 tabs"):
        read_articles(tmp_path / "e.txt")
    (tmp_path / "f.jsonl").write_text(json.dumps({"article": "  ", "highlights": "s"}) + "\n")
    with pytest.raises(DataError, match=r"f.jsonl:1: empty article"):
        read_articles(tmp_path / "f.jsonl")
