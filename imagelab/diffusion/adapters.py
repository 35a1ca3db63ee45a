"""LoRA styles on demand (issue 19.1): a folder of `{name}.safetensors` files watched by the
running worker, and a bounded LRU of the ones loaded into the pipeline.

`AdapterFolder.refresh` re-lists the folder at most every `poll_s` seconds (a listing and a
stat per file; a file is hashed and checked only when its size or mtime changes), so asking
for the current styles is cheap enough to do per request. Loading touches the model, so it
happens only where the engine calls `OnDemandAdapters.ensure`: between pipeline calls, in the
worker's one thread (TorchServe runs decode and predict in it one after the other).

What the folder may hold: `.safetensors` files named `[A-Za-z0-9_-]{1,64}`, in the diffusers
or kohya layout (imagelab/diffusion/lora.py), whose layers all fit the base UNet
(imagelab/diffusion/lora_fit.py). Anything else is refused with its reason, which a request naming
that style gets as its 400. No path outside the folder is read: a symlink is followed only
when its target lies inside the folder. A style whose file goes away (or turns unusable) after
its request was accepted fails that request alone with `StyleUnavailable`, a 400 naming the
style, never a server fault.
"""

import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from safetensors import safe_open

from imagelab.diffusion.jobs import NO_STYLE
from imagelab.diffusion.lora import LORA_ADAPTER_METADATA_KEY
from imagelab.diffusion.lora_fit import lora_factor_shapes, lora_misfits
from imagelab.validation import InvalidValue
from imagelab.weights_io import sha256_of

ADAPTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SUFFIX = ".safetensors"
# The server's override of the archive's `adapters_folder`; the training job's
# --publish-adapter writes to the same folder by default (training/publish.py).
ADAPTERS_DIR_ENV = "IMAGELAB_ADAPTERS_DIR"
# PEFT names of folder adapters: '-' never appears in an archived adapter's name ([a-z0-9_]+),
# so a folder style can never replace an archived one inside the model.
PEFT_PREFIX = "folder-"


def adapter_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder style's name, or None when it can: the one rule for the
    folder and for the training job that publishes into it."""
    if not ADAPTER_NAME.fullmatch(name):
        return f"the name must match [A-Za-z0-9_-]{{1,64}} before {SUFFIX}"
    if name.lower() == NO_STYLE:  # requests ask for it in any case; it is the base model
        return f"the name {name!r} is reserved for the base model"
    return None


class StyleUnavailable(InvalidValue):
    """A folder style accepted when its request was decoded but gone, refused or vanishing
    while loading when its batch ran: that request's 400, not a fault of the batch."""

    def __init__(self, style: str, reason: str):
        super().__init__("style", f"style {style!r} cannot be used any more: {reason}")
        self.style = style


@dataclass(frozen=True)
class AdapterInfo:
    """One usable style LoRA: where it comes from and what it is."""

    name: str
    source: str  # "archive" or "folder"
    path: Path
    sha256: str
    rank: int
    alpha: float
    size_bytes: int

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "rank": self.rank, "alpha": self.alpha}


def read_adapter_info(path: Path, name: str, source: str) -> AdapterInfo:
    """Rank and alpha from the safetensors header (one scalar tensor read for kohya's alpha)."""
    path = Path(path)
    rank, alpha = None, None
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        for key in sorted(handle.keys()):
            if rank is None and key.endswith((".lora_A.weight", ".lora_down.weight")):
                rank = int(handle.get_slice(key).get_shape()[0])  # down: (rank, in[, kh, kw])
            if alpha is None and key.startswith("lora_unet_") and key.endswith(".alpha"):
                alpha = float(handle.get_tensor(key).item())
    if rank is None:
        raise ValueError(f"{path.name} holds no LoRA layers")
    if alpha is None:  # diffusers layout: alpha in the header, else alpha == rank (lora.py)
        config = json.loads(metadata.get(LORA_ADAPTER_METADATA_KEY, "{}"))
        alpha = float(config.get("unet.lora_alpha", rank))
    return AdapterInfo(name, source, path, sha256_of(path), rank, alpha, path.stat().st_size)


