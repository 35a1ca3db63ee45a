"""Live previews (imagelab/diffusion/preview.py) at full size: the worker-start fit of the latent
-> RGB projection against a full-size random-weight SD 1.5 VAE, the cost of one preview of a 512 px
job (one and four images), and the cheapest TAESD alternative it was chosen over (TAESD decoding
16x16 latents, a 128 px image), all in the dtype the archive serves on this machine.

    python -m loadtests.bench.preview --out preview.json [--quick]   (--quick: fewer runs)

Not yet a section of `make bench` (loadtests/bench/run.py); `render` gives its BENCHMARKS.md lines.
"""

import torch

from imagelab.devices import resolve_dtype
from imagelab.diffusion.decoders import Decoders
from imagelab.diffusion.preview import fit_to_vae, render_preview
from loadtests.bench.measure import section_args, time_calls, write_results
from loadtests.bench.sd15 import VAE_SCALE, sd15_vae

JOB_LATENT_PX = 64  # a 512 px image


def main() -> None:
    args = section_args(__doc__.splitlines()[0])
    dtype = resolve_dtype("auto", "cpu")
    torch.manual_seed(0)
    decoders = Decoders(sd15_vae().to(dtype), VAE_SCALE)
    fits = []

    def fit():
        fits.append(fit_to_vae(decoders))

    fit_timing = time_calls(fit, runs=1 if args.quick else 3, warmup=0)
    projection = fits[-1]
    results = {"dtype": str(dtype).removeprefix("torch."), "fit": fit_timing, "fit_rms_error": projection.rms_error}
    for images in (1, 4):
        latents = torch.randn(images, 4, JOB_LATENT_PX, JOB_LATENT_PX).to(dtype)
        results[f"preview_{images}_images"] = time_calls(
            lambda latents=latents: render_preview(projection, latents, JOB_LATENT_PX * VAE_SCALE),
            runs=20 if args.quick else 200,
        )
        results[f"preview_{images}_images_bytes"] = len(
            render_preview(projection, latents, JOB_LATENT_PX * VAE_SCALE).image
        )
    small = torch.randn(1, 4, 16, 16).to(dtype)
    with torch.inference_mode():
        results["taesd_128px"] = time_calls(lambda: decoders.decode(small, "fast"), runs=1 if args.quick else 3)
    write_results(args.out, results)


def render(r: dict) -> list:
    """BENCHMARKS.md lines for the results of `main`."""
    return [
        "### Live previews",
        "",
        f"Full-size SD 1.5 VAE (random weights), {r['dtype']}. The projection's fit at worker start "
        f"(two 128 px decodes and a least-squares solve): {r['fit']['median_s']:.1f} s median "
        f"(rms error {r['fit_rms_error']:.3f} in [-1, 1] units on random weights).",
        "",
        "| per preview of a 512 px job | median | best | base64 bytes |",
        "|---|---|---|---|",
        *(
            f"| {n} image{'s' if n > 1 else ''}: projection, tile, resize to 128 px, JPEG "
            f"| {r[f'preview_{n}_images']['median_s'] * 1e3:.2f} ms | {r[f'preview_{n}_images']['best_s'] * 1e3:.2f} ms "
            f"| {r[f'preview_{n}_images_bytes']} |"
            for n in (1, 4)
        ),
        f"| the alternative: TAESD decoding 16x16 latents (128 px) | {r['taesd_128px']['median_s']:.2f} s "
        f"| {r['taesd_128px']['best_s']:.2f} s | |",
        "",
    ]


if __name__ == "__main__":
    main()
