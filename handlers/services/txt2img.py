"""txt2img: Stable Diffusion 1.5 with a style LoRA (monet, van_gogh, trained ones) per request."""

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import OutputOptions, ServiceContext, output_spec
from handlers.common.spec import Field, FieldSpec
from handlers.services.diffusion import GENERATION_SPEC, DiffusionRequest, DiffusionService, prompt_field
from imagelab.diffusion.adapters import read_adapter_info
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
NOT_ECHOED = {"seed", "preview"} | output_spec(streams=True).names


class Txt2ImgService(DiffusionService):
    name = "txt2img"
    spec = SPEC
    watches_adapters = True

    def setup(self, context: ServiceContext) -> None:
        super().setup(context)
        tokens = {"extra": {"max_tokens": self.engine.max_prompt_tokens}}
        self.spec = self.spec.bind(
            prompt=tokens,
            negative_prompt=tokens,
            # The choices listed at setup; `parse` asks the engine, whose folder styles change.
            style={"choices": self.engine.styles, "parse": self._parse_style},
            num_images={"high": self.settings.max_images},
        )
        self.archived_styles = {
            name: read_adapter_info(path, name, "archive") for name, path in self.engine.settings.adapters.items()
        }

    def _parse_style(self, text: str) -> str:
        """A current style (archived ones are lower case; folder names keep their case)."""
        styles = self.engine.styles
        value = text.strip()
        if value in styles or value.lower() in styles:
            return value if value in styles else value.lower()
        on_demand = self.engine.on_demand
        refusal = on_demand.folder.refusal_for(value) if on_demand is not None else None
        if refusal is not None:
            raise InvalidField(f"'style' {value[:64]!r} cannot be used: {refusal}", "style")
        raise InvalidField(f"'style' must be one of {', '.join(styles)}; got '{text[:40]}'", "style")

    def describe(self) -> dict:
        described = self.describe_common()
        styles = self.engine.styles
        described["styles"] = list(styles)
        on_demand = self.engine.on_demand
        folder = on_demand.usable if on_demand is not None else {}
        # Per style: archive or folder, sha256, rank, alpha; an archived style wins a clash.
        described["style_sources"] = {
            name: (self.archived_styles.get(name) or folder[name]).describe() for name in styles if name != NO_STYLE
        }
        if on_demand is not None:
            described["adapters_folder"] = {
                "path": str(on_demand.folder.root),
                "shadowed_by_archive": sorted(n for n in folder if n in self.archived_styles),
                "refused": dict(on_demand.folder.refused),
                "loaded": list(on_demand.loaded),
                "max_count": on_demand.max_count,
                "max_bytes": on_demand.max_bytes,
            }
        described["fields"] = self.spec.bind(style={"choices": styles}).describe()
        return described

    def decode_request(self, fields: Fields) -> DiffusionRequest:
        values = self.spec.decode(fields)
        job = self.make_job(values)
        parameters = {k: v for k, v in values.items() if k not in NOT_ECHOED}
        return DiffusionRequest(job, parameters, OutputOptions.from_values(values), preview=values["preview"])
