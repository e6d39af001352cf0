"""Keep freed host memory for reuse, so that training does not page-fault on every step.

glibc's malloc serves blocks of 32 MB and more with fresh mmap()s and gives them back on
free(). A training step allocates and frees about 1.5 GB of such blocks (the logits, the
tied embedding's gradients) for the 124M model, so every step touches that memory anew: some
380,000 page faults, about a quarter of a CPU step. Serving large blocks from the heap
and never trimming it lets each step reuse the pages of the one before. The price is held
memory, and it varies from run to run: glibc may grow its heap a few times before a freed
block fits the next request (355M, bf16 + checkpointing: peak RSS 5.7 GB in one run, 6.3 GB
in another). So `gpt2kit finetune` keeps freed memory unless --grad-checkpointing says that
memory comes first; GPT2KIT_KEEP_FREED_MEMORY=1 or 0 (true/false, yes/no, on/off) decides
instead. It holds for the whole process, and for the main thread's allocations (other
threads' blocks of 64 MB and more are still mapped afresh).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_done = False


def keep_freed_memory(default: bool = True) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (once per process), if `default` or
    GPT2KIT_KEEP_FREED_MEMORY=1 says so (=0 says not); True when it is in effect."""
    global _done
    setting = os.environ.get("GPT2KIT_KEEP_FREED_MEMORY", "").strip().lower()
    wanted = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}.get(setting, default)
    if _done or not wanted:
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version()  # glibc only: these parameter numbers are glibc's
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
