"""The fast UNet path, chosen per machine (issue 15.1) and said in the log and `describe`.

dtype: fp16 on CUDA, bf16 where the CPU multiplies bf16 natively (AMX or AVX512-BF16), fp32
elsewhere (imagelab.devices.resolve_dtype); the UNet and VAE run channels_last (oneDNN's
preferred layout for convolutions). Optionally `torch.compile` (inductor) in a background
thread: the worker is ready at once on the eager path and switches to the compiled one between
groups when it is built, so start-up never waits minutes past startupTimeout. Inductor's
compiled artefacts are cached on disk under a directory keyed by what invalidates them
(torch version, dtype, CPU flags, shape buckets), so a restart loads instead of recompiling.

Freezing (weights folded into the graph as constants, which lets oneDNN prepack them) is used
only when the UNet never changes its weights: fused LoRA swaps (fuse.py) write the weights in
place, which a frozen graph would not see.

Shapes: requests come in any multiple of 8 from 64 to 1024 px; compiling each would be a
recompile storm, so the compiled path is used for the bucket sizes it was built for
(`SHAPE_BUCKETS_PX`, square, UNet rows 1 and 2) and the eager path serves the rest.
"""

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SHAPE_BUCKETS_PX = (512,)  # SD 1.5's native size; the tiny model uses its own native size
UNET_ROWS = (1, 2)  # unguided (LCM) and guided (classifier-free guidance) per job
CACHE_ROOT = Path(os.environ.get("IMAGELAB_CACHE", Path.home() / ".cache" / "imagelab")) / "inductor"


def cpu_flags() -> tuple[str, ...]:
    """The CPU's ISA flags that change generated kernels (sorted, the relevant subset)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        flags = []
    relevant = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma", "avx512_fp16")
    return tuple(sorted(f for f in flags if f in relevant))


@dataclass(frozen=True)
class CompileKey:
    """What a compiled artefact depends on beyond the graph itself."""

    torch_version: str
    dtype: str
    device: str
    cpu_flags: tuple[str, ...]
    shapes: tuple[tuple[int, int, int], ...]  # (rows, latent H, latent W) per bucket
    freezing: bool

    def digest(self) -> str:
        document = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def cache_dir(self, root: Path = CACHE_ROOT) -> Path:
        return Path(root) / self.digest()


def compile_key(dtype: torch.dtype, device: str, latent_sides: tuple[int, ...], freezing: bool) -> CompileKey:
    shapes = tuple((rows, side, side) for side in latent_sides for rows in UNET_ROWS)
    return CompileKey(
        torch_version=torch.__version__,
        dtype=str(dtype).removeprefix("torch."),
        device=device.split(":")[0],
        cpu_flags=cpu_flags() if device == "cpu" else (),
        shapes=shapes,
        freezing=freezing,
    )


@dataclass
class FastPathState:
    """What `describe` and the log say about the UNet path."""

    dtype: str
    channels_last: bool
    compile: str  # "off", "compiling", "ready" or "failed: ..."
    freezing: bool = False
    compile_s: float | None = None
    cache_dir: str | None = None
    buckets_px: tuple[int, ...] = ()
    compiled_calls: int = 0
    eager_calls: int = 0


def inductor_compile(function, freezing: bool, cache_dir: Path):
    """torch.compile with inductor, its FX-graph cache under `cache_dir`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)  # read when inductor first caches
    import torch._inductor.config as inductor_config

    inductor_config.freezing = freezing
    inductor_config.fx_graph_cache = True
    return torch.compile(function, backend="inductor", dynamic=False)


class UNetFastPath:
    """Puts the UNet channels_last and, with `compile_unet`, builds a compiled twin in a
    background thread; from then on each UNet call of a compiled shape goes through it (the
    dispatch is the UNet's own `forward`, so the pipeline and batching.py need not know)."""

    def __init__(
        self,
        unet: torch.nn.Module,
        device: str,
        compile_unet: bool,
        weights_change: bool,
        bucket_px: tuple[int, ...],
        vae_scale_factor: int,
        compiler=inductor_compile,
    ):
        self.unet = unet.to(memory_format=torch.channels_last)
        self.device = device
        self.compiled = None
        freezing = not weights_change
        latent_sides = tuple(sorted({px // vae_scale_factor for px in bucket_px}))
        self.key = compile_key(unet.dtype, device, latent_sides, freezing)
        self.state = FastPathState(
            dtype=str(unet.dtype).removeprefix("torch."),
            channels_last=True,
            compile="compiling" if compile_unet else "off",
            freezing=freezing if compile_unet else False,
        )
        if compile_unet:
            self.state.cache_dir = str(self.key.cache_dir())
            self.state.buckets_px = tuple(side * vae_scale_factor for side in latent_sides)
            self._eager_forward = unet.forward  # the class's bound method
            unet.forward = self._dispatch
            self._thread = threading.Thread(target=self._build, args=(compiler,), name="unet-compile", daemon=True)
            self._thread.start()
        logger.info("UNet path: %s", self.describe())

    def _build(self, compiler) -> None:
        started = time.perf_counter()
        try:
            compiled = compiler(self._eager_forward, self.state.freezing, self.key.cache_dir())
            config = self.unet.config
            with torch.inference_mode():
                for rows, height, width in self.key.shapes:  # warm every bucket before switching
                    sample = torch.zeros((rows, config.in_channels, height, width), dtype=self.unet.dtype)
                    context = torch.zeros((rows, 77, config.cross_attention_dim), dtype=self.unet.dtype)
                    timestep = torch.tensor([500], device=self.device)
                    compiled(sample.to(self.device), timestep, context.to(self.device), return_dict=False)
            self.state.compile_s = round(time.perf_counter() - started, 1)
            self.compiled = compiled  # one reference assignment: the next UNet call may use it
            self.state.compile = "ready"
            logger.info("UNet path: compiled in %.0f s, switched over: %s", self.state.compile_s, self.describe())
        except Exception as error:  # the eager path keeps serving
            self.state.compile = f"failed: {type(error).__name__}: {str(error)[:200]}"
            logger.exception("UNet compile failed; serving on the eager path")

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the background compile ended (tests, benchmarks); True if it is ready."""
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout_s)
        return self.compiled is not None

    def _dispatch(self, sample, timestep, encoder_hidden_states, *args, **kwargs):
        compiled = self.compiled
        if compiled is not None and not args and tuple(sample.shape[:1]) + tuple(sample.shape[2:]) in self.key.shapes:
            self.state.compiled_calls += 1
            return compiled(sample, timestep, encoder_hidden_states, **kwargs)
        self.state.eager_calls += 1
        return self._eager_forward(sample, timestep, encoder_hidden_states, *args, **kwargs)

    def describe(self) -> dict:
        return asdict(self.state)
