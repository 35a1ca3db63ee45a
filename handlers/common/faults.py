"""Fault injection for the fault tests: off unless an archive's config enables it
(`handler: {fault_injection: true}`), which only test archives do. With it on, a request may
carry `x_fault`: `oom` (the batch's predict raises MemoryError) or `sleep:S` (the batch waits
S seconds first, to outlive a response timeout or fill the queue)."""

import time
from dataclasses import dataclass
from typing import Optional

from handlers.common.errors import InvalidField

FIELD = "x_fault"
MAX_SLEEP_S = 600.0


@dataclass(frozen=True)
class FaultInjector:
    enabled: bool = False

    def take(self, fields: dict) -> Optional[str]:
        """Remove and return the request's fault, if injection is on; otherwise the field
        stays and the service rejects it as unknown."""
        if not self.enabled or FIELD not in fields:
            return None
        value = fields.pop(FIELD)
        value = bytes(value).decode() if isinstance(value, (bytes, bytearray)) else str(value)
        if value != "oom" and not (value.startswith("sleep:") and _seconds(value) is not None):
            raise InvalidField(f"'{FIELD}' must be oom or sleep:SECONDS", FIELD)
        return value

    def apply(self, faults: list) -> None:
        for fault in faults:
            if fault.startswith("sleep:"):
                time.sleep(_seconds(fault))
        if "oom" in faults:
            raise MemoryError("injected by x_fault=oom")


def _seconds(value: str) -> Optional[float]:
    try:
        seconds = float(value.split(":", 1)[1])
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_SLEEP_S else None
