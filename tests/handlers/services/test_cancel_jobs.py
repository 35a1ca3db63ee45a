"""Cancelling through the runner with real services on tiny weights: the job id comes in the
first progress event, a job whose marker appears stops at its next step (steps counted), the
client gets 499 Cancelled, a cancelled job's live neighbour still gets its image, and the same
service then serves the next request."""

import base64
import io
import json

import pytest
from PIL import Image

from handlers.common import metrics as m
from handlers.common.runner import BatchRunner
from handlers.common.service import ServiceContext
from handlers.services.neural_style import NeuralStyleService
from handlers.services.txt2img import Txt2ImgService
from imagelab.cancellation import CancelMarkers, JobCancelled
from imagelab.neural_style import synthesize_tiny_vgg19

JSON = {"Content-Type": "application/json"}
STEPS = 12
CANCEL_AFTER = 2  # the client's cancel arrives while the job reports this step


class Metrics:
    def __init__(self):
        self.calls = []

    def count(self, name, value, dimensions):
        self.calls.append((name, dimensions))

    def gauge_ms(self, name, value_ms, dimensions):
        pass


class Client:
    """Records each request's streamed lines; cancels a job (by the id its first event
    carried) when that job reports step `cancel_at`, as the CLI or the playground would."""

    def __init__(self, markers: CancelMarkers, cancel: dict):
        self.markers = markers
        self.cancel = cancel  # request index -> the step at which to cancel it
        self.lines: dict = {}
        self.job_ids: dict = {}

    def send_chunk(self, index: int, chunk: bytes) -> None:
        event = json.loads(chunk)
        self.lines.setdefault(index, []).append(event)
        if "job_id" in event:
            self.job_ids[index] = event["job_id"]
        if event.get("step") == self.cancel.get(index):
            self.markers.request(self.job_ids[index])

    def steps(self, index: int) -> list:
        return [e["step"] for e in self.lines.get(index, []) if e["type"] == "progress"]


@pytest.fixture
def markers(tmp_path):
    return CancelMarkers(tmp_path / "cancel")


@pytest.fixture(scope="module")
def txt2img(service):
    return service(Txt2ImgService)


@pytest.fixture(scope="module")
def neural_style(tmp_path_factory):
    root = tmp_path_factory.mktemp("neural_style")
    synthesize_tiny_vgg19(root / "vgg19.safetensors", seed=0)
    settings = {"vgg_weights": "vgg19.safetensors", "seconds_per_megapixel_step": 1.0}
    instance = NeuralStyleService()
    instance.setup(ServiceContext("neural_style", "1.0", root, settings, "cpu"))
    return instance


def _json(fields: dict) -> tuple:
    return {"body": json.dumps(fields).encode()}, JSON


def _png(colour) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _prompt(prompt: str, **extra) -> tuple:
    return _json({"prompt": prompt, "steps": STEPS, "seed": 3, "stream": True, **extra})


def test_a_cancelled_generation_stops_at_its_next_step_and_the_next_request_runs(txt2img, markers):
    metrics = Metrics()
    runner = BatchRunner(txt2img, "txt2img", "1.0", metrics, cancels=markers)
    client = Client(markers, {0: CANCEL_AFTER})
    [reply] = runner.run([_prompt("a lighthouse")], client.send_chunk)

    first = client.lines[0][0]
    assert first["type"] == "progress" and first["step"] == 1 and len(first["job_id"]) == 24
    assert all("job_id" not in e for e in client.lines[0][1:])  # only the first event carries it
    # The marker appeared while step 2 was reported; the check after step 3 stopped the job.
    assert client.steps(0) == [1, 2]
    last = json.loads(reply.body)
    assert reply.status == 200  # streamed: the status went with the first chunk
    assert last == {
        "code": 499,
        "type": "error",
        "error_type": "Cancelled",
        "message": f"job {first['job_id']} was cancelled after step 3; nothing more was computed for it",
        "job_id": first["job_id"],
    }
    assert metrics.calls == [(m.CANCELLED_REQUESTS, {"Reason": "Cancelled"})]  # not a fault, not a refusal
    assert not markers.is_cancelled(first["job_id"])  # the runner removed the marker

    after = Client(markers, {})
    [next_reply] = runner.run([_prompt("a lighthouse", steps=3)], after.send_chunk)
    assert after.steps(0) == [1, 2, 3] and after.lines[0][0]["job_id"] != first["job_id"]
    assert json.loads(next_reply.body)["type"] == "result"


def test_a_cancelled_job_beside_a_live_one_is_answered_cancelled_after_the_group(txt2img, markers):
    runner = BatchRunner(txt2img, "txt2img", "1.0", cancels=markers)
    client = Client(markers, {0: CANCEL_AFTER})
    # Same steps, size, style and scheduler: one group, one pipeline call.
    replies = runner.run([_prompt("a red barn"), _prompt("a blue barn", seed=4)], client.send_chunk)
    assert client.steps(0) == [1, 2]  # no more progress for the cancelled job ...
    assert client.steps(1) == list(range(1, STEPS + 1))  # ... its neighbour ran every step
    assert json.loads(replies[0].body)["error_type"] == "Cancelled"
    live = json.loads(replies[1].body)
    assert live["type"] == "result" and live["seeds"] == [4] and len(live["images"]) == 1


