"""TorchServe entry point of the neural_style archive."""

from handlers.services.neural_style import NeuralStyleService
from handlers.torchserve_adapter import TorchServeHandler


class NeuralStyleHandler(TorchServeHandler):
    service_class = NeuralStyleService
