"""Spin updates per nanosecond of ``gpu-chromatic`` beside the CPU chromatic kernels, with the
device's memory-bandwidth and arithmetic bounds for the kernel.

    python benchmarks/bench_gpu.py [--quick] [--kernels fused,colour] [--no-cpu] [--write MD]

Where no CUDA GPU is usable (no numba-cuda, no driver, or only the CUDA simulator) it prints one
line saying so and exits with status 0. ``--smoke`` runs two tiny workloads even on the simulator,
to check the script itself (its figures then mean nothing).

Workloads: random 3-regular graphs (configuration model, +-1 couplings, beta 0.5) from 2^14 to
2^22 p-bits, a periodic 2D lattice (128^2 and 2048^2, beta 0.44) and a dense RBM-shaped bipartite
graph (784 visible x 256 hidden, the MNIST shape). Work = n * replicas * sweeps updates of
``Runner.advance`` (no recording), timed after a warm-up call (compilation) with the GPU
synchronised, median of 3. The CPU column is ``method="chromatic"`` in the same process (every
core Numba sees).

Bounds, per flip (d = padded neighbour entries per site, R = replicas), in flips per ns:

* memory: bytes moved to and from GPU memory if every spin row is fetched once per step (the
  neighbours' rows then come from cache): the spin written and read (2 B), the stream states
  (16 B read and written per 32 updates: 1 B), and the site's CSR row (ptr 8 B, h 4 B, and 8 B
  per entry) once per step for all replicas: 3 + (12 + 8 d) / R bytes, at the measured
  device-to-device copy bandwidth;
* arithmetic, essential: what a flip must compute, one xoshiro128+ step (8 integer
  instructions), the rational tanh and the decision (18 FP32 instructions, 1 int-to-float
  conversion) and d adds (the GPU adds +-J instead of the CPU's multiply-add by s = +-1: the same
  bits, no conversion per neighbour), at the per-SM throughputs of the CUDA programming guide for
  compute capability 8.x/9.x (128 FP32, 64 INT32, 16 conversions per clock), the slowest pipe;
* arithmetic, as compiled: the instructions the kernel issues per flip, 68 + 12.75 d (counted in
  the sm_90 disassembly of ``chromatic_colour``, ptxas 13.5: address arithmetic, loop control and
  the generator's 64-bit words make most of them), at 128 instructions per clock per SM.

The last column compares the measured rate with the lowest of the memory and as-compiled bounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numba
import numpy as np

#: per-SM instructions per clock (CUDA C++ Programming Guide, arithmetic instructions, cc 8.x/9.x)
FP32_PER_CLOCK, INT32_PER_CLOCK, CVT_PER_CLOCK, ISSUE_PER_CLOCK = 128, 64, 16, 128


def essential_clocks(d: float) -> float:
    """SM clocks per flip of the essential work on its slowest pipe."""
    return max((18 + d) / FP32_PER_CLOCK, 8 / INT32_PER_CLOCK, 1 / CVT_PER_CLOCK)


def compiled_clocks(d: float) -> float:
    """SM clocks per flip to issue the kernel's instructions (sm_90 disassembly count)."""
    return (68 + 12.75 * d) / ISSUE_PER_CLOCK


def bytes_per_flip(d: float, replicas: int) -> float:
    return 3 + (12 + 8 * d) / replicas


# -- workloads (built with numpy: the models module's Python loops are slow at 2^22 sites) -------


@numba.njit(cache=True)
def _greedy_colouring(indptr, indices):
    """Smallest free colour, sites in index order (a proper colouring; degree < 64)."""
    n = indptr.shape[0] - 1
    col = np.full(n, -1, np.int32)
    used = np.zeros(64, np.int64)
    for v in range(n):
        for k in range(indptr[v], indptr[v + 1]):
            c = col[indices[k]]
            if c >= 0:
                used[c] = v + 1
        c = 0
        while used[c] == v + 1:
            c += 1
        col[v] = c
    return col


