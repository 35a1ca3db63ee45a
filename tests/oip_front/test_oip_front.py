"""Triton's own clients, unchanged (tritonclient.http and tritonclient.grpc), against the Open
Inference Protocol front (`python -m oipfront`, its own process as under `make serve`) in
front of the real TorchServe of tests/conftest.py: health, metadata, config and infer on every
model, and the v2 errors of bad tensors and of callers without the front's key."""

import io
import json
import time

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image
from tritonclient.utils import InferenceServerException

from oipfront.process import start_front_process
from operations.server import free_ports

MODELS = ("animals", "fast_style", "neural_style", "txt2img")
START_TIMEOUT_S = 120
# Small, seeded requests: each the same request as `direct` sends to TorchServe itself.
REQUESTS = {
    "fast_style": {"style": "mosaic", "max_side_px": 64},
    "neural_style": {"steps": 4, "max_side_px": 64, "seed": 7},
    "txt2img": {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 8},
    "animals": {"animal": "tiger", "steps": 2, "width": 64, "height": 64, "seed": 21},
}
INTEGER_FIELDS = {"max_side_px", "steps", "width", "height", "seed"}


class Front:
    def __init__(self, process, http_port: int, grpc_port: int, key: str):
        self.process, self.http_port, self.grpc_port, self.key = process, http_port, grpc_port, key

    def headers(self) -> dict:
        """A fresh dict per call: tritonclient.http adds its own entries to the one it is given."""
        return {"authorization": f"Bearer {self.key}"}

    def http(self) -> triton_http.InferenceServerClient:
        return triton_http.InferenceServerClient(f"127.0.0.1:{self.http_port}", network_timeout=300.0)

    def grpc(self) -> triton_grpc.InferenceServerClient:
        return triton_grpc.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")


