"""Downloading the published models: OpenAI's TensorFlow folders, or Hugging Face repos.

OpenAI's files are fetched over HTTP with resumable range requests into `.part` files
inside a hidden staging folder next to the destination; sizes are checked against the
server's Content-Length and the MD5 of the whole file where the storage publishes one
(checked on resumed files too); only when every file is complete does the finished folder
take its name. An interrupted download leaves its `.part` files, and running the same
command again continues where it stopped, with If-Range so that a file changed on the
server in between is fetched whole again instead of being spliced.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from gpt2kit.atomic import move_into_place
from gpt2kit.config import ALIASES, PUBLISHED
from gpt2kit.errors import ModelNotFoundError
from gpt2kit.extras import require

OPENAI_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
OPENAI_SIZES = {name: size for size, name in ALIASES.items()}  # OpenAI's folders are named by size
OPENAI_FILES = ("checkpoint", "encoder.json", "hparams.json", "model.ckpt.data-00000-of-00001",
                "model.ckpt.index", "model.ckpt.meta", "vocab.bpe")
CHUNK = 1 << 20


class DownloadError(ModelNotFoundError):
    pass


def published_name(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in PUBLISHED:
        known = ", ".join([*PUBLISHED, *ALIASES])
        raise DownloadError(f"unknown model {name!r}; published models: {known}")
    return key


def download(name: str, *, source: str = "openai", out: str | Path | None = None, base_url: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch a published model into `out` (default: ./models/<name>-<source>) and return the folder."""
    key = published_name(name)
    out = Path(out) if out is not None else Path("models") / f"{key}-{source}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DownloadError(f"{out}: already exists and is not an empty folder; choose another --out or remove it")
    if source == "hf":
        return _download_hf(key, out)
    if source != "openai":
        raise DownloadError(f"unknown source {source!r}; choose openai or hf")
    base = (base_url or os.environ.get("GPT2KIT_OPENAI_URL") or OPENAI_BASE_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise DownloadError(f"{base}: not an http(s) URL")
    # the staging folder is specific to what is fetched, so parts of another model are never mixed in
    tag = hashlib.sha256(f"{key}|{source}|{base}".encode()).hexdigest()[:12]
    staging = out.parent / f".{out.name}.{tag}.download"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        for file in OPENAI_FILES:
            _fetch(f"{base}/{OPENAI_SIZES[key]}/{file}", staging / file, progress, timeout)
    except BaseException:
        _drop_if_empty(staging)
        raise
    out.parent.mkdir(parents=True, exist_ok=True)
    return move_into_place(staging, out)  # over an empty `out` (checked above)


def _fetch(url: str, dest: Path, progress: bool, timeout: float) -> None:
    if dest.is_file():
        return  # finished in an earlier run
    part = dest.with_name(dest.name + ".part")
    meta_file = dest.with_name(dest.name + ".part.json")  # what the first response said of the whole file
    have = part.stat().st_size if part.is_file() else 0
    meta = _read_meta(meta_file) if have else {}
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        if meta.get("validator"):  # the rest of *that* file, or the whole file if it has changed
            headers["If-Range"] = meta["validator"]
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts past the end: the part is stale, start over
            part.unlink()
            return _fetch(url, dest, progress, timeout)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        reason = getattr(reason, "strerror", None) or reason  # "Name or service not known", not "[Errno -2] ..."
        hint = "pass --mirror URL" if url.startswith(OPENAI_BASE_URL) else "check the mirror's URL"
        raise DownloadError(f"cannot connect to {_host(url)} ({reason}): the host could not be reached, and this "
                            f"machine may be offline; check the network, or {hint} (fetching {url})") from None
    with response:
        content_range = response.headers.get("Content-Range", "")
        if have and response.status == 206 and not content_range.startswith(f"bytes {have}-"):
            part.unlink()  # another range than the one asked for cannot be spliced on: start over
            return _fetch(url, dest, progress, timeout)
        if have and response.status != 206:
            have = 0  # the server ignored the range, or the file changed: start over
        if not have:
            etag = response.headers.get("ETag")
            strong = etag if etag and not etag.startswith("W/") else None  # If-Range takes only strong ones
            meta = {"validator": strong or response.headers.get("Last-Modified"),
                    "md5": _whole_file_md5(response.headers, partial=False)}
            meta_file.write_text(json.dumps(meta))
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        md5 = _whole_file_md5(response.headers, partial=have > 0) or meta.get("md5")
        mode = "ab" if have else "wb"
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
                   leave=False)
        with part.open(mode) as f, bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError, http.client.HTTPException) as err:
                    f.flush()
                    raise DownloadError(
                        f"{url}: download interrupted at {part.stat().st_size:,} bytes ({err.__class__.__name__}); "
                        "run the same command again to resume") from None
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is None:
        raise DownloadError(f"{url}: the server did not say how large the file is, so a complete download cannot be "
                            "told from a cut one")
    if got != total:
        raise DownloadError(f"{url}: download interrupted at {got:,} of {total:,} bytes; run the same command again "
                            "to resume")
    if md5 is not None and base64.b64encode(_md5(part)).decode() != md5:  # the resumed parts too
        part.unlink()
        meta_file.unlink(missing_ok=True)
        raise DownloadError(f"{url}: MD5 mismatch: the download is corrupt (removed; run again)")
    meta_file.unlink(missing_ok=True)  # first: a kill in between leaves a part to fetch again, not a stray file
    move_into_place(part, dest)


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _whole_file_md5(headers, partial: bool) -> str | None:
    """The base64 MD5 of the whole file, if the server gives one: Azure's x-ms-blob-content-md5
    always; Content-MD5 only on a full response (on a 206 it is the MD5 of the range)."""
    value = headers.get("x-ms-blob-content-md5") or (None if partial else headers.get("Content-MD5"))
    try:
        return base64.b64encode(base64.b64decode(value, validate=True)).decode() if value else None
    except ValueError:
        return None


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or url


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and ".cache" not in p.parts for p in folder.rglob("*"))


def _drop_if_empty(staging: Path) -> None:
    """A download that failed before any byte arrived leaves nothing behind (one that got some
    keeps them, to resume)."""
    if not any(p.is_file() and p.stat().st_size and ".cache" not in p.parts for p in staging.rglob("*")):
        shutil.rmtree(staging, ignore_errors=True)


def _md5(path: Path) -> bytes:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.digest()


def _download_hf(key: str, out: Path) -> Path:
    huggingface_hub = require("huggingface_hub", "hub", "downloading from the Hugging Face Hub (--source hf)")
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from gpt2kit.weights.resolve import HUB_FILES, HUB_REPOS

    staging = out.parent / f".{out.name}.download"
    try:
        huggingface_hub.snapshot_download(HUB_REPOS[key], allow_patterns=HUB_FILES, local_dir=staging)
    except Exception as err:  # noqa: BLE001 - network, auth and HTTP errors all end here
        kept = "; the partial download is kept and resumes on the next run" if _holds_files(staging) else ""
        _drop_if_empty(staging)
        if isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled)):  # no connection, and nothing cached
            host = _host(huggingface_hub.constants.ENDPOINT)
            raise DownloadError(f"could not download '{key}': {host} could not be reached, and this machine may be "
                                f"offline ({type(err).__name__}); check the network or HF_HUB_OFFLINE{kept}") from None
        raise DownloadError(f"could not download '{key}' from the Hugging Face Hub ({type(err).__name__}){kept}"
                            ) from None
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    return move_into_place(staging, out)
