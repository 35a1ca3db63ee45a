"""Per-epoch metrics: metrics.csv and metrics.png in the run folder.

matplotlib is not among the project's pinned packages, so the plot is drawn with Pillow's
ImageDraw: one small panel per metric, epoch on the x axis, its range printed on the y axis.
"""

import csv
import math
from pathlib import Path

from PIL import Image, ImageDraw

PANEL_W_PX, PANEL_H_PX, MARGIN_PX = 320, 200, 36
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


def write_metrics_csv(rows: list[dict], path: Path, columns: tuple[str, ...]) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})
    return path


def read_metrics_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def plot_metrics(rows: list[dict], path: Path, x: str, metrics: tuple[str, ...]) -> Path:
    """A PNG with one panel per metric that has at least one finite value."""
    shown = [m for m in metrics if any(_finite(r.get(m)) for r in rows)]
    columns = 2
    panels = max(1, len(shown))
    grid_rows = math.ceil(panels / columns)
    image = Image.new("RGB", (columns * PANEL_W_PX, grid_rows * PANEL_H_PX), "white")
    draw = ImageDraw.Draw(image)
    for index, metric in enumerate(shown):
        left, top = (index % columns) * PANEL_W_PX, (index // columns) * PANEL_H_PX
        points = [(float(r[x]), float(r[metric])) for r in rows if _finite(r.get(metric))]
        _panel(draw, (left, top), metric, points, COLOURS[index % len(COLOURS)])
    if not shown:
        draw.text((MARGIN_PX, MARGIN_PX), "no metrics yet", fill="black")
    path = Path(path)
    image.save(path, format="PNG")
    return path


def _panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str, points: list, colour) -> None:
    left, top = origin
    x0, y0 = left + MARGIN_PX + 20, top + MARGIN_PX // 2 + 12
    x1, y1 = left + PANEL_W_PX - MARGIN_PX // 2, top + PANEL_H_PX - MARGIN_PX
    draw.rectangle((x0, y0, x1, y1), outline=(160, 160, 160))
    draw.text((x0, top + 4), title, fill="black")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if y_hi == y_lo:  # a flat line sits mid-panel
        y_lo, y_hi = y_lo - 1.0, y_hi + 1.0
    span_x = (x_hi - x_lo) or 1.0
    pixels = [
        (x0 + (px - x_lo) / span_x * (x1 - x0), y1 - (py - y_lo) / (y_hi - y_lo) * (y1 - y0)) for px, py in points
    ]
    if len(pixels) > 1:
        draw.line(pixels, fill=colour, width=2)
    for px, py in pixels:
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
    draw.text((left + 2, y0), f"{y_hi:.3g}", fill="black")
    draw.text((left + 2, y1 - 10), f"{y_lo:.3g}", fill="black")
    draw.text((x0, y1 + 4), f"{x_lo:g}", fill="black")
    draw.text((x1 - 24, y1 + 4), f"{x_hi:g}", fill="black")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _cell(value):
    return "" if value is None else value


def _number(text: str):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)
