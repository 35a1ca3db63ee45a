"""Is the shared SD 1.5 folder a worker is about to load the one its archive was built
against? The archive's manifest.json records every file of it by sha256 (`base_model`,
archiver/capabilities.py); a changed, missing or replaced file is a start-up error naming the
file, or with `verify_base_model: false` (the operator's opt-out) a logged warning.

Hashes are cached by (path, size, mtime) (imagelab/file_hashes.py), so a start on an unchanged
folder costs a stat per file. Embedded (tiny) base models travel inside the archive and are
checked with the rest of its weights (archiver/versions.py: verify_archive)."""

import logging
from pathlib import Path

from imagelab.file_hashes import HashCache

logger = logging.getLogger(__name__)

MANIFEST_KEY = "base_model"


class BaseModelMismatch(RuntimeError):
    pass


def base_model_mismatches(record: dict, base_dir: Path) -> list:
    """'file: why' for every file of the manifest's `base_model` record that `base_dir` lacks
    or holds with other bytes (empty when all match, or when the record has no file list)."""
    cache, problems = HashCache(), []
    try:
        for entry in record.get("files") or []:
            path = Path(base_dir) / entry["path"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif cache.sha256(path) != entry["sha256"]:
                problems.append(f"{path}: sha256 differs from {entry['sha256'][:12]}...")
    finally:
        cache.save()
    return problems


def check_base_model(manifest: dict, base_dir: Path, strict: bool = True) -> None:
    """Raise BaseModelMismatch (or, not strict, log a warning) when `base_dir` is not the
    base model `manifest` was built against."""
    record = manifest.get(MANIFEST_KEY)
    if not isinstance(record, dict) or record.get("embedded"):
        return
    problems = base_model_mismatches(record, base_dir)
    if not problems:
        return
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    message = (
        f"{manifest.get('model', 'this model')} {manifest.get('version', '')}: the base model at {base_dir} is not "
        f"the one this archive was built against (identity {record.get('identity', '?')[:12]}): {shown}. "
        "Rebuild the archive against it (`python -m archiver build --version next`), restore the folder, "
        "or set `verify_base_model: false` in the archive's handler config to serve anyway"
    )
    if strict:
        raise BaseModelMismatch(message)
    logger.warning("%s (verify_base_model: false, serving anyway)", message)
