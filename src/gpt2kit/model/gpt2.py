"""GPT-2 in PyTorch: token ids -> logits.

Module names are those of OpenAI's checkpoint (wte, wpe, h.N.ln_1, h.N.attn.c_attn,
h.N.mlp.c_fc, ln_f), so weights map across by name. Linear layers are nn.Linear
(weight [out, in]); the checkpoint's Conv1D weights ([in, out]) are transposed
once when loading and saving (gpt2kit.weights), never in the forward pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt2kit.config import GPT2Config
from gpt2kit.model.attention import causal_attention
from gpt2kit.model.cache import KVCache


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPT2Config, layer: int = 0) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        self.scale = config.attn_scale(layer)
        self.upcast = config.reorder_and_upcast_attn

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, past + T, hs)
        dropout_p = self.attn_pdrop if self.training else 0.0
        if is_causal and mask is None and cache is None and (dropout_p > 0.0 or not self.upcast):
            y = causal_attention(q, k, v, dropout_p, self.scale)  # with dropout its scores are fp32 anyway
        elif self.upcast and q.dtype != torch.float32:
            y = upcast_attention(q, k, v, mask, is_causal, dropout_p, self.scale)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                                               scale=self.scale)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def upcast_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     is_causal: bool, dropout_p: float, scale: float) -> torch.Tensor:
    """Attention with fp32 scores and softmax for bf16 / fp16 q, k, v (B, nh, T, hs), as
    transformers' reorder_and_upcast_attn computes it: the weights return to v's dtype for
    the product with v."""
    with torch.autocast(q.device.type, enabled=False):
        s = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(scale)  # (B, nh, T, S) fp32
    T, S = s.shape[-2:]
    if is_causal:
        s.masked_fill_(torch.ones(T, S, dtype=torch.bool, device=s.device).triu_(S - T + 1), float("-inf"))
    if mask is not None:
        s.masked_fill_(~mask, float("-inf"))
    p = F.dropout(s.softmax(dim=-1).to(v.dtype), dropout_p, training=dropout_p > 0.0)
    return torch.matmul(p, v)


class MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.inner_dim)
        self.c_proj = nn.Linear(config.inner_dim, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.approximate = "tanh" if config.activation_function == "gelu_new" else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    def __init__(self, config: GPT2Config, layer: int = 0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, mask, is_causal, cache, layer):
        x = x + self.attn(self.ln_1(x), mask, is_causal, cache, layer)
        return x + self.mlp(self.ln_2(x))


def embedding(num: int, dim: int) -> nn.Embedding:
    """nn.Embedding, left uninitialised on the meta device, where the loaders build the model before
    assigning the file's tensors: nn.Embedding's own normal_ there goes through torch._refs, whose first
    use imports torch._dynamo, 2-3 s of CPU in every process that loads a model."""
    if torch.get_default_device().type == "meta":
        return nn.Embedding(num, dim, _weight=torch.empty(num, dim))
    return nn.Embedding(num, dim)


class GPT2(nn.Module):
    """The GPT-2 language model. `model(input_ids)` returns logits (batch, seq, vocab)."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.generation_config: dict = {}  # generation_config.json's keys, set by the folder loader
        self.wte = embedding(config.vocab_size, config.n_embd)
        self.wpe = embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        if not config.tie_word_embeddings:  # otherwise the head is wte itself
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._packed_head = None  # set by pack_weights()
        # pack on the first incremental decode of a model in eval mode (new_cache), so a model fresh
        # from from_pretrained decodes on the fast path without a pack_weights() call
        self.auto_pack = True
        self.gradient_checkpointing = False  # recompute each block's activations in backward (training)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    # ---- construction ----------------------------------------------------------------------

    def reset_parameters(self, seed: int | None = None) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if p.dim() == 1:
                with torch.no_grad():
                    p.fill_(1.0 if name.endswith("weight") else 0.0)  # LayerNorm gains / biases
                continue
            scale = 1 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else 1.0
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * (std * scale))

    @classmethod
    def from_config(cls, config: GPT2Config | str, seed: int | None = None) -> GPT2:
        """A model with fresh random weights, from a config or a preset name."""
        if isinstance(config, str):
            config = GPT2Config.from_name(config)
        model = cls(config)
        if seed is not None:
            model.reset_parameters(seed)
        return model

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, dtype: torch.dtype | None = None,
                        device: torch.device | str | None = None, fmt: str = "auto",
                        checkpoint_step: int | None = None, config_file: str | Path | None = None) -> GPT2:
        """Load a model folder or file in any format gpt2kit reads (the format is detected) or a
        published name such as `gpt2`; `checkpoint_step` picks one save of a TensorFlow run folder
        (gpt-2-simple's model-<step>), `config_file` the hparams.json of a Keras .h5."""
        from gpt2kit.weights import load_model

        return load_model(name_or_path, dtype=dtype, device=device, fmt=fmt, checkpoint_step=checkpoint_step,
                          config_file=None if config_file is None else Path(config_file))

    def save_pretrained(self, path: str | Path, *, metadata: dict | None = None) -> Path:
        """Write a Hugging Face-compatible folder: config, safetensors weights, tokenizer files."""
        from gpt2kit.weights import save_model

        return save_model(self, path, metadata=metadata)

    def set_dropout(self, p: float) -> None:
        """Use dropout probability p everywhere (embeddings, attention weights, residuals) from now on."""
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p
            elif isinstance(module, CausalSelfAttention):
                module.attn_pdrop = p

    # ---- forward ----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_length: int | None = None) -> KVCache:
        """A KV cache for decoding `batch_size` rows; also packs the weights (see `auto_pack`)."""
        if self.auto_pack and not self.training and self._packed_head is None:
            self.pack_weights()  # False, and nothing changed, off the CPU or where oneDNN cannot pack
        return KVCache(self.config, batch_size, max_length, device=self.device, dtype=self.dtype)

    def hidden_states(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Final layer-normed hidden states (B, T, n_embd).

        attention_mask (B, past + T) marks real tokens with 1 and padding with 0; when it is
        given without position_ids, positions count real tokens only, so a left-padded
        prompt sees the same positions as it would alone. `inputs_embeds` (B, T, n_embd) replaces
        `input_ids` with the caller's token embeddings (soft mixtures, in Gumbel-softmax decoding).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        B, T = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        past = cache.length if cache is not None else 0
        if past + T > self.config.n_positions:
            raise ValueError(f"sequence of {past + T} tokens exceeds the context of {self.config.n_positions}")
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
            else:
                position_ids = torch.arange(past, past + T, device=device).unsqueeze(0)
        mask, is_causal = self._attention_mask(attention_mask, B, T, past, device)

        tokens = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        x = self.drop(tokens + self.wpe(position_ids))  # (B, T, C)
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.h):
            if checkpointing:
                x = checkpoint(block, x, mask, is_causal, cache, i, use_reentrant=False)
            else:
                x = block(x, mask, is_causal, cache, i)
        if cache is not None:
            cache.advance(T)
        return self.ln_f(x)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, vocab); with last_only, (B, 1, vocab) for the last position only,
        which is all that decoding needs and saves a (T x vocab) projection."""
        h = self.hidden_states(input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                               position_ids=position_ids, cache=cache)
        if last_only:
            h = h[:, -1:]
        weight = self.head_weight
        head = self._packed_head
        if head is not None and head.usable(weight, h):
            return head.linear(h, weight, None)
        return F.linear(h, weight)

    @property
    def head_weight(self) -> torch.Tensor:
        """The LM head's weight (vocab, n_embd): wte's (GPT-2's tied head), or lm_head's when untied."""
        return self.wte.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def pack_weights(self) -> bool:
        """Add oneDNN-packed copies of the weights for faster no-grad CPU inference (call after
        choosing dtype and device; LoRA adapters may be added before or after). Training, saving
        and autograd still use the plain weights, and a changed weight is repacked when next used.
        Returns False (and changes nothing) where packing is unavailable."""
        from gpt2kit.model.packing import PackedWeight, pack_linear, packable

        if self.device.type != "cpu" or not packable(self.dtype):
            return False
        # every nn.Linear of the blocks, adapters' base layers included; all packed before any is swapped,
        # so a failure leaves the model as it was
        linears = [m for m in self.h.modules() if isinstance(m, nn.Linear)]
        if any(m.weight.dtype != self.dtype or m.weight.device.type != "cpu" for m in linears):
            return False
        packed: list[PackedWeight] = []
        try:
            for weight in [m.weight for m in linears] + [self.head_weight]:
                packed.append(PackedWeight(weight))
        except Exception:
            for done in packed:
                done.release()
            raise
        *packed, head = packed
        for linear, weight in zip(linears, packed, strict=True):
            pack_linear(linear, weight)
        self._packed_head = head
        return True

    def unpack_weights(self) -> None:
        """Drop the packed copies (to free their memory)."""
        from gpt2kit.model.packing import unpack_linear

        for module in self.h.modules():
            unpack_linear(module)
        if self._packed_head is not None:
            self._packed_head.release()
        self._packed_head = None

    @staticmethod
    def _attention_mask(
        attention_mask: torch.Tensor | None, B: int, T: int, past: int, device: torch.device
    ) -> tuple[torch.Tensor | None, bool]:
        """Boolean mask (B, 1, T, past + T) for SDPA, or None with a causal flag when it can be avoided."""
        if attention_mask is None:
            if past == 0:
                return None, T > 1
            if T == 1:
                return None, False  # one new token may see every cached one
        total = past + T
        q_pos = torch.arange(past, total, device=device).unsqueeze(1)
        k_pos = torch.arange(total, device=device).unsqueeze(0)
        mask = (k_pos <= q_pos).unsqueeze(0).unsqueeze(0)  # (1, 1, T, total)
        if attention_mask is not None:
            if attention_mask.shape != (B, total):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, total)}")
            mask = mask & attention_mask.bool()[:, None, None, :]
            # A padding query sees no key at all, and SDPA turns an all-masked row into NaN;
            # letting it see itself keeps its (unused) output finite.
            mask = mask | (k_pos == q_pos).unsqueeze(0).unsqueeze(0)
        return mask, False
