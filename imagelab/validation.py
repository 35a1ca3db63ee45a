"""The core's value checks: one error type that names its field as data, the shared seed range,
and the checks the capability configs (GenerationJob, NeuralStyleConfig) run at construction.

The handlers' request specs (handlers/common/spec.py) reuse the same limit constants, so a
request that passes the spec never fails here; these checks guard the core's other callers
(training, benchmarks, tests)."""

import math
import random

# Seeds a client may ask for. torch.Generator takes 64 bits; 31 keep every seed a JSON, int32
# and JavaScript-safe number, and `seed + k` (one seed per image) stays far from the edge.
SEED_RANGE = (0, 2**31 - 1)


class InvalidValue(ValueError):
    """A value outside its accepted range or choices; `field_name` names it for callers."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name


def random_seed() -> int:
    return random.randint(*SEED_RANGE)


def check_int(name: str, value: object, low: int, high: int, multiple_of: int = 1) -> None:
    # bool is an int subclass; True steps is a caller bug, not 1 step.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValue(name, f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if value % multiple_of:
        raise InvalidValue(name, f"{name} must be a multiple of {multiple_of} in [{low}, {high}], got {value!r}")


def check_number(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidValue(name, f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def check_choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise InvalidValue(name, f"{name} must be one of {list(accepted)}, got {value!r}")
