"""The Open Inference Protocol v2 (KServe v2 / Triton), request and response side.

Inputs become fields by tensor name. BYTES elements arrive as JSON strings or, with Triton's
binary tensor data extension, as raw bytes after a JSON header whose length the request header
`Inference-Header-Content-Length` gives; each BYTES element there carries a 4-byte little-endian
length prefix. Triton's own HTTP client uses that extension for BYTES by default.
"""

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from handlers.common.errors import InvalidField, TooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
# Every field is one value (shape [1]); these bound what a tensor may hold before it is read.
MAX_ELEMENTS = 64
MAX_DEPTH = 8

# v2 datatype -> numpy little-endian dtype for binary tensor data.
NUMERIC_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


@dataclass(frozen=True)
class OipRequest:
    """What a v2 response needs to know about its request."""

    id: Optional[str]
    binary_outputs: frozenset = field(default_factory=frozenset)
    all_binary: bool = False
    requested_outputs: Optional[tuple] = None

    def wants_binary(self, name: str) -> bool:
        return self.all_binary or name in self.binary_outputs


def is_oip_json(body) -> bool:
    return isinstance(body, dict) and isinstance(body.get("inputs"), list)


def parse_oip(body, header_length: Optional[str], field_names: Optional[frozenset] = None) -> tuple[dict, OipRequest]:
    """A v2 infer request (dict, or bytes with the binary extension) -> (fields, request).

    Names, datatypes and sizes of every tensor are checked before any tensor data is read, so
    a 64 MiB tensor of an unknown name, or a numeric one larger than a field can be, costs
    nothing. `field_names`, when given, are the only input names accepted."""
    blob = b""
    if header_length is not None:
        try:
            split = int(header_length)
            if not isinstance(body, (bytes, bytearray)):
                raise TypeError
            raw = bytes(body)
            if not 0 < split <= len(raw):
                raise ValueError
            body, blob = json.loads(raw[:split]), raw[split:]
        except (ValueError, TypeError, RecursionError):
            raise InvalidField(
                f"{HEADER_LENGTH} must give the length of a JSON header inside the body",
                "inputs",
            ) from None
    if not is_oip_json(body):
        raise InvalidField("a v2 infer request needs an 'inputs' list of tensors", "inputs")
    outputs = _outputs(body)
    tensors = [_check_tensor(tensor, field_names) for tensor in body["inputs"]]
    end = 0
    for tensor in tensors:
        end += tensor.size or 0
        if end > len(blob):
            raise InvalidField(f"input '{tensor.name}': binary_data_size does not fit the body", tensor.name)
    if end != len(blob):
        raise InvalidField("binary tensor data is longer than the inputs declare", "inputs")
    fields, offset = {}, 0
    for tensor in tensors:
        values, offset = _read_tensor(tensor, blob, offset)
        fields[tensor.name] = values[0] if len(values) == 1 else values
    parameters = _object(body, "parameters")
    binary = {out["name"] for out in outputs or () if _object(out, "outputs").get("binary_data")}
    request = OipRequest(
        id=body.get("id"),
        binary_outputs=frozenset(binary),
        all_binary=bool(parameters.get("binary_data_output", False)),
        requested_outputs=tuple(out["name"] for out in outputs) if outputs else None,
    )
    return fields, request


def _outputs(body: dict) -> Optional[list]:
    outputs = body.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list)
        and all(
            isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(_object(o, "outputs"), dict)
            for o in outputs
        )
    ):
        raise InvalidField("'outputs' must be a list of objects, each with a 'name' string", "outputs")
    return outputs


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    size: Optional[int]  # bytes of binary data, None for JSON data
    data: object = None


def _check_tensor(tensor, field_names: Optional[frozenset]) -> _Tensor:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidField("every v2 input needs a 'name'", "inputs")
    name, datatype = tensor["name"], str(tensor.get("datatype", "")).upper()
    if field_names is not None and name not in field_names:
        raise InvalidField(f"unknown input '{name[:40]}'; accepted inputs: {', '.join(sorted(field_names))}", name)
    size = _object(tensor, name).get("binary_data_size")
    if size is None:
        return _Tensor(name, datatype, None, tensor.get("data"))
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidField(f"input '{name}': binary_data_size must be a whole number of bytes", name)
    if datatype == "BYTES":
        return _Tensor(name, datatype, size)
    if datatype not in NUMERIC_DTYPES:
        raise InvalidField(f"input '{name}': unsupported datatype '{datatype}'", name)
    if size > MAX_ELEMENTS * np.dtype(NUMERIC_DTYPES[datatype]).itemsize:
        raise TooLarge(f"input '{name}': a {datatype} input holds at most {MAX_ELEMENTS} values", name)
    return _Tensor(name, datatype, size)


def _read_tensor(tensor: _Tensor, blob: bytes, offset: int) -> tuple[list, int]:
    name = tensor.name
    if tensor.size is None:
        return _flatten(tensor.data, name), offset
    chunk, offset = blob[offset : offset + tensor.size], offset + tensor.size
    if tensor.datatype == "BYTES":
        return _split_bytes(chunk, name), offset
    try:
        values = np.frombuffer(chunk, dtype=NUMERIC_DTYPES[tensor.datatype]).tolist()
    except ValueError:
        raise InvalidField(f"input '{name}': {tensor.size} bytes is not a whole {tensor.datatype}", name) from None
    return values, offset


def _object(holder: dict, field: str) -> dict:
    value = holder.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField("'parameters' must be an object", field)
    return value


def _split_bytes(chunk: bytes, name: str) -> list:
    values, pos = [], 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise InvalidField(f"input '{name}': truncated BYTES element length", name)
        (length,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + length > len(chunk):
            raise InvalidField(f"input '{name}': truncated BYTES element", name)
        values.append(chunk[pos : pos + length])
        pos += length
        if len(values) > MAX_ELEMENTS:
            raise TooLarge(f"input '{name}': a BYTES input holds at most {MAX_ELEMENTS} values", name)
    return values


def _flatten(data, name: str) -> list:
    """JSON tensor data (nested lists, row-major) -> its elements; bounded in depth and count."""
    out, stack = [], [iter(data if isinstance(data, list) else [data])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) > MAX_DEPTH:
                raise InvalidField(f"input '{name}': data nests deeper than {MAX_DEPTH} levels", name)
            stack.append(iter(item))
        else:
            out.append(item)
            if len(out) > MAX_ELEMENTS:
                raise TooLarge(f"input '{name}': at most {MAX_ELEMENTS} values", name)
    return out


_END = object()


@dataclass(frozen=True)
class OipOutput:
    name: str
    datatype: str
    values: list  # bytes for BYTES tensors
    text: bool = False  # UTF-8 text, sent as plain strings in JSON


def encode_oip(outputs: list, request: OipRequest, model_name: str, model_version: str) -> tuple[bytes, dict]:
    """Outputs -> (body, response headers). BYTES go binary where asked; in JSON, text outputs
    are plain strings and images base64 (raw image bytes are not valid JSON strings)."""
    wanted = [o for o in outputs if request.requested_outputs is None or o.name in request.requested_outputs]
    tensors, blobs = [], []
    for out in wanted:
        tensor = {"name": out.name, "datatype": out.datatype, "shape": [len(out.values)]}
        if request.wants_binary(out.name):
            blob = b"".join(struct.pack("<I", len(v)) + v for v in out.values)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = [
                v.decode("utf-8") if out.text else base64.b64encode(v).decode("ascii") for v in out.values
            ]
        tensors.append(tensor)
    document = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request.id is not None:
        document["id"] = request.id
    header = json.dumps(document).encode("utf-8")
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }
