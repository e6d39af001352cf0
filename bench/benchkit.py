"""What the benchmarks share: runs interleaved A, B, A, B, medians and spread, the machine, tables, JSON.

Timing two implementations one after the other lets a change in the machine's load (another
job starting, the CPU clock settling) land on one of them only. Interleaving them run by run
(A, B, A, B, ...) spreads such changes over both, and pairing run i of A with run i of B gives
a ratio per round whose spread shows how far the comparison can be trusted.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def stopwatch(fn: Callable[[], object]) -> Callable[[], float]:
    """fn as a run that returns its own wall-clock seconds."""
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def interleave(runs: dict[str, Callable[[], float]], repeats: int, warmup: int = 0) -> dict[str, list[float]]:
    """Call every run once per round, in the order given (A, B, A, B, ...): `warmup` rounds whose
    results are dropped, then `repeats` rounds. Each run returns its measurement (seconds);
    the result maps each name to its `repeats` measurements in round order."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, not {repeats} and {warmup}")
    kept: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(warmup + repeats):
        for name, run in runs.items():
            value = run()
            if round_ >= warmup:
                kept[name].append(value)
    return kept


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and quartiles (the inclusive method: min and max are the 0th and 4th)."""
    if not values:
        raise ValueError("no values to summarise")
    values = sorted(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"n": len(values), "median": statistics.median(values), "min": values[0], "max": values[-1],
            "q1": q1, "q3": q3}


def rates(seconds: Sequence[float], amount: float) -> list[float]:
    """Per-run rates (amount per second), e.g. tokens/s from the seconds of each run."""
    return [amount / s for s in seconds]


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a[i] / b[i] for each round i: rates of two runs interleaved in the same rounds."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} values: not the same rounds")
    return [x / y for x, y in zip(a, b, strict=True)]


def spread(s: dict[str, float], digits: int = 1, unit: str = "") -> str:
    """`median (min-max)` of a summary, e.g. "31.4 (30.9-32.0)"."""
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(headers)} columns")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """What the timings depend on: CPU, cores, threads, library versions, load when the run began."""
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cores_per_socket": int(info["cpu cores"]) if info.get("cpu cores", "").isdigit() else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe(m: dict) -> str:
    """One line for a table's caption."""
    flags = ", ".join(m["cpu_flags"]) or "no AVX2"
    return (f"{m['cpu']} ({flags}), {m['usable_cpus']} CPUs, {m['torch_threads']} torch threads, "
            f"torch {m['torch']} ({m['cpu_capability']}, native bf16: {'yes' if m['native_bf16'] else 'no'}), "
            f"transformers {m['transformers']}, load average {m['load_average'][0]:.1f} at the start")


def load_warning(m: dict) -> str | None:
    """A line to print when other work was running as the benchmark began, else None."""
    load, cpus = m["load_average"][0], m["usable_cpus"] or 1
    if load <= 0.5 * cpus:
        return None
    return (f"warning: load average {load:.1f} on {cpus} CPUs: other work is running, so these timings are noisy "
            "and slower than on a quiet machine")


def write_json(path: Path, data: dict) -> Path:
    """Write `data` to path through a temporary file, so that a killed run leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def refuse(message: str) -> None:
    """Stop before timing: what was compared is not the same computation."""
    print(f"refusing to time: {message}", file=sys.stderr)
    raise SystemExit(2)


def checked_machine(dtypes: list[str] | None, flag: str) -> tuple[dict, list[str]]:
    """The machine, with its load warning printed, and the dtypes to run: those asked for, or by
    default fp32 plus bf16 where the CPU has native bf16 (elsewhere bf16 is tens of times slower)."""
    found = machine()
    if warning := load_warning(found):
        print(warning, file=sys.stderr, flush=True)
    if dtypes is None:
        dtypes = ["fp32", "bf16"] if found["native_bf16"] else ["fp32"]
        if not found["native_bf16"]:
            print(f"note: bf16 left out: this CPU has no native bf16 matrix instructions ({flag} fp32 bf16 runs it "
                  "anyway, tens of times slower than fp32)", file=sys.stderr, flush=True)
    elif "bf16" in dtypes and not found["native_bf16"]:
        print("note: this CPU has no native bf16 matrix instructions, so bf16 runs tens of times slower than fp32 "
              f"and takes most of the run ({flag} fp32 leaves it out)", file=sys.stderr, flush=True)
    return found, dtypes
