"""What each capability needs from weights/, and how to make a stand-in for what is missing.

The archiver's plans resolve these (`resolve_needs`: real file, else its synthetic twin, made
here); `status` inspects them (`inspect_needs`) and never writes. Companions of the SD 1.5 base
(the style LoRAs, the animals LoRA, the LCM-LoRA) are keyed to the base model's identity: a
synthetic one is remade when the base changes, a real one must fit the base's layer shapes.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from imagelab.diffusion.lora_fit import lora_misfits
from imagelab.file_hashes import folder_identity, hash_folder
from imagelab.weights_io import STATE_DICT_SUFFIXES
from weightstore.layout import ResolvedWeight, WeightsLayout, recorded_basis

FAST_STYLE_BUILTIN = ("candy", "mosaic", "udnie", "rain_princess")
TXT2IMG_BUILTIN = ("monet", "van_gogh")
RESERVED_LORAS = ("animals", "lcm")  # LoRAs in weights/lora/ that are not txt2img styles
BASE_MODEL = "sd15"
BASE_MARKER = "model_index.json"
# Stand-in seeds: 100 + the LoRA's position among its capability's adapters; the LCM-LoRA is
# shared by both capabilities, so it has one seed (the one txt2img gave it before).
LORA_SEEDS = {"lcm": 102}


@dataclass(frozen=True)
class Need:
    name: str  # how the plan calls it: a style, "vgg19", "base_model", "lcm"
    stem: str  # where the real one lives under weights/ (without suffix): "lora/monet"
    make: Callable = field(repr=False)  # (out, base folder or None) -> out: the stand-in
    on_base: bool = False  # made against (and must fit) the SD 1.5 base model
    any_file_in: Optional[str] = None  # the real one is any state dict in this folder (vgg19/)


class BaseModel(NamedTuple):
    """The SD 1.5 folder the diffusion capabilities build on, with its per-file hashes."""

    path: Path
    synthetic: bool
    identity: str  # folder_identity(files): what companions are keyed to
    files: list  # [FileHash]


class Resolved(NamedTuple):
    weights: dict  # need name -> ResolvedWeight
    base: Optional[BaseModel]


class WeightMismatch(ValueError):
    """A real weight file that does not fit the model it is meant for."""


def fast_style_styles(layout: WeightsLayout) -> list:
    """Built-in styles plus every trained style in weights/fast_style/."""
    styles = list(FAST_STYLE_BUILTIN)
    folder = layout.root / "fast_style"
    if folder.is_dir():
        found = sorted(p.stem for p in folder.iterdir() if p.suffix in STATE_DICT_SUFFIXES)
        styles += [s for s in found if s not in styles]
    return styles


def txt2img_styles(layout: WeightsLayout) -> list:
    """Built-in styles plus every other LoRA in weights/lora/ (trained styles)."""
    styles = list(TXT2IMG_BUILTIN)
    folder = layout.root / "lora"
    if folder.is_dir():
        found = sorted(p.stem for p in folder.glob("*.safetensors"))
        styles += [s for s in found if s not in styles and s not in RESERVED_LORAS]
    return styles


def _make_transformer_net(style: str):
    def make(out: Path, base: Optional[Path]) -> Path:
        from imagelab.fast_style.weights import synthesize_transformer_net

        return synthesize_transformer_net(out, style)

    return make


def _make_vgg19(out: Path, base: Optional[Path]) -> Path:
    from imagelab.neural_style import synthesize_tiny_vgg19

    return synthesize_tiny_vgg19(out)


def _make_sd15(out: Path, base: Optional[Path]) -> Path:
    from imagelab.diffusion import synthesize_tiny_sd15

    return synthesize_tiny_sd15(out)


def _make_lora(seed: int):
    def make(out: Path, base: Optional[Path]) -> Path:
        from imagelab.diffusion import synthesize_tiny_lora

        return synthesize_tiny_lora(out, base / "unet", seed=seed)

    return make


def lora_needs(adapters: list) -> list:
    """The capability's LoRAs, then the LCM-LoRA; each keyed to the base model."""
    seeds = {name: 100 + offset for offset, name in enumerate(adapters)} | LORA_SEEDS
    return [Need(name, f"lora/{name}", _make_lora(seeds[name]), on_base=True) for name in [*adapters, "lcm"]]


def needs_of(capability: str, layout: WeightsLayout) -> list:
    """Everything `capability` needs besides the base model (resolve_base_model), which the
    companions marked `on_base` are made against."""
    if capability == "fast_style":
        return [Need(s, f"fast_style/{s}", _make_transformer_net(s)) for s in fast_style_styles(layout)]
    if capability == "neural_style":
        return [Need("vgg19", "vgg19/vgg19_tiny", _make_vgg19, any_file_in="vgg19")]
    if capability == "txt2img":
        return lora_needs(txt2img_styles(layout))
    if capability == "animals":
        return lora_needs(["animals"])
    raise ValueError(f"unknown capability {capability!r}; known: fast_style, neural_style, txt2img, animals")


