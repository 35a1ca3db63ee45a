"""LoRA styles on demand through a real TorchServe (issue 19.1): a txt2img archive on the tiny
base model whose adapters folder is a tmp dir. Files appear, change and go while the worker
runs; every wait is a poll of `describe` with a deadline, never a fixed sleep.

Shown here: hot add, removal, replacement, an archived style winning a clash, hostile names
(never listed, never read), mismatched shapes (400 naming the file and the layer) and eviction
with flat memory: the worker's memory (its anonymous memory plus the LoRA files it maps, from
/proc/{pid}) after 40 distinct 8 MB styles through an LRU of 4 stays within a stated margin of
that after 8.
"""

import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import requests
from support import assert_error, decode, model_config, own_server

from imagelab.diffusion.lora import read_lora, save_lora
from imagelab.diffusion.tiny import synthesize_tiny_lora
from imagelab.weights_io import sha256_of
from weightstore.layout import WeightsLayout
from weightstore.needs import resolve_needs

pytestmark = pytest.mark.slow
MODEL = "txt2img"
POLL_S = 0.5  # the worker's adapter_poll_s
LRU_COUNT = 4
WAIT_S = 120  # a deadline for the worker to notice a change: generous on a loaded machine
SMALL = {"prompt": "a harbour at dawn", "width": 64, "height": 64, "steps": 2, "seed": 5}
BIG_RANK = 512  # ~7.9 MB per file on the tiny UNet: a leak of evicted adapters would show
DISTINCT = 40


