"""Comparison grids: the same seed of the animals model at several step counts and/or for
several animals, side by side in one labelled image (rows are animals, columns step counts),
as the original Animals generator's steps comparison showed one tiger at 20, 50 and 100 steps."""

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

LABEL_PX = 14  # the label strip under each cell
GAP_PX = 4


@dataclass(frozen=True)
class Cell:
    animal: str
    steps: int
    image: Image.Image


@dataclass(frozen=True)
class ComparisonGrid:
    image: Image.Image
    cells: tuple  # of Cell, row by row
    seed: int


def label_of(cell: Cell) -> str:
    return f"{cell.animal.replace('_', ' ')}, {cell.steps} steps"


def compare(
    render: Callable[[str, int], Image.Image], animals: Sequence[str], steps: Sequence[int], seed: int
) -> ComparisonGrid:
    """Calls `render(animal, steps)` once per cell and lays the results out in a grid."""
    if not animals or not steps:
        raise ValueError("a comparison needs at least one animal and one step count")
    cells = tuple(Cell(animal, n, render(animal, n).convert("RGB")) for animal in animals for n in steps)
    return ComparisonGrid(layout(cells, columns=len(steps)), cells, seed)


def layout(cells: Sequence[Cell], columns: int) -> Image.Image:
    """One image: cells in rows of `columns`, each with its label underneath."""
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(draw.textlength(label_of(c), font=font) for c in cells)
    cell_w = max(max(c.image.width for c in cells), int(label_w) + 2)  # a label never runs into its neighbour
    cell_h = max(c.image.height for c in cells) + LABEL_PX
    rows = -(-len(cells) // columns)
    grid = Image.new("RGB", (columns * cell_w + (columns + 1) * GAP_PX, rows * cell_h + (rows + 1) * GAP_PX), "white")
    draw = ImageDraw.Draw(grid)
    for index, cell in enumerate(cells):
        x = GAP_PX + (index % columns) * (cell_w + GAP_PX)
        y = GAP_PX + (index // columns) * (cell_h + GAP_PX)
        grid.paste(cell.image, (x, y))
        draw.text((x, y + cell_h - LABEL_PX + 1), label_of(cell), fill="black", font=font)
    return grid


def parse_list(text: str, kind: Optional[type] = None) -> list:
    """'4,8,16' -> [4, 8, 16]; 'tiger, lion' -> ['tiger', 'lion']."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    return [kind(item) for item in items] if kind else items
