"""Large models: building, saving and loading a 10^6-spin model, and sampling it.

    python benchmarks/bench_large_models.py [--quick]

Two graphs of 10^6 spins built directly as CSR arrays: a periodic 1000 x 1000 lattice (J = 1)
and a random bipartite 3-regular graph (three random perfect matchings between two halves,
J = +-1; its neighbours are random, so no ordering keeps them near each other in memory).

* ``Couplings(indptr, indices, data, h, beta, coloring)`` construction, ``save`` and
  ``pbitsim.load``: CPU and wall seconds (median of 3), and the load's peak traced memory
  (tracemalloc, in a fresh process) against the model's CSR arrays (indptr int64, indices int32,
  data float64).
* chromatic sampling at n = 10^4 and 10^6 of the same kind of graph, 1 and 64 replicas: flips per
  CPU-ns (best of 3 calls, since other people's load only ever slows a call down) and the ratio
  10^6 / 10^4.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def lattice(side: int, beta: float = 0.44):
    """Periodic side x side lattice, checkerboard colouring, as CSR arrays (no Python loop)."""
    from pbitsim import Couplings

    n = side * side
    idx = np.arange(n).reshape(side, side)
    nbr = np.stack(
        [np.roll(idx, 1, 0), np.roll(idx, -1, 0), np.roll(idx, 1, 1), np.roll(idx, -1, 1)], -1
    ).reshape(n, 4)
    nbr.sort(axis=1)
    colour = ((idx // side + idx % side) % 2).ravel()
    return Couplings(
        np.arange(n + 1) * 4, nbr.ravel().astype(np.int32), np.ones(4 * n), None, beta, colour
    )


def bipartite_regular(n: int, degree: int = 3, seed: int = 0, beta: float = 0.5):
    """Random bipartite graph of ``degree`` perfect matchings between the halves (repeated pairs
    merged), J = +-1, coloured by half."""
    from pbitsim import Couplings

    rng = np.random.default_rng(seed)
    half = n // 2
    a = np.tile(np.arange(half), degree)
    b = np.concatenate([rng.permutation(half) for _ in range(degree)]) + half
    key = np.unique(a.astype(np.int64) * n + b)
    a, b = key // n, key % n
    w = np.where(rng.random(len(key)) < 0.5, -1.0, 1.0)
    rows, cols, vals = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([w, w])
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return Couplings(
        indptr,
        cols[order].astype(np.int32),
        vals[order],
        None,
        beta,
        (np.arange(n) >= half).astype(np.int32),
    )


def _times(f, repeats: int = 3) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        f()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


_LOAD = r"""
import sys, time, tracemalloc
import pbitsim
tracemalloc.start()
w, c = time.perf_counter(), time.process_time()
m = pbitsim.load(sys.argv[1])
w, c = time.perf_counter() - w, time.process_time() - c
print(w, c, tracemalloc.get_traced_memory()[1], m.indptr.nbytes + m.indices.nbytes + m.data.nbytes)
"""


def file_figures(c, repeats: int = 3) -> dict:
    """Construction, save and load of ``c`` (load in fresh processes: cold caches of pbitsim's
    topology registry, traced memory of the load alone)."""
    from pbitsim import Couplings
    from pbitsim import couplings as cm

    def construct():
        cm._Topology._recent.clear()  # validate from scratch, as a first construction does
        Couplings(c.indptr.copy(), c.indices.copy(), c.data, c.h, c.beta, c.coloring.copy())

    out = {"n": c.n, "nnz": c.nnz}
    out["construct"] = _times(construct, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pbit")
        out["save"] = _times(lambda: c.save(path), repeats)
        out["file_mb"] = os.path.getsize(path) / 2**20
        runs = []
        for _ in range(repeats):
            res = subprocess.run(
                [sys.executable, "-c", _LOAD, path], capture_output=True, text=True, check=True
            )
            runs.append([float(x) for x in res.stdout.split()])
    runs = np.array(runs)
    out["load"] = (float(np.median(runs[:, 0])), float(np.median(runs[:, 1])))
    out["peak_mb"] = float(np.median(runs[:, 2])) / 2**20
    out["csr_mb"] = float(runs[0, 3]) / 2**20
    return out


def chromatic_rate(c, replicas: int, work: float = 3e7, repeats: int = 3) -> float:
    """Flips per CPU-ns of chromatic ``advance``, best of ``repeats`` calls."""
    from pbitsim.sampling import open_runner

    r = open_runner(c, "chromatic", replicas, seed=1)
    sweeps = max(2, int(work / (c.n * replicas)))
    r.advance(1)
    cpus = []
    for _ in range(repeats):
        t = time.process_time()
        r.advance(sweeps)
        cpus.append(time.process_time() - t)
    r.close()
    return c.n * replicas * sweeps / min(cpus) / 1e9


def scaling(kind: str, replicas=(1, 64), work: float = 3e7) -> list[tuple]:
    """(kind, replicas, rate at 10^4, rate at 10^6, ratio) rows."""
    make = (lambda n: lattice(int(round(n**0.5)))) if kind == "lattice" else bipartite_regular
    small, large = make(10**4), make(10**6)
    rows = []
    for R in replicas:
        a, b = chromatic_rate(small, R, work), chromatic_rate(large, R, work)
        rows.append((kind, R, a, b, b / a))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the lattice only")
    args = ap.parse_args()
    kinds = ("lattice",) if args.quick else ("lattice", "random bipartite 3-regular")
    print(f"load average {os.getloadavg()[0]:.1f}")
    for kind in kinds:
        c = lattice(1000) if kind == "lattice" else bipartite_regular(10**6)
        f = file_figures(c)
        print(
            f"{kind} n={f['n']} nnz={f['nnz']}: construct {f['construct'][1]:.2f} CPU s "
            f"({f['construct'][0]:.2f} wall), save {f['save'][1]:.2f} CPU s, file "
            f"{f['file_mb']:.0f} MiB; load {f['load'][1]:.2f} CPU s ({f['load'][0]:.2f} wall), "
            f"peak {f['peak_mb']:.0f} MiB = {f['peak_mb'] / f['csr_mb']:.2f} x CSR "
            f"({f['csr_mb']:.0f} MiB)",
            flush=True,
        )
        for _, R, a, b, ratio in scaling("lattice" if kind == "lattice" else "bipartite"):
            print(
                f"  chromatic R={R}: 10^4 {a:.3f}, 10^6 {b:.3f} flips/CPU-ns: {ratio:.2f}x",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
