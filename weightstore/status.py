"""`python -m weightstore status`: what each capability would be built from, real or synthetic,
and for synthetic companions of the base model, which base they were made for. Reads only:
nothing is synthesised, no hash is cached."""

from imagelab.file_hashes import HashCache, folder_identity, hash_folder
from weightstore.layout import WeightsLayout
from weightstore.needs import BASE_MARKER, BASE_MODEL, BaseState, inspect_needs, uses_base_model

CAPABILITY_NAMES = ("fast_style", "neural_style", "txt2img", "animals")


def inspect_base(layout: WeightsLayout) -> BaseState:
    """The base model a build would use, hashed with a cache this never saves."""
    real = layout.real_dir(BASE_MODEL, BASE_MARKER)
    tiny = layout.synthetic_dir(BASE_MODEL)
    path = real or (tiny if (tiny / BASE_MARKER).is_file() else None)
    if path is None:
        return BaseState(None, True, None, [])
    files = hash_folder(path, HashCache())
    return BaseState(path, real is None, folder_identity(files), files)


def status_lines(layout: WeightsLayout) -> list:
    base = inspect_base(layout)
    lines = []
    if base.path is None:
        lines.append(f"{'base model':12s} {BASE_MODEL:24s} {'missing':22s} (a build synthesises a tiny one)")
    else:
        kind = "TINY SYNTHETIC" if base.synthetic else "real"
        size_gb = sum(f.bytes for f in base.files) / 1e9
        lines.append(
            f"{'base model':12s} {BASE_MODEL:24s} {kind:22s} {base.path}  identity {base.identity[:12]} "
            f"({len(base.files)} files, {size_gb:.2f} GB)"
        )
    for capability in CAPABILITY_NAMES:
        for state in inspect_needs(capability, layout, base if uses_base_model(capability) else None):
            lines.append(_line(state, base))
    return lines


def _line(state, base: BaseState) -> str:
    if state.path is None:
        kind, where = "missing", "(a build synthesises it)"
    elif not state.synthetic:
        kind, where = "real", str(state.path)
        if state.problem:
            kind, where = "REAL, DOES NOT FIT", f"{state.path}: {state.problem}"
    else:
        kind, where = "TINY SYNTHETIC", str(state.path)
        if state.basis is not None or state.stale:
            made_for = (state.basis or "unrecorded")[:12]
            if state.stale:
                kind = "STALE SYNTHETIC"
                where += f"  made for base {made_for}, not {(base.identity or 'none')[:12]}: a build remakes it"
            else:
                where += f"  made for base {made_for}"
    return f"{state.capability:12s} {state.name:24s} {kind:22s} {where}"
