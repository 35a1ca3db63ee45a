"""The playground's gateway against a recording stand-in for TorchServe on loopback: forwarding,
token injection (the browser never sees a key), streaming pass-through, key renewal, and what
it refuses. The stand-in is what lets a test see exactly which requests reached "TorchServe"
and hold a stream back; the playground against the real TorchServe is tests/frontend/test_e2e.py."""

import http.client
import io
import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.guard import CLIENT_HEADER
from gateway.server import make_gateway
from imagelab.cancellation import CANCEL_DIR_ENV, CancelMarkers

INFERENCE_KEY, MANAGEMENT_KEY = "inf-key-0123456789", "mgmt-key-9876543210"
STALE_KEY_BODY = {
    "code": 400,
    "type": "InvalidKeyException",
    "message": "Token Authorization failed. Token either incorrect, expired, or not provided correctly",
}


class FakeTorchServe(ThreadingHTTPServer):
    """Records every request; refuses keys other than `accepted` the way TorchServe does."""

    daemon_threads = True

    def __init__(self):
        self.seen = []
        self.accepted = {INFERENCE_KEY, MANAGEMENT_KEY}
        self.release_stream = threading.Event()
        super().__init__(("127.0.0.1", 0), FakeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer()

    do_POST = do_PUT = do_GET

    def _answer(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": auth,
                "body": body,
                "content_type": self.headers.get("Content-Type"),
            }
        )
        if auth.removeprefix("Bearer ") not in self.server.accepted:
            return self._json(400, STALE_KEY_BODY)
        if self.path.startswith("/predictions/stream"):
            return self._stream()
        if self.path.startswith("/predictions/bad"):
            return self._json(
                400,
                {
                    "code": 400,
                    "type": "InvalidInput",
                    "message": "'steps' must be from 1 to 100; got 0",
                    "field": "steps",
                },
            )
        self.send_response(200)
        payload = json.dumps({"path": self.path, "bytes": len(body)}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "session=upstream")
        self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("x-request-id", "abc")
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self):
        """Chunked NDJSON like TorchServe's intermediate responses; the second line waits
        until the test has read the first, so a buffering gateway would deadlock."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line, wait in (
            (b'{"type": "progress", "step": 1, "of": 2}\n', True),
            (b'{"type": "progress", "step": 2, "of": 2}\n{"type": "result", "images": []}\n', False),
        ):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            if wait and not self.server.release_stream.wait(10):
                break
        self.wfile.write(b"0\r\n\r\n")

    def _json(self, status, document):
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def write_keys(path: Path, inference: str, management: str) -> None:
    path.write_text(
        json.dumps(
            {
                "management": {"key": management, "expiration time": "x"},
                "inference": {"key": inference, "expiration time": "x"},
                "API": {"key": "api-key"},
            }
        )
    )


@pytest.fixture
def upstream():
    fake = FakeTorchServe()
    threading.Thread(target=fake.serve_forever, args=(0.05,), daemon=True).start()
    yield fake
    fake.release_stream.set()
    fake.shutdown()
    fake.server_close()


@pytest.fixture
def make(upstream, tmp_path):
    """make(**config overrides) -> a running gateway in front of the fake upstream."""
    started = []
    key_file = tmp_path / "key_file.json"
    write_keys(key_file, INFERENCE_KEY, MANAGEMENT_KEY)
    static = tmp_path / "dist"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>playground</title>")
    (static / "assets" / "app-123.js").write_text("console.log('hi')")

    def start(**overrides):
        settings = dict(
            inference_url=upstream.url,
            management_url=upstream.url,
            key_file=key_file,
            static_dir=static,
            port=0,
            upstream_timeout_s=10,
        )
        gateway = make_gateway(GatewayConfig(**{**settings, **overrides}))
        gateway.start_background()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.shutdown()
        gateway.server_close()


def call(gateway, method, path, body=None, headers=None):
    """A request as the playground sends it: state-changing ones carry the client header."""
    headers = {CLIENT_HEADER: "playground", **(headers or {})} if method in ("POST", "PUT", "DELETE") else headers
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_predictions_go_to_inference_with_the_inference_key_not_the_browsers(make, upstream):
    gateway = make()
    body = b'--b\r\nContent-Disposition: form-data; name="style"\r\n\r\ncandy\r\n--b--\r\n'
    response, data = call(
        gateway,
        "POST",
        "/api/predictions/fast_style/2.0",
        body,
        {"Content-Type": "multipart/form-data; boundary=b", "Authorization": "Bearer from-the-browser"},
    )
    assert response.status == 200, data
    assert json.loads(data) == {"path": "/predictions/fast_style/2.0", "bytes": len(body)}
    [seen] = upstream.seen
    assert seen["auth"] == f"Bearer {INFERENCE_KEY}"
    assert seen["body"] == body and seen["content_type"] == "multipart/form-data; boundary=b"


def test_model_reads_go_to_management_with_the_management_key_and_the_describe_query(make, upstream):
    gateway = make()
    response, data = call(gateway, "GET", "/api/models/animals?customized=true")
    assert response.status == 200
    assert json.loads(data)["path"] == "/models/animals?customized=true"
    response, data = call(gateway, "GET", "/api/models/animals/all")
    assert json.loads(data)["path"] == "/models/animals/all"
    assert [s["auth"] for s in upstream.seen] == [f"Bearer {MANAGEMENT_KEY}"] * 2


def test_no_key_or_upstream_credential_header_reaches_the_browser(make):
    gateway = make()
    for method, path in (("GET", "/api/models"), ("POST", "/api/predictions/x"), ("GET", "/api/gateway"), ("GET", "/")):
        response, data = call(gateway, method, path, b"" if method == "POST" else None)
        everything = data.decode() + json.dumps(response.getheaders())
        assert INFERENCE_KEY not in everything and MANAGEMENT_KEY not in everything
        headers = {name.lower() for name, _ in response.getheaders()}
        assert not headers & {"set-cookie", "www-authenticate", "authorization"}
    assert response.getheader("Content-Security-Policy").startswith("default-src 'self'")


def test_streamed_progress_passes_through_before_the_job_ends(make, upstream):
    gateway = make()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    connection.request(
        "POST",
        "/api/predictions/stream",
        body=b"{}",
        headers={"Content-Type": "application/json", CLIENT_HEADER: "playground"},
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/x-ndjson"
    assert response.getheader("Transfer-Encoding") == "chunked"
    # The upstream holds the rest back until this line has arrived: a buffering gateway times out here.
    first = json.loads(response.readline())
    assert first == {"type": "progress", "step": 1, "of": 2}
    upstream.release_stream.set()
    rest = [json.loads(line) for line in response.read().splitlines() if line]
    assert [e["type"] for e in rest] == ["progress", "result"]
    connection.close()


def test_a_renewed_key_is_re_read_and_the_request_sent_once_more(make, upstream, tmp_path):
    gateway = make()
    assert call(gateway, "GET", "/api/models")[0].status == 200  # caches the first keys
    key_file = tmp_path / "key_file.json"
    stat = key_file.stat()
    write_keys(key_file, "inf-renewed", "mgmt-renewed")
    # Same mtime as before: only TorchServe's refusal can tell the gateway the keys changed.
    os.utime(key_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    upstream.accepted = {"inf-renewed", "mgmt-renewed"}
    response, data = call(gateway, "POST", "/api/predictions/fast_style", b"abc", {"Content-Type": "image/png"})
    assert response.status == 200, data
    assert [s["auth"] for s in upstream.seen[1:]] == [f"Bearer {INFERENCE_KEY}", "Bearer inf-renewed"]
    assert upstream.seen[-1]["body"] == b"abc"


def test_a_key_that_stays_wrong_is_retried_only_once(make, upstream):
    gateway = make()
    upstream.accepted = set()
    response, data = call(gateway, "GET", "/api/models")
    assert response.status == 400 and json.loads(data)["type"] == "InvalidKeyException"
    assert len(upstream.seen) == 2


def test_the_servers_own_400_passes_through_unchanged_and_unrepeated(make, upstream):
    gateway = make()
    response, data = call(gateway, "POST", "/api/predictions/bad", b"{}", {"Content-Type": "application/json"})
    assert response.status == 400
    assert json.loads(data) == {
        "code": 400,
        "type": "InvalidInput",
        "message": "'steps' must be from 1 to 100; got 0",
        "field": "steps",
    }
    assert len(upstream.seen) == 1


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("DELETE", "/api/models/fast_style/1.0", 405),  # unregister
        ("POST", "/api/models?url=evil.mar", 405),  # register
        ("PUT", "/api/models/fast_style?min_worker=9", 405),  # scale workers
        ("PUT", "/api/models/fast_style/1.0/set-default", 403),  # off unless --allow-set-default
        ("GET", "/api/predictions/fast_style", 405),
        ("GET", "/api/models/fast_style?url=x", 400),
        ("GET", "/api/metrics", 404),
        ("GET", "/api/ping", 404),
        ("POST", "/api/predictions/../models", 404),
        ("POST", "/api/predictions/fast%5Fstyle", 404),
        ("GET", "/api/v2/models/fast_style/infer", 404),
        ("POST", "/index.html", 405),
        ("GET", "/../gateway/server.py", 404),
        ("GET", "/%2e%2e/key_file.json", 404),
    ],
)
def test_everything_else_is_refused_without_reaching_torchserve(make, upstream, method, path, status):
    gateway = make()
    response, data = call(gateway, method, path, b"x" if method in ("POST", "PUT") else None)
    assert response.status == status, data
    body = json.loads(data)
    assert body["code"] == status and body["message"]
    assert upstream.seen == []


def test_set_default_is_forwarded_with_the_management_key_when_allowed(make, upstream):
    gateway = make(allow_set_default=True)
    response, _ = call(gateway, "PUT", "/api/models/fast_style/1.0/set-default", b"")
    assert response.status == 200
    assert upstream.seen[0]["path"] == "/models/fast_style/1.0/set-default"
    assert upstream.seen[0]["auth"] == f"Bearer {MANAGEMENT_KEY}"
    assert json.loads(call(gateway, "GET", "/api/gateway")[1])["set_default"] is True


def test_request_size_is_bounded_before_anything_is_forwarded(make, upstream):
    gateway = make(max_request_bytes=2048)
    response, data = call(gateway, "POST", "/api/predictions/fast_style", b"x" * 4096, {"Content-Type": "image/png"})
    assert response.status == 413
    assert json.loads(data)["message"] == "the request is 4096 bytes; the limit is 2048 bytes"
    assert call(gateway, "POST", "/api/predictions/fast_style", b"x" * 2048)[0].status == 200
    assert len(upstream.seen) == 1


def test_pages_from_other_sites_and_rebound_hosts_are_refused(make, upstream):
    gateway = make()
    port = gateway.server_address[1]
    response, _ = call(gateway, "POST", "/api/predictions/fast_style", b"{}", {"Origin": "http://evil.example"})
    assert response.status == 403
    response, _ = call(gateway, "GET", "/api/models", headers={"Host": f"evil.example:{port}"})
    assert response.status == 403
    response, _ = call(gateway, "POST", "/api/predictions/fast_style", b"{}", {"Origin": f"http://127.0.0.1:{port}"})
    assert response.status == 200
    assert len(upstream.seen) == 1


def test_torchserve_down_is_a_502_in_the_servers_error_shape(make, tmp_path):
    gateway = make(inference_url="http://127.0.0.1:9", management_url="http://127.0.0.1:9")
    response, data = call(gateway, "GET", "/api/models")
    assert response.status == 502
    body = json.loads(data)
    assert body["code"] == 502 and "not reachable" in body["message"]


def test_a_missing_key_file_is_a_502_named_in_the_log_not_in_the_answer(make, tmp_path, caplog):
    gateway = make(key_file=tmp_path / "nowhere.json")
    with caplog.at_level(logging.ERROR, logger="gateway"):
        response, data = call(gateway, "GET", "/api/models")
    assert response.status == 502 and "keys" in json.loads(data)["message"]
    assert "nowhere.json" not in data.decode() and str(tmp_path) not in data.decode()
    assert any("nowhere.json" in record.getMessage() for record in caplog.records)


def test_the_built_app_is_served_with_caching_by_kind(make, tmp_path):
    gateway = make()
    response, data = call(gateway, "GET", "/")
    assert response.status == 200 and b"playground" in data
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-cache"
    response, _ = call(gateway, "GET", "/assets/app-123.js")
    assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
    assert "immutable" in response.getheader("Cache-Control")
    unbuilt = make(static_dir=tmp_path / "missing")
    response, data = call(unbuilt, "GET", "/")
    assert response.status == 503 and "npm run build" in json.loads(data)["message"]


def test_a_browser_leaving_mid_stream_leaves_the_gateway_serving(make, upstream):
    gateway = make()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    connection.request("POST", "/api/predictions/stream", body=b"{}", headers={CLIENT_HEADER: "playground"})
    response = connection.getresponse()
    response.readline()
    connection.close()  # a cancelled job: AbortController closes the connection
    upstream.release_stream.set()
    response, _ = call(gateway, "GET", "/api/models")
    assert response.status == 200


# ---- issue 17 item 4: request smuggling and cross-site requests ------------------------------


def raw_exchange(gateway, first: bytes) -> list:
    """Sends `first` on one keep-alive connection, reads its answer, then sends a request the
    gateway answers itself (GET /api/gateway) and reads that answer too, unless the gateway
    closed the connection. -> the status of every answer read, in order. Had the gateway read a
    refused request's body as a request of its own, the second answer read would be that one's."""
    port = gateway.server_address[1]
    follow_up = f"GET /api/gateway HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(first)
        reader = _KeptOpen(socket.SocketIO(sock, "rb"))
        for next_request in (follow_up, None):
            response = http.client.HTTPResponse(sock)
            response.fp = reader
            try:
                response.begin()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                break
            response.read()
            statuses.append((response.status, response.getheader("Content-Type")))
            if response.will_close or next_request is None:
                break
            sock.sendall(next_request)
    return statuses


class _KeptOpen(io.BufferedReader):
    """One buffered reader for every answer on the connection (http.client closes its own)."""

    def close(self):
        pass


def smuggled(port: int, path: str = "/api/predictions/fast_style") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{CLIENT_HEADER}: x\r\nContent-Length: 2\r\n\r\n{{}}"
    ).encode()


@pytest.mark.parametrize("refused_by", ["Origin", "Host", "Sec-Fetch-Site", "no client header", "route"])
def test_a_refused_requests_body_is_never_taken_for_a_second_request(make, upstream, refused_by):
    gateway = make()
    port = gateway.server_address[1]
    inner = smuggled(port)
    headers = {"Host": f"127.0.0.1:{port}", CLIENT_HEADER: "x", "Content-Length": str(len(inner))}
    path = "/api/predictions/fast_style"
    if refused_by == "Origin":
        headers["Origin"] = "http://evil.example"
    elif refused_by == "Host":
        headers["Host"] = f"evil.example:{port}"
    elif refused_by == "Sec-Fetch-Site":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif refused_by == "no client header":
        del headers[CLIENT_HEADER]
    else:
        path = "/api/models/fast_style/1.0"  # DELETE is not forwarded: 405
    method = "DELETE" if refused_by == "route" else "POST"
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    statuses = raw_exchange(gateway, f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + inner)
    assert statuses[0][0] in (403, 405)
    # The connection either ends or goes on with the follow-up, which the gateway answers itself.
    assert statuses[1:] in ([], [(200, "application/json")])
    assert upstream.seen == []


def test_a_chunked_refused_body_holding_a_request_does_not_reach_torchserve(make, upstream):
    gateway = make()
    port = gateway.server_address[1]
    inner = smuggled(port)
    first = (
        (
            f"POST /api/predictions/fast_style HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Origin: http://evil.example\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(inner):x}\r\n"
        ).encode()
        + inner
        + b"\r\n0\r\n\r\n"
    )
    statuses = raw_exchange(gateway, first)
    assert statuses[0][0] == 403
    assert upstream.seen == []


def test_conflicting_framing_is_refused_outright(make, upstream):
    """Content-Length and Transfer-Encoding together is the classic desync: refused, never forwarded."""
    gateway = make()
    port = gateway.server_address[1]
    inner = smuggled(port)
    first = (
        f"POST /api/predictions/fast_style HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{CLIENT_HEADER}: x\r\n"
        f"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).encode() + inner
    statuses = raw_exchange(gateway, first)
    assert statuses == [(400, "application/json")]  # and the connection closed: nothing after it is read
    assert upstream.seen == []


@pytest.mark.parametrize(
    "site, allowed", [("same-origin", True), ("cross-site", False), ("same-site", False), ("none", False)]
)
def test_state_changing_requests_need_a_same_origin_fetch(make, upstream, site, allowed):
    gateway = make()
    response, data = call(gateway, "POST", "/api/predictions/fast_style", b"{}", {"Sec-Fetch-Site": site})
    assert (response.status == 200) is allowed, data
    if not allowed:
        assert response.status == 403 and site in json.loads(data)["message"]
    assert len(upstream.seen) == int(allowed)


def test_a_post_without_fetch_metadata_needs_the_client_header(make, upstream):
    gateway = make()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    connection.request("POST", "/api/predictions/fast_style", body=b"{}")
    response = connection.getresponse()
    message = json.loads(response.read())["message"]
    connection.close()
    assert response.status == 403 and CLIENT_HEADER in message
    assert upstream.seen == []
    # Reads need neither: the page's own GETs are harmless to answer.
    assert call(gateway, "GET", "/api/models")[0].status == 200


def test_a_chunked_request_body_is_forwarded_whole_and_bounded(make, upstream):
    gateway = make(max_request_bytes=2048)

    def chunked(size):
        yield b"x" * (size // 2)
        yield b"x" * (size - size // 2)

    response, data = call(
        gateway, "POST", "/api/predictions/fast_style", chunked(2000), {"Content-Type": "image/png"}
    )  # an iterable: http.client chunks it
    assert response.status == 200, data
    assert upstream.seen[-1]["body"] == b"x" * 2000
    response, data = call(
        gateway, "POST", "/api/predictions/fast_style", chunked(4096), {"Content-Type": "image/png"}
    )  # an iterable: http.client chunks it
    assert response.status == 413 and "2048" in json.loads(data)["message"]
    assert len(upstream.seen) == 1


# POST /api/cancel/{job_id}: the gateway writes the job's cancel marker beside TorchServe's key
# file (where the workers look) behind the same guard as every POST, and forwards nothing.
@pytest.fixture
def no_cancel_dir_env(monkeypatch):
    monkeypatch.delenv(CANCEL_DIR_ENV, raising=False)


def test_a_cancel_writes_the_marker_the_worker_checks(make, upstream, no_cancel_dir_env, tmp_path):
    gateway = make()
    response, data = call(gateway, "POST", "/api/cancel/Job_id-0123456789")
    assert response.status == 202, data
    assert json.loads(data) == {"job_id": "Job_id-0123456789", "cancel": "requested"}
    assert CancelMarkers(tmp_path / "cancel").is_cancelled("Job_id-0123456789")  # beside key_file.json
    assert upstream.seen == []  # the busy worker is never asked


@pytest.mark.parametrize(
    "path, status",
    [
        ("/api/cancel/short", 400),
        ("/api/cancel/..%2F..%2Fkey_file.json", 400),
        ("/api/cancel/a/b/c/d/e/f/g/h", 400),
        ("/api/cancel/", 400),
    ],
)
def test_malformed_job_ids_are_refused(make, upstream, no_cancel_dir_env, tmp_path, path, status):
    gateway = make()
    response, data = call(gateway, "POST", path)
    assert response.status == status and "8 to 64" in json.loads(data)["message"]
    assert not (tmp_path / "cancel").exists() and upstream.seen == []


def test_a_cancel_needs_post_and_the_same_origin(make, upstream, no_cancel_dir_env, tmp_path):
    gateway = make()
    assert call(gateway, "GET", "/api/cancel/Job_id-0123456789")[0].status == 405
    response, _ = call(gateway, "POST", "/api/cancel/Job_id-0123456789", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403
    response, _ = call(
        gateway,
        "POST",
        "/api/cancel/Job_id-0123456789",
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status == 403
    assert not (tmp_path / "cancel").exists()
