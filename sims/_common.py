"""Shared plumbing of the ``sims/`` scripts: arguments, output folder, tables, figures, sampling.

Every script takes ``--quick`` (a tiny configuration, for ``tests/test_sims.py``) and ``--out DIR``
(default ``sims/out/<script>/``), prints its table, writes it as ``.csv`` and ``.json`` and writes
a PNG. Scripts expose ``main(argv) -> dict`` so the tests can check the numbers they print.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np

from pbitsim.blas import blas_threads

HERE = Path(__file__).resolve().parent


# Dense eigen-solves of a few hundred states run ~10x slower with OpenBLAS threads fighting
# over a busy 2-core machine than single-threaded, so keep BLAS to one thread.
blas_threads(1)


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """An argument parser with the common ``--quick`` and ``--out`` options."""
    p = argparse.ArgumentParser(
        prog=f"python sims/{name}.py",
        description=doc.strip().splitlines()[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny configuration (seconds; for tests)")
    p.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default sims/out/{name}/)"
    )
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    return p


def outdir(args, name: str) -> Path:
    d = args.out if args.out is not None else HERE / "out" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def quiet_warnings() -> None:
    """Silence the warnings that are expected in these experiments (degenerate clusters of
    symmetric models; untrusted tau estimates are reported with their flag instead)."""
    from pbitsim.diagnostics import AutocorrWarning, DegenerateEigenvalueWarning

    warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
    warnings.simplefilter("ignore", AutocorrWarning)


def _fmt(x) -> str:
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0 or 1e-3 <= abs(x) < 1e5:
            return f"{x:.4g}"
        return f"{x:.3e}"
    return str(x)


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf/nan
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def table(rows: list[dict], path: Path, title: str | None = None) -> None:
    """Print ``rows`` as an aligned table and write ``path``.csv and ``path``.json."""
    if not rows:
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    width = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(cols)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(cols, width)))
    for row in cells:
        print("  ".join(x.rjust(w) for x, w in zip(row, width)))
    path = Path(path)
    with path.with_suffix(".csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([[_plain(r.get(c, "")) for c in cols] for r in rows])
    path.with_suffix(".json").write_text(json.dumps(_plain(rows), indent=1))


def write_json(obj, path: Path) -> None:
    Path(path).write_text(json.dumps(_plain(obj), indent=1))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    print(f"figure: {path}")
    return path


def sample(couplings, sweeps: int, **kw):
    """``pbitsim.sample(couplings, sweeps, **kw)`` without a progress bar."""
    import pbitsim

    kw.setdefault("progress", False)
    return pbitsim.sample(couplings, sweeps, **kw)
