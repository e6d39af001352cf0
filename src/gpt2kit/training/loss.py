"""Token-level negative log-likelihood without materialising the (tokens x vocabulary) logits.

The LM head and the cross-entropy run together, chunk by chunk: each chunk's logits
are turned in place into their gradient (softmax minus one-hot) during the forward
pass, which yields the gradients of the hidden states and of the head right away.
Nothing of size (tokens x 50257) outlives a chunk, and the backward pass only scales
what was kept. With GPT-2's vocabulary this is most of a small model's training time.

Targets equal to IGNORE_INDEX (-100, as in PyTorch and transformers) do not count: they
add nothing to the loss, get no gradient and cost no head compute (padding, prompts).
Training minimises the mean over counted tokens; evaluation adds up (sum, count) pairs,
so that a perplexity over many batches weighs every token alike.
"""

from __future__ import annotations

import torch

from gpt2kit.data.batch import IGNORE_INDEX

CHUNK = 1024  # positions per chunk: 1024 x 50257 fp32 logits is 200 MB


def _chunked(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, compute: torch.dtype,
             grad_h: bool, grad_w: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Summed loss over counted targets, and (when asked) its gradients with respect to h (N, C)
    and weight (V, C)."""
    with torch.autocast(h.device.type, enabled=False):
        w = weight.to(compute)
        dh = torch.empty(h.shape, dtype=h.dtype, device=h.device) if grad_h else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if grad_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], CHUNK):
            hc = h[start:start + CHUNK]
            y = targets[start:start + CHUNK]
            counted = y != IGNORE_INDEX
            rows = None if bool(counted.all()) else counted  # None: every row counts (windows; no copy)
            if rows is not None:
                if dh is not None:
                    dh[start:start + CHUNK] = 0  # ignored rows get no gradient
                if not bool(rows.any()):
                    continue
                hc, y = hc[rows], y[rows]
            hc = hc.to(compute)
            z = (hc @ w.t()).float()  # (n, V)
            lse = torch.logsumexp(z, dim=-1)
            total += (lse - z.gather(1, y[:, None]).squeeze(1)).sum()
            if dh is None and dw is None:
                continue
            z.sub_(lse[:, None]).exp_()  # softmax, in place
            z[torch.arange(len(y), device=z.device), y] -= 1.0  # minus one-hot: d loss / d logits
            dz = z if compute == torch.float16 else z.to(compute)  # fp16 would flush tiny gradients to 0
            if dh is not None:
                grad = dz @ w.to(dz.dtype)
                if rows is None:
                    dh[start:start + CHUNK] = grad
                else:
                    dh[start:start + CHUNK][rows] = grad.to(dh.dtype)
            if dw is not None:
                dw += (dz.t() @ hc.to(dz.dtype)).float()
    return total, dh, dw


class LinearCrossEntropy(torch.autograd.Function):
    """Summed cross_entropy(h @ weight.T, targets) over counted targets; h (N, C), weight (V, C),
    targets (N,)."""

    @staticmethod
    def forward(ctx, h, weight, targets, compute):
        total, dh, dw = _chunked(h, weight, targets, compute, h.requires_grad, weight.requires_grad)
        ctx.save_for_backward(dh if dh is not None else torch.empty(0), dw if dw is not None else torch.empty(0))
        ctx.has = (dh is not None, dw is not None)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        dh, dw = ctx.saved_tensors
        return (dh * grad_out if ctx.has[0] else None), (dw.to(grad_out.dtype) * grad_out if ctx.has[1] else None), \
            None, None


def linear_cross_entropy_sum(h: torch.Tensor, weight: torch.Tensor,
                             labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL, number of counted tokens) of the LM head `weight` (V, C) on hidden states
    h (..., C) against labels (...); labels equal to IGNORE_INDEX do not count."""
    device = h.device.type
    compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    flat_h, flat_y = h.reshape(-1, h.shape[-1]), labels.reshape(-1)
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        total = LinearCrossEntropy.apply(flat_h, weight, flat_y, compute)
    else:
        total = _chunked(flat_h, weight, flat_y, compute, False, False)[0]
    return total, (flat_y != IGNORE_INDEX).sum()


def mean_over(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """total / count, and 0 (with zero gradients, not NaN) when no token counted."""
    return total / count.clamp(min=1)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over the counted tokens: F.cross_entropy(F.linear(h, weight), labels, ignore_index=-100)
    without the logits, and 0 rather than NaN when no token counts."""
    return mean_over(*linear_cross_entropy_sum(h, weight, labels))
