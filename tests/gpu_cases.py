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


def cycles(c, n_cycles, design, seeds=(0,), initial=None, **values):
    """simulate_cycles_gpu against simulate_cycles: every spin after every cycle (``values``:
    the schedule's run-time values, p, period, phase, enable_seeds)."""
    from pbitsim.sim.gpu import simulate_cycles_gpu
    from pbitsim.sim.hardware import simulate_cycles

    bad = []
    for seed in seeds:
        x = simulate_cycles_gpu(c, design, seed, n_cycles, initial=initial, **values)
        y = simulate_cycles(c, design, seed, n_cycles, initial=initial, **values)
        if not np.array_equal(x, y):
            name = seed if np.ndim(seed) == 0 else "explicit seeds"
            bad.append(f"seed {name}: {int(np.sum(x != y))} of {x.size} spins differ")
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
    from types import SimpleNamespace

    from pbitsim.sim.gpu import GPU_SCHEDULES, _check_schedule
    from pbitsim.sim.hardware import SCHEDULES

    if set(GPU_SCHEDULES) != set(SCHEDULES):
        bad.append(f"the GPU runs {GPU_SCHEDULES}, the CPU model has {SCHEDULES}")
    for schedule in SCHEDULES:  # every schedule of the CPU model opens, with its options
        with open_runner(c, "gpu-hardware", schedule=schedule) as r:
            if r.design.schedule != schedule or r.properties["method"] != "gpu-hardware":
                bad.append(f"schedule {schedule!r}: ran {r.design.schedule!r}")
    try:  # a schedule the GPU lacks (none today) is refused by name
        _check_schedule(SimpleNamespace(schedule="async-jitter"))
        bad.append("an unknown schedule was accepted")
    except NotImplementedError as e:
        if "async-jitter" not in str(e):
            bad.append(f"the refusal does not name the schedule: {e}")
    return bad


def _control_chromatic():
    c = _glass(0.5)
    a = pbitsim.sample(c, 6, method="gpu-chromatic", seed=0, replicas=2, threads=THREADS)
    b = pbitsim.sample(c, 6, method="chromatic", seed=1, replicas=2)
    return [] if differences(a, b) else ["seeds 0 and 1 gave the same samples"]


def _uncoloured(name: str, schedule: str, latency: int):
    from pbitsim.sim.hardware import HardwareDesign

    d = HardwareDesign.from_name(name)
    return dataclasses.replace(d, schedule=schedule, read_latency=latency)


def _async_cycles(name: str, schedule: str, latency: int):
    """Every spin after every cycle of an un-coloured schedule: a glass with fields (derived
    enable seeds / phases) and a ring with explicit run-time values (enable seeds, or periods and
    phases per p-bit, a phase beyond its period included)."""
    d = _uncoloured(name, schedule, latency)
    glass, ring = _glass(0.5, p=0.4), models.ring(8, h=0.3, beta=0.9)
    if schedule == "async-random":
        bad = cycles(glass, 30, d, seeds=(0, 1), p=0.3)
        from pbitsim.rng import derive_enable_seeds, derive_seeds

        dec = derive_seeds(11, ring.n, d.rng)
        bad += cycles(
            ring, 30, d, seeds=(dec,), p=0.6, enable_seeds=derive_enable_seeds(5, dec, d.rng)
        )
    else:
        bad = cycles(glass, 30, d, seeds=(0, 1), period=3)
        period = [1, 2, 3, 4, 5, 3, 2, 7]
        phase = [0, 1, 2, 3, 4, 9, 0, 6]
        bad += cycles(ring, 30, d, seeds=(2,), period=period, phase=phase)
    return bad


def _enable_ties():
    """ENABLE equal to every p-bit's first enable number (E == P: no p-bit acts at edge 1): the
    strict < of the enable decision, where random seeds would meet a tie once in 2**16 draws.
    Explicit enable seeds share their top 16 bits."""
    from pbitsim.rng import derive_seeds

    c = _glass(0.5, p=0.4)
    d = _uncoloured("default", "async-random", 0)
    rng = np.random.default_rng(3)
    top = np.uint64(0xB3A1)
    low = rng.choice(1 << 40, c.n, replace=False).astype(np.uint64)
    ens = (top << np.uint64(48)) | low
    dec = derive_seeds(7, c.n, d.rng)
    return cycles(c, 12, d, seeds=(dec,), p=int(top) / 2**16, enable_seeds=ens)


