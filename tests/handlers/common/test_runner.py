"""BatchRunner with a fake Service: each request answered on its own, faults mapped to 500/507
with the trace logged, progress streamed as NDJSON, v2 never streamed."""

import base64
import io
import json
import logging
from dataclasses import dataclass

import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image

from handlers.common import metrics as m
from handlers.common.errors import (
    DeadlineExceeded,
    InvalidField,
    OutOfMemory,
    Overloaded,
    PromptTooLong,
    RequestError,
    ServerError,
    ServerFault,
    TooLarge,
)
from handlers.common.images import ImageLimits, decode_image
from handlers.common.oip import HEADER_LENGTH
from handlers.common.runner import BatchRunner
from handlers.common.service import OUTPUT_FIELDS, ImageResult, OutputOptions, Service

JSON = {"Content-Type": "application/json"}

# What PaintService.predict returns for a request asking `fail=<key>`.
PER_REQUEST_FAILURES = {
    "predict": lambda: InvalidField("'fail' asked for a per-request error", "fail"),
    "timeout": lambda: DeadlineExceeded("outlived the budget", "steps"),
    "busy": lambda: Overloaded("the batch had no time left", retry_after_s=3),
    "oom": lambda: MemoryError("no memory for this one"),
    "bug": lambda: ValueError("secret detail 7"),
}


@dataclass
class PaintRequest:
    size: int
    steps: int
    fail: str
    output: OutputOptions


class PaintService(Service):
    """Paints a size x size image whose red channel is its position in the batch."""

    name = "paint"
    raw_image_field = "image"
    streams = True
    field_names = frozenset(("image", "size", "steps", "fail", "stream") + OUTPUT_FIELDS)

    def __init__(self, predict_error: Exception = None):
        self.predict_error = predict_error
        self.batches = []

    def decode_request(self, fields):
        fields.check_known(self.field_names)
        if fields.has("image"):
            decode_image(fields.image_bytes("image", 10_000), "image", ImageLimits())
        fail = fields.choice("fail", ("none", "decode_bug") + tuple(PER_REQUEST_FAILURES), "none")
        if fail == "decode_bug":
            raise KeyError("a bug in decode_request")
        return PaintRequest(
            size=fields.integer("size", 4, 1, 64),
            steps=fields.integer("steps", 2, 0, 10),
            fail=fail,
            output=OutputOptions.from_fields(fields, streams=self.streams),
        )

    def predict(self, requests, progress):
        self.batches.append(requests)
        if self.predict_error is not None:
            progress(0, {"step": 1, "of": 1})
            raise self.predict_error
        results = []
        for position, request in enumerate(requests):
            for step in range(1, request.steps + 1):
                progress(position, {"step": step, "of": request.steps})
            if request.fail in PER_REQUEST_FAILURES:
                results.append(PER_REQUEST_FAILURES[request.fail]())
                continue
            image = Image.new("RGB", (request.size, request.size), (position * 10, 0, 0))
            results.append(ImageResult([image], {"size": request.size}, seeds=[position]))
        return results


def run(service, *requests, send_chunk=None, metrics=None):
    runner = BatchRunner(service, "paint", "1.0", metrics) if metrics else BatchRunner(service, "paint", "1.0")
    return runner.run(list(requests), send_chunk)


class RecordingMetrics:
    def __init__(self):
        self.counts = []

    def count(self, name, value, dimensions):
        self.counts.append((name, dict(dimensions)))

    def gauge_ms(self, name, value_ms, dimensions):
        pass

    def named(self, name):
        return [dimensions for counted, dimensions in self.counts if counted == name]


