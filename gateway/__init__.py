"""A small same-origin gateway for the web playground (frontend/): serves the built single-page
app and forwards /api/... to TorchServe, adding the bearer tokens server-side so that no key
ever reaches the browser. An ASGI app (Starlette) on uvicorn, httpx to TorchServe."""
