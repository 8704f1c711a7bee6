"""Spin updates per nanosecond of pbitsim's samplers and of their peers, in one process.

    python benchmarks/bench_throughput.py [--quick] [--write TABLE.md]

Workloads: (a) 128x128 periodic lattice, J = 1, beta = 0.44; (b) random 3-regular graph,
n = 16384, J = +-1, beta = 0.5; (c) dense Sherrington-Kirkpatrick, n = 1024, beta = 1.
Work = n * chains * sweeps spin updates of ``Runner.advance`` (no recording). Peers, in the same
process: dwave-neal at fixed beta (``beta_range=(b, b)``; Metropolis, its default), thrml 0.1.4
block Gibbs on JAX CPU (1 chain, and 64 chains under ``jax.vmap``; compilation excluded) and a
vectorised NumPy checkerboard (lattice only). The asynchronous model (``method="async"``,
poisson, p = 0.1: ten ticks per step) runs beside the chromatic kernel with the same replicas, and
its rate is given as a ratio to it. ``--quick`` runs every case a ratio in
``docs/performance.md`` is quoted for (thrml's 64 chains included), with less work per point.

Each point records wall time and process CPU time (all threads), median of three runs after a
warm-up run. The machine may be shared: wall-clock rates then drop with other people's load, but
work per CPU-second does not (much). So the table reports, per sampler, flips per wall-ns as
measured, flips per CPU-ns (per core busy), and an idle-machine estimate: flips per CPU-ns times
the cores the sampler keeps busy (CPU/wall on its run, at most the core count). Ratios to the
peers use the idle-machine estimates. Also: wall time of a first ``pbitsim.sample`` of a 100-spin
model in a fresh Python process with a warm Numba cache; what a small call costs beyond its spin
updates (``bench_small_calls.py``); loading and sampling a 10^6-spin model
(``bench_large_models.py``); the hardware-faithful model at 64 replicas
(``bench_hardware_model.py``). The machine line is read from the machine (``/proc/cpuinfo``,
``lscpu``), never typed in.

A peer that is not installed (dwave-neal, thrml: the ``[bench]`` extra) is skipped with a note,
and the ratios to it are left out.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmarks

from pbitsim import models  # noqa: E402
from pbitsim.sampling import get_method  # noqa: E402

SCHEMES = ("chromatic", "sequential", "random-scan")
#: the asynchronous model's options in the table (the method's defaults)
ASYNC = {"mode": "poisson", "p": 0.1}


def workloads(quick: bool) -> dict:
    w = {
        "lattice 128x128": models.lattice_2d(128, beta=0.44),
        "3-regular n=16384": models.random_regular(16384, 3, weights="pm1", beta=0.5),
    }
    if not quick:
        w["SK n=1024"] = models.sherrington_kirkpatrick(1024, beta=1.0)
    return w


class Rate:
    """Throughput of one sampler on one workload."""

    def __init__(self, flips: float, wall: float, cpu: float, cores_busy: float | None = None):
        self.wall_rate = flips / wall / 1e9
        self.cpu_rate = flips / cpu / 1e9
        busy = cpu / wall if cores_busy is None else cores_busy
        self.cores = min(max(busy, 1.0), os.cpu_count() or 1)
        self.idle_rate = self.cpu_rate * self.cores


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of fn() over ``repeats`` calls, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def paired_rates(c, replicas: int, first, second, steps: tuple[int, int], repeats: int) -> dict:
    """Two runners timed as pairs (``first`` then ``second``, back to back, so both see nearly
    the same load) after a warm-up call of each: medians over the pairs of flips per wall-ns and
    per CPU-ns of each, and of the per-pair ratios second / first of the wall and CPU rates."""

    def pair(s1: int, s2: int) -> tuple[float, ...]:
        out = []
        for runner, k in ((first, s1), (second, s2)):
            w, t = time.perf_counter(), time.process_time()
            runner.advance(k)
            out += [time.perf_counter() - w, time.process_time() - t]
        return tuple(out)

    pair(2, 2)  # compilation, first touch
    pairs = [pair(*steps) for _ in range(repeats)]
    f1, f2 = (c.n * replicas * k / 1e9 for k in steps)
    med = statistics.median
    return {
        "first wall": med(f1 / p[0] for p in pairs),
        "first cpu": med(f1 / p[1] for p in pairs),
        "second wall": med(f2 / p[2] for p in pairs),
        "second cpu": med(f2 / p[3] for p in pairs),
        "ratio wall": med((f2 / p[2]) / (f1 / p[0]) for p in pairs),
        "ratio cpu": med((f2 / p[3]) / (f1 / p[1]) for p in pairs),
    }


def sweeps_for(c, chains: int, work: float) -> int:
    per_update = c.nnz / c.n + 4  # dense models cost per coupling, sparse ones per site
    return max(2, int(work / (c.n * chains * per_update / 8)))


def pbitsim_rate(c, method: str, replicas: int, work: float, repeats: int) -> Rate:
    from numba import get_num_threads

    options = ASYNC if method == "async" else {}
    runner = get_method(method)(c, replicas=replicas, seed=1, **options)
    sweeps = sweeps_for(c, replicas, work / (8 if method == "async" else 1))
    wall, cpu = timed(lambda: runner.advance(sweeps), repeats)
    # the kernels never wait for each other: they keep min(threads, blocks) cores busy
    busy = min(get_num_threads(), replicas)
    if method != "async":
        blocks, _ = runner._plan(runner._threads(sweeps))
        busy = min(get_num_threads(), len(blocks) - 1)
    return Rate(c.n * replicas * sweeps, wall, cpu, busy)


def neal_rate(c, work: float, repeats: int) -> Rate:
    from neal import SimulatedAnnealingSampler

    bqm = c.to_bqm()  # E_bqm = -(J s s + h s): neal's sign is opposite to J, so pass -J
    sampler = SimulatedAnnealingSampler()
    sweeps = sweeps_for(c, 1, work / 4)
    wall, cpu = timed(
        lambda: sampler.sample(
            bqm,
            beta_range=(c.beta, c.beta),
            num_sweeps=sweeps,
            num_reads=1,
            beta_schedule_type="linear",
            seed=1,
        ),
        repeats,
    )
    return Rate(c.n * sweeps, wall, cpu, 1.0)


def thrml_rate(c, chains: int, work: float, repeats: int) -> tuple[Rate, float]:
    """(rate, compile seconds) of thrml block Gibbs over the colour classes."""
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
    wall, cpu = timed(lambda: jax.block_until_ready(run(*args)), repeats)
    return Rate(c.n * chains * sweeps, wall, cpu), compile_s


def ratio(r: Rate, ref: Rate | None) -> float | None:
    """r's idle-machine rate over a peer's (None when the peer was skipped)."""
    return None if ref is None else r.idle_rate / ref.idle_rate


def numpy_checkerboard_rate(c, side: int, work: float, repeats: int) -> Rate:
    rng = np.random.default_rng(0)
    s = rng.choice([-1.0, 1.0], (side, side))
    black = (np.add.outer(np.arange(side), np.arange(side)) % 2) == 0
    sweeps = sweeps_for(c, 1, work / 8)

    def run():
        nonlocal s
        for _ in range(sweeps):
            for mask in (black, ~black):
                field = np.roll(s, 1, 0) + np.roll(s, -1, 0) + np.roll(s, 1, 1) + np.roll(s, -1, 1)
                p_up = 0.5 * (1 + np.tanh(c.beta * field))
                s = np.where(mask, np.where(rng.random(s.shape) < p_up, 1.0, -1.0), s)

    wall, cpu = timed(run, repeats)
    return Rate(side * side * sweeps, wall, cpu, 1.0)


def first_sample_seconds() -> float:
    """Wall time of import + first sample() of a 100-spin model in a fresh process (2nd run:
    the Numba cache is warm)."""
    code = (
        "import time; t = time.perf_counter(); import pbitsim; from pbitsim import models; "
        "pbitsim.sample(models.lattice_2d(10), 100, seed=1); print(time.perf_counter() - t)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    return float(runs[-1].stdout)


#: peers by import name: (what they are called in the table, the module to look for)
PEERS = {"neal": "dwave-neal", "thrml": "thrml"}


def missing_peers() -> dict[str, str]:
    """Peers that cannot be imported here, each with the note to print."""
    from importlib.util import find_spec

    hint = "install the peers with pip install -e '.[bench]'"
    return {
        module: f"skipped {name}: not installed ({hint})"
        for module, name in PEERS.items()
        if find_spec(module) is None
    }


def cpu_description() -> str:
    """The CPU as the machine reports it: model name, family/model/stepping, the vector units the
    kernels can use, caches, and the hypervisor if any (``/proc/cpuinfo`` and ``lscpu``)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (x.strip() for x in line.split(":", 1))
                    info.setdefault(key, value)
                if not line.strip() and info:
                    break
    except OSError:
        return platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    units = [
        u for u, f in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX", "amx_tile")) if f in flags
    ]
    parts = [
        info.get("model name", platform.machine()),
        f"family {info.get('cpu family', '?')} model {info.get('model', '?')} stepping "
        f"{info.get('stepping', '?')}",
        "/".join(units) or "no AVX2",
    ]
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        found = dict(
            (k.strip(), v.strip())
            for k, v in (x.split(":", 1) for x in lscpu.splitlines() if ":" in x)
        )
        for key in ("L2 cache", "L3 cache"):
            if key in found:
                parts.append(f"{key.split()[0]} {found[key]}")
        if "Hypervisor vendor" in found:
            parts.append(f"{found['Hypervisor vendor']} guest")
    except (OSError, subprocess.SubprocessError):
        pass
    return ", ".join(parts)


