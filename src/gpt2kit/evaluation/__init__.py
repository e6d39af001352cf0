"""Measuring models: log-probabilities of given text (scoring)."""

from gpt2kit.evaluation.scoring import Scores, score

__all__ = ["Scores", "score"]
