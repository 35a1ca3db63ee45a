"""The fast UNet path, chosen per machine (issue 15.1) and said in the log and `describe`.

dtype: fp16 on CUDA, bf16 where the CPU multiplies bf16 natively (AMX or AVX512-BF16), fp32
elsewhere (imagelab.devices.resolve_dtype); the UNet and VAE run channels_last (oneDNN's
preferred layout for convolutions). Optionally `torch.compile` (inductor) in a background
thread: the worker is ready at once on the eager path ("compiling in background, eager until
ready" in the log) and switches to the compiled one between groups once it is built
(`switch_over`, called by the engine before each group), so start-up never waits past
startupTimeout and one job never mixes the two paths. The compile thread runs at a low CPU
priority (nice, inherited by inductor's compile workers) so serving keeps the cores.

Why compiling was slow, and the cache: with freezing, inductor prepacks the weights as mkldnn
tensors, which its FX-graph cache cannot pickle ("Bypassing FX Graph Cache because 'mkldnn
tensors unpickleable'"), so every start compiled from scratch, once per UNet row count (static
shapes). Without freezing the FX-graph and AOTAutograd caches, kept on disk under a directory
keyed by what invalidates them (torch version, dtype, CPU flags, shape buckets, freezing; see
`CompileKey`), let a restart skip inductor's code generation and C++ builds; dynamo still
re-traces the Python, which is what a warm start costs. Freezing also could not see a fused
LoRA swap (fuse.py writes the weights in place), so it is only allowed when the weights never
change, and it is off by default (`FREEZE_FIXED_WEIGHTS`; loadtests/bench/sd15_fast_path.py).

What is compiled: a plain twin of the UNet (`plain_twin`: PEFT LoRA layers replaced by their
base layers, the same weight tensors), so the graph computes what a fused group computes, sees
each in-place swap, and no change the engine makes to the served UNet's PEFT flags or hooks
fails a dynamo guard. Groups with unfused or per-row LoRA layers run eager (`begin_group`), and
a guard that fails anyway runs eager too (stance "eager_on_recompile"): the serving thread never
recompiles.

Shapes: requests come in any multiple of 8 from 64 to 1024 px; compiling each would be a
recompile storm, so the compiled path is used for the bucket sizes it was built for
(`SHAPE_BUCKETS_PX`, square, UNet rows 1 and 2) and the eager path serves the rest.
"""

import copy
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
# Freezing (weights as graph constants, prepacked for oneDNN) when the weights never change:
# off: its graphs are never cached, so every restart pays the whole compile (loadtests/bench/
# sd15_fast_path.py measures whether its speed-up is worth that).
FREEZE_FIXED_WEIGHTS = False
COMPILE_NICENESS = 15  # the compile thread's nice value (serving threads keep 0)
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
    compile: str  # "off", "compiling", "built" (switching at the next group), "ready", "failed: ..."
    freezing: bool = False
    compile_s: float | None = None
    cache_dir: str | None = None
    buckets_px: tuple[int, ...] = ()
    compiled_calls: int = 0
    eager_calls: int = 0


def inductor_compile(function, freezing: bool, cache_dir: Path, dynamic: bool = False):
    """torch.compile with inductor, its FX-graph and AOTAutograd caches under `cache_dir` (a
    restart hits them unless `freezing`: frozen graphs hold mkldnn tensors, never cached)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)  # read when inductor first caches
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.freezing = freezing
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return torch.compile(function, backend="inductor", dynamic=dynamic)


def lower_thread_priority(niceness: int | None = None) -> None:
    """Make the calling thread (and the processes and threads it starts) yield the CPU to the
    serving threads; Linux keeps a nice value per thread."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPILE_NICENESS if niceness is None else niceness)
    except (AttributeError, OSError):  # not Linux, or not allowed: compile at normal priority
        logger.warning("could not lower the compile thread's priority")


