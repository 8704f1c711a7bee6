"""Flips per nanosecond of the hardware-faithful cycle model beside the chromatic kernel.

    python benchmarks/bench_hardware_model.py [--quick] [--write TABLE.md]

``method="hardware"`` (:mod:`pbitsim.sim.hardware`, what the emulator, the GPU stand-in and
hardware-faithful training run) with both design presets ("default": xorshift64, s3.4 codes;
"published": the UCSB design's 32-bit LFSR, s4.1 codes, warm-up) and every schedule
("chromatic"; "async-random" at p = 0.1; "async-periodic" at T = 8 with phases from the seed),
at 1, 8 and 64 replicas, on the workloads of ``bench_throughput.py`` (the 128x128 lattice and,
without ``--quick``, the random 3-regular graph of n = 16384), beside ``method="chromatic"``
with the same replicas in the same process.

Work = n * replicas * steps spin updates of ``Runner.advance`` (one step: every colour once, or
round(1/p) / round(mean T) cycles, in which each p-bit updates once on average); a hardware call
makes half the chromatic call's steps ("async-random": a sixteenth, and an eighth of that for
one replica, so that every point takes a few seconds at most). Each point is
timed as pairs, the chromatic kernel then the hardware model, after a warm-up call of each; the
table gives the medians of five pairs (three with ``--quick``) of flips per wall-ns, of flips per
CPU-ns, and of the per-pair ratio hardware / chromatic of the wall rates (pairs run back to back,
so the machine's load changes little within one). The load average and the CPU, read from the
machine, are printed with the table.

Under the table, the floor of "async-random" (:func:`generator_floor`): what any bit-exact
implementation does per p-bit and cycle whatever else it saves, since the design's generators
free-run and its enable comparison is made every cycle: step both generators of every p-bit and
compare the enable number, here in the cheapest form there is (a loop LLVM vectorises, with
256- and with 512-bit vectors, over 1024 p-bits held in L1, the 32-bit LFSR in 32-bit lanes).
At p = 0.1 an update carries ten such cycles, so the floor / p against the chromatic kernel's
cost per update at 64 replicas in the same run bounds the ratio "async-random" can reach if its
acting p-bits cost nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numba as nb
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmarks

from bench_throughput import load, machine, paired_rates, sweeps_for, workloads  # noqa: E402

from pbitsim.board.design import ENABLE_BITS, enable_threshold  # noqa: E402
from pbitsim.sampling import get_method  # noqa: E402
from pbitsim.sim.frames import wide_vectors  # noqa: E402
from pbitsim.sim.jit import lfsr32_xnor_next, xorshift64_next  # noqa: E402

PRESETS = ("default", "published")
#: schedule -> its run-time options (the method's defaults, spelt out)
SCHEDULES = {"chromatic": {}, "async-random": {"p": 0.1}, "async-periodic": {"period": 8}}
REPLICAS = (1, 8, 64)


#: p-bits in the floor's loop: 16 KB of generators (the default's), in L1
FLOOR_PBITS = 1024


@nb.njit(inline="always")
def _lfsr32(r):
    """:func:`pbitsim.rng.lfsr32_xnor_next` in a 32-bit lane (16 to a 512-bit vector)."""
    one = np.uint32(1)
    fb = ((r >> np.uint32(31)) ^ (r >> np.uint32(21)) ^ (r >> one) ^ r ^ one) & one
    return (r << one) | fb


@nb.njit(inline="always")
def _floor_cycles(gen, egen, acts, bound, cycles, lfsr):
    """Both generators of every p-bit step, and acts = E < P, every cycle (E, the enable
    generator's top ENABLE_BITS bits, compared as the whole word against P shifted up: no
    shift for E). xorshift64 in 64-bit lanes, or the published 32-bit XNOR LFSR in 32-bit
    lanes."""
    for _ in range(cycles):
        for i in range(gen.shape[0]):
            acts[i] = egen[i] < bound
            if lfsr:
                gen[i] = _lfsr32(gen[i])
                egen[i] = _lfsr32(egen[i])
            else:
                gen[i] = xorshift64_next(gen[i])
                egen[i] = xorshift64_next(egen[i])


@nb.njit
def _floor_narrow(gen, egen, acts, bound, cycles, lfsr):
    _floor_cycles(gen, egen, acts, bound, cycles, lfsr)


@nb.njit
def _floor_wide(gen, egen, acts, bound, cycles, lfsr):
    wide_vectors()
    _floor_cycles(gen, egen, acts, bound, cycles, lfsr)


def generator_floor(preset: str, p: float, repeats: int = 7) -> float:
    """CPU ns per p-bit-cycle of "async-random"'s least work (both generators stepped, the enable
    number compared) for ``preset``'s generator: the median of ``repeats`` timed calls of the
    faster vector width (the CPU's clock moves the best of them by a fifth between runs)."""
    rng = np.random.default_rng(1)
    threshold = enable_threshold(p)
    lfsr = preset != "default"
    bits = 32 if lfsr else 64
    dtype = np.uint32 if lfsr else np.uint64
    gen, egen = rng.integers(1, 2**31, (2, FLOOR_PBITS)).astype(dtype)
    bound = dtype(threshold << (bits - ENABLE_BITS))
    acts = np.empty(FLOOR_PBITS, np.bool_)
    step = lfsr32_xnor_next if lfsr else xorshift64_next
    cycles = max(1, int(2e7 / FLOOR_PBITS))
    medians = []
    for kernel in (_floor_narrow, _floor_wide):
        before = gen[:8].copy()
        kernel(gen, egen, acts, bound, 1, lfsr)  # compile; the lanes step as the model's rule
        assert all(int(gen[k]) == int(step(int(before[k]))) for k in range(8)), preset
        times = []
        for _ in range(repeats):
            t = time.process_time()
            kernel(gen, egen, acts, bound, cycles, lfsr)
            times.append(time.process_time() - t)
        medians.append(statistics.median(times))
    return min(medians) / (cycles * FLOOR_PBITS) * 1e9


def floor_rows(chromatic_cpu: float) -> list[str]:
    """The floor of "async-random" per preset against ``chromatic_cpu``, the chromatic kernel's
    flips per CPU-ns at 64 replicas measured in this run (it runs no design: one figure). Two
    bounds on the ratio: with the acting p-bits free, and with each acting p-bit costing what a
    whole update of the chromatic kernel costs (the same sum over a row, a decision, a write)."""
    p = SCHEDULES["async-random"]["p"]
    out = [
        f'Floor of "async-random" at p = {p}: both generators of every p-bit stepped and the '
        f"enable number compared, every cycle ({FLOOR_PBITS} p-bits in L1, the faster of 256- "
        "and 512-bit vector loops, median of 7), against the chromatic kernel at 64 replicas "
        "in this run:",
        "",
        "| design | floor CPU ns per p-bit-cycle | floor per update | chromatic per update | "
        "at most x chromatic, acting p-bits free | acting at a chromatic update's cost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for preset in PRESETS:
        per_cycle = generator_floor(preset, p)
        per_update, chromatic = per_cycle / p, 1.0 / chromatic_cpu
        out.append(
            f"| {preset} | {per_cycle:.3f} | {per_update:.2f} | {chromatic:.2f} | "
            f"{chromatic / per_update:.2f} | {chromatic / (per_update + chromatic):.2f} |"
        )
    return out


def measure(c, preset: str, schedule: str, replicas: int, work: float, repeats: int) -> dict:
    """Median flips/ns (wall, CPU) of both samplers and of the paired wall ratio."""
    chromatic = get_method("chromatic")(c, replicas=replicas, seed=1)
    hardware = get_method("hardware")(
        c, replicas=replicas, seed=1, design=preset, schedule=schedule, **SCHEDULES[schedule]
    )
    steps_c = sweeps_for(c, replicas, work)
    # an "async-random" step costs more (every generator steps every cycle): less work per call
    # keeps every point under a few seconds; the others run calls as long as the chromatic
    # kernel's, halved
    slow = 2 if schedule != "async-random" else 16 * (8 if replicas == 1 else 1)
    steps_h = max(2, sweeps_for(c, replicas, work / slow))
    r = paired_rates(c, replicas, chromatic, hardware, (steps_c, steps_h), repeats)
    row = {
        "chromatic wall": r["first wall"],
        "chromatic cpu": r["first cpu"],
        "hardware wall": r["second wall"],
        "hardware cpu": r["second cpu"],
        "ratio": r["ratio wall"],
    }
    hardware.close()
    chromatic.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="lattice only, three pairs per point")
    ap.add_argument("--write", metavar="MD", help="also write the table to this markdown file")
    args = ap.parse_args()
    work, repeats = (3e7, 3) if args.quick else (6e7, 5)
    header = machine()
    loads = [load()]
    print(header, flush=True)
    lines = [
        "| workload | design | schedule | replicas | chromatic flips/ns (wall, CPU) "
        "| hardware flips/ns (wall, CPU) | hardware / chromatic |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    chosen = dict(list(workloads(True).items())[:1]) if args.quick else workloads(True)
    at64 = []  # the chromatic kernel's flips per CPU-ns at 64 replicas, every pair's median
    for name, c in chosen.items():
        for preset in PRESETS:
            for schedule in SCHEDULES:
                for R in REPLICAS:
                    r = measure(c, preset, schedule, R, work, repeats)
                    if R == 64:
                        at64.append(r["chromatic cpu"])
                    lines.append(
                        f"| {name} | {preset} | {schedule} | {R} | {r['chromatic wall']:.3f}, "
                        f"{r['chromatic cpu']:.3f} | {r['hardware wall']:.3f}, "
                        f"{r['hardware cpu']:.3f} | {r['ratio']:.2f} |"
                    )
                    print(lines[-1], flush=True)
                loads.append(load())
    table = "\n".join(lines + [""] + floor_rows(statistics.median(at64)))
    notes = (
        f"Load average (1 min) during the run: {', '.join(f'{x:.1f}' for x in loads)} on "
        f"{os.cpu_count()} cores."
    )
    print(f"\n{table}\n\n{notes}")
    if args.write:
        with open(args.write, "w") as f:
            cmd = "benchmarks/bench_hardware_model.py" + " --quick" * args.quick
            f.write(f"<!-- written by {cmd} -->\n\nMachine: {header}\n\n{table}\n\n{notes}\n")


if __name__ == "__main__":
    main()
