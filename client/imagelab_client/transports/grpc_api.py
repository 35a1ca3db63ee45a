"""TorchServe's gRPC APIs: InferenceAPIsService (Predictions, StreamPredictions) and
ManagementAPIsService, with stubs compiled from TorchServe's own protos (grpc_stubs.py).

How TorchServe 0.12 reports failures over gRPC, found against a running server:
- a handler's error reply (400, 413, ...) comes back with gRPC status OK and the JSON error
  document as the prediction, so every prediction is checked for one;
- a missing model is NOT_FOUND or INTERNAL with "ModelNotFoundException" in the details;
- no worker / a full queue is INTERNAL with "has no worker" (REST says 503);
- a refused token is PERMISSION_DENIED.
"""

import json
from typing import Optional

import grpc

from imagelab_client.errors import (
    AuthError,
    ConnectionFailed,
    InvalidInput,
    NotFound,
    Overloaded,
    ServerError,
    Timeout,
    error_for,
    is_error_document,
)
from imagelab_client.grpc_stubs import load_stubs
from imagelab_client.results import Answer, answer_from_document
from imagelab_client.transports.base import OnEvent, Transport, text_value

# The server's own limit is max_request_size (64 MiB, config.properties).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class GrpcTransport(Transport):
    name = "grpc"
    streams = True

    def __init__(
        self, target: str, management_target: str, credentials, connect_timeout_s: float, read_timeout_s: float
    ):
        self.stubs = load_stubs()
        self.credentials = credentials
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = connect_timeout_s + read_timeout_s  # gRPC has one deadline per call
        self.channel = grpc.insecure_channel(strip_scheme(target), options=_CHANNEL_OPTIONS)
        self.management_channel = grpc.insecure_channel(strip_scheme(management_target), options=_CHANNEL_OPTIONS)
        self.inference = self.stubs.inference_pb2_grpc.InferenceAPIsServiceStub(self.channel)
        self.management = self.stubs.management_pb2_grpc.ManagementAPIsServiceStub(self.management_channel)

    def infer(
        self, model: str, fields: dict, version: Optional[str] = None, on_event: Optional[OnEvent] = None
    ) -> Answer:
        fields = {**fields, "response_format": "json"}
        if on_event is not None:
            fields["stream"] = True
        # The input map is bytes -> images as they are, every other field as UTF-8 text.
        inputs = {
            name: bytes(value) if isinstance(value, (bytes, bytearray)) else text_value(value).encode()
            for name, value in fields.items()
            if value is not None
        }
        request = self.stubs.inference_pb2.PredictionsRequest(
            model_name=model, model_version=version or "", input=inputs
        )
        metadata = self.credentials.grpc_metadata()
        if on_event is None:
            reply = self._call(self.inference.Predictions, request, metadata)
            return answer_from_document(read_document(reply.prediction))
        call = self.inference.StreamPredictions(request, metadata=metadata, timeout=self.timeout_s)
        try:
            for message in call:
                event = read_document(message.prediction)
                if event.get("type") == "progress":
                    on_event(event)
                else:
                    return answer_from_document(event)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        finally:
            call.cancel()  # no-op once finished; frees the stream if we stop early
        raise ServerError("the stream ended without a result")

    def _call(self, method, request, metadata):
        try:
            return method(request, metadata=metadata, timeout=self.timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def _manage(self, method: str, **fields) -> str:
        pb2 = self.stubs.management_pb2
        request = getattr(pb2, f"{method}Request")(**{k: v for k, v in fields.items() if v is not None})
        rpc = getattr(self.management, method)
        return self._call(rpc, request, self.credentials.grpc_metadata(management=True)).msg

    def list_models(self) -> list:
        return json.loads(self._manage("ListModels", limit=1000))["models"]

    def describe(self, model: str, version: Optional[str] = None) -> list:
        return json.loads(self._manage("DescribeModel", model_name=model, model_version=version, customized=True))

    def set_default(self, model: str, version: str) -> str:
        return _status(self._manage("SetDefault", model_name=model, model_version=version))

    def scale_workers(
        self, model: str, min_worker: int, max_worker: Optional[int], version: Optional[str], synchronous: bool
    ) -> str:
        return _status(
            self._manage(
                "ScaleWorker",
                model_name=model,
                model_version=version,
                min_worker=min_worker,
                max_worker=max_worker if max_worker is not None else min_worker,
                synchronous=synchronous,
            )
        )

    def close(self) -> None:
        self.channel.close()
        self.management_channel.close()


def strip_scheme(target: str) -> str:
    return target.split("://", 1)[1] if "://" in target else target


def read_document(prediction: bytes) -> dict:
    """A prediction is our JSON (response_format=json or a stream line); an error document
    raises, since TorchServe sends handler errors with status OK."""
    try:
        document = json.loads(prediction)
    except ValueError:
        raise ServerError(f"expected a JSON prediction, got {prediction[:80]!r}") from None
    if is_error_document(document):
        raise error_for(document.get("code"), document)
    if not isinstance(document, dict):
        raise ServerError("expected a JSON object as the prediction")
    return document


def error_from_rpc(error: grpc.RpcError):
    code, details = error.code(), error.details() or ""
    # TorchServe appends its Java exception's name on the last line of the details.
    message = details.split("\n")[0]
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectionFailed(f"cannot reach the gRPC server: {message}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(message or "the gRPC deadline passed", 504)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return AuthError(message, 401)
    if code == grpc.StatusCode.NOT_FOUND or "NotFoundException" in details:
        return NotFound(message, 404)
    if "has no worker" in details or "ServiceUnavailableException" in details:
        return Overloaded(message, 503)
    if code == grpc.StatusCode.INVALID_ARGUMENT or "BadRequestException" in details:
        return InvalidInput(message, 400)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # a message over the size limits
        return InvalidInput(message, 413)
    return ServerError(f"{code.name}: {message}", 500)


def _status(message: str) -> str:
    try:
        return json.loads(message).get("status", message)
    except (ValueError, AttributeError):
        return message
