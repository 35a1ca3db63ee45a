"""neural_style at full size: seconds per Gatys optimisation step (one VGG19 forward and backward)
with a full-width random-weight VGG19, in fp32 and in the precision the archive serves (bf16
autocast where the CPU has it natively), each against the step's FLOP bound at the same-run
matmul peak of the dtype it runs in; the default step count that gives at 512 px; peak RSS.

    python -m loadtests.bench.neural_style --out neural_style.json [--quick]   (--quick: 256 px)
"""

import time

import numpy as np
import skimage.data
import torch
import yaml
from PIL import Image
from torchvision.models.vgg import make_layers

from archiver.capabilities import CAPABILITIES
from imagelab.neural_style import GatysLoss, NeuralStyleConfig, VGG19Features, transfer
from imagelab.neural_style.images import pil_to_tensor, resize_to_max_side
from imagelab.neural_style.speed import OVERHEAD_STEPS, default_steps
from imagelab.neural_style.vgg import VGG19_CFG, autocast_dtype_for
from loadtests.bench.measure import PeakRss, count_flops, matmul_peak_gflops, section_args, write_results


def full_vgg19_features(autocast_dtype: torch.dtype = None) -> VGG19Features:
    torch.manual_seed(0)
    features = VGG19Features(make_layers(list(VGG19_CFG)), autocast_dtype=autocast_dtype)
    return features.eval().requires_grad_(False)


def step_seconds(features: VGG19Features, content: Image.Image, style: Image.Image, config) -> dict:
    stamps = []
    with PeakRss() as rss:
        started = time.perf_counter()
        transfer(content, style, config, features, on_step=lambda *_: stamps.append(time.perf_counter()))
        total_s = time.perf_counter() - started
    # Between successive steps: excludes the one-off target features and the first step's warm-up.
    gaps = sorted(np.diff(stamps).tolist())
    return {
        "transfer_total_s": total_s,
        "step_s_median": gaps[len(gaps) // 2],
        "step_s_best": gaps[0],
        "first_step_s": stamps[0] - started,
        "peak_rss_mib": rss.peak_mib,
    }


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
    served = autocast_dtype_for("cpu")  # None: fp32
    dtypes = [torch.float32] + ([served] if served is not None else [])
    budget_s = 1.0 if args.quick else 3.0
    results["matmul_peak"] = [matmul_peak_gflops(d, 2048, budget_s) for d in (torch.float32, torch.bfloat16)]
    content = Image.fromarray(skimage.data.astronaut())
    style = Image.fromarray(skimage.data.brick()).convert("RGB")
    results["step_flops"] = step_flops(
        full_vgg19_features(),
        resize_to_max_side("content", content, side_px),
        resize_to_max_side("style", style, side_px),
    )
    config = NeuralStyleConfig(steps=steps, max_side_px=side_px, seed=0)
    results["served_dtype"] = str(served or torch.float32).removeprefix("torch.")
    results["precisions"] = {}
    for dtype in dtypes:
        features = full_vgg19_features(None if dtype == torch.float32 else dtype)
        results["precisions"][str(dtype).removeprefix("torch.")] = step_seconds(features, content, style, config)
        del features
    # What the served worker's rule gives a default 512 px request at the served precision's
    # measured step time (archive budget and ceiling), and the time those steps take.
    handler = yaml.safe_load(CAPABILITIES["neural_style"].config.read_text())["handler"]
    step_s = results["precisions"][results["served_dtype"]]["step_s_median"] * (512 / side_px) ** 2
    chosen = default_steps(step_s, handler["time_budget_s"], handler["default_steps"])
    results["default_512"] = {
        "budget_s": handler["time_budget_s"],
        "ceiling": handler["default_steps"],
        "steps": chosen,
        "predicted_s": (chosen + OVERHEAD_STEPS) * step_s,
        "step_s_at_512": step_s,
    }
    results["content_size_px"] = list(resize_to_max_side("content", content, side_px).size)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