def uses_base_model(capability: str) -> bool:
    return capability in ("txt2img", "animals")


def resolve_base_model(layout: WeightsLayout) -> BaseModel:
    """weights/sd15/ when present, else the tiny synthetic one; hashed file by file (cached)."""
    resolved = layout.resolve_dir(BASE_MODEL, BASE_MARKER, lambda out: _make_sd15(out, None))
    files = hash_folder(resolved.path)
    return BaseModel(resolved.path, resolved.synthetic, folder_identity(files), files)


def resolve_needs(capability: str, layout: WeightsLayout) -> Resolved:
    """Every need of `capability` as a file or folder: the real one, else its stand-in (made
    now if missing or made for another base). A real companion of the base model that does not
    fit it raises WeightMismatch naming the file, the layer and both shapes."""
    base = resolve_base_model(layout) if uses_base_model(capability) else None
    weights = {}
    for need in needs_of(capability, layout):
        basis = base.identity if need.on_base else None
        real = layout.first_real_in(need.any_file_in) if need.any_file_in else layout.find_real(need.stem)
        if real is not None:
            if need.on_base:
                _check_fits(real, base)
            weights[need.name] = ResolvedWeight(real, synthetic=False)
            continue
        weights[need.name] = layout.resolve_file(
            need.stem, lambda out, need=need: need.make(out, base.path if base else None), basis=basis
        )
    return Resolved(weights, base)


def _check_fits(lora: Path, base: BaseModel) -> None:
    check_lora_fits(lora, base.path, base.identity)


def check_lora_fits(lora: Path, base_dir: Path, identity: Optional[str] = None) -> None:
    """WeightMismatch naming the file, the first misfit layer and both shapes, when the LoRA
    at `lora` does not fit the UNet of the SD 1.5 folder `base_dir`."""
    try:
        misfits = lora_misfits(lora, Path(base_dir) / "unet")
    except ValueError as error:
        raise WeightMismatch(str(error)) from None
    if misfits:
        more = f" (and {len(misfits) - 1} more layers)" if len(misfits) > 1 else ""
        name = f"{base_dir} ({identity[:12]})" if identity else str(base_dir)
        raise WeightMismatch(
            f"{lora} does not fit the base model {name}: {misfits[0]}{more}; "
            "use a LoRA trained for this base model, or remove the file"
        )


def trained_weights_file(capability: str, style: str) -> str:
    """Where a trained style of `capability` lives under weights/, so plans pick it up."""
    if capability == "fast_style":
        return f"fast_style/{style}.safetensors"
    if capability == "animals":
        return "lora/animals.safetensors"
    if capability == "txt2img":
        if style in RESERVED_LORAS:
            raise ValueError(f"{style!r} is reserved ({', '.join(RESERVED_LORAS)}); name the style otherwise")
        return f"lora/{style}.safetensors"
    raise ValueError(f"{capability!r} takes no trained weights; fast_style, txt2img and animals do")


class NeedState(NamedTuple):
    """What `status` says of one need, without writing anything."""

    capability: str
    name: str
    path: Optional[Path]  # None: missing (would be synthesised by a build)
    synthetic: bool
    basis: Optional[str]  # synthetic companions: the base identity it was made for
    stale: bool  # a synthetic companion made for another base than the current one
    problem: Optional[str] = None  # a real companion that does not fit the base


class BaseState(NamedTuple):
    path: Optional[Path]
    synthetic: bool
    identity: Optional[str]
    files: list


def inspect_needs(capability: str, layout: WeightsLayout, base: Optional[BaseState]) -> list:
    states = []
    for need in needs_of(capability, layout):
        real = layout.first_real_in(need.any_file_in) if need.any_file_in else layout.find_real(need.stem)
        if real is not None:
            problem = None
            if need.on_base and base is not None and base.path is not None:
                try:
                    misfits = lora_misfits(real, base.path / "unet")
                    problem = f"does not fit the base: {misfits[0]}" if misfits else None
                except ValueError as error:
                    problem = str(error)
            states.append(NeedState(capability, need.name, real, False, None, False, problem))
            continue
        tiny = layout.synthetic_file(need.stem)
        if not tiny.is_file():
            states.append(NeedState(capability, need.name, None, True, None, False))
            continue
        basis = recorded_basis(tiny) if need.on_base else None
        stale = need.on_base and (base is None or basis != base.identity)
        states.append(NeedState(capability, need.name, tiny, True, basis, stale))
    return states
