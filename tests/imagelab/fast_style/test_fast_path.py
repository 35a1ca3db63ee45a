"""The fast TransformerNet path (issue 16.2): bf16 within a PSNR bound of fp32 (NCHW and
channels_last), batch invariance kept in NCHW, instance norm through the group-norm kernel."""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch.nn import functional as F

from imagelab.fast_style.fidelity import psnr_db
from imagelab.fast_style.stylize import batch_to_images, images_to_batch, inference_path, stylize
from imagelab.fast_style.transformer_net import InstanceNorm
from imagelab.fast_style.weights import load_transformer_net, synthesize_transformer_net

# Issue 16 asks >= 35 dB; random-weight networks measure ~49.5 dB at 64 px, so 40 dB still
# catches a bf16 path that loses the picture (a norm or the last conv in bf16 without care).
BF16_MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def candy_path(tmp_path_factory):
    return synthesize_transformer_net(tmp_path_factory.mktemp("fast") / "candy.safetensors", "candy")


@pytest.fixture(scope="module")
def chelsea_64() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea()).resize((64, 64))


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_keeps_the_picture_of_fp32(candy_path, chelsea_64, channels_last):
    reference_net = load_transformer_net(candy_path)
    fast_net = load_transformer_net(candy_path, dtype=torch.bfloat16, channels_last=channels_last)
    assert inference_path(reference_net) == "float32 nchw on cpu"
    assert inference_path(fast_net) == f"bfloat16 {'channels_last' if channels_last else 'nchw'} on cpu"
    (reference,) = batch_to_images(stylize(reference_net, images_to_batch([chelsea_64])))
    (fast,) = batch_to_images(stylize(fast_net, images_to_batch([chelsea_64])))
    psnr = psnr_db(fast, reference)
    assert BF16_MIN_PSNR_DB <= psnr < float("inf"), f"bf16 against fp32: {psnr:.1f} dB"


def test_bf16_nchw_batched_equals_one_by_one(candy_path):
    """The served default (batch_invariant): an image's pixels do not depend on its batch."""
    model = load_transformer_net(candy_path, dtype=torch.bfloat16)
    batch = torch.rand((6, 3, 64, 48), generator=torch.Generator().manual_seed(3)) * 255
    together = batch_to_images(stylize(model, batch))
    alone = [batch_to_images(stylize(model, batch[i : i + 1]))[0] for i in range(len(batch))]
    assert [im.tobytes() for im in together] == [im.tobytes() for im in alone]


def test_stylize_returns_fp32_in_the_input_layout_for_a_bf16_network(candy_path):
    out = stylize(load_transformer_net(candy_path, dtype=torch.bfloat16), torch.rand(2, 3, 30, 22) * 255)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 30, 22)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("channels_last", [False, True])
def test_instance_norm_is_torchs_instance_norm(channels_last):
    torch.manual_seed(0)
    norm = InstanceNorm(16, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 16, 12, 10) * 7 + 3
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    expected = F.instance_norm(x.contiguous(), weight=norm.weight, bias=norm.bias, eps=norm.eps)
    out = norm(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last  # no layout round trip


def test_psnr_is_infinite_for_equal_images_and_finite_otherwise():
    a = Image.fromarray(np.full((4, 4, 3), 100, np.uint8))
    b = Image.fromarray(np.full((4, 4, 3), 101, np.uint8))
    assert psnr_db(a, a) == float("inf")
    assert psnr_db(b, a) == pytest.approx(20 * np.log10(255.0))
