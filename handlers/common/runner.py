"""Runs one batch through a Service and answers each request on its own: a bad request gets
its own 4xx while its neighbours succeed (as Triton's Python backend answers per request), and
a failure in predict stays with the requests it hit."""

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

from handlers.common import metrics as m
from handlers.common.errors import Cancelled, ClientClosed, OutOfMemory, RequestError, ServerFault, ServiceError
from handlers.common.faults import FIELD as FAULT_FIELD
from handlers.common.faults import FaultInjector
from handlers.common.fields import Fields
from handlers.common.metrics import MetricsSink, NullMetrics
from handlers.common.payload import PAYLOAD_FIELDS, parse_payload
from handlers.common.responses import Reply, error_reply, result_reply, stream_line
from handlers.common.service import ImageResult, Service
from imagelab.cancellation import CancelMarkers, JobCancelled, new_job_id

logger = logging.getLogger(__name__)

# send_chunk(batch index, bytes) streams part of a response before the batch finishes.
SendChunk = Callable[[int, bytes], None]


@dataclass
class _Pending:
    index: int
    request: object
    oip: object
    decode_ms: float
    started: float
    job_id: Optional[str] = None  # set when cancelling is on (imagelab/cancellation.py)


class BatchRunner:
    def __init__(
        self,
        service: Service,
        model_name: str,
        model_version: str,
        metrics: MetricsSink = NullMetrics(),
        faults: FaultInjector = FaultInjector(enabled=False),
        cancels: Optional[CancelMarkers] = None,
    ):
        """cancels: the cancel-marker folder; with it every job of a streaming model gets a job
        id (the client's `job_id`, or a new unguessable one) sent in its first progress event,
        and a job whose marker appears stops at its next step (499 Cancelled)."""
        self.service = service
        self.cancels = cancels if getattr(service, "streams", False) else None
        self.model_name = model_name
        self.model_version = model_version
        self.metrics = metrics
        self.faults = faults
        # Metric labels come only from names the model knows: a client's unknown field must
        # not become a label (an unbounded Prometheus series, or a forged metric line).
        # `request_fields` also lets the v2 parser refuse unknown tensors before reading them.
        names = getattr(service, "field_names", None)
        fault_field = frozenset({FAULT_FIELD} if faults.enabled else ())
        self.request_fields = frozenset(names) | fault_field if names else None  # empty: not declared
        self.field_labels = (self.request_fields or fault_field) | PAYLOAD_FIELDS

    def run(self, batch: list, send_chunk: Optional[SendChunk] = None) -> list:
        """batch: (request dict, request headers) per request -> one Reply per request."""
        replies: list = [None] * len(batch)
        pending, faults = [], []
        for index, (raw, headers) in enumerate(batch):
            started = time.perf_counter()
            payload = None
            try:
                payload = parse_payload(raw, headers, self.service.raw_image_field, self.request_fields)
                fields = dict(payload.fields)
                faults.append(self.faults.take(fields))
                request = self.service.decode_request(Fields(fields))
                if payload.oip is not None:
                    request.output = replace(request.output, stream=False)  # v2 has no stream
                decode_ms = (time.perf_counter() - started) * 1000
                pending.append(_Pending(index, request, payload.oip, decode_ms, started))
            except ServiceError as error:
                replies[index] = self._reject(error, payload.oip if payload else None)
            except Exception:  # a bug, not bad input: say so and keep the trace
                logger.exception("decoding request %d failed", index)
                replies[index] = self._reject(ServerFault("internal error while decoding"))
        if pending:
            self._predict(pending, replies, send_chunk, [f for f in faults if f])
        return replies

    def _predict(self, pending: list, replies: list, send_chunk: Optional[SendChunk], faults: list) -> None:
        streamed, unreachable = set(), set()
        pending = self._not_cancelled(pending, replies)
        if not pending:
            return

        def progress(position: int, event: dict) -> None:
            """Called by the service after every step of every job: the cancel check is here,
            one stat per step; it raises JobCancelled out of the service's step callback."""
            item = pending[position]
            if item.job_id is not None:
                self.cancels.check(item.job_id, event.get("step"))
            if send_chunk is None or not item.request.output.stream or item.index in unreachable:
                return
            first = {"job_id": item.job_id} if item.job_id is not None and item.index not in streamed else {}
            try:
                send_chunk(item.index, stream_line({"type": "progress", **first, **event}))
                streamed.add(item.index)
            except Exception:  # e.g. the client went away: its neighbours carry on
                logger.exception("streaming progress of request %d failed; no more progress for it", item.index)
                unreachable.add(item.index)

        started = time.perf_counter()
        try:
            self.faults.apply(faults)
            results = self.service.predict([p.request for p in pending], progress)
        except Exception as error:  # nothing came back: answer every request; the worker lives on
            logger.exception("predict failed for a batch of %d", len(pending))
            results = [_server_error(error)] * len(pending)
        if not isinstance(results, list) or len(results) != len(pending):
            # Which result belongs to which request is unknown: nobody gets a neighbour's image.
            logger.error("predict returned %r for %d requests", type(results), len(pending))
            results = [ServerFault("internal error while predicting")] * len(pending)
        predict_ms = (time.perf_counter() - started) * 1000
        take_counts = getattr(self.service, "take_metric_counts", None)  # e.g. adapter loads
        for name, value in (take_counts() if take_counts else {}).items():
            if value:
                self.metrics.count(name, value, {})
        self._clear_markers(pending)
        logged = set()
        for item, result in zip(pending, results):
            streaming = item.index in streamed
            if isinstance(result, JobCancelled):
                result = _cancelled(result, item.job_id)  # a whole group's stop names one of its jobs
            if isinstance(result, Exception) and not isinstance(result, ServiceError):
                if id(result) not in logged:  # one trace per failure, not per request it failed
                    logged.add(id(result))
                    logger.error(
                        "predict failed for request %d",
                        item.index,
                        exc_info=(type(result), result, result.__traceback__),
                    )
                result = _server_error(result)
            elif not isinstance(result, (ServiceError, ImageResult)):
                logger.error("%s.predict returned %r", type(self.service).__name__, type(result))
                result = ServerFault("internal error while predicting")
            if isinstance(result, ServiceError):
                replies[item.index] = self._reject(result, item.oip, streaming)
                continue
            result.timings_ms = {"decode": item.decode_ms, "batch_predict": predict_ms, **result.timings_ms}
            try:
                replies[item.index] = result_reply(
                    result, item.request.output, self.model_name, self.model_version, item.oip
                )
            except Exception:
                logger.exception("encoding response %d failed", item.index)
                replies[item.index] = self._reject(ServerFault("internal error while encoding"), item.oip, streaming)
                continue
            self._count_success(result, (time.perf_counter() - item.started) * 1000)

    def _not_cancelled(self, pending: list, replies: list) -> list:
        """Give each job its id; a job cancelled while it queued is answered without running."""
        if self.cancels is None:
            return pending
        kept = []
        for item in pending:
            item.job_id = getattr(item.request.output, "job_id", None) or new_job_id()
            if self.cancels.is_cancelled(item.job_id):
                self._clear_markers([item])
                replies[item.index] = self._reject(_cancelled(JobCancelled(item.job_id)), item.oip)
            else:
                kept.append(item)
        return kept

    def _clear_markers(self, items: list) -> None:
        for item in items:
            if item.job_id is not None:
                try:
                    self.cancels.clear(item.job_id)
                except OSError:  # the folder went away: nothing to clear
                    logger.warning("could not remove the cancel marker of request %d", item.index)

    def _reject(self, error: ServiceError, oip=None, streaming: bool = False) -> Reply:
        """Client errors count as rejected requests (by reason and field), server errors as
        server faults (by reason): a 504 or 507 is not the client's doing; a cancelled job
        (499) is neither and counts as a cancelled request."""
        if isinstance(error, ClientClosed):
            self.metrics.count(m.CANCELLED_REQUESTS, 1, {"Reason": error.type})
        elif isinstance(error, RequestError):
            field = "-" if error.field is None else error.field if error.field in self.field_labels else m.UNKNOWN_LABEL
            self.metrics.count(m.REJECTED_REQUESTS, 1, {"Reason": error.type, "Field": field})
        else:
            self.metrics.count(m.SERVER_FAULTS, 1, {"Reason": error.type})
        return error_reply(error, oip, streaming)

    def _count_success(self, result: ImageResult, latency_ms: float) -> None:
        self.metrics.count(m.IMAGES_PRODUCED, len(result.images), {})
        self.metrics.gauge_ms(m.REQUEST_LATENCY_MS, latency_ms, {})
        retries = result.extra.get("vae_fp32_retries", 0)
        if retries:
            self.metrics.count(m.NAN_DECODE_RETRIES, retries, {})


def _server_error(error: Exception) -> ServiceError:
    """A typed error as it is; MemoryError and torch's (CUDA) out-of-memory RuntimeError are
    507; anything else 500."""
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, JobCancelled):
        return _cancelled(error)
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return OutOfMemory("out of memory; retry with a smaller image, fewer steps or later")
    return ServerFault("internal error while predicting")


def _cancelled(cancelled: JobCancelled, job_id: Optional[str] = None) -> Cancelled:
    job_id = job_id or cancelled.job_id
    when = "before it started" if cancelled.step is None else f"after step {cancelled.step}"
    return Cancelled(f"job {job_id} was cancelled {when}; nothing more was computed for it", job_id=job_id)
