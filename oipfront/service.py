"""The Open Inference Protocol (KServe v2, as Triton serves it) over TorchServe, independent of
transport: the REST app (http_app.py) and the gRPC servicer (grpc_service.py) both call this.

Inference goes to `/predictions/{model}[/{version}]` with the v2 body unchanged: the handlers
speak v2 themselves (handlers/common/oip.py), and TorchServe 0.12 routes only the unversioned
`/v2/models/{m}/infer`. What the front checks first is what the handlers cannot know: the
tensor names of the model's metadata, and one item per request."""

import json
from dataclasses import dataclass, field
from importlib import metadata
from typing import Optional

from gateway.upstream import TorchServeClient, UpstreamError
from oipfront.catalogue import Catalogue, ModelError

HEADER_LENGTH = "Inference-Header-Content-Length"
SERVER_NAME = "imagelab"
# Only what is really served: Triton's binary tensor data and its model configuration.
EXTENSIONS = ("binary_tensor_data", "model_configuration")
MAX_HEADER_BYTES = 1024 * 1024


class OipError(Exception):
    """A v2 error: {"error": message} with this HTTP status (grpc_service.py maps it)."""

    def __init__(self, status: int, message: str, extra: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.extra = extra or {}

    def body(self) -> dict:
        return {"error": str(self), **self.extra}


@dataclass
class InferAnswer:
    body: bytes
    header_length: Optional[int]  # set when binary tensor data follows the JSON header
    document: dict = field(default_factory=dict)  # the JSON header, parsed

    @property
    def content_type(self) -> str:
        return "application/json" if self.header_length is None else "application/octet-stream"


class OipService:
    def __init__(self, torchserve: TorchServeClient):
        self.torchserve = torchserve
        self.catalogue = Catalogue(torchserve)

    # ---- health and metadata ----------------------------------------------------------------

    async def server_ready(self) -> bool:
        try:
            return await self.catalogue.server_ready()
        except ModelError:
            return False

    def server_metadata(self) -> dict:
        return {"name": SERVER_NAME, "version": _torchserve_version(), "extensions": list(EXTENSIONS)}

    async def model_ready(self, model: str, version: Optional[str]) -> bool:
        return (await self._call(self.catalogue.entry(model, version))).ready

    async def model_metadata(self, model: str, version: Optional[str]) -> dict:
        schema = await self._call(self.catalogue.schema(model, version))
        batch = schema.batch_dims()
        return {
            "name": schema.entry.name,
            "versions": list(schema.versions),
            "platform": "torchserve",
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": [*batch, 1]} for t in schema.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": [*batch, -1]} for t in schema.outputs],
        }

    async def model_config(self, model: str, version: Optional[str]) -> dict:
        """Triton's ModelConfig (JSON names, as `GET /v2/models/{m}/config` gives it)."""
        schema = await self._call(self.catalogue.schema(model, version))
        entry = schema.entry
        config = {
            "name": entry.name,
            "platform": "torchserve",
            "backend": "python",
            "max_batch_size": entry.max_batch_size if entry.max_batch_size > 1 else 0,
            "input": [
                {"name": t.name, "data_type": f"TYPE_{_config_type(t.datatype)}", "dims": [1], "optional": t.optional}
                for t in schema.inputs
            ],
            "output": [{"name": t.name, "data_type": "TYPE_STRING", "dims": [-1]} for t in schema.outputs],
            "instance_group": [{"name": entry.name, "count": entry.workers, "kind": f"KIND_{entry.device.upper()}"}],
            "parameters": {"model_version": {"string_value": entry.version}},
        }
        if entry.max_batch_size > 1:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": entry.max_batch_delay_ms * 1000}
        return config

    # ---- inference --------------------------------------------------------------------------

    async def infer(self, model: str, version: Optional[str], body: bytes, header_length: Optional[str]) -> InferAnswer:
        request, split = _parse_request(body, header_length)
        entry = await self._call(self.catalogue.entry(model, version))
        inputs = await self._call(self.catalogue.inputs(entry))
        batched = _check_inputs(request, inputs, entry.max_batch_size)
        headers = {"Content-Type": "application/json" if split is None else "application/octet-stream"}
        if split is not None:
            headers[HEADER_LENGTH] = str(split)
        path = f"/predictions/{model}" + (f"/{version}" if version else "")
        try:
            answer = await self.torchserve.send("inference", "POST", path, body, headers)
            data = await answer.read()
        except UpstreamError as error:
            raise OipError(error.status, str(error)) from None
        if answer.status != 200:
            raise _torchserve_error(answer.status, data)
        length = answer.response.headers.get(HEADER_LENGTH)
        return _reshaped(data, int(length) if length else None, batched)

    async def _call(self, awaitable):
        try:
            return await awaitable
        except ModelError as error:
            raise OipError(error.status, str(error)) from None


