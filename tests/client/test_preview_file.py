"""The client's preview file (`imagelab generate --preview`): what it writes, where, and when."""

import base64
import io
import sys
from pathlib import Path

import pytest
from PIL import Image

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
sys.path.insert(0, str(CLIENT_DIR))

from imagelab_client.cli import build_parser  # noqa: E402
from imagelab_client.progress import PreviewFile, each  # noqa: E402


def jpeg(color) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 4), color).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def event(step, color=None) -> dict:
    base = {"type": "progress", "step": step, "of": 3}
    if color is None:
        return base
    return {**base, "preview": {"image": jpeg(color), "format": "jpeg", "width": 8, "height": 4}}


def test_the_latest_preview_replaces_the_last_beside_the_output(tmp_path):
    previews = PreviewFile.beside(str(tmp_path / "lion.png"))
    previews(event(1))  # no preview in this event: nothing written
    assert previews.path is None and not list(tmp_path.iterdir())
    previews(event(2, "red"))
    previews(event(3, "blue"))
    assert previews.path == str(tmp_path / "lion.preview.jpg") and previews.written == 2
    assert [p.name for p in tmp_path.iterdir()] == ["lion.preview.jpg"]  # no .part left behind
    with Image.open(previews.path) as image:
        red, green, blue = image.convert("RGB").getpixel((4, 2))
        assert blue > 200 and red < 60 and image.size == (8, 4)


def test_each_calls_every_callback_in_order_and_skips_none():
    calls = []
    combined = each(lambda e: calls.append(("bar", e["step"])), None, lambda e: calls.append(("file", e["step"])))
    combined(event(1))
    assert calls == [("bar", 1), ("file", 1)]
    assert each(None, None) is None


def test_preview_flag_on_generate_and_animal_said_in_help(capsys):
    parser = build_parser()
    assert parser.parse_args(["generate", "a fox", "--preview"]).preview is True
    assert parser.parse_args(["animal", "lion"]).preview is False
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--help"])
    help_text = capsys.readouterr().out
    assert "--preview" in help_text and "preview.jpg" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["stylize", "photo.jpg", "--preview"])  # no previews for fast_style
