"""Sweeps on Dask end to end (pbitsim.sweep.run): a LocalCluster of 2 worker processes, a worker
killed mid-cell, a cell that raises, an interrupted run resumed, a cold Numba cache, the board
resource rule, the command line. Grids are tiny: the cost is in starting clusters (~2 s each)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

from pbitsim import sampling  # noqa: E402
from pbitsim.cli import main  # noqa: E402
from pbitsim.sweep import load_grid, read_table, run  # noqa: E402
from pbitsim.sweep.store import ResultStore  # noqa: E402

TINY = """\
[grid]
name = "tiny"
models = ["ferromagnet:5", "glass:5,p=0.8,seed=1,field=0.3"]
methods = ["chromatic"]
betas = [0.5, 1.0]
beta_unit = "max-field"
sweeps = 400
burn_in = 50
replicas = 8
diagnostics = ["tau", "q", "exact"]

[tracking]
factor = 2.0
"""


def write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def check_table(res, grid_path: Path, out: Path) -> list[dict]:
    """Every cell of the grid exactly once, in the combined table and as one cell file."""
    keys = [c.key for c in load_grid(grid_path).cells()]
    rows = read_table(out / "results.parquet")
    assert [r["key"] for r in rows] == keys
    assert [r["key"] for r in res.rows] == keys
    assert sorted(p.stem for p in (out / "cells").glob("*.parquet")) == sorted(keys)
    assert not list(out.rglob("*.tmp"))
    return rows


PLUGIN = '''
"""Test methods for sweeps: independent spins; one kills its worker once, one always raises."""

import os
import signal
from pathlib import Path

import numpy as np

from pbitsim.sampling import Runner

MARKER = Path({marker!r})


class Independent(Runner):
    def __init__(self, couplings, replicas=1, seed=None):
        super().__init__(couplings, replicas, seed)
        self._rng = np.random.default_rng(seed)

    def advance(self, sweeps):
        self._rng.random((self.replicas, sweeps, self.couplings.n))

    def draw(self, k, thin=1):
        u = self._rng.random((self.replicas, k * thin, self.couplings.n))
        return np.where(u < 0.5, 1, -1).astype(np.int8)[:, thin - 1 :: thin]


class Kamikaze(Independent):
    """The first draw anywhere kills its own worker process (SIGKILL, mid-cell)."""

    def draw(self, k, thin=1):
        try:
            fd = os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().draw(k, thin)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


class Faulty(Independent):
    def draw(self, k, thin=1):
        raise RuntimeError("this sampler always fails")
'''

ENTRY_POINTS = """\
[pbitsim.methods]
kamikaze = pbitsim_sweeptest:Kamikaze
faulty = pbitsim_sweeptest:Faulty
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A distribution on sys.path (worker processes inherit it) with the test methods."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "pbitsim_sweeptest.py").write_text(
        textwrap.dedent(PLUGIN).replace("{marker!r}", repr(str(tmp_path / "killed")))
    )
    info = root / "pbitsim_sweeptest-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pbitsim-sweeptest\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    yield tmp_path / "killed"
    sys.modules.pop("pbitsim_sweeptest", None)
    for name in ("kamikaze", "faulty"):
        sampling._METHODS.pop(name, None)
    importlib.invalidate_caches()


def test_killed_worker_and_failing_cell(tmp_path, plugin):
    g = write(
        tmp_path,
        '[grid]\nmodels = ["glass:5,seed=2"]\nmethods = ["kamikaze", "chromatic", "faulty"]\n'
        "seeds = [0, 1]\nsweeps = 200\nreplicas = 4\n",
    )
    out = tmp_path / "out"
    res = run(g, out=out, workers=2, progress=False)
    rows = check_table(res, g, out)
    assert plugin.exists(), "no worker was killed"
    killed = int(plugin.read_text())
    status = {(r["method"], r["seed"]): r for r in rows}
    for m in ("kamikaze", "chromatic"):
        for seed in (0, 1):
            r = status[(m, seed)]
            assert r["status"] == "ok", r["error"]
            if m == "kamikaze":  # the killed cell was run again, by another process
                assert r["worker"].split(":")[1] != str(killed)
    for seed in (0, 1):
        r = status[("faulty", seed)]
        assert r["status"] == "error" and "this sampler always fails" in r["error"]
    assert res.failed == 2 and res.summary["error"] == 2


