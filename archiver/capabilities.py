"""What goes into each capability's archive: its handler, its config and its weights."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from archiver.layout import REPO_ROOT, STATE_DICT_SUFFIXES, ResolvedWeight, WeightsLayout

FAST_STYLE_BUILTIN = ("candy", "mosaic", "udnie", "rain_princess")


@dataclass(frozen=True)
class WeightFile:
    source: Path  # a file, or a folder copied whole
    archive_path: str  # where it lands inside the archive
    synthetic: bool


@dataclass(frozen=True)
class ArchivePlan:
    weights: list
    handler_settings: dict  # merged over the config's `handler:` section
    base_model: Optional[str] = None  # reference to shared base weights, if not embedded


@dataclass(frozen=True)
class Capability:
    name: str
    handler: Path
    config: Path
    plan: Callable[[WeightsLayout], ArchivePlan] = field(repr=False)


def plan_fast_style(layout: WeightsLayout) -> ArchivePlan:
    """Built-in styles (real or synthetic) plus every trained style found in weights/fast_style/."""
    from imagelab.fast_style.weights import synthesize_transformer_net

    styles = list(FAST_STYLE_BUILTIN)
    trained_dir = layout.root / "fast_style"
    if trained_dir.is_dir():
        found = sorted(p.stem for p in trained_dir.iterdir() if p.suffix in STATE_DICT_SUFFIXES)
        styles += [s for s in found if s not in styles]
    weights, style_files, synthetic = [], {}, []
    for style in styles:
        resolved = layout.resolve_file(
            f"fast_style/{style}", lambda out, s=style: synthesize_transformer_net(out, s)
        )
        archive_path = f"weights/{style}{resolved.path.suffix}"
        weights.append(WeightFile(resolved.path, archive_path, resolved.synthetic))
        style_files[style] = archive_path
        if resolved.synthetic:
            synthetic.append(style)
    return ArchivePlan(weights, {"styles": style_files, "synthetic_styles": synthetic})


def plan_neural_style(layout: WeightsLayout) -> ArchivePlan:
    """The first torchvision VGG19 state dict in weights/vgg19/, else a tiny synthetic one."""
    from imagelab.neural_style import synthesize_tiny_vgg19

    real = layout.first_real_in("vgg19")
    resolved = (
        ResolvedWeight(real, synthetic=False) if real is not None
        else layout.resolve_file("vgg19/vgg19_tiny", synthesize_tiny_vgg19)
    )
    archive_path = f"weights/vgg19{resolved.path.suffix}"
    return ArchivePlan(
        [WeightFile(resolved.path, archive_path, resolved.synthetic)],
        {"vgg_weights": archive_path, "synthetic": resolved.synthetic},
    )


CAPABILITIES = {
    "fast_style": Capability(
        "fast_style",
        REPO_ROOT / "handlers" / "fast_style_handler.py",
        REPO_ROOT / "archiver" / "configs" / "fast_style.yaml",
        plan_fast_style,
    ),
    "neural_style": Capability(
        "neural_style",
        REPO_ROOT / "handlers" / "neural_style_handler.py",
        REPO_ROOT / "archiver" / "configs" / "neural_style.yaml",
        plan_neural_style,
    ),
}
