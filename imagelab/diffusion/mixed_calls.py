"""Which jobs of a mixed-style group share a pipeline call (issue 19.2; the engine runs them).

Jobs that all want the same adapters run as one call on the fused path (fuse.py). Jobs that
want different ones run as one call, each UNet row with its job's adapters (mixed_lora.py),
when every adapter they name is loaded at once. Folder styles (adapters.py) past the LRU's
bound evict each other as they load, so then each adapter set gets a call of its own.
"""

from typing import NamedTuple

from imagelab.diffusion.mixed_lora import AdapterSet


class MixedCall(NamedTuple):
    """One pipeline call of a mixed-style group."""

    positions: list[int]  # the jobs' positions in the group, in order
    per_row: bool  # True: each row with its job's adapters; False: one adapter set for all


def plan_mixed_calls(wanted: dict[int, AdapterSet], loaded: set[str]) -> list[MixedCall]:
    """The calls for jobs wanting `wanted[position]`, given the PEFT adapter names `loaded`."""
    distinct = set(wanted.values())
    together = len(distinct) > 1 and all(name in loaded for adapters in distinct for name, _ in adapters)
    if together or len(distinct) == 1:
        return [MixedCall(list(wanted), together)]
    return [
        MixedCall([p for p, a in wanted.items() if a == adapters], False) for adapters in dict.fromkeys(wanted.values())
    ]
