"""LoRA styles on demand: a watched folder and a bounded LRU of loaded adapters (adapters.py)."""

import os
import shutil

import numpy as np
import pytest

from imagelab.diffusion.adapters import AdapterFolder, OnDemandAdapters
from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob
from imagelab.diffusion.tiny import synthesize_tiny_lora

TINY = dict(width=64, height=64, steps=2)


class Clock:
    """A hand-driven clock: the folder re-lists only when told time has passed."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def tick(self, seconds=10.0):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "adapters" / "txt2img"
    path.mkdir(parents=True)
    return path


def make_engine(tiny_sd15_dir, lora_files, folder, clock, max_count=2):
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", poll_s=2.0, clock=clock)
    settings = DiffusionSettings(tiny_sd15_dir, dtype="float32", adapters={"monet": lora_files["monet"]})
    return DiffusionEngine(settings, OnDemandAdapters(watched, max_count=max_count))


def image(engine, **overrides) -> np.ndarray:
    [result] = engine.generate([GenerationJob("a lighthouse", seed=3, **{**TINY, **overrides})])
    return np.asarray(result.images[0]).astype(np.int16)


def unet_adapter_count(engine) -> int:
    return len(getattr(engine.pipe.unet, "peft_config", {}))


def test_a_dropped_file_becomes_a_style_without_a_restart(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock)
    assert "harbour" not in engine.styles
    shutil.copy(lora_files["r2_alpha16"], folder / "harbour.safetensors")
    clock.tick()
    assert "harbour" in engine.styles
    styled, base = image(engine, style="harbour"), image(engine)
    assert not np.array_equal(styled, base)
    assert engine.on_demand.counts.loads == 1
    image(engine, style="harbour")
    assert engine.on_demand.counts.hits == 1


def test_a_folder_style_gives_the_image_of_the_same_lora_archived(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock)
    shutil.copy(lora_files["monet"], folder / "Monet-copy.safetensors")
    clock.tick()
    difference = np.abs(image(engine, style="Monet-copy") - image(engine, style="monet"))
    assert difference.max() <= 1


def test_a_removed_file_disappears_and_leaves_the_model(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock)
    shutil.copy(lora_files["r2_alpha16"], folder / "harbour.safetensors")
    clock.tick()
    image(engine, style="harbour")
    before = unet_adapter_count(engine)
    (folder / "harbour.safetensors").unlink()
    clock.tick()
    assert "harbour" not in engine.styles
    with pytest.raises(ValueError, match="style"):
        engine.validate_job(GenerationJob("x", style="harbour"))
    image(engine)  # a batch between: the stale adapter is deleted
    assert unet_adapter_count(engine) == before - 1


def test_a_replaced_file_is_reloaded(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock)
    target = folder / "harbour.safetensors"
    shutil.copy(lora_files["r2_alpha16"], target)
    clock.tick()
    first = image(engine, style="harbour")
    old_sha = engine.on_demand.loaded["harbour"].sha256
    shutil.copy(lora_files["monet"], target)
    os.utime(target, ns=(1, 1))  # a copy within the same mtime tick still counts as changed
    clock.tick()
    second = image(engine, style="harbour")
    assert engine.on_demand.loaded["harbour"].sha256 != old_sha
    assert engine.on_demand.counts.loads == 2
    assert not np.array_equal(first, second)
    assert np.abs(second - image(engine, style="monet")).max() <= 1


def test_an_archived_style_wins_a_name_clash(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock)
    shutil.copy(lora_files["r2_alpha16"], folder / "monet.safetensors")
    clock.tick()
    assert engine.styles.count("monet") == 1
    image(engine, style="monet")
    assert engine.on_demand.counts.loads == 0


def test_many_distinct_styles_keep_the_adapter_count_bounded(tiny_sd15_dir, lora_files, folder, clock):
    engine = make_engine(tiny_sd15_dir, lora_files, folder, clock, max_count=2)
    archived = unet_adapter_count(engine)
    for seed in range(6):
        synthesize_tiny_lora(folder / f"s{seed}.safetensors", tiny_sd15_dir / "unet", seed=10 + seed, rank=2)
    clock.tick()
    counts, parameters = [], []
    for seed in range(6):
        image(engine, style=f"s{seed}")
        counts.append(unet_adapter_count(engine) - archived)
        parameters.append(sum(p.numel() for p in engine.pipe.unet.parameters()))
    assert counts == [1, 2, 2, 2, 2, 2]
    assert len(set(parameters[1:])) == 1  # deleted, not disabled: the model's tensors stay flat
    assert list(engine.on_demand.loaded) == ["s4", "s5"]
    assert engine.on_demand.counts.evictions == 4
    assert len(engine.fuser.layers) == len(make_engine(tiny_sd15_dir, lora_files, folder, clock).fuser.layers)


@pytest.mark.parametrize(
    "file_name", ["../x.safetensors", "a b.safetensors", "é.safetensors", "x" * 65 + ".safetensors", ".safetensors"]
)
def test_hostile_names_are_refused(tiny_sd15_dir, lora_files, folder, clock, file_name):
    if "/" in file_name:
        target = folder / "x.safetensors"  # the file lands outside; the folder holds a link to it
        shutil.copy(lora_files["monet"], folder.parent / "x.safetensors")
        target.symlink_to(folder.parent / "x.safetensors")
        reason = "symlink"
    else:
        shutil.copy(lora_files["monet"], folder / file_name)
        reason = "name must match"
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", clock=clock)
    watched.refresh()
    assert dict(watched.usable) == {}
    [(refused, why)] = watched.refused.items()
    assert reason in why


def test_a_symlink_inside_the_folder_is_followed(tiny_sd15_dir, lora_files, folder, clock):
    shutil.copy(lora_files["monet"], folder / "real.safetensors")
    (folder / "alias.safetensors").symlink_to(folder / "real.safetensors")
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", clock=clock)
    watched.refresh()
    assert set(watched.usable) == {"real", "alias"}


def test_mismatched_shapes_are_refused_naming_the_file_and_layer(tiny_sd15_dir, lora_files, folder, clock, tmp_path):
    from imagelab.diffusion.lora import read_lora, save_lora

    weights, alpha = read_lora(lora_files["monet"])
    module, (down, up) = next(iter(sorted(weights.items())))
    save_lora(folder / "wide.safetensors", {module: (down.repeat(1, 2), up)}, alpha=alpha)
    (folder / "junk.safetensors").write_bytes(b"not a safetensors file")
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", clock=clock)
    watched.refresh()
    assert dict(watched.usable) == {}
    assert module in watched.refusal_for("wide") and "wide.safetensors" in watched.refusal_for("wide")
    assert "not a readable safetensors LoRA" in watched.refusal_for("junk")


def test_describe_info_has_rank_alpha_and_sha256(tiny_sd15_dir, lora_files, folder, clock):
    from imagelab.weights_io import sha256_of

    shutil.copy(lora_files["r2_alpha16_kohya"], folder / "k.safetensors")
    shutil.copy(lora_files["r2_alpha16"], folder / "d.safetensors")
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", clock=clock)
    watched.refresh()
    for name in ("k", "d"):
        described = watched.usable[name].describe()
        assert described == {
            "source": "folder",
            "sha256": sha256_of(folder / f"{name}.safetensors"),
            "rank": 2,
            "alpha": 16.0,
        }


def test_the_folder_is_relisted_only_after_poll_s(tiny_sd15_dir, lora_files, folder, clock):
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", poll_s=2.0, clock=clock)
    watched.refresh()
    shutil.copy(lora_files["monet"], folder / "late.safetensors")
    watched.refresh()
    assert "late" not in watched.usable
    clock.tick(2.0)
    watched.refresh()
    assert "late" in watched.usable


def test_the_base_models_name_is_refused_in_any_case(tiny_sd15_dir, lora_files, folder, clock):
    for name in ("none", "None"):
        shutil.copy(lora_files["monet"], folder / f"{name}.safetensors")
    watched = AdapterFolder(folder, tiny_sd15_dir / "unet", clock=clock)
    watched.refresh()
    assert dict(watched.usable) == {}
    assert all("reserved for the base model" in why for why in watched.refused.values())
    assert len(watched.refused) == 2
