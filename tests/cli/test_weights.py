"""`gpt2kit convert` and `gpt2kit download` end to end (downloads from a local HTTP server)."""

from __future__ import annotations

import argparse
import base64
import filecmp
import hashlib
import http.server
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers

from gpt2kit import GPT2
from helpers import assert_user_error, cli, random_model, run_cli, tiny_config

FIXTURES = Path(__file__).parents[1] / "fixtures"
VOCAB = Path(__file__).parents[2] / "src" / "gpt2kit" / "tokenizer" / "data"


def test_convert_openai_to_hf_and_back(tmp_path):
    result = run_cli("convert", str(FIXTURES / "openai" / "tiny"), str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ours = GPT2.from_pretrained(FIXTURES / "openai" / "tiny")
    ids = torch.randint(0, 300, (1, 16))
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() <= 1e-5
    assert (tmp_path / "hf" / "vocab.json").is_file()
    result = run_cli("convert", str(tmp_path / "hf"), str(tmp_path / "oa"), "--to", "openai")
    assert result.returncode == 0, result.stderr
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001", "hparams.json"):
        assert filecmp.cmp(tmp_path / "oa" / name, FIXTURES / "openai" / "tiny" / name, shallow=False)


def test_gpt2simple_run_folder_by_step(tmp_path):
    run = FIXTURES / "gpt2simple" / "run1"
    info = cli("info", str(run))
    assert info.returncode == 0, info.stderr
    assert "format      openai" in info.stdout
    assert "run         run1: step 2 loaded (saved steps: 1, 2), counter 2" in info.stdout
    info = cli("info", str(run), "--checkpoint", "1")
    assert "run         run1: step 1 loaded (saved steps: 1, 2), counter 2" in info.stdout
    result = cli("convert", str(run), str(tmp_path / "hf"), "--checkpoint", "1")
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        ids = torch.arange(20)[None]
        assert torch.equal(GPT2.from_pretrained(tmp_path / "hf")(ids),
                           GPT2.from_pretrained(run, checkpoint_step=1)(ids))
    assert_user_error(cli("convert", str(run), str(tmp_path / "x"), "--checkpoint", "3"),
                      "run1", "no checkpoint of step 3 (saved steps: 1, 2)")
    assert_user_error(cli("info", str(tmp_path / "hf"), "--checkpoint", "1"),
                      "hf model holds one checkpoint", "only for TensorFlow checkpoint folders")


def test_keras_h5_convert_and_info(tmp_path):
    pytest.importorskip("h5py")
    info = run_cli("info", str(FIXTURES / "keras" / "tiny"))
    assert info.returncode == 0, info.stderr
    assert "format      keras-h5" in info.stdout and "2 layers, 2 heads, 16 embedding" in info.stdout
    result = run_cli("convert", str(FIXTURES / "keras" / "tiny"), str(tmp_path / "k"), "--to", "keras-h5")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "k").iterdir()} == {"model.h5", "hparams.json", "encoder.json", "vocab.bpe"}
    (tmp_path / "k" / "hparams.json").unlink()
    assert_user_error(run_cli("info", str(tmp_path / "k")), "model.h5: no hparams.json beside it")


def test_convert_mindspore_with_dtype(tmp_path):
    result = run_cli("convert", str(FIXTURES / "mindspore" / "gpt2_tiny_fp32.ckpt"), str(tmp_path / "m"),
                     "--from", "mindspore", "--dtype", "fp16")
    assert result.returncode == 0, result.stderr
    info = run_cli("info", "--model", str(tmp_path / "m"))
    assert "fp16" in info.stdout and "mindspore" in info.stdout


def test_convert_to_gguf_q8_0_and_run_it(tmp_path):
    random_model(tiny_config(n_embd=64)).save_pretrained(tmp_path / "hf")
    result = cli("convert", str(tmp_path / "hf"), str(tmp_path / "q8"), "--to", "gguf", "--dtype", "q8_0")
    assert result.returncode == 0, result.stderr
    info = cli("info", str(tmp_path / "q8"))
    assert "format      gguf" in info.stdout and "dtype       fp32, q8_0" in info.stdout, info.stdout
    out = cli("generate", "--model", str(tmp_path / "q8" / "model.gguf"), "--prompt", "And", "--max-new-tokens",
                  "4", "--temperature", "0")
    assert out.returncode == 0, out.stderr
    assert_user_error(cli("convert", str(tmp_path / "hf"), str(tmp_path / "x"), "--dtype", "q8_0"),
                      "q8_0 is a GGUF type", "--to gguf")
    assert not (tmp_path / "x").exists()


