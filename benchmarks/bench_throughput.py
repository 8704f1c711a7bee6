"""Spin updates per nanosecond of pbitsim's exact schemes and of their peers, in one process.

    python benchmarks/bench_throughput.py [--quick] [--write docs/performance.md]

Workloads: (a) 128x128 periodic lattice, J = 1, beta = 0.44; (b) random 3-regular graph,
n = 16384, J = +-1, beta = 0.5; (c) dense Sherrington-Kirkpatrick, n = 1024, beta = 1.
Throughput = n * replicas * sweeps / wall seconds of ``Runner.advance`` (no recording), median of
three runs after a warm-up call. Peers, measured in the same process: dwave-neal at fixed beta
(``beta_range=(b, b)``; its own sampling timer; Metropolis, its default), thrml 0.1.4 block Gibbs
on JAX CPU (1 chain, and 64 chains under ``jax.vmap``; compilation excluded) and a vectorised NumPy
checkerboard (lattice only). Also: the wall time of a first ``pbitsim.sample`` of a 100-spin model
in a fresh Python process with a warm Numba cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from pbitsim import models
from pbitsim.sampling import get_method

SCHEMES = ("chromatic", "sequential", "random-scan")


def workloads(quick: bool) -> dict:
    w = {
        "lattice 128x128": models.lattice_2d(128, beta=0.44),
        "3-regular n=16384": models.random_regular(16384, 3, weights="pm1", beta=0.5),
    }
    if not quick:
        w["SK n=1024"] = models.sherrington_kirkpatrick(1024, beta=1.0)
    return w


def timed(fn, repeats: int) -> float:
    """Median wall seconds of fn() over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sweeps_for(c, replicas: int, work: float) -> int:
    per_update = c.nnz / c.n + 4  # dense models cost per coupling, sparse ones per site
    return max(2, int(work / (c.n * replicas * per_update / 8)))


def pbitsim_rate(c, method: str, replicas: int, work: float, repeats: int) -> float:
    runner = get_method(method)(c, replicas=replicas, seed=1)
    sweeps = sweeps_for(c, replicas, work)
    return c.n * replicas * sweeps / timed(lambda: runner.advance(sweeps), repeats) / 1e9


def neal_rate(c, reads: int, work: float, repeats: int) -> float:
    from neal import SimulatedAnnealingSampler

    bqm = c.to_bqm()  # E_bqm = -(J s s + h s): neal's sign is opposite to J, so pass -J
    sampler = SimulatedAnnealingSampler()
    sweeps = sweeps_for(c, reads, work / 4)
    ns = []
    for _ in range(repeats):
        ss = sampler.sample(
            bqm,
            beta_range=(c.beta, c.beta),
            num_sweeps=sweeps,
            num_reads=reads,
            beta_schedule_type="linear",
            seed=1,
        )
        ns.append(ss.info["timing"]["sampling_ns"])
    return c.n * reads * sweeps / statistics.median(ns)


def thrml_rate(c, chains: int, work: float, repeats: int) -> tuple[float, float]:
    """(flips/ns, compile seconds) of thrml block Gibbs over the colour classes."""
    import jax
    import jax.numpy as jnp
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    nodes = [SpinNode() for _ in range(c.n)]
    i, j, w = c.edges()
    model = IsingEBM(
        nodes,
        [(nodes[a], nodes[b]) for a, b in zip(i.tolist(), j.tolist())],
        jnp.asarray(c.h),
        jnp.asarray(w),
        jnp.asarray(c.beta),
    )
    blocks = [Block([nodes[k] for k in cls.tolist()]) for cls in c.color_classes()]
    program = IsingSamplingProgram(model, blocks, clamped_blocks=[])
    sweeps = sweeps_for(c, chains, work / 4)
    schedule = SamplingSchedule(n_warmup=sweeps - 1, n_samples=1, steps_per_sample=1)
    keys = jax.random.split(jax.random.key(0), chains)
    init = hinton_init(jax.random.key(1), model, blocks, (chains,))

    def one(key, state):
        return sample_states(key, program, schedule, state, [], [Block(nodes)])

    run = jax.jit(jax.vmap(one)) if chains > 1 else jax.jit(one)
    args = (keys, init) if chains > 1 else (keys[0], [x[0] for x in init])
    t = time.perf_counter()
    jax.block_until_ready(run(*args))
    compile_s = time.perf_counter() - t
    sec = timed(lambda: jax.block_until_ready(run(*args)), repeats)
    return c.n * chains * sweeps / sec / 1e9, compile_s


