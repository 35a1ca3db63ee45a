"""Loading real-world diffusers folders: SD 1.5's index names a safety checker that a fetched
folder may lack; the engine must still start."""

import json
import shutil

from imagelab.devices import DTYPES
from imagelab.diffusion.engine import load_pipeline


def test_index_naming_an_absent_safety_checker_still_loads(tiny_sd15_dir, tmp_path):
    folder = tmp_path / "sd15"
    shutil.copytree(tiny_sd15_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    pipe = load_pipeline(folder, "cpu", DTYPES["float32"])
    assert pipe.safety_checker is None and pipe.feature_extractor is None
