"""What every transport offers and the 503 retry policy they share (the factory that picks a
transport is transports/factory.py, so no transport imports the module that imports it)."""

import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

from imagelab_client.errors import Overloaded

# on_event(event dict) for each progress line of a streamed request.
OnEvent = Callable[[dict], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 503 only: the one status that says "the same request later may work".
    Delays grow as backoff_s * 2**attempt, capped, with equal jitter so that clients
    refused together do not come back together."""

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def __post_init__(self):
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("RetryPolicy needs max_retries, backoff_s and max_backoff_s >= 0")

    def delay_s(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def call(self, send: Callable, sleep: Callable[[float], None] = time.sleep):
        for attempt in range(self.max_retries + 1):
            try:
                return send()
            except Overloaded:
                if attempt == self.max_retries:
                    raise
                sleep(self.delay_s(attempt))


class Transport:
    """fields: name -> bytes (an image) or str/int/float/bool; None values are never sent."""

    name = "transport"
    streams = False  # whether infer can report progress events

    def infer(self, model: str, fields: dict, version: Optional[str] = None, on_event: Optional[OnEvent] = None):
        """-> results.Answer; raises ImageLabError subclasses."""
        raise NotImplementedError

    def list_models(self) -> list:
        """[{"modelName", "modelUrl"}] as TorchServe lists them."""
        raise NotImplementedError

    def describe(self, model: str, version: Optional[str] = None) -> list:
        """TorchServe's describe list (one entry per version; version "all" for every one),
        with customizedMetadata."""
        raise NotImplementedError

    def set_default(self, model: str, version: str) -> str:
        raise NotImplementedError

    def scale_workers(
        self, model: str, min_worker: int, max_worker: Optional[int], version: Optional[str], synchronous: bool
    ) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


def text_value(value) -> str:
    """How a non-image field travels as text (multipart, gRPC)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
