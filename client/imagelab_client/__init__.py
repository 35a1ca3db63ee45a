"""imagelab-client: the SDK and CLI for the imagelab TorchServe models (see README.md).

from imagelab_client import ImageLabClient
with ImageLabClient(key_file="var/serve/key_file.json") as client:
    client.stylize("photo.jpg", style="mosaic").image.save("out.png")
"""

from imagelab_client.client import ImageLabClient, ModelDescription, ModelVersions
from imagelab_client.errors import (
    AuthError,
    Cancelled,
    ConnectionFailed,
    ImageLabError,
    InvalidInput,
    NotFound,
    OutOfResources,
    Overloaded,
    ServerError,
    Timeout,
)
from imagelab_client.results import ImageResult
from imagelab_client.transports import RetryPolicy

__all__ = [
    "ImageLabClient",
    "ImageResult",
    "ModelDescription",
    "ModelVersions",
    "RetryPolicy",
    "ImageLabError",
    "InvalidInput",
    "AuthError",
    "NotFound",
    "Overloaded",
    "Timeout",
    "OutOfResources",
    "ServerError",
    "ConnectionFailed",
    "Cancelled",
]
