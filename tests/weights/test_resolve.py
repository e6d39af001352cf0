"""Published names resolve through the Hugging Face cache; with no copy and no hub, one clear line."""

from __future__ import annotations

import socket

from helpers import assert_user_error, random_model, run_cli


def test_offline_without_cached_copy(tmp_path):
    result = run_cli("generate", "--model", "gpt2", "--prompt", "hi",
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_user_error(result, "'gpt2'", "not in the Hugging Face cache", "offline")


def test_unreachable_hub(tmp_path):
    with socket.socket() as s:  # a port with nothing listening: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("info", "--model", "124M",
                     env={"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
                          "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_ETAG_TIMEOUT": "2"})
    assert_user_error(result, "'gpt2'", "could not be downloaded")


def test_cached_copy_is_found_offline(tmp_path):
    # the Hugging Face cache layout: models--ORG--NAME/{refs/main, snapshots/REV/...}
    repo = tmp_path / "hub" / "models--openai-community--gpt2-medium"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    random_model().save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    result = run_cli("info", "--model", "355M", env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert str(snapshot) in result.stdout
    assert "2 layers" in result.stdout
