"""Per-file sha256 of weight folders, cached by (path, size, mtime) so that a rebuild or a
worker start does not re-hash gigabytes of an unchanged SD 1.5 folder.

The cache is one JSON file under ~/.cache/imagelab/ (or $IMAGELAB_CACHE_DIR), shared by every
process of the user. Losing an update to a concurrent writer only costs a re-hash later; a
read-only or missing cache folder (a pod) only costs the hashing.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

from imagelab.weights_io import sha256_of

CACHE_ENV = "IMAGELAB_CACHE_DIR"
CACHE_FILE = "sha256-cache.json"
_IGNORED_NAMES = {"__pycache__", ".basis"}


class FileHash(NamedTuple):
    path: str  # relative to the folder, POSIX separators
    sha256: str
    bytes: int


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "imagelab")


class HashCache:
    """sha256 by (absolute path, size, mtime_ns); `save` writes what was learnt."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / CACHE_FILE
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def sha256(self, file: Path) -> str:
        file = Path(file).resolve()
        stat = file.stat()
        key = str(file)
        known = self.entries.get(key)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2]
        digest = sha256_of(file)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as out:
                json.dump(self.entries, out)
            os.replace(out.name, self.path)
            self.changed = False
        except OSError:
            pass  # a cache we cannot write is a cache we do without


def folder_files(folder: Path) -> list:
    """Every file under `folder` that a loader may read, sorted (caches and markers left out)."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _IGNORED_NAMES & set(p.relative_to(folder).parts))


def hash_folder(folder: Path, cache: HashCache | None = None) -> list:
    """-> [FileHash] of every file under `folder`, hashed once per (path, size, mtime)."""
    own = cache is None
    cache = cache or HashCache()
    try:
        return [
            FileHash(p.relative_to(folder).as_posix(), cache.sha256(p), p.stat().st_size) for p in folder_files(folder)
        ]
    finally:
        if own:
            cache.save()


def folder_identity(files: list) -> str:
    """One sha256 naming a folder's exact contents: over its sorted (path, sha256) pairs."""
    digest = hashlib.sha256()
    for entry in sorted(files):
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()
