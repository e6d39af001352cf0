"""The install: a small core, each optional feature in an extra, and `all` holding every extra."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_core_and_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert names(project["dependencies"]) == {"torch", "numpy", "safetensors", "tiktoken", "tqdm", "google-crc32c"}
    extras = project["optional-dependencies"]
    assert names(extras["hub"]) == {"huggingface-hub"} and names(extras["plot"]) == {"matplotlib"}
    assert names(extras["onnx"]) == {"onnx", "onnxruntime"}
    assert names(extras["serve"]) == {"fastapi", "uvicorn", "prometheus-client"}
    assert names(extras["eval"]) == {"rouge-score", "scikit-learn"} and names(extras["keras"]) == {"h5py"}
    assert names(extras["parquet"]) == {"pyarrow"}
    assert names(extras["bench"]) == {"ctranslate2", "llama-cpp-python"}  # peers `make bench` compares with
    assert names(extras["harness"]) == {"lm-eval"}  # lm-evaluation-harness against the server
    (everything,) = extras["all"]
    assert set(everything.removeprefix("gpt2kit[").removesuffix("]").split(",")) == set(extras) - {
        "all", "dev", "bench", "harness"}


def test_every_requirement_is_pinned():
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = names(project["dependencies"]) | {n for reqs in project["optional-dependencies"].values()
                                               for n in names(reqs)} - {"gpt2kit"}
    assert wanted <= pinned, wanted - pinned
