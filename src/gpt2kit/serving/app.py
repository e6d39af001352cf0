"""The HTTP side: FastAPI routes, API keys, body limits, errors as OpenAI's error objects,
server-sent events, metrics, and the playground page."""

import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.extras import require
from gpt2kit.serving.chat import ChatTemplate
from gpt2kit.serving.completions import Completions
from gpt2kit.serving.metrics import Metrics
from gpt2kit.serving.protocol import APIError, ChatRequest, CompletionRequest
from gpt2kit.serving.scheduler import Scheduler, SchedulerStopped

GUARDED_PREFIX = "/v1/"  # what the API key protects (the page, /health and /metrics are open, as in vLLM)
OPEN_PATHS = ("/", "/health", "/metrics", "/playground.js", "/playground.css")


@dataclass
class ServerOptions:
    model_name: str = "gpt2kit"
    api_key: str | None = None
    max_batch_size: int = 16  # rows decoded together
    max_queue: int = 64  # requests waiting for room; more are answered 429
    request_timeout: float = 600.0  # seconds
    max_body_bytes: int = 4 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    chat_template: Path | None = None  # None: the one gpt2kit ships
    created: int = field(default_factory=lambda: int(time.time()))


def create_app(loaded: LoadedModel, options: ServerOptions):
    """The server's ASGI app; its lifespan starts and stops the scheduler."""
    fastapi = require("fastapi", "serve", "gpt2kit serve")
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from pydantic import ValidationError

    template = ChatTemplate.from_file(options.chat_template)
    metrics: Metrics | None = None
    scheduler = Scheduler(loaded.model, loaded.tokenizer, max_batch_size=options.max_batch_size,
                          max_queue=options.max_queue, on_step=lambda size: metrics.batch_size.observe(size))
    metrics = Metrics(lambda: scheduler.queue_depth, lambda: scheduler.active_rows)
    completions = Completions(loaded, scheduler, options.model_name, template, options.request_timeout,
                              observe=lambda kind, seconds: (metrics.ttft if kind == "first_token"
                                                             else metrics.per_token).observe(seconds))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    app = fastapi.FastAPI(title="gpt2kit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scheduler, app.state.metrics = scheduler, metrics

    def error_response(err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(APIError)
    async def api_error(_request, err: APIError):
        return error_response(err)

    @app.exception_handler(SchedulerStopped)
    async def stopping(_request, err: SchedulerStopped):
        return error_response(APIError(str(err), status=503, type="server_error", code="shutting_down"))

    @app.exception_handler(404)
    async def not_found(request, _err):
        return error_response(APIError(f"no such endpoint: {request.method} {request.url.path}", status=404,
                                       code="not_found"))

    @app.exception_handler(405)
    async def not_allowed(request, _err):
        return error_response(APIError(f"{request.method} is not allowed on {request.url.path}", status=405,
                                       code="method_not_allowed"))

    async def parse(request, model_type):
        body = await request.body()
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise APIError(f"the request body is not valid JSON ({err})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise APIError("the request body must be a JSON object", code="invalid_json")
        try:
            return model_type.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            given = json.dumps(first.get("input"))[:80] if "input" in first else ""
            raise APIError(f"{where}: {first['msg']}" + (f", got {given}" if given else ""),
                           param=str(first["loc"][0]) if first["loc"] else None, code="invalid_type") from None

    def sse(chunks: AsyncIterator[dict[str, Any]]):
        async def events():
            try:
                async for chunk in chunks:
                    yield f"data: {json.dumps(chunk)}\n\n"
            except APIError as err:  # after the 200 was sent: the error travels as an event
                yield f"data: {json.dumps(err.body())}\n\n"
            except SchedulerStopped as err:
                body = APIError(str(err), status=503, type="server_error", code="shutting_down").body()
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def count_tokens(response: dict[str, Any]) -> None:
        usage = response.get("usage") or {}
        metrics.prompt_tokens.inc(usage.get("prompt_tokens", 0))
        metrics.generated_tokens.inc(usage.get("completion_tokens", 0))

    async def counted(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for chunk in chunks:
            if chunk.get("usage"):
                count_tokens(chunk)
            yield chunk

    async def answer(request, body_type, plan_of, whole, chunks):
        """One endpoint: the body checked into a plan, answered whole or as server-sent events."""
        plan = plan_of(await parse(request, body_type))
        disconnected = request.is_disconnected
        if plan.stream:
            return sse(counted(chunks(plan, disconnected)))
        response = await whole(plan, disconnected)
        count_tokens(response)
        return response

    @app.post("/v1/completions")
    async def create_completion(request: fastapi.Request):
        return await answer(request, CompletionRequest, completions.plan_completion, completions.completion,
                            completions.completion_chunks)

    @app.post("/v1/chat/completions")
    async def create_chat_completion(request: fastapi.Request):
        return await answer(request, ChatRequest, completions.plan_chat, completions.chat, completions.chat_chunks)

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": options.model_name, "object": "model",
                                            "created": options.created, "owned_by": "gpt2kit"}]}

    @app.get("/v1/models/{name}")
    async def get_model(name: str):
        completions.check_model(name)
        return {"id": options.model_name, "object": "model", "created": options.created, "owned_by": "gpt2kit"}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": options.model_name, "queue_depth": scheduler.queue_depth,
                "running_rows": scheduler.active_rows}

    @app.get("/metrics")
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    static = resources.files("gpt2kit.serving") / "static"

    def page(name: str, media_type: str):
        async def serve_page():
            return Response((static / name).read_bytes(), media_type=media_type)
        return serve_page

    app.get("/")(page("playground.html", "text/html; charset=utf-8"))
    app.get("/playground.js")(page("playground.js", "text/javascript; charset=utf-8"))
    app.get("/playground.css")(page("playground.css", "text/css; charset=utf-8"))

    guarded = Guard(app, options, metrics)
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        return CORSMiddleware(guarded, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"],
                              allow_headers=["Authorization", "Content-Type"])
    return guarded


