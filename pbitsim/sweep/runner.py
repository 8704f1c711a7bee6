"""Running a grid on Dask distributed: :func:`run`.

The client (this process) expands the grid, skips the cells already finished in the output
folder, submits the others to Dask, and writes each result as it arrives: workers return rows and
samples, the client writes them (a real cluster shares no filesystem). Embedded by default: a
``LocalCluster`` of worker processes on this machine, one thread each, Numba and BLAS on one
thread each (``[run] numba_threads``). Or any scheduler: ``client="tcp://host:8786"`` or a
``distributed.Client``.

Every cell ends up in the table exactly once: a cell whose worker dies is rescheduled by Dask
(``[run] retries`` more times after an error); a cell that raises, or whose task is lost for good,
is recorded with its error, and the others go on. A method whose Runner class declares
``resources`` (e.g. ``{"board": 1}``) runs only on workers that declare those Dask resources, one
cell at a time per unit; when no worker declares them its cells are refused (recorded with the
reason), never queued forever.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pbitsim.sweep.grid import Cell, Grid, load_grid
from pbitsim.sweep.store import ResultStore

__all__ = ["run", "SweepResult", "require_distributed"]


def require_distributed():
    """``distributed``, or an ImportError saying which extra to install."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "pbitsim sweeps run on Dask distributed: pip install 'pbitsim[sweep]'"
        ) from None
    return distributed


@dataclass
class SweepResult:
    """What :func:`run` did.

    Attributes
    ----------
    grid : Grid
    out : Path
        The output folder (see :mod:`pbitsim.sweep.store`).
    rows : list of dict
        The table: one row per cell of the grid, in grid order.
    table_path, plot_path, meta_path : Path or None
    computed : int
        Cells run by this call (successfully or not), refused cells included.
    skipped : int
        Cells finished by an earlier run and not run again.
    elapsed_s : float
    summary : dict
        Counts (cells, ok, error, tracking counts) as written to ``sweep.json``.
    """

    grid: Grid
    out: Path
    rows: list = field(repr=False)
    table_path: Path | None
    plot_path: Path | None
    meta_path: Path | None
    computed: int
    skipped: int
    elapsed_s: float
    summary: dict

    @property
    def failed(self) -> int:
        return sum(r.get("status") != "ok" for r in self.rows)


def _log(enabled: bool) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if enabled:
            print(msg, file=sys.stderr, flush=True)

    return log


