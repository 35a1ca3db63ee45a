"""What a load test sends, read once from LOADTEST_* environment variables.

One profile serves both runs: LOADTEST_PROFILE=smoke is seconds-long on the tiny offline
weights (small images, 2 steps); LOADTEST_PROFILE=real (the default) is what a user of the
real models sends. Any single LOADTEST_* variable below overrides its profile's value.

    LOADTEST_KEY / LOADTEST_KEY_FILE     inference token, or TorchServe's key_file.json
    LOADTEST_MODELS                      capabilities to load, e.g. fast_style,txt2img
    LOADTEST_WEIGHTS                     the mix, e.g. fast_style=8,neural_style=1,txt2img=2,animals=2
    LOADTEST_WAIT_S                      think time between a user's requests, "min,max"
    LOADTEST_FAST_SIDES_PX               fast_style photo sizes (longest side), e.g. 256,512,1024
    LOADTEST_NEURAL_SIDE_PX, _STEPS      neural_style max_side_px and optimisation steps
    LOADTEST_DIFFUSION_SIZES_PX          txt2img/animals sizes, e.g. 512x512,512x768
    LOADTEST_DIFFUSION_STEPS             steps of the default (dpmpp) scheduler
    LOADTEST_LCM_STEPS, _LCM_FRACTION    the LCM fast mode and the share of requests using it
    LOADTEST_{FAST,NEURAL,DIFFUSION}_TIMEOUT_S   client timeouts per request
    LOADTEST_SEED                        makes every user's request sequence reproducible
"""

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

# locust imports this folder's files as top-level modules, so repo_paths may not be importable here.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KEY_FILE = REPO_ROOT / "var" / "serve" / "key_file.json"
CAPABILITIES = ("fast_style", "neural_style", "txt2img", "animals")


@dataclass(frozen=True)
class LoadProfile:
    models: tuple = CAPABILITIES
    weights: tuple = (("fast_style", 8), ("neural_style", 1), ("txt2img", 2), ("animals", 2))
    wait_s: tuple = (0.5, 2.0)
    fast_sides_px: tuple = (256, 512, 1024)
    neural_side_px: int = 256
    neural_steps: int = 20
    diffusion_sizes_px: tuple = ((512, 512), (512, 768))
    diffusion_steps: int = 20
    lcm_steps: int = 4
    lcm_fraction: float = 0.5
    # Over the archives' responseTimeout (60 s, 300 s, 600 s) so that the server, not the
    # client, decides when a request has taken too long, plus room for queueing.
    fast_timeout_s: float = 90.0
    neural_timeout_s: float = 420.0
    diffusion_timeout_s: float = 900.0
    seed: int = 0

    def __post_init__(self):
        unknown = sorted(set(self.models) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"LOADTEST_MODELS: unknown {unknown}; known: {list(CAPABILITIES)}")
        if not self.models:
            raise ValueError("LOADTEST_MODELS: name at least one capability")
        if not 0 <= self.wait_s[0] <= self.wait_s[1]:
            raise ValueError(f"LOADTEST_WAIT_S must be 'min,max' with 0 <= min <= max, got {self.wait_s}")
        if not 0.0 <= self.lcm_fraction <= 1.0:
            raise ValueError(f"LOADTEST_LCM_FRACTION must lie in [0, 1], got {self.lcm_fraction}")
        for width, height in self.diffusion_sizes_px:
            if width % 8 or height % 8 or min(width, height) < 64:
                raise ValueError(f"LOADTEST_DIFFUSION_SIZES_PX: {width}x{height} must be multiples of 8, >= 64")
        if self.neural_steps < 1 or self.diffusion_steps < 1 or self.lcm_steps < 1:
            raise ValueError("step counts must be at least 1")

    def weight_of(self, model: str) -> int:
        """0 for a capability left out of LOADTEST_MODELS, so locust spawns none of its users."""
        return dict(self.weights).get(model, 1) if model in self.models else 0


# Seconds on the tiny weights: small photos, 2 steps, no think time.
SMOKE = LoadProfile(
    weights=tuple((m, 1) for m in CAPABILITIES),
    wait_s=(0.0, 0.2),
    fast_sides_px=(64, 96),
    neural_side_px=64,
    neural_steps=2,
    diffusion_sizes_px=((64, 64), (64, 96)),
    diffusion_steps=2,
    lcm_steps=2,
)
PROFILES = {"real": LoadProfile(), "smoke": SMOKE}


def _ints(text: str) -> tuple:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _sizes(text: str) -> tuple:
    """ "512x512,512x768" or "512" -> ((512, 512), (512, 768))."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        width, _, height = part.partition("x")
        sizes.append((int(width), int(height or width)))
    return tuple(sizes)


def _weights(text: str) -> tuple:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        pairs.append((name.strip(), int(value)))
    return tuple(pairs)


_PARSERS = {
    "models": lambda t: tuple(p.strip() for p in t.split(",") if p.strip()),
    "weights": _weights,
    "wait_s": lambda t: tuple(float(p) for p in t.split(",")),
    "fast_sides_px": _ints,
    "diffusion_sizes_px": _sizes,
}


def profile_from_env(environ=os.environ) -> LoadProfile:
    name = environ.get("LOADTEST_PROFILE", "real")
    if name not in PROFILES:
        raise ValueError(f"LOADTEST_PROFILE must be one of {sorted(PROFILES)}, got {name!r}")
    base = PROFILES[name]
    changes = {}
    for field in fields(LoadProfile):
        text = environ.get(f"LOADTEST_{field.name.upper()}")
        if text is None:
            continue
        parser = _PARSERS.get(field.name) or type(getattr(base, field.name))
        try:
            changes[field.name] = parser(text)
        except ValueError as error:
            raise ValueError(f"LOADTEST_{field.name.upper()}={text!r}: {error}") from None
    return replace(base, **changes)


def inference_key(environ=os.environ) -> str:
    """LOADTEST_KEY, else the inference key of LOADTEST_KEY_FILE (TorchServe's key_file.json).
    TorchServe renews its keys every 60 minutes, so users call this again after a 401."""
    import json

    if environ.get("LOADTEST_KEY"):
        return environ["LOADTEST_KEY"]
    path = Path(environ.get("LOADTEST_KEY_FILE") or DEFAULT_KEY_FILE)
    try:
        return json.loads(path.read_text())["inference"]["key"]
    except FileNotFoundError:
        raise SystemExit(
            f"no key file at {path}: start the server (make serve) or set LOADTEST_KEY_FILE / LOADTEST_KEY"
        ) from None