def test_end_to_end_interrupted_and_resumed(tmp_path):
    """The embedded cluster (2 worker processes): a run stopped after two cells (as by Ctrl-C)
    leaves two whole cell files; the rerun does the other two; the table has each cell once."""
    g = write(tmp_path, TINY)
    out = tmp_path / "out"
    seen = []

    def stop_after_two(row):
        seen.append(row["key"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(g, out=out, workers=2, progress=False, on_result=stop_after_two)
    assert sorted(p.stem for p in (out / "cells").glob("*.parquet")) == sorted(seen)
    assert not (out / "results.parquet").exists() and not list(out.rglob("*.tmp"))
    store = ResultStore(out)
    first = {k: store.read_cell(k)["finished_at"] for k in seen}

    res = run(g, out=out, workers=2, progress=False)
    rows = check_table(res, g, out)
    assert res.skipped == 2 and res.computed == 2 and res.failed == 0
    assert {r["key"]: r["finished_at"] for r in rows if r["key"] in first} == first
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["numba_threads"] == 1  # one Numba thread per worker process
        assert r["pbitsim_version"] and r["fingerprint"] and r["time_total_s"] > 0
        assert r["worker"].split(":")[1] != str(os.getpid())  # ran in a worker process
        assert r["q"] is not None and r["q_exact"] is not None and r["gap"] is not None
    assert (out / "summary.png").stat().st_size > 0
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["caps"]["exact_spectra_max_n"] == 12 and meta["summary"]["cells"] == 4
    assert meta["summary"]["multi_mode_tracks"] == sum(r["multi_mode_tracks"] for r in rows)

    # the command line on the same folder: nothing left to run, so no cluster is started
    r = CliRunner().invoke(main, ["sweep", str(g), "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "4 cells: 4 ok, 0 failed" in r.output
    assert [x["finished_at"] for x in read_table(out / "results.parquet")] == [
        x["finished_at"] for x in rows
    ]


def test_malformed_grid_on_the_command_line(tmp_path):
    g = write(tmp_path, TINY.replace("replicas = 8", "replicas = eight"))
    r = CliRunner().invoke(main, ["sweep", str(g), "--no-progress"])
    assert r.exit_code != 0
    assert "line 9" in r.output and "grid.toml" in r.output


def test_cold_numba_cache_with_two_workers(tmp_path, monkeypatch):
    """An empty Numba cache and 2 workers starting the same kernel at once: the first compile is
    serialised, so both load what one wrote (only the async kernels: a few seconds cold)."""
    cache = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))  # spawned workers inherit it
    g = write(
        tmp_path,
        '[grid]\nmodels = ["glass:5,seed=3"]\nmethods = ["async"]\nseeds = [0, 1, 2, 3]\n'
        "sweeps = 100\nreplicas = 2\n",
    )
    res = run(g, out=tmp_path / "out", workers=2, progress=False)
    assert [r["status"] for r in res.rows] == ["ok"] * 4, [r["error"] for r in res.rows]
    assert len(list(cache.rglob("*.nbi"))) > 0  # compiled into the empty cache
    assert max(r["time_warmup_s"] for r in res.rows) > 0


class FakeBoard(sampling.Runner):
    """Stands in for a board: needs exclusive hardware, records when it was open."""

    resources = {"board": 1}
    OPEN: list = []

    def __init__(self, couplings, replicas=1, seed=None):
        import time

        super().__init__(couplings, replicas, seed)
        self._t = time.monotonic()

    def advance(self, sweeps):
        pass

    def draw(self, k, thin=1):
        import time

        import numpy as np

        time.sleep(0.05)  # long enough for a second board cell to overlap if it could
        rng = np.random.default_rng(self.seed)
        return np.where(rng.random((self.replicas, k, self.couplings.n)) < 0.5, 1, -1).astype(
            np.int8
        )

    def _close(self):
        import time

        FakeBoard.OPEN.append((self._t, time.monotonic()))


class FakeFree(FakeBoard):
    """The same without the need for hardware (and not recorded)."""

    resources = {}

    def _close(self):
        pass


@pytest.fixture
def fake_board():
    sampling.register_method("fake-board")(FakeBoard)
    sampling.register_method("fake-free")(FakeFree)
    FakeBoard.OPEN.clear()
    yield
    sampling._METHODS.pop("fake-board", None)
    sampling._METHODS.pop("fake-free", None)


def test_board_method_needs_the_board_resource(tmp_path, fake_board):
    """In-process workers (the methods are registered in this process only; Numba methods are
    left out: two threads must not enter its parallel kernels at once)."""
    from distributed import Client, LocalCluster

    g = write(
        tmp_path,
        '[grid]\nmodels = ["glass:4,seed=1"]\nmethods = ["fake-board", "fake-free"]\n'
        "seeds = [0, 1, 2]\nsweeps = 50\nreplicas = 2\n",
    )
    kw = dict(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    with LocalCluster(**kw) as cluster, Client(cluster) as client:
        res = run(g, client, out=tmp_path / "refused", progress=False)
    by = {(r["method"], r["seed"]): r for r in res.rows}
    for seed in (0, 1, 2):
        assert by[("fake-free", seed)]["status"] == "ok"
        r = by[("fake-board", seed)]
        assert r["status"] == "error" and "needs the worker resource(s) {'board': 1}" in r["error"]
    assert not FakeBoard.OPEN  # refused before any worker opened it

    with LocalCluster(resources={"board": 1}, **kw) as cluster, Client(cluster) as client:
        res = run(g, client, out=tmp_path / "board", progress=False)
    assert all(r["status"] == "ok" for r in res.rows), [r["error"] for r in res.rows]
    spans = sorted(FakeBoard.OPEN)
    assert len(spans) >= 3  # three cells (and no warm-up: exclusive hardware is never warmed)
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two board cells were open at once"
