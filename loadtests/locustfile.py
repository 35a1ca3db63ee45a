"""Locust users for imagelab, one class per capability, in a weighted mix.

    LOADTEST_PROFILE=smoke locust -f loadtests/locustfile.py --headless -u 4 -r 4 -t 10s \
        --host http://127.0.0.1:8080

`make loadtest` wraps this (warm-up, CSV and HTML reports, pass/fail summary). What each user
sends, the mix and the timeouts come from LOADTEST_* variables (load_profile.py). Every answer
is checked (checks.py): status, content type, a decodable image of the expected size that is
not black and carries no nsfw flag; anything else is a failure, however fast.
"""

import itertools
import random

import gevent
from checks import answer_problem
from load_profile import inference_key, profile_from_env
from locust import HttpUser, between, events, task
from locust.stats import CSV_STATS_INTERVAL_SEC
from payloads import CASE_MAKERS, Case

PROFILE = profile_from_env()
TIMEOUTS_S = {
    "fast_style": PROFILE.fast_timeout_s,
    "neural_style": PROFILE.neural_timeout_s,
    "txt2img": PROFILE.diffusion_timeout_s,
    "animals": PROFILE.diffusion_timeout_s,
}
_user_numbers = itertools.count()


@events.quit.add_listener
def _let_the_csv_writer_catch_up(**_kwargs) -> None:
    """Locust rewrites its stats CSV once a second from a background greenlet and only closes
    the files at exit, so requests that finished in the last second (those let finish by
    --stop-timeout) would be missing from the CSV; one more writer pass takes them in."""
    gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)


class ImagelabUser(HttpUser):
    abstract = True
    host = "http://127.0.0.1:8080"
    wait_time = between(*PROFILE.wait_s)
    model = ""

    def on_start(self) -> None:
        # Each user its own seeded stream, so a run's request sequence is reproducible.
        self.rng = random.Random(f"{PROFILE.seed}-{self.model}-{next(_user_numbers)}")
        self.client.headers["Authorization"] = f"Bearer {inference_key()}"

    def send(self, case: Case) -> None:
        with self.client.post(
            f"/predictions/{case.model}",
            data=case.data or None,
            files=case.files or None,
            json=case.json,
            timeout=TIMEOUTS_S[case.model],
            name=case.model,  # one stats row per capability, whatever the size or style
            catch_response=True,
        ) as response:
            if response.status_code == 401:  # TorchServe renews its keys hourly
                self.client.headers["Authorization"] = f"Bearer {inference_key()}"
            problem = answer_problem(
                response.status_code,
                response.headers.get("Content-Type", ""),
                response.content or b"",
                case.expected.size,
                case.expected.content_type,
            )
            if problem:
                response.failure(problem)
            else:
                response.success()

    @task
    def request(self) -> None:
        self.send(CASE_MAKERS[self.model](PROFILE, self.rng))


class FastStyleUser(ImagelabUser):
    model = "fast_style"
    weight = PROFILE.weight_of(model)


class NeuralStyleUser(ImagelabUser):
    model = "neural_style"
    weight = PROFILE.weight_of(model)


class Txt2ImgUser(ImagelabUser):
    model = "txt2img"
    weight = PROFILE.weight_of(model)


class AnimalsUser(ImagelabUser):
    model = "animals"
    weight = PROFILE.weight_of(model)
