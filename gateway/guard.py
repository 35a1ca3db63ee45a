"""Which pages the gateway answers at all. It spends a TorchServe key on every forwarded
request, so it serves only the playground it served itself:

- Host must name the gateway (a DNS-rebound name would let any site's page talk to it);
- a state-changing request (POST, PUT, PATCH, DELETE) must come from the same origin: the
  browser's own `Sec-Fetch-Site: same-origin`, or, from a client that sends no fetch metadata,
  the custom header CLIENT_HEADER (which no cross-site page can add without a CORS preflight,
  and the gateway answers no preflight);
- an Origin header, where a browser sends one, must be the gateway's."""

from typing import Iterable, Optional

from gateway.routes import Refusal

CLIENT_HEADER = "X-Imagelab-Client"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def refuse_foreign(method: str, headers, port: int, names: Iterable[str] = ()) -> Optional[Refusal]:
    """headers: a case-insensitive mapping (Starlette's Headers). -> a Refusal, or None."""
    host = headers.get("host", "")
    allowed = {f"{name}:{port}" for name in (*LOCAL_NAMES, *names)}
    if host not in allowed:
        return Refusal(403, f"unexpected Host header {host[:100]!r}; open the playground at http://127.0.0.1:{port}")
    if method not in STATE_CHANGING:
        return None
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return Refusal(403, f"cross-origin {method} from {origin[:100]!r} refused")
    site = headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return Refusal(403, f"{method} from a {site[:20]!r} page refused; only the playground's own pages may send it")
    if site is None and not headers.get(CLIENT_HEADER):
        return Refusal(403, f"a {method} needs the header {CLIENT_HEADER} (the playground sends it)")
    return None