def test_a_whole_group_cancelled_stops_the_pipeline_call(txt2img, markers):
    runner = BatchRunner(txt2img, "txt2img", "1.0", cancels=markers)
    client = Client(markers, {0: CANCEL_AFTER, 1: CANCEL_AFTER})
    replies = runner.run([_prompt("a red barn"), _prompt("a blue barn", seed=4)], client.send_chunk)
    assert client.steps(0) == client.steps(1) == [1, 2]
    bodies = [json.loads(r.body) for r in replies]
    assert [b["error_type"] for b in bodies] == ["Cancelled", "Cancelled"]
    assert [b["job_id"] for b in bodies] == [client.job_ids[0], client.job_ids[1]]  # each its own id


def test_a_clients_own_job_id_cancelled_while_queued_never_runs(txt2img, markers):
    runner = BatchRunner(txt2img, "txt2img", "1.0", cancels=markers)
    markers.request("my-own-job-1")
    steps = []
    [reply] = runner.run([_prompt("a fox", stream=False, job_id="my-own-job-1")], lambda i, c: steps.append(c))
    assert steps == [] and reply.status == 499
    assert json.loads(reply.body) == {
        "code": 499,
        "type": "Cancelled",
        "message": "job my-own-job-1 was cancelled before it started; nothing more was computed for it",
        "job_id": "my-own-job-1",
    }


def test_a_non_streamed_job_with_its_own_id_is_cancelled_mid_run(txt2img, markers):
    calls = []
    cancelling = BatchRunner(txt2img, "txt2img", "1.0", cancels=markers)

    class CountingService:  # the real service, with its progress calls counted
        streams, raw_image_field, field_names = True, None, txt2img.field_names
        decode_request = txt2img.decode_request

        def predict(self, requests, progress):
            def counted(index, event):
                calls.append(event["step"])
                if event["step"] == CANCEL_AFTER:
                    markers.request("plain-job-42")
                progress(index, event)

            return txt2img.predict(requests, counted)

    cancelling.service = CountingService()
    [reply] = cancelling.run([_prompt("a fox", stream=False, job_id="plain-job-42")], None)
    assert reply.status == 499 and json.loads(reply.body)["type"] == "Cancelled"
    assert calls == [1, 2]  # the marker came before step 2 was reported: stopped there, of 12


def test_a_malformed_job_id_is_a_400_naming_the_field(txt2img, markers):
    runner = BatchRunner(txt2img, "txt2img", "1.0", cancels=markers)
    [reply] = runner.run([_prompt("a fox", job_id="../../x")], None)
    body = json.loads(reply.body)
    assert reply.status == 400 and body["field"] == "job_id" and "8 to 64" in body["message"]


def test_without_a_marker_folder_no_job_id_is_issued(txt2img):
    client = Client(None, {})
    [reply] = BatchRunner(txt2img, "txt2img", "1.0").run([_prompt("a fox", steps=2)], client.send_chunk)
    assert client.steps(0) == [1, 2] and all("job_id" not in e for e in client.lines[0])
    assert json.loads(reply.body)["type"] == "result"


def test_a_cancelled_style_optimisation_stops_at_its_next_iteration(neural_style, markers):
    runner = BatchRunner(neural_style, "neural_style", "1.0", cancels=markers)
    client = Client(markers, {0: CANCEL_AFTER})
    request = {"content": _png((200, 30, 30)), "style_image": _png((20, 40, 220)), "max_side_px": 64}
    [reply] = runner.run([_json({**request, "steps": 200, "stream": True})], client.send_chunk)
    assert client.steps(0) == [1, 2]  # of 200 L-BFGS iterations
    assert json.loads(reply.body)["error_type"] == "Cancelled"
    after = Client(markers, {})
    [next_reply] = runner.run([_json({**request, "steps": 3, "stream": True})], after.send_chunk)
    assert after.steps(0) == [1, 2, 3] and json.loads(next_reply.body)["type"] == "result"


def test_the_engine_reports_a_cancelled_job_as_its_outcome(txt2img):
    from imagelab.diffusion import GenerationJob

    def on_step(job_index, step, of):
        if job_index == 1 and step == 2:
            raise JobCancelled("engine-job-1", step)

    jobs = [GenerationJob(prompt="a", steps=5, seed=1), GenerationJob(prompt="b", steps=5, seed=2)]
    outcomes = txt2img.engine.generate_each(jobs, on_step)
    assert outcomes[0].images and isinstance(outcomes[1], JobCancelled)
