"""Where this checkout keeps things: the one home of the repository's own folders, for the
weights, archives and operations rooms and for training (not for the archived handler code,
which runs from a TorchServe model folder and never looks here)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
WEIGHTS_DIR = REPO_ROOT / "weights"
MODEL_STORE = REPO_ROOT / "model_store"
SERVE_WORKDIR = REPO_ROOT / "var" / "serve"
ADAPTERS_DIR = REPO_ROOT / "adapters"  # LoRA styles on demand: adapters/{model}/{name}.safetensors
CONFIG_PROPERTIES = REPO_ROOT / "config.properties"
