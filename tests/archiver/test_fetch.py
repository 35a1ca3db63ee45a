"""`weights fetch` against a local HTTP server standing in for the hub (enough of its HTTP API
for huggingface_hub: HEAD with X-Repo-Commit and ETag, GET with Range on
/{repo}/resolve/{revision}/{path}), download.pytorch.org and Dropbox, with fake files."""

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from weightstore.fetch import (
    CHECKSUMS_FILE,
    PINS_FILE,
    FetchError,
    Pins,
    RemoteFile,
    fetch,
    file_states,
    mirrored,
    read_checksums,
    remote_files,
)

LCM_REPO = "latent-consistency/lcm-lora-sdv1-5"
LCM_FILE = "pytorch_lora_weights.safetensors"
LCM_TARGET = "lora/lcm.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
VGG_PATH = "/download.pytorch.org/models/vgg19-dcbb9e9d.pth"
ZIP_PATH = "/www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip"
STYLES = ("candy", "mosaic", "rain_princess", "udnie")
UNPINNED = Pins({}, {})


def hub_path(repo: str, path: str, revision: str) -> str:
    return f"/huggingface.co/{repo}/resolve/{revision}/{path}"


class FakeHost:
    """path -> (bytes, extra headers); honours Range like the real hosts; logs each request.
    Hub files answer at `main` and at their commit, with the headers the hub sends."""

    def __init__(self):
        self.files, self.requests = {}, []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, body: bool):
                path = self.path.split("?", 1)[0]
                host.requests.append((self.command, path, self.headers.get("Range")))
                if path not in host.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, headers = host.files[path]
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def do_GET(self):
                self._answer(body=True)

            def do_HEAD(self):
                self._answer(body=False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path, data, **headers):
        self.files[path] = (data, headers)

    def serve_hub(self, repo, path, data, commit=COMMIT, etag=None):
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag or sha(data)}"'}
        for revision in ("main", commit):
            self.serve(hub_path(repo, path, revision), data, **headers)

    def gets(self):
        return [(path, rng) for method, path, rng in self.requests if method == "GET"]


@pytest.fixture
def host(monkeypatch):
    import huggingface_hub.constants

    # tests/conftest.py sets HF_HUB_OFFLINE for the whole run; this fake hub is on loopback.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    fake = FakeHost()
    yield fake
    fake.server.shutdown()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tofu(root, host, **kwargs):
    """A fetch from the loopback mirror trusting what it serves (no reviewed pins)."""
    return fetch(root, mirror=host.url, allow_http=True, trust_on_first_use=True, pins=UNPINNED, **kwargs)


def test_trust_on_first_use_pins_main_to_one_commit_and_records_what_arrived(tmp_path, host):
    lora = b"lcm lora weights" * 100
    host.serve_hub(LCM_REPO, LCM_FILE, lora)

    done = tofu(tmp_path, host, only=["lcm"])

    assert [(d.target, d.status, d.sha256) for d in done] == [(LCM_TARGET, "downloaded", sha(lora))]
    assert (tmp_path / "lora" / "lcm.safetensors").read_bytes() == lora
    # main is resolved once (HEAD), then the file comes from that commit, never from `main`.
    assert host.gets() == [(hub_path(LCM_REPO, LCM_FILE, COMMIT), None)]
    record = json.loads((tmp_path / CHECKSUMS_FILE).read_text())[LCM_TARGET]
    assert record["sha256"] == sha(lora) and record["bytes"] == len(lora)
    assert record["revision"] == COMMIT and record["verified"] == "recorded on first use"
    assert f"/{LCM_REPO}/resolve/{COMMIT}/" in record["url"]


def test_a_pinned_file_comes_from_the_pinned_commit_and_must_match_its_pin(tmp_path, host):
    lora = b"pinned lora"
    other = "fedcba9876543210fedcba9876543210fedcba98"
    host.serve_hub(LCM_REPO, LCM_FILE, lora, commit=other)
    pins = Pins({LCM_REPO: other}, {LCM_TARGET: sha(lora)})

    done = fetch(tmp_path, only=["lcm"], mirror=host.url, allow_http=True, pins=pins)

    assert [d.status for d in done] == ["downloaded"]
    assert [m for m, p, _ in host.requests if p.endswith("/main/" + LCM_FILE)] == []  # main never asked
    assert read_checksums(tmp_path)[LCM_TARGET]["verified"] == "against the reviewed pin"


