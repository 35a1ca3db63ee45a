"""Download the real weights into the weights/ layout of API.md, with sha256 checks.

Plain HTTPS with requests, resume-safe: each file grows in `{target}.part` (continued with a
Range request after an interruption) and is renamed into place only once its digest is
checked. The digest expected is, in this order: the one in FILES (a full sha256, or the 8-hex
prefix torchvision puts in its file names), else the sha256 the Hugging Face hub sends for
LFS files (X-Linked-Etag). Either way the computed digest is recorded in weights/CHECKSUMS.json,
so later runs and `weights status` can tell an intact file from a changed one.

IMAGELAB_FETCH_MIRROR (or --mirror) rewrites every URL to {mirror}/{host}{path}: for a local
mirror or cache, and for the tests, which serve fake files from 127.0.0.1.
"""

import hashlib
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import urlsplit

import requests

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
    sha256: Optional[str] = None  # full hex digest, or a prefix of one
    extract: tuple = ()  # for zips: (member, target) pairs; the zip itself is then dropped

    def __post_init__(self):
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{8,64}", self.sha256):
            raise ValueError(f"{self.target}: sha256 must be 8 to 64 lowercase hex digits")


def _hf(group: str, repo: str, path: str, target: str, revision: str = "main") -> RemoteFile:
    return RemoteFile(group, f"{HF_HUB}/{repo}/resolve/{revision}/{path}", target)


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


def fetch(
    root: Path, only=None, mirror: Optional[str] = None, variant: Optional[str] = None, timeout_s: float = 60.0
) -> list:
    """Download every file of the selected groups that is not already in place. -> [Fetched]"""
    root = Path(root)
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown weight groups {unknown}; known: {list(GROUPS)}")
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    checksums = read_checksums(root)
    done = []
    for remote in remote_files(variant):
        if only and remote.group not in only:
            continue
        done += _fetch_one(root, remote, mirror, checksums, timeout_s)
        write_checksums(root, checksums)  # after each file, so an interruption loses nothing
    return done


def _fetch_one(root: Path, remote: RemoteFile, mirror: Optional[str], checksums: dict, timeout_s: float) -> list:
    targets = [t for _, t in remote.extract] or [remote.target]
    if all(_intact(root, t, remote.sha256 if not remote.extract else None, checksums) for t in targets):
        return [Fetched(t, "present", checksums.get(t, {}).get("sha256", "")) for t in targets]
    path = root / remote.target
    url = mirrored(remote.url, mirror)
    logger.info("fetching %s from %s", remote.target, url)
    digest, server_digest = _download(url, path, timeout_s)
    expected = remote.sha256 or server_digest
    if expected and not digest.startswith(expected):
        path.with_name(path.name + ".part").unlink(missing_ok=True)
        raise FetchError(
            f"{remote.target}: sha256 {digest} does not match the expected {expected} "
            f"(from {url}); the download was discarded"
        )
    os.replace(path.with_name(path.name + ".part"), path)
    if not remote.extract:
        checksums[remote.target] = _record(path, digest, remote.url, verified=bool(expected))
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
            member_digest = _sha256_file(out)
            checksums[target] = _record(out, member_digest, f"{remote.url}#{member}", verified=bool(expected))
            done.append(Fetched(target, "downloaded", member_digest))
    path.unlink()
    return done


def _intact(root: Path, target: str, expected: Optional[str], checksums: dict) -> bool:
    """In place and, where a digest is known (FILES or CHECKSUMS.json), matching it. A file
    with no digest anywhere was dropped in by hand and is kept."""
    path = root / target
    if not path.is_file():
        return False
    expected = expected or checksums.get(target, {}).get("sha256")
    return expected is None or _sha256_file(path).startswith(expected)


def _download(url: str, path: Path, timeout_s: float) -> tuple:
    """-> (sha256 of the whole file in `{path}.part`, the server's sha256 or None)."""
    part = path.with_name(path.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    token = os.environ.get("HF_TOKEN")
    if token and urlsplit(url).netloc == urlsplit(HF_HUB).netloc:
        headers["Authorization"] = f"Bearer {token}"
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


def _sha256_file(path: Path) -> str:
    return _sha256_stream(path).hexdigest()


def _record(path: Path, digest: str, url: str, verified: bool) -> dict:
    return {
        "sha256": digest,
        "bytes": path.stat().st_size,
        "url": url,
        "verified": "against a known digest" if verified else "recorded at download",
    }


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
