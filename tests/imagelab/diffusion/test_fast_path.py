"""The UNet fast path: the compiled-artefact cache key, background switch-over and dispatch."""

import dataclasses

import pytest
import torch
from diffusers import UNet2DConditionModel

from imagelab.diffusion.fast_path import UNetFastPath, compile_key


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


@pytest.fixture
def unet(tiny_sd15_dir):
    return UNet2DConditionModel.from_pretrained(tiny_sd15_dir / "unet").eval()


def call(unet, side):
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((2, 4, side, side), generator=generator)
    context = torch.randn((2, 77, 32), generator=generator)
    with torch.inference_mode():
        return unet(sample, torch.tensor([500]), context, return_dict=False)[0]


def test_calls_of_a_compiled_bucket_switch_over_and_the_rest_stay_eager(unet):
    eager_32 = call(unet, 32)
    built = []

    def compiler(function, freezing, cache_dir):  # stands in for inductor: same function
        built.append((freezing, cache_dir))
        return function

    path = UNetFastPath(unet, "cpu", True, weights_change=True, bucket_px=(64,), vae_scale_factor=2, compiler=compiler)
    assert path.wait(60) and path.state.compile == "ready"
    assert built[0][0] is False  # adapters swap weights in place: no freezing
    # 64 px image: the compiled bucket; channels_last rounds a little differently than contiguous
    torch.testing.assert_close(call(unet, 32), eager_32, atol=1e-5, rtol=1e-5)
    call(unet, 16)  # 32 px: not a bucket
    assert (path.state.compiled_calls, path.state.eager_calls) == (1, 1)
    assert path.describe()["buckets_px"] == (64,) and path.describe()["channels_last"] is True


def test_a_failed_compile_leaves_the_eager_path_serving(unet):
    def compiler(function, freezing, cache_dir):
        raise RuntimeError("no compiler here")

    path = UNetFastPath(unet, "cpu", True, weights_change=False, bucket_px=(64,), vae_scale_factor=2, compiler=compiler)
    assert not path.wait(60)
    assert path.state.compile.startswith("failed: RuntimeError")
    call(unet, 32)
    assert path.state.eager_calls == 1


def test_the_engine_states_its_path(engine):
    described = engine.fast_path.describe()
    assert described["compile"] == "off" and described["dtype"] == "float32" and described["channels_last"]