def body_of(reply) -> dict:
    return json.loads(reply.body)


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_one_bad_request_does_not_fail_its_neighbours(png_bytes):
    replies = run(
        PaintService(),
        ({"size": bytearray(b"8")}, {}),
        ({"size": bytearray(b"999")}, {}),
        ({"styel": bytearray(b"candy")}, {}),
        ({"body": {"image": "!!not base64", "size": 3}}, JSON),
        ({"body": bytearray(png_bytes), "size": bytearray(b"5")}, {"Content-Type": "image/png"}),
        ({"body": b"{broken"}, JSON),
    )
    assert [r.status for r in replies] == [200, 400, 400, 400, 200, 400]
    assert replies[0].headers["Content-Type"] == "image/png"
    assert image_of(replies[0].body).size == (8, 8)
    assert image_of(replies[4].body).size == (5, 5)
    errors = [body_of(r) for r in replies[1:4]] + [body_of(replies[5])]
    assert [e["field"] for e in errors] == ["size", "styel", "image", "body"]
    assert all(e["code"] == 400 and e["type"] == "InvalidInput" for e in errors)
    assert "1 to 64" in errors[0]["message"]


def test_bad_requests_are_not_sent_to_predict():
    service = PaintService()
    run(service, ({"size": b"0"}, {}), ({"size": b"2"}, {}), ({"size": b"x"}, {}))
    assert len(service.batches) == 1 and [r.size for r in service.batches[0]] == [2]


def test_all_bad_batch_skips_predict():
    service = PaintService()
    replies = run(service, ({"size": b"0"}, {}))
    assert replies[0].status == 400 and service.batches == []


def test_per_request_error_from_predict(png_bytes):
    replies = run(PaintService(), ({}, {}), ({"fail": b"predict"}, {}), ({"size": b"2"}, {}))
    assert [r.status for r in replies] == [200, 400, 200]
    assert body_of(replies[1])["field"] == "fail"
    # The third request kept its own result: position 2 in the batch -> red 20.
    assert image_of(replies[2].body).convert("RGB").getpixel((0, 0)) == (20, 0, 0)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 1 bytes. Out of memory"
        ),
    ],
)
def test_out_of_memory_is_507_for_all(error):
    replies = run(PaintService(predict_error=error), ({}, {}), ({}, {}))
    assert [r.status for r in replies] == [507, 507]
    assert body_of(replies[0])["type"] == "OutOfResources"


def test_other_predict_exception_is_500_with_trace_logged(caplog):
    with caplog.at_level(logging.ERROR):
        replies = run(
            PaintService(predict_error=ValueError("secret detail 42")), ({}, {}), ({}, {}), ({"size": b"0"}, {})
        )
    assert [r.status for r in replies] == [500, 500, 400]
    for reply in replies[:2]:
        assert body_of(reply)["type"] == "InternalServerError"
        assert b"secret detail" not in reply.body  # internals stay in the log
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is ValueError
    assert "secret detail 42" in caplog.text


def test_decode_time_bug_is_500_and_logged(caplog):
    with caplog.at_level(logging.ERROR):
        replies = run(PaintService(), ({"fail": b"decode_bug"}, {}), ({}, {}))
    assert [r.status for r in replies] == [500, 200]
    assert body_of(replies[0])["code"] == 500
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_streaming_progress_then_result_line():
    chunks = []
    replies = run(
        PaintService(),
        ({"steps": b"0"}, {}),
        ({"stream": b"true", "steps": b"3", "size": b"6"}, {}),
        ({"steps": b"2"}, {}),
        send_chunk=lambda index, data: chunks.append((index, data)),
    )
    assert [index for index, _ in chunks] == [1, 1, 1]
    assert all(data.endswith(b"\n") and data.count(b"\n") == 1 for _, data in chunks)
    events = [json.loads(data) for _, data in chunks]
    assert events == [{"type": "progress", "step": s, "of": 3} for s in (1, 2, 3)]

    streamed = replies[1]
    assert streamed.status == 200 and streamed.headers["Content-Type"] == "application/x-ndjson"
    assert streamed.body.endswith(b"\n") and streamed.body.count(b"\n") == 1
    result = json.loads(streamed.body)
    assert result["type"] == "result"
    assert (result["width"], result["height"]) == (6, 6)
    assert image_of(base64.b64decode(result["images"][0])).size == (6, 6)
    assert {"decode", "batch_predict"} <= set(result["timings_ms"])
    # Neighbours that did not ask to stream get plain images.
    assert replies[0].headers["Content-Type"] == replies[2].headers["Content-Type"] == "image/png"


