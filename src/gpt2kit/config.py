"""GPT2Config: the model's shape, its presets, and the two file formats that describe it.

Hugging Face's `config.json` and OpenAI's `hparams.json` are read and written
here, so a config survives a round trip through either ecosystem.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2kit.errors import ConfigError

EOT_TOKEN_ID = 50256

# Shapes of the four published sizes and of small configs for tests and experiments.
PRESETS: dict[str, dict[str, int]] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=128),
    "mini": dict(n_layer=4, n_head=4, n_embd=256, n_positions=512),
    "pocket": dict(n_layer=6, n_head=4, n_embd=128, n_positions=256),
    "pocket-wide": dict(n_layer=6, n_head=6, n_embd=192, n_positions=256),  # under 25 MB in fp16
}
# OpenAI named its releases by parameter count.
ALIASES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl"}
PUBLISHED = tuple(ALIASES.values())  # the four released sizes
HF_OPTIONS = ("scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
              "tie_word_embeddings")
ACTIVATIONS = ("gelu_new", "gelu")  # transformers' names: tanh-approximated GELU (GPT-2's), exact GELU
TANH_GELU_ALIASES = ("gelu_new", "gelu_pytorch_tanh")  # the same function under transformers' two names


@dataclass
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    initializer_range: float = 0.02
    bos_token_id: int = EOT_TOKEN_ID
    eos_token_id: int = EOT_TOKEN_ID
    # transformers' GPT-2 options (config.json keys); the defaults are GPT-2 itself: scores scaled by
    # 1/sqrt(head_dim) (and by 1/(layer + 1) when asked), the LM head tied to wte.
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False  # scores and softmax in fp32 when the model runs in bf16 / fp16
    tie_word_embeddings: bool = True  # False: a separate lm_head.weight (vocab, n_embd)
    # GPT-2's GELU is the tanh approximation ("gelu_new"); nanoGPT trains with the exact one ("gelu")
    activation_function: str = "gelu_new"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"config: {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(f"config: activation_function must be one of {', '.join(ACTIVATIONS)}, got "
                              f"{self.activation_function!r}")
        for name in HF_OPTIONS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"config: {name} must be true or false, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def inner_dim(self) -> int:
        return self.n_inner or 4 * self.n_embd

    def attn_scale(self, layer: int) -> float:
        """The factor attention scores (q . k) are multiplied by in block `layer` (0-based)."""
        scale = self.head_dim ** -0.5 if self.scale_attn_weights else 1.0
        return scale / (layer + 1) if self.scale_attn_by_inverse_layer_idx else scale

    def non_default_options(self) -> list[str]:
        """The transformers options this config sets away from GPT-2's original model
        (which OpenAI's hparams.json cannot express)."""
        defaults = GPT2Config.__dataclass_fields__
        return [name for name in (*HF_OPTIONS, "activation_function") if getattr(self, name) != defaults[name].default]

    def departures(self) -> list[str]:
        """What sets this model apart from GPT-2's own network, as "name: value": the options above,
        an MLP width other than 4 * n_embd, a LayerNorm epsilon other than 1e-5. Programs with the
        network written in (llm.c, nanoGPT) hold none of these."""
        found = [f"{name}: {str(getattr(self, name)).lower()}" for name in self.non_default_options()]
        if self.inner_dim != 4 * self.n_embd:
            found.append(f"n_inner: {self.n_inner}")
        if self.layer_norm_epsilon != 1e-5:
            found.append(f"layer_norm_epsilon: {self.layer_norm_epsilon}")
        return found

    # ---- presets -------------------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPT2Config:
        """A preset by name: one of PRESETS, or a published size as OpenAI named it (124M...1558M)."""
        key = ALIASES.get(name, name)
        if key not in PRESETS:
            known = ", ".join([*PRESETS, *ALIASES])
            raise ConfigError(f"unknown config preset {name!r}; known presets: {known}")
        return cls(**{**PRESETS[key], **overrides})

    # ---- Hugging Face config.json ------------------------------------------------------

    @classmethod
    def from_hf_dict(cls, data: dict[str, Any], source: str = "config.json") -> GPT2Config:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ConfigError(f"{source}: model_type is {model_type!r}, not 'gpt2'")
        activation = data.get("activation_function", "gelu_new")
        if activation not in (*TANH_GELU_ALIASES, "gelu"):
            raise ConfigError(f"{source}: activation_function {activation!r} is neither GPT-2's tanh GELU "
                              "(gelu_new) nor the exact GELU (gelu)")
        data = {**data, "activation_function": "gelu_new" if activation in TANH_GELU_ALIASES else "gelu"}
        missing = [k for k in ("n_embd", "n_layer", "n_head") if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")
        if data.get("add_cross_attention"):
            raise ConfigError(f"{source}: add_cross_attention is true (an encoder-decoder GPT-2); gpt2kit runs "
                              "decoder-only GPT-2 models")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}".replace("config: ", "")) from None
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from None

    def to_hf_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_ctx": self.n_positions,
            "use_cache": True,
        }
        data.update(dataclasses.asdict(self))
        return data

    # ---- OpenAI hparams.json ------------------------------------------------------------

    @classmethod
    def from_hparams(cls, data: dict[str, Any], source: str = "hparams.json") -> GPT2Config:
        keys = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")
        try:
            return cls(
                vocab_size=data["n_vocab"],
                n_positions=data["n_ctx"],
                n_embd=data["n_embd"],
                n_head=data["n_head"],
                n_layer=data["n_layer"],
            )
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}".replace("config: ", "")) from None

    def to_hparams(self) -> dict[str, int]:
        return {
            "n_vocab": self.vocab_size,
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_layer": self.n_layer,
        }

    # ---- files ---------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> GPT2Config:
        """Read a `config.json` (Hugging Face) or `hparams.json` (OpenAI)."""
        path = Path(path)
        data = read_json(path)
        if path.name == "hparams.json" or "n_vocab" in data:
            return cls.from_hparams(data, source=str(path))
        return cls.from_hf_dict(data, source=str(path))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write `config.json` (or `hparams.json` when the file is named so)."""
        path = Path(path)
        data: dict[str, Any] = self.to_hparams() if path.name == "hparams.json" else self.to_hf_dict()
        if extra:
            data.update(extra)
        path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one line that names the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: malformed JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def read_generation_config(folder: str | Path) -> dict[str, Any]:
    """The keys of a model folder's `generation_config.json` ({} when it has none), its special
    ids checked here so that a bad file is named when the model loads, not when it generates."""
    path = Path(folder) / "generation_config.json"
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = data.get(name)
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{path}: {name} must be a token id or a list of them, got {value!r}")
    return data
