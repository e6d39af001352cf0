"""Articles -> summaries with a recipe: the prompt that fits the context, decoding with the
recipe's settings (any of which a caller overrides), the recipe's post-processing.

`summarize` runs batches through `complete`; `summarize_stream` gives one article's summary as
text pieces from `stream`, ending where the post-processing would cut it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from gpt2kit.backends.decoder import Decoder
from gpt2kit.generation import complete, stream
from gpt2kit.summarization.recipes import DEFAULT_RECIPE, Recipe, SummarizationError, recipe


@dataclass(frozen=True)
class Summary:
    prompt: str  # what the model was given: the (cut) article and the separator
    generated: str  # the model's text (up to <|endoftext|> or the token budget)
    summary: str  # the generated text after the recipe's post-processing


def recipe_settings(chosen: Recipe, settings: dict[str, Any]) -> dict[str, Any]:
    """The caller's generation settings over the recipe's (top-k, new tokens)."""
    return {"top_k": chosen.top_k, "max_new_tokens": chosen.max_new_tokens,
            **{k: v for k, v in settings.items() if v is not None}}


def summary_prompt(article: str, tokenizer, chosen: Recipe, context: int, max_new_tokens: int) -> str:
    """The recipe's prompt for `article`, its article cut (in tokens, then at a sentence end when
    the recipe says so) so that the prompt and `max_new_tokens` fit `context`."""
    if not article.strip():
        raise SummarizationError("empty article: nothing to summarize")
    separator = len(tokenizer.encode(chosen.separator))
    budget = context - max_new_tokens - separator
    if budget < 1:
        raise SummarizationError(
            f"a context of {context} tokens is too short for the prompt plus any summary: the separator "
            f"{chosen.separator!r} takes {separator} and --max-new-tokens {max_new_tokens}; lower --max-new-tokens")
    text = chosen.article_text(article)
    ids = tokenizer.encode(text)
    while True:
        if len(ids) > budget:
            text = tokenizer.decode(ids[:budget]).rstrip("\ufffd")  # a character cut in two is dropped
        prompt = chosen.cut_prompt_article(text) + chosen.separator
        extra = len(tokenizer.encode(prompt)) - separator - budget
        if extra <= 0:  # decoding and encoding again may join tokens differently: check the whole
            return prompt
        ids, budget = tokenizer.encode(text), budget - extra


def summarize(model: Decoder, tokenizer, articles: Sequence[str], *, recipe_name: str = DEFAULT_RECIPE,
              batch_size: int = 8, progress: bool = False, **settings: Any) -> list[Summary]:
    """One summary per article; `settings` are generation settings over the recipe's defaults
    (a seed advances by one per batch, so a batch size does not change which seed a row sees twice)."""
    chosen = recipe(recipe_name)
    settings = recipe_settings(chosen, settings)
    if settings.get("num_samples", 1) > 1 or settings.get("num_return_sequences", 1) > 1:
        raise SummarizationError("summarize writes one summary per article: drop --num-samples and "
                                 "--num-return-sequences")
    prompts = [summary_prompt(a, tokenizer, chosen, model.config.n_positions, settings["max_new_tokens"])
               for a in articles]
    out: list[Summary] = []
    seed = settings.pop("seed", None)
    with tqdm(total=len(prompts), unit="article", desc="summarizing", disable=not progress, leave=False) as bar:
        for n, first in enumerate(range(0, len(prompts), batch_size)):
            batch = prompts[first:first + batch_size]
            done = complete(model, tokenizer, batch, seed=None if seed is None else seed + n, **settings)
            out += [Summary(c.prompt, c.text, chosen.postprocess(c.text)) for c in done]
            bar.update(len(batch))
    return out


def summarize_stream(model: Decoder, tokenizer, article: str, *, recipe_name: str = DEFAULT_RECIPE,
                     **settings: Any) -> tuple[str, Iterator[str]]:
    """(prompt, pieces of the summary as they are generated); the pieces end where the recipe's
    post-processing ends the summary, and join to `summarize`'s summary for the same seed."""
    chosen = recipe(recipe_name)
    settings = recipe_settings(chosen, settings)
    prompt = summary_prompt(article, tokenizer, chosen, model.config.n_positions, settings["max_new_tokens"])
    events = stream(model, tokenizer, prompt, **settings)

    def pieces() -> Iterator[str]:
        # the post-processed text only grows as tokens come (a cut, once made, stays), so each new
        # part of it can be shown at once; once post-processing drops generated text, it is complete
        text, shown = "", 0
        for event in events:
            text += event.text
            summary = chosen.postprocess(text)
            if len(summary) > shown:
                yield summary[shown:]
                shown = len(summary)
            if summary != text.strip():
                return

    return prompt, pieces()
