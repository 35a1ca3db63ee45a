"""txt2img: Stable Diffusion 1.5 with a style LoRA (monet, van_gogh, trained ones) per request."""

from handlers.common.fields import Fields
from handlers.common.service import OutputOptions
from handlers.services.diffusion import GENERATION_FIELDS, DiffusionRequest, DiffusionService, prompt_field

FIELDS = ("prompt", "negative_prompt", "style", "style_scale", "num_images") + GENERATION_FIELDS


class Txt2ImgService(DiffusionService):
    name = "txt2img"

    def describe(self) -> dict:
        described = self.describe_common()
        described["styles"] = list(self.engine.styles)
        described["fields"] = {
            "prompt": {"type": "text", "required": True, "max_tokens": self.engine.max_prompt_tokens},
            "negative_prompt": {"type": "text", "default": "", "max_tokens": self.engine.max_prompt_tokens},
            "style": {"type": "choice", "choices": list(self.engine.styles), "default": "none"},
            "style_scale": {"type": "number", "min": 0, "max": 2, "default": 1.0},
            "num_images": {"type": "integer", "min": 1, "max": self.settings.max_images, "default": 1},
            **self.describe_generation(),
        }
        return described

    def decode_request(self, fields: Fields) -> DiffusionRequest:
        fields.check_known(FIELDS)
        values = {
            "prompt": prompt_field(fields, "prompt", required=True),
            "negative_prompt": prompt_field(fields, "negative_prompt", required=False),
            "style": fields.choice("style", self.engine.styles, "none"),
            "style_scale": fields.number("style_scale", 1.0, 0.0, 2.0),
            "num_images": fields.integer("num_images", 1, 1, self.settings.max_images),
            **self.generation_fields(fields),
        }
        output = OutputOptions.from_fields(fields, streams=True)
        job = self.make_job(**values)
        parameters = {k: v for k, v in values.items() if k != "seed"}
        parameters["guidance"] = parameters.pop("guidance_scale")
        return DiffusionRequest(job, parameters, output)
