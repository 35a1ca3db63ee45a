"""What a call returns: the images and everything the server said about them."""

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from imagelab_client.images import decode_image, sniff_format


@dataclass(frozen=True)
class Answer:
    """One transport's reading of a successful response: encoded images and metadata."""

    images: list  # encoded image bytes, in order
    metadata: dict  # the server's JSON document without the images


@dataclass(frozen=True)
class ImageResult:
    images: list  # PIL images
    encoded: list = field(repr=False)  # the bytes the server sent (saved as they are)
    format: str  # png, jpeg or webp
    seeds: Optional[list]
    width: Optional[int]
    height: Optional[int]
    model_version: Optional[str]
    parameters: dict
    timings_ms: dict
    metadata: dict = field(repr=False)  # the whole metadata document, capability extras too

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    @staticmethod
    def from_answer(answer: Answer) -> "ImageResult":
        meta = answer.metadata
        return ImageResult(
            images=[decode_image(e) for e in answer.images],
            encoded=list(answer.images),
            format=meta.get("format") or (sniff_format(answer.images[0]) if answer.images else "png"),
            seeds=meta.get("seeds"),
            width=meta.get("width"),
            height=meta.get("height"),
            model_version=meta.get("model_version"),
            parameters=meta.get("parameters") or {},
            timings_ms=meta.get("timings_ms") or {},
            metadata=meta,
        )

    def save(self, path) -> list:
        """Writes the images as the server encoded them. Several images go to `name-1.ext`,
        `name-2.ext`, ...; returns the paths written."""
        path = Path(path)
        if len(self.encoded) == 1:
            targets = [path]
        else:
            targets = [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, len(self.encoded) + 1)]
        for target, encoded in zip(targets, self.encoded):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encoded)
        return targets


def answer_from_document(document: dict) -> Answer:
    """A `response_format=json` body (or a stream's result line) -> Answer."""
    metadata = {k: v for k, v in document.items() if k not in ("images", "type")}
    return Answer([base64.b64decode(i) for i in document.get("images") or ()], metadata)
