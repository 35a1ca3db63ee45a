"""TorchServe's REST APIs seen from a front (the playground gateway, the Open Inference
Protocol front): one pooled async client (httpx), the token added on this side, and one retry
after re-reading key_file.json when TorchServe refuses a key it has since renewed.

Request bodies are whole bytes (bounded by the caller) so that the retry can send them again;
answers stay streams, so chunked progress reaches the caller as it arrives."""

import logging
from dataclasses import dataclass
from typing import AsyncIterator, Optional

import anyio
import httpx

from gateway.keys import KeyFile

logger = logging.getLogger("gateway.upstream")

# How TorchServe says a token is wrong or expired (status 400 or 401 with this type).
STALE_KEY_MARKERS = (b"InvalidKeyException", b"Token Authorization failed")
MAX_ERROR_PEEK_BYTES = 1024 * 1024
CONNECT_TIMEOUT_S = 10.0


class UpstreamError(Exception):
    """TorchServe could not be asked: status is what the front answers (502 or 504). The
    message is safe to show a caller (no key, no file path)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class UpstreamAnswer:
    """TorchServe's answer, its body still streaming; `prefix` is what was read to look for a
    stale-key refusal. Iterate `body()` once, then (or on any early exit) `aclose()`."""

    response: httpx.Response
    prefix: bytes
    _chunks: AsyncIterator[bytes]

    @property
    def status(self) -> int:
        return self.response.status_code

    async def body(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        async for chunk in self._chunks:
            yield chunk

    async def read(self) -> bytes:
        try:
            return b"".join([chunk async for chunk in self.body()])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        # Shielded: this also runs while a cancelled (abandoned) stream unwinds.
        with anyio.CancelScope(shield=True):
            await self.response.aclose()


class TorchServeClient:
    def __init__(self, inference_url: str, management_url: str, key_file: KeyFile, read_timeout_s: float):
        self.urls = {"inference": inference_url.rstrip("/"), "management": management_url.rstrip("/")}
        self.key_file = key_file
        # read_timeout_s is between two reads, not for the whole job: a streamed job may run long.
        timeout = httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S)
        self.client = httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(
        self, api: str, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None
    ) -> UpstreamAnswer:
        """api: "inference" or "management" (which URL and which key). Raises UpstreamError."""
        answer = await self._send_once(api, method, path, body, headers, reload_keys=False)
        if answer.status in (400, 401) and any(marker in answer.prefix for marker in STALE_KEY_MARKERS):
            await answer.aclose()
            logger.info("TorchServe refused the %s key; re-reading %s and retrying once", api, self.key_file.path)
            answer = await self._send_once(api, method, path, body, headers, reload_keys=True)
        return answer

    async def _send_once(self, api, method, path, body, headers, reload_keys: bool) -> UpstreamAnswer:
        try:
            keys = self.key_file.keys(reload=reload_keys)
        except (OSError, ValueError) as error:
            # The path goes to the log only: a caller has no business knowing the server's files.
            logger.error("cannot read TorchServe's keys from %s: %s", self.key_file.path, error)
            raise UpstreamError(502, "the front cannot read TorchServe's keys (see its log)") from None
        key = keys.inference if api == "inference" else keys.management
        request = self.client.build_request(
            method, self.urls[api] + path, content=body, headers={**(headers or {}), "Authorization": f"Bearer {key}"}
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError(504, "TorchServe did not answer in time") from None
        except httpx.TransportError as error:
            raise UpstreamError(502, f"TorchServe at {self.urls[api]} is not reachable: {error}") from None
        chunks = response.aiter_raw()
        prefix = b""
        if response.status_code in (400, 401):
            try:
                prefix = await _peek(chunks, MAX_ERROR_PEEK_BYTES)
            except httpx.HTTPError as error:
                await response.aclose()
                raise UpstreamError(502, f"TorchServe's answer broke off: {error}") from None
        return UpstreamAnswer(response, prefix, chunks)


async def _peek(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    seen = b""
    while len(seen) < limit:
        try:
            seen += await chunks.__anext__()
        except StopAsyncIteration:
            break
    return seen
