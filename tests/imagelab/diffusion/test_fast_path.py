"""The UNet fast path: the compiled-artefact cache key, background switch-over and dispatch."""

import dataclasses
import os
import threading

import pytest
import torch
from diffusers import UNet2DConditionModel
from peft.tuners.tuners_utils import BaseTunerLayer

from imagelab.diffusion import fast_path
from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.fast_path import UNetFastPath, compile_key, inductor_compile, plain_twin
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob, group_key

TINY_SIZE = dict(width=64, height=64)


def test_the_cache_key_changes_with_everything_that_invalidates_an_artefact():
    key = compile_key(torch.bfloat16, "cpu", (64,), freezing=True)
    assert key.dtype == "bfloat16" and key.torch_version == torch.__version__
    assert key.shapes == ((1, 64, 64), (2, 64, 64))
    assert key.digest() == compile_key(torch.bfloat16, "cpu", (64,), freezing=True).digest()
    variants = [
        compile_key(torch.float32, "cpu", (64,), freezing=True),
        compile_key(torch.bfloat16, "cpu", (64, 96), freezing=True),
        compile_key(torch.bfloat16, "cpu", (64,), freezing=False),
        dataclasses.replace(key, torch_version="0.0.0"),
        dataclasses.replace(key, cpu_flags=("avx2",)),
    ]
    assert len({key.digest(), *(v.digest() for v in variants)}) == 6
    assert key.cache_dir("/cache").as_posix() == f"/cache/{key.digest()}"


@pytest.fixture(autouse=True)
def compile_at_normal_priority(monkeypatch):
    """The compile thread is niced so serving keeps the cores; on a loaded test machine a niced
    thread can wait minutes, so these tests build at normal priority (one test checks nicing)."""
    monkeypatch.setattr(fast_path, "COMPILE_NICENESS", 0)


def test_the_compile_thread_runs_at_a_lower_priority():
    seen = []

    def niced():
        fast_path.lower_thread_priority(7)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=niced)
    thread.start()
    thread.join()
    assert seen == [7]  # setpriority sets the value (not an increment), for that thread only
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # this thread unchanged


@pytest.fixture
def unet(tiny_sd15_dir):
    return UNet2DConditionModel.from_pretrained(tiny_sd15_dir / "unet").eval()


def call(unet, side):
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((2, 4, side, side), generator=generator)
    context = torch.randn((2, 77, 32), generator=generator)
    with torch.inference_mode():
        return unet(sample, torch.tensor([500]), context, return_dict=False)[0]


def counting_compiler(built):
    """Stands in for inductor: the same function (the UNet's plain twin), its calls counted."""

    def compiler(function, freezing, cache_dir):
        built.append({"freezing": freezing, "cache_dir": cache_dir, "calls": 0})

        def compiled(*args, **kwargs):
            built[-1]["calls"] += 1
            return function(*args, **kwargs)

        return compiled

    return compiler


def test_compiled_calls_start_at_a_group_boundary_for_bucket_shapes_only(unet):
    eager_32 = call(unet, 32)
    built = []
    path = UNetFastPath(
        unet, "cpu", True, weights_change=True, bucket_px=(64,), vae_scale_factor=2, compiler=counting_compiler(built)
    )
    path._thread.join(600)
    assert path.state.compile == "built" and built[0]["freezing"] is False  # in-place LoRA swaps: no freezing
    warm_calls = built[0]["calls"]
    assert warm_calls == 2  # the build warmed both row counts of the bucket (1 and 2)
    call(unet, 32)  # built, but a group may be running: eager until the next group starts
    assert built[0]["calls"] == warm_calls and path.state.eager_calls == 1

    path.begin_group(plain=True)
    assert path.state.compile == "ready"
    # 64 px image (latent 32): the compiled bucket; channels_last rounds a little differently
    torch.testing.assert_close(call(unet, 32), eager_32, atol=1e-5, rtol=1e-5)
    assert built[0]["calls"] == warm_calls + 1
    call(unet, 16)  # 32 px: not a bucket
    assert (path.state.compiled_calls, path.state.eager_calls) == (1, 2)

    path.begin_group(plain=False)  # unfused or per-row LoRA layers: the graph does not hold them
    call(unet, 32)
    assert (path.state.compiled_calls, path.state.eager_calls) == (1, 3)
    assert path.describe()["buckets_px"] == (64,) and path.describe()["channels_last"] is True


