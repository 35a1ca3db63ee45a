"""Cancelling a running job. A TorchServe worker takes no second call while it runs one, so the
cancel goes beside TorchServe: to the Open Inference Protocol front that `make serve` starts
(`POST /v2/cancel/{job_id}` on http://127.0.0.1:8000, with the front's own key from
`oip_key.json`), which leaves a marker the running job checks at its next step. The job then
answers 499 `Cancelled` (the `Cancelled` exception here) and the worker takes the next request.

The job id is the `job_id` of the job's first progress event, or the client's own `job_id`
field (8 to 64 of A-Z a-z 0-9 _ -), which also works for requests that do not stream."""

import json
import os
import secrets
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import requests

from imagelab_client.errors import ConnectionFailed, error_from_text

CANCEL_URL_ENV = "IMAGELAB_CANCEL_URL"
CANCEL_KEY_FILE_ENV = "IMAGELAB_CANCEL_KEY_FILE"
DEFAULT_CANCEL_URL = "http://127.0.0.1:8000"
FRONT_KEY_FILE = "oip_key.json"  # written by the front beside TorchServe's key_file.json


def new_job_id() -> str:
    """An unguessable job id to send as the `job_id` field."""
    return secrets.token_urlsafe(18)


class CancelEndpoint:
    """url: the front (default $IMAGELAB_CANCEL_URL or http://127.0.0.1:8000). The key: `key`,
    else the `{"key": ...}` file `key_file`, else $IMAGELAB_CANCEL_KEY_FILE, else
    `oip_key.json` beside TorchServe's key file when one is known."""

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        key_file=None,
        torchserve_key_file=None,
        timeout_s: float = 10.0,
    ):
        self.url = (url or os.environ.get(CANCEL_URL_ENV) or DEFAULT_CANCEL_URL).rstrip("/")
        self.key = key
        key_file = key_file or os.environ.get(CANCEL_KEY_FILE_ENV)
        if key_file is None and torchserve_key_file is not None:
            key_file = Path(torchserve_key_file).with_name(FRONT_KEY_FILE)
        self.key_file = Path(key_file) if key_file else None
        self.timeout_s = timeout_s

    def _key(self) -> Optional[str]:
        if self.key:
            return self.key
        if self.key_file is not None and self.key_file.is_file():
            return json.loads(self.key_file.read_text())["key"]  # read each time: a new one per start
        return None

    def cancel(self, job_id: str) -> dict:
        """Ask for `job_id` to stop; -> the front's answer ({"job_id", "cancel": "requested"}).
        Raises the mapped ImageLabError (400 for a malformed id, 401 without the front's key)."""
        key = self._key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = f"{self.url}/v2/cancel/{quote(job_id, safe='')}"
        try:
            response = requests.post(url, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise ConnectionFailed(f"cannot reach the cancel endpoint {url}: {error}") from error
        with response:
            if response.status_code >= 400:
                raise error_from_text(response.status_code, response.text)
            return response.json()
