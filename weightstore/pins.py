"""The reviewed pin table of `weights fetch` (pins.json beside this file): the commit of every
Hugging Face repository and the full sha256 of every file; None where nobody has reviewed the
value yet. Read by weightstore/fetch.py, which refuses unknown pins unless trusting on first use."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

PINS_FILE = Path(__file__).resolve().with_name("pins.json")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Pins:
    """The reviewed pins (pins.json): repository -> commit, target -> full sha256; None: unknown."""

    revisions: dict
    sha256: dict

    def __post_init__(self):
        for repo, commit in self.revisions.items():
            if commit is not None and not COMMIT_PATTERN.match(commit):
                raise ValueError(f"pins: {repo}: a revision must be a full 40-hex commit, not {commit!r}")
        for target, digest in self.sha256.items():
            if digest is not None and not _SHA256.match(digest):
                raise ValueError(f"pins: {target}: a sha256 must be 64 lowercase hex digits, not {digest!r}")

    @staticmethod
    def load(path: Path = PINS_FILE) -> "Pins":
        data = json.loads(Path(path).read_text())
        return Pins(dict(data["revisions"]), dict(data["sha256"]))

    def unknown(self, remote) -> list:  # remote: a fetch.RemoteFile
        """What is not pinned for `remote` (empty when its download is fully pinned)."""
        missing = [] if self.sha256.get(remote.target) else [f"sha256 of {remote.target}"]
        if remote.repo and not self.revisions.get(remote.repo):
            missing.append(f"revision of {remote.repo}")
        return missing
