"""Per-epoch metrics of a run: metrics.csv, the same table as metrics.xlsx (the seed apps' users
open their metrics in a spreadsheet) and metrics.png, one figure with a panel per metric.

The figure is drawn with matplotlib's object API (`Figure`, Agg canvas): no pyplot, so no
global figure state and no display backend, which a training job in a thread or on a headless
machine would trip over.
"""

import csv
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from openpyxl import Workbook

PANEL_W_IN, PANEL_H_IN, DPI = 4.0, 2.6, 100
PANEL_COLUMNS = 2


def write_metrics(rows: list[dict], run_dir: Path, columns: tuple[str, ...], plotted: tuple[str, ...]) -> None:
    """metrics.csv, metrics.xlsx and metrics.png in `run_dir`, `epoch` on the figure's x axis."""
    run_dir = Path(run_dir)
    write_metrics_csv(rows, run_dir / "metrics.csv", columns)
    write_metrics_xlsx(rows, run_dir / "metrics.xlsx", columns)
    plot_metrics(rows, run_dir / "metrics.png", "epoch", plotted)


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


def write_metrics_xlsx(rows: list[dict], path: Path, columns: tuple[str, ...]) -> Path:
    """One sheet, `metrics`: a header row, then one row per epoch; a missing value is empty."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "metrics"
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_xlsx_cell(row.get(c)) for c in columns])
    sheet.freeze_panes = "A2"
    path = Path(path)
    scratch = path.with_name(f".{path.name}.partial")
    workbook.save(scratch)
    scratch.replace(path)
    return path


def plot_metrics(rows: list[dict], path: Path, x: str, metrics: tuple[str, ...]) -> Path:
    """A PNG with one panel per metric that has at least one finite value."""
    shown = [m for m in metrics if any(_finite(r.get(m)) for r in rows)]
    grid_rows = max(1, math.ceil(len(shown) / PANEL_COLUMNS))
    figure = Figure(figsize=(PANEL_COLUMNS * PANEL_W_IN, grid_rows * PANEL_H_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if not shown:
        figure.text(0.5, 0.5, "no metrics yet", ha="center", va="center")
    for index, metric in enumerate(shown):
        axes = figure.add_subplot(grid_rows, PANEL_COLUMNS, index + 1)
        points = [(r[x], r[metric]) for r in rows if _finite(r.get(metric))]
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=f"C{index}")
        axes.set_title(metric)
        axes.set_xlabel(x)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        axes.ticklabel_format(axis="y", useOffset=False)  # a loss reads as itself, not as 1.06 + 8e-5
    path = Path(path)
    figure.savefig(path, format="png")
    return path


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _xlsx_cell(value):
    """NaN and infinities have no spreadsheet value: they are left empty, as None is."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _cell(value):
    return "" if value is None else value


def _number(text: str):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)
