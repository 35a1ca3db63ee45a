"""TorchServe entry point of the fast_style archive."""

from handlers.services.fast_style import FastStyleService
from handlers.torchserve_adapter import TorchServeHandler


class FastStyleHandler(TorchServeHandler):
    service_class = FastStyleService
