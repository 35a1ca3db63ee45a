"""The front's own key for its callers. TorchServe's keys stay on this side (the front adds
them itself), so the front must not be an open relay: every call, over REST and gRPC, carries
`Authorization: Bearer <key>`, the key the front writes to its key file at start (mode 0600):

    {"key": "..."}

A new key at every start, unless the file already holds one and `--keep-key` is given."""

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Optional


class CallerKey:
    def __init__(self, key: str):
        self.key = key

    @classmethod
    def issue(cls, path: Path, keep: bool = False) -> "CallerKey":
        path = Path(path)
        if keep and path.is_file():
            return cls(json.loads(path.read_text())["key"])
        key = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".tmp")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({"key": key}, out)
        os.replace(staging, path)
        return cls(key)

    def allows(self, authorization: Optional[str]) -> bool:
        """authorization: the header's value ("Bearer <key>")."""
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key.encode())
