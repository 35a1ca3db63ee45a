"""What goes into each capability's archive: its handler, its config and its weights, and the
typed settings its service reads back (handlers/services/settings.py).

A plan takes the weights the weights room resolves (weightstore/needs.py) and the config
YAML's `handler:` defaults, and returns an ArchivePlan whose `settings` is the service's own
settings dataclass: a renamed or unknown key fails here, at build time, not in a worker.
"""

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

from handlers.services.settings import (
    ADAPTER_SETTINGS,
    DiffusionServiceSettings,
    FastStyleSettings,
    HandlerSettings,
    NeuralStyleSettings,
)
from repo_paths import ADAPTERS_DIR, REPO_ROOT
from weightstore.layout import WeightsLayout
from weightstore.needs import BaseModel, resolve_needs

CONFIGS = REPO_ROOT / "archiver" / "configs"


@dataclass(frozen=True)
class WeightFile:
    source: Path  # a file, or a folder copied whole
    archive_path: str  # where it lands inside the archive
    synthetic: bool


@dataclass(frozen=True)
class ArchivePlan:
    weights: list
    settings: HandlerSettings  # the service's settings, over the config's `handler:` defaults
    base_model: Optional[dict] = None  # the SD 1.5 folder: where, its identity and file hashes


PlanFn = Callable[[WeightsLayout, dict], ArchivePlan]  # (layout, `handler:` defaults) -> plan


@dataclass(frozen=True)
class Capability:
    name: str
    handler: Path  # the TorchServe entry point; check_handler() vets it at build time
    config: Path
    plan: PlanFn = field(repr=False)
    settings_class: type = field(repr=False, default=HandlerSettings)

    def read_config(self) -> dict:
        return yaml.safe_load(self.config.read_text()) or {}

    def build_plan(self, layout: WeightsLayout) -> ArchivePlan:
        """Resolve the weights (synthesising stand-ins) and type the handler settings."""
        defaults = dict(self.read_config().get("handler") or {})
        plan = self.plan(layout, {k: v for k, v in defaults.items() if k not in ADAPTER_SETTINGS})
        if not isinstance(plan.settings, self.settings_class):
            raise TypeError(
                f"{self.name}: the plan made {type(plan.settings).__name__}, the service reads {self.settings_class.__name__}"
            )
        if self.settings_class.from_config(plan.settings.to_config()) != plan.settings:
            raise ValueError(f"{self.name}: {self.settings_class.__name__} does not survive to_config/from_config")
        return plan

    def handler_config(self, plan: ArchivePlan) -> dict:
        """The archive's model-config.yaml: the YAML with `handler:` = the plan's settings,
        plus the adapter-only keys (threads_per_worker, fault_injection) the YAML sets."""
        config = self.read_config()
        adapter = {k: v for k, v in (config.get("handler") or {}).items() if k in ADAPTER_SETTINGS}
        config["handler"] = {**plan.settings.to_config(), **adapter}
        return config

    def check_handler(self) -> None:
        """TorchServe loads the handler file by name and takes the one class defined in it;
        check that now, so a renamed file or class fails the build instead of a worker."""
        from handlers.torchserve_adapter import TorchServeHandler

        if not self.handler.is_file():
            raise FileNotFoundError(f"{self.name}: handler {self.handler} does not exist")
        module_name = ".".join(self.handler.resolve().relative_to(REPO_ROOT).with_suffix("").parts)
        module = importlib.import_module(module_name)
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
        if len(classes) != 1 or not issubclass(classes[0], TorchServeHandler):
            raise ValueError(
                f"{self.name}: {self.handler} must define exactly one TorchServeHandler subclass "
                f"(TorchServe loads the only class in it); found {[c.__name__ for c in classes]}"
            )


def plan_fast_style(layout: WeightsLayout, defaults: dict) -> ArchivePlan:
    """Built-in styles (real or synthetic) plus every trained style found in weights/fast_style/."""
    resolved = resolve_needs("fast_style", layout).weights
    weights, styles, synthetic = [], {}, []
    for style, weight in resolved.items():
        archive_path = f"weights/{style}{weight.path.suffix}"
        weights.append(WeightFile(weight.path, archive_path, weight.synthetic))
        styles[style] = archive_path
        if weight.synthetic:
            synthetic.append(style)
    settings = FastStyleSettings.from_config({**defaults, "styles": styles, "synthetic_styles": synthetic})
    return ArchivePlan(weights, settings)


