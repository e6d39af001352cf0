"""A real gpt2kit server on 127.0.0.1 for tests: uvicorn in a thread of the test process, on a free port."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from gpt2kit.backends.loaded import LoadedModel

API_KEY = "test-key"


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    app: object
    loaded: LoadedModel

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextlib.contextmanager
def running_server(loaded: LoadedModel, **options):
    import uvicorn

    from gpt2kit.serving.app import ServerOptions, create_app

    app = create_app(loaded, ServerOptions(**{"model_name": "test-model", **options}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}", app, loaded)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