def _parse_request(body: bytes, header_length: Optional[str]) -> tuple:
    """-> (the JSON header, its length or None for a JSON-only body)."""
    split = None
    try:
        if header_length is not None:
            split = int(header_length)
            if not 0 < split <= min(len(body), MAX_HEADER_BYTES):
                raise ValueError
        request = json.loads(body[:split] if split is not None else body)
    except (ValueError, RecursionError):
        raise OipError(
            400, f"the body must be a JSON v2 request, or one whose first {HEADER_LENGTH} bytes are"
        ) from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise OipError(400, "a v2 infer request needs an 'inputs' list of tensors")
    return request, split


def _check_inputs(request: dict, inputs: tuple, max_batch_size: int) -> bool:
    """Names from the model's metadata; one item per request. -> True when the shapes carry
    Triton's batch dimension ([1, 1]), so the answer's shapes must carry it too."""
    known = {t.name for t in inputs}
    batched = False
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError(400, "every input needs a 'name'")
        name, shape = tensor["name"], tensor.get("shape")
        if name not in known:
            raise OipError(
                400,
                f"unknown input {name[:40]!r}; the model's inputs: {', '.join(sorted(known))}",
                {"field": name[:40]},
            )
        if shape not in ([1], [1, 1]):
            raise OipError(
                400,
                f"input {name!r}: shape must be [1] (or [1, 1] with the batch dimension), got {str(shape)[:40]}; "
                f"send one item per request: TorchServe batches concurrent requests itself "
                f"(max_batch_size {max_batch_size})",
                {"field": name},
            )
        batched = batched or len(shape) == 2
    return batched


def _reshaped(data: bytes, header_length: Optional[int], batched: bool) -> InferAnswer:
    header, rest = (data[:header_length], data[header_length:]) if header_length is not None else (data, b"")
    try:
        document = json.loads(header)
    except ValueError:
        raise OipError(502, "TorchServe's answer is not a v2 response") from None
    if not batched:
        return InferAnswer(data, header_length, document)
    for tensor in document.get("outputs", []):
        tensor["shape"] = [1, *tensor.get("shape", [])]
    header = json.dumps(document).encode("utf-8")
    return InferAnswer(header + rest, len(header) if header_length is not None else None, document)


def _torchserve_error(status: int, data: bytes) -> OipError:
    """The handler's {"code", "type", "message", "field"} as v2's {"error", ...}, same status."""
    try:
        body = json.loads(data)
        message = str(body.get("message") or body.get("type") or f"TorchServe answered {status}")
        extra = {k: body[k] for k in ("type", "field") if isinstance(body.get(k), str)}
    except (ValueError, AttributeError):
        message, extra = f"TorchServe answered {status}", {}
    return OipError(status, message, extra)


def _config_type(datatype: str) -> str:
    return "STRING" if datatype == "BYTES" else datatype


def _torchserve_version() -> str:
    try:
        return metadata.version("torchserve")
    except metadata.PackageNotFoundError:
        return "unknown"
