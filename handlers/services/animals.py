"""animals: SD 1.5 with the animals LoRA; a class name becomes a prompt, then the picture's
contrast, saturation and brightness are adjusted as in the reference generator."""

from functools import partial

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import OutputOptions, ServiceContext, output_spec
from handlers.common.spec import Field, FieldSpec
from handlers.services.diffusion import GENERATION_SPEC, DiffusionRequest, DiffusionService, prompt_field
from imagelab.diffusion import AnimalClasses, ColorAdjustment, UnknownAnimalError, adjust_colors
from imagelab.diffusion.adjust import MAX_FACTOR, MIN_FACTOR
from imagelab.diffusion.animals import read_lora_classes

ADJUSTMENTS = ("contrast", "saturation", "brightness")
ANIMALS_ADAPTER = "animals"


def _adjustment(name: str) -> Field:
    return Field(name, "number", f"{name.capitalize()} factor; 1 leaves the image as made", 1.0, MIN_FACTOR, MAX_FACTOR)


# The class list is bound at setup (the choices, and the matcher that suggests close names).
SPEC = FieldSpec(
    Field(
        "animal",
        "choice",
        "The animal class to draw",
        required=True,
        required_hint="one of the model's classes (see describe), e.g. lion",
        max_chars=100,
        extra={"note": "case-insensitive; '_', '-' and ' ' are the same"},
    ),
    prompt_field("prompt_extra", "Words added to the class's prompt", required=False),
    *(_adjustment(name) for name in ADJUSTMENTS),
    GENERATION_SPEC,
)
# Echoed back as `parameters` besides the prompt made: what shaped the image, by public name.
NOT_ECHOED = {"seed", "prompt_extra", "preview"} | output_spec(streams=True).names


class AnimalsService(DiffusionService):
    name = "animals"
    spec = SPEC

    def setup(self, context: ServiceContext) -> None:
        super().setup(context)
        if ANIMALS_ADAPTER not in self.engine.styles:
            raise ValueError("the animals archive needs an 'animals' adapter")
        # The LoRA's own class list (a trained LoRA carries it), else the built-in 100.
        own = read_lora_classes(self.context.model_dir / self.settings.adapters[ANIMALS_ADAPTER])
        self.classes, self.classes_source = (own, "lora") if own else (AnimalClasses.load(), "built-in")
        self.spec = self.spec.bind(animal={"choices": self.classes.names, "parse": self._match})

    def describe(self) -> dict:
        described = self.describe_common()
        described["classes"] = list(self.classes.names)
        described["classes_source"] = self.classes_source
        described["fields"] = self.spec.describe()
        return described

    def decode_request(self, fields: Fields) -> DiffusionRequest:
        values = self.spec.decode(fields)
        prompt = self.classes.prompt_for(values["animal"], values["prompt_extra"], seed=values["seed"])
        job = self.make_job(values, prompt=prompt, style=ANIMALS_ADAPTER, style_scale=1.0)
        adjustment = ColorAdjustment(**{n: values[n] for n in ADJUSTMENTS})
        parameters = {"prompt": prompt, **{k: v for k, v in values.items() if k not in NOT_ECHOED}}
        return DiffusionRequest(
            job,
            parameters,
            OutputOptions.from_values(values),
            partial(adjust_colors, adjustment=adjustment),
            preview=values["preview"],
        )

    def _match(self, name: str) -> str:
        try:
            return self.classes.match(name)
        except UnknownAnimalError as error:
            closest = ", ".join(error.suggestions) or "see GET /models/animals?customized=true"
            raise InvalidField(f"'animal' {name[:40]!r} is not a known class; closest: {closest}", "animal") from None
