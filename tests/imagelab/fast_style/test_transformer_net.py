import torch

from imagelab.fast_style.stylize import batch_to_images, images_to_batch, stylize
from imagelab.fast_style.transformer_net import TransformerNet
from imagelab.fast_style.weights import clean_state_dict, load_transformer_net, synthesize_transformer_net

# pytorch/examples parameter names users' checkpoints carry (a sample of each layer kind).
EXAMPLES_KEYS = {
    "conv1.conv2d.weight",
    "in1.weight",
    "in1.bias",
    "conv3.conv2d.bias",
    "res1.conv1.conv2d.weight",
    "res5.in2.bias",
    "deconv1.conv2d.weight",
    "in5.weight",
    "deconv3.conv2d.weight",
    "deconv3.conv2d.bias",
}


def test_parameter_names_match_pytorch_examples():
    names = set(TransformerNet().state_dict())
    assert EXAMPLES_KEYS <= names
    assert len(names) == 62  # 6 convs and 5 norms (weight+bias each) + 5 blocks of 8


def test_shapes_follow_johnson_et_al():
    state = TransformerNet().state_dict()
    assert state["conv1.conv2d.weight"].shape == (32, 3, 9, 9)
    assert state["conv3.conv2d.weight"].shape == (128, 64, 3, 3)
    assert state["deconv3.conv2d.weight"].shape == (3, 32, 9, 9)


def test_golden_output_of_synthetic_candy(tmp_path):
    model = load_transformer_net(synthesize_transformer_net(tmp_path / "candy.safetensors", "candy"))
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand((1, 3, 32, 32), generator=generator) * 255
    out = stylize(model, batch)
    assert out.shape == (1, 3, 32, 32)
    expected = torch.tensor(
        [[234.9125, 222.1968, 211.2563], [249.1600, 237.0526, 230.7005], [224.6879, 244.5171, 240.2396]]
    )
    torch.testing.assert_close(out[0, 0, :3, :3], expected, atol=0.05, rtol=0)


def test_synthesis_is_deterministic(tmp_path):
    a = synthesize_transformer_net(tmp_path / "a.safetensors", "mosaic").read_bytes()
    b = synthesize_transformer_net(tmp_path / "b.safetensors", "mosaic").read_bytes()
    c = synthesize_transformer_net(tmp_path / "c.safetensors", "udnie").read_bytes()
    assert a == b and a != c


def test_loads_examples_checkpoint_with_stale_running_stats(tmp_path):
    """Checkpoints from PyTorch < 0.4 carry InstanceNorm running stats; they must be dropped."""
    reference = TransformerNet()
    state = reference.state_dict()
    state["in1.running_mean"] = torch.zeros(32)
    state["in1.running_var"] = torch.ones(32)
    state["res2.in1.running_mean"] = torch.zeros(128)
    path = tmp_path / "candy.pth"
    torch.save(state, path)
    model = load_transformer_net(path)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert "in1.running_mean" not in clean_state_dict(state)


def test_rejects_a_foreign_state_dict(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"weight": torch.zeros(1)}, path)
    try:
        load_transformer_net(path)
    except ValueError as error:
        assert "pytorch/examples layout" in str(error)
    else:
        raise AssertionError("a foreign state dict loaded")


def test_odd_sizes_are_padded_and_cropped_back(tmp_path):
    model = load_transformer_net(synthesize_transformer_net(tmp_path / "m.safetensors", "mosaic"))
    for height, width in ((31, 45), (1, 1), (3, 7), (64, 64)):
        out = stylize(model, torch.rand(1, 3, height, width) * 255)
        assert out.shape == (1, 3, height, width)


def test_batched_equals_one_by_one(tmp_path):
    model = load_transformer_net(synthesize_transformer_net(tmp_path / "m.safetensors", "udnie"))
    batch = torch.rand((3, 3, 20, 24), generator=torch.Generator().manual_seed(1)) * 255
    together = batch_to_images(stylize(model, batch))
    alone = [batch_to_images(stylize(model, batch[i : i + 1]))[0] for i in range(3)]
    assert [im.tobytes() for im in together] == [im.tobytes() for im in alone]


def test_pixel_round_trip():
    batch = torch.randint(0, 256, (2, 3, 5, 6)).float()
    assert torch.equal(images_to_batch(batch_to_images(batch)), batch)