def test_a_file_differing_from_its_pin_is_discarded_even_if_the_hub_vouches_for_it(tmp_path, host):
    tampered = b"tampered"
    host.serve_hub(LCM_REPO, LCM_FILE, tampered)  # the hub's own ETag matches the tampered bytes
    pins = Pins({LCM_REPO: COMMIT}, {LCM_TARGET: sha(b"original")})

    with pytest.raises(FetchError, match=r"lora/lcm.safetensors: sha256 \w+ does not match the expected \w+ \(pinned"):
        fetch(tmp_path, only=["lcm"], mirror=host.url, allow_http=True, pins=pins)

    assert not (tmp_path / "lora" / "lcm.safetensors").exists()
    assert LCM_TARGET not in read_checksums(tmp_path)


def test_unpinned_files_are_refused_before_any_download(tmp_path, host):
    host.serve_hub(LCM_REPO, LCM_FILE, b"lora")
    with pytest.raises(
        FetchError, match=r"no reviewed pin.*sha256 of lora/lcm.safetensors.*revision of latent"
    ) as refused:
        fetch(tmp_path, only=["lcm"], mirror=host.url, allow_http=True, pins=UNPINNED)
    assert "--trust-on-first-use" in str(refused.value)
    assert host.requests == []


def test_a_plain_http_mirror_or_endpoint_is_refused_unless_allowed(tmp_path, host, monkeypatch):
    with pytest.raises(FetchError, match=r"mirror http://127.0.0.1:\d+ is not HTTPS.*--allow-http"):
        fetch(tmp_path, only=["lcm"], mirror=host.url, trust_on_first_use=True, pins=UNPINNED)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub-mirror.internal")
    with pytest.raises(FetchError, match="HF_ENDPOINT http://hub-mirror.internal is not HTTPS"):
        fetch(tmp_path, only=["lcm"], trust_on_first_use=True, pins=UNPINNED)
    assert host.requests == []


def test_the_reviewed_pin_table_covers_every_file_and_says_unknown_plainly():
    pins = Pins.load()  # validates every known value's form
    table = remote_files() + remote_files("fp16")
    assert {r.target for r in table} <= set(pins.sha256), "a downloadable file has no entry in pins.json"
    assert {r.repo for r in table if r.repo} <= set(pins.revisions)
    assert "UNKNOWN" in " ".join(json.loads(PINS_FILE.read_text())["about"])


def test_a_second_fetch_downloads_nothing(tmp_path, host):
    host.serve_hub(LCM_REPO, LCM_FILE, b"lora")
    tofu(tmp_path, host, only=["lcm"])
    host.requests.clear()
    assert [d.status for d in tofu(tmp_path, host, only=["lcm"])] == ["present"]
    assert host.requests == []


def test_a_checksum_mismatch_fails_naming_the_file_and_leaves_nothing(tmp_path, host):
    host.serve(VGG_PATH, b"definitely not VGG19")  # torchvision's name promises sha256 dcbb9e9d...

    with pytest.raises(FetchError, match=r"vgg19/vgg19-dcbb9e9d.pth: sha256 \w+ does not match the expected dcbb9e9d"):
        tofu(tmp_path, host, only=["vgg19"])

    assert sorted(p.name for p in (tmp_path / "vgg19").iterdir()) == []


def test_on_first_use_a_mismatch_with_the_hubs_sha256_fails_too(tmp_path, host):
    host.serve_hub(LCM_REPO, LCM_FILE, b"tampered", etag=sha(b"original"))
    with pytest.raises(FetchError, match="lora/lcm.safetensors"):
        tofu(tmp_path, host, only=["lcm"])
    assert not (tmp_path / "lora" / "lcm.safetensors").exists()
    assert LCM_TARGET not in read_checksums(tmp_path)


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, host):
    weights = bytes(range(256)) * 64
    host.serve(VGG_PATH, weights)
    (tmp_path / "vgg19").mkdir()
    (tmp_path / "vgg19" / "vgg19-dcbb9e9d.pth.part").write_bytes(weights[:5000])
    pins = Pins({}, {"vgg19/vgg19-dcbb9e9d.pth": sha(weights)})

    fetch(tmp_path, only=["vgg19"], mirror=host.url, allow_http=True, pins=pins)

    assert host.gets() == [(VGG_PATH, "bytes=5000-")]
    assert (tmp_path / "vgg19" / "vgg19-dcbb9e9d.pth").read_bytes() == weights
    assert not (tmp_path / "vgg19" / "vgg19-dcbb9e9d.pth.part").exists()


