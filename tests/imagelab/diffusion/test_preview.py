"""Live previews: the latent -> RGB fit, the rendered preview, its cadence, and the engine's
`on_latents` hook on the tiny SD 1.5."""

import base64
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imagelab.diffusion.jobs import GenerationJob
from imagelab.diffusion.preview import (
    PREVIEW_MAX_SIDE_PX,
    LatentProjection,
    fit_to_vae,
    preview_due,
    progress_with_previews,
    render_preview,
    smooth_latents,
)


def job(**overrides) -> GenerationJob:
    fields = dict(prompt="a photo of a lion", seed=0, width=64, height=64, steps=4)
    return GenerationJob(**{**fields, **overrides})


def decoded(preview) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(preview.image)))
    image.load()
    return image


def test_fit_recovers_a_known_affine_decoder_exactly():
    weight = torch.tensor([[0.3, -0.1, 0.05, 0.2], [0.1, 0.25, -0.2, 0.0], [-0.15, 0.05, 0.1, 0.3]])
    bias = torch.tensor([0.1, -0.05, 0.02])

    def decode(latents):  # each latent pixel becomes an 8x8 block of its affine colour
        rgb = torch.einsum("oc,kchw->kohw", weight, latents) + bias.view(1, 3, 1, 1)
        return F.interpolate(rgb, scale_factor=8, mode="nearest")

    projection = LatentProjection.fit(decode, latent_channels=4, vae_scale_factor=8)
    torch.testing.assert_close(projection.weight, weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(projection.bias, bias, atol=1e-5, rtol=0)
    assert projection.rms_error < 1e-5


def test_fit_on_the_tiny_vae_explains_its_colours(engine):
    projection = fit_to_vae(engine.decoders)
    assert projection.weight.shape == (3, 4) and projection.bias.shape == (3,)
    assert torch.isfinite(projection.weight).all()
    # Against held-out latents, the fitted map beats the best constant colour (their mean).
    latents = smooth_latents(2, 4, 32, seed=99)
    with torch.inference_mode():
        target = F.avg_pool2d(engine.decoders.decode(latents, "full").float(), engine.pipe.vae_scale_factor)
    fitted = (projection.project(latents) - target).pow(2).mean()
    constant = (target - target.mean(dim=(0, 2, 3), keepdim=True)).pow(2).mean()
    assert fitted < 0.9 * constant


def test_fit_is_seeded():
    first, second = smooth_latents(3, 4, 32, seed=5), smooth_latents(3, 4, 32, seed=5)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert first.shape == (3, 4, 32, 32)
    torch.testing.assert_close(first.std(dim=(2, 3)), torch.ones(3, 4), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def identity_projection():
    """First three latent channels as RGB: easy to predict pixels from."""
    return LatentProjection(torch.eye(3, 4), torch.zeros(3), 0.0)


def test_preview_of_one_512px_image_is_a_128px_jpeg(identity_projection):
    latents = torch.zeros(1, 4, 64, 64)
    latents[0, 0] = 1.0  # red everywhere
    preview = render_preview(identity_projection, latents, image_side_px=512)
    image = decoded(preview)
    assert image.format == "JPEG" and preview.format == "jpeg"
    assert image.size == (preview.width, preview.height) == (PREVIEW_MAX_SIDE_PX, PREVIEW_MAX_SIDE_PX)
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 240 and green < 140 and blue < 140  # (1, 0, 0) in [-1, 1] is (255, 127.5, 127.5)
    assert set(preview.as_event()) == {"image", "format", "width", "height"}


def test_preview_tiles_a_jobs_images_and_keeps_the_aspect(identity_projection):
    latents = torch.zeros(3, 4, 32, 64)  # three 512x256 px images (f = 8)
    latents[2, 2] = 1.0  # the third is blue
    preview = render_preview(identity_projection, latents, image_side_px=512)
    image = np.asarray(decoded(preview))
    # a 2 x 2 grid of 64x32 tiles, the last one empty: 128 wide, 64 high
    assert (preview.width, preview.height) == (128, 64) and image.shape == (64, 128, 3)
    third = image[40:56, 8:56].reshape(-1, 3).mean(axis=0)  # bottom-left tile, away from its edges
    assert third[2] > 240 and third[0] < 140


def test_preview_of_a_small_image_is_no_larger_than_the_image(identity_projection):
    preview = render_preview(identity_projection, torch.zeros(1, 4, 32, 32), image_side_px=64)
    assert (preview.width, preview.height) == (64, 64)


@pytest.mark.parametrize(
    ("of", "due"),
    [
        (1, [1]),
        (4, [1, 2, 3, 4]),
        (8, list(range(1, 9))),
        (20, [3, 6, 9, 12, 15, 18, 20]),
        (25, [4, 8, 12, 16, 20, 24, 25]),
    ],
)
def test_preview_cadence(of, due):
    assert [step for step in range(1, of + 1) if preview_due(step, of)] == due


def test_previews_per_image_stay_bounded_whatever_the_steps():
    for of in range(1, 101):
        steps = [step for step in range(1, of + 1) if preview_due(step, of)]
        assert steps[-1] == of and len(steps) <= 9


def test_hook_adds_previews_only_for_jobs_that_want_them(identity_projection):
    events = []
    hook = progress_with_previews(identity_projection, lambda i, e: events.append((i, e)), {1}, lambda i: 64)
    for step in (1, 2):
        for index in (0, 1):
            hook(index, step, 2, torch.zeros(1, 4, 32, 32))
    assert [(i, e["step"], "preview" in e) for i, e in events] == [
        (0, 1, False),
        (1, 1, True),
        (0, 2, False),
        (1, 2, True),
    ]


def test_a_failing_preview_leaves_the_event_without_it(identity_projection):
    events = []
    hook = progress_with_previews(identity_projection, lambda i, e: events.append(e), {0}, lambda i: 64)
    hook(0, 1, 1, torch.zeros(1, 7, 32, 32))  # 7 channels: the (3, 4) map cannot apply
    assert events == [{"step": 1, "of": 1}]


def test_on_latents_gives_each_jobs_own_rows_before_guidance_doubling(engine):
    jobs = [job(seed=1, num_images=2, guidance_scale=7.5), job(seed=5, guidance_scale=7.5)]
    last = {}

    def on_latents(index, step, of, latents):
        assert of == 4 and latents.shape == (jobs[index].num_images, 4, 32, 32)
        if step == of:
            last[index] = latents.clone()

    with_hook = engine.generate(jobs, on_latents=on_latents)
    without = engine.generate(jobs)
    for index, result in enumerate(with_hook):
        for row, image in enumerate(result.images):
            # The last step's rows are what the engine decodes: decoding them gives the image.
            with torch.inference_mode():
                again, _, _ = engine._decode_row(last[index][row : row + 1], torch.float32, "full")
            np.testing.assert_array_equal(np.asarray(again), np.asarray(image))
            # Watching the latents changes nothing.
            np.testing.assert_array_equal(np.asarray(image), np.asarray(without[index].images[row]))


def test_on_latents_replaces_on_step(engine):
    steps, latents = [], []
    engine.generate([job(steps=2)], on_step=lambda *a: steps.append(a), on_latents=lambda *a: latents.append(a[:3]))
    assert steps == [] and latents == [(0, 1, 2), (0, 2, 2)]


def test_bfloat16_latents_project_as_their_float32_values(identity_projection):
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    torch.testing.assert_close(
        identity_projection.project(latents), identity_projection.project(latents.float()), rtol=0, atol=0
    )
