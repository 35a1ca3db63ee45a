"""The gateway's one configuration, validated at construction."""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from repo_paths import REPO_ROOT, SERVE_WORKDIR

DEFAULT_STATIC_DIR = REPO_ROOT / "frontend" / "dist"
# config.properties' max_request_size: two 20 MiB images, base64-encoded, plus fields.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    key_file: Path = SERVE_WORKDIR / "key_file.json"
    static_dir: Path = DEFAULT_STATIC_DIR
    host: str = "127.0.0.1"
    port: int = 8090
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Between two reads from TorchServe, not for the whole job: a streamed job may run long.
    upstream_timeout_s: float = 600.0
    # PUT /api/models/{model}/{version}/set-default changes what every client gets: off unless asked.
    allow_set_default: bool = False

    def __post_init__(self):
        for name in ("inference_url", "management_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"{name} must look like http://host:port; got {getattr(self, name)!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be from 0 to 65535; got {self.port}")
        if self.max_request_bytes < 1024:
            raise ValueError("max_request_bytes must be at least 1024")
        if self.upstream_timeout_s <= 0:
            raise ValueError("upstream_timeout_s must be positive")
