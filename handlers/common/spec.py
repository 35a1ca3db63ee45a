"""One declaration per model of the request fields it accepts.

A `Field` says what a field is (type, range or choices, default, unit, description); a
`FieldSpec` is a model's ordered list of them. The same spec decodes and validates a request
(`decode`, every 4xx naming its field as data), lists the fields for `describe`
(`?customized=true`, which the playground builds its controls from), and names the fields a
service accepts (`names`, for metrics labels). What only the archive or the engine knows
(styles, size limits, defaults) is filled in once at setup with `FieldSpec.bind`.

Adding a field: declare it in the model's spec, use its decoded value, add a test.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Union

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.images import ImageLimits, decode_image
from imagelab.validation import SEED_RANGE, random_seed

TYPES = ("integer", "number", "choice", "boolean", "text", "image")
IMAGE_FORMATS = ("jpeg", "png", "webp")


@dataclass(frozen=True)
class Drawn:
    """A default drawn per request (a random seed); `describe` shows its label."""

    label: str
    draw: Callable[[], Any]


@dataclass(frozen=True)
class Field:
    """One request field. `low`/`high` bound integers and numbers (describe's `min`/`max`;
    left out where the archive sets them, then filled in by `FieldSpec.bind` at setup);
    `choices` bound choices (`parse`, when set, replaces the membership test: it takes the
    text and returns the value or raises InvalidField, e.g. fuzzy animal names); `max_chars`
    bounds text; `limits` bound images. `required` fields have no default. `core_name` is the
    name of the value in the core's own object when it differs (GenerationJob's
    `guidance_scale` for the public `guidance`). `extra` adds describe-only keys (`note`,
    `max_tokens`). `required_hint` completes the message for a missing required field."""

    name: str
    type: str
    description: str
    default: Any = None
    low: Optional[Union[int, float]] = None
    high: Optional[Union[int, float]] = None
    multiple_of: Optional[int] = None
    choices: tuple = ()
    unit: Optional[str] = None
    required: bool = False
    required_hint: Optional[str] = None
    max_chars: int = 2000
    limits: Optional[ImageLimits] = None
    parse: Optional[Callable[[str], Any]] = None
    core_name: Optional[str] = None
    extra: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"field {self.name!r}: type must be one of {TYPES}, got {self.type!r}")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"field {self.name!r}: needs low <= high, got {self.low!r}, {self.high!r}")
        default = self.default
        if self.required or default is None or isinstance(default, Drawn):
            return
        bounded = self.low is not None and self.high is not None
        if self.type in ("integer", "number") and bounded and not self.low <= default <= self.high:
            raise ValueError(f"field {self.name!r}: default {default!r} is outside [{self.low}, {self.high}]")
        if self.type == "choice" and self.choices and default not in self.choices:
            raise ValueError(f"field {self.name!r}: default {default!r} is not among {list(self.choices)}")

    def decode(self, fields: Fields):
        """The field's value from one request, or its default; raises RequestError naming it."""
        name, default = self.name, self.default
        drawn = isinstance(default, Drawn)
        fallback = None if drawn or self.required else default
        if self.type in ("integer", "number") and (self.low is None or self.high is None):
            raise RuntimeError(f"field {name!r} has no range yet: bind it at setup")
        if self.type == "integer":
            value = fields.integer(name, fallback, self.low, self.high)
            if value is not None and self.multiple_of and value % self.multiple_of:
                raise InvalidField(
                    f"'{name}' must be a multiple of {self.multiple_of} from {self.low} to {self.high}; got {value}",
                    name,
                )
        elif self.type == "number":
            value = fields.number(name, fallback, self.low, self.high)
        elif self.type == "boolean":
            value = fields.boolean(name, fallback)
        elif self.type == "image":
            limits = self.limits or ImageLimits()
            return decode_image(fields.image_bytes(name, limits.max_bytes), name, limits)
        elif self.type == "choice" and self.parse is None:
            value = fields.choice(name, self.choices, fallback)
        else:  # text, or a choice with its own parser
            value = fields.text(name, fallback, self.max_chars)
            if self.required and (value is None or not value.strip()):
                hint = self.required_hint or self.description
                raise InvalidField(f"'{name}' is required: {hint}", name)
            if self.parse is not None and value is not None:
                value = self.parse(value)
        if value is None and self.required:
            raise InvalidField(f"'{name}' is required: {self.required_hint or self.description}", name)
        if value is None and drawn:
            value = default.draw()
        return value

    def describe(self) -> dict:
        """The field as `describe` lists it (the JSON shape the playground reads)."""
        described: dict = {"type": self.type}
        if self.required:
            described["required"] = True
        if self.type == "image":
            limits = self.limits or ImageLimits()
            described.update(
                formats=list(IMAGE_FORMATS),
                max_bytes=limits.max_bytes,
                max_pixels=limits.max_pixels,
                max_side_px=limits.max_side_px,
            )
        if self.type in ("integer", "number"):
            described.update(min=self.low, max=self.high)
            if self.multiple_of:
                described["multiple_of"] = self.multiple_of
        if self.type == "choice":
            described["choices"] = list(self.choices)
        if not self.required and self.type != "image":
            described["default"] = self.default.label if isinstance(self.default, Drawn) else self.default
        described.update(self.extra)
        if self.unit:
            described["unit"] = self.unit
        described["description"] = self.description
        return described