def machine() -> str:
    import numba

    return (
        f"{cpu_description()}; {os.cpu_count()} cores, Python {platform.python_version()}, numba "
        f"{numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}"
    )


def extra_sections(loads: list[float]) -> str:
    """Small calls, large models and the hardware model (the other benchmarks' figures), as
    markdown."""
    import bench_large_models as large
    import bench_small_calls as small

    out = [
        "Small calls, held chromatic runner, 100-spin lattice, CPU us per call (median of 5 x "
        "500 calls): build = `Couplings(...)` from fresh arrays of the same graph, load = "
        "`runner.load`, draw = `runner.draw(10)` with each draw's energy (as `sample` records) "
        "and with the spins only (`record_energies = False`, what `pbitsim train`'s PCD steps "
        "draw); the 10 sweeps run on the calling thread, as a short call does.",
        "",
        "| replicas | 10 sweeps | build | load | draw(10) | build + load + draw | beyond the "
        "sweeps | spins only: draw(10) | build + load + draw | beyond the sweeps |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in small.small_calls():
        out.append(
            f"| {r['replicas']} | {r['sweeps10']:.1f} | {r['build']:.1f} | {r['load']:.1f} | "
            f"{r['draw']:.1f} | {r['total']:.1f} | {r['beyond']:.1f} | {r['draw_spins']:.1f} | "
            f"{r['total_spins']:.1f} | **{r['beyond_spins']:.1f}** |"
        )
    t = small.short_call_threads()
    out += [
        "",
        f"A 5-step call of 64 replicas (wall us, median): {t['one thread']:.0f} on the calling "
        f"thread, {t['two threads']:.0f} when forced onto {t['threads']} threads.",
        "",
        "| 10^6-spin model | construct CPU s | save CPU s | load CPU s (wall) | load peak / CSR "
        "| chromatic 10^6 / 10^4, 1 replica | 64 replicas |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    loads.append(load())
    for kind in ("lattice", "bipartite"):  # both in --quick: the docs quote both ratios
        c = large.lattice(1000) if kind == "lattice" else large.bipartite_regular(10**6)
        f = large.file_figures(c)
        scale = {R: ratio_ for _, R, _, _, ratio_ in large.scaling(kind)}
        name = "lattice 1000x1000" if kind == "lattice" else "random bipartite 3-regular"
        out.append(
            f"| {name} | {f['construct'][1]:.2f} | {f['save'][1]:.2f} | {f['load'][1]:.2f} "
            f"({f['load'][0]:.2f}) | {f['peak_mb'] / f['csr_mb']:.2f} | {scale[1]:.2f} | "
            f"{scale[64]:.2f} |"
        )
    loads.append(load())
    out += hardware_model_rows()
    loads.append(load())
    return "\n".join(out)


def hardware_model_rows() -> list[str]:
    """The hardware-faithful model against the chromatic kernel at 64 replicas, every schedule,
    on the lattice, and the floor of "async-random" (``bench_hardware_model.py`` has the full
    table)."""
    import bench_hardware_model as hm

    name, c = next(iter(hm.workloads(True).items()))
    out = [
        "",
        f"Hardware-faithful model against the chromatic kernel, 64 replicas, {name} (paired "
        "wall ratios, median of 3; `bench_hardware_model.py` for 1 and 8 replicas and the "
        "3-regular graph):",
        "",
        "| design | schedule | hardware flips/CPU-ns | x chromatic |",
        "|---|---|---:|---:|",
    ]
    chromatic = []
    for preset in hm.PRESETS:
        for schedule in hm.SCHEDULES:
            r = hm.measure(c, preset, schedule, 64, 3e7, 3)
            out.append(f"| {preset} | {schedule} | {r['hardware cpu']:.3f} | {r['ratio']:.2f} |")
            chromatic.append(r["chromatic cpu"])
    return out + [""] + hm.floor_rows(statistics.median(chromatic))


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="less work, no SK, no 256 replicas: every ratio the docs quote, ~5 min",
    )
    ap.add_argument("--write", metavar="MD", help="also write the table to this markdown file")
    args = ap.parse_args()
    work = 3e7 if args.quick else 2e8
    repeats = 3
    replica_counts = (1, 64) if args.quick else (1, 64, 256)
    header = machine()
    loads = [load()]
    print(header, flush=True)
    rows = []  # (workload, sampler, chains, Rate, x neal, x thrml, x chromatic)
    missing = missing_peers()
    for note in missing.values():
        print(note, flush=True)
    for name, c in workloads(args.quick).items():
        neal = None if "neal" in missing else neal_rate(c, work, repeats)
        thrml = {}
        # n colour classes on SK: thrml would compile one block per spin
        if name != "SK n=1024" and "thrml" not in missing:
            for chains in (1, 64):
                thrml[chains], compile_s = thrml_rate(c, chains, work, repeats)
                print(
                    f"{name}: thrml x{chains} {thrml[chains].idle_rate:.4f} "
                    f"(compile {compile_s:.1f} s)",
                    flush=True,
                )
        peers = [] if neal is None else [("dwave-neal (Metropolis, fixed beta)", 1, neal)]
        peers += [("thrml block Gibbs, JAX CPU", k, v) for k, v in thrml.items()]
        if name.startswith("lattice"):
            peers.append(("NumPy checkerboard", 1, numpy_checkerboard_rate(c, 128, work, repeats)))
        rows += [(name, s, k, r, ratio(r, neal), None, None) for s, k, r in peers]
        chromatic = {}
        for method in (*SCHEMES, "async"):
            for R in replica_counts:
                r = pbitsim_rate(c, method, R, work, repeats)
                if method == "chromatic":
                    chromatic[R] = r
                ref = thrml.get(1 if R == 1 else 64)
                label = f"pbitsim {method}" + (" (poisson, p = 0.1)" if method == "async" else "")
                # per-core rates against the chromatic kernel's in this run (same replicas)
                per_core = None if method == "chromatic" else r.cpu_rate / chromatic[R].cpu_rate
                rows.append((name, label, R, r, ratio(r, neal), ratio(r, ref), per_core))
                print(
                    f"{name}: {method} R={R} wall {r.wall_rate:.4f} idle {r.idle_rate:.4f}",
                    flush=True,
                )
        loads.append(load())
    first = first_sample_seconds()
    lines = [
        "| workload | sampler | chains | flips/ns wall | flips/CPU-ns | cores | flips/ns idle "
        "| x neal | x thrml | x chromatic (per core) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sampler, chains, r, rn, rt, rc in rows:
        rn_s = f"{rn:.1f}" if rn is not None else "-"
        rt_s = f"{rt:.1f}" if rt is not None else "-"
        rc_s = f"{rc:.2f}" if rc is not None else "-"
        lines.append(
            f"| {name} | {sampler} | {chains} | {r.wall_rate:.3g} | {r.cpu_rate:.3g} | "
            f"{r.cores:.1f} | {r.idle_rate:.3g} | {rn_s} | {rt_s} | {rc_s} |"
        )
    table = "\n".join(lines) + "\n\n" + extra_sections(loads)
    notes = (
        f"Load average (1 min) during the run: {', '.join(f'{x:.1f}' for x in loads)} on "
        f"{os.cpu_count()} cores. First `pbitsim.sample()` of a 100-spin model in a fresh "
        f"process, warm Numba cache, import included: {first:.2f} s."
    )
    if missing:
        notes += " " + " ".join(f"{note[0].upper()}{note[1:]}." for note in missing.values())
    print(f"\n{table}\n\n{notes}")
    if args.write:
        with open(args.write, "w") as f:
            cmd = "benchmarks/bench_throughput.py" + " --quick" * args.quick
            f.write(f"<!-- written by {cmd} -->\n\nMachine: {header}\n\n{table}\n\n{notes}\n")


if __name__ == "__main__":
    main()
