"""What the v2 protocol says about models, read from TorchServe's management API.

- readiness: `GET /models/{m}[/{v}]`: a model (version) is ready when a worker is READY;
- metadata and config: the handler's field spec, from `GET /models/{m}[/{v}]?customized=true`
  (its "fields" section), one input tensor per field, named as the field; the outputs are the
  handler's `image` and `metadata` (handlers/common/oip.py);
- max batch size: the archive's batchSize. TorchServe batches concurrent requests itself, so a
  request carries one item: shape [1], or [1, 1] with the batch dimension Triton's clients add.
"""

import json
from dataclasses import dataclass
from typing import Optional

from gateway.upstream import TorchServeClient, UpstreamError

# The field spec's types (handlers/common/spec.py TYPES) as v2 datatypes.
DATATYPES = {
    "integer": "INT64",
    "number": "FP32",
    "boolean": "BOOL",
    "choice": "BYTES",
    "text": "BYTES",
    "image": "BYTES",
}
# Fields that change the response's framing, not the picture; a v2 response has one framing.
NOT_TENSORS = frozenset({"stream", "response_format"})
OUTPUTS = (("image", "BYTES"), ("metadata", "BYTES"))
PLATFORM = "torchserve"


class ModelError(Exception):
    """status: 404 for an unknown model or version, else what TorchServe said."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    optional: bool = True


@dataclass(frozen=True)
class ModelEntry:
    """One version of a model as TorchServe describes it."""

    name: str
    version: str
    ready: bool
    max_batch_size: int
    max_batch_delay_ms: int
    workers: int
    device: str  # "cpu" or "gpu"


@dataclass(frozen=True)
class ModelSchema:
    entry: ModelEntry
    versions: tuple
    inputs: tuple  # TensorSpec
    outputs: tuple  # TensorSpec

    def batch_dims(self) -> list:
        """The batch dimension metadata shapes start with, as Triton's do (-1: any)."""
        return [-1] if self.entry.max_batch_size > 0 else []


class Catalogue:
    def __init__(self, torchserve: TorchServeClient):
        self.torchserve = torchserve
        self._fields: dict = {}  # (model, version) -> input TensorSpecs

    async def model_names(self) -> list:
        names, token = [], None
        while True:
            page = await self._get_json("/models" + (f"?next_page_token={token}" if token else ""))
            names += [m["modelName"] for m in page.get("models", [])]
            token = page.get("nextPageToken")
            if not token:
                return names

    async def entry(self, model: str, version: Optional[str] = None) -> ModelEntry:
        [described] = (await self._describe(model, version, customized=False))[:1]
        return _entry(described)

    async def server_ready(self) -> bool:
        """Every model's default version has a READY worker."""
        names = await self.model_names()
        for name in names:
            if not (await self.entry(name)).ready:
                return False
        return bool(names)

    async def schema(self, model: str, version: Optional[str] = None) -> ModelSchema:
        entry = await self.entry(model, version)
        versions = tuple(str(d["modelVersion"]) for d in await self._get_json(f"/models/{model}/all", model))
        outputs = tuple(TensorSpec(name, datatype, optional=False) for name, datatype in OUTPUTS)
        return ModelSchema(entry, versions, await self.inputs(entry), outputs)

    async def inputs(self, entry: ModelEntry) -> tuple:
        """The field spec as tensors. `?customized=true` runs the handler's describe on a
        worker, so it is asked once per archive version (whose fields never change)."""
        key = (entry.name, entry.version)
        if key not in self._fields:
            described = await self._describe(entry.name, entry.version, customized=True)
            self._fields[key] = _inputs(described[0], entry.name)
        return self._fields[key]

    async def _describe(self, model: str, version: Optional[str], customized: bool) -> list:
        path = f"/models/{model}" + (f"/{version}" if version else "") + ("?customized=true" if customized else "")
        described = await self._get_json(path, model)
        if not isinstance(described, list) or not described:
            raise ModelError(502, f"TorchServe described {model!r} in an unexpected shape")
        return described

    async def _get_json(self, path: str, model: str = ""):
        try:
            answer = await self.torchserve.send("management", "GET", path)
            body = await answer.read()
        except UpstreamError as error:
            raise ModelError(error.status, str(error)) from None
        if answer.status == 404:
            raise ModelError(404, f"unknown model or version: {model[:100]!r}")
        if answer.status != 200:
            raise ModelError(502 if answer.status < 500 else answer.status, _message(body, answer.status))
        return json.loads(body)


def _entry(described: dict) -> ModelEntry:
    workers = described.get("workers") or []
    return ModelEntry(
        name=described["modelName"],
        version=str(described["modelVersion"]),
        ready=any(w.get("status") == "READY" for w in workers),
        max_batch_size=int(described.get("batchSize", 1)),
        max_batch_delay_ms=int(described.get("maxBatchDelay", 0)),
        workers=len(workers),
        device="gpu" if any(int(w.get("gpu", False) or 0) for w in workers) else "cpu",
    )


def _inputs(described: dict, model: str) -> tuple:
    meta = described.get("customizedMetadata")
    if isinstance(meta, str):
        meta = json.loads(meta)
    fields = (meta or {}).get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ModelError(502, f"{model!r} describes no fields (customizedMetadata has no 'fields')")
    return tuple(
        TensorSpec(name, DATATYPES.get(spec.get("type"), "BYTES"), optional=not spec.get("required", False))
        for name, spec in fields.items()
        if name not in NOT_TENSORS
    )


def _message(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:500] or f"TorchServe answered {status}"
    except (ValueError, AttributeError):
        return f"TorchServe answered {status}"
