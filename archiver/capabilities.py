"""What goes into each capability's archive: its handler, its config and its weights."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from weightstore.layout import REPO_ROOT, STATE_DICT_SUFFIXES, ResolvedWeight, WeightsLayout

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
        resolved = layout.resolve_file(f"fast_style/{style}", lambda out, s=style: synthesize_transformer_net(out, s))
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
        ResolvedWeight(real, synthetic=False)
        if real is not None
        else layout.resolve_file("vgg19/vgg19_tiny", synthesize_tiny_vgg19)
    )
    archive_path = f"weights/vgg19{resolved.path.suffix}"
    return ArchivePlan(
        [WeightFile(resolved.path, archive_path, resolved.synthetic)],
        {"vgg_weights": archive_path, "synthetic": resolved.synthetic},
    )


TXT2IMG_BUILTIN = ("monet", "van_gogh")
RESERVED_LORAS = ("animals", "lcm")


def _plan_diffusion(layout: WeightsLayout, adapters: list) -> ArchivePlan:
    """SD 1.5 base by reference when real (gigabytes, shared by every version), embedded when
    tiny; LoRA files always embedded (megabytes)."""
    from imagelab.diffusion import synthesize_tiny_lora, synthesize_tiny_sd15

    base = layout.resolve_dir("sd15", "model_index.json", synthesize_tiny_sd15)
    weights, synthetic, files = [], [], {}
    if base.synthetic:
        weights.append(WeightFile(base.path, "sd15", synthetic=True))
        synthetic.append("base_model")
    for offset, name in enumerate(adapters + ["lcm"]):
        resolved = layout.resolve_file(
            f"lora/{name}",
            lambda out, seed=offset: synthesize_tiny_lora(out, base.path / "unet", seed=100 + seed),
        )
        archive_path = f"lora/{name}{resolved.path.suffix}"
        weights.append(WeightFile(resolved.path, archive_path, resolved.synthetic))
        files[name] = archive_path
        if resolved.synthetic:
            synthetic.append(name)
    settings = {
        "base_model": "sd15" if base.synthetic else str(base.path.resolve()),
        "adapters": {n: files[n] for n in adapters},
        "lcm_adapter": files["lcm"],
        "synthetic": synthetic,
    }
    if base.synthetic:
        settings["dtype"] = "float32"  # the tiny model gains nothing from bf16
    return ArchivePlan(weights, settings, None if base.synthetic else str(base.path.resolve()))


def plan_txt2img(layout: WeightsLayout) -> ArchivePlan:
    """Built-in styles plus every other LoRA in weights/lora/ (trained styles)."""
    styles = list(TXT2IMG_BUILTIN)
    lora_dir = layout.root / "lora"
    if lora_dir.is_dir():
        found = sorted(p.stem for p in lora_dir.glob("*.safetensors"))
        styles += [s for s in found if s not in styles and s not in RESERVED_LORAS]
    return _plan_diffusion(layout, styles)


def plan_animals(layout: WeightsLayout) -> ArchivePlan:
    return _plan_diffusion(layout, ["animals"])


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
    "txt2img": Capability(
        "txt2img",
        REPO_ROOT / "handlers" / "txt2img_handler.py",
        REPO_ROOT / "archiver" / "configs" / "txt2img.yaml",
        plan_txt2img,
    ),
    "animals": Capability(
        "animals",
        REPO_ROOT / "handlers" / "animals_handler.py",
        REPO_ROOT / "archiver" / "configs" / "animals.yaml",
        plan_animals,
    ),
}