def plain_twin(module: torch.nn.Module) -> torch.nn.Module:
    """A structural copy of `module` that shares every parameter and buffer tensor, with each
    PEFT LoRA layer replaced by (a twin of) its base layer: what the fused path computes, since
    fuse.py writes the fused weights into those base layers in place. Its own module dicts and
    hook dicts, so what the engine does to the served UNet's PEFT flags and hooks between and
    during groups never changes what is compiled (no dynamo guard fails, no recompile)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(module, BaseTunerLayer):
        return plain_twin(module.get_base_layer())
    twin = copy.copy(module)  # shares _parameters and _buffers (the same tensors)
    twin.__dict__.pop("forward", None)  # an instance-level wrapper (ours, batching.py's) stays behind
    for name, value in module.__dict__.items():
        if name.endswith("hooks") and isinstance(value, dict):
            twin.__dict__[name] = type(value)(value)
    twin._modules = {name: None if child is None else plain_twin(child) for name, child in module._modules.items()}
    return twin


class UNetFastPath:
    """Puts the UNet channels_last and, with `compile_unet`, builds a compiled twin in a
    background thread; after `switch_over` each UNet call of a compiled shape goes through it
    (the dispatch is the UNet's own `forward`, so the pipeline and batching.py need not know)."""

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
        self.compiled = None  # set by the compile thread when built and warmed
        self.active = None  # what the dispatch uses: `compiled` once switched over
        self.plain = True  # the UNet's layers are what was compiled (begin_group)
        freezing = FREEZE_FIXED_WEIGHTS and not weights_change
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
            self._twin = plain_twin(unet)
            unet.forward = self._dispatch
            self._thread = threading.Thread(target=self._build, args=(compiler,), name="unet-compile", daemon=True)
            self._thread.start()
            logger.info(
                "UNet path: compiling in background, eager until ready (buckets %s px, cache %s): %s",
                self.state.buckets_px,
                self.state.cache_dir,
                self.describe(),
            )
        else:
            logger.info("UNet path: eager (compile_unet off): %s", self.describe())

    def _build(self, compiler) -> None:
        lower_thread_priority()
        started = time.perf_counter()
        try:
            compiled = compiler(self._twin.forward, self.state.freezing, self.key.cache_dir())
            config = self.unet.config
            # no_grad, as the pipeline calls the UNet (inference_mode would make tensors whose
            # guards the served calls fail: those would then run eager).
            with torch.no_grad():
                for rows, height, width in self.key.shapes:  # warm every bucket before switching
                    sample = torch.zeros((rows, config.in_channels, height, width), dtype=self.unet.dtype)
                    sample = sample.to(self.device, memory_format=torch.channels_last)
                    context = torch.zeros((rows, 77, config.cross_attention_dim), dtype=self.unet.dtype)
                    timestep = torch.tensor([500], device=self.device)
                    compiled(sample, timestep, context.to(self.device), return_dict=False)
            self.state.compile_s = round(time.perf_counter() - started, 1)
            self.compiled = compiled  # one reference assignment: the next switch_over takes it
            self.state.compile = "built"
            logger.info("UNet path: compiled in %.0f s; the next group runs compiled", self.state.compile_s)
        except Exception as error:  # the eager path keeps serving
            self.state.compile = f"failed: {type(error).__name__}: {str(error)[:200]}"
            logger.exception("UNet compile failed; serving on the eager path")

    def switch_over(self) -> bool:
        """Take the compiled UNet if it has been built; True once compiled."""
        if self.active is None and self.compiled is not None:
            self.active = self.compiled
            self.state.compile = "ready"
            logger.info("UNet path: switched over to the compiled UNet: %s", self.describe())
        return self.active is not None

    def begin_group(self, plain: bool) -> None:
        """Before each group (engine.py): switch over if built, and use the compiled UNet for
        this group only if its layers are `plain` (LoRA fused into the weights or absent).
        Unfused PEFT layers or per-row LoRA hooks would make dynamo recompile (minutes on the
        serving thread); those groups run eager."""
        self.switch_over()
        self.plain = plain

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the background compile ended (tests, benchmarks), then switch over; True
        if compiled."""
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout_s)
        return self.switch_over()

    def _dispatch(self, sample, timestep, encoder_hidden_states, *args, **kwargs):
        active = self.active
        shape = (sample.shape[0], *sample.shape[2:])
        if active is not None and self.plain and not args and shape in self.key.shapes:
            self.state.compiled_calls += 1
            with torch.compiler.set_stance("eager_on_recompile"):  # never minutes on the serving thread
                return active(sample, timestep, encoder_hidden_states, **kwargs)
        self.state.eager_calls += 1
        return self._eager_forward(sample, timestep, encoder_hidden_states, *args, **kwargs)

    def describe(self) -> dict:
        return asdict(self.state)
