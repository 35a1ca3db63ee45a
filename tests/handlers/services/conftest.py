"""Services set up without a server, from tiny weights synthesised under tmp (never weights/)."""

from pathlib import Path

import pytest

from handlers.common.service import ServiceContext
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion import synthesize_tiny_lora, synthesize_tiny_sd15


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_sd")
    synthesize_tiny_sd15(root / "sd15")
    for seed, name in enumerate(("monet", "animals", "lcm")):
        synthesize_tiny_lora(root / f"{name}.safetensors", root / "sd15" / "unet", seed=seed)
    return root


@pytest.fixture(scope="session")
def service(tiny):
    """service(Txt2ImgService or AnimalsService, **handler settings) -> a set-up service."""

    def make(cls, tiny: Path = tiny, **settings):
        adapter = "monet" if cls is Txt2ImgService else "animals"
        base = {
            "base_model": str(tiny / "sd15"),
            "lcm_adapter": str(tiny / "lcm.safetensors"),
            "dtype": "float32",
            "adapters": {adapter: str(tiny / f"{adapter}.safetensors")},
        }
        instance = cls()
        instance.setup(ServiceContext(cls.name, "1.0", tiny, {**base, **settings}, "cpu"))
        return instance

    return make