@pytest.fixture(scope="module")
def front(server, tmp_path_factory):
    http_port, grpc_port = free_ports(2)
    key_file = tmp_path_factory.mktemp("oip_front") / "oip_key.json"
    log = key_file.with_name("front.log").open("wb")
    process = start_front_process(
        server.url, server.management_url, server.process.workdir, http_port, grpc_port, key_file, log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, key_file.with_name("front.log").read_text()[-3000:]
            if key_file.is_file():
                front = Front(process, http_port, grpc_port, json.loads(key_file.read_text())["key"])
                try:
                    if front.http().is_server_live(headers=front.headers()):
                        break
                except Exception:  # not listening yet
                    pass
            assert time.monotonic() < deadline, "the v2 front did not start"
            time.sleep(0.2)
        yield front
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def inputs_for(photo_jpeg, texture_png):
    def inputs(client_module, model: str, batch_dim: bool = True) -> list:
        values = dict(REQUESTS[model])
        if model == "fast_style":
            values["image"] = photo_jpeg
        if model == "neural_style":
            values.update(content=photo_jpeg, style_image=texture_png)
        shape = [1, 1] if batch_dim else [1]
        tensors = []
        for name, value in values.items():
            if name in INTEGER_FIELDS:
                tensor = client_module.InferInput(name, shape, "INT64")
                tensor.set_data_from_numpy(np.array(value, dtype=np.int64).reshape(shape))
            else:
                tensor = client_module.InferInput(name, shape, "BYTES")
                data = value if isinstance(value, bytes) else value.encode()
                tensor.set_data_from_numpy(np.array([data], dtype=object).reshape(shape))
            tensors.append(tensor)
        return tensors

    return inputs


def direct(server, model: str, photo_jpeg: bytes, texture_png: bytes) -> bytes:
    """The same request straight to TorchServe (multipart), for comparison."""
    files = {name: (None, str(value)) for name, value in REQUESTS[model].items()}
    if model == "fast_style":
        files["image"] = ("photo.jpg", photo_jpeg)
    if model == "neural_style":
        files.update(content=("photo.jpg", photo_jpeg), style_image=("texture.png", texture_png))
    response = server.predict(model, files=files, timeout_s=300)
    assert response.status_code == 200, response.text
    return response.content


def described_fields(server, model: str) -> dict:
    [entry] = server.management("GET", f"/models/{model}?customized=true").json()
    meta = entry["customizedMetadata"]
    return (json.loads(meta) if isinstance(meta, str) else meta)["fields"]


# ---- health and server metadata -------------------------------------------------------------


def test_health_over_both_protocols(front):
    for client in (front.http(), front.grpc()):
        assert client.is_server_live(headers=front.headers())
        assert client.is_server_ready(headers=front.headers())
        for model in MODELS:
            assert client.is_model_ready(model, headers=front.headers())
            assert client.is_model_ready(model, "1.0", headers=front.headers())


def test_server_metadata_names_only_the_extensions_served(front):
    expected = {"name": "imagelab", "extensions": ["binary_tensor_data", "model_configuration"]}
    http = front.http().get_server_metadata(headers=front.headers())
    grpc = front.grpc().get_server_metadata(headers=front.headers(), as_json=True)
    for metadata in (http, grpc):
        assert {k: metadata[k] for k in expected} == expected
        assert metadata["version"] == "0.12.0"  # TorchServe's


# ---- model metadata and config from the field spec ------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_model_metadata_lists_one_tensor_per_field(front, server, model):
    fields = described_fields(server, model)
    types = {"integer": "INT64", "number": "FP32", "boolean": "BOOL"}
    expected = [
        {"name": name, "datatype": types.get(spec["type"], "BYTES"), "shape": ["-1", "1"]}
        for name, spec in fields.items()
        if name not in ("stream", "response_format")
    ]
    http = front.http().get_model_metadata(model, headers=front.headers())
    grpc = front.grpc().get_model_metadata(model, headers=front.headers(), as_json=True)
    assert [{**t, "shape": [str(d) for d in t["shape"]]} for t in http["inputs"]] == expected
    assert grpc["inputs"] == expected  # protobuf's JSON gives int64 as strings
    assert [t["name"] for t in http["outputs"]] == [t["name"] for t in grpc["outputs"]] == ["image", "metadata"]
    served = sorted(entry["modelVersion"] for entry in server.management("GET", f"/models/{model}/all").json())
    assert http["versions"] == grpc["versions"] == served and http["name"] == model


@pytest.mark.parametrize("model", MODELS)
def test_model_config_has_the_archives_batch_size_and_the_field_spec(front, server, model):
    [entry] = server.management("GET", f"/models/{model}").json()
    fields = described_fields(server, model)
    http = front.http().get_model_config(model, headers=front.headers())
    grpc = front.grpc().get_model_config(model, headers=front.headers(), as_json=True)["config"]
    batch = entry["batchSize"] if entry["batchSize"] > 1 else 0
    assert http["max_batch_size"] == grpc.get("max_batch_size", 0) == batch
    names = [name for name in fields if name not in ("stream", "response_format")]
    assert [i["name"] for i in http["input"]] == [i["name"] for i in grpc["input"]] == names
    required = {name for name, spec in fields.items() if spec.get("required")}
    assert {i["name"] for i in http["input"] if not i["optional"]} == required
    if batch:
        assert http["dynamic_batching"]["max_queue_delay_microseconds"] == entry["maxBatchDelay"] * 1000


# ---- inference ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_infer_over_both_protocols_gives_what_torchserve_gives(
    front, server, inputs_for, model, photo_jpeg, texture_png
):
    reference = direct(server, model, photo_jpeg, texture_png)
    for module, client in ((triton_http, front.http()), (triton_grpc, front.grpc())):
        result = client.infer(model, inputs_for(module, model), headers=front.headers())
        image = result.as_numpy("image")
        assert image.shape == (1, 1)  # the batch dimension the request carried
        assert image.ravel()[0] == reference, f"{module.__name__}: not the image TorchServe itself makes"
        metadata = json.loads(result.as_numpy("metadata").ravel()[0])
        assert metadata["model_version"] == "1.0"
        Image.open(io.BytesIO(image.ravel()[0])).verify()