@pytest.fixture(scope="module")
def unet_dir():
    """The UNet of the base model the archive is built on (the LoRAs must fit it)."""
    return resolve_needs(MODEL, WeightsLayout.default()).base.path / "unet"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    (root / MODEL).mkdir()
    config = model_config(MODEL)
    config["handler"].update(
        adapters_folder=str(root),
        adapter_poll_s=POLL_S,
        adapter_cache_max_count=LRU_COUNT,
        adapter_cache_max_mb=1024,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("IMAGELAB_ADAPTERS_DIR", raising=False)  # the archive's folder, not the caller's
        with own_server(tmp_path_factory, MODEL, config) as (server, session):
            yield server, session, root / MODEL


@pytest.fixture
def staging(tmp_path):
    """Where files are written before they are moved into the folder (as the README says)."""
    return tmp_path


def post(served, **fields) -> requests.Response:
    server, session, _ = served
    return session.post(f"{server.inference_url}/predictions/{MODEL}", json={**SMALL, **fields}, timeout=300)


def image(served, **fields) -> np.ndarray:
    response = post(served, **fields)
    assert response.status_code == 200, response.text
    return np.asarray(decode(response)).astype(np.int16)


def management(served, path: str) -> requests.Response:
    server, _, _ = served
    headers = {"Authorization": f"Bearer {server.keys().management}"}
    return requests.get(f"{server.management_url}{path}", headers=headers, timeout=60)


def describe(served) -> dict:
    answer = management(served, f"/models/{MODEL}?customized=true")
    assert answer.status_code == 200, answer.text
    return answer.json()[0]["customizedMetadata"]


def wait_for(served, condition, what: str) -> dict:
    """Poll describe until `condition(described)` holds; fail naming `what` past the deadline."""
    deadline = time.monotonic() + WAIT_S
    while True:
        described = describe(served)
        if condition(described):
            return described
        assert time.monotonic() < deadline, f"not seen within {WAIT_S} s: {what}; last: {described.get('styles')}"
        time.sleep(POLL_S / 2)


def drop(served, source, name: str):
    """Move `source` into the folder as `name` in one rename."""
    _, _, folder = served
    target = folder / name
    os.replace(source, target)
    return target


class WorkerMemory(NamedTuple):
    pid: int
    anonymous_bytes: int  # RssAnon + VmSwap: what the worker allocated itself
    adapter_maps_bytes: int  # the LoRA files it has mapped: a loaded adapter's tensors live there

    @property
    def total_bytes(self) -> int:
        return self.anonymous_bytes + self.adapter_maps_bytes


def worker_memory(served) -> WorkerMemory:
    """The memory of the model's one worker (by the pid the management API reports) that
    adapters could leak into, from /proc. Not RSS: safetensors maps a LoRA file and the loaded
    adapter's tensors stay backed by that mapping (measured: RssAnon flat while 32 adapters
    stayed loaded), and on a loaded machine the kernel drops clean file pages from RSS at will;
    the mappings' sizes count whether resident or not."""
    _, _, folder = served
    [worker] = management(served, f"/models/{MODEL}").json()[0]["workers"]
    proc = Path(f"/proc/{worker['pid']}")
    status = (proc / "status").read_text().splitlines()
    anonymous_kb = sum(int(line.split()[1]) for line in status if line.startswith(("RssAnon:", "VmSwap:")))
    mapped = 0
    for line in (proc / "maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(str(folder)):  # also "... (deleted)": removed, still held
            start, stop = (int(address, 16) for address in fields[0].split("-"))
            mapped += stop - start
    return WorkerMemory(worker["pid"], anonymous_kb * 1024, mapped)


def metric_total(served, name: str) -> float:
    """The Prometheus counter `name` of this model (0 before its first count)."""
    server, _, _ = served
    url = f"http://127.0.0.1:{server.ports.metrics}/metrics"
    text = requests.get(url, timeout=30).text
    if "Token Authorization failed" in text:
        text = requests.get(url, timeout=30, headers={"Authorization": f"Bearer {server.keys().inference}"}).text
    lines = [line for line in text.splitlines() if line.startswith(name + "{") and f'ModelName="{MODEL}"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def wait_for_metric(served, name: str, at_least: float) -> float:
    """The frontend reads the worker's metric lines on its own time: poll with a deadline."""
    deadline = time.monotonic() + WAIT_S
    while (value := metric_total(served, name)) < at_least and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return value


def lora(staging, unet_dir, name: str, seed: int, rank: int = 2, alpha: float = 16.0):
    return synthesize_tiny_lora(staging / f"{name}.safetensors", unet_dir, seed=seed, rank=rank, alpha=alpha)


def test_a_dropped_file_is_a_style_within_seconds_and_described(served, staging, unet_dir):
    assert_error(post(served, style="Harbour-1"), 400, "style")
    target = drop(served, lora(staging, unet_dir, "h", seed=21), "Harbour-1.safetensors")
    described = wait_for(served, lambda d: "Harbour-1" in d["styles"], "Harbour-1 listed")
    assert described["style_sources"]["Harbour-1"] == {
        "source": "folder",
        "sha256": sha256_of(target),
        "rank": 2,
        "alpha": 16.0,
    }
    assert "Harbour-1" in described["fields"]["style"]["choices"]
    assert not np.array_equal(image(served, style="Harbour-1"), image(served))
    assert "Harbour-1" in describe(served)["adapters_folder"]["loaded"]


def test_a_removed_file_is_gone_and_a_request_for_it_is_a_400(served, staging, unet_dir):
    target = drop(served, lora(staging, unet_dir, "g", seed=22), "gone.safetensors")
    wait_for(served, lambda d: "gone" in d["styles"], "gone listed")
    image(served, style="gone")
    target.unlink()
    described = wait_for(served, lambda d: "gone" not in d["styles"], "gone unlisted")
    assert "gone" not in described["style_sources"]
    body = assert_error(post(served, style="gone"), 400, "style")
    assert "'gone'" in body["message"]


def test_a_replaced_file_is_reloaded_and_changes_the_image(served, staging, unet_dir):
    drop(served, lora(staging, unet_dir, "a", seed=23), "swap.safetensors")
    wait_for(served, lambda d: "swap" in d["styles"], "swap listed")
    before = image(served, style="swap")
    replacement = lora(staging, unet_dir, "b", seed=24)
    shutil.copy(replacement, staging / "reference.safetensors")
    drop(served, staging / "reference.safetensors", "swap-reference.safetensors")  # the new weights by another name
    new_sha = sha256_of(replacement)
    drop(served, replacement, "swap.safetensors")
    wait_for(
        served,
        lambda d: d["style_sources"].get("swap", {}).get("sha256") == new_sha and "swap-reference" in d["styles"],
        "swap's new sha256",
    )
    after = image(served, style="swap")
    assert not np.array_equal(before, after)
    assert np.abs(after - image(served, style="swap-reference")).max() <= 1  # the new file's weights


def test_an_archived_style_wins_a_name_clash_and_describe_says_so(served, staging, unet_dir):
    archived = describe(served)["style_sources"]["monet"]
    assert archived["source"] == "archive"
    monet = image(served, style="monet")
    drop(served, lora(staging, unet_dir, "m", seed=25), "monet.safetensors")
    described = wait_for(served, lambda d: "monet" in d["adapters_folder"]["shadowed_by_archive"], "monet shadowed")
    assert described["style_sources"]["monet"] == archived
    assert described["styles"].count("monet") == 1
    assert np.abs(image(served, style="monet") - monet).max() <= 1


def test_hostile_names_are_never_listed_nor_read(served, staging, unet_dir, tmp_path_factory):
    _, _, folder = served
    outside = tmp_path_factory.mktemp("outside")
    drop(served, lora(staging, unet_dir, "l", seed=26), "x" * 65 + ".safetensors")
    for name in ("wrong.pt", "wrong.ckpt", "wrong.safetensors.part"):
        shutil.copy(lora(staging, unet_dir, "w", seed=27), folder / name)
    # A valid LoRA outside the folder, linked from inside: it would be usable if it were read.
    (folder / "escape.safetensors").symlink_to(lora(outside, unet_dir, "escape", seed=28))
    described = wait_for(
        served,
        lambda d: {"escape.safetensors", "x" * 65 + ".safetensors"} <= set(d["adapters_folder"]["refused"]),
        "the hostile files refused",
    )
    refused = described["adapters_folder"]["refused"]
    assert "symlink to outside" in refused["escape.safetensors"]
    assert "must match" in refused["x" * 65 + ".safetensors"]
    assert not any(name.startswith("wrong") for name in refused)  # not .safetensors: not even looked at
    for style in ("escape", "x" * 65, "wrong", "../x", "../outside/escape"):
        assert style not in described["styles"] and style not in described["style_sources"]
        assert_error(post(served, style=style), 400, "style")
    assert "symlink" in post(served, style="escape").json()["message"]


def test_a_lora_that_does_not_fit_is_a_400_naming_the_file_and_the_layer(served, staging, unet_dir):
    weights, alpha = read_lora(lora(staging, unet_dir, "f", seed=29))
    module, (down, up) = next(iter(sorted(weights.items())))
    save_lora(staging / "wide.safetensors", {module: (down.repeat(1, 2), up)}, alpha=alpha)
    drop(served, staging / "wide.safetensors", "wide.safetensors")
    wait_for(served, lambda d: "wide.safetensors" in d["adapters_folder"]["refused"], "wide refused")
    body = assert_error(post(served, style="wide"), 400, "style")
    assert "wide.safetensors" in body["message"] and module in body["message"]
    assert "wide" not in describe(served)["styles"]


def test_many_distinct_styles_keep_the_worker_memory_flat(served, staging, unet_dir):
    names = [f"big-{i:02d}" for i in range(DISTINCT)]
    for seed, name in enumerate(names):
        drop(served, lora(staging, unet_dir, name, seed=100 + seed, rank=BIG_RANK), f"{name}.safetensors")
    file_bytes = (served[2] / f"{names[0]}.safetensors").stat().st_size
    assert file_bytes > 7 * 2**20
    wait_for(served, lambda d: set(names) <= set(d["styles"]), f"{DISTINCT} big styles listed")
    loads_before = metric_total(served, "ImagelabAdapterLoads")
    evictions_before = metric_total(served, "ImagelabAdapterEvictions")

    for name in names[:8]:
        image(served, style=name)
    after_8 = worker_memory(served)
    for name in names[8:]:
        image(served, style=name)
    after_all = worker_memory(served)

    assert after_all.pid == after_8.pid  # the same worker throughout: no restart hid a leak
    loaded = describe(served)["adapters_folder"]["loaded"]
    assert loaded == names[-LRU_COUNT:]
    # Keeping the 32 adapters evicted in between would add at least 32 files' worth (~250 MB);
    # allocator noise and the cache's churn stay far below a quarter of that.
    margin = 8 * file_bytes
    grown = after_all.total_bytes - after_8.total_bytes
    report = (
        f"worker memory after 8 styles: {after_8.anonymous_bytes / 2**20:.0f} MB anonymous + "
        f"{after_8.adapter_maps_bytes / 2**20:.0f} MB of mapped LoRA files; after 32 more: "
        f"{after_all.anonymous_bytes / 2**20:.0f} + {after_all.adapter_maps_bytes / 2**20:.0f} MB"
    )
    print(report, f"(margin {margin / 2**20:.0f} MB)")
    assert grown < margin, report
    # Every distinct style was a load and each past the LRU's bound an eviction, in the metrics.
    assert wait_for_metric(served, "ImagelabAdapterLoads", loads_before + DISTINCT) >= loads_before + DISTINCT
    evictions = wait_for_metric(served, "ImagelabAdapterEvictions", evictions_before + DISTINCT - LRU_COUNT)
    assert evictions >= evictions_before + DISTINCT - LRU_COUNT
