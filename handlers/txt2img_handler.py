"""TorchServe entry point of the txt2img archive."""

from handlers.services.txt2img import Txt2ImgService
from handlers.torchserve_adapter import TorchServeHandler


class Txt2ImgHandler(TorchServeHandler):
    service_class = Txt2ImgService
