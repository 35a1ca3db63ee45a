"""The deploy flow's parts without a TorchServe: endpoints and keys, error mapping, smoke
tests against a fake server, refusals that happen before any call, the CLI's choices."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import archiver.__main__ as cli
from operations.deploy import DeployError, Endpoint, ManagementClient, deploy, prune
from operations.server import Keys
from operations.smoke import SMOKE_REQUESTS, gradient_png, run_smoke_test, smoke_request


class FakeServer:
    """(method, path) -> (status, content type, body); records requests with their headers."""

    def __init__(self, routes):
        self.routes, self.seen = routes, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                fake.seen.append((self.command, self.path, self.headers.get("Authorization")))
                status, kind, body = fake.routes.get(
                    (self.command, self.path.split("?")[0]), (404, "application/json", b'{"message": "nope"}')
                )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake():
    servers = []

    def start(routes):
        servers.append(FakeServer(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.server.shutdown()


def write_workdir(path, keys=("inf-key", "mgmt-key")):
    (path / "config.properties").write_text(
        "# a comment=with equals\ninference_address=http://0.0.0.0:18080\nmanagement_address=http://127.0.0.1:18081\n"
    )
    (path / "key_file.json").write_text(
        json.dumps({"management": {"key": keys[1]}, "inference": {"key": keys[0]}, "API": {"key": "x"}})
    )
    return path


def test_endpoint_from_workdir_reads_addresses_and_fresh_keys(tmp_path):
    endpoint = Endpoint.from_workdir(write_workdir(tmp_path))
    assert (endpoint.management_url, endpoint.inference_url) == ("http://127.0.0.1:18081", "http://127.0.0.1:18080")
    assert endpoint.headers("management") == {"Authorization": "Bearer mgmt-key"}
    write_workdir(tmp_path, ("renewed-inf", "renewed-mgmt"))  # TorchServe renews keys hourly
    assert endpoint.headers("inference") == {"Authorization": "Bearer renewed-inf"}


def test_explicit_and_environment_keys_win_over_the_key_file(tmp_path, monkeypatch):
    write_workdir(tmp_path)
    assert Endpoint.from_workdir(tmp_path, keys=Keys("i", "m")).headers("management") == {"Authorization": "Bearer m"}
    monkeypatch.setenv("IMAGELAB_INFERENCE_KEY", "env-i")
    monkeypatch.setenv("IMAGELAB_MANAGEMENT_KEY", "env-m")
    assert Endpoint.from_workdir(tmp_path).headers("inference") == {"Authorization": "Bearer env-i"}


def test_no_keys_anywhere_means_no_header(tmp_path):
    assert Endpoint("http://m", "http://i").headers("management") == {}


def test_a_missing_workdir_config_says_which(tmp_path):
    with pytest.raises(DeployError, match="config.properties not found"):
        Endpoint.from_workdir(tmp_path)


def test_a_closed_model_api_names_the_way_to_open_it(fake):
    server = fake({("POST", "/models"): (405, "application/json", b'{"message": "Method Not Allowed"}')})
    client = ManagementClient(Endpoint(server.url, server.url, keys=Keys("i", "m")))
    with pytest.raises(DeployError, match=r"enable_model_api=false.*serve --allow-deploy"):
        client.register("fast_style-2.0.mar", "fast_style", 1)
    query = "url=fast_style-2.0.mar&model_name=fast_style&initial_workers=1&synchronous=true"
    assert server.seen[0][0:2] == ("POST", f"/models?{query}")
    assert server.seen[0][2] == "Bearer m"


def test_server_errors_carry_the_servers_message(fake):
    missing = b'{"message": "Model version 2.0 does not exist"}'
    server = fake({("PUT", "/models/m/2.0/set-default"): (404, "application/json", missing)})
    with pytest.raises(DeployError, match="404 Model version 2.0 does not exist"):
        ManagementClient(Endpoint(server.url, server.url)).set_default("m", "2.0")


def test_prune_keeps_the_default_even_when_old(fake):
    versions = json.dumps([{"modelVersion": v} for v in ("1.0", "2.0", "3.0", "10.0")]).encode()
    server = fake(
        {
            ("GET", "/models/m"): (200, "application/json", json.dumps([{"modelVersion": "1.0"}]).encode()),
            ("GET", "/models/m/all"): (200, "application/json", versions),
            ("DELETE", "/models/m/2.0"): (200, "application/json", b"{}"),
        }
    )
    assert prune(Endpoint(server.url, server.url), "m", keep=2) == ["2.0"]
    with pytest.raises(ValueError, match="keep"):
        prune(Endpoint(server.url, server.url), "m", keep=0)


def test_a_tampered_archive_is_refused_before_any_call(tmp_path, make_mar, fake):
    server = fake({})
    mar = make_mar(
        tmp_path / "m-2.0.mar",
        "m",
        "2.0",
        manifest_overrides={"weights": [{"path": "weights/candy.safetensors", "sha256": "0" * 64}]},
    )
    with pytest.raises(DeployError, match="weights/candy.safetensors"):
        deploy(Endpoint(server.url, server.url), mar)
    assert server.seen == []


def test_smoke_requests_use_each_models_fields():
    assert set(SMOKE_REQUESTS) == {"fast_style", "neural_style", "txt2img", "animals"}
    assert smoke_request("neural_style")["data"]["steps"] == "2"
    assert set(smoke_request("neural_style")["files"]) == {"content", "style_image"}
    assert smoke_request("animals")["json"] == {"animal": "cat", "steps": 2, "width": 64, "height": 64, "seed": 0}
    assert smoke_request("txt2img")["json"]["steps"] == 2
    with pytest.raises(ValueError, match="no smoke request"):
        smoke_request("upscale")


def test_the_smoke_test_wants_a_200_with_an_image(fake):
    png = gradient_png(64)
    server = fake(
        {
            ("POST", "/predictions/fast_style/2.0"): (200, "image/png", png),
            ("POST", "/predictions/fast_style/3.0"): (200, "image/png", b"not an image"),
            ("POST", "/predictions/fast_style/4.0"): (400, "application/json", b'{"message": "max_side_px"}'),
            ("POST", "/predictions/txt2img/2.0"): (
                200,
                "application/json",
                json.dumps({"images": [base64.b64encode(png).decode()]}).encode(),
            ),
        }
    )
    ok = run_smoke_test(server.url, "fast_style", "2.0", {"Authorization": "Bearer i"})
    assert (ok.ok, ok.status, ok.detail) == (True, 200, "PNG 64x64")
    assert server.seen[0][2] == "Bearer i"
    assert run_smoke_test(server.url, "txt2img", "2.0", {}).ok
    garbled = run_smoke_test(server.url, "fast_style", "3.0", {})
    assert not garbled.ok and "not an image" in garbled.detail
    refused = run_smoke_test(server.url, "fast_style", "4.0", {})
    assert (refused.ok, refused.status) == (False, 400) and "max_side_px" in refused.detail


def test_build_version_next_counts_per_model(tmp_path, monkeypatch):
    (tmp_path / "fast_style-1.0.mar").write_bytes(b"")
    (tmp_path / "fast_style-2.0.mar").write_bytes(b"")
    calls = []
    monkeypatch.setattr(cli, "build_all", lambda layout, store, models, version: calls.append((models, version)) or [])
    cli.main(["build", "--store", str(tmp_path), "--version", "next", "--models", "fast_style", "neural_style"])
    assert calls == [(["fast_style"], "3.0"), (["neural_style"], "1.0")]


def test_deploy_copies_an_outside_archive_into_the_store_once(tmp_path, make_mar):
    from operations.lifecycle_cli import _archive_for

    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir(), elsewhere.mkdir()
    mar = make_mar(elsewhere / "m-2.0.mar", "m", "2.0")
    args = type("Args", (), {"store": store, "archive": mar, "version": None, "model": "m"})
    assert _archive_for(args) == store.resolve() / "m-2.0.mar"
    assert (store / "m-2.0.mar").read_bytes() == mar.read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        _archive_for(args)
    args.archive = None
    assert _archive_for(args) == store.resolve() / "m-2.0.mar"  # the newest by default
    args.version = "5.0"
    with pytest.raises(ValueError, match=r"not found; versions in the store: \['2.0'\]"):
        _archive_for(args)
