"""The fast style paths on the full-size networks at 64 px (issue 16.2): TransformerNet in bf16
keeps the look of pytorch/examples-format checkpoints (PSNR against fp32), and Gatys over the
full VGG19 under bf16 autocast reaches the fp32 loss. Tolerances, not timings."""

import pytest
import skimage.data
import torch
from PIL import Image

from imagelab.fast_style.fidelity import psnr_db
from imagelab.fast_style.stylize import batch_to_images, images_to_batch, stylize
from imagelab.fast_style.weights import load_transformer_net
from imagelab.neural_style import GatysLoss, NeuralStyleConfig, load_vgg19_features, transfer
from imagelab.neural_style.gatys import weighted_loss
from imagelab.neural_style.images import pil_to_tensor, resize_to_max_side

pytestmark = pytest.mark.fullsize

SIDE_PX = 64
# Issue 16's bound is 35 dB; these random-weight checkpoints measure ~49 dB.
BF16_MIN_PSNR_DB = 40.0
# The bf16 run lags in its first steps (step 6: loss 3.6 against fp32's 1.1) and then meets
# fp32: after 40 steps 0.299 against 0.297, after 80 0.290 against 0.288 (loaded 2-core Xeon).
BF16_LOSS_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea()).resize((SIDE_PX, SIDE_PX))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("style", ["candy", "mosaic"])
def test_bf16_transformer_net_keeps_the_look_of_an_examples_checkpoint(full_size, chelsea, style, channels_last):
    path = full_size.fast_style(style)
    (reference,) = batch_to_images(stylize(load_transformer_net(path), images_to_batch([chelsea])))
    fast_net = load_transformer_net(path, dtype=torch.bfloat16, channels_last=channels_last)
    (fast,) = batch_to_images(stylize(fast_net, images_to_batch([chelsea])))
    psnr = psnr_db(fast, reference)
    assert BF16_MIN_PSNR_DB <= psnr < float("inf"), f"{style}: bf16 against fp32 {psnr:.1f} dB"


def test_gatys_on_the_full_vgg19_in_bf16_autocast_reaches_the_fp32_loss(full_size, chelsea):
    brick = Image.fromarray(skimage.data.brick()).convert("RGB")
    config = NeuralStyleConfig(steps=40, max_side_px=SIDE_PX)
    fp32 = load_vgg19_features(full_size.vgg19)
    bf16 = load_vgg19_features(full_size.vgg19, autocast_dtype=torch.bfloat16)
    loss_fn = GatysLoss(
        fp32, pil_to_tensor(chelsea), pil_to_tensor(resize_to_max_side("style_image", brick, SIDE_PX)), config.pooling
    )

    def fp32_loss(image: Image.Image) -> float:
        with torch.no_grad():
            return weighted_loss(loss_fn(pil_to_tensor(image)), config).item()

    reference = transfer(chelsea, brick, config, fp32)
    fast = transfer(chelsea, brick, config, bf16)
    assert (fast.steps_done, fast.truncated) == (40, False)
    reference_loss, fast_loss = fp32_loss(reference.image), fp32_loss(fast.image)
    assert fast_loss < fast.loss_history[0]
    assert abs(fast_loss - reference_loss) <= BF16_LOSS_TOLERANCE * reference_loss, (fast_loss, reference_loss)
