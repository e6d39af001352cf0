"""The published GPT-2 summarization recipes: how an article becomes a prompt (and a training
example), which decoding they used, and how the generated text is cut into a summary.

- `mindspore` (the default; MindSpore GPT-2's CNN/DailyMail table): train on
  `article + " TL;DR: " + all highlights`, newlines turned into spaces; prompt with the article cut
  at its last sentence end and " TL;DR:" appended; top-k 2, 100 new tokens; keep the text up to
  its third '.' (a plain character search).
- `gpt2-paper` (Radford et al. 2019, section 3.6, zero-shot): the article, then "\\nTL;DR:";
  top-k 2, 100 new tokens, the first 3 generated sentences. Not a training recipe.
- `tf2` (the TF2 GPT-2 project's fine-tuning on CNN/DailyMail): train on
  `article + "\\nTL;DR:\\n" + one highlight` (a random one each epoch); prompt the same way, same
  decoding as the others, the first 3 sentences.

Every recipe ends a training example with <|endoftext|>, and generation stops there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpt2kit.errors import GPT2KitError


class SummarizationError(GPT2KitError):
    """An unknown recipe, or an article and context that leave no room for a summary."""


# a sentence end: . ! or ? (closing quotes or brackets may follow) before whitespace or the end
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)\]]*(?=\s|$)")


@dataclass(frozen=True)
class Recipe:
    name: str
    separator: str  # between the article and the summary
    one_line: bool  # newlines in article and summary become spaces
    trainable: bool
    one_highlight: bool = False  # train on one highlight, a random one each epoch (tf2), not all of them
    cut_at_sentence_end: bool = False  # the prompt's article ends at its last sentence end
    keep_periods: int = 0  # mindspore: keep up to the Nth '.' (a plain character search)
    keep_sentences: int = 0  # otherwise: keep the first N sentences
    top_k: int = 2
    max_new_tokens: int = 100

    def article_text(self, article: str) -> str:
        return " ".join(article.split()) if self.one_line else article.strip()

    def target_text(self, highlights: list[str] | tuple[str, ...]) -> str:
        """The summary as the model learns to write it after the separator."""
        joined = " ".join(h.strip() for h in highlights) if self.one_line else "\n".join(h.strip() for h in highlights)
        return (" " if not self.separator.endswith("\n") else "") + joined

    def cut_prompt_article(self, article: str) -> str:
        """The article as the prompt holds it (mindspore: up to its last sentence end)."""
        if not self.cut_at_sentence_end:
            return article
        last = max(article.rfind(" ."), article.rfind(". "))
        if article.rstrip().endswith(".") or last < 0:
            return article.rstrip()
        return article[:last + 2] if article[last] == " " else article[:last + 1]

    def postprocess(self, text: str) -> str:
        """Generated text -> the summary that is scored."""
        text = text.split("<|endoftext|>", 1)[0]
        if self.keep_periods:
            end = -1
            for _ in range(self.keep_periods):
                end = text.find(".", end + 1)
                if end < 0:
                    break
            text = text if end < 0 else text[:end + 1]
        elif self.keep_sentences:
            ends = [m.end() for m in _SENTENCE_END.finditer(text)]
            if len(ends) >= self.keep_sentences:
                text = text[:ends[self.keep_sentences - 1]]
        return text.strip()


RECIPES = {
    "mindspore": Recipe("mindspore", " TL;DR:", one_line=True, trainable=True, cut_at_sentence_end=True,
                        keep_periods=3),
    "gpt2-paper": Recipe("gpt2-paper", "\nTL;DR:", one_line=False, trainable=False, keep_sentences=3),
    "tf2": Recipe("tf2", "\nTL;DR:\n", one_line=False, trainable=True, one_highlight=True, keep_sentences=3),
}
DEFAULT_RECIPE = "mindspore"


def recipe(name: str, *, training: bool = False) -> Recipe:
    if name not in RECIPES:
        raise SummarizationError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    chosen = RECIPES[name]
    if training and not chosen.trainable:
        trainable = ", ".join(n for n, r in RECIPES.items() if r.trainable)
        raise SummarizationError(f"recipe {name!r} is a zero-shot prompt, not a training format; train with one "
                                 f"of {trainable}")
    return chosen
