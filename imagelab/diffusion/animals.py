"""The 100 animal classes of the `animals` LoRA, name matching and prompt templates."""

import difflib
import random
from dataclasses import dataclass
from pathlib import Path

CLASSES_FILE = Path(__file__).with_name("animal_classes.txt")

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
