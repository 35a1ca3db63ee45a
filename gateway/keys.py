"""TorchServe's tokens, read from its key_file.json on the server side only.

TorchServe rewrites the file when it renews the keys (every 60 minutes by default), so the
file is re-read when its mtime changes, and on demand after TorchServe refuses a key."""

import json
import threading
from pathlib import Path
from typing import NamedTuple, Optional


class Keys(NamedTuple):
    inference: str
    management: str


class KeyFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: Optional[Keys] = None
        self._mtime_ns: Optional[int] = None

    def keys(self, reload: bool = False) -> Keys:
        """Raises OSError or ValueError when the file is missing or malformed."""
        with self._lock:
            mtime_ns = self.path.stat().st_mtime_ns
            if reload or self._keys is None or mtime_ns != self._mtime_ns:
                data = json.loads(self.path.read_text())
                try:
                    self._keys = Keys(data["inference"]["key"], data["management"]["key"])
                except (KeyError, TypeError):
                    raise ValueError(f"{self.path} has no inference and management keys") from None
                self._mtime_ns = mtime_ns
            return self._keys
