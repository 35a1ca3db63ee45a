"""The Open Inference Protocol v2 over HTTP (KServe v2 / Triton): POST /v2/models/{m}/infer.

Every input goes with Triton's binary tensor data extension, as Triton's own client sends
BYTES: a JSON header, then each tensor's raw bytes; the header's length travels in
`Inference-Header-Content-Length`, and each BYTES element carries a 4-byte little-endian
length prefix. Outputs `image` (the encoded images) and `metadata` (JSON) are asked for in
binary too, but JSON answers (base64 image, plain-text metadata) are read as well.
The protocol has no streaming and no management (the REST management API serves those), and
TorchServe 0.12 routes only the default version of a model to it.
"""

import base64
import json
import struct
from typing import Optional
from urllib.parse import quote

from imagelab_client.errors import ServerError
from imagelab_client.results import Answer
from imagelab_client.transports.base import OnEvent
from imagelab_client.transports.rest import RestTransport

HEADER_LENGTH = "Inference-Header-Content-Length"


class V2Transport(RestTransport):
    name = "v2"
    streams = False

    def infer(
        self, model: str, fields: dict, version: Optional[str] = None, on_event: Optional[OnEvent] = None
    ) -> Answer:
        if version:
            # TorchServe 0.12 answers 404 to /v2/models/{m}/versions/{v}/infer.
            raise ValueError(
                "TorchServe's v2 endpoint serves only the default version; "
                "use the rest or grpc transport to pick a version"
            )
        header, blob = encode_request(fields)
        path = f"/v2/models/{quote(model)}/infer"
        headers = {HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}
        with self.request("POST", self.url + path, data=header + blob, headers=headers) as response:
            return decode_response(response.content, response.headers.get(HEADER_LENGTH))


def encode_request(fields: dict) -> tuple:
    """-> (JSON header bytes, binary tensor data). Strings and images as BYTES, booleans as
    BYTES "true"/"false" (v2 BOOL is not a request field type here), integers as INT64,
    floats as FP64 (exact, so every transport sends the same number)."""
    tensors, blobs = [], []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, int):
            datatype, raw = "INT64", struct.pack("<q", value)
        elif isinstance(value, float):
            datatype, raw = "FP64", struct.pack("<d", value)
        else:
            element = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            datatype, raw = "BYTES", struct.pack("<I", len(element)) + element
        tensors.append({"name": name, "datatype": datatype, "shape": [1], "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    document = {
        "inputs": tensors,
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "image", "parameters": {"binary_data": True}},
            {"name": "metadata", "parameters": {"binary_data": True}},
        ],
    }
    return json.dumps(document).encode("utf-8"), b"".join(blobs)


def decode_response(body: bytes, header_length: Optional[str]) -> Answer:
    """A v2 infer response, binary or JSON -> Answer."""
    try:
        split = int(header_length) if header_length is not None else len(body)
        document, blob = json.loads(body[:split]), body[split:]
        outputs, offset = {}, 0
        for tensor in document["outputs"]:
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is None:
                data = tensor.get("data") or []
                # JSON form: the image is base64, the metadata plain text.
                outputs[tensor["name"]] = [
                    base64.b64decode(d) if tensor["name"] == "image" else d.encode("utf-8") for d in data
                ]
            else:
                outputs[tensor["name"]] = split_bytes(blob[offset : offset + size])
                offset += size
        metadata = json.loads(outputs["metadata"][0]) if outputs.get("metadata") else {}
        return Answer(outputs.get("image", []), metadata)
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as error:
        raise ServerError(f"unreadable v2 response: {error}") from error


def split_bytes(chunk: bytes) -> list:
    """A BYTES tensor's elements: each a 4-byte little-endian length, then the bytes."""
    values, pos = [], 0
    while pos < len(chunk):
        (length,) = struct.unpack_from("<I", chunk, pos)
        values.append(chunk[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return values
