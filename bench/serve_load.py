"""Load test of `gpt2kit serve`: many clients at once against the same requests one at a time.

Starts `gpt2kit serve` on the shipped model in a subprocess, then sends REQUESTS completion
requests from CLIENTS concurrent clients (half streaming, a tenth closing the connection after a
few chunks), then the same requests one at a time, then the concurrent round again. Every
response that was not cut off must be whole and right: a finish_reason, usage that adds up and
counts the prompt as gpt2kit's tokenizer does, a stream ending in [DONE] whose chunks join into
the text, and the text, token count and finish reason of the same request decoded in-process
(gpt2kit.complete, one request alone: greedy, or sampled with the request's seed). Reports
p50/p99 latency, time to first token, aggregate tokens/s of both ways and their ratio, and the
server's resident memory between rounds.

    .venv/bin/python bench/serve_load.py [--requests 200] [--clients 32] [--max-batch-size 16]

The tests run a short version of the same checks (tests/serving/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

OUT = Path(__file__).parent / "results" / "serve_load.json"
CHUNKS_BEFORE_DISCONNECT = 3
FLAT_MB = 16.0  # "memory flat": the second concurrent round leaves the server this close to the first


@dataclass(frozen=True)
class LoadRequest:
    index: int
    prompt: str
    max_tokens: int
    temperature: float  # 0: greedy
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    disconnect: bool  # streams only: close the connection after CHUNKS_BEFORE_DISCONNECT chunks

    def body(self, model: str) -> dict:
        body = {"model": model, "prompt": self.prompt, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "stream": self.stream}
        if self.seed is not None:
            body.update(seed=self.seed, top_k=40)
        if self.stop:
            body["stop"] = list(self.stop)
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @property
    def spec(self) -> tuple:
        """What decides the answer: equal specs give equal answers."""
        return self.prompt, self.max_tokens, self.temperature, self.seed, self.stop


@dataclass
class Outcome:
    request: LoadRequest
    status: int = 0
    text: str = ""
    finish_reason: str | None = None
    usage: dict | None = None
    chunks: int = 0  # streamed chunks carrying a choice
    done: bool = False  # the stream's [DONE]
    latency: float = 0.0  # seconds from sending to the whole answer
    ttft: float | None = None  # seconds to the first generated text (streams)
    disconnected: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)


def prompts(count: int) -> list[str]:
    """Openings (the first 4 to 8 words) of verses from the end of the KJV the shipped model never saw."""
    from gpt2kit.evaluation.perplexity import heldout_text

    rng = random.Random(1)
    lines = [line for line in heldout_text().splitlines()[1:] if len(line.split()) >= 10]
    return [" ".join(line.split()[:rng.randint(4, 8)]) for line in rng.sample(lines, count)]


def make_requests(count: int, *, streaming: float = 0.5, disconnecting: float = 0.1, distinct: int = 25,
                  lengths: Sequence[int] = (8, 16, 32, 48, 64), sampled: float = 0.25,
                  seed: int = 0) -> list[LoadRequest]:
    """`count` requests over `distinct` prompts: max_tokens of several `lengths` so rows join and
    leave the batch at different steps, a share `sampled` (temperature 0.8, top-k 40, one of 4
    seeds; the rest greedy), a third with a stop string; a share streamed, and some of the streams
    closed early (those ask for 96 tokens, so they are cut)."""
    rng = random.Random(seed)
    texts = prompts(distinct)
    n_stream = round(count * streaming)
    n_cut = round(count * disconnecting)
    if n_cut > n_stream:
        raise ValueError("only streams can be cut: disconnecting must not exceed streaming")
    kinds = ["cut"] * n_cut + ["stream"] * (n_stream - n_cut) + ["whole"] * (count - n_stream)
    rng.shuffle(kinds)
    out = []
    for i, kind in enumerate(kinds):
        is_sampled = rng.random() < sampled
        out.append(LoadRequest(
            i, rng.choice(texts), 96 if kind == "cut" else rng.choice(list(lengths)),
            0.8 if is_sampled else 0.0, rng.randrange(4) if is_sampled else None,
            (":",) if rng.random() < 1 / 3 else (), kind != "whole", kind == "cut"))
    return out


def references(loaded, requests: Sequence[LoadRequest]) -> dict[tuple, object]:
    """Each distinct request decoded in-process, alone: gpt2kit.complete with the same settings."""
    import gpt2kit

    out = {}
    for r in requests:
        if r.spec in out or r.disconnect:
            continue
        sampled = dict(seed=r.seed, top_k=40) if r.seed is not None else {}
        (out[r.spec],) = gpt2kit.complete(loaded.model, loaded.tokenizer, r.prompt, temperature=r.temperature,
                                          max_new_tokens=r.max_tokens, stop=list(r.stop), **sampled)
    return out


async def send(client, url: str, model: str, r: LoadRequest) -> Outcome:
    out = Outcome(r)
    started = time.perf_counter()
    try:
        if not r.stream:
            response = await client.post(url, json=r.body(model))
            out.status = response.status_code
            data = response.json()
            if response.status_code != 200:
                out.error = json.dumps(data)[:300]
            else:
                (choice,) = data["choices"]
                out.text, out.finish_reason, out.usage = choice["text"], choice["finish_reason"], data.get("usage")
        else:
            async with client.stream("POST", url, json=r.body(model)) as response:
                out.status = response.status_code
                if response.status_code != 200:
                    out.error = (await response.aread()).decode()[:300]
                    return out
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    payload = line[len("data: "):]
                    if payload == "[DONE]":
                        out.done = True
                        break
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        out.error = json.dumps(chunk)[:300]
                        continue
                    if chunk.get("usage"):
                        out.usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        out.chunks += 1
                        if choice["text"] and out.ttft is None:
                            out.ttft = time.perf_counter() - started
                        out.text += choice["text"]
                        if choice.get("finish_reason"):
                            if out.finish_reason is not None:
                                out.problems.append("two chunks carry a finish_reason")
                            out.finish_reason = choice["finish_reason"]
                    if r.disconnect and out.chunks >= CHUNKS_BEFORE_DISCONNECT:
                        out.disconnected = True
                        break  # leaving the block closes the connection mid-stream
    except Exception as err:  # a failure to count, not to stop the run
        out.error = f"{type(err).__name__}: {err}"
    out.latency = time.perf_counter() - started
    return out


async def run_load(base_url: str, requests: Sequence[LoadRequest], clients: int, *, api_key: str | None = None,
                   model: str = "gpt2kit-default") -> tuple[list[Outcome], float]:
    """Send every request, `clients` at a time (each client sends its next request when the last
    one is answered); the outcomes in request order and the wall-clock seconds of the whole run."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    outcomes: list[Outcome] = []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300, limits=limits) as client:
        async def worker():
            while not queue.empty():
                outcomes.append(await send(client, "/v1/completions", model, queue.get_nowait()))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return sorted(outcomes, key=lambda o: o.request.index), wall


