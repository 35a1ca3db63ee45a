"""Token authorization: TorchServe 0.12 writes an inference and a management key to
`key_file.json` in its working directory and renews them every 60 minutes, so keys read from
a file are read again when the server refuses them."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

INFERENCE_KEY_ENV = "IMAGELAB_INFERENCE_KEY"
MANAGEMENT_KEY_ENV = "IMAGELAB_MANAGEMENT_KEY"
KEY_FILE_ENV = "IMAGELAB_KEY_FILE"


@dataclass
class Credentials:
    """Keys given here win over the key file, which wins over the environment variables
    IMAGELAB_INFERENCE_KEY / IMAGELAB_MANAGEMENT_KEY. The key file defaults to
    IMAGELAB_KEY_FILE. No key at all sends no Authorization header (token auth off)."""

    key_file: Optional[Path] = None
    given_inference_key: Optional[str] = None
    given_management_key: Optional[str] = None
    inference_key: Optional[str] = field(default=None, init=False)
    management_key: Optional[str] = field(default=None, init=False, repr=False)

    def __post_init__(self):
        key_file = self.key_file or os.environ.get(KEY_FILE_ENV)
        self.key_file = Path(key_file) if key_file else None
        self.reload()

    def reload(self) -> bool:
        """Re-read the key file; True if a key changed (so one more try is worth it)."""
        before = (self.inference_key, self.management_key)
        from_file = read_key_file(self.key_file) if self.key_file else (None, None)
        self.inference_key = self.given_inference_key or from_file[0] or os.environ.get(INFERENCE_KEY_ENV)
        self.management_key = self.given_management_key or from_file[1] or os.environ.get(MANAGEMENT_KEY_ENV)
        return (self.inference_key, self.management_key) != before

    def header(self, management: bool = False) -> dict:
        key = self.management_key if management else self.inference_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def grpc_metadata(self, management: bool = False) -> tuple:
        key = self.management_key if management else self.inference_key
        return (("authorization", f"Bearer {key}"),) if key else ()


def read_key_file(path: Path) -> tuple:
    """(inference key, management key) from TorchServe's key_file.json."""
    document = json.loads(Path(path).read_text())
    return document["inference"]["key"], document["management"]["key"]
