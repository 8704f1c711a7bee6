"""Flips per CPU-ns of the asynchronous model beside the chromatic kernel, in one process.

    python benchmarks/bench_async.py [--quick] [--replicas 1 64] [--repeats 5] [--layouts 2 1]

``method="async"`` (:mod:`pbitsim.sim.async_`, mode "poisson", p = 0.1: the method's defaults)
in each stream layout asked for (2, the default, draws each tick's firings afresh; 1 keeps
per-p-bit waiting times) and ``method="chromatic"`` with the same replicas, on the workloads
of ``bench_throughput.py`` (the 128x128 lattice and the random 3-regular graph of n = 16384).
Work = n * replicas * steps spin updates of ``Runner.advance`` (an async step is round(1/p)
ticks, in which each p-bit fires once on average). Each point is timed as pairs, the chromatic
kernel then the async model, after a warm-up call of each (compilation, first touch); the table
gives the medians over the pairs of flips per CPU-ns (``time.process_time``: the machine's two
cores are shared, so CPU time and same-process ratios, not wall time) and of the per-pair ratio
async / chromatic. The load
average is printed before and after each point.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmarks

from bench_throughput import (  # noqa: E402
    ASYNC,
    load,
    machine,
    paired_rates,
    sweeps_for,
    workloads,
)

from pbitsim.sampling import get_method  # noqa: E402

HEADER = (
    "| workload | replicas | stream layout | chromatic flips/CPU-ns | async flips/CPU-ns "
    "| x chromatic | load |"
)


def measure(c, replicas: int, work: float, repeats: int, layout: int) -> dict:
    """Median flips per CPU-ns of both samplers and of the paired ratio."""
    chromatic = get_method("chromatic")(c, replicas=replicas, seed=1)
    asynchronous = get_method("async")(c, replicas=replicas, seed=1, stream_layout=layout, **ASYNC)
    steps_c = sweeps_for(c, replicas, work)
    steps_a = max(2, sweeps_for(c, replicas, work / 4))  # an async step costs more
    r = paired_rates(c, replicas, chromatic, asynchronous, (steps_c, steps_a), repeats)
    asynchronous.close()
    chromatic.close()
    return {"chromatic": r["first cpu"], "async": r["second cpu"], "ratio": r["ratio cpu"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="less work per call, three pairs")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=None, help="pairs per point (default 5)")
    ap.add_argument("--layouts", type=int, nargs="+", default=[2, 1], help="stream layouts")
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    work = 2e7 if args.quick else 6e7
    print(f"# {machine()}")
    print(f"# medians of {repeats} pairs; load average before -> after each row")
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, c in workloads(quick=True).items():
        for replicas in args.replicas:
            for layout in args.layouts:
                before = load()
                row = measure(c, replicas, work, repeats, layout)
                print(
                    f"| {name} | {replicas} | {layout} | {row['chromatic']:.3f} "
                    f"| {row['async']:.4f} | {row['ratio']:.3f} | {before:.2f} -> {load():.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
