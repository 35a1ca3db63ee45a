"""animals: SD 1.5 with the animals LoRA; a class name becomes a prompt, then the picture's
contrast, saturation and brightness are adjusted as in the reference generator."""

from functools import partial

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import OutputOptions, ServiceContext
from handlers.services.diffusion import GENERATION_FIELDS, DiffusionRequest, DiffusionService, prompt_field
from imagelab.diffusion import AnimalClasses, ColorAdjustment, UnknownAnimalError, adjust_colors

ADJUSTMENTS = ("contrast", "saturation", "brightness")
FIELDS = ("animal", "prompt_extra") + ADJUSTMENTS + GENERATION_FIELDS
ANIMALS_ADAPTER = "animals"


class AnimalsService(DiffusionService):
    name = "animals"

    def setup(self, context: ServiceContext) -> None:
        super().setup(context)
        if ANIMALS_ADAPTER not in self.engine.styles:
            raise ValueError("the animals archive needs an 'animals' adapter")
        self.classes = AnimalClasses.load()

    def describe(self) -> dict:
        described = self.describe_common()
        described["classes"] = list(self.classes.names)
        described["fields"] = {
            "animal": {
                "type": "choice",
                "required": True,
                "choices": list(self.classes.names),
                "note": "case-insensitive; '_', '-' and ' ' are the same",
            },
            "prompt_extra": {"type": "text", "default": ""},
            **{name: {"type": "number", "min": 0, "max": 3, "default": 1.0} for name in ADJUSTMENTS},
            **self.describe_generation(),
        }
        return described

    def decode_request(self, fields: Fields) -> DiffusionRequest:
        fields.check_known(FIELDS)
        name = fields.text("animal", None, 100)
        if not name or not name.strip():
            raise InvalidField("'animal' is required: one of the 100 classes, e.g. lion", "animal")
        try:
            animal = self.classes.match(name)
        except UnknownAnimalError as error:
            closest = ", ".join(error.suggestions) or "see GET /models/animals?customized=true"
            raise InvalidField(f"'animal' {name[:40]!r} is not a known class; closest: {closest}", "animal") from None
        extra = prompt_field(fields, "prompt_extra", required=False)
        adjustment = ColorAdjustment(**{n: fields.number(n, 1.0, 0.0, 3.0) for n in ADJUSTMENTS})
        generation = self.generation_fields(fields)
        prompt = self.classes.prompt_for(animal, extra, seed=generation["seed"])
        output = OutputOptions.from_fields(fields, streams=True)
        job = self.make_job(prompt=prompt, style=ANIMALS_ADAPTER, style_scale=1.0, **generation)
        parameters = {
            "animal": animal,
            "prompt": prompt,
            **{n: getattr(adjustment, n) for n in ADJUSTMENTS},
            **{k: v for k, v in generation.items() if k != "seed"},
        }
        parameters["guidance"] = parameters.pop("guidance_scale")
        return DiffusionRequest(job, parameters, output, partial(adjust_colors, adjustment=adjustment))
