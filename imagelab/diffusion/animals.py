"""The animal classes of the `animals` LoRA, name matching and prompt templates.

The class list travels with the LoRA: a LoRA trained on class folders carries its class names in
its safetensors metadata (CLASSES_METADATA_KEY, a JSON list), and the server reads them from the
archived file. The built-in list (animal_classes.txt, 100 classes) is only the default, for the
built-in LoRA and any LoRA without that key.
"""

import difflib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

CLASSES_FILE = Path(__file__).with_name("animal_classes.txt")
CLASSES_METADATA_KEY = "imagelab_classes"

# {a_animal} is the name with its article: "a lion", "an elephant".
PROMPT_TEMPLATES = (
    "a photo of {a_animal}",
    "a close-up photo of {a_animal}",
    "a photo of {a_animal} in the wild",
    "a high quality photo of {a_animal}",
    "a detailed portrait of {a_animal}",
)


class UnknownAnimalError(ValueError):
    """An animal name that matches no class; `suggestions` holds the closest class names."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown animal {name!r}{hint}")


def normalise(name: str) -> str:
    """Case-insensitive, with `_`, `-` and runs of spaces all the same: 'Polar-Bear' -> 'polar_bear'."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class AnimalClasses:
    """The class list, in file order; `names` are canonical (lowercase, underscores)."""

    names: tuple[str, ...]

    def __post_init__(self):
        if not self.names:
            raise ValueError("the class list is empty")
        bad = [n for n in self.names if normalise(n) != n]
        if bad:
            raise ValueError(f"class names must be lowercase with underscores, got {bad[:5]}")
        if len(set(self.names)) != len(self.names):
            raise ValueError("the class list has duplicate names")

    @classmethod
    def load(cls, path: str | Path = CLASSES_FILE) -> "AnimalClasses":
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(tuple(line.strip() for line in lines if line.strip()))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalise(name) in self.names

    def closest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(normalise(name), self.names, n=n, cutoff=0.5)

    def match(self, name: str) -> str:
        """The canonical class name for `name`, or UnknownAnimalError (a ValueError) with suggestions."""
        if not isinstance(name, str):
            raise ValueError(f"animal must be a string, got {type(name).__name__}")
        canonical = normalise(name)
        if canonical in self.names:
            return canonical
        raise UnknownAnimalError(name, self.closest(name))

    def prompt_for(
        self,
        name: str,
        extra: str = "",
        template_index: int | None = None,
        seed: int | None = None,
    ) -> str:
        """A text prompt for the class: a template with the animal's plain name, then `extra`.

        The template is `template_index` if given, else chosen by `seed` (so a request's seed
        also fixes its prompt wording), else the first one.
        """
        if template_index is None:
            template_index = random.Random(seed).randrange(len(PROMPT_TEMPLATES)) if seed is not None else 0
        if not 0 <= template_index < len(PROMPT_TEMPLATES):
            raise ValueError(f"template_index must be in [0, {len(PROMPT_TEMPLATES) - 1}], got {template_index}")
        animal = self.match(name).replace("_", " ")
        article = "an" if animal[0] in "aeiou" else "a"
        prompt = PROMPT_TEMPLATES[template_index].format(a_animal=f"{article} {animal}")
        extra = extra.strip()
        return f"{prompt}, {extra}" if extra else prompt


def _read_header(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's JSON header and the tensor bytes after it (format: an 8-byte
    little-endian header length, the JSON header, then the data its offsets point into)."""
    raw = Path(path).read_bytes()
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def read_lora_classes(path: str | Path) -> "AnimalClasses | None":
    """The class list a LoRA file carries in its metadata, or None when it carries none."""
    header, _ = _read_header(Path(path))
    names = (header.get("__metadata__") or {}).get(CLASSES_METADATA_KEY)
    if names is None:
        return None
    return AnimalClasses(tuple(json.loads(names)))


def classes_for_lora(path: str | Path) -> "AnimalClasses":
    """The LoRA's own classes, else the built-in list."""
    return read_lora_classes(path) or AnimalClasses.load()


def write_lora_classes(path: str | Path, labels) -> "AnimalClasses":
    """Record `labels` (class folder names, normalised here) in the LoRA file's metadata.

    The header is rewritten by hand with sorted keys: safetensors' own writer orders metadata
    keys at random (a Rust HashMap), and the same LoRA must give the same bytes."""
    classes = AnimalClasses(tuple(normalise(label) for label in labels))
    path = Path(path)
    header, data = _read_header(path)
    header.setdefault("__metadata__", {})[CLASSES_METADATA_KEY] = json.dumps(list(classes.names))
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads its header to 8 bytes with spaces
    staged = path.with_name(f".{path.name}.{os.getpid()}.part")
    staged.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)
    os.replace(staged, path)
    return classes
