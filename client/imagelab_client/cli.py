"""The `imagelab` command: one subcommand per model, plus `models` for management,
`compare-steps` (one labelled grid of several step counts or animals) and `adjust` (the server's
colour adjustment on a local file, no server needed).

Connection flags (before or after the subcommand): --url, --management-url, --key-file,
--transport rest|grpc|v2, --timeout-s. Defaults come from IMAGELAB_URL,
IMAGELAB_MANAGEMENT_URL, IMAGELAB_TRANSPORT and IMAGELAB_KEY_FILE (keys also from
IMAGELAB_INFERENCE_KEY / IMAGELAB_MANAGEMENT_KEY).
"""

import argparse
import json
import os
import sys
from typing import Optional

from imagelab_client import compare
from imagelab_client.adjust import Adjustment, adjust
from imagelab_client.cancel import new_job_id
from imagelab_client.client import ImageLabClient
from imagelab_client.errors import ImageLabError
from imagelab_client.images import decode_image
from imagelab_client.progress import PreviewFile, ProgressBar, each

FORMATS = ("png", "jpeg", "webp")


def _connection_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """On the main parser with defaults; again on each subcommand with SUPPRESS, so a flag
    given after the subcommand overrides and one not given keeps the main default."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=default(os.environ.get("IMAGELAB_URL")),
        help="inference address (rest/v2: http://127.0.0.1:8080; grpc: 127.0.0.1:7070)",
    )
    group.add_argument(
        "--management-url",
        default=default(os.environ.get("IMAGELAB_MANAGEMENT_URL")),
        help="management address (rest/v2: http://127.0.0.1:8081; grpc: 127.0.0.1:7071)",
    )
    group.add_argument(
        "--key-file",
        default=default(os.environ.get("IMAGELAB_KEY_FILE")),
        help="TorchServe's key_file.json (token authorization)",
    )
    group.add_argument(
        "--transport", choices=("rest", "grpc", "v2"), default=default(os.environ.get("IMAGELAB_TRANSPORT", "rest"))
    )
    group.add_argument("--timeout-s", type=float, default=default(600.0), help="read timeout per call")


def _output_flags(parser: argparse.ArgumentParser, default_name: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        help=f"file to write (default: {default_name}.<format>); several images become NAME-1.ext, NAME-2.ext, ...",
    )
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--quality", type=int, help="jpeg/webp quality 1-100")
    parser.add_argument("--version", help="model version (default: the server's default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagelab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _connection_flags(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help, description=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        _connection_flags(sub, suppress=True)
        return sub

    stylize = command(
        "stylize",
        "fast style transfer of one image (model fast_style)",
        """examples:
  imagelab stylize photo.jpg --style mosaic -o mosaic.png
  imagelab stylize photo.jpg --style udnie --max-side-px 512 --format jpeg --quality 85
  imagelab --transport grpc --url 127.0.0.1:7070 stylize photo.jpg --style candy""",
    )
    stylize.add_argument("image", help="JPEG, PNG or WEBP file")
    stylize.add_argument(
        "--style", help="candy, mosaic, udnie, rain_princess, ... (see `imagelab models describe fast_style`)"
    )
    stylize.add_argument("--max-side-px", type=int)
    _output_flags(stylize, "stylized")

    transfer = command(
        "transfer",
        "optimisation style transfer, content + style image (model neural_style)",
        """examples:
  imagelab transfer photo.jpg starry_night.jpg --steps 200 --max-side-px 512 -o starry.png
  imagelab transfer photo.jpg texture.png --steps 50 --seed 7 --init noise --preserve-color""",
    )
    transfer.add_argument("content", help="the photo to repaint")
    transfer.add_argument("style_image", help="the painting or texture whose style to take")
    transfer.add_argument("--steps", type=int)
    transfer.add_argument("--max-side-px", type=int)
    transfer.add_argument("--content-weight", type=float)
    transfer.add_argument("--style-weight", type=float)
    transfer.add_argument("--tv-weight", type=float)
    transfer.add_argument("--init", help="content or noise")
    transfer.add_argument("--seed", type=int)
    transfer.add_argument("--preserve-color", action="store_true", default=None)
    transfer.add_argument("--optimizer", help="lbfgs or adam")
    transfer.add_argument("--time-budget-s", type=float)
    _output_flags(transfer, "transfer")

    generate = command(
        "generate",
        "text to image with a style LoRA (model txt2img)",
        """examples:
  imagelab generate "a lighthouse at dusk" --style van_gogh --seed 42 -o lighthouse.png
  imagelab generate "a fox in snow" --num-images 4 --steps 25 --guidance 7.5 -o fox.png""",
    )
    generate.add_argument("prompt")
    generate.add_argument("--negative-prompt")
    generate.add_argument("--style", help="none, monet, van_gogh, ...")
    generate.add_argument("--style-scale", type=float)
    generate.add_argument("--steps", type=int)
    generate.add_argument("--guidance", type=float)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--width", type=int)
    generate.add_argument("--height", type=int)
    generate.add_argument("--num-images", type=int)
    generate.add_argument("--scheduler")
    generate.add_argument(
        "--preview",
        action="store_true",
        help="live previews: save the latest preview of the image being denoised to OUTPUT.preview.jpg "
        "(e.g. generated.preview.jpg), overwritten every few steps; needs a streaming transport (rest, grpc)",
    )
    _output_flags(generate, "generated")

    animal = command(
        "animal",
        "an animal of the animals LoRA's classes (model animals)",
        """examples:
  imagelab animal lion --seed 1 -o lion.png
  imagelab animal "snow leopard" --prompt-extra "on a rock" --contrast 1.1 --saturation 1.2
  imagelab animal tiger --version 2.0 --scheduler lcm --steps 4 --guidance 1""",
    )
    animal.add_argument("name", help="a class name: lion, tiger, elephant, cat, dog, ...")
    animal.add_argument("--prompt-extra")
    animal.add_argument("--steps", type=int)
    animal.add_argument("--guidance", type=float)
    animal.add_argument("--seed", type=int)
    animal.add_argument("--contrast", type=float)
    animal.add_argument("--saturation", type=float)
    animal.add_argument("--brightness", type=float)
    animal.add_argument("--width", type=int)
    animal.add_argument("--height", type=int)
    animal.add_argument("--scheduler", help="ddim, dpmpp, euler_a or lcm (the few-step fast mode)")
    animal.add_argument(
        "--preview",
        action="store_true",
        help="live previews: save the latest preview of the image being denoised to OUTPUT.preview.jpg "
        "(e.g. animal.preview.jpg), overwritten every few steps; needs a streaming transport (rest, grpc)",
    )
    _output_flags(animal, "animal")

    steps = command(
        "compare-steps",
        "one labelled grid of the same seed at several step counts and/or animals (model animals)",
        """examples:
  imagelab compare-steps --animal tiger --steps 4,8,16 --seed 7 -o grid.png
  imagelab compare-steps --animal tiger,lion,cat --steps 20 --seed 7 -o animals.png""",
    )
    steps.add_argument("--animal", required=True, help="a class name, or several separated by commas (rows)")
    steps.add_argument("--steps", required=True, help="step counts separated by commas (columns), e.g. 4,8,16")
    steps.add_argument("--seed", type=int, required=True, help="the seed every cell shares")
    steps.add_argument("--guidance", type=float)
    steps.add_argument("--scheduler")
    steps.add_argument("--width", type=int)
    steps.add_argument("--height", type=int)
    steps.add_argument("-o", "--output", default="compare-steps.png", help="the grid file (default: compare-steps.png)")
    steps.add_argument("--version", help="model version (default: the server's default)")
    steps.add_argument("--quiet", action="store_true", help="no progress bar")

    adjusting = command(
        "adjust",
        "brightness, contrast and saturation of a local image, exactly as the server applies them",
        """examples:
  imagelab adjust in.png --contrast 1.2 --saturation 0.8 --brightness 1.1 -o out.png""",
    )
    adjusting.add_argument("image", help="JPEG, PNG or WEBP file")
    for name in ("brightness", "contrast", "saturation"):
        adjusting.add_argument(f"--{name}", type=float, default=1.0, help="factor in [0, 3]; 1 leaves it as it is")
    adjusting.add_argument("-o", "--output", required=True, help="file to write; the format follows its extension")

    models = command(
        "models",
        "list, describe, set the default version, scale workers",
        """examples:
  imagelab models                                  # every model, its versions and default
  imagelab models describe fast_style              # styles, field ranges and defaults (JSON)
  imagelab models set-default fast_style 1.1
  imagelab models scale neural_style --min-worker 2 --max-worker 2""",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="models with versions (the default)")
    describe = actions.add_parser("describe", help="the handler's metadata as JSON")
    describe.add_argument("model")
    describe.add_argument("--version")
    default = actions.add_parser("set-default", help="route unversioned requests to a version")
    default.add_argument("model")
    default.add_argument("version")
    scale = actions.add_parser("scale", help="set the number of workers")
    scale.add_argument("model")
    scale.add_argument("--min-worker", type=int, required=True)
    scale.add_argument("--max-worker", type=int)
    scale.add_argument("--version")
    return parser


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "adjust":
        return _adjust(args)
    try:
        client = ImageLabClient(
            args.url,
            transport=args.transport,
            management_url=args.management_url,
            key_file=args.key_file,
            read_timeout_s=args.timeout_s,
        )
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        print(f"imagelab: {error}", file=sys.stderr)
        return 2
    try:
        with client:
            if args.command == "models":
                return _models(client, args)
            if args.command == "compare-steps":
                return _compare_steps(client, args)
            return _infer(client, args)
    except ImageLabError as error:
        where = f" (field '{error.field}')" if error.field else ""
        print(f"imagelab: {type(error).__name__}{where}: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # an input file that cannot be read, an output that cannot be written
        print(f"imagelab: {error}", file=sys.stderr)
        return 2


def _infer(client: ImageLabClient, args) -> int:
    bar = None if args.quiet else ProgressBar(f"{args.command} ")
    default_name = {"stylize": "stylized", "transfer": "transfer", "generate": "generated"}.get(args.command, "animal")
    previews = PreviewFile.beside(args.output or default_name) if getattr(args, "preview", False) else None
    on_progress = each(bar, previews)
    common = {"format": args.format, "quality": args.quality, "version": args.version}
    # Our own job id (the long-running models take one), so Ctrl-C can cancel the job even
    # before its first progress event; fast_style runs too briefly to need one.
    job_id = None if args.command == "stylize" else new_job_id()
    extra = {"job_id": job_id, **({"preview": True} if previews else {})}
    try:
        if args.command == "stylize":
            result = client.stylize(args.image, args.style, max_side_px=args.max_side_px, **common)
        elif args.command == "transfer":
            result = client.neural_style(
                args.content,
                args.style_image,
                steps=args.steps,
                max_side_px=args.max_side_px,
                content_weight=args.content_weight,
                style_weight=args.style_weight,
                tv_weight=args.tv_weight,
                init=args.init,
                seed=args.seed,
                preserve_color=args.preserve_color,
                optimizer=args.optimizer,
                time_budget_s=args.time_budget_s,
                extra=extra,
                on_progress=on_progress,
                **common,
            )
        elif args.command == "generate":
            result = client.generate(
                args.prompt,
                negative_prompt=args.negative_prompt,
                style=args.style,
                style_scale=args.style_scale,
                steps=args.steps,
                guidance=args.guidance,
                seed=args.seed,
                width=args.width,
                height=args.height,
                num_images=args.num_images,
                scheduler=args.scheduler,
                extra=extra,
                on_progress=on_progress,
                **common,
            )
        else:
            result = client.animal(
                args.name,
                prompt_extra=args.prompt_extra,
                steps=args.steps,
                guidance=args.guidance,
                seed=args.seed,
                contrast=args.contrast,
                saturation=args.saturation,
                brightness=args.brightness,
                width=args.width,
                height=args.height,
                scheduler=args.scheduler,
                extra=extra,
                on_progress=on_progress,
                **common,
            )
    except KeyboardInterrupt:
        if bar is not None:
            bar.finish()
        return _cancel_on_interrupt(client, job_id)
    finally:
        if bar is not None:
            bar.finish()
    output = args.output or f"{default_name}.{'jpg' if result.format == 'jpeg' else result.format}"
    seeds = result.seeds or [None] * len(result.images)
    for path, image, seed in zip(result.save(output), result.images, seeds):
        seed_note = f", seed {seed}" if seed is not None else ""
        version_note = f", version {result.model_version}" if result.model_version else ""
        print(f"wrote {path} ({image.width}x{image.height} {result.format}{seed_note}{version_note})")
    if previews is not None and previews.path:
        print(f"wrote {previews.path} (the last of {previews.written} previews)")
    elif previews is not None:
        print(f"imagelab: no previews came back (transport {args.transport} does not stream)", file=sys.stderr)
    return 0


def _cancel_on_interrupt(client: ImageLabClient, job_id: Optional[str]) -> int:
    """Ctrl-C: ask the server to stop the job (it does at its next step and takes the next
    request), say so on one line, exit 130 as a shell does for SIGINT."""
    if job_id is None:
        print("imagelab: interrupted", file=sys.stderr)
        return 130
    try:
        client.cancel(job_id)
        print(f"imagelab: interrupted; cancelled job {job_id} (the server stops it at its next step)", file=sys.stderr)
    except ImageLabError as error:
        print(f"imagelab: interrupted; could not cancel job {job_id}: {error}", file=sys.stderr)
    return 130


def _adjust(args) -> int:
    try:
        adjustment = Adjustment(brightness=args.brightness, contrast=args.contrast, saturation=args.saturation)
    except ValueError as error:
        print(f"imagelab: {error}", file=sys.stderr)
        return 2
    try:
        with open(args.image, "rb") as file:
            image = decode_image(file.read())
        result = adjust(image, adjustment)
        if result.mode == "RGBA" and not args.output.lower().endswith((".png", ".webp")):
            result = result.convert("RGB")
        result.save(args.output)
    except (OSError, ValueError) as error:
        print(f"imagelab: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({result.width}x{result.height})")
    return 0


def _compare_steps(client: ImageLabClient, args) -> int:
    try:
        animals = compare.parse_list(args.animal)
        step_counts = compare.parse_list(args.steps, int)
    except ValueError:
        print(f"imagelab: --steps must be whole numbers separated by commas, got {args.steps!r}", file=sys.stderr)
        return 2
    total = len(animals) * len(step_counts)
    done = []

    def render(animal: str, steps: int):
        bar = None if args.quiet else ProgressBar(f"{animal} {steps} steps ({len(done) + 1}/{total}) ")
        try:
            result = client.animal(
                animal,
                steps=steps,
                seed=args.seed,
                guidance=args.guidance,
                width=args.width,
                height=args.height,
                version=args.version,
                scheduler=args.scheduler,
                on_progress=bar,
            )
        finally:
            if bar is not None:
                bar.finish()
        done.append(result)
        return result.image

    grid = compare.compare(render, animals, step_counts, args.seed)
    grid.image.save(args.output)
    print(f"wrote {args.output} ({grid.image.width}x{grid.image.height} png, {total} cells, seed {args.seed})")
    return 0


def _models(client: ImageLabClient, args) -> int:
    action = args.action or "list"
    if action == "list":
        for model in client.models():
            print(f"{model.name}\tversions: {', '.join(model.versions)}\tdefault: {model.default_version}")
    elif action == "describe":
        description = client.describe(args.model, args.version)
        print(
            json.dumps(
                {
                    "model": description.name,
                    "version": description.version,
                    "workers": [w.get("status") for w in description.workers],
                    **description.customized,
                },
                indent=2,
            )
        )
    elif action == "set-default":
        print(client.set_default(args.model, args.version))
    else:
        print(client.scale_workers(args.model, args.min_worker, args.max_worker, version=args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
