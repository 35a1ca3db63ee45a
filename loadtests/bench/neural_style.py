"""neural_style at full size: seconds per Gatys optimisation step (one VGG19 forward and backward)
with a full-width random-weight VGG19, against the step's FLOP bound at this machine's fp32
matmul peak measured in the same process; the process's peak RSS.

    python -m loadtests.bench.neural_style --out neural_style.json [--quick]   (--quick: 256 px)
"""

import time

import numpy as np
import skimage.data
import torch
from PIL import Image
from torchvision.models.vgg import make_layers

from imagelab.neural_style import GatysLoss, NeuralStyleConfig, VGG19Features, transfer
from imagelab.neural_style.images import pil_to_tensor, resize_to_max_side
from imagelab.neural_style.vgg import VGG19_CFG
from loadtests.bench.measure import PeakRss, count_flops, matmul_peak_gflops, section_args, write_results


def full_vgg19_features() -> VGG19Features:
    torch.manual_seed(0)
    return VGG19Features(make_layers(list(VGG19_CFG))).eval().requires_grad_(False)


def step_flops(features: VGG19Features, content: Image.Image, style: Image.Image) -> int:
    """FLOPs of one step as `transfer` runs it: the loss of the image and its gradient."""
    loss_fn = GatysLoss(features, pil_to_tensor(content), pil_to_tensor(style))
    image = pil_to_tensor(content).requires_grad_(True)

    def step():
        terms = loss_fn(image.clamp(0.0, 1.0))
        (terms.content + 10.0 * terms.style + terms.total_variation).backward()

    return count_flops(step)


def main() -> None:
    args = section_args(__doc__.splitlines()[0])
    side_px = 256 if args.quick else 512
    steps = 3 if args.quick else 5
    results = {"side_px": side_px, "quick": args.quick, "steps": steps}
    results["matmul_peak"] = [matmul_peak_gflops(torch.float32, 2048, 1.0 if args.quick else 3.0)]
    features = full_vgg19_features()
    content = Image.fromarray(skimage.data.astronaut())
    style = Image.fromarray(skimage.data.brick()).convert("RGB")
    results["step_flops"] = step_flops(
        features, resize_to_max_side("content", content, side_px), resize_to_max_side("style", style, side_px)
    )

    stamps = []
    config = NeuralStyleConfig(steps=steps, max_side_px=side_px, seed=0)
    with PeakRss() as rss:
        started = time.perf_counter()
        transfer(content, style, config, features, on_step=lambda *_: stamps.append(time.perf_counter()))
        results["transfer_total_s"] = time.perf_counter() - started
    # Between successive steps: excludes the one-off target features and the first step's warm-up.
    gaps = sorted(np.diff(stamps).tolist())
    results["step_s_median"] = gaps[len(gaps) // 2]
    results["step_s_best"] = gaps[0]
    results["first_step_s"] = stamps[0] - started
    results["peak_rss_mib"] = rss.peak_mib
    content_px = resize_to_max_side("content", content, side_px).size
    results["content_size_px"] = list(content_px)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
