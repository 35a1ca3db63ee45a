"""ImageLabClient: one typed method per model of API.md, and the management calls.

Fields left as None are not sent, so the server's defaults apply (`describe` lists them).
Every call asks for `response_format=json` so seeds, timings and parameters come back.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from imagelab_client.auth import Credentials
from imagelab_client.cancel import CancelEndpoint
from imagelab_client.errors import AuthError
from imagelab_client.images import ImageInput, image_bytes
from imagelab_client.results import ImageResult
from imagelab_client.transports import RetryPolicy
from imagelab_client.transports.factory import make_transport

OnProgress = Callable[[dict], None]


@dataclass(frozen=True)
class ModelVersions:
    name: str
    versions: list  # every registered version, as TorchServe lists them
    default_version: str


@dataclass(frozen=True)
class ModelDescription:
    name: str
    version: str
    workers: list  # [{"id", "status", ...}]
    min_workers: int
    max_workers: int
    customized: dict  # the handler's describe(): styles or classes, fields with ranges/defaults
    raw: dict  # TorchServe's whole describe entry


class ImageLabClient:
    """transport: "rest" (default), "grpc" or "v2". url / management_url default to the
    API.md addresses of that transport (http://127.0.0.1:8080 and :8081; gRPC 127.0.0.1:7070
    and :7071). Keys: see auth.Credentials. Use as a context manager, or call close()."""

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        transport: str = "rest",
        management_url: Optional[str] = None,
        key_file=None,
        inference_key: Optional[str] = None,
        management_key: Optional[str] = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 600.0,
        retry: RetryPolicy = RetryPolicy(),
        pool_size: int = 10,
        cancel_url: Optional[str] = None,
        cancel_key: Optional[str] = None,
        cancel_key_file=None,
    ):
        """cancel_url / cancel_key / cancel_key_file: where `cancel` goes (cancel.py; by
        default the v2 front on http://127.0.0.1:8000 with oip_key.json beside key_file)."""
        self.credentials = Credentials(key_file, inference_key, management_key)
        self.cancel_endpoint = CancelEndpoint(cancel_url, cancel_key, cancel_key_file, self.credentials.key_file)
        self.retry = retry
        self.transport = make_transport(
            transport, url, management_url, self.credentials, connect_timeout_s, read_timeout_s, pool_size
        )

    def __enter__(self) -> "ImageLabClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # Inference: one method per model.
    def stylize(
        self,
        image: ImageInput,
        style: Optional[str] = None,
        *,
        max_side_px: Optional[int] = None,
        format: Optional[str] = None,
        quality: Optional[int] = None,
        version: Optional[str] = None,
        extra: Optional[dict] = None,
    ) -> ImageResult:
        """fast_style: a feed-forward style (candy, mosaic, udnie, rain_princess, ...)."""
        fields = {
            "image": image_bytes(image),
            "style": style,
            "max_side_px": max_side_px,
            "format": format,
            "quality": quality,
        }
        return self.infer("fast_style", fields, version=version, extra=extra)

    def neural_style(
        self,
        content: ImageInput,
        style_image: ImageInput,
        *,
        steps: Optional[int] = None,
        max_side_px: Optional[int] = None,
        content_weight: Optional[float] = None,
        style_weight: Optional[float] = None,
        tv_weight: Optional[float] = None,
        init: Optional[str] = None,
        seed: Optional[int] = None,
        preserve_color: Optional[bool] = None,
        optimizer: Optional[str] = None,
        time_budget_s: Optional[float] = None,
        format: Optional[str] = None,
        quality: Optional[int] = None,
        version: Optional[str] = None,
        extra: Optional[dict] = None,
        on_progress: Optional[OnProgress] = None,
    ) -> ImageResult:
        """neural_style: Gatys et al. optimisation; on_progress gets one event per step."""
        fields = {
            "content": image_bytes(content),
            "style_image": image_bytes(style_image),
            "steps": steps,
            "max_side_px": max_side_px,
            "content_weight": content_weight,
            "style_weight": style_weight,
            "tv_weight": tv_weight,
            "init": init,
            "seed": seed,
            "preserve_color": preserve_color,
            "optimizer": optimizer,
            "time_budget_s": time_budget_s,
            "format": format,
            "quality": quality,
        }
        return self.infer("neural_style", fields, version=version, extra=extra, on_progress=on_progress)

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: Optional[str] = None,
        style: Optional[str] = None,
        style_scale: Optional[float] = None,
        steps: Optional[int] = None,
        guidance: Optional[float] = None,
        seed: Optional[int] = None,
        width: Optional[int] = None,
        height: Optional[int] = None,
        num_images: Optional[int] = None,
        scheduler: Optional[str] = None,
        format: Optional[str] = None,
        quality: Optional[int] = None,
        version: Optional[str] = None,
        extra: Optional[dict] = None,
        on_progress: Optional[OnProgress] = None,
    ) -> ImageResult:
        """txt2img: Stable Diffusion 1.5 with a style LoRA (none, monet, van_gogh, ...)."""
        fields = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "style": style,
            "style_scale": style_scale,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "width": width,
            "height": height,
            "num_images": num_images,
            "scheduler": scheduler,
            "format": format,
            "quality": quality,
        }
        return self.infer("txt2img", fields, version=version, extra=extra, on_progress=on_progress)

    def animal(
        self,
        name: str,
        *,
        prompt_extra: Optional[str] = None,
        steps: Optional[int] = None,
        guidance: Optional[float] = None,
        seed: Optional[int] = None,
        contrast: Optional[float] = None,
        saturation: Optional[float] = None,
        brightness: Optional[float] = None,
        width: Optional[int] = None,
        height: Optional[int] = None,
        scheduler: Optional[str] = None,
        format: Optional[str] = None,
        quality: Optional[int] = None,
        version: Optional[str] = None,
        extra: Optional[dict] = None,
        on_progress: Optional[OnProgress] = None,
    ) -> ImageResult:
        """animals: one of the animals LoRA's classes (lion, tiger, elephant, cat, dog, ...);
        `scheduler` lcm is the few-step fast mode; `version` picks the archive version (LoRA)."""
        fields = {
            "animal": name,
            "prompt_extra": prompt_extra,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "contrast": contrast,
            "saturation": saturation,
            "brightness": brightness,
            "width": width,
            "height": height,
            "scheduler": scheduler,
            "format": format,
            "quality": quality,
        }
        return self.infer("animals", fields, version=version, extra=extra, on_progress=on_progress)

    def infer(
        self,
        model: str,
        fields: dict,
        *,
        version: Optional[str] = None,
        extra: Optional[dict] = None,
        on_progress: Optional[OnProgress] = None,
    ) -> ImageResult:
        """Any model, any fields (bytes values are images). on_progress is called once per
        progress event, in order, on transports that stream (rest, grpc; v2 has no stream)."""
        fields = {k: v for k, v in {**fields, **(extra or {})}.items() if v is not None}
        on_event = on_progress if self.transport.streams else None
        answer = self._with_retries(lambda: self.transport.infer(model, fields, version, on_event))
        return ImageResult.from_answer(answer)

    def cancel(self, job_id: str) -> dict:
        """Stop a running (or queued) job by its id: the `job_id` of its first progress event,
        or the `job_id` field it was sent with. Its call then raises errors.Cancelled (499)."""
        return self.cancel_endpoint.cancel(job_id)

    def _with_retries(self, send: Callable):
        """503 -> backoff and retry (RetryPolicy); a refused token -> re-read the key file
        once (TorchServe renews keys hourly) and retry if it changed."""
        try:
            return self.retry.call(send)
        except AuthError:
            if not self.credentials.reload():
                raise
            return self.retry.call(send)

    # Management.
    def models(self) -> list:
        """Every registered model with its versions and default version."""
        listed = self._with_retries(self.transport.list_models)
        out = []
        for entry in listed:
            name = entry["modelName"]
            versions = self._with_retries(lambda name=name: self.transport.describe(name, "all"))
            default = self._with_retries(lambda name=name: self.transport.describe(name))[0]["modelVersion"]
            out.append(ModelVersions(name, [v["modelVersion"] for v in versions], default))
        return out

    def describe(self, model: str, version: Optional[str] = None) -> ModelDescription:
        """A version (default: the default version) with its workers and the handler's
        customized metadata (styles or classes, field ranges and defaults)."""
        entry = self._with_retries(lambda: self.transport.describe(model, version))[0]
        return ModelDescription(
            name=entry["modelName"],
            version=entry["modelVersion"],
            workers=entry.get("workers", []),
            min_workers=entry.get("minWorkers", 0),
            max_workers=entry.get("maxWorkers", 0),
            customized=entry.get("customizedMetadata") or {},
            raw=entry,
        )

    def set_default(self, model: str, version: str) -> str:
        """Route unversioned requests for `model` to `version`; returns the server's message."""
        return self._with_retries(lambda: self.transport.set_default(model, version))

    def scale_workers(
        self,
        model: str,
        min_worker: int,
        max_worker: Optional[int] = None,
        *,
        version: Optional[str] = None,
        synchronous: bool = True,
    ) -> str:
        """PUT /models/{m}?min_worker=..; synchronous waits until the workers are up."""
        return self._with_retries(
            lambda: self.transport.scale_workers(model, min_worker, max_worker, version, synchronous)
        )