def numpy_checkerboard_rate(c, side: int, work: float, repeats: int) -> float:
    rng = np.random.default_rng(0)
    s = rng.choice([-1.0, 1.0], (side, side))
    black = (np.add.outer(np.arange(side), np.arange(side)) % 2) == 0
    sweeps = sweeps_for(c, 1, work / 8)

    def run():
        nonlocal s
        for _ in range(sweeps):
            for mask in (black, ~black):
                field = np.roll(s, 1, 0) + np.roll(s, -1, 0) + np.roll(s, 1, 1) + np.roll(s, -1, 1)
                new = np.where(rng.random(s.shape) < 0.5 * (1 + np.tanh(c.beta * field)), 1.0, -1.0)
                s = np.where(mask, new, s)

    return side * side * sweeps / timed(run, repeats) / 1e9


def first_sample_seconds() -> float:
    """Wall time of import + first sample() of a 100-spin model in a fresh process (2nd run:
    the Numba cache is warm)."""
    code = (
        "import time; t = time.perf_counter(); import pbitsim; from pbitsim import models; "
        "pbitsim.sample(models.lattice_2d(10), 100, seed=1); print(time.perf_counter() - t)"
    )
    out = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    return float(out[-1])


def machine() -> str:
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numba "
        f"{numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}; "
        f"load average {load:.1f} when the run started"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="less work per point, no SK, no peers' 64-chain runs"
    )
    ap.add_argument("--write", metavar="MD", help="also write the table to this markdown file")
    args = ap.parse_args()
    work = 3e7 if args.quick else 2e8
    repeats = 3
    replica_counts = (1, 64) if args.quick else (1, 64, 256)
    header = machine()
    print(header, flush=True)
    rows = []  # (workload, sampler, chains, flips/ns, neal ratio, thrml ratio)
    for name, c in workloads(args.quick).items():
        neal_before = neal_rate(c, 1, work, repeats)
        thrml = {}
        if name != "SK n=1024":  # n colour classes: thrml would compile one block per spin
            for chains in (1,) if args.quick else (1, 64):
                thrml[chains], compile_s = thrml_rate(c, chains, work, repeats)
                print(
                    f"{name}: thrml x{chains} {thrml[chains]:.4f} (compile {compile_s:.1f} s)",
                    flush=True,
                )
        ours = []
        for method in SCHEMES:
            for R in replica_counts:
                ours.append((method, R, pbitsim_rate(c, method, R, work, repeats)))
                print(f"{name}: {method} R={R} {ours[-1][2]:.4f}", flush=True)
        # neal before and after our runs: the machine is shared, so bracket them
        neal1 = (neal_before + neal_rate(c, 1, work, repeats)) / 2
        print(f"{name}: neal {neal_before:.4f} before, {neal1:.4f} mean", flush=True)
        peer_rows = [(name, "dwave-neal (Metropolis, fixed beta)", 1, neal1)]
        peer_rows += [(name, "thrml block Gibbs, JAX CPU", k, v) for k, v in thrml.items()]
        if name.startswith("lattice"):
            peer_rows.append(
                (name, "NumPy checkerboard", 1, numpy_checkerboard_rate(c, 128, work, repeats))
            )
        for row in peer_rows:
            rows.append((*row, row[3] / neal1, None))
        for method, R, r in ours:
            ref = thrml.get(1 if R == 1 else 64)
            rows.append((name, f"pbitsim {method}", R, r, r / neal1, r / ref if ref else None))
    first = first_sample_seconds()
    lines = [
        "| workload | sampler | chains | flips/ns | x neal | x thrml (1 chain vs 1, else vs 64) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, sampler, chains, rate, rn, rt in rows:
        rt_s = f"{rt:.1f}" if rt is not None else "-"
        lines.append(f"| {name} | {sampler} | {chains} | {rate:.3f} | {rn:.1f} | {rt_s} |")
    table = "\n".join(lines)
    print("\n" + table)
    print(
        f"\nfirst pbitsim.sample() of a 100-spin model in a fresh process (warm cache, import "
        f"included): {first:.2f} s"
    )
    if args.write:
        with open(args.write, "w") as f:
            f.write(
                f"<!-- written by benchmarks/bench_throughput.py{' --quick' * args.quick} -->"
                f"\n\nMachine: {header}\n\n{table}\n\nFirst `pbitsim.sample()` of a 100-spin "
                f"model in a fresh process, warm Numba cache, import included: {first:.2f} s"
                "\n"
            )


if __name__ == "__main__":
    main()
