"""Runs one batch through a Service and answers each request on its own: a bad request gets
its own 4xx while its neighbours succeed (as Triton's Python backend answers per request)."""

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional

from handlers.common.errors import OutOfMemory, RequestError, ServerFault
from handlers.common.fields import Fields
from handlers.common.payload import parse_payload
from handlers.common.responses import Reply, error_reply, result_reply, stream_line
from handlers.common.service import ImageResult, Service

logger = logging.getLogger(__name__)

# send_chunk(batch index, bytes) streams part of a response before the batch finishes.
SendChunk = Callable[[int, bytes], None]


@dataclass
class _Pending:
    index: int
    request: object
    oip: object
    decode_ms: float


class BatchRunner:
    def __init__(self, service: Service, model_name: str, model_version: str):
        self.service = service
        self.model_name = model_name
        self.model_version = model_version

    def run(self, batch: list, send_chunk: Optional[SendChunk] = None) -> list:
        """batch: (request dict, request headers) per request -> one Reply per request."""
        replies: list = [None] * len(batch)
        pending = []
        for index, (raw, headers) in enumerate(batch):
            started = time.perf_counter()
            payload = None
            try:
                payload = parse_payload(raw, headers, self.service.raw_image_field)
                request = self.service.decode_request(Fields(payload.fields))
                if payload.oip is not None:
                    request.output = replace(request.output, stream=False)  # v2 has no stream
                decode_ms = (time.perf_counter() - started) * 1000
                pending.append(_Pending(index, request, payload.oip, decode_ms))
            except RequestError as error:
                replies[index] = error_reply(error, payload.oip if payload else None)
            except Exception:  # a bug, not bad input: say so and keep the trace
                logger.exception("decoding request %d failed", index)
                replies[index] = error_reply(ServerFault("internal error while decoding"))
        if pending:
            self._predict(pending, replies, send_chunk)
        return replies

    def _predict(self, pending: list, replies: list, send_chunk: Optional[SendChunk]) -> None:
        streamed = set()

        def progress(position: int, event: dict) -> None:
            item = pending[position]
            if send_chunk is not None and item.request.output.stream:
                streamed.add(item.index)
                send_chunk(item.index, stream_line({"type": "progress", **event}))

        started = time.perf_counter()
        try:
            results = self.service.predict([p.request for p in pending], progress)
        except Exception as error:  # answer every request; the worker lives on
            logger.exception("predict failed for a batch of %d", len(pending))
            results = [_fault(error)] * len(pending)
        if not isinstance(results, list) or len(results) != len(pending):
            logger.error("predict returned %r for %d requests", type(results), len(pending))
            results = [ServerFault("internal error while predicting")] * len(pending)
        predict_ms = (time.perf_counter() - started) * 1000
        for item, result in zip(pending, results):
            streaming = item.index in streamed
            if isinstance(result, RequestError):
                replies[item.index] = error_reply(result, item.oip, streaming)
                continue
            if not isinstance(result, ImageResult):
                logger.error("%s.predict returned %r", type(self.service).__name__, type(result))
                replies[item.index] = error_reply(ServerFault("internal error while predicting"), item.oip, streaming)
                continue
            result.timings_ms = {"decode": item.decode_ms, "batch_predict": predict_ms, **result.timings_ms}
            try:
                replies[item.index] = result_reply(
                    result, item.request.output, self.model_name, self.model_version, item.oip
                )
            except Exception:
                logger.exception("encoding response %d failed", item.index)
                replies[item.index] = error_reply(ServerFault("internal error while encoding"), item.oip, streaming)


def _fault(error: Exception) -> RequestError:
    """MemoryError and torch's (CUDA) out-of-memory RuntimeError are 507; the rest 500."""
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return OutOfMemory("out of memory; retry with a smaller image, fewer steps or later")
    return ServerFault("internal error while predicting")