def _from_pairs(n, i, j, w, beta, coloring=None):
    import scipy.sparse as sp

    from pbitsim.couplings import Couplings

    m = sp.coo_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    m.sort_indices()
    if coloring is None:
        coloring = _greedy_colouring(m.indptr.astype(np.int64), m.indices.astype(np.int64))
    return Couplings(m.indptr, m.indices, m.data, None, beta, coloring=coloring)


def regular3(n: int, seed: int = 0):
    """Random 3-regular graph by the configuration model; self-loops and repeated edges dropped
    (a few per million edges: those sites keep degree 2)."""
    rng = np.random.default_rng(seed)
    stubs = rng.permutation(np.repeat(np.arange(n), 3)).reshape(-1, 2)
    stubs = stubs[stubs[:, 0] != stubs[:, 1]]
    pairs = np.unique(np.sort(stubs, axis=1), axis=0)
    w = rng.choice([-1.0, 1.0], len(pairs))
    return _from_pairs(n, pairs[:, 0], pairs[:, 1], w, 0.5)


def lattice(side: int):
    """Periodic side x side lattice, J = 1, checkerboard colouring (side even)."""
    idx = np.arange(side * side).reshape(side, side)
    i = np.r_[idx.ravel(), idx.ravel()]
    j = np.r_[np.roll(idx, -1, axis=1).ravel(), np.roll(idx, -1, axis=0).ravel()]
    rows, cols = np.divmod(np.arange(side * side), side)
    return _from_pairs(side * side, i, j, np.ones(len(i)), 0.44, (rows + cols) % 2)


def rbm(nv: int, nh: int, seed: int = 0):
    """Dense bipartite RBM-shaped model, J ~ N(0, 0.05^2), visible/hidden colouring."""
    rng = np.random.default_rng(seed)
    i = np.repeat(np.arange(nv), nh)
    j = nv + np.tile(np.arange(nh), nv)
    w = rng.normal(0.0, 0.05, nv * nh)
    return _from_pairs(nv + nh, i, j, w, 1.0, np.r_[np.zeros(nv, int), np.ones(nh, int)])


def workloads(quick: bool, smoke: bool) -> list[tuple[str, object, tuple[int, ...]]]:
    if smoke:
        return [("3-regular n=64", regular3(64), (1, 3)), ("rbm 6x4", rbm(6, 4), (2,))]
    if quick:
        return [
            ("3-regular n=2^14", regular3(2**14), (1, 1024, 8192)),
            ("3-regular n=2^20", regular3(2**20), (1, 64)),
            ("lattice 128x128", lattice(128), (1024,)),
            ("rbm 784x256", rbm(784, 256), (64, 1024)),
        ]
    return [
        ("3-regular n=2^14", regular3(2**14), (1, 64, 1024, 8192)),
        ("3-regular n=2^18", regular3(2**18), (1, 64, 1024)),
        ("3-regular n=2^22", regular3(2**22), (1, 64)),
        ("lattice 128x128", lattice(128), (1, 64, 1024, 8192)),
        ("lattice 2048x2048", lattice(2048), (1, 64)),
        ("rbm 784x256", rbm(784, 256), (1, 64, 1024)),
    ]


# -- measuring ----------------------------------------------------------------------------------


def median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rate(runner, n: int, replicas: int, sync, target: float) -> float:
    """Flips per ns of runner.advance, with about ``target`` seconds per timed call."""

    def run(k):
        runner.advance(k)
        sync()

    run(1)  # compilation, first transfers
    one = median_seconds(lambda: run(1), 1)
    sweeps = int(max(1, min(10_000, target / max(one, 1e-6))))
    return n * replicas * sweeps / median_seconds(lambda: run(sweeps)) / 1e9


def copy_bandwidth(cuda) -> float:
    """Bytes per second of a device-to-device copy of 1 GiB (counting bytes read and written)."""
    size = 1 << 30
    a = cuda.device_array(size, np.uint8)
    b = cuda.device_array(size, np.uint8)
    b.copy_to_device(a)
    cuda.synchronize()

    def copy():
        b.copy_to_device(a)
        cuda.synchronize()

    return 2 * size / median_seconds(copy, 5)


