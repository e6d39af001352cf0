"""Log-probabilities of chosen tokens, and the most likely alternatives.

A token's log-probability is the log-softmax, in fp32, of the model's raw logits at its
position: the model's own distribution, before temperature, penalties and top-k/p filters
(what transformers' `output_logits` gives). The decode loop and scoring both use this one
function, so a token scored later gets the value it was generated with.
"""

from __future__ import annotations

import torch

MAX_TOP = 20  # alternatives per token, as OpenAI's API allows


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, top: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """logits (..., V) and tokens (...) -> each token's log-probability (...), and with `top` > 0
    the `top` best log-probabilities (..., top) with their ids (..., top), best first.

    Only the chosen logit and a logsumexp are needed for the first: no (..., V) log-softmax is
    kept and nothing is sorted unless alternatives are asked for.
    """
    logits = logits.float()
    norm = logits.logsumexp(dim=-1, keepdim=True)  # (..., 1)
    chosen = (logits.gather(-1, tokens.unsqueeze(-1)) - norm).squeeze(-1)
    if not top:
        return chosen, None, None
    values, ids = logits.topk(min(top, logits.shape[-1]), dim=-1)
    return chosen, values - norm, ids


def as_dicts(values: torch.Tensor, ids: torch.Tensor) -> list[dict[int, float]]:
    """(N, top) log-probabilities and ids -> N dicts {token_id: logprob}, best first."""
    return [dict(zip(i, v, strict=True)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
