import pytest

from helpers import run_cli


@pytest.fixture(scope="package")
def model_dir(tmp_path_factory):
    """A tiny random model written by `gpt2kit init`, shared by the CLI tests."""
    out = tmp_path_factory.mktemp("cli") / "model"
    result = run_cli("init", "--config", "tiny", "--out", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    return out
