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
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmarks

from bench_throughput import load, machine, paired_rates, sweeps_for, workloads  # noqa: E402

from pbitsim.sampling import get_method  # noqa: E402

PRESETS = ("default", "published")
#: schedule -> its run-time options (the method's defaults, spelt out)
SCHEDULES = {"chromatic": {}, "async-random": {"p": 0.1}, "async-periodic": {"period": 8}}
REPLICAS = (1, 8, 64)


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
    for name, c in chosen.items():
        for preset in PRESETS:
            for schedule in SCHEDULES:
                for R in REPLICAS:
                    r = measure(c, preset, schedule, R, work, repeats)
                    lines.append(
                        f"| {name} | {preset} | {schedule} | {R} | {r['chromatic wall']:.3f}, "
                        f"{r['chromatic cpu']:.3f} | {r['hardware wall']:.3f}, "
                        f"{r['hardware cpu']:.3f} | {r['ratio']:.2f} |"
                    )
                    print(lines[-1], flush=True)
                loads.append(load())
    table = "\n".join(lines)
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
