"""Causal self-attention with dropout on the attention weights, for training on CPU.

PyTorch's fused CPU attention kernel has no dropout, so `scaled_dot_product_attention`
with dropout_p > 0 falls back to its reference path: full (T x T) fp32 score matrices
for every head, including the masked half, and one float drawn per weight for the mask.
GPT-2 trains with attn_pdrop = 0.1, and that fallback takes most of a training step.

`causal_attention` instead walks blocks of query rows: a block only meets the keys
up to its last row, so the masked upper triangle is never computed; scores and the
softmax stay in fp32; the dropout mask is drawn 16 bits per weight from one int64
per four weights. The backward pass reuses the kept probabilities and masks:
dS = P * (dP - rowsum(dO * O)), which holds with dropout as well.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK = 128  # query rows per block: smaller skips more of the masked triangle, larger has fewer ops


def _dropped_of_65536(p: float) -> int:
    return min(round(p * 65536), 65535)  # at least one value in 65536 is kept


def _blocks(t: int, block: int) -> list[tuple[int, int]]:
    """(start, end) of each block of query rows; the block from start to end meets keys 0..end."""
    return [(start, min(start + block, t)) for start in range(0, t, block)]


def _dropped(prob: torch.Tensor, keep: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """The attention weights after dropout, in the dtype they multiply v in."""
    return (prob * keep).mul_(scale).to(dtype)


def keep_masks(bh: int, t: int, p: float, device: torch.device, block: int) -> list[torch.Tensor]:
    """One boolean keep-mask (bh, rows, keys) per query block; an entry is kept with
    probability 1 - round(p * 65536) / 65536 (p to within 1.6e-5)."""
    threshold = _dropped_of_65536(p) - 32768  # keep a random int16 r when r >= threshold
    masks = []
    for start, end in _blocks(t, block):
        n = bh * (end - start) * end
        # the full int64 range: random_() alone leaves the sign bit 0, which skews one lane in four
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, 2**63 - 1)
        masks.append(bits.view(torch.int16)[:n].view(bh, end - start, end) >= threshold)
    return masks


def keep_scale(p: float) -> float:
    """1 / (probability of keeping), so that the expected output is unchanged."""
    return 65536 / (65536 - _dropped_of_65536(p))


class _DropoutCausalAttention(torch.autograd.Function):
    """softmax(causal(q k^T * scale)) with dropout, times v; q, k, v (B*H, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v, p, scale):
        bh, t, d = q.shape
        kept = keep_scale(p)
        block = BLOCK
        masks = keep_masks(bh, t, p, q.device, block)
        out = torch.empty_like(v)
        probs = []
        with torch.autocast(q.device.type, enabled=False):
            qf, kf = q.float(), k.float()
            for i, (start, end) in enumerate(_blocks(t, block)):
                s = torch.bmm(qf[:, start:end], kf[:, :end].transpose(1, 2)).mul_(scale)  # (bh, rows, end) fp32
                s[:, :, start:].masked_fill_(_upper(end - start, q.device), float("-inf"))
                s = s.softmax(dim=-1)
                probs.append(s)
                torch.bmm(_dropped(s, masks[i], kept, v.dtype), v[:, :end], out=out[:, start:end])
        ctx.save_for_backward(q, k, v, out, *probs, *masks)
        ctx.blocks, ctx.block, ctx.p, ctx.scale = len(probs), block, p, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, *rest = ctx.saved_tensors
        probs, masks = rest[:ctx.blocks], rest[ctx.blocks:]
        t, scale, kept = q.shape[1], ctx.scale, keep_scale(ctx.p)
        dtype = v.dtype
        grad_out = grad_out.to(dtype)
        row_dot = (grad_out.float() * out.float()).sum(-1, keepdim=True)  # rowsum(dO * O), (bh, t, 1)
        dq = torch.empty_like(q)
        dk = torch.zeros(k.shape, dtype=torch.float32, device=k.device)
        dv = torch.zeros(v.shape, dtype=torch.float32, device=v.device)
        for i, (start, end) in enumerate(_blocks(t, ctx.block)):
            prob, mask, g = probs[i], masks[i], grad_out[:, start:end]
            dv[:, :end] += torch.bmm(_dropped(prob, mask, kept, dtype).transpose(1, 2), g).float()
            dp = torch.bmm(g, v[:, :end].transpose(1, 2)).float().mul_(mask).mul_(kept)
            ds = dp.sub_(row_dot[:, start:end]).mul_(prob).mul_(scale).to(dtype)  # d loss / d scores
            torch.bmm(ds, k[:, :end], out=dq[:, start:end])
            dk[:, :end] += torch.bmm(ds.transpose(1, 2), q[:, start:end]).float()
        return dq, dk.to(k.dtype), dv.to(dtype), None, None


def _upper(n: int, device: torch.device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).triu_(1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float,
                     scale: float | None = None) -> torch.Tensor:
    """Causal attention over q, k, v (B, H, T, D) with dropout on the weights (training);
    scores are q . k times `scale` (1 / sqrt(D) when None)."""
    if dropout_p == 0.0 or q.device.type != "cpu":  # fused kernels cover these
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)
    B, H, T, D = q.shape
    scale = 1 / math.sqrt(D) if scale is None else scale
    out = _DropoutCausalAttention.apply(q.reshape(B * H, T, D), k.reshape(B * H, T, D),
                                        v.reshape(B * H, T, D), dropout_p, scale)
    return out.view(B, H, T, D)