def plan_neural_style(layout: WeightsLayout, defaults: dict) -> ArchivePlan:
    """The first torchvision VGG19 state dict in weights/vgg19/, else a tiny synthetic one."""
    vgg = resolve_needs("neural_style", layout).weights["vgg19"]
    archive_path = f"weights/vgg19{vgg.path.suffix}"
    settings = NeuralStyleSettings.from_config({**defaults, "vgg_weights": archive_path, "synthetic": vgg.synthetic})
    return ArchivePlan([WeightFile(vgg.path, archive_path, vgg.synthetic)], settings)


def base_model_record(base: BaseModel) -> dict:
    """The manifest's `base_model`: where the SD 1.5 folder is, its identity and every file's
    sha256 (verified when a worker starts and before a rollback)."""
    return {
        "path": "sd15" if base.synthetic else str(base.path.resolve()),
        "embedded": base.synthetic,
        "synthetic": base.synthetic,
        "identity": base.identity,
        "files": [dict(f._asdict()) for f in base.files],
    }


def _plan_diffusion(capability: str, layout: WeightsLayout, defaults: dict) -> ArchivePlan:
    """SD 1.5 base by reference when real (gigabytes, shared by every version, hashed in the
    manifest), embedded when tiny; LoRA files always embedded (megabytes)."""
    resolved = resolve_needs(capability, layout)
    base = resolved.base
    weights, synthetic, files = [], [], {}
    if base.synthetic:
        weights.append(WeightFile(base.path, "sd15", synthetic=True))
        synthetic.append("base_model")
    for name, weight in resolved.weights.items():
        archive_path = f"lora/{name}{weight.path.suffix}"
        weights.append(WeightFile(weight.path, archive_path, weight.synthetic))
        files[name] = archive_path
        if weight.synthetic:
            synthetic.append(name)
    values = {
        **defaults,
        "base_model": "sd15" if base.synthetic else str(base.path.resolve()),
        "adapters": {n: p for n, p in files.items() if n != "lcm"},
        "lcm_adapter": files["lcm"],
        "synthetic": synthetic,
    }
    if base.synthetic:
        values["dtype"] = "float32"  # the tiny model gains nothing from bf16
    # decoder=fast: madebyollin/taesd by reference, for the real base only (it upsamples 8x;
    # the tiny base's VAE 2x); otherwise the engine builds a random stand-in.
    taesd = layout.root / "taesd"
    if not base.synthetic and (taesd / "config.json").is_file():
        values["fast_decoder"] = str(taesd.resolve())
    return ArchivePlan(weights, DiffusionServiceSettings.from_config(values), base_model_record(base))


def plan_txt2img(layout: WeightsLayout, defaults: dict) -> ArchivePlan:
    """Built-in styles plus every other LoRA in weights/lora/ (trained styles)."""
    defaults = {"adapters_folder": str(ADAPTERS_DIR), **defaults}  # styles on demand
    return _plan_diffusion("txt2img", layout, defaults)


def plan_animals(layout: WeightsLayout, defaults: dict) -> ArchivePlan:
    return _plan_diffusion("animals", layout, defaults)


def _capability(name: str, plan: PlanFn, settings_class: type) -> Capability:
    return Capability(
        name, REPO_ROOT / "handlers" / f"{name}_handler.py", CONFIGS / f"{name}.yaml", plan, settings_class
    )


CAPABILITIES = {
    "fast_style": _capability("fast_style", plan_fast_style, FastStyleSettings),
    "neural_style": _capability("neural_style", plan_neural_style, NeuralStyleSettings),
    "txt2img": _capability("txt2img", plan_txt2img, DiffusionServiceSettings),
    "animals": _capability("animals", plan_animals, DiffusionServiceSettings),
}
