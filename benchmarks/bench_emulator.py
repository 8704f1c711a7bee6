"""Throughput of the emulated board over a local socket, against what real links carry.

Prints, for a few array sizes: samples/s streamed through the emulator (host client included),
the bytes/s that makes on the wire, the share of the emulator's time spent in the cycle model vs in
Python framing, on-board statistics (states/s), and what a 3 Mbaud link allows. Ratios, not
asserts: run it on a quiet machine and copy the table into docs/performance.md.

    python benchmarks/bench_emulator.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from pbitsim.host.emulator import Emulator

import pbitsim
from pbitsim import models
from pbitsim.board import protocol as P
from pbitsim.board.design import HardwareDesign

LINKS = {"iCEBreaker (FT2232H, 3 Mbaud)": 3_000_000, "ULX3S (FT231X, 3 Mbaud)": 3_000_000}


def wire_bytes_per_sample(n: int, max_frame: int) -> float:
    """Bytes on the wire per streamed state: vectors plus each frame's header, CRC, COBS
    overhead and delimiters, shared by the k vectors of a frame."""
    k = P.samples_per_frame(n, max_frame)
    raw = P.MIN_FRAME + 10 + k * math.ceil(n / 8)
    return (raw + math.ceil(raw / 254) + 2) / k


def model_share(c, design, cycles: int) -> float:
    """Fraction of the emulator's step time spent in the cycle model (rest: Python framing)."""
    from pbitsim.board.regmap import load_writes
    from pbitsim.board.session import BoardSession
    from pbitsim.sim.array import ArrayModel

    machine = ArrayModel(c, design)
    for a, d in load_writes(c, design, 1):
        machine.write(a, d)
    machine.run(1000, 1)  # compiled
    t = time.perf_counter()
    machine.run(cycles, c.n_colors)
    t_model = time.perf_counter() - t
    session = BoardSession(ArrayModel(c, design), c.indptr, c.indices, buffer_frames=64)
    session.window = 64
    session.receive(P.encode_message(P.Run(cycles, c.n_colors, P.RUN_SAMPLES), 0))
    t = time.perf_counter()
    while session.state is not P.BoardState.IDLE:
        session.step(1 << 20)
        session._kept.clear()  # an instant host: everything acknowledged
        session._flush_queue()
    return t_model / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [16, 64] if args.quick else [16, 64, 256, 1024]
    sweeps = 2000 if args.quick else 20000
    design = HardwareDesign.default()
    print(f"# emulator over a local socket, load {os.getloadavg()[0]:.2f}, {sweeps} sweeps")
    header = (
        "n",
        "samples/s",
        "wire kB/s",
        "3 Mbaud allows (samples/s)",
        "emulator / 3 Mbaud",
        "model share",
        "stats states/s",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for n in sizes:
        side = int(math.sqrt(n))
        c = models.lattice_2d(side, n // side, J=0.4, beta=0.8)
        with Emulator(c, design) as emu:
            url = emu.start()
            with pbitsim.open_runner(c, "board", seed=1, port=url, window=16) as r:
                r.draw(10)
                t = time.perf_counter()
                r.draw(sweeps)
                dt = time.perf_counter() - t
                t = time.perf_counter()
                r.statistics(sweeps * 5)
                dt_stats = time.perf_counter() - t
        rate = sweeps / dt
        per = wire_bytes_per_sample(c.n, P.DEFAULT_MAX_FRAME)
        link = 3_000_000 / 10 / per
        row = (
            c.n,
            f"{rate:,.0f}",
            f"{rate * per / 1e3:,.0f}",
            f"{link:,.0f}",
            f"{rate / link:.1f}x",
            f"{model_share(c, design, sweeps * c.n_colors):.0%}",
            f"{sweeps * 5 / dt_stats:,.0f}",
        )
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
