"""nanoGPT checkpoints (karpathy/nanoGPT): the `ckpt.pt` its train.py saves, read and written.

A torch.save dict: `model` (the state dict: GPT2LMHeadModel's names, nn.Linear weights [out, in],
`lm_head.weight` the same tensor as wte), `model_args` (n_layer, n_head, n_embd, block_size, bias,
vocab_size, dropout), `optimizer`, `iter_num`, `best_val_loss` and `config` (train.py's settings).
It is unpickled with weights_only=True only: a pickle can run code. Runs compiled with
torch.compile prefix every name with `_orig_mod.`.

What GPT-2's network cannot be is refused: bias=False models (no LayerNorm or Linear biases), and
character-level or other runs with a vocabulary of their own (shakespeare_char's 65 tokens, kept in
a meta.pkl that is never unpickled). Trained from scratch, nanoGPT pads GPT-2's 50257 tokens to
50304 (a multiple of 64, for speed): such a model loads with vocab_size 50304, and since nothing
says the padded rows went unused they are kept; ids past 50256 are no tokens, and sampling may
still pick one.

nanoGPT's MLP uses the exact GELU (nn.GELU()), GPT-2's the tanh approximation: a checkpoint reads
with activation_function "gelu", so gpt2kit computes what nanoGPT computed. nanoGPT ignores keys it
does not know at the top of the dict, so a checkpoint gpt2kit writes notes its model's GELU there
(`gpt2kit.activation_function`) and reads back exactly; nanoGPT itself runs any checkpoint with
the exact GELU (as its own `from_pretrained('gpt2')` does with GPT-2's weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gpt2kit.config import EOT_TOKEN_ID, GPT2Config
from gpt2kit.errors import ConfigError, WeightsError
from gpt2kit.weights.files import file_kind
from gpt2kit.weights.hf import torch_load
from gpt2kit.weights.layouts import HEAD, NANOGPT, DictSource, collect

FILE_NAME = "ckpt.pt"
COMPILED_PREFIX = "_orig_mod."
GPT2_VOCAB = EOT_TOKEN_ID + 1
MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")
NANOGPT_GELU = "gelu"  # nn.GELU(): the exact GELU
NOTES_KEY = "gpt2kit"  # what gpt2kit adds to the checkpoints it writes


def find_ckpt_pt(path: Path) -> Path:
    if path.is_file():
        return path
    found = [p for p in sorted(path.glob("*.pt")) if file_kind(p) == "nanogpt"]
    if len(found) == 1:
        return found[0]
    if not found and (path / FILE_NAME).is_file():
        return path / FILE_NAME  # not nanoGPT's: its reader says what it holds
    names = ", ".join(p.name for p in found)
    raise WeightsError(f"{path}: expected one nanoGPT checkpoint (.pt), found {len(found)}"
                       f"{f' ({names}): name one' if found else ''}")


def load_checkpoint(path: Path) -> dict[str, Any]:
    data = torch_load(path, "nanoGPT checkpoints of tensors and plain values")
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or not isinstance(
            data.get("model_args"), dict):
        raise WeightsError(f"{path}: not a nanoGPT checkpoint (no 'model' state dict and 'model_args' in it)")
    return data


def model_state(data: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The state dict, without torch.compile's `_orig_mod.` prefix."""
    state = data["model"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: its 'model' entry holds values other than tensors")
    return {k.removeprefix(COMPILED_PREFIX): v for k, v in state.items()}


def nanogpt_config(data: dict[str, Any], state: dict[str, torch.Tensor], path: Path) -> GPT2Config:
    args = data["model_args"]
    missing = [k for k in MODEL_ARGS if k not in args]
    if missing:
        raise WeightsError(f"{path}: its model_args have no '{missing[0]}'")
    if args.get("bias", True) is False:
        raise WeightsError(f"{path}: a nanoGPT model with bias=False: its LayerNorms and Linear layers have no "
                           "biases, which GPT-2's network has, so it cannot be loaded as GPT-2")
    vocab = args["vocab_size"]
    if isinstance(vocab, int) and vocab < GPT2_VOCAB:
        meta = " (its vocabulary is in the meta.pkl beside it)" if (path.parent / "meta.pkl").exists() else ""
        raise WeightsError(f"{path}: a model of {vocab} tokens, not GPT-2's {GPT2_VOCAB}: a character-level or "
                           f"other tokenizer's run{meta}; gpt2kit's tokenizer is GPT-2's")
    wte, head = state.get(NANOGPT.file_name("wte.weight")), state.get(HEAD)
    # nanoGPT always ties; a head that differs (edited after training) is kept as a separate one
    tied = head is None or wte is None or (head.shape == wte.shape and torch.equal(head, wte))
    dropout = args.get("dropout", 0.0)
    notes = data.get(NOTES_KEY) if isinstance(data.get(NOTES_KEY), dict) else {}
    try:
        return GPT2Config(vocab_size=vocab, n_positions=args["block_size"], n_embd=args["n_embd"],
                          n_layer=args["n_layer"], n_head=args["n_head"], embd_pdrop=dropout, attn_pdrop=dropout,
                          resid_pdrop=dropout, tie_word_embeddings=tied,
                          activation_function=notes.get("activation_function", NANOGPT_GELU))
    except (ConfigError, TypeError) as err:
        raise WeightsError(f"{path}: its model_args are no model: {str(err).removeprefix('config: ')}") from None


def read_nanogpt(path: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    file = find_ckpt_pt(path)
    data = load_checkpoint(file)
    state = model_state(data, file)
    config = nanogpt_config(data, state, file)
    return config, collect(NANOGPT, DictSource(state), config, file, "its model_args", dtype)


def write_nanogpt(model: Any, state: dict[str, torch.Tensor], folder: Path, tokenizer: Any,
                  metadata: Any = None) -> None:
    """ckpt.pt as nanoGPT's train.py saves it (no optimizer state): sample.py and `init_from='resume'` load it."""
    config = model.config
    departures = [d for d in config.departures() if not d.startswith("activation_function")]
    if departures:
        raise WeightsError(f"nanoGPT's GPT cannot hold {departures[0]} (its network has no such option); "
                           "save this model in the hf format")
    if config.vocab_size < GPT2_VOCAB:  # nanoGPT's sample.py would encode with GPT-2's tokenizer all the same
        raise WeightsError(f"a model of {config.vocab_size} tokens, fewer than GPT-2's {GPT2_VOCAB}: nanoGPT would "
                           "take it for a character-level run; save this model in the hf format")
    weights = {name: tensor() for name, tensor in NANOGPT.export(state).items()}
    weights[HEAD] = weights[NANOGPT.file_name("wte.weight")]  # as nanoGPT's own state_dict: one tensor, two names
    model_args = dict(n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                      block_size=config.n_positions, bias=True, vocab_size=config.vocab_size, dropout=0.0)
    torch.save({"model": weights, "optimizer": None, "model_args": model_args, "iter_num": 0,
                "best_val_loss": 1e9, "config": {}, NOTES_KEY: {"activation_function": config.activation_function}},
               folder / FILE_NAME)
