"""Typed, range-checked request field getters. Every error names the field and what it accepts.
Which getter each field uses, with which limits, is declared once per model in its FieldSpec
(handlers/common/spec.py).

Values may arrive as bytes (multipart parts, gRPC, query strings), str or JSON scalars
(JSON bodies, v2 tensors), so each getter accepts all of them and converts once.
"""

import base64
import binascii
import math
import re
from typing import Iterable, Mapping, Optional

from handlers.common.errors import InvalidField, TooLarge

_DATA_URL = re.compile(rb"^data:image/[a-zA-Z0-9.+-]+;base64,")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Fields:
    """Read access to one request's fields; `check_known` rejects typos like `styel`."""

    def __init__(self, values: Mapping):
        self._values = dict(values)

    def check_known(self, known: Iterable[str]) -> None:
        known = set(known)
        unknown = sorted(set(self._values) - known)
        if unknown:
            raise InvalidField(
                f"unknown field '{unknown[0]}'; accepted fields: {', '.join(sorted(known))}",
                unknown[0],
            )

    def has(self, name: str) -> bool:
        return self._values.get(name) not in (None, b"", "")

    def _scalar(self, name: str):
        value = self._values.get(name)
        if isinstance(value, list):
            if len(value) != 1:
                raise InvalidField(f"'{name}' must be a single value", name)
            value = value[0]
        return value

    def _text_value(self, name: str) -> Optional[str]:
        value = self._scalar(name)
        if isinstance(value, (bytes, bytearray)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidField(f"'{name}' must be UTF-8 text", name) from None
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        raise InvalidField(f"'{name}' must be text, not {type(value).__name__}", name)

    def image_bytes(self, name: str, max_bytes: int) -> bytes:
        """Files and raw bodies as they are; strings as base64 (a data: URL prefix allowed)."""
        value = self._scalar(name)
        if value in (None, b"", ""):
            raise InvalidField(f"'{name}' is required: a JPEG, PNG or WEBP image", name)
        if isinstance(value, (bytes, bytearray)) and not _looks_base64(value):
            return bytes(value)
        if not isinstance(value, (str, bytes, bytearray)):
            raise InvalidField(f"'{name}' must be an image file or a base64 string", name)
        encoded = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
        encoded = re.sub(rb"\s+", b"", _DATA_URL.sub(b"", encoded.strip(), count=1))
        if len(encoded) > (max_bytes * 4) // 3 + 4:
            raise TooLarge(f"'{name}' is larger than {max_bytes} bytes", name)
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidField(
                f"'{name}' is neither an image (JPEG, PNG, WEBP) nor valid base64 image data",
                name,
            ) from None
        if len(decoded) > max_bytes:
            raise TooLarge(f"'{name}' is larger than {max_bytes} bytes", name)
        return decoded

    def text(self, name: str, default: Optional[str], max_chars: int) -> Optional[str]:
        value = self._text_value(name)
        if value is None:
            return default
        if len(value) > max_chars:
            raise TooLarge(f"'{name}' has {len(value)} characters; the limit is {max_chars}", name)
        if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
            raise InvalidField(f"'{name}' contains control characters", name)
        return value

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        choices = tuple(choices)
        value = self._text_value(name)
        if value is None or value == "":
            return default
        key = value.strip().lower()
        if key not in choices:
            raise InvalidField(f"'{name}' must be one of {', '.join(choices)}; got '{value[:40]}'", name)
        return key

    def integer(self, name: str, default: Optional[int], low: int, high: int) -> Optional[int]:
        value = self._scalar(name)
        if value is None or value == b"" or value == "":
            return default
        number = _to_number(name, value)
        if not float(number).is_integer():
            raise InvalidField(f"'{name}' must be a whole number from {low} to {high}", name)
        number = int(number)
        if not low <= number <= high:
            raise InvalidField(f"'{name}' must be from {low} to {high}; got {number}", name)
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self._scalar(name)
        if value is None or value == b"" or value == "":
            return default
        number = float(_to_number(name, value))
        if not low <= number <= high:
            raise InvalidField(f"'{name}' must be from {low:g} to {high:g}; got {number:g}", name)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._scalar(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = (self._text_value(name) or "").strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidField(f"'{name}' must be true or false", name)


def _to_number(name: str, value) -> float:
    if isinstance(value, bool):
        raise InvalidField(f"'{name}' must be a number, not true/false", name)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidField(f"'{name}' must be a number; got '{value[:40]}'", name) from None
    try:
        finite = isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # a JSON integer beyond float range
        finite = False
    if not finite:
        raise InvalidField(f"'{name}' must be a finite number", name)
    return value


def _looks_base64(value: bytes) -> bool:
    """Image files start with binary magic; base64 text (from gRPC or v2 BYTES) does not."""
    head = bytes(value[:64]).strip()
    return (
        head.startswith(b"data:image/")
        or bool(head)
        and bool(re.fullmatch(rb"[A-Za-z0-9+/=\s]+", head))
        and not head.startswith((b"\x89PNG", b"\xff\xd8", b"RIFF", b"GIF8"))
    )
