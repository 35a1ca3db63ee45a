"""Transports: each sends one request's fields to a model and reads back an Answer, and speaks
the management API. `rest` and `v2` share one pooled HTTP session; `grpc` needs the extra.

The factory is `transports.factory.make_transport`; it is not imported here, so importing a
transport never loads the factory that imports the transports."""

from imagelab_client.transports.base import RetryPolicy, Transport

__all__ = ["RetryPolicy", "Transport"]
