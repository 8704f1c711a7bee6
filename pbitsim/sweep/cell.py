"""Running one cell on a worker: threads, a first compile that never races, the run, its row.

:func:`execute` is what the client submits to Dask. It returns the cell's row (parameters,
fingerprints, version, timings, diagnostics, or the error) and, when the grid saves samples, the
:class:`~pbitsim.samples.Samples`; it never writes files, since a worker of a real cluster shares
no filesystem with the client.

Two processes compiling the same Numba function into the same on-disk cache at once can crash
(numba issues 4807, 10128). So the first run of each (method, options) in a worker process is a
tiny warm-up under an exclusive lock file in the machine's temporary directory: one process
compiles and writes the cache while the others wait, then they load it. Methods that need
exclusive hardware (a ``resources`` class attribute, see ``docs/sweeps.md``) are not warmed up:
opening a board twice is what the resource rule prevents.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from pbitsim.sweep.grid import Cell

__all__ = ["execute", "base_row", "method_resources", "compile_lock"]

#: (method, options) already warmed up in this process
_WARM: set[tuple[str, str]] = set()


def method_resources(cls) -> dict[str, float]:
    """The Dask worker resources a method's Runner class declares it needs exclusively, e.g.
    ``{"board": 1}`` (the class attribute ``resources``; none by default)."""
    res = getattr(cls, "resources", None) or {}
    if not isinstance(res, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and v > 0 for k, v in res.items()
    ):
        raise TypeError(
            f"{cls.__name__}.resources must map resource names to amounts > 0, e.g. "
            f"{{'board': 1}}, not {res!r}"
        )
    return dict(res)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def base_row(cell: Cell) -> dict:
    """The columns every row has, whatever happened: the cell's identity and parameters."""
    import pbitsim

    p, c = cell.params, cell.couplings
    row = {
        "key": cell.key,
        "index": cell.index,
        "status": None,
        "error": None,
        "model": p["model"],
        "method": p["method"],
        "beta": None if p["beta"] is None else float(p["beta"]),
        "beta_unit": p["beta_unit"],
        "beta_used": p["beta_used"],
        "seed": p["seed"],
        "sweeps": p["sweeps"],
        "burn_in": p["burn_in"],
        "replicas": p["replicas"],
        "thin": p["thin"],
        "options": json.dumps(p["options"], sort_keys=True),
    }
    for k, v in p["options"].items():
        row[f"option_{k}"] = json.dumps(v)
    row.update(
        n=c.n,
        fingerprint=c.fingerprint,
        topology_fingerprint=c.topology_fingerprint,
        pbitsim_version=pbitsim.__version__,
    )
    return row


@contextlib.contextmanager
def compile_lock():
    """An exclusive lock shared by the processes of this machine (a no-op without ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; workers there race as before
        yield
        return
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"pbitsim-numba-compile-{uid}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _threads(threads: int):
    """Numba and BLAS on ``threads`` threads while a cell runs (processes x threads beyond the
    cores make barrier-bound kernels collapse); yields Numba's thread count. BLAS is restored
    afterwards, since an in-process worker shares the client's BLAS."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # this thread
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):  # every pool (BLAS, OpenMP), not only BLAS
        yield numba.get_num_threads()


def _warm_up(cell: Cell, cls) -> float:
    """Compile (or load from the cache) what this cell's method runs, under the machine lock."""
    from pbitsim.sampling import sample

    p = cell.params
    token = (p["method"], json.dumps(p["options"], sort_keys=True))
    if token in _WARM or method_resources(cls):
        return 0.0
    t = time.perf_counter()
    with compile_lock():
        # A failure here is the cell's own error: the real run below reports it.
        with contextlib.suppress(Exception):
            sample(
                cell.couplings,
                p["thin"],
                method=p["method"],
                seed=0,
                progress=False,
                thin=p["thin"],
                **p["options"],
            )
    _WARM.add(token)
    return time.perf_counter() - t


def execute(cell: Cell) -> dict:
    """Run one cell: ``{"row": dict, "samples": Samples or None}``; never raises for the cell's
    own failure (the row then has ``status = "error"`` and the error)."""
    t0 = time.perf_counter()
    row = base_row(cell)
    row.update(worker=f"{socket.gethostname()}:{os.getpid()}", started_at=_now())
    samples = None
    try:
        with _threads(int(cell.settings.get("numba_threads", 1))) as threads:
            row["numba_threads"] = threads
            samples = _run(cell, row)
        row["status"] = "ok"
    except Exception as e:  # recorded in the row: the other cells go on
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = traceback.format_exc(limit=-6)
    row["time_total_s"] = time.perf_counter() - t0
    row["finished_at"] = _now()
    return {"row": row, "samples": samples}


def _run(cell: Cell, row: dict):
    """Sample the cell and put its timings and diagnostics into ``row``; returns the samples
    when the grid keeps them, else None."""
    from pbitsim.sampling import get_method, sample
    from pbitsim.sweep.measure import diagnose

    p, settings = cell.params, cell.settings
    row["time_warmup_s"] = _warm_up(cell, get_method(p["method"]))
    t = time.perf_counter()
    s = sample(
        cell.couplings,
        p["sweeps"],
        method=p["method"],
        replicas=p["replicas"],
        burn_in=p["burn_in"],
        thin=p["thin"],
        seed=p["seed"],
        progress=False,
        **p["options"],
    )
    row["time_sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    row.update(diagnose(s, cell.couplings, p, settings))
    row["time_diagnostics_s"] = time.perf_counter() - t
    return s if settings.get("save_samples") else None
