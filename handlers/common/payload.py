"""One request, whatever its encoding, as a flat mapping of field name -> value.

TorchServe hands each request to the handler as a dict: multipart fields as separate keys
(bytearray values, text too), a JSON body already parsed under `body`, a raw body as bytes under
`body`, query-string fields of `/invocations` as separate keys, and gRPC's `input` map keys as
they are. The Open Inference Protocol arrives as a JSON (or binary-extension) body under `body`.
"""

import json
from dataclasses import dataclass
from typing import Mapping, Optional

from handlers.common.errors import InvalidField
from handlers.common.oip import HEADER_LENGTH, OipRequest, is_oip_json, parse_oip

# Keys TorchServe adds that are not request fields.
TRANSPORT_KEYS = ("model_name",)
# Names errors use for the request as a whole rather than one field.
PAYLOAD_FIELDS = frozenset({"body", "inputs", "outputs", "parameters"})


@dataclass(frozen=True)
class Payload:
    fields: dict
    oip: Optional[OipRequest] = None  # set when the request spoke the v2 protocol


def parse_payload(
    raw: Mapping,
    headers: Mapping[str, str],
    raw_image_field: Optional[str],
    field_names: Optional[frozenset] = None,
) -> Payload:
    """raw: TorchServe's per-request dict; headers: its request headers (any case);
    raw_image_field: the field a bare image body fills (None for models with no or two images);
    field_names: the model's fields, if known, so v2 tensors of other names are refused
    before their data is read."""
    lowered = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    fields = {k: v for k, v in raw.items() if k not in ("body", "data") + TRANSPORT_KEYS}
    body = raw.get("body", raw.get("data"))
    if body is None:
        return Payload(fields)
    header_length = lowered.get(HEADER_LENGTH.lower())
    if header_length is not None or is_oip_json(body):
        oip_fields, oip = parse_oip(body, header_length, field_names)
        return Payload({**fields, **oip_fields}, oip)
    if isinstance(body, dict):
        return Payload({**fields, **body})
    if not isinstance(body, (bytes, bytearray, str)):  # a parsed JSON array or scalar
        raise InvalidField("the JSON body must be an object of fields", "body")
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or isinstance(body, str):
        return Payload({**fields, **_json_object(body)})
    if raw_image_field is None:
        raise InvalidField("this model takes no raw image body; send multipart/form-data or JSON", "body")
    return Payload({**fields, raw_image_field: bytes(body)})


def _json_object(body) -> dict:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidField("the body is not valid JSON", "body") from None
    except RecursionError:  # e.g. "[" * 100000: deeper than any request's fields
        raise InvalidField("the JSON body nests too deeply", "body") from None
    if not isinstance(parsed, dict):
        raise InvalidField("the JSON body must be an object of fields", "body")
    return parsed
