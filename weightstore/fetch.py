"""Download the real weights into the weights/ layout of API.md, pinned and checked.

Every file has a reviewed pin in weightstore/pins.json: the full sha256 of the file, and for
Hugging Face repositories the commit to download from. A pin nobody has reviewed yet is null
(unknown); such files are refused unless the caller asks for trust on first use
(--trust-on-first-use), which resolves each repository's `main` to a commit once, downloads
every file at that commit and records commit and digests in weights/CHECKSUMS.json, for a
reviewer to copy into pins.json. A known pin that does not match discards the download.

Hub files come through huggingface_hub (`hf_hub_download(repo_id, filename, revision=...)`,
resumable, honouring HF_ENDPOINT and HF_TOKEN); the two files hosted elsewhere (torchvision's
VGG19, the pytorch/examples style zip) through requests, resumable with Range requests. Either
way a file is renamed into place only once its digest is checked.

IMAGELAB_FETCH_MIRROR (or --mirror) rewrites every URL to {mirror}/{host}{path} (the hub's as
endpoint {mirror}/huggingface.co): for a local mirror or cache, and for the tests, which serve
fake files from 127.0.0.1. A mirror or HF_ENDPOINT over plain HTTP is refused unless asked for
(--allow-http): the pins still hold, but an unpinned file would be anyone's on the path.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import urlsplit

import requests

from imagelab.weights_io import sha256_of
from weightstore.pins import COMMIT_PATTERN, PINS_FILE, Pins  # noqa: F401  (PINS_FILE: the CLI and tests)

logger = logging.getLogger(__name__)

HF_HUB = "https://huggingface.co"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the public copy of runwayml's SD 1.5
MIRROR_ENV = "IMAGELAB_FETCH_MIRROR"
CHECKSUMS_FILE = "CHECKSUMS.json"
FAST_STYLES = ("candy", "mosaic", "rain_princess", "udnie")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    group: str  # what --only selects
    url: str
    target: str  # relative to weights/
    sha256: Optional[str] = None  # a prefix of the digest the file's name promises (torchvision)
    extract: tuple = ()  # for zips: (member, target) pairs; the zip itself is then dropped
    repo: Optional[str] = None  # a Hugging Face repository: fetched with huggingface_hub
    path: Optional[str] = None  # the file inside `repo`

    def __post_init__(self):
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{8,64}", self.sha256):
            raise ValueError(f"{self.target}: sha256 must be 8 to 64 lowercase hex digits")


def _hf(group: str, repo: str, path: str, target: str) -> RemoteFile:
    return RemoteFile(group, f"{HF_HUB}/{repo}/resolve/main/{path}", target, repo=repo, path=path)


def _sd15_files(variant: Optional[str]) -> list:
    suffix = f".{variant}.safetensors" if variant else ".safetensors"
    paths = [
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        f"text_encoder/model{suffix}",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        f"unet/diffusion_pytorch_model{suffix}",
        "vae/config.json",
        f"vae/diffusion_pytorch_model{suffix}",
        "feature_extractor/preprocessor_config.json",
        # Last on purpose: model_index.json is what marks weights/sd15/ as a real folder
        # (layout.resolve_dir), so it must not appear before everything else is in place.
        "model_index.json",
    ]
    return [_hf("sd15", SD15_REPO, p, f"sd15/{p}") for p in paths]


def remote_files(variant: Optional[str] = None) -> list:
    """The one table of what `weights fetch` downloads, from where, to where.
    variant="fp16": SD 1.5's half-size *.fp16.safetensors (diffusers loads them with
    variant="fp16"); default: the full-precision files."""
    clip = "openai/clip-vit-base-patch32"
    return [
        *_sd15_files(variant),
        # torchvision names the file after the first 8 hex digits of its sha256.
        RemoteFile(
            "vgg19",
            "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            "vgg19/vgg19-dcbb9e9d.pth",
            sha256="dcbb9e9d",
        ),
        # What pytorch/examples fast_neural_style/download_saved_models.py downloads.
        RemoteFile(
            "fast_style",
            "https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1",
            ".downloads/saved_models.zip",
            extract=tuple((f"saved_models/{s}.pth", f"fast_style/{s}.pth") for s in FAST_STYLES),
        ),
        _hf("lcm", "latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors", "lora/lcm.safetensors"),
        *(
            _hf("clip", clip, p, f"clip/{p}")
            for p in (
                "config.json",
                "preprocessor_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "vocab.json",
                "merges.txt",
                "special_tokens_map.json",
                "model.safetensors",
            )
        ),
    ]


GROUPS = ("sd15", "vgg19", "fast_style", "lcm", "clip")


class Fetched(NamedTuple):
    target: str
    status: str  # "downloaded" or "present"
    sha256: str


def mirrored(url: str, mirror: Optional[str]) -> str:
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


class Source(NamedTuple):
    """Where this run downloads from: the mirror (or None) and the hub endpoint."""

    mirror: Optional[str]
    hub: str


def source_for(mirror: Optional[str], allow_http: bool) -> Source:
    """The mirror (argument, else IMAGELAB_FETCH_MIRROR) and hub endpoint (the mirror's
    huggingface.co, else HF_ENDPOINT, else the hub); plain HTTP only when allowed."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    hub = f"{mirror.rstrip('/')}/{urlsplit(HF_HUB).netloc}" if mirror else os.environ.get("HF_ENDPOINT") or HF_HUB
    for name, url in (("mirror", mirror), ("HF_ENDPOINT", hub)):
        if url and urlsplit(url).scheme != "https" and not allow_http:
            raise FetchError(
                f"the {name} {url} is not HTTPS: anyone on the path could replace an unpinned file. "
                "Use an HTTPS mirror, or pass --allow-http for a mirror you trust (a loopback cache)"
            )
    return Source(mirror, hub.rstrip("/"))