def _async_runner(schedule: str, **values):
    """gpu-hardware against hardware through sample(): replicas with their own seeds, enable
    seeds and phases, both presets, burn-in and thinning in steps of round(1/p) or mean(T)
    cycles."""
    c = models.lattice_2d(3, h=0.2, beta=0.5)
    return hardware(c, 4, burn_in=1, thin=2, replicas=3, seeds=(4,), schedule=schedule, **values)


def _async_machine(schedule: str):
    """The machine's life cycle on an un-coloured schedule, GPU against CPU: runs of a few cycles
    with ENABLE or PERIOD rewritten, a spin written, new codes and a restart between them (the
    enable generators and counters must come back from the GPU), on 49 p-bits with 32 threads
    per block (a thread owns two p-bits)."""
    from pbitsim.sim.gpu import GpuHardwareMachine
    from pbitsim.sim.hardware import HardwareMachine, _schedule_inputs

    c = models.lattice_2d(7, h=0.1, beta=0.7)
    c2 = _rescaled(c, 0.6, 0.3)
    d = _uncoloured("default", schedule, 1)
    values = {"p": 0.4} if schedule == "async-random" else {"period": 4}
    seeds, kw = _schedule_inputs(d, c.n, 9, 2, **values)
    cpu = HardwareMachine(c, d, seeds, **kw)
    gpu = GpuHardwareMachine(c, d, seeds, **kw)
    gpu.threads = 32
    bad = []

    def compare(what, a, b):
        if not np.array_equal(a, b):
            bad.append(f"{what}: differ")

    for m in (cpu, gpu):
        m.outputs = [m.run(7), m.run(6, record_every=2)]
        if schedule == "async-random":
            m.set_enable(1 << 16)  # every p-bit every cycle
        else:
            m.set_periods(np.arange(c.n) % 5 + 1)
            m.set_phases(np.arange(c.n) % 3)
        m.set_spin(3, 1)
        m.outputs.append(m.run(5))
        m.set_quantized(c2.quantized(d.fixed_point))
        m.restart()
        m.outputs += [m.run(8, record_every=4), m.run(3, record_every=0)]
    for k, (a, b) in enumerate(zip(gpu.outputs, cpu.outputs)):
        compare(f"run {k}", a, b)
    compare("spins", gpu.spins, cpu.spins)
    compare("generators", gpu.generator_states, cpu.generator_states)
    if schedule == "async-random":
        compare("enable generators", gpu.enable_generator_states, cpu.enable_generator_states)
    else:
        compare("counters", gpu.counters, cpu.counters)
    if gpu.cycle != cpu.cycle:
        bad.append(f"cycle {gpu.cycle} against {cpu.cycle}")
    return bad


def _control_async():
    """The async comparisons can fail: another ENABLE, or one phase changed, differ."""
    from pbitsim.sim.gpu import simulate_cycles_gpu
    from pbitsim.sim.hardware import simulate_cycles

    c = _glass(0.5, p=0.4)
    bad = []
    d = _uncoloured("default", "async-random", 0)
    x = simulate_cycles_gpu(c, d, 1, 40, p=0.5)
    y = simulate_cycles(c, d, 1, 40, p=0.55)
    if np.array_equal(x, y):
        bad.append("p = 0.5 and 0.55 gave the same cycles")
    d = _uncoloured("default", "async-periodic", 0)
    phase = np.arange(c.n) % 3
    x = simulate_cycles_gpu(c, d, 1, 40, period=3, phase=phase)
    phase[4] = (phase[4] + 1) % 3
    y = simulate_cycles(c, d, 1, 40, period=3, phase=phase)
    if np.array_equal(x, y):
        bad.append("phases one apart gave the same cycles")
    return bad


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
    # the un-coloured schedules: both x read latency 0 and 2 x both presets, every cycle
    **{
        f"cycles-{schedule}-{name}-L{latency}": (
            lambda name=name, schedule=schedule, latency=latency: _async_cycles(
                name, schedule, latency
            )
        )
        for schedule in ("async-random", "async-periodic")
        for name in ("default", "published")
        for latency in (0, 2)
    },
    "cycles-async-random-ties": _enable_ties,
    "hardware-runner-async-random": lambda: _async_runner("async-random", p=0.5, read_latency=1),
    "hardware-runner-async-periodic": lambda: _async_runner(
        "async-periodic", period=[2, 3, 4, 3, 2, 3, 4, 3, 2]
    ),
    "hardware-machine-async-random": lambda: _async_machine("async-random"),
    "hardware-machine-async-periodic": lambda: _async_machine("async-periodic"),
    "options": _options,
    # the comparisons above can fail
    "control-chromatic": _control_chromatic,
    "control-hardware": _control_hardware,
    "control-async": _control_async,
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
