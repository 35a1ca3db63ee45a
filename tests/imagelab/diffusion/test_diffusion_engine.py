"""DiffusionEngine on the tiny SD 1.5: golden pixels, batching, seeds, progress, prompt limits."""

import io

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from imagelab.deadline import Deadline
from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import (
    DiffusionSettings,
    GenerationJob,
    NonFiniteImageError,
    PromptTooLongError,
)


def job(**overrides) -> GenerationJob:
    fields = dict(prompt="a photo of a lion", seed=0, width=64, height=64, steps=4)
    return GenerationJob(**{**fields, **overrides})


def pixels(result, index=0) -> np.ndarray:
    return np.asarray(result.images[index]).astype(np.int16)  # (H, W, 3)


# Bottom-right 3x3 of the blue channel (diffusers' image[0, -3:, -3:, -1]), uint8.
GOLDEN = [
    (dict(), [[141, 149, 119], [153, 167, 141], [132, 128, 141]]),
    (dict(style="monet", scheduler="euler_a"), [[109, 130, 109], [119, 147, 118], [116, 140, 139]]),
    (dict(style="monet", scheduler="lcm", guidance_scale=1.0), [[115, 133, 114], [129, 145, 128], [128, 134, 141]]),
    (dict(scheduler="ddim", negative_prompt="blurry, ugly"), [[146, 104, 88], [127, 163, 134], [132, 143, 155]]),
]


@pytest.mark.parametrize("overrides, expected", GOLDEN, ids=["dpmpp", "euler_a_monet", "lcm_monet", "ddim_neg"])
def test_golden_slice(engine, overrides, expected):
    result = engine.generate([job(**overrides)])[0]
    image = pixels(result)
    assert image.shape == (64, 64, 3)
    # One uint8 level of slack for CPUs whose kernels round differently.
    np.testing.assert_allclose(image[-3:, -3:, -1], expected, atol=1, rtol=0)


def test_job_in_a_batch_equals_job_alone(engine):
    target = job(prompt="a photo of a tiger", negative_prompt="blurry", style="monet", seed=5, scheduler="euler_a")
    alone = engine.generate([target])[0]
    neighbours = [
        job(prompt="a cat", style="monet", seed=1, scheduler="euler_a"),
        job(prompt="a dog at night", negative_prompt="ugly", style="monet", seed=9, num_images=2, scheduler="euler_a"),
    ]
    batched = engine.generate([neighbours[0], target, neighbours[1]])
    assert batched[1].batch_images == 4  # really one pipeline call
    np.testing.assert_array_equal(pixels(batched[1]), pixels(alone))
    assert not np.array_equal(pixels(batched[0]), pixels(batched[1]))


