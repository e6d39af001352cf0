"""`gpt2kit serve`: an OpenAI-compatible HTTP server for a model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API, with a playground page",
        description="Serve a model over HTTP: POST /v1/completions and /v1/chat/completions (the OpenAI API, "
                    "streaming included), GET /v1/models, /health, /metrics (Prometheus), and a playground page "
                    "at /. Requests decode together (continuous batching). Needs gpt2kit[serve].")
    add_model_option(p, required=False)
    add_read_options(p)
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every "
                          "interface, with --api-key)")
    net.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    net.add_argument("--api-key", default=os.environ.get("GPT2KIT_API_KEY"), metavar="KEY",
                     help="require `Authorization: Bearer KEY` on /v1/ (default: $GPT2KIT_API_KEY, else none)")
    net.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                     help="let pages from ORIGIN call the API from a browser (repeatable; default: none)")
    net.add_argument("--max-body-bytes", type=positive_int, default=4 * 1024 * 1024, metavar="N",
                     help="largest request body accepted (default 4 MiB); larger ones get 413")
    work = p.add_argument_group("batching")
    work.add_argument("--max-batch-size", type=positive_int, default=16, metavar="N",
                      help="rows decoded together at most (a request with n choices takes n rows; default 16)")
    work.add_argument("--max-queue", type=positive_int, default=64, metavar="N",
                      help="requests that may wait for room in the batch; more get 429 with Retry-After "
                           "(default 64)")
    work.add_argument("--request-timeout", type=float, default=600.0, metavar="SECONDS",
                      help="a request running longer is cancelled with a 408 error (default 600)")
    p.add_argument("--model-name", default=None, metavar="NAME",
                   help="the model id clients name (default: the --model given, or gpt2kit-default)")
    p.add_argument("--chat-template", type=Path, default=None, metavar="FILE",
                   help="how /v1/chat/completions writes messages as a prompt (default: the template gpt2kit ships;"
                        " see gpt2kit/serving/chat_template.txt)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (info logs every request; default warning)")
    add_device_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gpt2kit.extras import require

    require("fastapi", "serve", "gpt2kit serve")  # before the model loads: a missing extra says so at once
    from gpt2kit.serving.app import ServerOptions
    from gpt2kit.serving.chat import ChatTemplate
    from gpt2kit.serving.server import serve

    ChatTemplate.from_file(args.chat_template)  # a bad template is refused before the model loads
    loaded = load_model(args)
    name = args.model_name or (args.model if args.model not in (None, "default") else "gpt2kit-default")
    options = ServerOptions(model_name=name, api_key=args.api_key or None, max_batch_size=args.max_batch_size,
                            max_queue=args.max_queue, request_timeout=args.request_timeout,
                            max_body_bytes=args.max_body_bytes, cors_origins=tuple(args.cors_origin),
                            chat_template=args.chat_template)
    serve(loaded, options, host=args.host, port=args.port, log_level=args.log_level)
    return 0
