"""Archive versions in a model store: list them, pick the next one, check one's integrity.

Versions are "major.minor" strings, compared as numbers ("10.0" > "9.0"). A new archive of a
model gets the next major version; minor versions are left to hand-made fixes.
"""

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

FIRST_VERSION = "1.0"
ARCHIVE_NAME = re.compile(r"^(?P<model>[A-Za-z0-9_]+)-(?P<version>[0-9][0-9.]*)\.mar$")


def archive_name(model: str, version: str) -> str:
    """The store's file name of a version: `{model}-{version}.mar` (ARCHIVE_NAME parses it)."""
    return f"{model}-{version}.mar"


class Version(NamedTuple):
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_version(text: str) -> Version:
    parts = str(text).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"version {text!r} is not of the form major.minor (e.g. 1.0, 2.0)")
    return Version(int(parts[0]), int(parts[1]))


def list_versions(store: Path, model: str) -> list:
    """The versions of `model` with an archive in `store`, lowest first, as strings."""
    found = []
    for path in Path(store).glob(f"{model}-*.mar"):
        match = ARCHIVE_NAME.match(path.name)
        if match and match["model"] == model:
            try:
                found.append(parse_version(match["version"]))
            except ValueError:
                continue  # e.g. fast_style-1.2.3.mar: not ours to order
    return [str(v) for v in sorted(found)]


def latest_version(store: Path, model: str) -> Optional[str]:
    versions = list_versions(store, model)
    return versions[-1] if versions else None


def next_version(store: Path, model: str) -> str:
    """1.0 for a model without archives, else the next major after the highest one."""
    latest = latest_version(store, model)
    return FIRST_VERSION if latest is None else str(Version(parse_version(latest).major + 1, 0))


def archive_path(store: Path, model: str, version: str) -> Path:
    return Path(store) / archive_name(model, str(parse_version(version)))


class ArchiveIdentity(NamedTuple):
    model: str
    version: str


def archive_identity(archive: Path) -> ArchiveIdentity:
    """Model name and version as TorchServe will register them (from MAR-INF/MANIFEST.json,
    which is what counts, whatever the file is called)."""
    with zipfile.ZipFile(archive) as bundle:
        model = json.loads(bundle.read("MAR-INF/MANIFEST.json"))["model"]
    return ArchiveIdentity(model["modelName"], model["modelVersion"])


def archive_manifest(archive: Path) -> dict:
    """The archiver's manifest.json inside a .mar (empty if it has none)."""
    with zipfile.ZipFile(archive) as bundle:
        try:
            return json.loads(bundle.read("manifest.json"))
        except KeyError:
            return {}


def verify_archive(archive: Path) -> list:
    """Weights inside `archive` whose bytes differ from its manifest.json, or that are missing
    (empty when all match). Raises ValueError when the archive carries no manifest."""
    with zipfile.ZipFile(archive) as bundle:
        try:
            manifest = json.loads(bundle.read("manifest.json"))
        except KeyError:
            raise ValueError(f"{archive} has no manifest.json; build it with `python -m archiver build`") from None
        names = set(bundle.namelist())
        bad = []
        for entry in manifest.get("weights", []):
            if entry["path"] not in names:
                bad.append(entry["path"])
                continue
            digest = hashlib.sha256()
            with bundle.open(entry["path"]) as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != entry["sha256"]:
                bad.append(entry["path"])
    return bad