def test_batched_latents_are_bit_identical(engine, monkeypatch):
    """Stricter than pixels: CPU kernels that vary with batch size move latents by ~1e-6,
    which rarely flips a uint8 pixel; the latents handed to the VAE must match exactly."""
    decoded = []
    decode = AutoencoderKL.decode

    def recording_decode(self, z, *args, **kwargs):
        decoded.append(z.clone())
        return decode(self, z, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", recording_decode)
    target = job(prompt="a photo of a tiger", seed=5, scheduler="euler_a", guidance_scale=5.0)
    engine.generate([target])
    engine.generate([job(prompt="a cat", seed=1, scheduler="euler_a", guidance_scale=5.0, num_images=2), target])
    alone, in_batch = decoded[0], decoded[3]
    assert torch.equal(alone, in_batch), (alone - in_batch).abs().max()


def test_mixed_jobs_run_in_separate_groups_and_keep_order(engine):
    jobs = [job(seed=1), job(seed=2, steps=3), job(seed=3, style="monet"), job(seed=4)]
    results = engine.generate(jobs)
    assert [r.seeds for r in results] == [[1], [2], [3], [4]]
    assert [r.batch_images for r in results] == [2, 1, 1, 2]
    np.testing.assert_array_equal(pixels(results[3]), pixels(engine.generate([jobs[3]])[0]))


def test_num_images_uses_consecutive_seeds(engine):
    result = engine.generate([job(seed=10, num_images=2)])[0]
    assert result.seeds == [10, 11]
    second_alone = engine.generate([job(seed=11)])[0]
    np.testing.assert_array_equal(pixels(result, 1), pixels(second_alone))
    assert not np.array_equal(pixels(result, 0), pixels(result, 1))


def test_on_step_is_called_per_step_for_every_job_of_the_group(engine):
    calls = []
    engine.generate([job(seed=1), job(seed=2, steps=3), job(seed=3)], on_step=lambda *args: calls.append(args))
    group_a = [(j, step, 4) for step in range(1, 5) for j in (0, 2)]
    group_b = [(1, step, 3) for step in range(1, 4)]
    assert calls == group_a + group_b


def test_results_report_timings_and_no_safety_checker(engine):
    result = engine.generate([job()])[0]
    assert set(result.timings_ms) == {"adapter_swap", "text_encode", "denoise", "decode", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["denoise"] > 0
    assert result.nsfw is None and not engine.has_safety_checker
    assert engine.native_size_px == 64
    assert result.vae_fp32_retries == 0


def test_count_tokens_includes_bos_and_eos(engine):
    assert engine.count_tokens("") == 2
    assert engine.count_tokens("lion") == 3  # a word of the tiny vocabulary
    long_prompt = " ".join(["lion"] * 80)
    assert engine.count_tokens(long_prompt) == 82
    assert engine.max_prompt_tokens == 77


def test_prompt_over_77_tokens_is_rejected_with_its_count(engine):
    with pytest.raises(PromptTooLongError) as caught:
        engine.generate([job(), job(negative_prompt=" ".join(["lion"] * 80))])
    assert caught.value.token_count == 82 and caught.value.field_name == "negative_prompt"
    assert "82" in str(caught.value) and "77" in str(caught.value)
    assert "in job 1 of 2" in caught.value.__notes__


def test_unknown_style_and_scheduler_are_rejected(engine):
    with pytest.raises(ValueError, match="style must be one of"):
        engine.validate_job(job(style="picasso"))
    assert engine.schedulers == ("ddim", "dpmpp", "euler_a", "lcm")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        GenerationJob("x", scheduler="pndm")


@pytest.mark.parametrize(
    "field, value",
    [("steps", 0), ("style_scale", 2.5), ("width", 65), ("height", 4096), ("num_images", 0), ("seed", -1)],
)
def test_job_fields_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        job(**{field: value})


def test_settings_are_validated(tmp_path):
    with pytest.raises(ValueError, match="device"):
        DiffusionSettings(tmp_path, device="tpu")
    with pytest.raises(ValueError, match="float16"):
        DiffusionSettings(tmp_path, device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="adapter name"):
        DiffusionSettings(tmp_path, adapters={"none": tmp_path / "x.safetensors"})
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        DiffusionEngine(DiffusionSettings(tmp_path, dtype="float32"))


def cpuinfo(flags: str) -> str:
    """Two processors of /proc/cpuinfo as Linux writes it; `flags` on each."""
    processor = "processor\t: {n}\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 {flags}\nbugs\t\t: spectre_v1\n\n"
    return "".join(processor.format(n=n, flags=flags) for n in range(2))


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("avx512f avx512bw avx512_vnni", torch.float32),  # plain AVX-512: oneDNN emulates bf16, slowly
        ("avx512f avx512_bf16", torch.bfloat16),
        ("amx_tile amx_bf16", torch.bfloat16),
        ("", torch.float32),
        (None, torch.float32),  # no /proc/cpuinfo (not Linux)
    ],
)
def test_auto_dtype_reads_the_cpu_flags(tmp_path, monkeypatch, flags, expected):
    import builtins

    import imagelab.devices

    def fake_open(path, *args, **kwargs):
        if str(path) != "/proc/cpuinfo":
            return builtins.open(path, *args, **kwargs)
        if flags is None:
            raise FileNotFoundError(path)
        return io.StringIO(cpuinfo(flags))

    monkeypatch.setattr(imagelab.devices, "open", fake_open, raising=False)  # the module's seam
    assert DiffusionSettings(tmp_path).torch_dtype == expected
    assert DiffusionSettings(tmp_path, device="cuda").torch_dtype == torch.float16  # CUDA: always fp16
    assert DiffusionSettings(tmp_path, dtype="float32").torch_dtype == torch.float32  # explicit wins
    assert DiffusionSettings(tmp_path, dtype="bfloat16").torch_dtype == torch.bfloat16


