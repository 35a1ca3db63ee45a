"""Cancelling a running job from outside the process that runs it, server-agnostic.

A TorchServe worker runs one batch at a time and takes no second call while it does, so a
cancel cannot be a request to the busy model. Instead a running job has a job id (unguessable,
`new_job_id`, or the client's own), and another process on the same host (the playground
gateway, the v2 front) writes a marker file named after it into a shared folder. The running
job looks for its marker at every step (`CancelMarkers.check`, a stat) and stops with
`JobCancelled`.

Markers are plain empty files: the name is the job id (validated, so never a path outside the
folder), the mtime the request time. A marker older than `ttl_s` counts for nothing and is
removed by the next `request` or `sweep`; a job's own marker is removed when the job ends.
"""

import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

CANCEL_DIR_ENV = "IMAGELAB_CANCEL_DIR"  # the folder, for the workers and for the writers
CANCEL_DIR_NAME = "cancel"  # the default: {TorchServe workdir}/cancel
JOB_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
JOB_ID_RULE = "8 to 64 letters, digits, '_' or '-'"
MARKER_TTL_S = 3600.0  # longer than any job's time budget (the longest is 540 s)
MAX_MARKERS = 10_000  # a bound on what callers holding a key can leave in the folder

_JOB_ID = re.compile(JOB_ID_PATTERN)


class JobCancelled(Exception):
    """The job's cancel marker was found; the job stopped (or never started)."""

    def __init__(self, job_id: str, step: int | None = None):
        where = "before its first step" if step is None else f"after step {step}"
        super().__init__(f"job {job_id} was cancelled {where}")
        self.job_id = job_id
        self.step = step


class InvalidJobId(ValueError):
    pass


class TooManyMarkers(RuntimeError):
    pass


def new_job_id() -> str:
    """24 URL-safe characters from 18 random bytes (144 bits): not guessable."""
    return secrets.token_urlsafe(18)


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidJobId(f"a job id is {JOB_ID_RULE}; got {str(job_id)[:80]!r}")
    return job_id


def cancel_dir(workdir: Path | None) -> Path | None:
    """$IMAGELAB_CANCEL_DIR, else {workdir}/cancel, else None (cancelling is off)."""
    configured = os.environ.get(CANCEL_DIR_ENV)
    if configured:
        return Path(configured).absolute()
    return None if workdir is None else Path(workdir).absolute() / CANCEL_DIR_NAME


class CancelMarkers:
    """The marker folder. `clock` is wall time (markers are compared by mtime)."""

    def __init__(
        self,
        directory: Path,
        ttl_s: float = MARKER_TTL_S,
        max_markers: int = MAX_MARKERS,
        clock: Callable[[], float] = time.time,
    ):
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self.max_markers = max_markers
        self.clock = clock

    def _path(self, job_id: str) -> Path:
        return self.directory / check_job_id(job_id)

    def request(self, job_id: str) -> None:
        """Mark `job_id` cancelled (again: its time is renewed). Raises InvalidJobId, or
        TooManyMarkers when the folder holds `max_markers` live ones."""
        path = self._path(job_id)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        live = self.sweep()
        if live >= self.max_markers and not path.exists():
            raise TooManyMarkers(f"{live} cancel requests are pending; retry later")
        # O_NOFOLLOW: a symlink planted under a job id's name is refused, never written through.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            now = self.clock()
            os.utime(descriptor, (now, now))
        finally:
            os.close(descriptor)

    def is_cancelled(self, job_id: str) -> bool:
        try:
            requested = self._path(job_id).stat().st_mtime
        except FileNotFoundError:
            return False
        return self.clock() - requested < self.ttl_s

    def check(self, job_id: str, step: int | None = None) -> None:
        """Raise JobCancelled if `job_id` has a live marker."""
        if self.is_cancelled(job_id):
            raise JobCancelled(job_id, step)

    def clear(self, job_id: str) -> None:
        """The job ended: its marker (if any) is done with."""
        self._path(job_id).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove expired markers (and anything not named like one); -> live markers left."""
        live = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        now = self.clock()
        for entry in entries:
            try:
                expired = now - entry.stat(follow_symlinks=False).st_mtime >= self.ttl_s
                if expired or not _JOB_ID.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                else:
                    live += 1
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                continue  # another writer removed it first, or it is not ours to remove
        return live
