"""The OpenAI-compatible HTTP server (`gpt2kit[serve]`): `serve(gpt2kit.load(...), ServerOptions(...))`,
or `create_app` for an ASGI app of your own. Imported lazily: the rest of gpt2kit works without
FastAPI."""

from __future__ import annotations

from typing import Any

__all__ = ["ServerOptions", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("ServerOptions", "create_app"):
        from gpt2kit.serving import app

        return getattr(app, name)
    if name == "serve":
        from gpt2kit.serving.server import serve

        return serve
    raise AttributeError(name)
