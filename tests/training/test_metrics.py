"""The run's metrics files: CSV, spreadsheet and the matplotlib figure, with gaps where a
metric has no value (no CLIP model, a NaN learning rate before any step)."""

import numpy as np
from openpyxl import load_workbook
from PIL import Image

from training.metrics import plot_metrics, read_metrics_csv, write_metrics

COLUMNS = ("epoch", "train_loss", "clip_score", "lr")
ROWS = [
    {"epoch": 1, "train_loss": 0.5, "clip_score": None, "lr": float("nan")},
    {"epoch": 2, "train_loss": 0.25, "clip_score": None, "lr": 1e-4},
]


def test_csv_xlsx_and_figure_hold_the_same_table(tmp_path):
    write_metrics(ROWS, tmp_path, COLUMNS, COLUMNS[1:])
    assert read_metrics_csv(tmp_path / "metrics.csv")[1] == {
        "epoch": 2,
        "train_loss": 0.25,
        "clip_score": None,
        "lr": 1e-4,
    }
    cells = list(load_workbook(tmp_path / "metrics.xlsx")["metrics"].iter_rows(values_only=True))
    assert cells == [COLUMNS, (1, 0.5, None, None), (2, 0.25, None, 1e-4)]  # NaN has no cell value
    figure = Image.open(tmp_path / "metrics.png")
    assert figure.format == "PNG" and figure.size == (800, 260)  # two panels: clip_score has no value


def test_an_empty_table_still_gives_a_figure(tmp_path):
    figure = Image.open(plot_metrics([], tmp_path / "empty.png", "epoch", ("train_loss",)))
    assert figure.size == (800, 260) and len(np.unique(np.asarray(figure.convert("L")))) > 1