def test_the_fast_style_zip_is_unpacked_into_the_layout(tmp_path, host):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for style in STYLES:
            bundle.writestr(f"saved_models/{style}.pth", f"{style} state dict".encode())
    host.serve(ZIP_PATH, buffer.getvalue())

    done = tofu(tmp_path, host, only=["fast_style"])

    assert sorted(d.target for d in done) == sorted(f"fast_style/{s}.pth" for s in STYLES)
    assert (tmp_path / "fast_style" / "udnie.pth").read_bytes() == b"udnie state dict"
    assert not (tmp_path / ".downloads" / "saved_models.zip").exists()
    checksums = json.loads((tmp_path / CHECKSUMS_FILE).read_text())
    assert checksums["fast_style/candy.pth"]["sha256"] == sha(b"candy state dict")
    assert checksums["fast_style/candy.pth"]["verified"] == "recorded on first use (its zip)"


def test_a_missing_remote_file_names_it(tmp_path, host):
    with pytest.raises(FetchError, match="lcm.safetensors.*latent-consistency/lcm-lora-sdv1-5@main"):
        tofu(tmp_path, host, only=["lcm"])
    with pytest.raises(FetchError, match="vgg19-dcbb9e9d.pth.*404"):
        tofu(tmp_path, host, only=["vgg19"])


def test_a_file_changed_since_download_is_fetched_again(tmp_path, host):
    host.serve_hub(LCM_REPO, LCM_FILE, b"good lora")
    tofu(tmp_path, host, only=["lcm"])
    (tmp_path / "lora" / "lcm.safetensors").write_bytes(b"truncated")
    assert [d.status for d in tofu(tmp_path, host, only=["lcm"])] == ["downloaded"]
    assert (tmp_path / "lora" / "lcm.safetensors").read_bytes() == b"good lora"


def test_status_tells_missing_from_downloaded_and_hand_placed(tmp_path, host):
    host.serve_hub(LCM_REPO, LCM_FILE, b"lora")
    tofu(tmp_path, host, only=["lcm"])
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")
    states = {target: state for _, target, state in file_states(tmp_path)}
    assert states["lora/lcm.safetensors"] == "real (as downloaded)"
    assert states["clip/config.json"] == "real (no record)"
    assert states["sd15/unet/diffusion_pytorch_model.safetensors"] == "missing"


def test_the_table_covers_the_weights_layout():
    table = remote_files()
    targets = [t for r in table for t in ([x for _, x in r.extract] or [r.target])]
    sd15 = [t for t in targets if t.startswith("sd15/")]
    # model_index.json marks sd15/ as real: it must come after every other sd15 file.
    assert sd15[-1] == "sd15/model_index.json"
    for folder in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert any(t.startswith(f"sd15/{folder}/") for t in sd15), folder
    assert {
        "vgg19/vgg19-dcbb9e9d.pth",
        "lora/lcm.safetensors",
        "clip/model.safetensors",
        *(f"fast_style/{s}.pth" for s in STYLES),
    } <= set(targets)
    assert all(r.url.startswith("https://") for r in table)
    fp16 = [r.target for r in remote_files("fp16") if r.target.endswith(".fp16.safetensors")]
    assert len(fp16) == 3


def test_mirrored_keeps_host_path_and_query():
    assert mirrored("https://a.org/x/y.zip?dl=1", "http://127.0.0.1:9/") == "http://127.0.0.1:9/a.org/x/y.zip?dl=1"
    assert mirrored("https://a.org/x", None) == "https://a.org/x"


def test_unknown_groups_and_bad_digests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown weight groups"):
        fetch(tmp_path, only=["sd21"], pins=UNPINNED)
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("x", "https://a.org/f", "f", sha256="XYZ")