def check(outcomes: Sequence[Outcome], expected: dict[tuple, object], tokenizer,
          diverged: list[str] | None = None) -> list[str]:
    """Every problem found, one line each (an empty list: all well). A sampled answer that leaves the
    in-process one goes to `diverged` instead: batching changes logits in their last bits, which can
    flip a draw now and then (greedy answers must match)."""
    problems = []
    for o in outcomes:
        r = o.request
        found = list(o.problems)
        if o.error or o.status != 200:
            found.append(f"failed ({o.status}): {o.error}")
        elif o.disconnected:
            if o.finish_reason is not None:
                found.append("was to be cut mid-stream but had finished")
        else:
            ref = expected[r.spec]
            usage = o.usage or {}
            reason = "length" if ref.finish_reason == "length" else "stop"
            if o.finish_reason not in ("stop", "length"):
                found.append(f"finish_reason {o.finish_reason!r}")
            if r.stream and not o.done:
                found.append("the stream did not end with [DONE]")
            if usage.get("prompt_tokens") != len(tokenizer.encode(r.prompt)):
                found.append(f"usage.prompt_tokens {usage.get('prompt_tokens')} for a prompt of "
                             f"{len(tokenizer.encode(r.prompt))} tokens")
            if usage.get("total_tokens") != usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0):
                found.append(f"usage does not add up: {usage}")
            if o.finish_reason == "length" and usage.get("completion_tokens") != r.max_tokens:
                found.append(f"finish_reason length after {usage.get('completion_tokens')} of {r.max_tokens} tokens")
            if (o.text, usage.get("completion_tokens"), o.finish_reason) != (ref.text, ref.completion_tokens, reason):
                sink = diverged if r.seed is not None and diverged is not None else found
                sink.append(f"got {o.text!r} ({usage.get('completion_tokens')} tokens, {o.finish_reason}), "
                             f"in-process {ref.text!r} ({ref.completion_tokens} tokens, {reason})")
        problems += [f"request {r.index} ({'stream' if r.stream else 'whole'}, {r.prompt!r}): {p}" for p in found]
    return problems


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between the two nearest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timings(outcomes: Sequence[Outcome], wall: float) -> dict:
    whole = [o for o in outcomes if not o.disconnected and not o.error]
    tokens = sum((o.usage or {}).get("completion_tokens", 0) for o in whole)
    latencies = [o.latency for o in whole]
    ttfts = [o.ttft for o in whole if o.ttft is not None]
    return {"requests": len(outcomes), "completed": len(whole), "cut": sum(o.disconnected for o in outcomes),
            "failed": sum(bool(o.error) for o in outcomes), "seconds": wall, "completion_tokens": tokens,
            "tokens_per_s": tokens / wall, "latency_p50": percentile(latencies, 50),
            "latency_p99": percentile(latencies, 99), "ttft_p50": percentile(ttfts, 50) if ttfts else None,
            "ttft_p99": percentile(ttfts, 99) if ttfts else None}


