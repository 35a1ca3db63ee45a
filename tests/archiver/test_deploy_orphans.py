"""A deploy cut off after register must not leave an orphan version behind, and prune must
remove one that was left (the deploy was killed before it could withdraw)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import operations.deploy as deploy_module
from operations.deploy import Endpoint, deploy, pending_marker, prune


class FakeManagement:
    """A stateful management API for one model: register, describe, set-default, unregister."""

    def __init__(self, model: str, versions: list, default: str):
        self.model, self.versions, self.default = model, list(versions), default
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == f"/models/{fake.model}/all":
                    return self._send(200, [{"modelVersion": v} for v in fake.versions])
                if self.path == f"/models/{fake.model}":
                    return self._send(200, [{"modelVersion": fake.default}])
                self._send(404, {"message": "nope"})

            def do_POST(self):
                version = self.path.split("url=", 1)[1].split("&")[0].removesuffix(".mar").split("-")[-1]
                fake.versions.append(version)
                self._send(200, {"status": "registered"})

            def do_PUT(self):
                fake.default = self.path.split("/")[3]
                self._send(200, {})

            def do_DELETE(self):
                fake.versions.remove(self.path.split("/")[3])
                self._send(200, {})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = Endpoint(f"http://127.0.0.1:{self.server.server_port}", "http://unused")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    fake = FakeManagement("m", ["1.0"], "1.0")
    yield fake
    fake.server.shutdown()


def test_a_deploy_interrupted_after_register_withdraws_the_new_version(tmp_path, make_mar, server, monkeypatch):
    mar = make_mar(tmp_path / "m-2.0.mar", "m", "2.0")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM raised as one) during the smoke test

    monkeypatch.setattr(deploy_module, "run_smoke_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deploy(server.endpoint, mar)

    assert (server.versions, server.default) == (["1.0"], "1.0")
    assert not pending_marker(tmp_path, "m", "2.0").exists()


def test_prune_removes_an_orphan_left_by_a_killed_deploy_even_when_newest(tmp_path, server):
    server.versions += ["2.0", "3.0"]  # 3.0: registered by a deploy that was killed
    server.default = "2.0"
    marker = pending_marker(tmp_path, "m", "3.0")
    marker.parent.mkdir()
    marker.write_text("2.0\n")

    assert prune(server.endpoint, "m", keep=2, store=tmp_path) == ["1.0", "3.0"]
    assert server.versions == ["2.0"] and not marker.exists()


def test_prune_never_removes_the_default_even_if_marked(tmp_path, server):
    marker = pending_marker(tmp_path, "m", "1.0")
    marker.parent.mkdir()
    marker.write_text("\n")
    assert prune(server.endpoint, "m", keep=1, store=tmp_path) == []
    assert server.versions == ["1.0"]