def test_convert_to_llmc_and_nanogpt_and_back(tmp_path):
    from helpers import unxz

    src = unxz(FIXTURES / "llmc" / "model.bin.xz", tmp_path / "src")  # tanh GELU, as both GPT-2 and llm.c
    result = cli("convert", str(src), str(tmp_path / "nano"), "--to", "nanogpt", "--dtype", "bf16")
    assert result.returncode == 0, result.stderr
    info = cli("info", str(tmp_path / "nano" / "ckpt.pt"))
    assert info.returncode == 0, info.stderr
    assert "format      nanogpt" in info.stdout and "dtype       bf16" in info.stdout
    result = cli("convert", str(tmp_path / "nano"), str(tmp_path / "llmc"), "--to", "llmc")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "llmc").iterdir()) == ["gpt2_tokenizer.bin", "model.bin"]
    info = cli("info", str(tmp_path / "llmc"))
    assert "format      llmc" in info.stdout and "dtype       bf16" in info.stdout
    ours = GPT2.from_pretrained(src).to(torch.bfloat16).float()
    back = GPT2.from_pretrained(tmp_path / "llmc", dtype=torch.float32)
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        assert torch.equal(ours(ids), back(ids))
    shape = f"{back.config.n_layer} layers, {back.config.n_head} heads, {back.config.n_embd} embedding"
    assert shape in info.stdout
    # nanoGPT's own checkpoints compute the exact GELU, which llm.c's network cannot
    nano = unxz(FIXTURES / "nanogpt" / "ckpt.pt.xz", tmp_path / "theirs")
    assert_user_error(cli("convert", str(nano), str(tmp_path / "x"), "--to", "llmc"),
                      "cannot hold activation_function: gelu")

def test_llmc_and_nanogpt_errors(tmp_path):
    from helpers import unxz

    data = unxz(FIXTURES / "llmc" / "model.bin.xz", tmp_path).read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:5000])
    assert_user_error(run_cli("info", str(tmp_path / "cut.bin")), "cut.bin", "truncated", "expected")
    (tmp_path / "magic.bin").write_bytes(b"\0\0\0\0" + data[4:])
    assert_user_error(run_cli("convert", str(tmp_path / "magic.bin"), str(tmp_path / "o")), "magic")
    assert_user_error(run_cli("convert", str(FIXTURES / "openai" / "tiny"), str(tmp_path / "o"), "--to", "llmc",
                              "--dtype", "fp16"), "fp32 or bf16")
    ckpt = unxz(FIXTURES / "nanogpt" / "ckpt.pt.xz", tmp_path / "nano")
    state = torch.load(ckpt, weights_only=True)
    state["config"] = argparse.Namespace(lr=6e-4)
    torch.save(state, ckpt)
    assert_user_error(run_cli("generate", "--model", str(tmp_path / "nano"), "--prompt", "Hi", "--max-new-tokens", "2"),
                      "ckpt.pt", "refused to unpickle")


