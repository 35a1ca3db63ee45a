"""python -m training.evaluate: CLIP score of a deployed model version, with and without its LoRA.

    python -m training.evaluate --model txt2img --version 2.0 --styles none,starry --out reports/starry
    python -m training.evaluate --model animals --version 2.0 --animals lion,tiger,cat

Requests go over HTTP to /predictions/{model}/{version} with the inference token from the
server's key_file.json (TorchServe renews it hourly, so it is read at start). txt2img is scored
per style (`none` is the base model without any LoRA); animals per class, with its prompt the
server's own wording. Scores use the CLIP folder in weights/clip/ (or its tiny twin) and are
written as <out>.csv (one row per image) and <out>.md (mean and spread per version and style).
"""

import argparse
import csv
import io
import json
import statistics
from pathlib import Path
from typing import NamedTuple

import requests
from PIL import Image

from training.clip_score import ClipScorer, resolve_clip_dir
from training.lora.data import class_prompts
from training.publish import DEFAULT_WORKDIR
from training.runs import weights_layout

DEFAULT_PROMPTS = (
    "a lighthouse on a cliff at sunset",
    "a bowl of fruit on a wooden table",
    "a city street in the rain",
    "a portrait of an old fisherman",
    "a field of flowers under a blue sky",
)


class Score(NamedTuple):
    version: str
    style: str
    prompt: str
    seed: int
    clip_score: float


def inference_target(workdir: Path, url: str | None, key_file: Path | None) -> tuple[str, dict]:
    """(inference URL, auth headers) from the server's workdir, or from --url/--key-file."""
    key_path = key_file or Path(workdir) / "key_file.json"
    headers = {}
    if key_path.is_file():
        headers["Authorization"] = f"Bearer {json.loads(key_path.read_text())['inference']['key']}"
    if url:
        return url.rstrip("/"), headers
    config = Path(workdir) / "config.properties"
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: give --url or the running server's --workdir")
    values = dict(
        line.split("=", 1) for line in config.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    return values["inference_address"].strip().replace("0.0.0.0", "127.0.0.1"), headers


def request_image(url: str, headers: dict, model: str, version: str, fields: dict, timeout_s: float) -> Image.Image:
    answer = requests.post(f"{url}/predictions/{model}/{version}", json=fields, headers=headers, timeout=timeout_s)
    if answer.status_code != 200:
        raise RuntimeError(f"{model} {version} answered {answer.status_code}: {answer.text[:300]}")
    image = Image.open(io.BytesIO(answer.content))
    image.load()
    return image.convert("RGB")


def evaluate(
    url: str,
    headers: dict,
    model: str,
    versions: list[str],
    styles: list[str],
    prompts: list[str],
    scorer: ClipScorer,
    seeds: list[int],
    generation: dict,
    timeout_s: float = 600,
) -> list[Score]:
    """One image per (version, style, prompt, seed); txt2img styles, or animals classes as
    `styles` (their prompt is then the server's "a photo of a <animal>" wording)."""
    scores = []
    for version in versions:
        for style in styles:
            for prompt in prompts:
                for seed in seeds:
                    if model == "animals":
                        fields = {"animal": style, "seed": seed, **generation}
                        scored_prompt = class_prompts(style)[0]
                    else:
                        fields = {"prompt": prompt, "style": style, "seed": seed, **generation}
                        scored_prompt = prompt
                    image = request_image(url, headers, model, version, fields, timeout_s)
                    value = scorer.score([image], [scored_prompt])[0]
                    scores.append(Score(version, style, scored_prompt, seed, value))
    return scores


def write_reports(scores: list[Score], out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out.with_suffix(".csv"), out.with_suffix(".md")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(Score._fields)
        writer.writerows(scores)
    groups: dict = {}
    for s in scores:
        groups.setdefault((s.version, s.style), []).append(s.clip_score)
    lines = ["| version | style | images | CLIP score (mean) | std |", "|---|---|---:|---:|---:|"]
    for (version, style), values in groups.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {version} | {style} | {len(values)} | {statistics.fmean(values):.2f} | {spread:.2f} |")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, md_path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("txt2img", "animals"), default="txt2img")
    p.add_argument("--version", dest="versions", required=True, help="comma-separated versions, e.g. 1.0,2.0")
    p.add_argument("--styles", default="none", help="txt2img: comma-separated styles ('none' = no LoRA)")
    p.add_argument("--animals", default="lion,tiger,cat", help="animals: comma-separated classes")
    p.add_argument("--prompts", type=Path, help="a text file, one prompt per line (default: a built-in set)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; one image per seed and prompt")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--size", type=int, default=512, help="width and height in px")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the server's working dir")
    p.add_argument("--url", help="inference API URL (default: from the workdir's config.properties)")
    p.add_argument("--key-file", type=Path, help="key_file.json (default: the workdir's)")
    p.add_argument("--weights", type=Path, help="weights root for the CLIP model (default: weights/)")
    p.add_argument("--out", type=Path, default=Path("reports") / "clip_score")
    args = p.parse_args(argv)
    prompts = (
        [line.strip() for line in args.prompts.read_text().splitlines() if line.strip()]
        if args.prompts
        else list(DEFAULT_PROMPTS)
    )
    styles = (args.animals if args.model == "animals" else args.styles).split(",")
    if args.model == "animals":
        prompts = prompts[:1]  # the class decides the prompt; one pass per class and seed
    clip = resolve_clip_dir(weights_layout(args.weights))
    if clip.synthetic:
        print(f"note: scoring with the TINY SYNTHETIC CLIP in {clip.path}; put a real one in weights/clip/")
    try:
        url, headers = inference_target(args.workdir, args.url, args.key_file)
        scores = evaluate(
            url,
            headers,
            args.model,
            args.versions.split(","),
            styles,
            prompts,
            ClipScorer(clip.path),
            [int(s) for s in args.seeds.split(",")],
            {"steps": args.steps, "width": args.size, "height": args.size, "guidance": args.guidance},
        )
    except (RuntimeError, FileNotFoundError, requests.RequestException) as error:
        raise SystemExit(f"error: {error}") from None
    csv_path, md_path = write_reports(scores, args.out)
    print(md_path.read_text(), end="")
    print(f"written: {csv_path}, {md_path}")


if __name__ == "__main__":
    main()
