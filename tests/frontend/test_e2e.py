"""The playground end to end: headless Chromium (Debian's, driven by playwright-core from
frontend/node_modules) -> the gateway -> a real TorchServe with the tiny weights.

One browser session (tests/frontend/e2e.mjs) runs every scenario once; the tests below check
what it saw against what the server itself says. Screenshots of each page, at laptop and
phone sizes, are written to reports/frontend/."""

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from gateway.config import GatewayConfig
from gateway.server import make_gateway
from imagelab.diffusion.adjust import ColorAdjustment, adjust_colors

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
REPORTS = REPO / "reports" / "frontend"
CHROMIUM = os.environ.get("IMAGELAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NOT_AN_IMAGE = b"this is not an image\n"
BROWSER_TIMEOUT_S = 600  # the whole browser run; generous: other test runs share the 2 cores


def _missing() -> str:
    if not shutil.which("node"):
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (make frontend-deps installs Debian's chromium)"
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        return "frontend/node_modules is missing (make frontend-deps runs npm ci)"
    if not (FRONTEND / "dist" / "index.html").is_file():
        return "frontend/dist is not built (make frontend-deps runs npm run build)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "ready")


@pytest.fixture(scope="module")
def playground(server):
    config = GatewayConfig(
        inference_url=server.url,
        management_url=server.management_url,
        key_file=server.process.workdir / "key_file.json",
        static_dir=FRONTEND / "dist",
        port=0,
    )
    gateway = make_gateway(config)
    gateway.start_background()
    yield gateway
    gateway.shutdown()
    gateway.server_close()


@pytest.fixture(scope="module")
def seen(playground, server, photo_jpeg, texture_png, tmp_path_factory) -> dict:
    """What the browser saw in each scenario (e2e.mjs prints it as JSON)."""
    inputs = tmp_path_factory.mktemp("browser_inputs")
    (inputs / "photo.jpg").write_bytes(photo_jpeg)
    (inputs / "texture.png").write_bytes(texture_png)
    (inputs / "not_image.jpg").write_bytes(NOT_AN_IMAGE)
    REPORTS.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BASE_URL": playground.url,
        "OUT_DIR": str(REPORTS),
        "FRONTEND_DIR": str(FRONTEND),
        "CHROMIUM": CHROMIUM,
        "PHOTO": str(inputs / "photo.jpg"),
        "TEXTURE": str(inputs / "texture.png"),
        "NOT_IMAGE": str(inputs / "not_image.jpg"),
        "SECRETS": f"{server.keys.inference},{server.keys.management}",
    }
    done = subprocess.run(
        ["node", str(Path(__file__).with_name("e2e.mjs"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
    )
    assert done.returncode == 0, f"the browser run failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def scenario(seen: dict, name: str) -> dict:
    result = seen[name]
    assert result["ok"], f"{name} failed in the browser:\n{result.get('error')}"
    return result


def server_message(server, model: str, **kwargs) -> dict:
    response = server.predict(model, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    return response.json()


def test_fast_style_page_stylises_a_photo_with_a_style_from_the_server(seen, server):
    result = scenario(seen, "fast_style")
    styles = server.management("GET", "/models/fast_style?customized=true").json()[0]["customizedMetadata"]["styles"]
    assert result["styles"] == [s.replace("_", " ") for s in styles]
    assert result["original"]["width"] == 512
    assert max(result["result"]["width"], result["result"]["height"]) == 128  # the max_side_px typed in
    assert result["download"] == "fast_style-mosaic.png"


def test_an_undecodable_photo_shows_the_servers_message_next_to_the_image_field(seen, server):
    result = scenario(seen, "fast_style_bad_image")
    expected = server_message(server, "fast_style", files={"image": ("not_image.jpg", NOT_AN_IMAGE)})
    assert expected["field"] == "image"
    assert result["message"] == expected["message"]
    assert result["invalid"] == "true" and "f-image-error" in result["describedBy"]


def test_custom_style_progress_bar_advances_while_the_job_streams(seen):
    result = scenario(seen, "custom_style")
    progress = result["progress"]
    assert progress == sorted(progress) and len(set(progress)) >= 3, progress
    assert progress[-1] == 12 and result["progressMax"] == "12"
    assert (result["result"]["width"], result["result"]["height"]) == (64, 64)
    assert result["caption"].startswith("Result: 12 steps")


def test_cancel_stops_a_streamed_job_in_the_page_and_on_the_server(seen, server):
    result = scenario(seen, "custom_style_cancel")
    assert "cancelled" in result["message"]
    assert result["atCancel"] == result["later"]  # no progress after the cancel
    assert result["submitEnabled"]
    # The page told the server (the job id of the first progress event) ...
    assert result["cancel"]["status"] == 202 and result["cancel"]["body"]["cancel"] == "requested"
    assert len(result["cancel"]["body"]["job_id"]) == 24
    # ... which stopped the 1000-step job: the next one, on the same single worker, finished,
    # and the worker counted a cancelled request (not a fault, not a refusal).
    assert result["nextCaption"].startswith("Result: 3 steps")
    url = f"http://127.0.0.1:{server.process.ports.metrics}/metrics"
    text = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {server.keys.inference}"}).text
    cancelled = [line for line in text.splitlines() if line.startswith("ImagelabCancelledRequests{")]
    assert any("neural_style" in line and 'Reason="Cancelled"' in line for line in cancelled), cancelled


def test_text_to_image_uses_the_rolled_seed_and_shows_it_with_the_parameters(seen):
    result = scenario(seen, "txt2img")
    assert any(label.startswith("LCM") and "fast" in label for label in result["schedulers"])
    assert result["progress"] == [1, 2, 3]
    assert (result["result"]["width"], result["result"]["height"]) == (64, 64)
    assert result["seed"] and result["seed"] in result["details"] and result["seed"] in result["seedHint"]
    assert "a lighthouse on a cliff at dusk" in result["details"]


def test_a_bad_size_shows_the_servers_message_next_to_the_width_field(seen, server):
    result = scenario(seen, "txt2img_bad_width")
    expected = server_message(server, "txt2img", data={"prompt": "a lighthouse", "steps": "3", "width": "100"})
    assert expected["field"] == "width"
    assert result["message"] == expected["message"] and result["invalid"] == "true"


def _pixels(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def test_animals_picker_searches_the_servers_classes_and_makes_a_picture(seen, server):
    result = scenario(seen, "animals")
    classes = server.management("GET", "/models/animals?customized=true").json()[0]["customizedMetadata"]["classes"]
    assert result["classCount"] == len(classes) == 100
    assert result["filtered"] == 1  # "tig" -> tiger
    assert (result["result"]["width"], result["result"]["height"]) == (64, 64)
    assert result["save"] == "animals-tiger-11.png"


def test_animals_sliders_adjust_the_shown_picture_with_the_servers_math_and_save_writes_it(seen, server):
    result = scenario(seen, "animals")
    made = server.predict("animals", data={"animal": "tiger", "steps": "2", "seed": "11"})
    assert made.status_code == 200, made.text
    as_made = Image.open(io.BytesIO(made.content)).convert("RGB")
    assert _pixels(result["madePng"]).tobytes() == as_made.tobytes()  # the canvas starts as the server made it
    expected = np.asarray(adjust_colors(as_made, ColorAdjustment(brightness=1.1, contrast=1.5, saturation=0.8)))
    shown = np.asarray(_pixels(result["shownPng"]))
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(shown.astype(int) - np.asarray(as_made).astype(int)).max() > 1  # the sliders really acted
    with Image.open(result["saved"]) as saved:
        assert saved.convert("RGB").tobytes() == shown.tobytes()  # Save writes what is shown
    assert result["requestsAfter"] == 0  # no new generation for a slider


def test_animals_steps_comparison_shows_the_same_seed_at_each_step_count(seen, server):
    result = scenario(seen, "animals_compare_steps")
    assert result["labels"] == ["tiger, 2 steps", "tiger, 3 steps"]
    assert all((i["width"], i["height"]) == (64, 64) for i in result["images"])
    assert all(alt.endswith("seed 11") for alt in result["alts"])


def test_animals_settings_send_the_chosen_version_and_follow_the_schedulers_ranges(seen, server):
    result = scenario(seen, "animals_settings")
    versions = [v["modelVersion"] for v in server.management("GET", "/models/animals/all").json()]
    described = server.management("GET", "/models/animals?customized=true").json()[0]["customizedMetadata"]
    assert sorted(result["versions"]) == sorted(versions) and len(versions) >= 2
    assert result["defaultVersion"] == described["version"] and result["other"] != described["version"]
    # The request went to the chosen version, and its answer says that version drew it.
    assert result["sent"] == [f"/api/predictions/animals/{result['other']}"]
    assert f"animals {result['other']}" in result["servedText"] and "LCM" in result["servedText"]
    steps = described["fields"]["steps"]["by_scheduler"]
    assert (result["dpmpp"]["min"], result["dpmpp"]["max"]) == ("20", "100")  # the seed's panel
    assert (steps["dpmpp"]["min"], steps["dpmpp"]["max"]) == (20, 100)
    assert result["dpmpp"]["value"] == str(steps["dpmpp"]["default"])  # 2 steps moved into DPM++'s range
    assert result["dpmpp"]["guidanceMax"] == "20"
    assert (result["lcm"]["min"], result["lcm"]["max"]) == (str(steps["lcm"]["min"]), str(steps["lcm"]["max"]))
    assert result["lcm"]["value"] == str(steps["lcm"]["default"]) and result["lcm"]["guidanceMax"] == "2"
    assert (result["device"], result["dtype"]) == (described["device"], described["dtype"]) == ("cpu", "float32")


def test_live_preview_shows_the_image_forming_beside_the_progress_bar(seen):
    result = scenario(seen, "live_preview")
    assert result["animalsLabel"].strip() == "Live preview" and result["offByDefault"]
    previews = result["previews"]
    # The tiny model's steps are quick: the page may skip some, but shows at least one, in order,
    # each a JPEG the browser decodes at the tiny model's 64 px (<= 128 px, preview.py).
    assert previews, "no live preview was shown"
    steps = [p["step"] for p in previews]
    assert steps == sorted(steps) and set(steps) <= set(range(1, 9))
    assert all((p["mime"], p["width"], p["height"]) == ("image/jpeg", 64, 64) for p in previews), previews
    assert all(p["alt"] == f"Live preview at step {p['step']} of 8" for p in previews)
    assert result["shownAfter"] == 0  # the finished image replaces it
    assert (result["result"]["width"], result["result"]["height"]) == (64, 64)


def test_animals_without_a_class_shows_the_servers_message_next_to_the_picker(seen, server):
    result = scenario(seen, "animals_no_class")
    expected = server_message(server, "animals", data={"steps": "2"})
    assert expected["field"] == "animal" and result["message"] == expected["message"]


def test_models_page_lists_each_model_with_its_default_version(seen, server):
    result = scenario(seen, "models")
    names = sorted(m["modelName"] for m in server.management("GET", "/models").json()["models"])
    assert sorted(result["models"]) == names
    assert result["defaults"] == len(names)
    assert result["weights"] >= 1


def test_phone_pages_do_not_scroll_sideways(seen):
    result = scenario(seen, "phone")
    assert result["overflow"] == dict.fromkeys(["fast-style", "custom-style", "text-to-image", "animals", "models"], 0)


def test_keyboard_reaches_every_control_in_order(seen):
    focused = scenario(seen, "keyboard")["focused"]
    controls = ["f-image", "f-style", "f-max_side_px", "f-format", "Stylise"]
    assert [f for f in focused if f in controls] == controls
    assert {"Fast style", "Models"} <= set(focused)


def test_no_key_reaches_the_browser(seen):
    result = seen["secrets"]
    assert result["requestsWithAuth"] == []
    assert result["bodiesChecked"] >= 10 and result["leaked"] == 0
    assert result["consoleErrors"] == []


@pytest.mark.parametrize(
    "name, width",
    [
        *(
            (f"laptop-{page}", 1280)
            for page in (
                "fast-style",
                "fast-style-error",
                "custom-style",
                "text-to-image",
                "text-to-image-error",
                "animals",
                "animals-compare",
                "animals-settings",
                "models",
            )
        ),
        *(
            (f"phone-{page}", 390)
            for page in ("fast-style", "fast-style-result", "custom-style", "text-to-image", "animals", "models")
        ),
    ],
)
def test_screenshots_of_each_page_are_written(seen, name, width):
    with Image.open(REPORTS / f"{name}.png") as shot:
        assert shot.width == width and shot.height >= 600