def test_error_after_progress_is_an_ndjson_error_line():
    chunks = []
    replies = run(PaintService(), ({"stream": b"1", "fail": b"predict"}, {}), send_chunk=lambda i, d: chunks.append(d))
    assert len(chunks) == 2
    assert replies[0].status == 200 and replies[0].headers["Content-Type"] == "application/x-ndjson"
    assert replies[0].body.endswith(b"\n") and replies[0].body.count(b"\n") == 1
    line = json.loads(replies[0].body)
    assert line["code"] == 400 and line["field"] == "fail"


def test_stream_error_line_has_type_error():
    replies = run(PaintService(), ({"stream": b"1", "fail": b"predict"}, {}), send_chunk=lambda i, d: None)
    line = json.loads(replies[0].body)
    assert line["type"] == "error" and line["code"] == 400


def test_stream_without_send_chunk_still_answers():
    replies = run(PaintService(), ({"stream": b"true"}, {}))
    assert json.loads(replies[0].body)["type"] == "result"


def test_v2_requests_never_stream():
    chunks = []
    body = {
        "id": "v2",
        "inputs": [
            {"name": "stream", "datatype": "BYTES", "shape": [1], "data": ["true"]},
            {"name": "size", "datatype": "INT64", "shape": [1], "data": [3]},
        ],
    }
    replies = run(
        PaintService(), ({"body": body}, JSON), ({"stream": b"true"}, {}), send_chunk=lambda i, d: chunks.append(i)
    )
    assert set(chunks) == {1}
    reply = replies[0]
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    document = json.loads(reply.body)
    assert document["id"] == "v2" and document["model_name"] == "paint"
    outputs = {o["name"]: o for o in document["outputs"]}
    assert image_of(base64.b64decode(outputs["image"]["data"][0])).size == (3, 3)
    assert json.loads(outputs["metadata"]["data"][0])["width"] == 3


def test_v2_binary_reply_parses_with_tritonclient():
    from tritonclient.http._utils import _get_inference_request

    size = triton.InferInput("size", [1], "INT64")
    size.set_data_from_numpy(np.array([5], dtype=np.int64))
    fmt = triton.InferInput("format", [1], "BYTES")
    fmt.set_data_from_numpy(np.array([b"jpeg"], dtype=np.object_))
    body, length = _get_inference_request([size, fmt], "", None, 0, False, False, 0, None, None)
    [reply] = run(PaintService(), ({"body": bytearray(body)}, {HEADER_LENGTH: str(length)}))
    assert reply.status == 200
    result = triton.InferResult.from_response_body(reply.body, header_length=int(reply.headers[HEADER_LENGTH]))
    image = image_of(result.as_numpy("image")[0])
    assert image.format == "JPEG" and image.size == (5, 5)
    assert json.loads(result.as_numpy("metadata")[0])["parameters"] == {"size": 5}


def test_v2_errors_carry_the_error_key():
    body = {"inputs": [{"name": "size", "datatype": "INT64", "shape": [1], "data": [1000]}]}
    [reply] = run(PaintService(), ({"body": body}, JSON))
    document = body_of(reply)
    assert reply.status == 400 and document["field"] == "size"
    assert document["error"] == document["message"]


class BrokenResultService(PaintService):
    """A service bug: one result of the wrong type, or one result missing."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def predict(self, requests, progress):
        results = super().predict(requests, progress)
        if self.mode == "wrong_type":
            results[0] = "not an ImageResult"
        else:
            results.pop()
        return results


def test_a_result_of_the_wrong_type_is_a_500_for_that_request_only():
    replies = run(BrokenResultService("wrong_type"), ({}, {}), ({}, {}))
    assert [reply.status for reply in replies] == [500, 200]  # the first result was the broken one
    assert body_of(replies[0])["type"] == "InternalServerError"


def test_too_few_results_is_a_500_for_every_request_never_a_neighbours_image():
    """Which result is missing is unknown, so no result can be trusted to be its request's."""
    replies = run(BrokenResultService("too_few"), ({}, {}), ({}, {}), ({}, {}))
    assert [reply.status for reply in replies] == [500, 500, 500]


# ---------------------------------------------------------------- error families and metrics


