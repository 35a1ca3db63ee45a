"""Progress of a streamed request: a plain text bar on stderr (one line redrawn with '\\r')
and live preview images saved to a file; no dependency."""

import base64
import os
import sys
from typing import Callable, Optional, TextIO


class ProgressBar:
    """Call with each progress event ({"step": i, "of": n, ...}); finish() ends the line."""

    def __init__(self, label: str = "", width: int = 30, stream: TextIO = None):
        self.label = label
        self.width = width
        self.stream = stream or sys.stderr
        self.drawn = False

    def __call__(self, event: dict) -> None:
        step, total = int(event.get("step", 0)), int(event.get("of") or 0)
        filled = self.width * step // total if total else 0
        percent = f"{100 * step // total:3d}%" if total else ""
        line = f"\r{self.label}[{'#' * filled}{'.' * (self.width - filled)}] {step}/{total or '?'} {percent}"
        self.drawn = True  # first: a Ctrl-C right after the write still gets its line ended
        self.stream.write(line)
        self.stream.flush()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


class PreviewFile:
    """Call with each progress event; one that carries a `preview` (`preview: true` requests,
    txt2img and animals) is written to `{stem}.preview.jpg`, each replacing the last, so an
    image viewer left open on it shows the picture forming. Written to a temporary file and
    renamed, so the viewer never reads half a file."""

    EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}

    def __init__(self, stem: str):
        self.stem = stem
        self.path: Optional[str] = None  # the last file written
        self.written = 0

    @classmethod
    def beside(cls, output: str) -> "PreviewFile":
        """Previews of `out.png` go to `out.preview.jpg`."""
        root, _ = os.path.splitext(output)
        return cls(root)

    def __call__(self, event: dict) -> None:
        preview = event.get("preview")
        if not isinstance(preview, dict) or "image" not in preview:
            return
        extension = self.EXTENSIONS.get(str(preview.get("format", "jpeg")), "jpg")
        path = f"{self.stem}.preview.{extension}"
        partial = f"{path}.part"
        with open(partial, "wb") as file:
            file.write(base64.b64decode(preview["image"]))
        os.replace(partial, path)
        self.path, self.written = path, self.written + 1


def each(*callbacks: Optional[Callable[[dict], None]]) -> Optional[Callable[[dict], None]]:
    """One progress callback that calls every given one in order; None if none is given."""
    chosen = [callback for callback in callbacks if callback is not None]
    if not chosen:
        return None

    def call(event: dict) -> None:
        for callback in chosen:
            callback(event)

    return call