def test_nan_decode_is_retried_in_float32(tiny_sd15_dir, monkeypatch):
    """A low-precision VAE that overflows must not yield a black image: decode again in float32."""
    engine = DiffusionEngine(DiffusionSettings(tiny_sd15_dir, dtype="bfloat16"))
    decode = AutoencoderKL.decode

    def overflowing_decode(self, z, *args, **kwargs):
        if z.dtype == torch.bfloat16:
            return (torch.full((z.shape[0], 3, 64, 64), float("nan"), dtype=z.dtype),)
        return decode(self, z, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", overflowing_decode)
    result = engine.generate([job(num_images=2)])[0]
    assert result.vae_fp32_retries == 2 and engine.decoders.vae_fp32_retries == 2
    assert all(pixels(result, i).std() > 5 for i in range(2))  # a real picture, not black

    engine.decoders.vae_fp32 = None
    monkeypatch.setattr(AutoencoderKL, "decode", lambda self, z, *a, **k: (torch.full_like(z, float("nan")),))
    with pytest.raises(NonFiniteImageError):
        engine.generate([job()])


# ---------------------------------------------------------------- failures stay where they happen


class FakeClock:
    """A monotonic clock the test moves by hand: budgets run out exactly where it says."""

    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_budget_spent_in_a_later_group_keeps_the_finished_groups_results(engine):
    clock = FakeClock()
    deadline = Deadline.after(10.0, clock)
    jobs = [job(seed=1), job(seed=2, steps=3), job(seed=3), job(seed=4, style="monet")]

    def on_step(job_index, step, of):
        if job_index == 1:  # the second group's first step: its time runs out
            clock.now_s = 11.0

    outcomes = engine.generate_each(jobs, on_step, deadline)
    assert [type(o).__name__ for o in outcomes] == [
        "GenerationResult",
        "BudgetSpent",
        "GenerationResult",
        "BudgetSpent",
    ]
    assert outcomes[1].started and outcomes[1].stage == "step 2 of 3"
    assert not outcomes[3].started  # never began: the server answers 503, not 504
    assert outcomes[0].batch_images == 2
    alone = engine.generate([jobs[2]])[0]
    np.testing.assert_array_equal(pixels(outcomes[2]), pixels(alone))


def test_budget_is_checked_before_each_decode(engine, monkeypatch):
    clock = FakeClock()
    decode_row = engine._decode_row

    def slow_decode_row(*args):
        clock.now_s += 6.0  # each decode takes 6 of the 10 s
        return decode_row(*args)

    monkeypatch.setattr(engine, "_decode_row", slow_decode_row)
    outcomes = engine.generate_each([job(seed=1), job(seed=2), job(seed=3)], None, Deadline.after(10.0, clock))
    assert [type(o).__name__ for o in outcomes] == ["GenerationResult", "GenerationResult", "BudgetSpent"]
    assert outcomes[2].started and outcomes[2].stage == "decoding"
    assert [o.batch_images for o in outcomes[:2]] == [3, 3]  # one pipeline call for all three


def test_an_exception_in_one_group_fails_only_that_group(engine, monkeypatch):
    encode_prompts = engine._encode_prompts

    def failing_encode(jobs, guided, *job_adapters):
        if any("boom" in j.prompt for j in jobs):
            raise RuntimeError("injected text encoder failure")
        return encode_prompts(jobs, guided, *job_adapters)

    monkeypatch.setattr(engine, "_encode_prompts", failing_encode)
    jobs = [job(seed=1), job(prompt="boom", seed=2, steps=3), job(seed=3, steps=3)]
    outcomes = engine.generate_each(jobs)
    assert isinstance(outcomes[0].images[0], Image.Image)
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])  # one group: both its jobs
    with pytest.raises(RuntimeError, match="injected"):
        engine.generate(jobs)  # the strict form still raises


def test_a_failed_decode_fails_only_that_job(engine, monkeypatch):
    decode_safely = engine.decoders.decode_safely
    calls = []

    def one_bad_decode(latents, decoder="full"):
        calls.append(1)
        if len(calls) == 2:
            raise NonFiniteImageError("injected NaN in the second image")
        return decode_safely(latents, decoder)

    monkeypatch.setattr(engine.decoders, "decode_safely", one_bad_decode)
    outcomes = engine.generate_each([job(seed=1), job(seed=2), job(seed=3)])
    assert isinstance(outcomes[1], NonFiniteImageError)
    assert [o.seeds for o in (outcomes[0], outcomes[2])] == [[1], [3]]


def test_an_invalid_job_fails_alone(engine):
    outcomes = engine.generate_each([job(seed=1), job(style="picasso"), job(seed=3)])
    assert isinstance(outcomes[1], ValueError) and "in job 1 of 3" in outcomes[1].__notes__
    assert [o.seeds for o in (outcomes[0], outcomes[2])] == [[1], [3]]
    assert outcomes[0].batch_images == 2
