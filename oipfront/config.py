"""The v2 front's one configuration, validated at construction."""

from dataclasses import dataclass
from pathlib import Path

from gateway.config import DEFAULT_MAX_REQUEST_BYTES, REPO_ROOT, GatewayConfig
from imagelab.cancellation import cancel_dir


@dataclass(frozen=True)
class FrontConfig:
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    key_file: Path = REPO_ROOT / "var" / "serve" / "key_file.json"  # TorchServe's keys
    caller_key_file: Path = REPO_ROOT / "var" / "serve" / "oip_key.json"  # the front's own (auth.py)
    keep_caller_key: bool = False
    host: str = "127.0.0.1"
    http_port: int = 8000  # Triton's defaults
    grpc_port: int = 8001
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    upstream_timeout_s: float = 600.0

    @property
    def cancel_dir(self) -> Path:
        """Where POST /v2/cancel/{job_id} writes: $IMAGELAB_CANCEL_DIR, else beside TorchServe's
        key file ({workdir}/cancel), where operations/server.py points the workers."""
        return cancel_dir(self.key_file.parent)

    def __post_init__(self):
        # The URL and size checks are the gateway's: one home for them.
        GatewayConfig(
            inference_url=self.inference_url,
            management_url=self.management_url,
            max_request_bytes=self.max_request_bytes,
            upstream_timeout_s=self.upstream_timeout_s,
        )
        for name in ("http_port", "grpc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be from 0 to 65535; got {getattr(self, name)}")
