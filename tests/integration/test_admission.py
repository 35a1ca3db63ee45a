"""Cost-aware admission against a real TorchServe of its own (issue 15.4, 17.2).

The archive pins its speed (`cost_rates`: 2000 s per megapixel-step of the UNet, so a 64 px
guided step is estimated at 16.4 s whatever this machine's load) and a 60 s budget, so which
request is refused is deterministic while the tiny model does the real work (a few steps) in a
fraction of it, even on a shared, loaded machine.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import assert_error, decode, model_config, own_server

pytestmark = pytest.mark.slow
BUDGET_S = 60
RATES = {"unet": 2000.0, "decode_full": 0.001, "decode_fast": 0.001, "text": 0.001}
STEP_S = 2000.0 * 2 * 64 * 64 / 1e6  # one guided 64 px step at the pinned rate: 16.4 s
SMALL = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1}


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    config = model_config("txt2img")
    # Two requests sent together share a batch: the frontend waits up to 3 s for the second.
    config.update(batchSize=2, maxBatchDelay=3000)
    config["handler"].update(time_budget_s=BUDGET_S, cost_rates=RATES)
    with own_server(tmp_path_factory, "txt2img", config) as served:
        yield served


def post(pinned, **fields):
    server, session = pinned
    return session.post(f"{server.inference_url}/predictions/txt2img", json={**SMALL, **fields}, timeout=300)


def test_an_over_budget_request_is_refused_422_with_what_fits_and_the_worker_keeps_serving(pinned):
    steps = int(BUDGET_S / STEP_S) + 10  # 13 steps, ~213 s estimated
    body = assert_error(post(pinned, steps=steps), 422, "steps")
    assert body["type"] == "TooExpensive"
    assert body["budget_s"] == BUDGET_S and body["estimated_s"] > BUDGET_S
    assert "60 s time budget" in body["message"] and "scheduler=lcm" in body["message"]
    fewer = next(f for f in body["fits"] if list(f["changes"]) == ["steps"])
    assert fewer["estimated_s"] <= BUDGET_S
    # What it said would fit is admitted (and served: the tiny model is fast for real).
    assert decode(post(pinned, steps=fewer["changes"]["steps"])).size == (64, 64)
    fast = {"scheduler": "lcm", "steps": 4, "guidance": 1.0}
    assert post(pinned, **fast).status_code == 200


def test_a_batch_that_would_overrun_serves_what_fits_and_answers_the_other_503(pinned):
    steps = int(0.6 * BUDGET_S / STEP_S)  # 2 steps, each request ~33 s estimated: one fits, two do not

    def send(seed):
        return post(pinned, steps=steps, seed=seed)

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(send, (11, 12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 503], [r.text[:200] for r in responses]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json()["type"] == "ServiceUnavailable"
    assert int(busy.headers["Retry-After"]) >= 1
    # The deferred one alone fits and is served.
    assert post(pinned, steps=steps, seed=12).status_code == 200


def test_describe_reports_the_estimate_per_megapixel_step(pinned):
    server, _ = pinned
    answer = requests.get(
        f"{server.management_url}/models/txt2img?customized=true",
        headers={"Authorization": f"Bearer {server.keys().management}"},
        timeout=30,
    )
    speed = answer.json()[0]["customizedMetadata"]["speed"]
    assert speed["unet_s_per_megapixel_step"] == RATES["unet"] and speed["time_budget_s"] == BUDGET_S
    assert speed["rates"]["unet"]["pinned"] is True


def test_decoder_fast_is_served(pinned):
    response = post(pinned, decoder="fast", response_format="json")
    assert response.status_code == 200, response.text
    assert response.json()["parameters"]["decoder"] == "fast"
