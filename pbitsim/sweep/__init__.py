"""Sweeps: grids of runs (models x methods x betas x seeds x settings) on Dask distributed.

``pbitsim sweep GRID.toml`` or :func:`run` expands a declarative grid file (:func:`load_grid`) into
cells, runs them on an embedded ``LocalCluster`` (default) or any Dask scheduler, and writes one
Parquet row per cell, a combined table and a summary plot; rerunning the same grid resumes. See
``docs/sweeps.md``. Needs the ``[sweep]`` extra (``dask[distributed]``, ``pyarrow``), imported
only when a sweep runs.
"""

from pbitsim.sweep.grid import Cell, Grid, GridError, load_grid, parse_grid
from pbitsim.sweep.runner import SweepResult, run
from pbitsim.sweep.store import read_table

__all__ = [
    "Cell",
    "Grid",
    "GridError",
    "SweepResult",
    "load_grid",
    "parse_grid",
    "read_table",
    "run",
]
