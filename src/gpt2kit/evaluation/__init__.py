"""Measuring models: log-probabilities of given text (scoring), perplexity."""

from gpt2kit.evaluation.perplexity import Perplexity, heldout_text, perplexity
from gpt2kit.evaluation.scoring import Scores, score

__all__ = ["Perplexity", "Scores", "heldout_text", "perplexity", "score"]