def test_the_compiled_twin_shares_the_weights_so_a_fused_swap_reaches_it(tiny_sd15_dir, lora_files):
    """The graph is built from a plain twin of the UNet (PEFT layers replaced by their base
    layers, the same tensors): a fused style written into the weights in place after the build
    must come out of the compiled path exactly as out of the served UNet."""
    settings = DiffusionSettings(tiny_sd15_dir, dtype="float32", adapters={"monet": lora_files["monet"]})
    engine = DiffusionEngine(settings)
    built = []
    engine.fast_path = UNetFastPath(
        engine.pipe.unet, "cpu", True, True, (64,), engine.pipe.vae_scale_factor, compiler=counting_compiler(built)
    )
    engine.fast_path.wait(600)
    base_32 = call(engine.pipe.unet, 32)  # compiled twin, base weights (served: monet unfused)
    engine._activate_adapters(group_key(GenerationJob("x", style="monet", **TINY_SIZE)))
    engine.fast_path.plain = False  # the reference: the served UNet's own (eager) forward
    fused_eager = call(engine.pipe.unet, 32)
    engine.fast_path.plain = True
    fused_compiled = call(engine.pipe.unet, 32)
    assert built[0]["calls"] == 4  # two warm-up calls, the base call and this one
    torch.testing.assert_close(fused_compiled, fused_eager, atol=1e-6, rtol=1e-6)
    assert (fused_compiled - base_32).abs().max() > 1e-3  # the style is in the weights it used

    calls = built[0]["calls"]
    [result] = engine.generate([GenerationJob("a lighthouse", seed=3, steps=2, style="monet", **TINY_SIZE)])
    assert built[0]["calls"] > calls and result.images[0].size == (64, 64)  # the engine's groups use it


def test_the_plain_twin_has_no_peft_layers_and_its_own_hooks(engine):
    unet = engine.pipe.unet
    twin = plain_twin(unet)
    assert not any(isinstance(m, BaseTunerLayer) for m in twin.modules())
    assert any(isinstance(m, BaseTunerLayer) for m in unet.modules())
    assert {id(p) for p in twin.parameters()} <= {id(p) for p in unet.parameters()}
    block = next(m for m in twin.modules() if isinstance(m, torch.nn.Linear))
    assert (
        block._forward_hooks
        is not next(
            m for m in unet.modules() if isinstance(m, torch.nn.Linear) and m.weight is block.weight
        )._forward_hooks
    )


def test_a_failed_compile_leaves_the_eager_path_serving(unet):
    def compiler(function, freezing, cache_dir):
        raise RuntimeError("no compiler here")

    path = UNetFastPath(unet, "cpu", True, weights_change=False, bucket_px=(64,), vae_scale_factor=2, compiler=compiler)
    assert not path.wait(600)
    assert path.state.compile.startswith("failed: RuntimeError")
    call(unet, 32)
    assert path.state.eager_calls == 1


def test_the_engine_states_its_path(engine):
    described = engine.fast_path.describe()
    assert described["compile"] == "off" and described["dtype"] == "float32" and described["channels_last"]


@pytest.mark.slow
def test_the_inductor_compiled_tiny_unet_gives_the_eager_output_within_rounding(unet, tmp_path):
    """Really compiled (inductor, static shape, no freezing: about a minute cold on a loaded
    2-core machine, hence slow): the same UNet output as eager within float32 rounding."""
    unet = unet.to(memory_format=torch.channels_last)
    eager = call(unet, 32)
    compiled = inductor_compile(plain_twin(unet).forward, freezing=False, cache_dir=tmp_path)
    torch.testing.assert_close(call(compiled, 32), eager, atol=1e-4, rtol=1e-4)
