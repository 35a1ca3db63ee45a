"""Exported weights -> the weights folder -> the next archive version (with the run's lineage)
-> optionally deployed.

Publishing is explicit: the trained file is copied into the weights folder under the
capability's naming (weightstore.needs.trained_weights_file: weights/lora/<style>.safetensors,
weights/lora/animals.safetensors, weights/fast_style/<style>.safetensors), where every later
plain `make archives` finds it again. A different real file already there is never replaced
unless asked (`overwrite=True`); a LoRA that does not fit the base model is refused before
anything is copied.

`publish_adapter` is the other way out for a txt2img style: straight into the adapters folder
the running server watches (`adapters/txt2img/{name}.safetensors`, imagelab/diffusion/adapters.py),
usable within seconds, no new archive version.
"""

import os
import shutil
from pathlib import Path
from typing import NamedTuple

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from archiver.versions import next_version
from imagelab.diffusion.adapters import ADAPTERS_DIR_ENV, SUFFIX, adapter_name_problem
from imagelab.weights_io import STATE_DICT_SUFFIXES, sha256_of
from repo_paths import ADAPTERS_DIR
from repo_paths import MODEL_STORE as DEFAULT_STORE
from repo_paths import SERVE_WORKDIR as DEFAULT_WORKDIR
from weightstore.layout import WeightsLayout
from weightstore.needs import (
    BASE_MARKER,
    BASE_MODEL,
    TXT2IMG_BUILTIN,
    check_lora_fits,
    trained_weights_file,
    uses_base_model,
)

__all__ = [
    "DEFAULT_STORE",
    "DEFAULT_WORKDIR",
    "Published",
    "publish",
    "publish_weights",
    "publish_adapter",
    "adapter_target",
    "default_adapters_dir",
    "announce",
]

# The models whose workers watch an adapters folder (handlers/services/txt2img.py:
# watches_adapters); animals serves the one LoRA of its archive.
ADAPTER_FOLDER_MODELS = ("txt2img",)


class Published(NamedTuple):
    archive: Path
    model: str
    version: str


class PublishConflict(ValueError):
    """The weights folder already holds a different real file under the trained file's name."""


def publish_weights(
    model: str, trained_file: Path, weights_file: str, weights_root: Path, overwrite: bool = False
) -> Path:
    """Copy `trained_file` to `weights_root/weights_file` (the capability's naming), atomically.
    -> the published path. The same bytes already there are a no-op."""
    expected = trained_weights_file(model, Path(weights_file).stem)
    if Path(weights_file).with_suffix("").as_posix() != Path(expected).with_suffix("").as_posix():
        raise ValueError(f"a trained {model} file is published as {expected}, not {weights_file}")
    target = Path(weights_root) / weights_file
    digest = sha256_of(trained_file)
    for other in (target.with_suffix(s) for s in STATE_DICT_SUFFIXES):
        if other.is_file() and not overwrite and (other != target or sha256_of(other) != digest):
            raise PublishConflict(
                f"{other} already exists with other weights; pick another style name, remove it, "
                "or publish with overwrite (it is replaced, not kept)"
            )
    if target.is_file() and sha256_of(target) == digest:
        return target
    for other in (target.with_suffix(s) for s in STATE_DICT_SUFFIXES if s != target.suffix):
        other.unlink(missing_ok=True)  # overwriting: a twin with another suffix would shadow it
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.part")
    shutil.copy2(trained_file, staged)
    os.replace(staged, target)
    return target


def default_adapters_dir() -> Path:
    """Where the server looks: IMAGELAB_ADAPTERS_DIR when set (it overrides the archive's
    folder at serve time), else the checkout's adapters/ (the archiver's adapters_folder)."""
    return Path(os.environ.get(ADAPTERS_DIR_ENV) or ADAPTERS_DIR)


def adapter_target(model: str, name: str, adapters_root: Path) -> Path:
    """`adapters_root/model/name.safetensors`, or ValueError when `model` watches no folder or
    `name` is not one the folder would serve (the folder's own rule, adapters.py)."""
    if model not in ADAPTER_FOLDER_MODELS:
        raise ValueError(f"only {', '.join(ADAPTER_FOLDER_MODELS)} serves styles from an adapters folder, not {model}")
    problem = adapter_name_problem(name)
    if problem is not None:
        raise ValueError(f"adapter name {name!r}: {problem}")
    if name in TXT2IMG_BUILTIN:
        raise ValueError(f"{name!r} is an archived style, which wins a name clash; name the adapter otherwise")
    return Path(adapters_root) / model / f"{name}{SUFFIX}"


