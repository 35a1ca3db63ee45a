"""Training -> archive -> serve: tiny training runs published as new archive versions (with
their run's lineage in the manifest) register and serve on a TorchServe of their own: the
trained fast_style style is listed and served by name, the trained txt2img LoRA is a style."""

import io
import json
import random
import tempfile
import zipfile

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from imagelab.weights_io import sha256_of
from operations.server import Ports, TorchServe
from operations.smoke import gradient_png
from training.clip_score import ClipScorer, resolve_clip_dir
from training.evaluate import evaluate, write_reports
from training.fast_style.config import FastStyleTrainConfig
from training.fast_style.train import train_fast_style
from training.job_cli import archive_run
from training.lora.config import LoraTrainConfig
from training.lora.train import train_lora
from weightstore.layout import WeightsLayout

STYLE, LORA_STYLE = "swirl", "blocky"


def paintings(folder, count=5):
    """Small 'paintings': coloured rectangles on coloured grounds, seeded."""
    folder.mkdir(parents=True)
    rng = random.Random(0)
    for i in range(count):
        image = Image.new("RGB", (40, 40), tuple(rng.randrange(256) for _ in range(3)))
        ImageDraw.Draw(image).rectangle((8, 8, 30, 24), fill=tuple(rng.randrange(256) for _ in range(3)))
        image.save(folder / f"painting_{i}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A weights root sharing the default tiny twins, a style LoRA and a fast_style style
    trained for a few steps, published into a fresh store (fast_style 1.0 is the untrained
    build, so the trained one is 2.0)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("training_archives")
    # torch-model-archiver stages in {gettempdir()}/{model name}: a private temp dir keeps a
    # concurrent build of the same model (another test run on this machine) out of ours.
    (root / "tmp").mkdir()
    previous_tempdir, tempfile.tempdir = tempfile.tempdir, str(root / "tmp")
    default = WeightsLayout.default()
    for capability in ("fast_style", "txt2img"):
        CAPABILITIES[capability].build_plan(default)  # makes sure the default tiny twins exist
    weights = root / "weights"
    (weights / ".tiny").mkdir(parents=True)
    for entry in default.tiny_root.iterdir():
        (weights / ".tiny" / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    store = root / "store"
    build_archive(CAPABILITIES["fast_style"], WeightsLayout(weights), store, "1.0")
    data = paintings(root / "paintings")
    try:
        lora_config = LoraTrainConfig(
            data_dir=data,
            capability="txt2img",
            style=LORA_STYLE,
            weights_dir=weights,
            resolution_px=32,
            batch_size=2,
            max_steps=4,
            learning_rate=5e-2,
            rank=2,
            lora_alpha=16.0,
            mixed_precision="no",
            checkpoint_every=0,
            validation_images=0,
        )
        lora_run = train_lora(lora_config, root / "runs" / "lora-run", argv=["test"])
        txt2img = archive_run(lora_run, store)  # what `--archive` does: publish into weights/, build
        style_image = root / "style.png"
        Image.radial_gradient("L").convert("RGB").resize((48, 48)).save(style_image)
        fast_config = FastStyleTrainConfig(
            data,
            style_image,
            STYLE,
            weights_dir=weights,
            image_size_px=32,
            batch_size=2,
            max_steps=2,
            checkpoint_every=0,
        )
        fast_run = train_fast_style(fast_config, root / "runs" / "fast-run", argv=["test"])
        fast_style = archive_run(fast_run, store)
    finally:
        torch.set_num_threads(threads)
        tempfile.tempdir = previous_tempdir
    return {
        "store": store,
        "weights": weights,
        "txt2img": txt2img,
        "fast_style": fast_style,
        "lora_run": lora_run,
        "fast_run": fast_run,
    }


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    models = {"txt2img": trained["txt2img"].archive.name, "fast_style": trained["fast_style"].archive.name}
    process = TorchServe(tmp_path_factory.mktemp("training_server"), trained["store"], models, Ports.free())
    process.start()
    try:
        process.wait_ready(timeout_s=300)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {process.keys().inference}"
        yield process, session
    finally:
        process.stop()


def describe(process, model: str, version: str) -> dict:
    answer = requests.get(
        f"{process.management_url}/models/{model}/{version}?customized=true",
        headers={"Authorization": f"Bearer {process.keys().management}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    metadata = answer.json()[0]["customizedMetadata"]
    return json.loads(metadata) if isinstance(metadata, str) else metadata


def test_versions_follow_the_store_and_manifests_carry_the_run(trained):
    assert (trained["fast_style"].version, trained["txt2img"].version) == ("2.0", "1.0")
    with zipfile.ZipFile(trained["txt2img"].archive) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        assert f"lora/{LORA_STYLE}.safetensors" in bundle.namelist()
    lineage = manifest["training"]
    assert lineage["run_id"] == "lora-run" and lineage["job"] == "lora"
    assert lineage["config"]["rank"] == 2 and lineage["config"]["lora_alpha"] == 16.0
    assert lineage["final_metrics"]["epoch"] == 2 and np.isfinite(lineage["final_metrics"]["train_loss"])
    trained_entry = next(w for w in manifest["weights"] if w["path"] == f"lora/{LORA_STYLE}.safetensors")
    assert trained_entry["sha256"] == lineage["exported"]["sha256"] and trained_entry["synthetic"] is False
    # Published explicitly: the trained files now live in the weights root under the
    # capability's naming, byte for byte what the run exported.
    published = trained["weights"] / "lora" / f"{LORA_STYLE}.safetensors"
    assert sha256_of(published) == lineage["exported"]["sha256"]
    assert sha256_of(trained["weights"] / "fast_style" / f"{STYLE}.safetensors") == sha256_of(
        trained["fast_run"].weights_path
    )


def test_the_next_plain_build_keeps_the_trained_styles(trained, tmp_path):
    """What `make archives` does next: a build from the weights root alone, no run in sight."""
    layout = WeightsLayout(trained["weights"])
    for model, style in (("txt2img", LORA_STYLE), ("fast_style", STYLE)):
        archive = build_archive(CAPABILITIES[model], layout, tmp_path / "store", "1.0")
        with zipfile.ZipFile(archive) as bundle:
            manifest = json.loads(bundle.read("manifest.json"))
        entries = {w["path"]: w for w in manifest["weights"]}
        trained_path = f"lora/{style}.safetensors" if model == "txt2img" else f"weights/{style}.safetensors"
        assert entries[trained_path]["synthetic"] is False
        with zipfile.ZipFile(trained[model].archive) as bundle:
            first = {w["path"]: w["sha256"] for w in json.loads(bundle.read("manifest.json"))["weights"]}
        assert entries[trained_path]["sha256"] == first[trained_path]


def test_trained_fast_style_is_listed_and_served_by_name(served, trained):
    process, session = served
    described = describe(process, "fast_style", "2.0")
    assert STYLE in described["styles"] and STYLE not in described["synthetic_styles"]
    assert described["manifest"]["training"]["run_id"] == "fast-run"

    def stylise(style):
        answer = session.post(
            f"{process.inference_url}/predictions/fast_style/2.0",
            timeout=120,
            files={"image": ("photo.png", gradient_png(48))},
            data={"style": style},
        )
        assert answer.status_code == 200, answer.text
        image = Image.open(io.BytesIO(answer.content))
        assert image.size == (48, 48)
        return answer.content

    assert stylise(STYLE) != stylise("candy")


def test_trained_lora_is_a_txt2img_style_that_changes_the_picture(served):
    process, session = served
    described = describe(process, "txt2img", "1.0")
    assert LORA_STYLE in described["styles"] and {"monet", "van_gogh"} <= set(described["styles"])

    def generate(style):
        answer = session.post(
            f"{process.inference_url}/predictions/txt2img/1.0",
            timeout=300,
            json={
                "prompt": "a painting in the style of blocky",
                "style": style,
                "seed": 3,
                "steps": 2,
                "width": 64,
                "height": 64,
            },
        )
        assert answer.status_code == 200, answer.text
        return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB")).astype(np.int16)

    assert np.abs(generate(LORA_STYLE) - generate("none")).mean() > 0.5


def test_evaluate_scores_the_served_version_with_and_without_its_lora(served, trained, tmp_path):
    process, session = served
    scorer = ClipScorer(resolve_clip_dir(WeightsLayout(trained["weights"])).path)
    scores = evaluate(
        process.inference_url,
        dict(session.headers),
        "txt2img",
        ["1.0"],
        ["none", LORA_STYLE],
        ["a harbour", "a red barn"],
        scorer,
        seeds=[0],
        generation={"steps": 2, "width": 64, "height": 64},
    )
    assert [(s.style, s.prompt) for s in scores] == [
        ("none", "a harbour"),
        ("none", "a red barn"),
        (LORA_STYLE, "a harbour"),
        (LORA_STYLE, "a red barn"),
    ]
    assert all(0 <= s.clip_score <= 100 for s in scores)
    csv_path, md_path = write_reports(scores, tmp_path / "report")
    table = md_path.read_text().splitlines()
    assert table[0].startswith("| version | style |") and len(table) == 4
    assert f"| 1.0 | {LORA_STYLE} | 2 |" in table[3]
    assert len(csv_path.read_text().splitlines()) == 5
