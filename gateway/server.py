"""An ASGI app served by uvicorn on one socket, in the foreground (`python -m gateway`) or on
a background thread (tests, `make serve`'s fronts). The socket is bound here, before uvicorn
starts, so port 0 gives a free port whose number is known at once."""

import asyncio
import socket
import threading
import time
from typing import Optional

import uvicorn

from gateway.app import make_app
from gateway.config import GatewayConfig

# Idle keep-alive connections are closed after this; a request's own time is not bounded here
# (a streamed job may run for minutes), only the wait for TorchServe's next bytes.
KEEP_ALIVE_S = 15
MAX_CONNECTIONS = 256  # beyond this uvicorn answers 503 instead of queueing without bound


class AsgiServer:
    def __init__(self, app, host: str, port: int, name: str = "front"):
        self.name = name
        self.socket = socket.create_server((host, port), reuse_port=False)
        config = uvicorn.Config(
            app,
            http="h11",
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S,
            limit_concurrency=MAX_CONNECTIONS,
            server_header=False,
            proxy_headers=False,
            log_config=None,
        )
        self.uvicorn = uvicorn.Server(config)
        self._thread: Optional[threading.Thread] = None

    @property
    def server_address(self) -> tuple:
        return self.socket.getsockname()[:2]

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host}:{port}"

    async def serve(self) -> None:
        """In the running event loop, beside other servers (the v2 front's gRPC)."""
        await self.uvicorn.serve(sockets=[self.socket])

    def serve_forever(self) -> None:
        """Until Ctrl-C or SIGTERM (uvicorn's own signal handling)."""
        self.uvicorn.run(sockets=[self.socket])

    def start_background(self, timeout_s: float = 30) -> threading.Thread:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.uvicorn.serve(sockets=[self.socket])), name=self.name, daemon=True
        )
        self._thread.start()
        for _ in range(int(timeout_s / 0.02)):
            if self.uvicorn.started or not self._thread.is_alive():
                break
            time.sleep(0.02)
        if not self.uvicorn.started:
            raise RuntimeError(f"{self.name} did not start on {self.url}")
        return self._thread

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def server_close(self) -> None:
        self.socket.close()


def make_gateway(config: GatewayConfig) -> AsgiServer:
    return AsgiServer(make_app(config), config.host, config.port, name="gateway")
