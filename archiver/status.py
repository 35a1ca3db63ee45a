"""`python -m archiver status`: for each archive in a store, the base model it was built
against (the manifest's identity) and whether the shared folder still holds it, and which of
its weights are synthetic. Reads only (no hash cache is written)."""

from pathlib import Path

from archiver.versions import ARCHIVE_NAME, archive_manifest, parse_version
from handlers.services.base_model_check import MANIFEST_KEY, base_model_mismatches
from imagelab.file_hashes import HashCache, folder_identity, hash_folder


def _sort_key(path: Path):
    match = ARCHIVE_NAME.match(path.name)
    try:
        return (match["model"], parse_version(match["version"]))
    except (TypeError, ValueError):
        return (path.name, (0, 0))


def _weight_name(path: str) -> str:
    """ "lora/monet.safetensors" -> "lora/monet"; every file of an embedded folder -> the folder."""
    return "sd15" if path.startswith("sd15/") else path.rsplit(".", 1)[0]


def archive_status_lines(store: Path) -> list:
    cache, identities, lines = HashCache(), {}, []
    for archive in sorted(Path(store).glob("*.mar"), key=_sort_key):
        manifest = archive_manifest(archive)
        synthetic = sorted({_weight_name(e["path"]) for e in manifest.get("weights", []) if e.get("synthetic")})
        record = manifest.get(MANIFEST_KEY)
        if not isinstance(record, dict):
            base = "no base model" if record is None else f"base {record} (unhashed: built before base hashes)"
        elif record.get("embedded"):
            base = (
                f"base {record['identity'][:12]} (embedded, {'tiny synthetic' if record.get('synthetic') else 'real'})"
            )
        else:
            folder = Path(record["path"])
            if folder not in identities:
                identities[folder] = folder_identity(hash_folder(folder, cache)) if folder.is_dir() else None
            now = identities[folder]
            changed = base_model_mismatches(record, folder) if now else ["missing"]
            if now == record["identity"]:
                verdict = "matches"
            elif changed:  # what a worker would refuse to start on
                verdict = f"CHANGED: folder is now {(now or 'missing')[:12]}, {len(changed)} file(s) differ"
            else:
                verdict = f"its files match; the folder also holds others (now {now[:12]})"
            base = f"base {record['identity'][:12]} at {folder} ({verdict})"
        tiny = f"; synthetic: {', '.join(synthetic)}" if synthetic else "; all weights real"
        lines.append(f"{archive.name:28s} {base}{tiny if manifest else '; no manifest'}")
    return lines