def test_client_and_server_errors_are_separate_families():
    for client in (InvalidField, TooLarge, PromptTooLong):
        assert issubclass(client, RequestError) and not issubclass(client, ServerError)
        assert 400 <= client.status < 500
    for server in (Overloaded, DeadlineExceeded, OutOfMemory, ServerFault):
        assert issubclass(server, ServerError) and not issubclass(server, RequestError)
        assert server.status >= 500
    assert [e.status for e in (ServerFault, Overloaded, DeadlineExceeded, OutOfMemory)] == [500, 503, 504, 507]


def test_each_predict_failure_stays_with_its_request(caplog):
    fails = ["none", "timeout", "oom", "bug", "busy", "none"]
    with caplog.at_level(logging.ERROR):
        replies = run(PaintService(), *[({"fail": f.encode()} if f != "none" else {}, {}) for f in fails])
    assert [r.status for r in replies] == [200, 504, 507, 500, 503, 200]
    assert replies[4].headers["Retry-After"] == "3"
    assert b"secret detail" not in replies[3].body
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [MemoryError, ValueError]
    # Each neighbour kept its own result: positions 0 and 5 -> red 0 and 50.
    assert [image_of(replies[i].body).getpixel((0, 0)) for i in (0, 5)] == [(0, 0, 0), (50, 0, 0)]


def test_server_errors_are_counted_as_faults_not_as_rejected_requests():
    metrics = RecordingMetrics()
    requests = [({"fail": f.encode()}, {}) for f in ("timeout", "oom", "bug", "busy", "predict")]
    run(PaintService(), *requests, ({"size": b"0"}, {}), metrics=metrics)
    assert sorted(d["Reason"] for d in metrics.named(m.SERVER_FAULTS)) == sorted(
        ["Timeout", "OutOfResources", "InternalServerError", "ServiceUnavailable"]
    )
    assert metrics.named(m.REJECTED_REQUESTS) == [
        {"Reason": "InvalidInput", "Field": "size"},
        {"Reason": "InvalidInput", "Field": "fail"},
    ]


@pytest.mark.parametrize(
    "key",
    ["styel", "x\n[METRICS]Forged.Count:1|#Level:Host|#hostname:h,1", "k" * 100_000, "image\r"],
    ids=["typo", "forged_metric_line", "100k_chars", "known_name_plus_cr"],
)
def test_metric_labels_only_from_known_field_names(key):
    metrics = RecordingMetrics()
    [reply] = run(PaintService(), ({key: b"1"}, {}), metrics=metrics)
    body = body_of(reply)
    assert reply.status == 400 and body["field"][:100] == key[:100]  # the client still hears which
    assert len(reply.body) < 10_000  # a 100,000-character key is not echoed back in full
    assert metrics.named(m.REJECTED_REQUESTS) == [{"Reason": "InvalidInput", "Field": "unknown"}]


def test_v2_tensor_of_an_unknown_name_is_refused_before_its_data_is_read():
    huge = 64 * 2**20
    header = json.dumps(
        {
            "inputs": [
                {"name": "sise", "datatype": "INT64", "shape": [huge // 8], "parameters": {"binary_data_size": huge}}
            ]
        }
    ).encode()
    metrics = RecordingMetrics()
    [reply] = run(
        PaintService(),
        ({"body": bytearray(header) + bytearray(huge)}, {HEADER_LENGTH: str(len(header))}),
        metrics=metrics,
    )
    assert reply.status == 400 and body_of(reply)["field"] == "sise" and "unknown input" in body_of(reply)["message"]


def test_a_failing_progress_stream_does_not_fail_the_batch(caplog):
    def send_chunk(index, data):
        if index == 0:
            raise BrokenPipeError("client went away")

    with caplog.at_level(logging.ERROR):
        replies = run(
            PaintService(),
            ({"stream": b"true", "steps": b"3"}, {}),
            ({"stream": b"true", "steps": b"2"}, {}),
            send_chunk=send_chunk,
        )
    assert [r.status for r in replies] == [200, 200]
    assert json.loads(replies[1].body)["type"] == "result"
    assert sum(1 for r in caplog.records if r.exc_info and r.exc_info[0] is BrokenPipeError) == 1
