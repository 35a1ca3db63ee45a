"""The v2 gRPC service in Triton's package (`inference.GRPCInferenceService`), on grpc.aio in
the same event loop as the REST app, over the same OipService.

ModelInfer becomes a v2 REST request with Triton's binary tensor data (which is byte for byte
what `raw_input_contents` holds: little-endian numbers, BYTES elements each with a 4-byte
length prefix) and the answer's binary outputs become `raw_output_contents`, as Triton's own
server sends them. ModelStreamInfer answers each request of the stream with one response, as
Triton does for a model that is not decoupled."""

import json
import logging
import struct

import grpc
import numpy as np
from google.protobuf import json_format

from oipfront.auth import CallerKey
from oipfront.service import OipError, OipService

logger = logging.getLogger("oipfront.grpc")

# HTTP status -> gRPC status, as Triton maps its own errors.
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# InferTensorContents field for each v2 datatype, with the numpy type of its raw bytes.
CONTENTS = {
    "BOOL": ("bool_contents", "?"),
    "INT8": ("int_contents", "<i1"),
    "INT16": ("int_contents", "<i2"),
    "INT32": ("int_contents", "<i4"),
    "INT64": ("int64_contents", "<i8"),
    "UINT8": ("uint_contents", "<u1"),
    "UINT16": ("uint_contents", "<u2"),
    "UINT32": ("uint_contents", "<u4"),
    "UINT64": ("uint64_contents", "<u8"),
    "FP32": ("fp32_contents", "<f4"),
    "FP64": ("fp64_contents", "<f8"),
}


def _parameter_value(parameter):
    choice = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, choice) if choice else None


def to_rest(request) -> tuple:
    """ModelInferRequest -> (v2 REST body with binary tensor data, JSON header length)."""
    inputs, blobs = [], []
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise OipError(400, f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
    for index, tensor in enumerate(request.inputs):
        data = raw[index] if raw else _contents_bytes(tensor)
        parameters = {k: _parameter_value(v) for k, v in tensor.parameters.items()}
        parameters["binary_data_size"] = len(data)
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "parameters": parameters}
        )
        blobs.append(data)
    outputs = [{"name": out.name, "parameters": {"binary_data": True}} for out in request.outputs]
    header = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    if outputs:
        header["outputs"] = outputs
    if request.id:
        header["id"] = request.id
    encoded = json.dumps(header).encode("utf-8")
    return encoded + b"".join(blobs), len(encoded)


def _contents_bytes(tensor) -> bytes:
    """Typed `contents` -> the same bytes raw_input_contents would hold."""
    if tensor.datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in tensor.contents.bytes_contents)
    if tensor.datatype not in CONTENTS:
        raise OipError(
            400, f"input {tensor.name!r}: unsupported datatype {tensor.datatype[:20]!r}", {"field": tensor.name}
        )
    field, dtype = CONTENTS[tensor.datatype]
    return np.asarray(list(getattr(tensor.contents, field)), dtype=dtype).tobytes()


def from_rest(answer, pb2):
    """The v2 REST answer (binary outputs) -> ModelInferResponse with raw_output_contents."""
    document = answer.document
    response = pb2.ModelInferResponse(
        model_name=document.get("model_name", ""), model_version=str(document.get("model_version", ""))
    )
    if document.get("id"):
        response.id = document["id"]
    offset = answer.header_length or len(answer.body)
    for tensor in document.get("outputs", []):
        response.outputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            raise OipError(502, f"TorchServe sent output {tensor['name']!r} as JSON, not binary")
        response.raw_output_contents.append(answer.body[offset : offset + size])
        offset += size
    return response


class InferenceServicer:
    """Implements the GRPCInferenceService methods grpc_service.proto declares."""

    def __init__(self, service: OipService, caller_key: CallerKey, stubs):
        self.service = service
        self.caller_key = caller_key
        self.pb2 = stubs.service_pb2
        self.config_pb2 = stubs.model_config_pb2

    async def _guard(self, context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        if not self.caller_key.allows(metadata.get("authorization")):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "this front needs 'authorization: Bearer <key>' metadata"
            )

    async def _answer(self, context, call):
        await self._guard(context)
        try:
            return await call()
        except OipError as error:
            await context.abort(STATUS_CODES.get(error.status, grpc.StatusCode.INTERNAL), str(error))

    async def ServerLive(self, request, context):
        async def call():
            return self.pb2.ServerLiveResponse(live=True)

        return await self._answer(context, call)

    async def ServerReady(self, request, context):
        async def call():
            return self.pb2.ServerReadyResponse(ready=await self.service.server_ready())

        return await self._answer(context, call)

    async def ModelReady(self, request, context):
        async def call():
            ready = await self.service.model_ready(request.name, request.version or None)
            return self.pb2.ModelReadyResponse(ready=ready)

        return await self._answer(context, call)

    async def ServerMetadata(self, request, context):
        async def call():
            return json_format.ParseDict(self.service.server_metadata(), self.pb2.ServerMetadataResponse())

        return await self._answer(context, call)

    async def ModelMetadata(self, request, context):
        async def call():
            document = await self.service.model_metadata(request.name, request.version or None)
            return json_format.ParseDict(document, self.pb2.ModelMetadataResponse())

        return await self._answer(context, call)

    async def ModelConfig(self, request, context):
        async def call():
            document = await self.service.model_config(request.name, request.version or None)
            config = json_format.ParseDict(document, self.config_pb2.ModelConfig())
            return self.pb2.ModelConfigResponse(config=config)

        return await self._answer(context, call)

    async def ModelInfer(self, request, context):
        return await self._answer(context, lambda: self._infer(request))

    async def ModelStreamInfer(self, request_iterator, context):
        await self._guard(context)
        async for request in request_iterator:
            try:
                yield self.pb2.ModelStreamInferResponse(infer_response=await self._infer(request))
            except OipError as error:
                yield self.pb2.ModelStreamInferResponse(error_message=str(error))

    async def _infer(self, request):
        body, header_length = to_rest(request)
        answer = await self.service.infer(request.model_name, request.model_version or None, body, str(header_length))
        return from_rest(answer, self.pb2)


def add_servicer(server, servicer: InferenceServicer, stubs) -> None:
    stubs.service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
