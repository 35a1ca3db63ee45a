"""The weights room: synthetic companions keyed to the base model they were made for, remade
when a real SD 1.5 folder appears; a real LoRA that does not fit is refused by name; `status`
tells which is which and writes nothing."""

import json
import shutil

import pytest
import torch

import archiver.__main__ as archiver_cli
from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from imagelab.diffusion.lora_fit import lora_misfits
from imagelab.file_hashes import folder_identity, hash_folder
from weightstore.layout import WeightsLayout, recorded_basis
from weightstore.needs import WeightMismatch, resolve_needs
from weightstore.status import status_lines


def widen_unet(sd15) -> None:
    """Replace a tiny SD folder's UNet by one twice as wide: the same layer names, other shapes."""
    from diffusers import UNet2DConditionModel

    config = dict(UNet2DConditionModel.load_config(sd15 / "unet"))
    config["block_out_channels"] = [2 * c for c in config["block_out_channels"]]
    shutil.rmtree(sd15 / "unet")
    torch.manual_seed(0)
    UNet2DConditionModel.from_config(config).save_pretrained(sd15 / "unet", safe_serialization=True)


def tree(root) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def offline_then_real(tmp_path_factory):
    """A weights root after an offline start (tiny base, tiny LoRAs), and the wider "real" base
    folder the user drops in next (not yet in place)."""
    layout = WeightsLayout(tmp_path_factory.mktemp("weights"))
    tiny = resolve_needs("txt2img", layout)
    real = tmp_path_factory.mktemp("download") / "sd15"
    shutil.copytree(tiny.base.path, real)
    widen_unet(real)
    return layout, tiny, real


def test_synthetic_loras_record_the_base_they_were_made_for(offline_then_real):
    layout, tiny, _ = offline_then_real
    assert tiny.base.synthetic and tiny.base.identity == folder_identity(hash_folder(layout.tiny_root / "sd15"))
    for name in ("monet", "van_gogh", "lcm"):
        assert tiny.weights[name].synthetic and tiny.weights[name].basis == tiny.base.identity
        assert recorded_basis(tiny.weights[name].path) == tiny.base.identity
    before = tree(layout.root)
    assert resolve_needs("txt2img", layout).weights == tiny.weights  # reused, not remade
    assert tree(layout.root) == before


def test_a_real_base_remakes_the_synthetic_companions_against_it(offline_then_real, tmp_path):
    layout, tiny, download = offline_then_real
    root = tmp_path / "weights"
    shutil.copytree(layout.root, root, symlinks=True)
    layout = WeightsLayout(root)
    shutil.copytree(download, root / "sd15")
    old_lora = (root / ".tiny" / "lora" / "monet.safetensors").read_bytes()

    before = tree(root)
    lines = "\n".join(status_lines(layout))
    assert tree(root) == before  # status only reports
    assert "base model   sd15" in lines and "real" in lines.splitlines()[0]
    assert "STALE SYNTHETIC" in next(line for line in lines.splitlines() if line.startswith("txt2img      monet"))

    upgraded = resolve_needs("txt2img", layout)
    assert not upgraded.base.synthetic and upgraded.base.identity != tiny.base.identity
    monet = upgraded.weights["monet"]
    assert monet.synthetic and recorded_basis(monet.path) == upgraded.base.identity
    assert monet.path.read_bytes() != old_lora
    assert lora_misfits(monet.path, root / "sd15" / "unet") == []
    assert "STALE" not in "\n".join(status_lines(layout))


def test_a_real_lora_that_does_not_fit_fails_the_build_by_name(offline_then_real, tmp_path, capsys):
    layout, tiny, download = offline_then_real
    root = tmp_path / "weights"
    shutil.copytree(download, root / "sd15")
    (root / "lora").mkdir()
    shutil.copy(tiny.weights["monet"].path, root / "lora" / "monet.safetensors")  # made for the tiny UNet
    layout = WeightsLayout(root)
    expected = (
        r"lora/monet.safetensors does not fit the base model .*sd15.*: layer down_blocks\.\d\.attentions\.0\."
        r"\S+ is \(\d+, \d+\) in the LoRA but \(\d+, \d+\) in the base UNet"
    )
    with pytest.raises(WeightMismatch, match=expected):
        resolve_needs("txt2img", layout)
    store = tmp_path / "store"
    with pytest.raises(WeightMismatch, match=expected):
        build_archive(CAPABILITIES["txt2img"], layout, store)
    assert not list(store.glob("*.mar"))
    with pytest.raises(SystemExit) as exit_:
        archiver_cli.main(["--weights", str(root), "build", "--models", "txt2img", "--store", str(store)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: " in err and "monet.safetensors does not fit" in err and "Traceback" not in err
    assert "REAL, DOES NOT FIT" in "\n".join(status_lines(layout))


def test_a_shared_base_is_referenced_and_hashed_file_by_file(offline_then_real, tmp_path):
    _, _, download = offline_then_real
    root = tmp_path / "weights"
    shutil.copytree(download, root / "sd15")
    plan = CAPABILITIES["animals"].build_plan(WeightsLayout(root))
    record = plan.base_model
    assert record["embedded"] is False and record["path"] == str((root / "sd15").resolve())
    assert plan.settings.base_model == record["path"]
    assert not any(w.archive_path.startswith("sd15") for w in plan.weights)  # not copied in
    listed = {f["path"]: f["sha256"] for f in record["files"]}
    assert set(listed) >= {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}
    assert json.dumps(record)  # the manifest is JSON