def fetch(
    root: Path,
    only=None,
    mirror: Optional[str] = None,
    variant: Optional[str] = None,
    timeout_s: float = 60.0,
    allow_http: bool = False,
    trust_on_first_use: bool = False,
    pins: Optional[Pins] = None,
) -> list:
    """Download every file of the selected groups that is not already in place. -> [Fetched]"""
    root = Path(root)
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown weight groups {unknown}; known: {list(GROUPS)}")
    source = source_for(mirror, allow_http)
    pins = pins or Pins.load()
    selected = [r for r in remote_files(variant) if not only or r.group in only]
    unpinned = [what for remote in selected for what in pins.unknown(remote)]
    if unpinned and not trust_on_first_use:
        raise FetchError(
            f"no reviewed pin for {len(unpinned)} item(s) in {PINS_FILE.name}: {', '.join(unpinned[:6])}"
            f"{' ...' if len(unpinned) > 6 else ''}. Nothing was downloaded. Review and pin them "
            "(see the file's note), or pass --trust-on-first-use to download at the hub's current "
            "commit and record what arrives in CHECKSUMS.json"
        )
    checksums = read_checksums(root)
    revisions = dict(pins.revisions)  # trust on first use fills in one commit per repository per run
    done = []
    for remote in selected:
        done += _fetch_one(root, remote, source, pins, revisions, checksums, timeout_s)
        write_checksums(root, checksums)  # after each file, so an interruption loses nothing
    return done


def _fetch_one(
    root: Path, remote: RemoteFile, source: Source, pins: Pins, revisions: dict, checksums: dict, timeout_s: float
) -> list:
    pinned = pins.sha256.get(remote.target)
    targets = [t for _, t in remote.extract] or [remote.target]
    if all(_intact(root, t, pinned if not remote.extract else None, checksums) for t in targets):
        return [Fetched(t, "present", checksums.get(t, {}).get("sha256", "")) for t in targets]
    path = root / remote.target
    part = path.with_name(path.name + ".part")
    if remote.repo:
        revision = revisions.get(remote.repo) or _resolve_main(remote, source, timeout_s)
        revisions[remote.repo] = revision
        url = f"{source.hub}/{remote.repo}/resolve/{revision}/{remote.path}"
        digest, server_digest = _download_from_hub(remote, revision, source.hub, root, part, timeout_s)
    else:
        revision, url = None, mirrored(remote.url, source.mirror)
        logger.info("fetching %s from %s", remote.target, url)
        digest, server_digest = _download(url, path, timeout_s)
    expected = pinned or remote.sha256 or server_digest
    if expected and not digest.startswith(expected):
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{remote.target}: sha256 {digest} does not match the expected {expected} "
            f"({'pinned' if pinned else 'from the server'}; from {url}); the download was discarded"
        )
    os.replace(part, path)
    verified = "against the reviewed pin" if pinned else "recorded on first use"
    if not remote.extract:
        checksums[remote.target] = _record(path, digest, url, verified, revision)
        return [Fetched(remote.target, "downloaded", digest)]
    done = []
    with zipfile.ZipFile(path) as bundle:
        for member, target in remote.extract:
            out = root / target
            out.parent.mkdir(parents=True, exist_ok=True)
            staged = out.with_name(out.name + ".part")
            try:
                staged.write_bytes(bundle.read(member))
            except KeyError:
                raise FetchError(f"{remote.target} from {url} has no {member}") from None
            os.replace(staged, out)
            member_digest = sha256_of(out)
            checksums[target] = _record(out, member_digest, f"{url}#{member}", f"{verified} (its zip)", None)
            done.append(Fetched(target, "downloaded", member_digest))
    path.unlink()
    return done


