"""The one place that knows TorchServe: context properties in, per-request statuses, headers
and streamed chunks out. Each capability's handler file subclasses this with its Service, so
moving to another server means another adapter, not a rewrite of the capabilities."""

import http
import json
import logging
import os
from pathlib import Path

from handlers.common import log_safety
from handlers.common import metrics as m
from handlers.common.faults import FaultInjector
from handlers.common.runner import BatchRunner
from handlers.common.service import Service, ServiceContext
from imagelab.cancellation import CancelMarkers, cancel_dir
from imagelab.devices import configure_threads, resolve_device, threads_per_worker

logger = logging.getLogger(__name__)


class TorchServeHandler:
    service_class: type = Service

    def __init__(self):
        self.service = None
        self.runner = None
        self.initialized = False

    def initialize(self, ctx) -> None:
        log_safety.install()  # no request can write a line of its own into the worker's log
        properties = ctx.system_properties
        model_config = ctx.model_yaml_config or {}
        settings = dict(model_config.get("handler") or {})
        workers = int(model_config.get("maxWorkers", 1))
        # Per archive: cores / this model's workers. Several models busy at once share the
        # cores too; IMAGELAB_THREADS_PER_WORKER (inherited from the server) caps them all.
        threads = int(
            os.environ.get("IMAGELAB_THREADS_PER_WORKER")
            or settings.get("threads_per_worker")
            or threads_per_worker(workers)
        )
        configure_threads(threads)
        model = ctx.manifest["model"]
        context = ServiceContext(
            model_name=model["modelName"],
            model_version=model.get("modelVersion", "1.0"),
            model_dir=Path(properties["model_dir"]),
            settings=settings,
            device=resolve_device(properties.get("gpu_id")),
        )
        self.service = self.service_class()
        self.service.setup(context)
        faults = FaultInjector(enabled=bool(settings.get("fault_injection", False)))
        if faults.enabled:
            logger.warning("%s: FAULT INJECTION ENABLED (test archive; never serve it)", context.model_name)
        folder = cancel_dir(None)  # $IMAGELAB_CANCEL_DIR, set by operations/server.py
        cancels = CancelMarkers(folder) if folder is not None and self.service.streams else None
        if self.service.streams:
            logger.info("%s: cancel markers %s", context.model_name, folder or "off ($IMAGELAB_CANCEL_DIR unset)")
        self.runner = BatchRunner(
            self.service, context.model_name, context.model_version, TorchServeMetrics(ctx), faults, cancels
        )
        logger.info(
            "%s %s ready on %s with %d thread(s)",
            context.model_name,
            context.model_version,
            context.device,
            threads,
        )
        self.initialized = True

    def handle(self, data: list, ctx) -> list:
        batch = [(raw, ctx.get_all_request_header(i)) for i, raw in enumerate(data)]
        if is_describe_call(batch):
            return [json.dumps(self.service.describe())]

        def send_chunk(index: int, chunk: bytes) -> None:
            from ts.handler_utils.utils import send_intermediate_predict_response

            ctx.set_response_content_type(index, "application/x-ndjson")
            send_intermediate_predict_response(
                {index: chunk}, {index: ctx.request_ids[index]}, "Intermediate", 200, ctx
            )

        replies = self.runner.run(batch, send_chunk)
        for index, (reply, (_, headers)) in enumerate(zip(replies, batch)):
            if _is_grpc(headers):
                # TorchServe's gRPC StreamPredictions reads this header of the final answer and
                # restarts the worker when it is missing (a NullPointerException), e.g. when
                # a request fails before its first progress chunk; unary gRPC ignores it.
                ctx.set_response_header(index, "ts_stream_next", "false")
            ctx.set_response_status(reply.status, _phrase(reply.status), index)
            for key, value in reply.headers.items():
                if key.lower() == "content-type":
                    ctx.set_response_content_type(index, value)
                else:
                    ctx.set_response_header(index, key, value)
        return [reply.body for reply in replies]


def _phrase(status: int) -> str:
    """The reason phrase; 499 (a cancelled job, errors.ClientClosed) is nginx's, not IANA's."""
    return "Client Closed Request" if status == 499 else http.HTTPStatus(status).phrase


def is_describe_call(batch: list) -> bool:
    """Whether this batch is TorchServe's own describe call (`GET /models/{m}?customized=true`).

    TorchServe 0.12 marks it only with a `describe: True` request header, and forwards every
    HTTP header of inference requests too, so a header alone proves nothing. What only the
    management call has: it runs alone (the frontend never batches it) and carries no input
    at all. An inference request always has one: a `body` part, or form fields, except for an
    empty form post, which says so with its form Content-Type."""
    if len(batch) != 1:
        return False
    raw, headers = batch[0]
    lowered = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    form = lowered.get("content-type", "").split(";")[0].strip().lower() in FORM_TYPES
    return headers.get("describe") == "True" and not raw and not form


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _is_grpc(headers: dict) -> bool:
    """gRPC requests reach the handler with no HTTP request headers at all, only the
    per-field content types that every request has."""
    return not any(isinstance(value, str) for value in headers.values())


class TorchServeMetrics:
    """handlers.common.metrics.MetricsSink over TorchServe's metrics cache; with
    `model_metrics_auto_detect=true` the frontend exports them on the Prometheus port."""

    def __init__(self, ctx):
        self.ctx = ctx

    def count(self, name: str, value: float, dimensions: dict) -> None:

        self.ctx.metrics.add_counter(name, value, None, _dimensions(dimensions))

    def gauge_ms(self, name: str, value_ms: float, dimensions: dict) -> None:

        self.ctx.metrics.add_time(name, value_ms, None, "ms", _dimensions(dimensions))


def _dimensions(dimensions: dict) -> list:
    from ts.metrics.dimension import Dimension

    return [Dimension(m.label(k), m.label(v)) for k, v in dimensions.items()]
