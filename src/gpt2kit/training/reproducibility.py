"""Same seed, same machine, same threads: bitwise the same losses. What that takes on CPU.

Three things besides the seed decide a CPU run's numbers:
- the intra-op thread count: PyTorch and MKL split reductions by thread, so 1, 2 and 3
  threads round differently;
- the machine: the CPU's instruction set picks the kernels (AVX2 and AVX-512 round
  differently), and so do the torch and MKL builds;
- MKL's run-to-run freedom: unless its conditional numerical reproducibility (CNR) mode is
  on, MKL may pick a kernel by the alignment of each buffer and hand out work to threads
  dynamically, so two identical processes can round differently. `reproducible_math()`
  turns CNR on (the AUTO code path of this CPU, STRICT: for any alignment) before MKL's
  first call; its cost is within noise here. An MKL_CBWR set by the user is left alone.

`fingerprint()` records all of it in the run's config and every checkpoint, and
`differences()` says what changed when a run resumes elsewhere, since the resumed losses
then match the uninterrupted run only to rounding.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import cache
from pathlib import Path

import torch

_CBWR_AUTO, _CBWR_STRICT, _CBWR_ALL = 2, 0x10000, -1
_MODE_CHANGE_FAILURE = -8


@cache
def _mkl() -> ctypes.CDLL | None:
    """The MKL that torch runs (linked into libtorch_cpu), or None in builds without it."""
    if not torch.backends.mkl.is_available():
        return None
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        lib.mkl_serv_cbwr_get, lib.mkl_serv_cbwr_set  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return lib


def reproducible_math() -> str:
    """Turn on MKL's CNR mode for this process if it can still be; what is in effect."""
    lib = _mkl()
    if lib is None:
        return "no MKL"
    if os.environ.get("MKL_CBWR"):
        return f"MKL_CBWR={os.environ['MKL_CBWR']} (set by the environment)"
    wanted = _CBWR_AUTO | _CBWR_STRICT
    if lib.mkl_serv_cbwr_get(_CBWR_ALL) != wanted:
        status = lib.mkl_serv_cbwr_set(wanted)
        if status == _MODE_CHANGE_FAILURE:  # MKL ran before in this process: its mode is fixed
            return "off (MKL was used before training started; set MKL_CBWR=AUTO,STRICT)"
    return _cbwr_mode()


def _cbwr_mode() -> str:
    lib = _mkl()
    if lib is None:
        return "no MKL"
    mode = lib.mkl_serv_cbwr_get(_CBWR_ALL)
    names = {0: "off", 1: "off", 2: "AUTO", 3: "COMPATIBLE", 9: "AVX", 10: "AVX2", 12: "AVX512"}  # mkl_cbwr.h
    branch = names.get(mode & 0xFFFF, f"branch {mode & 0xFFFF}")
    return branch + (",STRICT" if mode & _CBWR_STRICT else "")


def _cpu() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"processor": platform.processor() or platform.machine()}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model", "stepping", "microcode"):
            info[key] = value.strip()
    return info


def fingerprint(device: torch.device | str = "cpu") -> dict[str, object]:
    """What decides a run's rounding on this machine, as plain JSON-able values."""
    found: dict[str, object] = {
        "torch": str(torch.__version__),  # a TorchVersion, which weights_only loading refuses
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cnr": _cbwr_mode(),
        **{f"cpu {k}": v for k, v in _cpu().items()},
    }
    if torch.device(device).type == "cuda":
        found["cuda_device"] = torch.cuda.get_device_name(device)
    return found


def differences(saved: dict[str, object], now: dict[str, object]) -> list[str]:
    """'threads: 2 -> 4', ... for each setting that differs between two fingerprints; nothing
    when `saved` is empty (a checkpoint from before fingerprints were recorded)."""
    if not saved:
        return []
    return [f"{key}: {saved.get(key)} -> {now.get(key)}" for key in sorted(set(saved) | set(now))
            if saved.get(key) != now.get(key)]
