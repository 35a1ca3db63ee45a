"""Which browser requests go where. Anything not listed here is refused: the gateway is not an
open proxy to TorchServe (no register/unregister/scale, no metrics, no arbitrary paths)."""

import re
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl, urlencode

from imagelab.cancellation import JOB_ID_PATTERN, JOB_ID_RULE

MODEL = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,99}"
VERSION = r"[0-9][0-9.]{0,19}"
PREDICTIONS = re.compile(rf"^/api/predictions/(?P<model>{MODEL})(?:/(?P<version>{VERSION}))?$")
MODELS = re.compile(rf"^/api/models(?:/(?P<model>{MODEL})(?:/(?P<version>{VERSION}|all))?)?$")
CANCEL = re.compile(rf"^/api/cancel/(?P<job_id>{JOB_ID_PATTERN})$")
SET_DEFAULT = re.compile(rf"^/api/models/(?P<model>{MODEL})/(?P<version>{VERSION})/set-default$")
# The management API's read-only query parameters (describe, paging).
MODELS_QUERY = {"customized", "limit", "next_page_token"}


class Route(NamedTuple):
    upstream: str  # "inference" or "management": which URL and which key
    path: str  # path and query on TorchServe


class Cancel(NamedTuple):
    """Not forwarded: the gateway writes the job's cancel marker itself (the busy worker takes
    no call; imagelab/cancellation.py)."""

    job_id: str


class Refusal(NamedTuple):
    status: int
    message: str
    allow: str = ""  # the Allow header of a 405


def route(method: str, path: str, query: str, allow_set_default: bool) -> "Route | Cancel | Refusal":
    match = PREDICTIONS.match(path)
    if match:
        if method != "POST":
            return Refusal(405, "predictions take POST", "POST")
        return Route("inference", _join("/predictions", match["model"], match["version"]))
    if path.startswith("/api/cancel/"):
        match = CANCEL.match(path)
        if not match:
            return Refusal(400, f"a job id is {JOB_ID_RULE}")
        if method != "POST":
            return Refusal(405, "cancel takes POST", "POST")
        return Cancel(match["job_id"])
    match = SET_DEFAULT.match(path)
    if match:
        if not allow_set_default:
            return Refusal(
                403, "setting the default version is off in this gateway (start it with --allow-set-default)"
            )
        if method != "PUT":
            return Refusal(405, "set-default takes PUT", "PUT")
        return Route("management", f"/models/{match['model']}/{match['version']}/set-default")
    match = MODELS.match(path)
    if match:
        if method not in ("GET", "HEAD"):
            return Refusal(405, "the gateway forwards only reads of the management API", "GET, HEAD")
        upstream_query = _models_query(query)
        if upstream_query is None:
            return Refusal(400, f"the models API takes only the query parameters {', '.join(sorted(MODELS_QUERY))}")
        return Route("management", _join("/models", match["model"], match["version"]) + upstream_query)
    return Refusal(404, f"no such API path: {path[:100]}")


def _join(base: str, model: Optional[str], version: Optional[str]) -> str:
    return "/".join(p for p in (base, model, version) if p)


def _models_query(query: str) -> Optional[str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k not in MODELS_QUERY or len(v) > 100 for k, v in pairs):
        return None
    return f"?{urlencode(pairs)}" if pairs else ""
