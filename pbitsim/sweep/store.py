"""The result store of a sweep: one Parquet file per cell, written atomically, and the table.

Layout of the output folder::

    OUT/cells/<key>.parquet     one row per finished cell (written by the client, atomically)
    OUT/samples/<key>/          the cell's samples (samples.npy, samples.json, ...) when saved
    OUT/results.parquet         the combined table: one row per cell of the grid, in grid order
    OUT/sweep.json              the grid, its caps (exact limits), counts, timings, versions

Every file is written to a temporary name in the same folder and renamed into place, so an
interrupted run (Ctrl-C, a crash) leaves whole files only; temporary leftovers are removed when
the store is opened. A cell counts as finished when its file exists and its status is ``ok``:
a rerun of the same grid skips those and redoes the others (failed or never written).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["ResultStore", "require_pyarrow"]


def require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(
            "pbitsim sweeps write Parquet tables with pyarrow: pip install 'pbitsim[sweep]'"
        ) from None
    return pyarrow


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class ResultStore:
    """Cell files and the combined table of one sweep, under ``out``."""

    def __init__(self, out) -> None:
        self.out = Path(out)
        self.cells_dir = self.out / "cells"
        self.samples_dir = self.out / "samples"
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.clean()

    @property
    def table_path(self) -> Path:
        return self.out / "results.parquet"

    @property
    def meta_path(self) -> Path:
        return self.out / "sweep.json"

    def cell_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.parquet"

    def clean(self) -> None:
        """Remove temporary files an interrupted write left behind."""
        for folder in (self.out, self.cells_dir, self.samples_dir):
            if not folder.is_dir():
                continue
            for p in folder.glob(".*.tmp"):
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    # -- cells ------------------------------------------------------------------------------
    def read_cell(self, key: str) -> dict | None:
        """The row of cell ``key``, or None when there is no readable file."""
        pq = require_pyarrow().parquet
        path = self.cell_path(key)
        if not path.exists():
            return None
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception:  # an unreadable file is an unfinished cell (rerun redoes it)
            return None
        return rows[0] if len(rows) == 1 else None

    def finished(self, keys) -> set[str]:
        """The keys among ``keys`` whose cell finished (file present, status ``ok``)."""
        done = set()
        for k in keys:
            row = self.read_cell(k)
            if row is not None and row.get("status") == "ok":
                done.add(k)
        return done

    def write_cell(self, row: dict, samples=None) -> Path:
        """Write a cell's row (and samples) atomically; the row file is renamed into place last,
        so it exists only when everything of the cell is on disk."""
        pa = require_pyarrow()
        key = row["key"]
        if samples is not None:
            final = self.samples_dir / key
            tmp = _tmp(final)
            tmp.mkdir(parents=True, exist_ok=True)
            samples.save(tmp / "samples")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            row = dict(row, samples_path=str(Path("samples") / key / "samples.npy"))
        path = self.cell_path(key)
        tmp = _tmp(path)
        pa.parquet.write_table(pa.Table.from_pylist([row]), tmp)
        os.replace(tmp, path)
        return path

    # -- the table --------------------------------------------------------------------------
    def write_table(self, rows: list[dict]) -> Path:
        """The combined table of ``rows`` (one per cell), columns in first-seen order."""
        pa = require_pyarrow()
        columns: dict[str, None] = {}
        for r in rows:
            columns.update(dict.fromkeys(r))
        table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
        tmp = _tmp(self.table_path)
        pa.parquet.write_table(table, tmp)
        os.replace(tmp, self.table_path)
        return self.table_path

    def write_meta(self, meta: dict) -> Path:
        tmp = _tmp(self.meta_path)
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, self.meta_path)
        return self.meta_path


def read_table(path) -> list[dict]:
    """The rows of a sweep's ``results.parquet`` (or of a cell file), as dicts."""
    return require_pyarrow().parquet.read_table(path).to_pylist()
