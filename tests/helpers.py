"""Helpers the tests share: tiny configs and random models."""

from __future__ import annotations

import torch

from gpt2kit import GPT2, GPT2Config


def tiny_config(**overrides) -> GPT2Config:
    """Small enough for fast tests, with all the shapes of the real thing."""
    base = dict(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=50257,
                embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    return GPT2Config(**{**base, **overrides})


def random_model(config: GPT2Config | None = None, seed: int = 0) -> GPT2:
    model = GPT2.from_config(config or tiny_config(), seed=seed)
    # non-trivial LayerNorm parameters and biases, so a swapped gain/bias cannot pass
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def hf_config(config: GPT2Config):
    import transformers

    return transformers.GPT2Config(**{k: v for k, v in config.to_hf_dict().items() if k != "architectures"})


def hf_random_model(config: GPT2Config | None = None, seed: int = 0):
    """transformers' GPT2LMHeadModel with random weights in every tensor (biases and
    LayerNorms included), in eval mode."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(hf_config(config or tiny_config()))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def hf_pair(tmp_path, config: GPT2Config | None = None, seed: int = 0):
    """A random transformers model and gpt2kit's load of what transformers saved."""
    hf = hf_random_model(config, seed)
    hf.save_pretrained(tmp_path / "hf")
    return hf, GPT2.from_pretrained(tmp_path / "hf")


def run_cli(*args: str, env: dict | None = None, timeout: float = 300):
    """Run `python -m gpt2kit ARGS` in a fresh process, as a user would from a shell."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gpt2kit", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)


def cli(*args: str):
    """Run `gpt2kit ARGS` in this process (gpt2kit.cli.main.main), returning what run_cli returns: the
    exit status and the text printed. For tests of what a command does rather than of the process: each
    fresh process costs 3-4 s of CPU (Python and torch imports)."""
    import contextlib
    import io
    import subprocess

    from gpt2kit.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse: usage errors (2), --help and --version (0)
            code = exit.code if isinstance(exit.code, int) else 1
    return subprocess.CompletedProcess(["gpt2kit", *args], code, out.getvalue(), err.getvalue())


def assert_user_error(result, *fragments: str) -> None:
    """A non-zero exit (1, or 2 for usage errors), one line on stderr naming the problem, no traceback."""
    assert result.returncode in (1, 2), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("gpt2kit") and "error:" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def hf_from_arrays(arrays: dict, names: dict, config: GPT2Config, out_in: bool = False):
    """A transformers GPT2LMHeadModel holding reference arrays (file name -> numpy array), mapped by
    `names` (transformers name -> file name). Conv1D weights are [in, out] in the TensorFlow-born
    formats, so only the leading 1 of OpenAI's is squeezed; `out_in`: the arrays hold the 2-D
    linear weights [out, in] (nn.Linear's, as llm.c and nanoGPT): they are transposed. An
    independent path from gpt2kit's loaders."""
    import transformers

    model = transformers.GPT2LMHeadModel(hf_config(config)).eval()

    linear = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

    def array(k: str, v: str):
        a = arrays[v].T if out_in and k.endswith(linear) else arrays[v]
        return torch.from_numpy(a.reshape(model.state_dict()[k].shape).copy()).float()

    state = {k: array(k, v) for k, v in names.items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    missing, _ = model.load_state_dict(state, strict=False)
    assert not [m for m in missing if not m.endswith((".attn.bias", ".attn.masked_bias"))], missing
    return model


def openai_names(n_layer: int) -> dict[str, str]:
    """transformers' GPT2LMHeadModel names -> OpenAI's TensorFlow variable names (for hf_from_arrays)."""
    names = {"transformer.wte.weight": "model/wte", "transformer.wpe.weight": "model/wpe",
             "transformer.ln_f.weight": "model/ln_f/g", "transformer.ln_f.bias": "model/ln_f/b"}
    for i in range(n_layer):
        for part in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            tf = part.replace(".", "/")
            w, b = ("g", "b") if part.startswith("ln") else ("w", "b")
            names[f"transformer.h.{i}.{part}.weight"] = f"model/h{i}/{tf}/{w}"
            names[f"transformer.h.{i}.{part}.bias"] = f"model/h{i}/{tf}/{b}"
    return names


def unxz(src, folder, name: str | None = None):
    """Decompress a fixture `X.xz` into `folder` (as X, or `name`); the path written."""
    import lzma
    from pathlib import Path

    out = Path(folder) / (name or Path(src).name.removesuffix(".xz"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(src) as f:
        out.write_bytes(f.read())
    return out
