"""Transports: each sends one request's fields to a model and reads back an Answer, and speaks
the management API. `rest` and `v2` share one pooled HTTP session; `grpc` needs the extra."""

from imagelab_client.transports.base import RetryPolicy, Transport, make_transport

__all__ = ["RetryPolicy", "Transport", "make_transport"]