def publish_adapter(
    model: str,
    trained_file: Path,
    name: str,
    adapters_root: Path,
    base_model_dir: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy `trained_file` (its bytes, so its metadata and class list too) into the adapters
    folder as style `name` -> the published path. Atomically: written under a temporary name
    in the same folder that the folder never serves (not *.safetensors), flushed, then renamed
    over the target, so a watching worker sees either no file, the old one or the whole new one.
    A different file already there is replaced only with `overwrite` (workers then reload it);
    the same bytes are a no-op. `base_model_dir`: the SD 1.5 folder the LoRA was trained on; a
    LoRA that does not fit it is refused before anything is written."""
    trained_file = Path(trained_file)
    target = adapter_target(model, name, adapters_root)
    if base_model_dir is not None:
        check_lora_fits(trained_file, Path(base_model_dir))
    digest = sha256_of(trained_file)
    if target.is_file():
        if sha256_of(target) == digest:
            return target
        if not overwrite:
            raise PublishConflict(
                f"{target} already holds other weights; pick another adapter name, remove it, "
                "or publish with overwrite (running workers then reload it)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{name}.{os.getpid()}.part")
    try:
        # copyfile, not copy2: a fresh mtime, so a worker's (size, mtime) check sees the change.
        with open(trained_file, "rb") as source, open(staged, "wb") as copy:
            shutil.copyfileobj(source, copy)
            copy.flush()
            os.fsync(copy.fileno())
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return target


def publish(
    model: str,
    trained_file: Path,
    weights_file: str,
    weights_root: Path,
    store: Path,
    lineage: dict,
    version: str | None = None,
    base_model_dir: Path | None = None,
    overwrite: bool = False,
) -> Published:
    """Publish `trained_file` into the weights folder as `weights_file`, then build the next
    version of `model` from that folder. `base_model_dir`: the SD 1.5 folder the LoRA was
    trained on; the archive must use the same one, or the LoRA would be applied to weights it
    never saw."""
    if model not in CAPABILITIES:
        raise ValueError(f"model must be one of {sorted(CAPABILITIES)}, got {model!r}")
    layout = WeightsLayout(Path(weights_root))
    if uses_base_model(model):
        base = layout.real_dir(BASE_MODEL, BASE_MARKER) or layout.synthetic_dir(BASE_MODEL)
        if not (base / BASE_MARKER).is_file():
            raise FileNotFoundError(
                f"no SD 1.5 folder (real or tiny) in {weights_root}; run `python -m weightstore synth`"
            )
        if base_model_dir is not None and base.resolve() != Path(base_model_dir).resolve():
            raise ValueError(
                f"the LoRA was trained on {base_model_dir} but a {model} archive from "
                f"{weights_root} would use {base.resolve()}; train with that model"
            )
        check_lora_fits(Path(trained_file), base)
    publish_weights(model, Path(trained_file), weights_file, layout.root, overwrite)
    store = Path(store)
    version = version or next_version(store, model)
    archive = build_archive(CAPABILITIES[model], layout, store, version, lineage=lineage)
    return Published(archive, model, version)


def deploy_archive(archive: Path, workdir: Path = DEFAULT_WORKDIR, workers: int = 1):
    """The lifecycle deploy flow (operations/deploy.py): register, smoke-test, set default.
    The archive must be in the running server's model store (TorchServe registers by name)."""
    from operations.deploy import Endpoint, deploy

    return deploy(Endpoint.from_workdir(Path(workdir)), Path(archive), workers=workers)


def announce(published: Published, deploy: bool, workdir: Path) -> None:
    """Print the built version and, when asked, deploy it; a failed deploy keeps the archive."""
    print(f"built {published.archive} ({published.model} {published.version})")
    if not deploy:
        return
    try:
        result = deploy_archive(published.archive, workdir)
    except Exception as error:  # DeployError, RuntimeError: the archive stays built
        raise SystemExit(f"error: deploy failed: {error}") from None
    print(f"deployed {result.model} {result.version} (previous default: {result.previous_default})")
