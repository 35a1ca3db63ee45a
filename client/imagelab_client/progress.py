"""A plain text progress bar on stderr: no dependency, one line redrawn with '\\r'."""

import sys
from typing import TextIO


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
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
