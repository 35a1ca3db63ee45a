"""Does a LoRA file fit a UNet? Compared from the safetensors header and the UNet's config
alone (no tensor is read, the UNet is built on the meta device), for both layouts the server
loads (imagelab/diffusion/lora.py): diffusers/PEFT (`unet.<module>.lora_A.weight`) and kohya
(`lora_unet_<module with _>.lora_down.weight`)."""

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

from safetensors import safe_open


class Misfit(NamedTuple):
    layer: str  # the UNet module, dotted
    lora_shape: tuple  # (out, in) the LoRA's factors make
    base_shape: Optional[tuple]  # (out, in) of the UNet's layer; None: no such layer

    def __str__(self) -> str:
        if self.base_shape is None:
            return f"layer {self.layer} ({self.lora_shape}) is not in the base UNet"
        return f"layer {self.layer} is {self.lora_shape} in the LoRA but {self.base_shape} in the base UNet"


def lora_factor_shapes(path: Path) -> dict:
    """UNet module (dotted, or kohya's flat name) -> (out, in) the LoRA's up @ down makes."""
    downs, ups = {}, {}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            shape = tuple(handle.get_slice(key).get_shape())
            for down, up, prefix in (
                (".lora_A.weight", ".lora_B.weight", "unet."),
                (".lora_down.weight", ".lora_up.weight", "lora_unet_"),
            ):
                if not key.startswith(prefix):
                    continue
                if key.endswith(down):
                    downs[key[len(prefix) : -len(down)]] = shape
                elif key.endswith(up):
                    ups[key[len(prefix) : -len(up)]] = shape
    # down: (rank, in[, kh, kw]); up: (out, rank[, 1, 1])
    return {module: (ups[module][0], downs[module][1]) for module in downs if module in ups}


@lru_cache(maxsize=8)
def unet_layer_shapes(unet_config_path: str, mtime_ns: int) -> dict:
    """Dotted module name -> (out, in) of every Linear and Conv2d of the UNet the config makes."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(Path(unet_config_path).parent)))
    shapes = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear):
            shapes[name] = (module.out_features, module.in_features)
        elif isinstance(module, torch.nn.Conv2d):
            shapes[name] = (module.out_channels, module.in_channels)
    return shapes


def lora_misfits(lora: Path, unet_dir: Path) -> list:
    """[Misfit] of every LoRA layer the UNet in `unet_dir` lacks or shapes differently."""
    config = Path(unet_dir) / "config.json"
    layers = unet_layer_shapes(str(config), config.stat().st_mtime_ns)
    flat = {name.replace(".", "_"): name for name in layers}
    try:
        factors = lora_factor_shapes(lora)
    except Exception as error:  # safetensors' own error type: not a LoRA file at all
        raise ValueError(f"{lora} is not a readable safetensors LoRA ({error})") from None
    misfits = []
    for module, shape in sorted(factors.items()):
        name = module if module in layers else flat.get(module, module)
        if name not in layers:
            misfits.append(Misfit(name, shape, None))
        elif layers[name] != shape:
            misfits.append(Misfit(name, shape, layers[name]))
    return misfits