def device_summary(cuda) -> dict:
    dev = cuda.get_current_device()
    sms = int(dev.MULTIPROCESSOR_COUNT)
    clock = int(dev.CLOCK_RATE) * 1e3  # kHz
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return {
        "name": name,
        "cc": dev.compute_capability,
        "sms": sms,
        "clock_hz": clock,
        "copy_bw": copy_bandwidth(cuda),
    }


def bounds(dev: dict, d: float, replicas: int) -> tuple[float, float, float]:
    """(memory, essential arithmetic, as-compiled arithmetic) bounds in flips per ns."""
    per_ns = dev["sms"] * dev["clock_hz"] / 1e9
    mem = dev["copy_bw"] / bytes_per_flip(d, replicas) / 1e9
    return mem, per_ns / essential_clocks(d), per_ns / compiled_clocks(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and smaller workloads (~2 min)")
    ap.add_argument(
        "--kernels", default="fused,colour", help="comma-separated gpu-chromatic kernels"
    )
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU kernels")
    ap.add_argument("--smoke", action="store_true", help="tiny run, allowed on the simulator")
    ap.add_argument("--write", metavar="MD", help="also write the table to this markdown file")
    args = ap.parse_args()

    from pbitsim.sim.gpu import gpu_problem

    problem = gpu_problem()
    if problem is None and not args.smoke:
        from pbitsim.sim.gpu_kernels import simulating

        if simulating():
            problem = "the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1), not a GPU"
    if problem is not None:
        print(f"bench_gpu: no GPU here, nothing measured: {problem}")
        return 0

    from numba import cuda, get_num_threads

    from pbitsim.sampling import get_method
    from pbitsim.sim.gpu_kernels import simulating

    if simulating():
        dev = {"name": "CUDA simulator", "cc": (0, 0), "sms": 1, "clock_hz": 1e9, "copy_bw": 1e9}
    else:
        dev = device_summary(cuda)
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    target = 0.02 if args.smoke else 0.3
    header = (
        f"{dev['name']} (compute capability {dev['cc'][0]}.{dev['cc'][1]}, {dev['sms']} SMs at "
        f"{dev['clock_hz'] / 1e9:.2f} GHz, device copy {dev['copy_bw'] / 1e12:.2f} TB/s); "
        f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{get_num_threads()} Numba threads; Python {platform.python_version()}"
    )
    print(header, flush=True)
    lines = [
        "| workload | d | replicas | kernel | GPU flips/ns | CPU flips/ns | GPU/CPU "
        "| memory bound | arithmetic bound, essential | as compiled | % of the lower bound |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c, replica_counts in workloads(args.quick, args.smoke):
        for R in replica_counts:
            cpu_rate = None
            if not args.no_cpu:
                runner = get_method("chromatic")(c, replicas=R, seed=1)
                cpu_rate = rate(runner, c.n, R, lambda: None, target)
                runner.close()
            for kernel in kernels:
                runner = get_method("gpu-chromatic")(c, replicas=R, seed=1, kernel=kernel)
                d = runner._layout.arrays[0][-1] / c.n  # padded entries per site
                gpu_rate = rate(runner, c.n, R, cuda.synchronize, target)
                runner.close()
                mem, essential, compiled = bounds(dev, d, R)
                ratio = f"{gpu_rate / cpu_rate:.3g}" if cpu_rate else "-"
                cpu_s = f"{cpu_rate:.3g}" if cpu_rate else "-"
                lines.append(
                    f"| {name} | {d:.1f} | {R} | {kernel} | {gpu_rate:.4g} | {cpu_s} | {ratio} "
                    f"| {mem:.4g} | {essential:.4g} | {compiled:.4g} "
                    f"| {100 * gpu_rate / min(mem, compiled):.0f}% |"
                )
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(f"\n{table}")
    if args.write:
        with open(args.write, "w") as f:
            cmd = "benchmarks/bench_gpu.py" + " --quick" * args.quick
            f.write(f"<!-- written by {cmd} -->\n\nMachine: {header}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