def test_convert_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    result = run_cli("convert", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert_user_error(result, "no model in a known format", "hparams.json", "*.ckpt")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_user_error(run_cli("convert", str(FIXTURES / "openai" / "tiny"), str(tmp_path / "full")), "--overwrite")
    assert_user_error(run_cli("convert", str(FIXTURES / "openai" / "tiny"), str(tmp_path / "o"), "--to", "tf"),
                      "invalid choice")


# ---- download ---------------------------------------------------------------------------------------


class Server(http.server.ThreadingHTTPServer):
    """Serves OpenAI's layout (/124M/FILE) from the fixtures, honouring Range requests.
    `cut` names a file whose first response breaks off halfway, as a dropped connection does."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.cut, self.ranges, self.whole_as_206 = files, None, [], False


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/124M/") or name not in self.server.files:
            self.send_error(404)
            return
        data = self.server.files[name].read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start = 0
        # If-Range: the range only if the file is still the one the client has part of
        if "Range" in self.headers and self.server.whole_as_206:  # a 206 of another range than asked for
            self.server.whole_as_206 = False
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        elif "Range" in self.headers and self.headers.get("If-Range", etag) == etag:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.server.ranges.append((name, start))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", etag)
        self.send_header("x-ms-blob-content-md5", base64.b64encode(hashlib.md5(data).digest()).decode())
        self.end_headers()
        if self.server.cut == name:
            self.server.cut = None
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server():
    tiny = FIXTURES / "openai" / "tiny"
    files = {p.name: p for p in tiny.iterdir()} | {"encoder.json": VOCAB / "encoder.json",
                                                   "vocab.bpe": VOCAB / "vocab.bpe"}
    srv = Server(files)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def test_download_resumes_after_an_interruption(server, tmp_path):
    url = f"http://127.0.0.1:{server.server_port}"
    out = tmp_path / "models" / "gpt2"
    server.cut = "model.ckpt.data-00000-of-00001"
    first = run_cli("download", "124M", "--mirror", url, "--out", str(out))
    assert_user_error(first, "interrupted", "run the same command again")
    assert not out.exists()  # never a half-written model
    second = run_cli("download", "124M", "--mirror", url, "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert server.ranges and server.ranges[0][0] == "model.ckpt.data-00000-of-00001" and server.ranges[0][1] > 0
    for name, path in server.files.items():
        assert filecmp.cmp(out / name, path, shallow=False), name
    assert not list(tmp_path.glob("models/.*"))  # the staging folder is gone
    # "&" is token 5, inside the fixture's 300-token vocabulary
    generated = run_cli("generate", "--model", str(out), "--prompt", "&", "--max-new-tokens", "3")
    assert generated.returncode == 0, generated.stderr


DATA = "model.ckpt.data-00000-of-00001"


def download_cut_halfway(server, tmp_path) -> Callable:
    """Start a download that the server cuts off in the weights file; returns `again()`, which
    runs the same command once more."""
    url, out = f"http://127.0.0.1:{server.server_port}", tmp_path / "models" / "gpt2"

    def again():
        return run_cli("download", "124M", "--mirror", url, "--out", str(out))

    server.cut = DATA
    assert_user_error(again(), "interrupted")
    return again


def test_a_resumed_download_is_checked_whole_and_a_changed_file_fetched_again(server, tmp_path):
    again = download_cut_halfway(server, tmp_path)
    part = next(tmp_path.glob(f"models/.gpt2.*.download/{DATA}.part"))
    part.write_bytes(b"X" + part.read_bytes()[1:])  # corrupt the part already fetched
    assert_user_error(again(), "MD5 mismatch")
    assert not part.exists()
    # the file changes on the server while the download is cut: the resumed run must not splice the two
    download_cut_halfway(server, tmp_path)
    changed = tmp_path / "changed"
    changed.write_bytes(server.files[DATA].read_bytes()[::-1])
    server.files[DATA], server.ranges = changed, []
    assert again().returncode == 0
    assert not server.ranges  # If-Range did not match, so the whole new file came
    assert filecmp.cmp(tmp_path / "models" / "gpt2" / DATA, changed, shallow=False)


def test_a_resumed_download_answered_with_another_range_starts_over(server, tmp_path):
    again = download_cut_halfway(server, tmp_path)
    server.whole_as_206 = True
    assert again().returncode == 0
    # the whole file was not spliced onto the part
    assert filecmp.cmp(tmp_path / "models" / "gpt2" / DATA, server.files[DATA], shallow=False)


def test_download_errors(server, tmp_path):
    url = f"http://127.0.0.1:{server.server_port}"
    assert_user_error(run_cli("download", "gpt5", "--out", str(tmp_path / "x")), "unknown model")
    assert_user_error(run_cli("download", "355M", "--mirror", url, "--out", str(tmp_path / "y")), "HTTP 404")
    assert_user_error(run_cli("download", "124M", "--mirror", "http://127.0.0.1:9", "--out", str(tmp_path / "z")),
                      "cannot connect")


def test_an_unreachable_host_is_named_and_offline_suggested(tmp_path):
    result = run_cli("download", "124M", "--mirror", "http://127.0.0.1:9", "--out", str(tmp_path / "a"))
    assert_user_error(result, "cannot connect to 127.0.0.1:9 (Connection refused)", "could not be reached",
                      "may be offline")
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    result = run_cli("download", "gpt2", "--source", "hf", "--out", str(tmp_path / "b"), env=env)
    assert_user_error(result, "could not download 'gpt2': 127.0.0.1:9 could not be reached", "may be offline")
    assert "partial download is kept" not in result.stderr  # nothing was downloaded
    left = [p.name for p in tmp_path.iterdir() if p.name != "hf"]  # HF_HOME, which the hub may create
    assert left == []  # no empty staging folders


def test_generate_reads_a_step_of_a_run_and_a_keras_model_with_its_config(tmp_path):
    from gpt2kit import Tokenizer
    from gpt2kit import generate as generate_ids

    def greedy(model) -> str:  # "A" is token 32, inside the fixtures' 96-token vocabulary
        return Tokenizer.from_pretrained().decode(generate_ids(model, [[32]], max_new_tokens=6, do_sample=False)[0])

    def generated(*flags: str) -> str:
        out = cli("generate", *flags, "--prompt", "A", "--max-new-tokens", "6", "--temperature", "0")
        assert out.returncode == 0, out.stderr
        return out.stdout

    run = FIXTURES / "gpt2simple" / "run1"
    first, latest = greedy(GPT2.from_pretrained(run, checkpoint_step=1)), greedy(GPT2.from_pretrained(run))
    assert first != latest  # the two saves differ, so the step read shows
    assert "A" + first in generated("--model", str(run), "--checkpoint", "1")
    assert "A" + latest in generated("--model", str(run))
    keras = tmp_path / "keras"
    keras.mkdir()
    shutil.copyfile(FIXTURES / "keras" / "tiny" / "tiny.h5", keras / "tiny.h5")  # its hparams.json kept elsewhere
    want = greedy(GPT2.from_pretrained(FIXTURES / "keras" / "tiny"))
    assert "A" + want in generated("--model", str(keras / "tiny.h5"), "--config",
                                   str(FIXTURES / "keras" / "tiny" / "hparams.json"))
    assert_user_error(cli("generate", "--model", str(keras / "tiny.h5"), "--prompt", "A"), "no hparams.json",
                      "--config")
    assert_user_error(cli("generate", "--model", str(run), "--config", str(keras), "--prompt", "A"),
                      "--config names the hparams.json of a Keras .h5 only")
