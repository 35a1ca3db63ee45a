import pytest
import torch
import torchvision
from safetensors.torch import load_file

from imagelab.neural_style import STYLE_LAYERS, VGG19Features, load_vgg19_features, synthesize_tiny_vgg19
from imagelab.neural_style.vgg import CONV_POSITIONS, VGG19_CFG, infer_vgg_widths

TINY_WIDTHS = [8, 8, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, 64, 64, 64, 64]


def test_tiny_vgg19_has_torchvision_key_names_and_narrow_widths(tiny_vgg19_path):
    state_dict = load_file(str(tiny_vgg19_path))
    reference = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"]).state_dict()
    assert set(state_dict) == {f"features.{key}" for key in reference}
    assert infer_vgg_widths(state_dict, VGG19_CFG) == TINY_WIDTHS


def test_tiny_vgg19_synthesis_is_deterministic_per_seed(tmp_path, tiny_vgg19_path):
    again = synthesize_tiny_vgg19(tmp_path / "again.safetensors", seed=0)
    other = synthesize_tiny_vgg19(tmp_path / "other.safetensors", seed=1)
    assert again.read_bytes() == tiny_vgg19_path.read_bytes()
    assert other.read_bytes() != tiny_vgg19_path.read_bytes()


def test_tiny_features_are_frozen_and_stop_at_relu5_1(tiny_features):
    assert isinstance(tiny_features, VGG19Features)
    assert not tiny_features.training
    assert not any(p.requires_grad for p in tiny_features.parameters())
    assert len(tiny_features.layers) == CONV_POSITIONS["conv5_1"] + 2  # up to and with relu5_1


def test_feature_maps_have_gatys_layer_shapes(tiny_features):
    maps = tiny_features(torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0)))
    assert [tuple(f.shape) for f in maps.content] == [(1, 64, 8, 6)]  # conv4_2 after 3 pools
    assert [tuple(f.shape) for f in maps.style] == [
        (1, 8, 64, 48),
        (1, 16, 32, 24),
        (1, 32, 16, 12),
        (1, 64, 8, 6),
        (1, 64, 4, 3),
    ]
    assert len(maps.style) == len(STYLE_LAYERS)
    # Taken after ReLU, as in Gatys' Caffe model.
    assert all(f.min() >= 0 for f in maps.content + maps.style)


def test_avg_and_max_pooling_give_different_deep_features(tiny_features):
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    avg, max_ = tiny_features(image, "avg"), tiny_features(image, "max")
    torch.testing.assert_close(avg.style[0], max_.style[0])  # before the first pool
    assert not torch.allclose(avg.content[0], max_.content[0])
    with pytest.raises(ValueError, match="pooling"):
        tiny_features(image, "min")


def test_torchvision_vgg19_state_dict_loads_from_pth(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.vgg19(weights=None)  # random init, classifier keys included
    path = tmp_path / "vgg19.pth"
    torch.save(model.state_dict(), path)
    features = load_vgg19_features(path)
    torch.testing.assert_close(features.layers[28].weight, model.features[28].weight)  # conv5_1
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = features(image, "max")
    # torchvision's own forward through relu4_2 (index 22) on normalised input gives conv4_2.
    normalised = (image - features.mean) / features.std
    with torch.no_grad():
        torch.testing.assert_close(maps.content[0], model.features[:23](normalised))
    assert maps.style[-1].shape[1] == 512


def test_loading_under_inference_mode_gives_ordinary_tensors(tiny_vgg19_path):
    with torch.inference_mode():
        features = load_vgg19_features(tiny_vgg19_path)
    assert not any(p.is_inference() for p in features.parameters())


def test_batch_norm_state_dict_is_rejected(tmp_path):
    path = tmp_path / "vgg19_bn.pth"
    torch.save(torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"], batch_norm=True).state_dict(), path)
    with pytest.raises(ValueError, match="VGG19"):
        load_vgg19_features(path)


def test_unknown_weight_suffix_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_vgg19_features(tmp_path / "vgg19.bin")