def run(
    grid: Grid | str | os.PathLike,
    client=None,
    *,
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    rerun: bool = False,
    quick: bool = False,
    resources: dict[str, float] | None = None,
    progress: bool | None = None,
    plot: bool = True,
    on_result: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Run every unfinished cell of a grid and write its table.

    Parameters
    ----------
    grid : Grid or path
        A grid, or its TOML file (:func:`~pbitsim.sweep.load_grid`).
    client : None, str or distributed.Client
        None: an embedded ``LocalCluster`` of ``workers`` processes (closed at the end). A
        scheduler address ("tcp://host:8786"): connect to that cluster. A Client: use it
        (left open).
    out : path, optional
        Output folder; default ``./sweep-<grid name>``. Rerunning into the same folder skips the
        finished cells.
    workers : int, optional
        Worker processes of the embedded cluster (default: the cores, at most one per cell).
    rerun : bool
        Run finished cells again too.
    quick : bool
        Apply the grid file's ``[quick]`` overrides (only when ``grid`` is a path).
    resources : dict, optional
        Dask resources every embedded worker declares, e.g. ``{"board": 1}`` (then with one
        worker: a board must never be opened by two). Ignored with an external cluster, whose
        workers declare their own (``dask worker --resources board=1``).
    progress : bool, optional
        Progress bar over cells and messages on stderr (default: when stderr is a terminal).
    plot : bool
        Write the summary plot (``summary.png``).
    on_result : callable, optional
        Called with each row as soon as it is written (a KeyboardInterrupt raised there stops
        the run as Ctrl-C would).

    Returns
    -------
    SweepResult

    Raises
    ------
    GridError
        A malformed grid file.
    ImportError
        The ``[sweep]`` extra is missing.
    KeyboardInterrupt
        Interrupted: the cells written so far are whole files; rerun to resume.
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if not isinstance(grid, Grid):
        grid = load_grid(grid, quick=quick)
    if progress is None:
        progress = sys.stderr.isatty()
    log = _log(bool(progress))
    cells = grid.cells()
    if out is None:
        out = Path.cwd() / ("sweep-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", grid.name))
    store = ResultStore(out)
    done = set() if rerun else store.finished(c.key for c in cells)
    todo = [c for c in cells if c.key not in done]
    log(
        f"sweep {grid.name!r}: {len(cells)} cells, {len(done)} finished before, {len(todo)} to "
        f"run; exact spectra for n <= {grid.caps()['exact_spectra_max_n']} -> {store.out}"
    )
    scheduler = None
    if todo:
        scheduler = _run_cells(
            grid, todo, store, client, workers, resources, progress, log, on_result
        )
    rows = []
    for c in cells:
        row = store.read_cell(c.key)
        if row is None:  # cannot happen unless a file was removed under us: say so, never drop
            from pbitsim.sweep.cell import base_row

            row = dict(base_row(c), status="error", error="no result file (removed during run?)")
        rows.append(row)
    table_path = store.write_table(rows)
    summary = _summary(grid, rows)
    plot_path = None
    if plot and rows:
        from pbitsim.sweep.plot import default_plot, summary_plot

        try:
            settings = default_plot(rows, grid.axes(), grid.spec["plot"])
            plot_path = summary_plot(
                rows, settings, store.out / "summary.png", _title(grid, summary)
            )
        except Exception as e:  # a plot never costs the table
            log(f"summary plot failed: {type(e).__name__}: {e}")
    elapsed = time.perf_counter() - t0
    import pbitsim

    meta = {
        "name": grid.name,
        "source": str(grid.source) if grid.source else None,
        "quick": grid.quick,
        "pbitsim_version": pbitsim.__version__,
        "started_at": started,
        "elapsed_s": elapsed,
        "scheduler": scheduler,
        "caps": grid.caps(),
        "computed": len(todo),
        "skipped": len(done),
        "summary": summary,
        "axes": grid.axes(),
        "spec": grid.spec,
    }
    meta_path = store.write_meta(meta)
    log(_describe(summary, elapsed, table_path, plot_path))
    return SweepResult(
        grid,
        store.out,
        rows,
        table_path,
        plot_path,
        meta_path,
        len(todo),
        len(done),
        elapsed,
        summary,
    )


def _title(grid: Grid, s: dict) -> str:
    t = f"{grid.name}: {s['cells']} cells, {s['ok']} ok"
    if "multi_mode_tracks" in s:
        t += (
            f"; within x{s['tracking_factor']:g} of measured Q: multi-mode {s['multi_mode_tracks']}"
            f", single gap {s['single_gap_tracks']} of {s['cells']}"
        )
    return t


def _summary(grid: Grid, rows: list[dict]) -> dict:
    s = {
        "cells": len(rows),
        "ok": sum(r.get("status") == "ok" for r in rows),
        "error": sum(r.get("status") != "ok" for r in rows),
        "exact_spectra_max_n": grid.caps()["exact_spectra_max_n"],
    }
    f = grid.tracking_factor
    if f is not None:
        s["tracking_factor"] = float(f)
        for name in ("multi_mode", "single_gap", "exact"):
            col = f"{name}_tracks"
            s[col] = sum(r.get(col) is True for r in rows)
            s[f"{name}_evaluated"] = sum(r.get(col) is not None for r in rows)
    return s


def _describe(s: dict, elapsed: float, table, plot) -> str:
    lines = [
        f"{s['cells']} cells: {s['ok']} ok, {s['error']} failed; {elapsed:.1f} s",
        f"table: {table}",
    ]
    if plot is not None:
        lines.append(f"plot:  {plot}")
    if "multi_mode_tracks" in s:
        lines.append(
            f"predictions within x{s['tracking_factor']:g} of the measured Q: multi-mode "
            f"{s['multi_mode_tracks']}, single gap {s['single_gap_tracks']}, exact Q(M) "
            f"{s['exact_tracks']} of {s['cells']} cells"
        )
    return "\n".join(lines)