class AdapterFolder:
    """The usable and refused files of one model's adapters folder, kept current by `refresh`."""

    def __init__(
        self,
        root: Path,
        unet_dir: Path,
        poll_s: float = 2.0,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.root = Path(root)
        self.unet_dir = Path(unet_dir)
        self.poll_s = poll_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._checked_at: float | None = None
        # file name -> ((real path, size, mtime_ns), AdapterInfo or refusal text)
        self._seen: dict[str, tuple[tuple, AdapterInfo | str]] = {}

    def refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and self._checked_at is not None and now - self._checked_at < self.poll_s:
            return
        self._checked_at = now
        seen = {}
        for entry in self._entries():
            stamp, outcome = self._look_at(entry)
            if stamp is None:
                seen[entry.name] = (None, outcome)
                continue
            previous = self._seen.get(entry.name)
            if previous is not None and previous[0] == stamp:
                seen[entry.name] = previous  # unchanged: no re-hash
            else:
                seen[entry.name] = (stamp, self._check(Path(stamp[0]), entry.name))
        self._seen = seen

    @property
    def usable(self) -> Mapping[str, AdapterInfo]:
        return MappingProxyType(
            {info.name: info for _, info in sorted(self._seen.values(), key=_by_name) if isinstance(info, AdapterInfo)}
        )

    @property
    def refused(self) -> Mapping[str, str]:
        """File name -> why it cannot be used."""
        return MappingProxyType({n: r for n, (_, r) in sorted(self._seen.items()) if isinstance(r, str)})

    def refusal_for(self, style: str) -> str | None:
        """Why style `style` exists as a file but cannot be used, if it does."""
        found = self._seen.get(style + SUFFIX)
        return found[1] if found is not None and isinstance(found[1], str) else None

    def _entries(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.root) as entries:
                return [e for e in entries if e.name.endswith(SUFFIX)]  # partial writes (*.part) ignored
        except FileNotFoundError:
            return []

    def _look_at(self, entry: os.DirEntry) -> tuple[tuple | None, str]:
        """(real path, size, mtime_ns) of a file the folder may serve, or (None, why not)."""
        problem = adapter_name_problem(entry.name[: -len(SUFFIX)])
        if problem is not None:
            return None, f"{entry.name}: {problem}"
        real = Path(os.path.realpath(entry.path))
        if not real.is_relative_to(Path(os.path.realpath(self.root))):
            return None, f"{entry.name}: a symlink to outside the adapters folder is refused"
        try:
            stat = real.stat()
        except OSError:
            return None, f"{entry.name}: cannot be read"
        if not real.is_file():
            return None, f"{entry.name}: not a regular file"
        return (str(real), stat.st_size, stat.st_mtime_ns), ""

    def _check(self, real: Path, file_name: str) -> AdapterInfo | str:
        """The file's AdapterInfo, or the reason it is refused (the file and the layer)."""
        size = real.stat().st_size
        if self.max_bytes is not None and size > self.max_bytes:
            return f"{file_name}: {size} bytes is more than the adapter cache's {self.max_bytes}"
        try:
            if not lora_factor_shapes(real):
                return f"{file_name}: holds no UNet LoRA layers (diffusers or kohya layout)"
            misfits = lora_misfits(real, self.unet_dir)
            if misfits:
                extra = f" (and {len(misfits) - 1} more)" if len(misfits) > 1 else ""
                return f"{file_name} does not fit the base model: {misfits[0]}{extra}"
            return read_adapter_info(real, file_name[: -len(SUFFIX)], "folder")
        except Exception as error:  # safetensors' own errors: not a LoRA file at all
            return f"{file_name}: not a readable safetensors LoRA ({type(error).__name__})"


def _by_name(item: tuple) -> str:
    outcome = item[1]
    return outcome.name if isinstance(outcome, AdapterInfo) else ""


@dataclass
class AdapterCounts:
    loads: int = 0
    hits: int = 0
    evictions: int = 0


class OnDemandAdapters:
    """The folder plus an LRU of loaded adapters, bounded by count and by bytes (file sizes).
    Evicted, removed and replaced adapters are deleted from the model (`delete`), not merely
    disabled, so the model holds at most `max_count` of them whatever the folder has seen."""

    def __init__(self, folder: AdapterFolder, max_count: int = 8, max_bytes: int = 1 << 30):
        if max_count < 1 or max_bytes < 1:
            raise ValueError("the adapter cache needs max_count >= 1 and max_bytes >= 1")
        self.folder = folder
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.loaded: OrderedDict[str, AdapterInfo] = OrderedDict()  # least recently used first
        self.counts = AdapterCounts()
        self._load: Callable[[str, Path], None] | None = None
        self._delete: Callable[[list[str]], None] | None = None

    def attach(self, load: Callable[[str, Path], None], delete: Callable[[list[str]], None]) -> None:
        """The engine's own loader: load(peft_name, path), delete(peft_names)."""
        self._load, self._delete = load, delete

    @property
    def usable(self) -> Mapping[str, AdapterInfo]:
        self.folder.refresh()
        return self.folder.usable

    @staticmethod
    def peft_name(style: str) -> str:
        return PEFT_PREFIX + style

    def sync(self) -> None:
        """Delete loaded adapters whose file is gone or was replaced (another sha256)."""
        usable = self.usable
        stale = [n for n, info in self.loaded.items() if n not in usable or usable[n].sha256 != info.sha256]
        self._drop(stale)

    def ensure(self, style: str) -> str:
        """Load `style` if needed (evicting the least recently used); returns its PEFT name.

        StyleUnavailable when the style's file was removed or turned unusable since its request
        was accepted, or vanishes while loading (the folder is then re-listed at once)."""
        info = self.usable.get(style)
        if info is None:
            raise self._unavailable(style)
        try:
            return self._ensure(style, info)
        except StyleUnavailable:
            raise
        except Exception:
            # diffusers reads the whole file before it adds any layer, so a failed load leaves
            # nothing in the model. Did the file change under it? Then it is the request's
            # problem (or, replaced by a usable file, one more try); else a real fault.
            self.folder.refresh(force=True)
            current = self.folder.usable.get(style)
            if current is None:
                raise self._unavailable(style) from None
            if current.sha256 == info.sha256:
                raise
            return self._ensure(style, current)

    def _unavailable(self, style: str) -> StyleUnavailable:
        refusal = self.folder.refusal_for(style)
        return StyleUnavailable(style, refusal or "its file is no longer in the adapters folder")

    def _ensure(self, style: str, info: AdapterInfo) -> str:
        held = self.loaded.get(style)
        if held is not None and held.sha256 == info.sha256:
            self.loaded.move_to_end(style)
            self.counts.hits += 1
            return self.peft_name(style)
        if held is not None:
            self._drop([style])  # replaced: the old weights go before the new ones come
        while self.loaded and (
            len(self.loaded) >= self.max_count or self.loaded_bytes + info.size_bytes > self.max_bytes
        ):
            oldest = next(iter(self.loaded))
            self._drop([oldest])
            self.counts.evictions += 1
        self._load(self.peft_name(style), info.path)
        self.loaded[style] = info
        self.counts.loads += 1
        return self.peft_name(style)

    @property
    def loaded_bytes(self) -> int:
        return sum(info.size_bytes for info in self.loaded.values())

    def _drop(self, styles: list[str]) -> None:
        if styles:
            self._delete([self.peft_name(s) for s in styles])
            for style in styles:
                del self.loaded[style]
