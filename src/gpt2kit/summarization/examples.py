"""Articles -> training examples, as a recipe builds them: the article (read), the separator
(read), the summary and <|endoftext|> (trained), cut to the context by `Example.fit` (the
article loses its end; the separator and the summary stay whole).

`loss_on="target"` (the default) counts only the summary's tokens; `"all"` counts every token,
article included (the example is still cut as a target-only one would be).
"""

from __future__ import annotations

from collections.abc import Sequence

from gpt2kit.data.articles import Article
from gpt2kit.data.examples import Example, Part
from gpt2kit.summarization.recipes import Recipe, SummarizationError

LOSS_ON = ("target", "all")


def article_examples(article: Article, tokenizer, recipe: Recipe, seq_len: int,
                     loss_on: str = "target") -> tuple[Example, ...]:
    """The example of one article; with a one-highlight recipe (tf2) one variant per highlight."""
    if loss_on not in LOSS_ON:
        raise SummarizationError(f"--loss-on must be target or all, got {loss_on!r}")
    source = tokenizer.encode(recipe.article_text(article.article))
    separator = tokenizer.encode(recipe.separator)
    targets = [[h] for h in article.highlights] if recipe.one_highlight else [list(article.highlights)]
    out = []
    for highlights in targets:
        target = [*tokenizer.encode(recipe.target_text(highlights)), tokenizer.eot_id]
        need = len(separator) + len(target) + 1  # at least one article token before them
        if need > seq_len + 1:
            raise SummarizationError(
                f"article {article.id}: its summary and the separator take {need - 1} tokens, more than the "
                f"training context of {seq_len} leaves for them with any article; use a longer --seq-len or a model "
                "with a longer context")
        example = Example((Part(source, False), Part(separator, False), Part(target, True))).fit(seq_len)
        if loss_on == "all":
            example = Example(tuple(Part(p.ids, True) for p in example.parts))
        out.append(example)
    return tuple(out)


def summary_examples(articles: Sequence[Article], tokenizer, recipe: Recipe, seq_len: int,
                     loss_on: str = "target") -> list[tuple[Example, ...]]:
    """Each article's examples (variants of one item of an ExampleSampler)."""
    return [article_examples(a, tokenizer, recipe, seq_len, loss_on) for a in articles]