def _resolve_main(remote: RemoteFile, source: Source, timeout_s: float) -> str:
    """Trust on first use: the commit the hub names for `main` now (X-Repo-Commit)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        url = hf_hub_url(remote.repo, remote.path, revision="main", endpoint=source.hub)
        commit = get_hf_file_metadata(url, timeout=timeout_s, token=os.environ.get("HF_TOKEN") or False).commit_hash
    except Exception as error:  # huggingface_hub raises its own and httpx's errors
        raise FetchError(f"{remote.target}: cannot resolve {remote.repo}@main at {source.hub} ({error})") from error
    if not commit or not COMMIT_PATTERN.match(commit):
        raise FetchError(f"{remote.target}: {source.hub} named no commit for {remote.repo}@main")
    logger.warning("trusting %s@main = %s on first use (not a reviewed pin)", remote.repo, commit)
    return commit


def _download_from_hub(remote: RemoteFile, revision: str, hub: str, root: Path, part: Path, timeout_s: float) -> tuple:
    """hf_hub_download at `revision` into weights/.downloads/hf/ (where it resumes an
    interrupted download), then moved to `{target}.part`. -> (sha256, the hub's sha256 or None)."""
    from huggingface_hub import hf_hub_download

    staging = root / ".downloads" / "hf" / remote.repo
    logger.info("fetching %s from %s/%s@%s", remote.target, hub, remote.repo, revision[:12])
    try:
        local = hf_hub_download(
            remote.repo,
            remote.path,
            revision=revision,
            local_dir=staging,
            endpoint=hub,
            etag_timeout=timeout_s,
            token=os.environ.get("HF_TOKEN") or False,
        )
    except Exception as error:  # huggingface_hub raises its own and httpx's errors
        raise FetchError(
            f"{remote.target}: download of {remote.repo}/{remote.path}@{revision[:12]} from {hub} failed "
            f"({error}); run again to resume"
        ) from error
    part.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(local, part)
    return sha256_of(part), _hub_sha256(staging, remote.path)


def _hub_sha256(staging: Path, path: str) -> Optional[str]:
    """The etag huggingface_hub recorded for the file: the sha256 for LFS files."""
    metadata = staging / ".cache" / "huggingface" / "download" / f"{path}.metadata"
    try:
        etag = metadata.read_text().splitlines()[1].strip().strip('"').lower()
    except (OSError, IndexError):
        return None
    return etag if _SHA256.match(etag) else None


def _intact(root: Path, target: str, expected: Optional[str], checksums: dict) -> bool:
    """In place and, where a digest is known (FILES or CHECKSUMS.json), matching it. A file
    with no digest anywhere was dropped in by hand and is kept."""
    path = root / target
    if not path.is_file():
        return False
    expected = expected or checksums.get(target, {}).get("sha256")
    return expected is None or sha256_of(path).startswith(expected)


def _download(url: str, path: Path, timeout_s: float) -> tuple:
    """-> (sha256 of the whole file in `{path}.part`, the server's sha256 or None)."""
    part = path.with_name(path.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=(10, timeout_s)) as answer:
            if answer.status_code == 416:  # the part is already whole (or stale): start over
                part.unlink()
                return _download(url, path, timeout_s)
            if answer.status_code not in (200, 206):
                raise FetchError(f"{path.name}: {url} answered {answer.status_code}")
            digest = hashlib.sha256()
            if answer.status_code == 206:
                digest = _sha256_stream(part)
                mode = "ab"
            else:
                mode = "wb"
            with open(part, mode) as out:
                for block in answer.iter_content(1 << 20):
                    digest.update(block)
                    out.write(block)
            return digest.hexdigest(), _server_sha256(answer.headers)
    except requests.RequestException as error:
        raise FetchError(
            f"{path.name}: download from {url} failed ({error}); run again to resume from {part.name}"
        ) from error


def _server_sha256(headers) -> Optional[str]:
    """The hub's X-Linked-Etag (or ETag) is the sha256 of LFS files; other ETags are not."""
    for name in ("X-Linked-Etag", "ETag"):
        value = headers.get(name, "").removeprefix("W/").strip('"').lower()
        if _SHA256.match(value):
            return value
    return None


def _sha256_stream(path: Path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def _record(path: Path, digest: str, url: str, verified: str, revision: Optional[str]) -> dict:
    record = {"sha256": digest, "bytes": path.stat().st_size, "url": url, "verified": verified}
    if revision:
        record["revision"] = revision
    return record


def read_checksums(root: Path) -> dict:
    path = Path(root) / CHECKSUMS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_checksums(root: Path, checksums: dict) -> None:
    path = Path(root) / CHECKSUMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".part")
    staged.write_text(json.dumps(checksums, indent=2, sort_keys=True) + "\n")
    os.replace(staged, path)


def file_states(root: Path, variant: Optional[str] = None) -> list:
    """(group, target, state) for every downloadable file: "missing", "real (no record)",
    "real (as downloaded)" or "real (size differs from CHECKSUMS.json)". Sizes only, so the
    status stays instant with gigabytes of weights; `fetch` re-checks full digests."""
    root = Path(root)
    checksums = read_checksums(root)
    states = []
    for remote in remote_files(variant):
        for target in [t for _, t in remote.extract] or [remote.target]:
            path = root / target
            record = checksums.get(target)
            if not path.is_file():
                state = "missing"
            elif record is None:
                state = "real (no record)"
            elif path.stat().st_size == record["bytes"]:
                state = "real (as downloaded)"
            else:
                state = "real (size differs from CHECKSUMS.json)"
            states.append((remote.group, target, state))
    return states
