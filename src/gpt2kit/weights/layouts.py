"""How each checkpoint format names and shapes GPT-2's tensors, as declarative key maps.

gpt2kit's names are the module names of `GPT2` (`h.3.attn.c_attn.weight`, ...), with
linear weights [out, in] as nn.Linear holds them. OpenAI's TensorFlow release (with a
leading 1), MindSpore and Hugging Face store those four linear weights as [in, out]
(OpenAI's Conv1D); GGUF, nanoGPT and llm.c as [out, in]. The transpose happens here
and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import WeightsError

LINEAR_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
OURS = [
    "wte.weight", "wpe.weight",
    "h.{}.ln_1.weight", "h.{}.ln_1.bias", "h.{}.attn.c_attn.weight", "h.{}.attn.c_attn.bias",
    "h.{}.attn.c_proj.weight", "h.{}.attn.c_proj.bias", "h.{}.ln_2.weight", "h.{}.ln_2.bias",
    "h.{}.mlp.c_fc.weight", "h.{}.mlp.c_fc.bias", "h.{}.mlp.c_proj.weight", "h.{}.mlp.c_proj.bias",
    "ln_f.weight", "ln_f.bias",
]
HEAD = "lm_head.weight"  # only in models with tie_word_embeddings false
_MS_LAYER = "gpt2_decoder.layers.{}"
_MS_ATTN = _MS_LAYER + ".masked_multi_head_attention"
_MS_FF = _MS_LAYER + ".feedforward"


class TensorSource(Protocol):
    """A checkpoint's tensors by their names in the file, loaded one at a time."""

    def names(self) -> list[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def load(self, name: str) -> torch.Tensor: ...


class DictSource:
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def load(self, name: str) -> torch.Tensor:
        return self.tensors[name]


@dataclass(frozen=True)
class Layout:
    name: str
    names: dict[str, str]  # our name template -> file name template ("{}" is the layer)
    leading_one: bool = False  # linear weights stored [1, in, out]
    in_out: bool = True  # linear weights stored [in, out] (Conv1D); False: [out, in] as ours
    ignore: Callable[[str], bool] = lambda name: False  # file tensors that are not weights of ours

    def file_name(self, ours: str) -> str:
        m = re.match(r"h\.(\d+)\.(.*)", ours)
        if m is None:
            return self.names[ours]
        return self.names["h.{}." + m.group(2)].format(m.group(1))

    def file_shape(self, ours: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if not ours.endswith(LINEAR_WEIGHTS) or not self.in_out:
            return shape
        return ((1,) if self.leading_one else ()) + tuple(reversed(shape))

    def to_ours(self, ours: str, t: torch.Tensor) -> torch.Tensor:
        if ours.endswith(LINEAR_WEIGHTS) and self.in_out:
            t = (t[0] if self.leading_one else t).t()
        return t

    def to_file(self, ours: str, t: torch.Tensor) -> torch.Tensor:
        if ours.endswith(LINEAR_WEIGHTS) and self.in_out:
            t = t.t().contiguous()
            if self.leading_one:
                t = t.unsqueeze(0)
        return t

    def export(self, state: dict[str, torch.Tensor]) -> dict[str, Callable[[], torch.Tensor]]:
        """Our state dict under this format's names; each tensor is converted when called for,
        so writers hold one converted tensor at a time."""
        return {self.file_name(k): (lambda k=k, v=v: self.to_file(k, v.detach())) for k, v in state.items()}


def _hf_ignored(name: str) -> bool:
    # causal-mask buffers, and the LM head of a tied model (a copy of wte; checked in collect)
    return name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias"))


def _openai_ignored(name: str) -> bool:
    # optimizer slots and counters that fine-tuning scripts save next to the weights
    return not name.startswith("model/") or bool(re.search(r"/(Adam(_\d+)?|Momentum|RMSProp(_\d+)?)$", name))


# an untied head (tie_word_embeddings false) is lm_head.weight, outside "transformer."
HF_BASE = Layout("hf", {**{t: t for t in OURS}, HEAD: HEAD}, ignore=_hf_ignored)  # GPT2Model: no prefix
HF = Layout("hf", {**{t: "transformer." + t for t in OURS}, HEAD: HEAD}, ignore=_hf_ignored)  # GPT2LMHeadModel
OPENAI = Layout("openai", {
    "wte.weight": "model/wte", "wpe.weight": "model/wpe",
    "h.{}.ln_1.weight": "model/h{}/ln_1/g", "h.{}.ln_1.bias": "model/h{}/ln_1/b",
    "h.{}.attn.c_attn.weight": "model/h{}/attn/c_attn/w", "h.{}.attn.c_attn.bias": "model/h{}/attn/c_attn/b",
    "h.{}.attn.c_proj.weight": "model/h{}/attn/c_proj/w", "h.{}.attn.c_proj.bias": "model/h{}/attn/c_proj/b",
    "h.{}.ln_2.weight": "model/h{}/ln_2/g", "h.{}.ln_2.bias": "model/h{}/ln_2/b",
    "h.{}.mlp.c_fc.weight": "model/h{}/mlp/c_fc/w", "h.{}.mlp.c_fc.bias": "model/h{}/mlp/c_fc/b",
    "h.{}.mlp.c_proj.weight": "model/h{}/mlp/c_proj/w", "h.{}.mlp.c_proj.bias": "model/h{}/mlp/c_proj/b",
    "ln_f.weight": "model/ln_f/g", "ln_f.bias": "model/ln_f/b",
}, leading_one=True, ignore=_openai_ignored)
MINDSPORE = Layout("mindspore", {
    "wte.weight": "gpt2_embedding_lookup.embedding_table",
    "wpe.weight": "gpt2_embedding_postprocess.position_embedding_table",
    "h.{}.ln_1.weight": _MS_ATTN + ".layer_norm.layer_norm.gamma",
    "h.{}.ln_1.bias": _MS_ATTN + ".layer_norm.layer_norm.beta",
    "h.{}.attn.c_attn.weight": _MS_ATTN + ".masked_self_attention.c_attn.weight",
    "h.{}.attn.c_attn.bias": _MS_ATTN + ".masked_self_attention.c_attn.bias",
    "h.{}.attn.c_proj.weight": _MS_ATTN + ".masked_self_attention.c_proj.weight",
    "h.{}.attn.c_proj.bias": _MS_ATTN + ".masked_self_attention.c_proj.bias",
    "h.{}.ln_2.weight": _MS_FF + ".layernorm.layer_norm.gamma",
    "h.{}.ln_2.bias": _MS_FF + ".layernorm.layer_norm.beta",
    "h.{}.mlp.c_fc.weight": _MS_FF + ".c_fc.weight",
    "h.{}.mlp.c_fc.bias": _MS_FF + ".c_fc.bias",
    "h.{}.mlp.c_proj.weight": _MS_FF + ".c_proj.weight",
    "h.{}.mlp.c_proj.bias": _MS_FF + ".c_proj.bias",
    "ln_f.weight": "layer_norm.layer_norm.gamma",
    "ln_f.bias": "layer_norm.layer_norm.beta",
}, ignore=lambda name: name.startswith(("moments.", "adam_", "global_step", "learning_rate", "beta1_power",
                                          "beta2_power", "current_iterator_step", "last_overflow_iterator_step",
                                          "epoch_num", "step_num", "loss_scale")))

# llama.cpp's names for architecture "gpt2" (gguf.constants); `output.weight` only when the head is untied
GGUF = Layout("gguf", {
    "wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
    "h.{}.ln_1.weight": "blk.{}.attn_norm.weight", "h.{}.ln_1.bias": "blk.{}.attn_norm.bias",
    "h.{}.attn.c_attn.weight": "blk.{}.attn_qkv.weight", "h.{}.attn.c_attn.bias": "blk.{}.attn_qkv.bias",
    "h.{}.attn.c_proj.weight": "blk.{}.attn_output.weight", "h.{}.attn.c_proj.bias": "blk.{}.attn_output.bias",
    "h.{}.ln_2.weight": "blk.{}.ffn_norm.weight", "h.{}.ln_2.bias": "blk.{}.ffn_norm.bias",
    "h.{}.mlp.c_fc.weight": "blk.{}.ffn_up.weight", "h.{}.mlp.c_fc.bias": "blk.{}.ffn_up.bias",
    "h.{}.mlp.c_proj.weight": "blk.{}.ffn_down.weight", "h.{}.mlp.c_proj.bias": "blk.{}.ffn_down.bias",
    "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias",
    HEAD: "output.weight",
}, in_out=False)


# gpt-tf2's Keras layers, `<layer>/<weight>`; the attention's Wq/Wk/Wv (and biases) are stored apart,
# joined under `_Wqkv` / `_bqkv` by keras_h5.py ("{0}": the layer number appears twice)
_KERAS_ATT, _KERAS_FF = "Encode-{0}-MultiHeadAtt", "Encode-{0}-FeedForward"
KERAS = Layout("keras-h5", {
    "wte.weight": "Embed-Token/embeddings", "wpe.weight": "Embed-Token-Pos/embeddings",
    "h.{}.ln_1.weight": _KERAS_ATT + "-Norm/gamma", "h.{}.ln_1.bias": _KERAS_ATT + "-Norm/beta",
    "h.{}.attn.c_attn.weight": f"{_KERAS_ATT}/{_KERAS_ATT}_Wqkv",
    "h.{}.attn.c_attn.bias": f"{_KERAS_ATT}/{_KERAS_ATT}_bqkv",
    "h.{}.attn.c_proj.weight": f"{_KERAS_ATT}/{_KERAS_ATT}_Wo",
    "h.{}.attn.c_proj.bias": f"{_KERAS_ATT}/{_KERAS_ATT}_bo",
    "h.{}.ln_2.weight": _KERAS_FF + "-Norm/gamma", "h.{}.ln_2.bias": _KERAS_FF + "-Norm/beta",
    "h.{}.mlp.c_fc.weight": f"{_KERAS_FF}/{_KERAS_FF}_W1", "h.{}.mlp.c_fc.bias": f"{_KERAS_FF}/{_KERAS_FF}_b1",
    "h.{}.mlp.c_proj.weight": f"{_KERAS_FF}/{_KERAS_FF}_W2", "h.{}.mlp.c_proj.bias": f"{_KERAS_FF}/{_KERAS_FF}_b2",
    "ln_f.weight": "Norm/gamma", "ln_f.bias": "Norm/beta",
})


# nanoGPT's module names are GPT2LMHeadModel's, its linear layers nn.Linear; `lm_head.weight` is
# always saved (tied: the same tensor as wte) and old versions save the causal mask `attn.bias`
NANOGPT = Layout("nanogpt", HF.names, in_out=False, ignore=_hf_ignored)
# llm.c's model.bin has no names, only an order: OURS (its tensors stacked over layers; llmc.py)
LLMC = Layout("llmc", {t: t for t in OURS}, in_out=False)


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Our tensor names and shapes for a config, without building weights."""
    from gpt2kit.model.gpt2 import GPT2

    with torch.device("meta"):
        return {n: tuple(p.shape) for n, p in GPT2(config).state_dict().items()}


def collect(layout: Layout, source: TensorSource, config: GPT2Config, where: Path | str,
            config_file: str, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Our state dict from a checkpoint, checking each tensor's presence and shape against the
    config. One line names the file and the first problem found. dtype None keeps the file's."""
    expected = expected_shapes(config)
    by_file = {layout.file_name(n): n for n in expected}
    present = set(source.names())
    unexpected = sorted(n for n in present if n not in by_file and not layout.ignore(n))
    if unexpected:
        raise WeightsError(f"{where}: unexpected tensor '{unexpected[0]}' (not part of a GPT-2 model of this "
                           f"config{f', {len(unexpected) - 1} more' if len(unexpected) > 1 else ''})")
    missing = [f for f in by_file if f not in present]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise WeightsError(f"{where}: missing tensor '{missing[0]}'{more}")
    state = {}
    for file_name, ours in by_file.items():
        want = layout.file_shape(ours, expected[ours])
        got = tuple(source.shape(file_name))
        if got != want:
            raise WeightsError(f"{where}: tensor '{file_name}' has shape {got}, {config_file} implies {want}")
        t = source.load(file_name)
        if not t.is_floating_point():
            raise WeightsError(f"{where}: tensor '{file_name}' has dtype {t.dtype}, expected floating point")
        state[ours] = layout.to_ours(ours, t).to(dtype or t.dtype).contiguous()
    head = layout.names.get(HEAD)
    if HEAD not in expected and head in present:  # a tied model's file may hold its head as a copy of wte
        wte = layout.file_name("wte.weight")
        if tuple(source.shape(head)) != tuple(source.shape(wte)) or not torch.equal(source.load(head),
                                                                                     source.load(wte)):
            raise WeightsError(f"{where}: tensor '{head}' differs from '{wte}', but {config_file} says "
                               "tie_word_embeddings: true (set it to false to use the separate head)")
    return state