def test_versioned_infer_is_routed_to_that_version(front, inputs_for):
    for module, client in ((triton_http, front.http()), (triton_grpc, front.grpc())):
        result = client.infer(
            "fast_style",
            inputs_for(module, "fast_style", batch_dim=False),
            model_version="1.0",
            headers=front.headers(),
        )
        assert result.get_response(**({"as_json": True} if module is triton_grpc else {}))["model_version"] == "1.0"
        assert result.as_numpy("image").shape == (1,)  # no batch dimension asked, none given
        with pytest.raises(InferenceServerException) as refused:
            client.infer("fast_style", inputs_for(module, "fast_style"), model_version="9.9", headers=front.headers())
        assert refused.value.status() in ("404", "StatusCode.NOT_FOUND")


def test_stream_infer_answers_each_request(front, inputs_for):
    answers = []
    client = front.grpc()
    client.start_stream(callback=lambda result, error: answers.append((result, error)), headers=front.headers())
    try:
        client.async_stream_infer("fast_style", inputs_for(triton_grpc, "fast_style"))
        bad = triton_grpc.InferInput("styel", [1], "BYTES")
        bad.set_data_from_numpy(np.array([b"candy"], dtype=object))
        client.async_stream_infer("fast_style", [bad])
    finally:
        client.stop_stream()  # waits for the answers in flight
    (first, first_error), (second, second_error) = answers
    assert first_error is None and first.as_numpy("image").ravel()[0].startswith(b"\x89PNG")
    assert second is None and "styel" in second_error.message()


# ---- what is refused ------------------------------------------------------------------------


def bytes_input(module, name, value, shape=(1,)):
    tensor = module.InferInput(name, list(shape), "BYTES")
    tensor.set_data_from_numpy(np.array([value] * int(np.prod(shape)), dtype=object).reshape(shape))
    return tensor


@pytest.mark.parametrize(
    "make_inputs, words",
    [
        (lambda m, img: [bytes_input(m, "image", img), bytes_input(m, "styel", b"candy")], ["styel", "style"]),
        (lambda m, img: [bytes_input(m, "image", img), bytes_input(m, "style", b"cubism")], ["style", "mosaic"]),
        (lambda m, img: [bytes_input(m, "image", b"not an image")], ["image"]),
        (lambda m, img: [bytes_input(m, "image", img, shape=(2, 1))], ["image", "one item per request"]),
        (lambda m, img: [bytes_input(m, "style", b"candy")], ["image"]),
    ],
    ids=["unknown input", "unknown style", "undecodable image", "two items", "missing image"],
)
def test_bad_tensors_get_a_400_naming_the_input(front, photo_jpeg, make_inputs, words):
    for module, client, status in (
        (triton_http, front.http(), "400"),
        (triton_grpc, front.grpc(), "StatusCode.INVALID_ARGUMENT"),
    ):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("fast_style", make_inputs(module, photo_jpeg), headers=front.headers())
        assert refused.value.status() == status
        assert all(word in refused.value.message() for word in words), refused.value.message()


def test_the_rest_error_body_is_v2s(front):
    import requests

    base = f"http://127.0.0.1:{front.http_port}"
    auth = front.headers()
    cases = [
        ("POST", "/v2/models/fast_style/infer", b"[not json", 400),
        ("POST", "/v2/models/fast_style/infer", b'{"inputs": "x"}', 400),
        ("GET", "/v2/models/no_such_model", None, 404),
        ("GET", "/v2/models/fast_style/versions/9.9/config", None, 404),
        ("GET", "/v2/repository/index", None, 404),
    ]
    for method, path, body, status in cases:
        response = requests.request(method, base + path, data=body, headers=auth, timeout=60)
        assert response.status_code == status, (path, response.text)
        assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_callers_without_the_fronts_key_are_refused(front):
    wrong = {"authorization": "Bearer not-the-key"}
    for client, status in ((front.http(), "401"), (front.grpc(), "StatusCode.UNAUTHENTICATED")):
        for headers in (None, wrong):
            with pytest.raises(InferenceServerException) as refused:
                client.get_model_metadata("fast_style", headers=headers)
            assert refused.value.status() == status
    with pytest.raises(InferenceServerException):
        front.grpc().infer("fast_style", [bytes_input(triton_grpc, "style", b"candy")], headers=wrong)
