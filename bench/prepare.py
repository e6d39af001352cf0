"""`gpt2kit prepare` throughput: tokens/s and MB/s with 1 and 2 worker processes.

The source is the KJV text repeated --copies times into one file (4.4 MB each), so that each
run lasts long enough to time; each worker count prepares it into a fresh folder --repeats
times, interleaved (1, 2, 1, 2, ...), and the median is reported with an estimate of the
time for OpenWebText (~9B GPT-2 tokens) on a 64-core machine, assuming tokens/s per worker
stays what 2 workers give here and that reading (the main process) keeps up.

    .venv/bin/python bench/prepare.py                  # 8 copies (35 MB), 3 repeats
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import benchkit  # noqa: E402

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "src"))
OWT_TOKENS = 9e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--copies", type=int, default=8, help="KJV copies in the source file (default 8: 35 MB)")
    p.add_argument("--repeats", type=int, default=3, help="runs per worker count (default 3)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    p.add_argument("--json", type=Path, default=benchkit.RESULTS / "prepare.json", help="where to write results")
    args = p.parse_args()
    from gpt2kit.data.prepare import prepare

    machine = benchkit.machine()
    print(benchkit.describe(machine))
    if warning := benchkit.load_warning(machine):
        print(warning)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kjv-repeated.txt"
        text = lzma.decompress((ROOT / "tests" / "fixtures" / "kjv.txt.xz").read_bytes())
        source.write_bytes(text * args.copies)
        size = source.stat().st_size
        tokens: dict[int, int] = {}

        def run(workers: int):
            def go() -> None:
                out = Path(tmp) / f"out-{workers}"
                shutil.rmtree(out, ignore_errors=True)
                tokens[workers] = prepare(source, out, workers=workers, progress=False).tokens
            return benchkit.stopwatch(go)

        seconds = benchkit.interleave({str(w): run(w) for w in args.workers}, args.repeats)
    rows, results = [], {}
    for w in args.workers:
        rates = benchkit.rates(seconds[str(w)], tokens[w])
        median = statistics.median(rates)
        results[w] = {"seconds": seconds[str(w)], "tokens": tokens[w], "tokens_per_s": rates}
        rows.append([w, f"{size / 1e6:.0f}", f"{tokens[w]:,}", f"{median:,.0f}",
                     f"{min(rates):,.0f}-{max(rates):,.0f}", f"{median * size / tokens[w] / 1e6:.1f}"])
    best = max(args.workers)
    per_worker = statistics.median(results[best]["tokens_per_s"]) / best
    hours = OWT_TOKENS / (per_worker * 64) / 3600
    print(benchkit.markdown_table(["workers", "source MB", "tokens", "tokens/s (median)", "min-max", "MB/s"], rows))
    print(f"\nOpenWebText (~9B tokens) on 64 cores at {per_worker:,.0f} tokens/s per worker: about {hours:.1f} hours")
    benchkit.write_json(args.json, {"machine": machine, "settings": vars(args) | {"json": str(args.json)},
                                    "results": results, "owt_hours_64_cores": hours})


if __name__ == "__main__":
    main()
