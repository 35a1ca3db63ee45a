"""One tiny SD 1.5 folder, its LoRAs and one engine for every diffusion test (session scope)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from imagelab.diffusion.lora import read_lora, save_lora
from imagelab.diffusion.tiny import synthesize_tiny_lora, synthesize_tiny_sd15

TINY_SIZE = dict(width=64, height=64)


@pytest.fixture(scope="session")
def tiny_sd15_dir(tmp_path_factory):
    return synthesize_tiny_sd15(tmp_path_factory.mktemp("tiny_sd15") / "sd15", seed=0)


@pytest.fixture(scope="session")
def lora_files(tiny_sd15_dir, tmp_path_factory):
    """Adapter name -> LoRA file; the rank-2 ones share one seed so they differ only as named."""
    lora_dir = tmp_path_factory.mktemp("lora")
    unet_dir = tiny_sd15_dir / "unet"
    files = {
        "monet": synthesize_tiny_lora(lora_dir / "monet.safetensors", unet_dir, seed=1),
        "r2_alpha16": synthesize_tiny_lora(lora_dir / "r2_alpha16.safetensors", unet_dir, seed=7, rank=2, alpha=16),
        "r2_alpha16_kohya": synthesize_tiny_lora(
            lora_dir / "r2_alpha16_kohya.safetensors", unet_dir, seed=7, rank=2, alpha=16, layout="kohya"
        ),
        "r2_alpha2": synthesize_tiny_lora(lora_dir / "r2_alpha2.safetensors", unet_dir, seed=7, rank=2, alpha=2),
    }
    # alpha / rank = 8 applied by the loader must equal up-weights multiplied by 8 at scale 1.
    weights, alpha = read_lora(files["r2_alpha2"])
    scaled = {module: (down, up * 8) for module, (down, up) in weights.items()}
    files["r2_alpha2_up_x8"] = save_lora(lora_dir / "r2_alpha2_up_x8.safetensors", scaled, alpha=alpha)
    files["lcm"] = synthesize_tiny_lora(lora_dir / "lcm.safetensors", unet_dir, seed=2)
    return files


@pytest.fixture(scope="session")
def engine(tiny_sd15_dir, lora_files):
    from imagelab.diffusion.engine import DiffusionEngine
    from imagelab.diffusion.jobs import DiffusionSettings

    adapters = {name: path for name, path in lora_files.items() if name != "lcm"}
    settings = DiffusionSettings(tiny_sd15_dir, dtype="float32", adapters=adapters, lcm_adapter_path=lora_files["lcm"])
    return DiffusionEngine(settings)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a shared machine OpenMP spinning makes
    it up to 10x slower; restored afterwards so other test folders keep their setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
