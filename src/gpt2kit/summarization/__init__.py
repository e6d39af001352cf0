"""Summarization: the published GPT-2 recipes (prompts, training examples, post-processing)."""

from gpt2kit.summarization.recipes import DEFAULT_RECIPE, RECIPES, Recipe, SummarizationError, recipe

__all__ = ["DEFAULT_RECIPE", "RECIPES", "Recipe", "SummarizationError", "recipe"]
