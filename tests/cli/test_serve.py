"""`gpt2kit serve` as a user starts it: the address printed, answers, a clean Ctrl-C, one-line errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest

from gpt2kit.cli.main import main
from gpt2kit.serving.server import exposure_warning, is_loopback


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpt2kit", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_prints_its_address_answers_and_stops_on_ctrl_c(tmp_path):
    template = tmp_path / "template.txt"
    template.write_text("system: {content}\\n\nuser: Q: {content}\\n\nassistant: A: {content}\\n\nreply: A:\n"
                        "stop: \\nQ:\n")
    process = start("--api-key", "k", "--model-name", "kjv", "--chat-template", str(template))
    try:
        line = process.stderr.readline()
        while "serving" not in line:
            assert line, process.stderr.read()
            line = process.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        headers = {"Authorization": "Bearer k"}
        answer = httpx.post(url + "/v1/chat/completions", headers=headers, timeout=60,
                            json={"model": "kjv", "messages": [{"role": "user", "content": "Who is the LORD?"}],
                                  "max_tokens": 5, "temperature": 0}).json()
        assert answer["model"] == "kjv" and answer["choices"][0]["message"]["role"] == "assistant"
        assert httpx.get(url + "/").headers["content-type"].startswith("text/html")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "server stopped" in err and "Traceback" not in err


def test_serve_refuses_bad_settings_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("user: {content}\n")
    for args, words in ((["--chat-template", str(bad)], "no line for"),
                        (["--chat-template", str(tmp_path / "missing.txt")], "cannot read")):
        assert main(["serve", *args]) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--max-batch-size", "0"])
    assert stop.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_serve_help_names_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--api-key", "--max-batch-size", "--max-queue", "--backend", "--dtype",
                 "--request-timeout", "--chat-template", "--cors-origin", "--max-body-bytes", "--model-name"):
        assert flag in out


def test_only_loopback_addresses_without_a_key_go_unwarned():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("0.0.0.0", "key") is None
    assert "without --api-key" in exposure_warning("0.0.0.0", None)
