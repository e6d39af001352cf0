"""Prometheus metrics of a server (GET /metrics, text format), in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from gpt2kit.extras import require

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], running_rows: Callable[[], float]) -> None:
        prom = require("prometheus_client", "serve", "gpt2kit serve")
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("gpt2kit_requests", "HTTP requests answered, by endpoint and status",
                                     ["endpoint", "status"], registry=r)
        self.prompt_tokens = prom.Counter("gpt2kit_prompt_tokens", "Prompt tokens of completed requests", registry=r)
        self.generated_tokens = prom.Counter("gpt2kit_generation_tokens", "Tokens generated", registry=r)
        queue = prom.Gauge("gpt2kit_queue_depth", "Requests waiting for room in the batch", registry=r)
        queue.set_function(queue_depth)
        running = prom.Gauge("gpt2kit_running_rows", "Rows decoding in the batch", registry=r)
        running.set_function(running_rows)
        self.batch_size = prom.Histogram("gpt2kit_batch_size", "Rows per decode step", buckets=BATCH_BUCKETS,
                                         registry=r)
        self.ttft = prom.Histogram("gpt2kit_time_to_first_token_seconds", "From request to its first token",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.per_token = prom.Histogram("gpt2kit_time_per_output_token_seconds",
                                        "Between a request's consecutive tokens", buckets=LATENCY_BUCKETS, registry=r)
        self.duration = prom.Histogram("gpt2kit_request_duration_seconds", "From request to its last byte",
                                       buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> tuple[bytes, str]:
        return self.prom.generate_latest(self.registry), self.prom.CONTENT_TYPE_LATEST
