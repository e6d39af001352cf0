import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from gpt2kit.host_memory import keep_freed_memory
print(keep_freed_memory(default=sys.argv[1] == "1"))
faults = []
for _ in range(12):  # 256 MB allocated and freed, as a training step does
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(max(faults[-3:]))
"""


def run(default: bool, env: dict) -> tuple[str, int]:
    """keep_freed_memory()'s answer, and the most page faults of the last three 256 MB allocations
    (glibc may first grow its heap a few times before a freed block fits the next request)."""
    environ = {k: v for k, v in os.environ.items() if k != "GPT2KIT_KEEP_FREED_MEMORY"} | env
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if default else "0"], capture_output=True, text=True,
                         check=True, env=environ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_block_freed_is_reused_without_page_faults():
    # 256 MB touched afresh is 65,536 faults of 4 KB pages
    kept, faults = run(True, {})
    assert kept == "True" and faults < 2000
    assert run(True, {"GPT2KIT_KEEP_FREED_MEMORY": "0"}) == ("False", pytest.approx(65536, rel=0.2))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_environment_overrides_the_default():
    assert run(False, {})[0] == "False"
    assert run(False, {"GPT2KIT_KEEP_FREED_MEMORY": "1"})[0] == "True"
    assert run(False, {"GPT2KIT_KEEP_FREED_MEMORY": "yes"})[0] == "True"
    assert run(True, {"GPT2KIT_KEEP_FREED_MEMORY": "false"})[0] == "False"
