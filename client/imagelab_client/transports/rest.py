"""TorchServe's REST API: multipart requests to /predictions, chunked NDJSON streams, and the
management API. One pooled requests.Session per client; every call has a connect and a read
timeout (the read timeout bounds the wait for each chunk of a stream, not the whole stream)."""

import json
from typing import Optional
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from imagelab_client.errors import ConnectionFailed, ServerError, Timeout, error_for, error_from_text, is_error_document
from imagelab_client.results import Answer, answer_from_document
from imagelab_client.transports.base import OnEvent, Transport, text_value


class RestTransport(Transport):
    name = "rest"
    streams = True

    def __init__(
        self,
        url: str,
        management_url: str,
        credentials,
        connect_timeout_s: float,
        read_timeout_s: float,
        pool_size: int = 10,
    ):
        self.url = url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.credentials = credentials
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def infer(
        self, model: str, fields: dict, version: Optional[str] = None, on_event: Optional[OnEvent] = None
    ) -> Answer:
        # response_format=json always: the metadata (seeds, timings, ...) comes back too.
        fields = {**fields, "response_format": "json"}
        if on_event is not None:
            fields["stream"] = True
        # Everything as multipart parts: images as files, the rest as text parts.
        parts = [
            (name, (name, value, "application/octet-stream"))
            if isinstance(value, (bytes, bytearray))
            else (name, (None, text_value(value)))
            for name, value in fields.items()
            if value is not None
        ]
        path = f"/predictions/{quote(model)}" + (f"/{quote(version)}" if version else "")
        with self.request("POST", self.url + path, files=parts, stream=on_event is not None) as response:
            if on_event is None:
                return answer_from_document(self.json(response))
            return read_stream(response, on_event)

    def request(
        self, method: str, url: str, management: bool = False, headers: Optional[dict] = None, **kwargs
    ) -> requests.Response:
        """One HTTP call; non-2xx answers raise the mapped ImageLabError."""
        headers = {**self.credentials.header(management), **(headers or {})}
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.Timeout as error:
            raise Timeout(f"no answer from {url} within {self.timeout[1]} s", None) from error
        except requests.ConnectionError as error:
            raise ConnectionFailed(f"cannot reach {url}: {error}") from error
        if response.status_code >= 400:
            with response:
                raise error_from_text(response.status_code, response.text)
        return response

    @staticmethod
    def json(response: requests.Response):
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"expected JSON, got {response.headers.get('Content-Type')}", response.status_code
            ) from None

    # Management API (port 8081).
    def management(self, method: str, path: str, **params):
        params = {k: v for k, v in params.items() if v is not None}
        with self.request(method, self.management_url + path, management=True, params=params) as response:
            return self.json(response)

    def list_models(self) -> list:
        return self.management("GET", "/models", limit=1000)["models"]

    def describe(self, model: str, version: Optional[str] = None) -> list:
        path = f"/models/{quote(model)}" + (f"/{quote(version)}" if version else "")
        return self.management("GET", path, customized="true")

    def set_default(self, model: str, version: str) -> str:
        return self.management("PUT", f"/models/{quote(model)}/{quote(version)}/set-default")["status"]

    def scale_workers(
        self, model: str, min_worker: int, max_worker: Optional[int], version: Optional[str], synchronous: bool
    ) -> str:
        path = f"/models/{quote(model)}" + (f"/{quote(version)}" if version else "")
        answer = self.management(
            "PUT", path, min_worker=min_worker, max_worker=max_worker, synchronous=str(synchronous).lower()
        )
        return answer["status"]

    def close(self) -> None:
        self.session.close()


def read_stream(response: requests.Response, on_event: OnEvent) -> Answer:
    """NDJSON lines {"type": "progress" | "result" | "error", ...}; progress goes to on_event
    in order, the result line is the answer, an error line raises."""
    if not response.headers.get("Content-Type", "").startswith("application/x-ndjson"):
        document = RestTransport.json(response)  # a model that does not stream answers at once
        return answer_from_document(document)
    try:
        for line in response.iter_lines():
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise ServerError(f"unreadable stream line: {line[:80]!r}") from None
            kind = event.get("type")
            if kind == "progress":
                on_event(event)
            elif kind == "result":
                return answer_from_document(event)
            elif is_error_document(event):
                raise error_for(event.get("code"), event)
    except requests.RequestException as error:
        raise ServerError(f"the stream broke off: {error}") from error
    raise ServerError("the stream ended without a result")