class FieldSpec:
    """A model's fields in order. Scalars decode in that order, images last (the cheap checks
    first); unknown field names are rejected, so a typo like `styel` is a 400, not ignored."""

    def __init__(self, *parts: Union[Field, "FieldSpec"]):
        fields: dict = {}
        for part in parts:
            for item in part if isinstance(part, FieldSpec) else (part,):
                if item.name in fields:
                    raise ValueError(f"field {item.name!r} is declared twice")
                fields[item.name] = item
        self._fields = fields

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields.values())

    def __getitem__(self, name: str) -> Field:
        return self._fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    @property
    def names(self) -> frozenset:
        return frozenset(self._fields)

    def bind(self, **changes: Mapping) -> "FieldSpec":
        """A copy with some fields' attributes replaced, e.g. `bind(style={"choices": styles})`;
        the new values are checked like a declaration (a default outside its range fails)."""
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise ValueError(f"bind: no such fields {unknown}")
        return FieldSpec(*(replace(f, **changes[f.name]) if f.name in changes else f for f in self))

    def without(self, names: Iterable[str]) -> "FieldSpec":
        names = set(names)
        return FieldSpec(*(f for f in self if f.name not in names))

    def decode(self, fields: Fields) -> dict:
        """Field name -> validated value for every declared field (defaults filled in)."""
        fields.check_known(self._fields)
        ordered = [f for f in self if f.type != "image"] + [f for f in self if f.type == "image"]
        return {f.name: f.decode(fields) for f in ordered}

    def describe(self) -> dict:
        return {f.name: f.describe() for f in self}

    def core_values(self, values: Mapping) -> dict:
        """Decoded values keyed by the core's names (`guidance` -> `guidance_scale`)."""
        return {(self[name].core_name or name) if name in self else name: v for name, v in values.items()}

    def field_for(self, core_name: str) -> Optional[str]:
        """The public field a core error names (`guidance_scale` -> `guidance`), if any."""
        for f in self:
            if (f.core_name or f.name) == core_name:
                return f.name
        return None


# The one seed field of every model that takes a seed (neural_style, txt2img, animals).
SEED_FIELD = Field(
    "seed",
    "integer",
    "Random seed; the same request with the same seed gives the same image",
    default=Drawn("random", random_seed),
    low=SEED_RANGE[0],
    high=SEED_RANGE[1],
)

# Live previews in streamed progress events (txt2img, animals; imagelab/diffusion/preview.py).
PREVIEW_FIELD = Field(
    "preview",
    "boolean",
    "With stream=true: progress events every few steps carry a small JPEG preview of the image "
    "being denoised (`preview`: base64 `image`, `format`, `width`, `height`); no effect without stream",
    default=False,
)
