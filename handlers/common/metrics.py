"""What the handlers count, independent of how a server exports it. The TorchServe adapter
turns these calls into TorchServe metrics (Prometheus on the metrics port)."""

import re
from typing import Protocol

IMAGES_PRODUCED = "ImagelabImagesProduced"
REQUEST_LATENCY_MS = "ImagelabRequestLatencyMs"
REJECTED_REQUESTS = "ImagelabRejectedRequests"
SERVER_FAULTS = "ImagelabServerFaults"
CANCELLED_REQUESTS = "ImagelabCancelledRequests"  # 499: the client cancelled its job (by Reason)
NAN_DECODE_RETRIES = "ImagelabNanDecodeRetries"


class MetricsSink(Protocol):
    def count(self, name: str, value: float, dimensions: dict) -> None: ...

    def gauge_ms(self, name: str, value_ms: float, dimensions: dict) -> None: ...


class NullMetrics:
    def count(self, name: str, value: float, dimensions: dict) -> None:
        pass

    def gauge_ms(self, name: str, value_ms: float, dimensions: dict) -> None:
        pass


UNKNOWN_LABEL = "unknown"
MAX_LABEL_CHARS = 64
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def label(value: object) -> str:
    """A metric dimension value that cannot break the exported line: TorchServe writes metrics
    as `[METRICS]name.unit:value|#dim:value,...` log lines that the frontend re-parses, and
    Prometheus keeps every distinct value as a series forever. Callers pass only values from
    a known set; this is the second fence."""
    text = _LABEL_UNSAFE.sub("_", str(value))[:MAX_LABEL_CHARS]
    return text or UNKNOWN_LABEL


# LoRA styles on demand (imagelab/diffusion/adapters.py): folder adapters loaded into the model,
# requests served by one already loaded, and loaded ones deleted to stay within the cache bound.
ADAPTER_LOADS = "ImagelabAdapterLoads"
ADAPTER_HITS = "ImagelabAdapterHits"
ADAPTER_EVICTIONS = "ImagelabAdapterEvictions"
