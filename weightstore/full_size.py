"""Full-size synthetic weights in a shared cache, for the full-size test tier and for trying a
real-size server offline.

    python -m weightstore synth --full-size [--out DIR]       # build (or reuse) the cache
    python -m weightstore.full_size --link-sd15 weights/      # the same, then link weights/sd15 to it

The cache lives in $IMAGELAB_FULLSIZE_CACHE (default ~/.cache/imagelab/fullsize), outside the
repository, one folder per recipe (`RECIPE`, the seed): a second run, or a second process,
reuses it instead of rewriting 7 GB. A folder is built beside its final place and renamed
into it, under an exclusive lock file, so two processes never build it twice and an
interrupted build leaves no half-made folder (its scratch is removed by the next build).
"""

import argparse
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "IMAGELAB_FULLSIZE_CACHE"
RECIPE = "v1"  # bump when what is built changes, so stale caches are not reused
LORA_RANK = 2
LORA_ALPHA = 16.0
FAST_STYLES = ("candy", "mosaic", "udnie", "rain_princess")
_DONE = "build.json"  # written last: its presence marks a complete folder


@dataclass(frozen=True)
class FullSizeWeights:
    root: Path

    @property
    def sd15(self) -> Path:
        """Diffusers SD 1.5 folder, float32 weights (*.safetensors)."""
        return self.root / "sd15"

    @property
    def sd15_fp16(self) -> Path:
        """The same weights as the hub's fp16 variant only (*.fp16.safetensors)."""
        return self.root / "sd15-fp16"

    def lora(self, layout: str) -> Path:
        """One style LoRA over every attention projection of the UNet, rank 2, alpha 16, in the
        "diffusers" or "kohya" layout; both files hold the same factors."""
        return self.root / "lora" / f"style.{layout}.safetensors"

    @property
    def vgg19(self) -> Path:
        return self.root / "vgg19" / "vgg19.pth"

    def fast_style(self, style: str) -> Path:
        return self.root / "fast_style" / f"{style}.pth"

    @property
    def build_info(self) -> dict:
        """{"recipe", "seed", "build_s", "bytes"} of the build that made this folder."""
        return json.loads((self.root / _DONE).read_text())


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "imagelab" / "fullsize")


def ensure_full_size_weights(root: Path | None = None, seed: int = 0) -> FullSizeWeights:
    """The cached full-size weights for `seed`, built first if absent (~1 min cold on 2 cores)."""
    root = Path(root) if root is not None else cache_root()
    target = root / f"{RECIPE}-seed{seed}"
    if (target / _DONE).is_file():
        return FullSizeWeights(target)
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f".{target.name}.lock"):
        if (target / _DONE).is_file():  # another process built it while we waited
            return FullSizeWeights(target)
        for stale in root.glob(f".{target.name}-build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)  # no build.json: an incomplete folder from an older layout
        scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}-build-"))
        try:
            _build(FullSizeWeights(scratch), seed)
            os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return FullSizeWeights(target)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes, also on a crash
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(weights: FullSizeWeights, seed: int) -> None:
    from imagelab.diffusion.full_size import synthesize_full_sd15
    from imagelab.diffusion.tiny import synthesize_tiny_lora
    from imagelab.fast_style.full_size import synthesize_examples_checkpoint
    from imagelab.neural_style.full_size import synthesize_full_vgg19

    start_s = time.perf_counter()
    synthesize_full_sd15(weights.sd15, weights.sd15_fp16, seed=seed)
    for layout in ("diffusers", "kohya"):
        unet_dir = weights.sd15 / "unet"
        synthesize_tiny_lora(weights.lora(layout), unet_dir, seed + 100, LORA_RANK, LORA_ALPHA, layout)
    synthesize_full_vgg19(weights.vgg19, seed=seed)
    for style in FAST_STYLES:
        synthesize_examples_checkpoint(weights.fast_style(style), style, seed=seed)
    total_bytes = sum(p.stat().st_size for p in weights.root.rglob("*") if p.is_file())
    info = {"recipe": RECIPE, "seed": seed, "build_s": round(time.perf_counter() - start_s, 1), "bytes": total_bytes}
    (weights.root / _DONE).write_text(json.dumps(info, indent=2) + "\n")


def link_sd15(weights: FullSizeWeights, weights_root: Path) -> Path:
    """Make `weights_root/sd15` a symlink to the cached fp32 folder, as a user who drops a
    downloaded SD 1.5 there would; refuses to replace a real folder."""
    link = Path(weights_root) / "sd15"
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a symlink; move it away first")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(weights.sd15.resolve(), target_is_directory=True)
    return link


def synthesize_full_size(out: Path | None = None, seed: int = 0, link_sd15_into: Path | None = None) -> None:
    """The command line's work: build or reuse the cache, say where and what it cost, link."""
    weights = ensure_full_size_weights(out, seed)
    info = weights.build_info
    print(f"{weights.root}: {info['bytes'] / 1e9:.1f} GB, built in {info['build_s']} s")
    if link_sd15_into is not None:
        print(f"linked {link_sd15(weights, link_sd15_into)} -> {weights.sd15}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m weightstore.full_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help=f"cache folder (default: ${CACHE_ENV} or ~/.cache/imagelab/fullsize)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--link-sd15", type=Path, metavar="WEIGHTS_ROOT", help="then link WEIGHTS_ROOT/sd15 to it")
    args = parser.parse_args(argv)
    synthesize_full_size(args.out, args.seed, args.link_sd15)


if __name__ == "__main__":
    main()
