"""Realistic requests for each capability, and the answer each one must get.

Images are scikit-image's real photographs (astronaut, chelsea, coffee) and textures (brick,
grass, gravel), encoded once per process at the profile's sizes. Every draw comes from the
caller's random.Random, so a seeded user sends the same sequence each run.
"""

import base64
import io
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

from load_profile import REPO_ROOT, LoadProfile
from PIL import Image

FAST_STYLES = ("candy", "mosaic", "udnie", "rain_princess")
TXT2IMG_STYLES = ("none", "monet", "van_gogh")
PHOTOS = ("astronaut", "chelsea", "coffee")
TEXTURES = ("brick", "grass", "gravel")
ANIMAL_CLASSES_FILE = REPO_ROOT / "imagelab" / "diffusion" / "animal_classes.txt"

PROMPTS = (
    "a lighthouse on a rocky coast at dusk, oil painting",
    "a bowl of ripe peaches on a wooden table, soft window light",
    "portrait of an old fisherman with a white beard, dramatic lighting, highly detailed",
    "a futuristic city skyline at night with neon reflections on wet streets",
    "a quiet village street in the snow",
    "an astronaut riding a horse on the moon",
    "sunflowers in a blue vase",
    "a misty pine forest at sunrise, a deer standing in a clearing, photorealistic, 35mm",
    "a red fox",
    "a cup of coffee with latte art, top view",
)
NEGATIVE_PROMPTS = ("", "", "blurry, low quality, watermark", "text, signature, deformed hands")


@dataclass(frozen=True)
class Expected:
    """What a correct answer looks like."""

    size: tuple  # (width, height) of the image
    content_type: str  # image/png, image/jpeg, image/webp or application/json


@dataclass(frozen=True)
class Case:
    model: str
    expected: Expected
    data: dict = field(default_factory=dict)  # multipart text fields
    files: dict = field(default_factory=dict)  # multipart image fields: name -> (filename, bytes, type)
    json: Optional[dict] = None  # a JSON body instead of multipart


