"""The GPU methods against the CPU ones, bit for bit: cases run by ``tests/test_gpu_kernels.py``.

Run in a subprocess, because the CUDA simulator is switched on for a whole process and only
before ``numba.cuda`` is first imported::

    NUMBA_ENABLE_CUDASIM=1 python tests/gpu_cases.py [CASE ...]   # on the CPU (CI)
    python tests/gpu_cases.py [CASE ...]                           # on a CUDA GPU

Each case prints one JSON line ``{"case", "ok", "detail", "seconds"}``. A case compares
``gpu-chromatic`` with ``chromatic`` (samples, energies, PT walker indices and swap statistics) or
``gpu-hardware`` with ``hardware`` / :func:`~pbitsim.sim.hardware.simulate_cycles` (every spin
after every cycle); the ``control-*`` cases check that the comparison can fail. Models are small:
the simulator runs each GPU thread as Python (~70 us per p-bit update here).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import numpy as np

import pbitsim
from pbitsim import models
from pbitsim.couplings import Couplings
from pbitsim.sampling import open_runner

#: threads per block: small blocks keep the simulator's Python threads few
THREADS = 32
INFO_KEYS = ("energies", "walker_index", "swap_acceptance", "swap_attempts", "round_trips")


def _glass(field: float = 0.0, p: float = 0.5) -> Couplings:
    return models.spin_glass(10, p=p, seed=1, field=field, beta=0.8)


def _bipartite_large(n_visible: int = 1030, n_hidden: int = 8, seed: int = 0) -> Couplings:
    """A sparse RBM-shaped model with a colour class of more than 1024 sites (two blocks of
    streams in one colour) and hidden units of high degree."""
    rng = np.random.default_rng(seed)
    edges = []
    for i in range(n_visible):
        for j in rng.choice(n_hidden, 2, replace=False):
            edges.append((i, n_visible + int(j), float(rng.normal(0.0, 0.4))))
    n = n_visible + n_hidden
    coloring = np.r_[np.zeros(n_visible, int), np.ones(n_hidden, int)]
    h = rng.normal(0.0, 0.3, n)
    return Couplings.from_edges(n, edges, h=h, beta=1.0, coloring=coloring)


def differences(a, b) -> list[str]:
    """What differs between two Samples (spins and the info the exact schemes record)."""
    bad = []
    if a.spins.shape != b.spins.shape or not np.array_equal(a.spins, b.spins):
        bad.append(f"spins differ ({int(np.sum(a.spins != b.spins))} of {a.spins.size})")
    for key in INFO_KEYS:
        x, y = a.info.get(key), b.info.get(key)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            same = x is not None and y is not None and np.array_equal(x, y)
        else:
            same = x == y
        if not same:
            bad.append(f"info[{key!r}] differs")
    return bad


def chromatic(c, sweeps, *, seeds=(0,), kernels=("fused", "colour"), threads=THREADS, **kw):
    """gpu-chromatic (each kernel) against chromatic, for each seed."""
    bad = []
    for seed in seeds:
        cpu = pbitsim.sample(c, sweeps, method="chromatic", seed=seed, **kw)
        for kernel in kernels:
            gpu = pbitsim.sample(
                c, sweeps, method="gpu-chromatic", seed=seed, kernel=kernel, threads=threads, **kw
            )
            bad += [f"seed {seed}, {kernel}: {d}" for d in differences(gpu, cpu)]
    return bad


def hardware(c, sweeps, *, seeds=(0,), designs=("default", "published"), **kw):
    """gpu-hardware against hardware (the runner), for each seed and design."""
    bad = []
    for seed in seeds:
        for design in designs:
            cpu = pbitsim.sample(c, sweeps, method="hardware", seed=seed, design=design, **kw)
            gpu = pbitsim.sample(c, sweeps, method="gpu-hardware", seed=seed, design=design, **kw)
            if not np.array_equal(gpu.spins, cpu.spins):
                bad.append(f"seed {seed}, {design}: spins differ")
    return bad


def cycles(c, n_cycles, design, seeds=(0,), initial=None):
    """simulate_cycles_gpu against simulate_cycles: every spin after every cycle."""
    from pbitsim.sim.gpu import simulate_cycles_gpu
    from pbitsim.sim.hardware import simulate_cycles

    bad = []
    for seed in seeds:
        x = simulate_cycles_gpu(c, design, seed, n_cycles, initial=initial)
        y = simulate_cycles(c, design, seed, n_cycles, initial=initial)
        if not np.array_equal(x, y):
            bad.append(f"seed {seed}: {int(np.sum(x != y))} of {x.size} spins differ")
    return bad


def runner_life_cycle(method_gpu, method_cpu, c, c2, rows, **kw):
    """advance, draw with thinning, load new weights, set_state, draw again: the same on both."""
    bad = []
    rng = np.random.default_rng(5)
    with open_runner(c, method_gpu, **kw) as g, open_runner(c, method_cpu, **_cpu_options(kw)) as r:
        draws = []
        for x in (g, r):
            x.advance(3)
            first = x.draw(2, thin=2)
            info = x.draw_info()
            x.load(c2)
            draws.append((first, info))
        s = (2 * rng.integers(0, 2, (rows, c.n)) - 1).astype(np.int8)
        for x in (g, r):
            x.set_state(s)
            draws.append((x.draw(3), x.draw_info()))
        (a1, ai1), (b1, bi1), (a2, ai2), (b2, bi2) = draws
        for what, a, b in (("before load", a1, b1), ("after load and set_state", a2, b2)):
            if not np.array_equal(a, b):
                bad.append(f"{what}: spins differ")
        for what, a, b in (("before", ai1, bi1), ("after", ai2, bi2)):
            for key in set(a) | set(b):
                if not np.array_equal(a.get(key), b.get(key)):
                    bad.append(f"{what}: draw_info[{key!r}] differs")
        if g.info() != r.info() and method_cpu == "chromatic":
            bad.append("info() differs")
    return bad


def _cpu_options(kw: dict) -> dict:
    return {k: v for k, v in kw.items() if k not in ("kernel", "threads")}


def _rescaled(c: Couplings, factor: float, shift: float) -> Couplings:
    """New values on the same topology (what Runner.load takes)."""
    return Couplings(
        c.indptr, c.indices, c.data * factor, c.h + shift, c.beta * 1.3, coloring=c.coloring
    )


# --------------------------------------------------------------------------------------------


def _large():
    c = _bipartite_large()
    assert c.n > 1024 and max(len(x) for x in c.color_classes()) > 1024
    return chromatic(c, 1, replicas=33, threads=64, kernels=("colour", "fused"))


def _design(name: str):
    from pbitsim.sim.hardware import HardwareDesign

    return HardwareDesign.from_name(name)


def _latency_design():
    from pbitsim.sim.hardware import HardwareDesign

    return dataclasses.replace(HardwareDesign.default(), read_latency=2, warmup_edges=1)


def _options():
    """Bad options are refused with the option named; the kernel choice is reported."""
    c = models.ring(6)
    bad = []
    for kw in ({"kernel": "fastest"}, {"threads": 0}, {"threads": 2048}):
        try:
            open_runner(c, "gpu-chromatic", **kw).close()
            bad.append(f"{kw} accepted")
        except ValueError as e:
            if next(iter(kw)) not in str(e):
                bad.append(f"{kw}: message does not name the option: {e}")
    with open_runner(c, "gpu-chromatic", replicas=2) as r:
        if r.kernel not in ("fused", "colour") or r.properties["method"] != "gpu-chromatic":
            bad.append(f"kernel {r.kernel!r}, method {r.properties['method']!r}")
    from pbitsim.sim.hardware import SCHEDULES, HardwareDesign

    for schedule in SCHEDULES:  # the GPU cycle model refuses the schedules it lacks, by name
        if schedule == "chromatic":
            continue
        design = dataclasses.replace(HardwareDesign.default(), schedule=schedule)
        try:
            open_runner(c, "gpu-hardware", design=design).close()
            bad.append(f"gpu-hardware accepted schedule {schedule!r}")
        except NotImplementedError as e:
            if schedule not in str(e):
                bad.append(f"the refusal does not name {schedule!r}: {e}")
    return bad


def _control_chromatic():
    c = _glass(0.5)
    a = pbitsim.sample(c, 6, method="gpu-chromatic", seed=0, replicas=2, threads=THREADS)
    b = pbitsim.sample(c, 6, method="chromatic", seed=1, replicas=2)
    return [] if differences(a, b) else ["seeds 0 and 1 gave the same samples"]


def _control_hardware():
    from pbitsim.sim.gpu import simulate_cycles_gpu
    from pbitsim.sim.hardware import HardwareDesign, simulate_cycles

    c = models.lattice_2d(4, h=0.2, beta=0.5)
    x = simulate_cycles_gpu(c, HardwareDesign.default(), 1, 20)
    y = simulate_cycles(c, HardwareDesign.default(), 2, 20)
    return [] if not np.array_equal(x, y) else ["seeds 1 and 2 gave the same cycles"]


CASES = {
    # gpu-chromatic against chromatic: five graphs, with and without fields, several seeds
    "chromatic-glass": lambda: chromatic(_glass(), 8, burn_in=2, thin=2, replicas=3, seeds=(0, 1)),
    "chromatic-glass-field": lambda: chromatic(_glass(0.5), 6, replicas=2, seeds=(2, 3)),
    "chromatic-lattice-field": lambda: chromatic(
        models.lattice_2d(6, h=0.2, beta=0.44), 6, replicas=2, seeds=(4,)
    ),
    "chromatic-rbm-field": lambda: chromatic(
        models.rbm(6, 4, seed=2, scale=0.7, field=0.5), 6, replicas=4, seeds=(5, 6)
    ),
    "chromatic-regular": lambda: chromatic(
        models.random_regular(20, 3, seed=2, weights="gauss"), 6, replicas=2, seeds=(7,)
    ),
    "chromatic-one-chain": lambda: chromatic(models.lattice_2d(8), 4, replicas=1, seeds=(8,)),
    # parallel tempering: swaps decided on the same energies, the same walkers at each rung
    "pt-glass-field": lambda: chromatic(
        _glass(0.5), 10, replicas=2, betas=[0.2, 0.5, 0.9, 1.4], seeds=(0, 9)
    ),
    "pt-rbm-swap-every-3": lambda: chromatic(
        models.rbm(6, 4, seed=3, field=0.3),
        12,
        burn_in=3,
        thin=2,
        replicas=2,
        betas=[0.3, 0.8, 1.5],
        swap_every=3,
        seeds=(1,),
    ),
    # annealing: a ramp over the run and an explicit schedule
    "anneal-lattice": lambda: chromatic(
        models.lattice_2d(6, h=0.1),
        8,
        burn_in=2,
        replicas=2,
        anneal=(0.1, 2.0),
        anneal_kind="geometric",
        seeds=(2,),
    ),
    "schedule-regular": lambda: chromatic(
        models.random_regular(16, 3, seed=4),
        6,
        replicas=3,
        beta_schedule=[0.2, 0.4, 0.8, 1.6],
        seeds=(3,),
    ),
    # n > 1024 and more than 32 replicas: two blocks of streams in one colour, many streams
    "chromatic-large": _large,
    "chromatic-life-cycle": lambda: runner_life_cycle(
        "gpu-chromatic",
        "chromatic",
        _glass(0.3),
        _rescaled(_glass(0.3), 0.7, 0.2),
        2,
        replicas=2,
        seed=3,
        threads=THREADS,
    ),
    "chromatic-pt-life-cycle": lambda: runner_life_cycle(
        "gpu-chromatic",
        "chromatic",
        _glass(0.3),
        _rescaled(_glass(0.3), 0.7, 0.2),
        4,
        replicas=2,
        seed=3,
        betas=[0.4, 1.0],
        threads=THREADS,
        kernel="colour",
    ),
    # gpu-hardware against the cycle model: both presets, read latency and warm-up
    "cycles-default-glass": lambda: cycles(
        _glass(0.5, p=0.3), 24, _design("default"), seeds=(0, 1)
    ),
    "cycles-published-lattice": lambda: cycles(
        models.lattice_2d(5, h=0.3, beta=0.6), 24, _design("published"), seeds=(2, 3)
    ),
    "cycles-latency-rbm": lambda: cycles(
        models.rbm(6, 4, seed=2, field=0.4), 24, _latency_design(), seeds=(4,)
    ),
    "cycles-published-regular": lambda: cycles(
        models.random_regular(12, 3, seed=1, weights="gauss"),
        30,
        _design("published"),
        seeds=(5,),
        initial=np.tile([1, -1], 6),
    ),
    "hardware-runner": lambda: hardware(
        models.lattice_2d(4, h=0.2, beta=0.5), 5, burn_in=2, thin=1, replicas=3, seeds=(6, 7)
    ),
    "hardware-life-cycle": lambda: runner_life_cycle(
        "gpu-hardware",
        "hardware",
        models.lattice_2d(4, h=0.2),
        _rescaled(models.lattice_2d(4, h=0.2), 0.5, 0.25),
        2,
        replicas=2,
        seed=3,
    ),
    "options": _options,
    # the comparisons above can fail
    "control-chromatic": _control_chromatic,
    "control-hardware": _control_hardware,
}


def main(names: list[str]) -> int:
    for name in names or list(CASES):
        t = time.perf_counter()
        try:
            bad = CASES[name]()
        except Exception as e:  # report it, and go on with the other cases
            bad = [f"{type(e).__name__}: {e}"]
        result = {"case": name, "ok": not bad, "detail": "; ".join(bad)}
        result["seconds"] = round(time.perf_counter() - t, 2)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
