"""`gpt2kit download --source hf` through huggingface_hub, against a local server that
answers as the Hugging Face Hub does (repo info, file tree, resolve URLs)."""

from __future__ import annotations

import filecmp
import hashlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch

from gpt2kit import GPT2
from helpers import assert_user_error, random_model, run_cli, tiny_config

REPO = "openai-community/gpt2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub(http.server.ThreadingHTTPServer):
    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.files = {p.name: p for p in folder.iterdir() if p.is_file()}
        self.requests: list[str] = []


class HubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path = urlparse(self.path).path
        self.server.requests.append(path)
        files = self.server.files
        if path == f"/api/models/{REPO}/revision/main":
            info = {"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": n} for n in files]}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        if path.startswith(f"/api/models/{REPO}/tree/{COMMIT}"):
            tree = [{"type": "file", "path": n, "size": p.stat().st_size,
                     "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for n, p in files.items()]
            return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
        prefix = f"/{REPO}/resolve/"
        name = path.rsplit("/", 1)[-1]
        if path.startswith(prefix) and name in files:
            data = files[name].read_bytes()
            return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'},
                              head=head)
        self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head=head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)


@pytest.fixture
def hub(tmp_path):
    model = random_model(tiny_config())
    model.save_pretrained(tmp_path / "served")
    server = Hub(tmp_path / "served")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, model
    server.shutdown()


def hub_env(server, tmp_path) -> dict:
    return {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_download_from_the_hub(hub, tmp_path):
    server, model = hub
    out = tmp_path / "models" / "gpt2"
    result = run_cli("download", "gpt2", "--source", "hf", "--out", str(out), env=hub_env(server, tmp_path))
    assert result.returncode == 0, result.stderr
    assert any(p.startswith(f"/{REPO}/resolve/{COMMIT}/") for p in server.requests)  # fetched from the "hub"
    for name, path in server.files.items():
        assert filecmp.cmp(out / name, path, shallow=False), name
    assert not list(out.parent.glob(".*"))  # no staging folder left
    ids = torch.randint(0, 50257, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(GPT2.from_pretrained(out)(ids), model(ids), atol=0, rtol=0)


def test_a_repo_the_hub_does_not_have_is_one_line(hub, tmp_path):
    server, _ = hub
    result = run_cli("download", "gpt2-medium", "--source", "hf", "--out", str(tmp_path / "m"),
                     env=hub_env(server, tmp_path))
    assert_user_error(result, "could not download 'gpt2-medium'")
    assert not (tmp_path / "m").exists()
