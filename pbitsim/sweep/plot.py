"""The summary plot of a sweep: a diagnostic over two grid axes (heat map) or one (lines).

``[plot]`` in the grid file chooses ``value`` (a column, or a list of columns: one row of panels
each), ``x`` and ``y`` (columns, usually grid axes) and ``facet`` (one panel per value). With ``y``
a heat map is drawn (cells that share x and y, differing in other axes, are summarised by their
median); without it, one line per facet value. Defaults: the first diagnostic column present
(``q``, ``tau_energy``, ``kl``), x and y the first two axes with more than one value.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["summary_plot", "default_plot"]

_VALUES = ("multi_mode_ratio", "q", "tau_energy", "kl", "gap")


def default_plot(rows: list[dict], axes: dict[str, list], spec: dict) -> dict:
    """The plot settings: ``spec`` (the grid's [plot] table) with defaults filled in."""
    varying = [a for a, v in axes.items() if len(v) > 1]
    out = dict(spec)
    if out.get("value") is None:
        present = [v for v in _VALUES if any(_num(r.get(v)) for r in rows)]
        out["value"] = present[:1] or ["time_total_s"]
        if present and present[0] == "multi_mode_ratio":
            out["value"] = ["multi_mode_ratio", "single_gap_ratio"]
    if isinstance(out["value"], str):
        out["value"] = [out["value"]]
    free = [a for a in varying if a not in (out.get("facet"), out.get("y"), out.get("x"))]
    if out.get("x") is None:
        out["x"] = free.pop(0) if free else "model"
    if out.get("y") is None and free:
        out["y"] = free.pop(0)
    return out


def _num(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _key(v):
    """Sort key for axis values of mixed types (None first, numbers by value, text after)."""
    if v is None:
        return (0, 0, "")
    if _num(v):
        return (1, float(v), "")
    return (2, 0, str(v))


def summary_plot(rows: list[dict], plot: dict, path, title: str = "") -> Path:
    """Draw the summary plot of ``rows`` (settings from :func:`default_plot`) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values, x, y, facet = plot["value"], plot["x"], plot.get("y"), plot.get("facet")
    ok = [r for r in rows if r.get("status") == "ok"]
    facets = sorted({r.get(facet) for r in ok}, key=_key) if facet else [None]
    fig, axs = plt.subplots(
        len(values),
        len(facets),
        figsize=(5.6 * len(facets) + 1.2, 3.8 * len(values) + 0.6),
        squeeze=False,
    )
    for i, value in enumerate(values):
        for j, f in enumerate(facets):
            ax = axs[i, j]
            sub = [r for r in ok if facet is None or r.get(facet) == f]
            head = f"{value}" + (f" | {facet} = {f}" if facet else "")
            if y is None:
                _lines(ax, sub, x, value)
            else:
                _heat(ax, sub, x, y, value, fig)
            ax.set_title(head, fontsize=9)
            if j:  # the axis label once per row: it would collide with the colour bar beside
                ax.set_ylabel("")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _lines(ax, rows, x, value) -> None:
    xs = sorted({r.get(x) for r in rows}, key=_key)
    med = []
    for v in xs:
        vals = [r[value] for r in rows if r.get(x) == v and _num(r.get(value))]
        med.append(float(np.median(vals)) if vals else np.nan)
    pos = np.arange(len(xs))
    ax.plot(pos, med, "o-")
    ax.set_xticks(pos, [str(v) for v in xs], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(value)
    if all(_num(m) and m > 0 for m in med) and max(med) > 10 * min(med):
        ax.set_yscale("log")


def _heat(ax, rows, x, y, value, fig) -> None:
    xs = sorted({r.get(x) for r in rows}, key=_key)
    ys = sorted({r.get(y) for r in rows}, key=_key)
    grid = np.full((len(ys), len(xs)), np.nan)
    for a, yv in enumerate(ys):
        for b, xv in enumerate(xs):
            vals = [
                r[value] for r in rows if r.get(x) == xv and r.get(y) == yv and _num(r.get(value))
            ]
            if vals:
                grid[a, b] = np.median(vals)
    finite = grid[np.isfinite(grid)]
    positive = finite.size and np.all(finite > 0)
    if value.endswith("_ratio") and positive:
        # a ratio to a measurement: log2, centred on 1 (white) so over and under read alike
        shown, label = np.log2(grid), f"log2 {value}"
        lim = max(1.0, float(np.nanmax(np.abs(shown))))
        im = ax.imshow(shown, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        dark = np.abs(shown) > 0.6 * lim
    else:
        log = positive and finite.max() > 10 * finite.min()
        shown, label = (np.log10(grid), f"log10 {value}") if log else (grid, value)
        im = ax.imshow(shown, aspect="auto", cmap="viridis")
        lo, hi = (np.nanmin(shown), np.nanmax(shown)) if finite.size else (0, 1)
        dark = shown < lo + 0.5 * (hi - lo)
    for a in range(len(ys)):
        for b in range(len(xs)):
            if np.isfinite(grid[a, b]):
                color = "white" if dark[a, b] else "black"
                ax.text(
                    b, a, f"{grid[a, b]:.3g}", ha="center", va="center", fontsize=6, color=color
                )
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(ys)), [str(v) for v in ys], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=label)