def _skimage_rgb(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


@lru_cache(maxsize=None)
def source_image(name: str, longest_px: int) -> Image.Image:
    """A scikit-image picture resized (up or down) so its longest side is `longest_px`."""
    image = _skimage_rgb(name)
    scale = longest_px / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


@lru_cache(maxsize=None)
def encoded(name: str, longest_px: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = source_image(name, longest_px)
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def fit_within(size: tuple, max_side_px: int) -> tuple:
    """The server's resize for fast_style (shrink to fit, never enlarge)."""
    width, height = size
    if max(width, height) <= max_side_px:
        return size
    scale = max_side_px / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def scale_to(size: tuple, max_side_px: int) -> tuple:
    """The server's resize for neural_style (longest side exactly max_side_px)."""
    width, height = size
    scale = max_side_px / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def _output(rng: random.Random) -> tuple:
    """(format field, expected content type): mostly PNG, some JPEG and WebP."""
    fmt = rng.choices(("png", "jpeg", "webp"), weights=(6, 3, 1))[0]
    return fmt, f"image/{fmt}"


def fast_style_case(profile: LoadProfile, rng: random.Random) -> Case:
    photo = rng.choice(PHOTOS)
    side = rng.choice(profile.fast_sides_px)
    # One request in four sends a photo twice as large and lets the server shrink it.
    max_side_px = side
    sent_side = side * 2 if rng.random() < 0.25 else side
    fmt_in = rng.choice(("JPEG", "PNG"))
    body = encoded(photo, sent_side, fmt_in)
    fmt, content_type = _output(rng)
    fields = {"style": rng.choice(FAST_STYLES), "max_side_px": max_side_px, "format": fmt}
    expected = Expected(fit_within(source_image(photo, sent_side).size, max_side_px), content_type)
    if rng.random() < 0.3:  # JSON with a base64 image, as browser clients send
        return Case("fast_style", expected, json={**fields, "image": base64.b64encode(body).decode("ascii")})
    mime = "image/jpeg" if fmt_in == "JPEG" else "image/png"
    return Case(
        "fast_style",
        expected,
        data={k: str(v) for k, v in fields.items()},
        files={"image": (f"{photo}.{fmt_in.lower()}", body, mime)},
    )


def neural_style_case(profile: LoadProfile, rng: random.Random) -> Case:
    content = rng.choice(PHOTOS)
    style = rng.choice(TEXTURES + PHOTOS)
    side = profile.neural_side_px
    fields = {
        "steps": str(profile.neural_steps),
        "max_side_px": str(side),
        "seed": str(rng.randrange(2**31)),
        "style_weight": str(rng.choice((5, 10, 20))),
        "preserve_color": rng.choice(("false", "false", "true")),
        "format": "png",
    }
    # Photos arrive larger than the working size; the server scales them to max_side_px.
    content_bytes = encoded(content, max(side, 512), "JPEG")
    style_bytes = encoded(style, max(side, 512), "JPEG")
    expected = Expected(scale_to(source_image(content, max(side, 512)).size, side), "image/png")
    return Case(
        "neural_style",
        expected,
        data=fields,
        files={
            "content": (f"{content}.jpg", content_bytes, "image/jpeg"),
            "style_image": (f"{style}.jpg", style_bytes, "image/jpeg"),
        },
    )


def _generation_fields(profile: LoadProfile, rng: random.Random) -> dict:
    width, height = rng.choice(profile.diffusion_sizes_px)
    fields = {"width": width, "height": height, "seed": rng.randrange(2**31)}
    if rng.random() < profile.lcm_fraction:  # the few-step fast mode
        fields.update(scheduler="lcm", steps=profile.lcm_steps, guidance=1.0)
    else:
        fields.update(scheduler="dpmpp", steps=profile.diffusion_steps, guidance=rng.choice((5.0, 7.5)))
    return fields


def _diffusion_case(model: str, fields: dict, rng: random.Random) -> Case:
    """Half JSON answers (which carry the nsfw flags the checks read), half bare images."""
    expected_size = (fields["width"], fields["height"])
    if rng.random() < 0.5:
        return Case(model, Expected(expected_size, "application/json"), json={**fields, "response_format": "json"})
    fmt, content_type = _output(rng)
    return Case(model, Expected(expected_size, content_type), json={**fields, "format": fmt})


def txt2img_case(profile: LoadProfile, rng: random.Random) -> Case:
    fields = {
        "prompt": rng.choice(PROMPTS),
        "negative_prompt": rng.choice(NEGATIVE_PROMPTS),
        "style": rng.choice(TXT2IMG_STYLES),
        **_generation_fields(profile, rng),
    }
    if fields["style"] != "none":
        fields["style_scale"] = rng.choice((0.6, 0.8, 1.0))
    return _diffusion_case("txt2img", fields, rng)


@lru_cache(maxsize=1)
def animal_classes() -> tuple:
    return tuple(line.strip() for line in ANIMAL_CLASSES_FILE.read_text().splitlines() if line.strip())


def animals_case(profile: LoadProfile, rng: random.Random) -> Case:
    name = rng.choice(animal_classes())
    # Users type class names in any case and with spaces; the server normalises them.
    animal = rng.choice((name, name.replace("_", " ").title(), name.upper()))
    fields = {
        "animal": animal,
        "prompt_extra": rng.choice(("", "", "in the snow", "close-up portrait", "at sunset")),
        # Within a range that keeps pictures visible: brightness 0 would be black by request.
        **{k: round(rng.uniform(0.8, 1.3), 2) for k in ("contrast", "saturation", "brightness")},
        **_generation_fields(profile, rng),
    }
    return _diffusion_case("animals", fields, rng)


CASE_MAKERS = {
    "fast_style": fast_style_case,
    "neural_style": neural_style_case,
    "txt2img": txt2img_case,
    "animals": animals_case,
}
