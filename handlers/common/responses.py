"""Results and errors -> response bodies, for REST, JSON, streams and the v2 protocol."""

import base64
import json
from dataclasses import dataclass, field

from handlers.common.errors import ServiceError
from handlers.common.images import OUTPUT_FORMATS, encode_image
from handlers.common.oip import OipOutput, OipRequest, encode_oip
from handlers.common.service import ImageResult, OutputOptions

NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)


def metadata(result: ImageResult, model_version: str) -> dict:
    width, height = result.size
    document = {
        "seeds": result.seeds,
        "width": width,
        "height": height,
        "model_version": model_version,
        "parameters": result.parameters,
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
    }
    document.update(result.extra)
    return document


def encode_result(result: ImageResult, output: OutputOptions, model_version: str) -> tuple[bytes, str, list]:
    """-> (body, content type, encoded images). One image goes back as itself unless JSON
    was asked for; several images always go back as JSON."""
    encoded = [encode_image(im, output.format, output.quality) for im in result.images]
    if output.response_format == "image" and len(encoded) == 1 and not output.stream:
        return encoded[0], OUTPUT_FORMATS[output.format], encoded
    document = metadata(result, model_version)
    document["images"] = [base64.b64encode(e).decode("ascii") for e in encoded]
    document["format"] = output.format
    return json.dumps(document).encode("utf-8"), "application/json", encoded


def result_reply(
    result: ImageResult,
    output: OutputOptions,
    model_name: str,
    model_version: str,
    oip: OipRequest = None,
) -> Reply:
    if oip is not None:
        encoded = [encode_image(im, output.format, output.quality) for im in result.images]
        meta = json.dumps(metadata(result, model_version)).encode("utf-8")
        body, headers = encode_oip(
            [OipOutput("image", "BYTES", encoded), OipOutput("metadata", "BYTES", [meta], text=True)],
            oip,
            model_name,
            model_version,
        )
        return Reply(200, body, headers)
    body, content_type, _ = encode_result(result, output, model_version)
    if output.stream:
        document = json.loads(body)
        return Reply(200, stream_line({"type": "result", **document}), {"Content-Type": NDJSON})
    return Reply(200, body, {"Content-Type": content_type})


def error_reply(error: ServiceError, oip: OipRequest = None, streaming: bool = False) -> Reply:
    body = error.body()
    if oip is not None:
        body["error"] = error.message  # what Triton's clients read
    if streaming:
        return Reply(200, stream_line({**body, "type": "error", "error_type": body["type"]}), {"Content-Type": NDJSON})
    headers = {"Content-Type": "application/json", **error.headers()}
    return Reply(error.status, json.dumps(body).encode("utf-8"), headers)


def stream_line(event: dict) -> bytes:
    return json.dumps(event).encode("utf-8") + b"\n"
