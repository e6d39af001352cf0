"""`serve()`: the app on uvicorn, with the address printed and a clean Ctrl-C."""

from __future__ import annotations

import ipaddress
import sys

from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.errors import GPT2KitError
from gpt2kit.extras import require
from gpt2kit.serving.app import ServerOptions, create_app

GRACE_SECONDS = 10  # Ctrl-C: requests running get this long to finish, then are cancelled


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """What to say when the server can be reached from other machines without a key."""
    if is_loopback(host) or api_key:
        return None
    return (f"gpt2kit: warning: serving on {host} without --api-key: anyone who can reach this machine can use "
            "the model")


def serve(loaded: LoadedModel, options: ServerOptions, *, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning") -> None:
    """Serve `loaded` until Ctrl-C (or SIGTERM)."""
    uvicorn = require("uvicorn", "serve", "gpt2kit serve")
    if not 0 <= port <= 65535:
        raise GPT2KitError(f"--port must be in 0..65535, got {port}")
    warning = exposure_warning(host, options.api_key)
    if warning:
        print(warning, file=sys.stderr)
    app = create_app(loaded, options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACE_SECONDS,
                            access_log=log_level in ("info", "debug"))
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets=None):  # the address once the socket is bound (port 0 picks a free one)
        await original(sockets)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            shown = f"[{host}]" if ":" in host else host
            print(f"gpt2kit: serving {options.model_name} at http://{shown}:{bound} (OpenAI API under /v1, "
                  f"playground at /); Ctrl-C stops", file=sys.stderr, flush=True)

    server.startup = startup
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then passed the Ctrl-C on
        pass
    except OSError as err:
        raise GPT2KitError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    if not server.started:
        raise GPT2KitError(f"cannot listen on {host}:{port} (is another server using the port? try --port)")
    print("gpt2kit: server stopped", file=sys.stderr)
