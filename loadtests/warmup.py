"""Warm the server up before a load test: send each capability of the profile a few requests
(first calls pay for lazy initialisation, oneDNN kernel selection and page faults) outside
locust, so none of that lands in the report. Exits non-zero when a
capability never answers correctly, so a broken server fails fast instead of after the run.

    python loadtests/warmup.py --host http://127.0.0.1:8080 [--rounds 2] [--deadline-s 600]
"""

import argparse
import random
import sys
import time

import requests
from checks import answer_problem
from load_profile import inference_key, profile_from_env
from payloads import CASE_MAKERS, Case


def send(session: requests.Session, host: str, case: Case, timeout_s: float) -> str:
    """'' on a correct answer, else the problem."""
    try:
        response = session.post(
            f"{host}/predictions/{case.model}",
            data=case.data or None,
            files=case.files or None,
            json=case.json,
            timeout=timeout_s,
        )
    except requests.RequestException as error:
        return f"{type(error).__name__}: {error}"
    return (
        answer_problem(
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.content,
            case.expected.size,
            case.expected.content_type,
        )
        or ""
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080")
    parser.add_argument("--rounds", type=int, default=2, help="requests per capability")
    parser.add_argument("--deadline-s", type=float, default=900.0, help="give up after this long")
    args = parser.parse_args(argv)
    profile = profile_from_env()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {inference_key()}"
    rng = random.Random(f"warmup-{profile.seed}")
    deadline = time.monotonic() + args.deadline_s
    failed = []
    for model in profile.models:
        started = time.perf_counter()
        problems = []
        for _ in range(args.rounds):
            if time.monotonic() > deadline:
                problems.append("warm-up deadline passed")
                break
            problem = send(session, args.host, CASE_MAKERS[model](profile, rng), args.deadline_s)
            if problem:
                problems.append(problem)
        status = "ok" if not problems else f"FAILED ({problems[0]})"
        print(f"warm-up {model}: {args.rounds} request(s) in {time.perf_counter() - started:.1f} s: {status}")
        if problems:
            failed.append(model)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
