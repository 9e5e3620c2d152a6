"""Human-readable views of a `MutualInformation`: an aligned text table and a heatmap PNG."""

from __future__ import annotations

import os

import numpy as np

from augkit_cfm.mutual_information import MutualInformation


def format_matrix(mi: MutualInformation, *, digits: int = 3) -> str:
    """The matrix as an aligned text table, feature names as row and column headers."""
    cells = [[f"{value:.{digits}f}" for value in row] for row in mi.matrix.tolist()]
    first = max(len(name) for name in mi.names)
    widths = [max(len(name), *(len(row[j]) for row in cells)) for j, name in enumerate(mi.names)]
    lines = [" " * first + "".join(f"  {name:>{w}}" for name, w in zip(mi.names, widths, strict=True))]
    for name, row in zip(mi.names, cells, strict=True):
        lines.append(
            f"{name:<{first}}" + "".join(f"  {cell:>{w}}" for cell, w in zip(row, widths, strict=True))
        )
    return "\n".join(lines)


def largest_pair(mi: MutualInformation, *, exclude: tuple[str, ...] = ()) -> tuple[str, str, float] | None:
    """The off-diagonal pair of largest MI among features not in `exclude` (ties: the pair
    first in ``names`` order), or None when fewer than two features remain."""
    keep = [i for i, name in enumerate(mi.names) if name not in exclude]
    best: tuple[str, str, float] | None = None
    for position, i in enumerate(keep):
        for j in keep[position + 1 :]:
            value = float(mi.matrix[i, j])
            if best is None or value > best[2]:
                best = (mi.names[i], mi.names[j], value)
    return best


def plot_matrix(mi: MutualInformation, path: str | os.PathLike[str], *, title: str = "") -> None:
    """Write a heatmap PNG of the matrix to `path`: annotated cells, names on both axes.

    Uses matplotlib's Agg canvas directly, so no global backend is set.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: loaded only when a plot is asked for
    from matplotlib.figure import Figure

    k = len(mi.names)
    size = max(4.0, 1.1 * k + 2.0)
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(mi.matrix, cmap="viridis", vmin=0.0)
    figure.colorbar(image, ax=axes, label="mutual information (nats)", shrink=0.8)
    axes.set_xticks(range(k), labels=mi.names, rotation=45, ha="right")
    axes.set_yticks(range(k), labels=mi.names)
    middle = (float(mi.matrix.max()) + float(mi.matrix.min())) / 2.0
    for (i, j), value in np.ndenumerate(mi.matrix):
        colour = "black" if value > middle else "white"
        axes.text(j, i, f"{value:.3f}", ha="center", va="center", color=colour, fontsize=9)
    axes.set_title(title or "Feature mutual information")
    figure.savefig(path, dpi=150)