# ---- the server in a subprocess ------------------------------------------------------------------------------
@contextlib.contextmanager
def server_process(max_batch_size: int) -> Iterator[tuple[subprocess.Popen, str]]:
    """`gpt2kit serve` on a free port; (the process, its base URL)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "gpt2kit.cli.main", "serve", "--port", "0", "--max-batch-size", str(max_batch_size),
            "--max-queue", "256"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:
            if found := re.search(r"at (http://\S+) ", line):
                url = found.group(1)
                break
        if url is None:
            raise SystemExit(f"the server did not start (exit code {proc.wait()})")
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled(base_url: str, timeout: float = 30.0) -> dict:
    """/health once no row runs and nothing waits: cut streams have left the batch."""
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url) as client:
        while True:
            health = (await client.get("/health")).json()
            if (health["running_rows"] == 0 and health["queue_depth"] == 0) or time.monotonic() > deadline:
                return health
            await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per round (default 200)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="the server's --max-batch-size (default 16)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes (default "
                        "bench/results/serve_load.json)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import benchkit
    import torch

    import gpt2kit

    found = benchkit.machine()
    if warning := benchkit.load_warning(found):
        print(warning, file=sys.stderr, flush=True)
    requests = make_requests(args.requests)
    # this process decodes the references before the server is busy, then only waits on sockets; one
    # thread, because two spinning threads slow to a crawl when other work shares the cores
    torch.set_num_threads(1)
    loaded = gpt2kit.load()
    print(f"decoding {len({r.spec for r in requests if not r.disconnect})} distinct requests in-process ...",
          flush=True)
    expected = references(loaded, requests)
    rounds, memory, problems, diverged = {}, {}, [], []
    with server_process(args.max_batch_size) as (proc, url):
        memory["started"] = rss_mb(proc.pid)
        warmup, _ = asyncio.run(run_load(url, requests[:args.clients], args.clients))
        problems += check(warmup, expected, loaded.tokenizer, diverged)
        memory["after_warmup"] = rss_mb(proc.pid)
        for name, clients in (("concurrent", args.clients), ("sequential", 1), ("concurrent_again", args.clients)):
            print(f"{name}: {len(requests)} requests from {clients} client(s) ...", flush=True)
            outcomes, wall = asyncio.run(run_load(url, requests, clients))
            health = asyncio.run(settled(url))
            if health["running_rows"] or health["queue_depth"]:
                problems.append(f"after the {name} round the server still holds {health}")
            problems += [f"{name}: {p}" for p in check(outcomes, expected, loaded.tokenizer, diverged)]
            rounds[name] = timings(outcomes, wall)
            memory[f"after_{name}"] = rss_mb(proc.pid)
    growth = memory["after_concurrent_again"] - memory["after_concurrent"]
    ratio = rounds["concurrent"]["tokens_per_s"] / rounds["sequential"]["tokens_per_s"]
    result = {"machine": found, "requests": args.requests, "clients": args.clients,
              "max_batch_size": args.max_batch_size, "streaming": sum(r.stream for r in requests),
              "cut_after_chunks": CHUNKS_BEFORE_DISCONNECT, "rounds": rounds, "rss_mb": memory,
              "rss_growth_second_round_mb": growth, "memory_flat": abs(growth) <= FLAT_MB,
              "throughput_ratio": ratio, "problems": problems, "sampled_diverged": diverged,
              "request_mix": [asdict(r) for r in requests[:3]]}
    benchkit.write_json(args.out, result)

    def ms(x):
        return "-" if x is None else f"{x * 1000:.0f}"

    rows = [[name, f"{t['completed']}/{t['requests']} ({t['cut']} cut, {t['failed']} failed)", f"{t['seconds']:.1f}",
             f"{t['tokens_per_s']:.0f}", ms(t["latency_p50"]), ms(t["latency_p99"]), ms(t["ttft_p50"]),
             ms(t["ttft_p99"])] for name, t in rounds.items()]
    print(f"\n{benchkit.describe(found)}; server --max-batch-size {args.max_batch_size}\n")
    print(benchkit.markdown_table(["round", "complete", "seconds", "tokens/s", "latency p50 ms", "latency p99 ms",
                                   "first token p50 ms", "first token p99 ms"], rows))
    print(f"\nbatching: {ratio:.2f}x the aggregate tokens/s of one request at a time")
    print("server RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items())
          + f"; second concurrent round {growth:+.1f} MB ({'flat' if result['memory_flat'] else 'NOT flat'}: "
          f"within {FLAT_MB:g} MB)")
    print(f"checks: {len(problems)} problems" + "".join(f"\n  {p}" for p in problems[:20]))
    print(f"sampled answers that left the in-process draw (batching's last-bit differences): {len(diverged)}")
    print(f"wrote {args.out}")
    if problems or ratio <= 1 or not result["memory_flat"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