# -- Dask ------------------------------------------------------------------------------------
def _local_cluster(n_workers: int, threads: int, resources: dict | None):
    from distributed import Client, LocalCluster

    if resources and "board" in resources and n_workers > 1:
        raise ValueError(
            f"{n_workers} embedded workers would all declare the 'board' resource and could "
            f"open one board twice: use workers=1 (or a real cluster where one worker per "
            f"board declares it)"
        )
    env = {
        k: str(threads)
        for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        env=env,
        resources=resources or None,
        dashboard_address=":0" if importlib.util.find_spec("bokeh") else None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def _declared(client) -> dict[str, float]:
    """The largest amount of each resource that one worker declares."""
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker (newer Dask lists 5 by default)
    except TypeError:  # older Dask: no n_workers, and every worker is listed
        info = client.scheduler_info()
    best: dict[str, float] = {}
    for w in info["workers"].values():
        for k, v in (w.get("resources") or {}).items():
            best[k] = max(best.get(k, 0), v)
    return best


def _needs(cells: list[Cell]) -> tuple[dict[str, dict], dict[str, str]]:
    """Resources per method, and the methods that cannot be loaded here (with the error)."""
    from pbitsim.sampling import get_method
    from pbitsim.sweep.cell import method_resources

    needs, broken = {}, {}
    for m in dict.fromkeys(c.params["method"] for c in cells):
        try:
            needs[m] = method_resources(get_method(m))
        except Exception as e:
            broken[m] = (
                f"method {m!r} cannot be loaded by the client, so its resource needs are "
                f"unknown: {type(e).__name__}: {e}"
            )
    return needs, broken


def _run_cells(grid, todo, store, client, workers, resources, progress, log, on_result):
    """Submit ``todo`` and write each result as it arrives; returns the scheduler address."""
    require_distributed()
    from distributed import Client, as_completed
    from tqdm.auto import tqdm

    from pbitsim.sweep.cell import base_row, execute

    def failed(cell, message):
        row = dict(
            base_row(cell),
            status="error",
            error=message,
            finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        store.write_cell(row)
        bar.update(1)
        if on_result is not None:
            on_result(row)

    needs, broken = _needs(todo)
    owned = cluster = None
    if client is None:
        n = workers or min(os.cpu_count() or 1, len(todo))
        client, cluster = _local_cluster(max(1, n), grid.numba_threads, resources)
        owned = client
    elif isinstance(client, str):
        client = owned = Client(client)
    address = client.scheduler.address
    services = client.scheduler_info().get("services", {})
    if "dashboard" in services and (cluster is None or importlib.util.find_spec("bokeh")):
        log(f"Dask dashboard: {client.dashboard_link}")
    if any(needs.values()):
        # Resources are judged on the workers present: give a cluster that is starting a moment.
        try:
            client.wait_for_workers(1, timeout=30)
        except TimeoutError:
            pass
    declared = _declared(client)
    bar = tqdm(total=len(todo), unit="cell", disable=not progress, desc=grid.name)
    futures = {}
    run_id = uuid.uuid4().hex[:8]
    try:
        for cell in todo:
            m = cell.params["method"]
            if m in broken:
                failed(cell, broken[m])
                continue
            need = needs[m]
            short = {k: v for k, v in need.items() if declared.get(k, 0) < v}
            if short:
                failed(
                    cell,
                    f"method {m!r} needs the worker resource(s) {short}, and no worker declares "
                    f"them (start the worker that owns the hardware with `dask worker ... "
                    f"--resources {' '.join(f'{k}={v:g}' for k, v in short.items())}`)",
                )
                continue
            fut = client.submit(
                execute,
                cell,
                key=f"pbitsim-cell-{cell.key}-{run_id}",
                pure=False,
                retries=grid.retries,
                resources=need or None,
            )
            futures[fut] = cell
        for fut in as_completed(list(futures)):
            cell = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as e:  # the task itself was lost (KilledWorker, cancelled...)
                fut.release()
                failed(cell, f"{type(e).__name__}: {e}")
                continue
            fut.release()
            store.write_cell(res["row"], res["samples"])
            bar.update(1)
            if on_result is not None:
                on_result(res["row"])
    except KeyboardInterrupt:
        if futures:
            client.cancel(list(futures))
        log(f"interrupted: {bar.n} of {len(todo)} cells written; rerun the same grid to resume")
        raise
    finally:
        bar.close()
        store.clean()
        if owned is not None:
            owned.close()
        if cluster is not None:
            cluster.close()
    return address
