"""The built single-page app (frontend/dist), read-only, never outside its folder."""

import mimetypes
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import unquote

# Vite names assets by content hash, so they never change under the same name.
IMMUTABLE_PREFIX = "assets/"
EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}


class StaticFile(NamedTuple):
    path: Path
    content_type: str
    cache_control: str


def find_static(root: Path, url_path: str) -> Optional[StaticFile]:
    root = Path(root).resolve()
    relative = unquote(url_path).lstrip("/") or "index.html"
    if "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        return None  # ../ and symlinks out of the folder
    if candidate.is_dir():
        candidate = candidate / "index.html"
    if not candidate.is_file():
        return None
    suffix = candidate.suffix.lower()
    content_type = EXTRA_TYPES.get(suffix) or mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or suffix in (".js", ".mjs", ".json", ".svg"):
        content_type += "; charset=utf-8"
    immutable = candidate.relative_to(root).as_posix().startswith(IMMUTABLE_PREFIX)
    cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return StaticFile(candidate, content_type, cache)
