"""Image decoding against hostile and odd files, built in code; encoding and resizing."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from handlers.common.errors import InvalidField, TooLarge
from handlers.common.images import (
    ImageLimits,
    decode_image,
    encode_image,
    resize_to_fit,
    to_rgb,
)

LIMITS = ImageLimits()


def png_with_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height RGB, with a token IDAT: the file
    is tiny, so only a check of the header (not of the decoded pixels) can reject it as 413."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def noise(size=(64, 48), seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ---------------------------------------------------------------- size limits


@pytest.mark.parametrize("size", [(9000, 100), (100, 9000), (8000, 8000), (8192, 4400)])
def test_oversize_dimensions_are_413_from_the_header(size):
    data = png_with_header_only(*size)
    assert len(data) < 200
    with pytest.raises(TooLarge) as error:
        decode_image(data, "content", LIMITS)
    assert error.value.status == 413 and error.value.field == "content"
    assert f"{size[0]}x{size[1]}" in error.value.message


def test_just_under_side_limit_but_over_pixel_limit_is_413():
    limits = ImageLimits(max_pixels=10_000, max_side_px=200)
    data = png_with_header_only(199, 199)  # 39601 pixels
    with pytest.raises(TooLarge):
        decode_image(data, "image", limits)


def test_real_compressible_bomb_is_413(save_image):
    data = save_image(Image.new("L", (400, 400)), "PNG")  # 160k pixels in a few hundred bytes
    assert len(data) < 2000
    with pytest.raises(TooLarge):
        decode_image(data, "image", ImageLimits(max_pixels=100_000))


def test_huge_png_bomb_is_413_not_400():
    data = png_with_header_only(60_000, 60_000)
    with pytest.raises(TooLarge):
        decode_image(data, "image", LIMITS)


def test_over_max_bytes_is_413(png_bytes):
    with pytest.raises(TooLarge) as error:
        decode_image(png_bytes, "image", ImageLimits(max_bytes=len(png_bytes) - 1))
    assert error.value.field == "image"
    decode_image(png_bytes, "image", ImageLimits(max_bytes=len(png_bytes)))


@pytest.mark.parametrize("name", ["max_bytes", "max_pixels", "max_side_px"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_are_validated(name, value):
    with pytest.raises(ValueError, match=name):
        ImageLimits(**{name: value})


# ---------------------------------------------------------------- refused files (400)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files_are_400(save_image, fmt, keep):
    data = save_image(noise(), fmt)
    with pytest.raises(InvalidField) as error:
        decode_image(data[: int(len(data) * keep)], "image", LIMITS)
    assert error.value.status == 400 and error.value.field == "image"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO", "PPM"])
def test_formats_outside_the_allow_list_are_400(save_image, fmt):
    data = save_image(Image.new("RGB", (4, 4), (9, 9, 9)), fmt)
    with pytest.raises(InvalidField) as error:
        decode_image(data, "style_image", LIMITS)
    assert error.value.field == "style_image"
    assert "JPEG, PNG, WEBP" in error.value.message


@pytest.mark.parametrize(
    "data", [b"hello world", b"\x89PNX\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8" + b"\0" * 3, b"RIFF", b"\0"]
)
def test_wrong_magic_is_400(data):
    with pytest.raises(InvalidField):
        decode_image(data, "image", LIMITS)


def test_empty_is_400():
    with pytest.raises(InvalidField) as error:
        decode_image(b"", "image", LIMITS)
    assert "empty" in error.value.message


# ---------------------------------------------------------------- odd but valid images


def test_one_by_one(save_image):
    image = decode_image(save_image(Image.new("RGB", (1, 1), (7, 8, 9)), "PNG"), "image", LIMITS)
    assert image.mode == "RGB" and image.size == (1, 1)
    assert image.getpixel((0, 0)) == (7, 8, 9)


def test_png_round_trip_is_exact(save_image):
    source = noise()
    image = decode_image(save_image(source, "PNG"), "image", LIMITS)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(pixels(image), pixels(source))


def test_webp_is_accepted(save_image):
    image = decode_image(save_image(Image.new("RGB", (5, 3), (0, 200, 0)), "WEBP", lossless=True), "image", LIMITS)
    assert image.size == (5, 3) and image.getpixel((2, 1)) == (0, 200, 0)


def test_16_bit_grayscale_is_scaled_not_clipped(save_image):
    source = Image.fromarray(np.array([[0, 32768, 65535, 255]], dtype=np.uint16))
    data = save_image(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    image = decode_image(data, "image", LIMITS)
    values = pixels(image)[0, :, 0]
    assert values[0] == 0 and values[2] == 255
    assert abs(int(values[1]) - 128) <= 1
    assert values[3] == 1  # 255/65535 of full scale, not 255 (clipping would give 255)
    assert image.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb(save_image):
    data = save_image(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = decode_image(data, "image", LIMITS)
    red, green, blue = image.getpixel((4, 4))
    assert image.mode == "RGB" and red > 230 and green < 30 and blue < 30


def test_palette_png_with_transparency_is_composited_on_white(save_image):
    source = Image.new("P", (2, 1))
    source.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    source.putpixel((0, 0), 0)
    source.putpixel((1, 0), 1)
    data = save_image(source, "PNG", transparency=0)
    image = decode_image(data, "image", LIMITS)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (200, 0, 0)


def test_palette_png_without_transparency(save_image):
    source = Image.new("P", (1, 1))
    source.putpalette([10, 20, 30] + [0] * 765)
    image = decode_image(save_image(source, "PNG"), "image", LIMITS)
    assert image.getpixel((0, 0)) == (10, 20, 30)


def test_rgba_is_composited_on_white(save_image):
    source = Image.new("RGBA", (3, 1))
    source.putdata([(0, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    image = decode_image(save_image(source, "PNG"), "image", LIMITS)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (0, 0, 255)
    assert all(abs(c - 127) <= 1 for c in image.getpixel((2, 0)))


def test_la_is_composited_on_white(save_image):
    source = Image.new("LA", (2, 1))
    source.putdata([(0, 0), (50, 255)])
    image = decode_image(save_image(source, "PNG"), "image", LIMITS)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (50, 50, 50)


def test_rgba_webp_is_composited_on_white(save_image):
    source = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image = decode_image(save_image(source, "WEBP", lossless=True), "image", LIMITS)
    assert image.getpixel((1, 1)) == (255, 255, 255)


def test_exif_orientation_6_is_applied(save_image):
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left edge becomes the top
    data = save_image(source, "JPEG", exif=exif.tobytes(), quality=95)
    image = decode_image(data, "image", LIMITS)
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 3)), image.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


@pytest.mark.parametrize("fmt, params", [("WEBP", {"lossless": True}), ("PNG", {})])
def test_animated_images_give_the_first_frame(save_image, fmt, params):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = save_image(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, **params)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    image = decode_image(data, "image", LIMITS)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == (255, 0, 0)


def test_grayscale_and_one_bit(save_image):
    gray = decode_image(save_image(Image.new("L", (2, 2), 77), "PNG"), "image", LIMITS)
    assert gray.mode == "RGB" and gray.getpixel((1, 1)) == (77, 77, 77)
    bitmap = Image.new("1", (2, 1), 0)
    bitmap.putpixel((1, 0), 1)
    one = decode_image(save_image(bitmap, "PNG"), "image", LIMITS)
    assert one.getpixel((0, 0)) == (0, 0, 0) and one.getpixel((1, 0)) == (255, 255, 255)


def test_to_rgb_float_mode_is_clipped_and_nan_safe():
    source = Image.fromarray(np.array([[-5.0, 100.4, 300.0, np.nan]], dtype=np.float32), "F")
    assert pixels(to_rgb(source))[0, :, 0].tolist() == [0, 100, 255, 0]


def test_to_rgb_keeps_rgb_untouched():
    source = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(source) is source


# ---------------------------------------------------------------- encode_image


def test_encode_png_round_trips_exactly():
    source = noise((17, 9))
    data = encode_image(source, "png", 90)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(pixels(Image.open(io.BytesIO(data))), pixels(source))


@pytest.mark.parametrize("fmt, magic", [("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")])
def test_encode_lossy_round_trips_closely(fmt, magic):
    source = Image.new("RGB", (32, 16), (200, 100, 50))
    data = encode_image(source, fmt, 95)
    assert data.startswith(magic)
    decoded = decode_image(data, "image", LIMITS)
    assert decoded.size == (32, 16)
    assert np.abs(pixels(decoded) - pixels(source)).max() <= 6


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_the_size(fmt):
    source = noise((64, 64))
    assert len(encode_image(source, fmt, 10)) < len(encode_image(source, fmt, 95))


def test_encode_jpeg_accepts_rgba():
    data = encode_image(Image.new("RGBA", (4, 4), (1, 2, 3, 4)), "jpeg", 80)
    assert Image.open(io.BytesIO(data)).mode == "RGB"


# ---------------------------------------------------------------- resize_to_fit


@pytest.mark.parametrize(
    "size, max_side, expected",
    [
        ((400, 200), 100, (100, 50)),
        ((200, 400), 100, (50, 100)),
        ((333, 222), 100, (100, 67)),
        ((1000, 1), 10, (10, 1)),  # never rounds a side to zero
        ((100, 50), 100, (100, 50)),
        ((50, 20), 100, (50, 20)),  # never enlarges
    ],
)
def test_resize_to_fit(size, max_side, expected):
    image = Image.new("RGB", size)
    result = resize_to_fit(image, max_side)
    assert result.size == expected
    if expected == size:
        assert result is image
