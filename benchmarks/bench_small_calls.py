"""What a small call costs beyond its spin updates: PCD's load-new-weights-and-draw-a-few-steps.

    python benchmarks/bench_small_calls.py [--train]

On a held chromatic Runner of a 100-spin lattice (1 and 64 replicas), each figure the median
of 5 runs of 500 calls, in CPU microseconds per call (the machine may be shared: CPU time is what
other people's load hardly changes):

* ``build``: ``Couplings(indptr, indices, data, h, beta, coloring)`` from fresh arrays, as a
  training loop rebuilds its model each step (the topology is recognised, only the values are
  checked), and ``replace(data=...)``;
* ``load``: ``runner.load(couplings)``;
* ``draw``: ``runner.draw(10)``, and the 10 sweeps themselves (from a 2,000-sweep call on the
  calling thread); ``spins only``: the same with ``record_energies = False``, as ``pbitsim
  train``'s PCD steps draw (no energy per draw);
* ``total``: build + load + draw, and what it costs beyond the 10 sweeps (with and without the
  energies).

Then a 5-step call on 2 threads against 1 thread, wall time (what a busy machine's scheduler
does to a woken thread), and with ``--train`` the profile of ``pbitsim train``'s default run
(where its CPU time goes: sampling, diagnostics, likelihood, plots, imports).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _median_us(f, calls: int, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        t = time.process_time()
        for i in range(calls):
            f(i)
        runs.append((time.process_time() - t) / calls * 1e6)
    return statistics.median(runs)


def small_calls(replicas=(1, 64), calls: int = 500) -> list[dict]:
    """One row per replica count (figures in CPU microseconds per call)."""
    from pbitsim import Couplings, models
    from pbitsim.sampling import open_runner

    c = models.lattice_2d(10, beta=0.44)
    rng = np.random.default_rng(0)
    datas = [c.data * (1 + 0.01 * rng.standard_normal()) for _ in range(calls)]

    def fresh(i):  # what a training step builds: new arrays, the same graph
        return Couplings(c.indptr.copy(), c.indices.copy(), datas[i], c.h, c.beta, c.coloring)

    def one(R: int) -> dict:
        from pbitsim.sim import gibbs

        r = open_runner(c, "chromatic", R, seed=1)
        r.draw(10)
        # the sweeps on the calling thread, as the short calls run (a 2000-sweep call would
        # otherwise go to the thread pool, whose CPU time is not the short call's)
        saved, gibbs._ONE_THREAD_BELOW = gibbs._ONE_THREAD_BELOW, 1 << 62
        try:
            sweep = _median_us(lambda i: r.advance(2000), 1) / 2000
        finally:
            gibbs._ONE_THREAD_BELOW = saved
        built = [fresh(i) for i in range(calls)]
        row = {
            "replicas": R,
            "sweeps10": 10 * sweep,
            "build": _median_us(fresh, calls),
            "replace": _median_us(lambda i: c.replace(data=datas[i]), calls),
            "load": _median_us(lambda i: r.load(built[i]), calls),
            "draw": _median_us(lambda i: r.draw(10), calls),
            "total": _median_us(lambda i: (r.load(fresh(i)), r.draw(10)), calls),
        }
        # what a PCD step does (pbitsim train): the spins only, no energies
        r.record_energies = False
        row["draw_spins"] = _median_us(lambda i: r.draw(10), calls)
        row["total_spins"] = _median_us(lambda i: (r.load(fresh(i)), r.draw(10)), calls)
        row["beyond"] = row["total"] - row["sweeps10"]
        row["beyond_spins"] = row["total_spins"] - row["sweeps10"]
        r.close()
        return row

    return [one(R) for R in replicas]


def short_call_threads(calls: int = 300) -> dict:
    """Wall microseconds of a 5-step call of 64 replicas of the 100-spin lattice, run on the
    calling thread (the rule for short calls) and forced onto 2 threads."""
    import numba

    from pbitsim import models
    from pbitsim.sampling import open_runner
    from pbitsim.sim import gibbs

    c = models.lattice_2d(10, beta=0.44)
    out = {}
    for name, below in (("one thread", gibbs._ONE_THREAD_BELOW), ("two threads", 0)):
        saved = gibbs._ONE_THREAD_BELOW
        gibbs._ONE_THREAD_BELOW = below
        try:
            r = open_runner(c, "chromatic", 64, seed=1)
            r.draw(5)
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(calls):
                    r.draw(5)
                runs.append((time.perf_counter() - t) / calls * 1e6)
            out[name] = statistics.median(runs)
        finally:
            gibbs._ONE_THREAD_BELOW = saved
    out["threads"] = numba.get_num_threads()
    return out


#: where a function's cumulative time is counted in the train profile (first match wins)
BUCKETS = (
    ("sampling (load + draw)", ("learn.py", "_draw")),
    ("diagnostics (tau_int, Q)", ("learn.py", "_gradient_taus")),
    ("log-likelihood (exact, 2^16 hidden states)", ("learn.py", "_likelihood")),
    ("gradient statistics", ("learn.py", "data_statistics")),
    ("plots", ("plots.py", "plot_training")),
    ("data (scikit-learn digits)", ("train.py", "load_data")),
)


def train_profile(out_dir: str) -> tuple[float, float, dict[str, float]]:
    """(wall s, CPU s, {bucket: cumulative CPU s}) of ``pbitsim train --out out_dir`` in this
    process (imports of pbitsim's own modules included in the total)."""
    import cProfile
    import pstats
    import sys

    from pbitsim.cli import main

    prof = cProfile.Profile(time.process_time)
    argv = sys.argv
    sys.argv = ["pbitsim", "train", "--out", out_dir, "--no-progress"]
    w, t = time.perf_counter(), time.process_time()
    try:
        prof.runcall(main, standalone_mode=False)
    finally:
        sys.argv = argv
    wall, cpu = time.perf_counter() - w, time.process_time() - t
    stats = pstats.Stats(prof).stats
    found = {}
    for name, (path, func) in BUCKETS:
        found[name] = max(
            (v[3] for (f, _, fn), v in stats.items() if f.endswith(path) and fn == func),
            default=0.0,
        )
    return wall, cpu, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", action="store_true", help="also profile pbitsim train's default")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("held runner, 100-spin lattice, CPU us per call (median of 5 x 500 calls):")
    for r in small_calls():
        print(
            f"  R={r['replicas']:>3}: 10 sweeps {r['sweeps10']:.1f}, build {r['build']:.1f} "
            f"(replace {r['replace']:.1f}), load {r['load']:.1f}, draw(10) {r['draw']:.1f} "
            f"(spins only {r['draw_spins']:.1f})\n"
            f"         build+load+draw {r['total']:.1f} = {r['beyond']:.1f} beyond the sweeps; "
            f"spins only (PCD) {r['total_spins']:.1f} = {r['beyond_spins']:.1f} beyond"
        )
    t = short_call_threads()
    print(
        f"5-step call, 64 replicas, wall us: one thread {t['one thread']:.0f}, "
        f"{t['threads']} threads {t['two threads']:.0f}"
    )
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.train:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, found = train_profile(tmp)
        print(f"pbitsim train (defaults): {wall:.1f} s wall, {cpu:.1f} s CPU")
        for name, s in found.items():
            print(f"  {name}: {s:.2f} CPU s")
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
