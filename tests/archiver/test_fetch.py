"""`weights fetch` against a local HTTP server standing in for the hub, download.pytorch.org
and Dropbox (IMAGELAB_FETCH_MIRROR-style URL rewriting), with fake files."""

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from weightstore.fetch import (
    CHECKSUMS_FILE,
    FetchError,
    RemoteFile,
    fetch,
    file_states,
    mirrored,
    read_checksums,
    remote_files,
)

LCM_PATH = "/huggingface.co/latent-consistency/lcm-lora-sdv1-5/resolve/main/pytorch_lora_weights.safetensors"
VGG_PATH = "/download.pytorch.org/models/vgg19-dcbb9e9d.pth"
ZIP_PATH = "/www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip"
STYLES = ("candy", "mosaic", "rain_princess", "udnie")


class FakeHost:
    """path -> (bytes, extra headers); honours Range like the real hosts; logs each request."""

    def __init__(self):
        self.files, self.requests = {}, []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                host.requests.append((path, self.headers.get("Range")))
                if path not in host.files:
                    self.send_error(404)
                    return
                data, headers = host.files[path]
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path, data, **headers):
        self.files[path] = (data, headers)


@pytest.fixture
def host():
    fake = FakeHost()
    yield fake
    fake.server.shutdown()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_hub_file_is_checked_against_the_hubs_sha256_and_recorded(tmp_path, host):
    lora = b"lcm lora weights" * 100
    host.serve(LCM_PATH, lora, **{"X-Linked-Etag": f'"{sha(lora)}"'})

    done = fetch(tmp_path, only=["lcm"], mirror=host.url)

    assert [(d.target, d.status, d.sha256) for d in done] == [("lora/lcm.safetensors", "downloaded", sha(lora))]
    assert (tmp_path / "lora" / "lcm.safetensors").read_bytes() == lora
    record = json.loads((tmp_path / CHECKSUMS_FILE).read_text())["lora/lcm.safetensors"]
    assert record["sha256"] == sha(lora) and record["bytes"] == len(lora)
    assert record["verified"] == "against a known digest"
    assert record["url"].startswith("https://huggingface.co/latent-consistency/")


def test_a_second_fetch_downloads_nothing(tmp_path, host):
    host.serve(LCM_PATH, b"lora")
    fetch(tmp_path, only=["lcm"], mirror=host.url)
    host.requests.clear()
    assert [d.status for d in fetch(tmp_path, only=["lcm"], mirror=host.url)] == ["present"]
    assert host.requests == []


def test_a_checksum_mismatch_fails_naming_the_file_and_leaves_nothing(tmp_path, host):
    host.serve(VGG_PATH, b"definitely not VGG19")  # torchvision's name promises sha256 dcbb9e9d...

    with pytest.raises(FetchError, match=r"vgg19/vgg19-dcbb9e9d.pth: sha256 \w+ does not match the expected dcbb9e9d"):
        fetch(tmp_path, only=["vgg19"], mirror=host.url)

    assert sorted(p.name for p in (tmp_path / "vgg19").iterdir()) == []


def test_a_mismatch_with_the_hubs_sha256_fails_too(tmp_path, host):
    host.serve(LCM_PATH, b"tampered", **{"X-Linked-Etag": sha(b"original")})
    with pytest.raises(FetchError, match="lora/lcm.safetensors"):
        fetch(tmp_path, only=["lcm"], mirror=host.url)
    assert list((tmp_path / "lora").iterdir()) == []
    assert "lora/lcm.safetensors" not in read_checksums(tmp_path)


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, host):
    lora = bytes(range(256)) * 64
    host.serve(LCM_PATH, lora, **{"X-Linked-Etag": sha(lora)})
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "lcm.safetensors.part").write_bytes(lora[:5000])

    fetch(tmp_path, only=["lcm"], mirror=host.url)

    assert host.requests == [(LCM_PATH, "bytes=5000-")]
    assert (tmp_path / "lora" / "lcm.safetensors").read_bytes() == lora
    assert not (tmp_path / "lora" / "lcm.safetensors.part").exists()


def test_the_fast_style_zip_is_unpacked_into_the_layout(tmp_path, host):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for style in STYLES:
            bundle.writestr(f"saved_models/{style}.pth", f"{style} state dict".encode())
    host.serve(ZIP_PATH, buffer.getvalue())

    done = fetch(tmp_path, only=["fast_style"], mirror=host.url)

    assert sorted(d.target for d in done) == sorted(f"fast_style/{s}.pth" for s in STYLES)
    assert (tmp_path / "fast_style" / "udnie.pth").read_bytes() == b"udnie state dict"
    assert not (tmp_path / ".downloads" / "saved_models.zip").exists()
    checksums = json.loads((tmp_path / CHECKSUMS_FILE).read_text())
    assert checksums["fast_style/candy.pth"]["sha256"] == sha(b"candy state dict")
    assert checksums["fast_style/candy.pth"]["verified"] == "recorded at download"


def test_a_missing_remote_file_names_it(tmp_path, host):
    with pytest.raises(FetchError, match="lcm.safetensors.*404"):
        fetch(tmp_path, only=["lcm"], mirror=host.url)


def test_a_file_changed_since_download_is_fetched_again(tmp_path, host):
    host.serve(LCM_PATH, b"good lora")
    fetch(tmp_path, only=["lcm"], mirror=host.url)
    (tmp_path / "lora" / "lcm.safetensors").write_bytes(b"truncated")
    assert [d.status for d in fetch(tmp_path, only=["lcm"], mirror=host.url)] == ["downloaded"]
    assert (tmp_path / "lora" / "lcm.safetensors").read_bytes() == b"good lora"


def test_status_tells_missing_from_downloaded_and_hand_placed(tmp_path, host):
    host.serve(LCM_PATH, b"lora")
    fetch(tmp_path, only=["lcm"], mirror=host.url)
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
        fetch(tmp_path, only=["sd21"])
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("x", "https://a.org/f", "f", sha256="XYZ")
