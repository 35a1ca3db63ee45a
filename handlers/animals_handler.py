"""TorchServe entry point of the animals archive."""

from handlers.services.animals import AnimalsService
from handlers.torchserve_adapter import TorchServeHandler


class AnimalsHandler(TorchServeHandler):
    service_class = AnimalsService
