"""txt2img: Stable Diffusion 1.5 with a style LoRA (monet, van_gogh, trained ones) per request."""

from handlers.common.fields import Fields
from handlers.common.service import OutputOptions, ServiceContext, output_spec
from handlers.common.spec import Field, FieldSpec
from handlers.services.diffusion import GENERATION_SPEC, DiffusionRequest, DiffusionService, prompt_field
from imagelab.diffusion.jobs import NO_STYLE, NUM_IMAGES_RANGE, STYLE_SCALE_RANGE

# The styles, the image count limit and the prompt's token limit are bound at setup.
SPEC = FieldSpec(
    prompt_field("prompt", "The image to make, in words", required=True, required_hint="describe the image to make"),
    prompt_field("negative_prompt", "What the image should not show", required=False),
    Field("style", "choice", "The style LoRA to apply; none is the base model", default=NO_STYLE),
    Field(
        "style_scale",
        "number",
        "Strength of the style LoRA; 0 is the base model",
        default=1.0,
        low=STYLE_SCALE_RANGE[0],
        high=STYLE_SCALE_RANGE[1],
    ),
    Field(
        "num_images", "integer", "Images to make, with seeds seed, seed + 1, ...", default=1, low=NUM_IMAGES_RANGE[0]
    ),
    GENERATION_SPEC,
)
# Echoed back as `parameters`: what shaped the image, by public name (the seeds go apart).
NOT_ECHOED = {"seed"} | output_spec(streams=True).names


class Txt2ImgService(DiffusionService):
    name = "txt2img"
    spec = SPEC

    def setup(self, context: ServiceContext) -> None:
        super().setup(context)
        tokens = {"extra": {"max_tokens": self.engine.max_prompt_tokens}}
        self.spec = self.spec.bind(
            prompt=tokens,
            negative_prompt=tokens,
            style={"choices": self.engine.styles},
            num_images={"high": self.settings.max_images},
        )

    def describe(self) -> dict:
        described = self.describe_common()
        described["styles"] = list(self.engine.styles)
        described["fields"] = self.spec.describe()
        return described

    def decode_request(self, fields: Fields) -> DiffusionRequest:
        values = self.spec.decode(fields)
        job = self.make_job(values)
        parameters = {k: v for k, v in values.items() if k not in NOT_ECHOED}
        return DiffusionRequest(job, parameters, OutputOptions.from_values(values))
