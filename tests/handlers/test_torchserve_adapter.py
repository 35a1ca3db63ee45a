"""The TorchServe adapter's own rules, without a server: which batch is the describe call."""

import pytest

from handlers.torchserve_adapter import is_describe_call

# What TorchServe 0.12 hands the handler for `GET /models/{m}?customized=true`: one request, no
# input parameters, the management call's HTTP headers plus `describe: True`.
DESCRIBE = ({}, {"describe": "True", "host": "127.0.0.1:8081", "authorization": "Bearer m", "accept": "*/*"})


def test_the_management_describe_call_is_recognised():
    assert is_describe_call([DESCRIBE])
    assert is_describe_call([({}, {"describe": "True"})])  # gRPC DescribeModel: no HTTP headers


@pytest.mark.parametrize(
    "raw, headers",
    [
        ({"body": b""}, {"describe": "True", "content-type": "application/json"}),  # empty JSON post
        ({"image": bytearray(b"png")}, {"describe": "True"}),  # multipart fields
        ({}, {"describe": "True", "Content-Type": "multipart/form-data; boundary=x"}),  # empty form
        ({}, {"describe": "True", "content-type": "application/x-www-form-urlencoded"}),
        ({"model_name": b"fast_style"}, {"describe": "True"}),  # /invocations query fields
        ({}, {"describe": "true"}),  # not what TorchServe sets
        ({}, {}),
    ],
)
def test_an_inference_request_with_a_describe_header_is_not_the_describe_call(raw, headers):
    assert not is_describe_call([(raw, headers)])


def test_a_batch_is_never_the_describe_call():
    assert not is_describe_call([DESCRIBE, DESCRIBE])
    assert not is_describe_call([])
