"""What the handlers count, independent of how a server exports it. The TorchServe adapter
turns these calls into TorchServe metrics (Prometheus on the metrics port)."""

from typing import Protocol

IMAGES_PRODUCED = "ImagelabImagesProduced"
REQUEST_LATENCY_MS = "ImagelabRequestLatencyMs"
REJECTED_REQUESTS = "ImagelabRejectedRequests"
SERVER_FAULTS = "ImagelabServerFaults"
NAN_DECODE_RETRIES = "ImagelabNanDecodeRetries"


class MetricsSink(Protocol):
    def count(self, name: str, value: float, dimensions: dict) -> None: ...

    def gauge_ms(self, name: str, value_ms: float, dimensions: dict) -> None: ...


class NullMetrics:
    def count(self, name: str, value: float, dimensions: dict) -> None:
        pass

    def gauge_ms(self, name: str, value_ms: float, dimensions: dict) -> None:
        pass
