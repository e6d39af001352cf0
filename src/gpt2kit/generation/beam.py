"""Beam search, with the scoring and stopping rules of transformers' `generate()`.

Per prompt, K = num_beams hypotheses run side by side as batch rows. Each step takes the
best 2K continuations over all beams x vocabulary (by summed log-probability, after the
logits steps). Continuations that end in a stop token, or reach the length budget, are
offered to the finished list with score sum_logprobs / generated_length ** length_penalty;
the best K that did not finish keep running. The search ends when no running beam can
beat the worst finished one (the early-stopping heuristic), when every finished slot is
full and early_stopping is True, or when every continuation has hit a stop.
"""

from __future__ import annotations

import torch

from gpt2kit.backends.decoder import Decoder
from gpt2kit.generation import logits as logits_steps
from gpt2kit.generation.batch import Batch
from gpt2kit.generation.settings import GenerationSettings

NEG = -1.0e9  # "impossible" score, finite so that sums and comparisons stay well defined


def _pick(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per prompt, select candidates: t (N, C, ...) with index (N, K) -> (N, K, ...)."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return t.gather(1, index.expand(*index.shape[:2], *t.shape[2:]))


def beam_search(model: Decoder, prompts: list[list[int]], settings: GenerationSettings,
                generator: torch.Generator | None) -> list[list[tuple[list[int], str]]]:
    """For each prompt, the best `num_return_sequences` (ids, finish_reason), best first."""
    N, K = len(prompts), settings.num_beams
    device = model.device
    budgets = torch.tensor([settings.new_tokens_for(len(p)) for p in prompts], device=device)
    n_new = int(budgets.max())
    if n_new == 0:
        return [[([], "length")] * settings.num_return_sequences for _ in prompts]
    stop_ids = torch.tensor(sorted(settings.stop_ids()), dtype=torch.long, device=device)
    C = max(2, 1 + len(stop_ids)) * K  # enough candidates that K can run on after the stops
    top_k_mask = torch.arange(C, device=device) < K
    lp, early = settings.length_penalty, settings.early_stopping

    batch = Batch(model, [p for p in prompts for _ in range(K)], n_new, settings.pad_token_id)
    steps = logits_steps.pipeline(settings, batch.width)
    running = torch.full((N, K, n_new), settings.pad_token_id, dtype=torch.long, device=device)
    running_scores = torch.zeros(N, K, device=device)
    running_scores[:, 1:] = NEG  # all beams start identical: let only the first expand
    finished = running.clone()
    finished_scores = torch.full((N, K), NEG, device=device)
    finished_len = torch.zeros(N, K, dtype=torch.long, device=device)
    finished_stop = torch.zeros(N, K, dtype=torch.bool, device=device)
    is_finished = torch.zeros(N, K, dtype=torch.bool, device=device)
    can_improve = torch.ones(N, 1, dtype=torch.bool, device=device)
    offsets = torch.arange(N, device=device)[:, None] * K

    logits = batch.prefill()
    for step in range(n_new):
        logp = logits_steps.apply(steps, batch.ids() if steps else None, logits.log_softmax(dim=-1))
        V = logp.shape[-1]
        total = (logp.view(N, K, V) + running_scores[:, :, None]).view(N, K * V)
        if settings.greedy:
            cand_scores, cand = torch.topk(total, C)
        else:  # beam sampling: draw the candidates instead of taking the best
            cand = torch.multinomial(total.softmax(-1), C, generator=generator)
            cand_scores, order = total.gather(1, cand).sort(dim=1, descending=True)
            cand = cand.gather(1, order)
        parent, token = cand // V, cand % V  # (N, C)
        cand_seqs = _pick(running, parent)
        cand_seqs[:, :, step] = token
        is_stop = torch.isin(token, stop_ids)
        hits = is_stop | (step + 1 >= budgets)[:, None]

        # the best K that did not hit a stop run on
        live_scores = cand_scores + hits.float() * NEG
        keep = torch.topk(live_scores, K).indices
        running, running_scores = _pick(cand_seqs, keep), live_scores.gather(1, keep)
        beam_parents = (parent.gather(1, keep) + offsets).view(-1)

        # finished hypotheses: candidates among the top K that hit a stop, if they beat the list
        just_finished = hits & top_k_mask
        scored = cand_scores / float(step + 1) ** lp
        full = is_finished.all(-1, keepdim=True) & (early is True)
        scored = scored + full.float() * NEG + (~can_improve).float() * NEG + (~just_finished).float() * NEG
        merged = torch.cat([finished_scores, scored], 1)
        best = torch.topk(merged, K).indices
        finished = _pick(torch.cat([finished, cand_seqs], 1), best)
        finished_scores = merged.gather(1, best)
        finished_len = torch.cat([finished_len, torch.full_like(token, step + 1)], 1).gather(1, best)
        finished_stop = torch.cat([finished_stop, is_stop], 1).gather(1, best)
        is_finished = torch.cat([is_finished, just_finished], 1).gather(1, best)

        # can a running beam still beat the worst finished one?
        length = float(n_new if early == "never" and lp > 0 else step + 1)
        best_running = running_scores[:, :1] / length ** lp
        worst = torch.where(is_finished, finished_scores.min(1, keepdim=True).values, torch.full_like(
            finished_scores, NEG))
        can_improve = can_improve & (best_running > worst).any(-1, keepdim=True)
        if not bool(can_improve.any()) or (bool(is_finished.all()) and early is True) or bool(hits.all()):
            break
        batch.reorder(beam_parents)
        logits = batch.append(running[:, :, step].reshape(-1))

    out = []
    for n in range(N):
        beams = []
        for k in range(settings.num_return_sequences):
            length = int(finished_len[n, k])
            reason = "stop_token" if bool(finished_stop[n, k]) else "length"
            beams.append((finished[n, k, :length].tolist(), reason))
        out.append(beams)
    return out