class Guard:
    """ASGI middleware in front of every route: the API key (compared in constant time), the body
    size limit, and the count of answers by endpoint and status."""

    def __init__(self, app, options: ServerOptions, metrics: Metrics) -> None:
        self.app, self.options, self.metrics = app, options, metrics
        self.key = options.api_key.encode() if options.api_key else None
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        status = {"code": 500}
        started = time.perf_counter()

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            error = self.refusal(scope)
            if error is None and scope["method"] == "POST":  # read the body here, to stop at the limit
                body, error = await read_body(receive, self.options.max_body_bytes)
                receive = replay(body, receive)
            if error is not None:
                return await respond(error, counting_send)
            await self.app(scope, receive, counting_send)
        finally:
            endpoint = path if path.startswith(GUARDED_PREFIX) or path in OPEN_PATHS else "other"
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            if path.startswith(GUARDED_PREFIX):
                self.metrics.duration.observe(time.perf_counter() - started)

    def refusal(self, scope) -> APIError | None:
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.options.max_body_bytes:
            return too_large(self.options.max_body_bytes)
        if self.key is None or not scope["path"].startswith(GUARDED_PREFIX) or scope["method"] == "OPTIONS":
            return None
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            what = "no API key given" if not given else "the API key is not valid"
            return APIError(f"{what}: send `Authorization: Bearer KEY` with the key the server was started with",
                            status=401, code="invalid_api_key")
        return None


async def read_body(receive, limit: int) -> tuple[bytes, APIError | None]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"", APIError("the client disconnected", status=400)
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return b"", too_large(limit)
        if not message.get("more_body"):
            return b"".join(chunks), None


def replay(body: bytes, receive):
    """A receive that gives the body read already, then waits for what the client does next."""
    sent = False

    async def receive_again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def too_large(limit: int) -> APIError:
    return APIError(f"the request body is larger than the server's limit of {limit} bytes", status=413,
                    code="body_too_large")


async def respond(error: APIError, send) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
