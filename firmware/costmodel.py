"""Resource estimates before place and route: a cost model calibrated on real builds.

The firmware's resources grow with the topology and the lane count in a few ways: the command
engine, UART and framing are a constant; the spin registers, the sample and statistics paths grow
with the p-bits n and the edges E (the statistics vector has 1 + n + E entries; each lane's
neighbour multiplexers together select 2E spins); each lane adds a datapath and its memories
(J row and bias, generator state, a table read port). So the model is linear::

    resource = c0 + c_n n + c_E E + c_L L + c_R R + c_B B        (logic cells, block RAMs, SPRAMs)

where R and B say where Yosys puts the memories whose size follows the topology (each lane's J
row + bias word and generator state per slot, ``slots`` deep: :func:`lane_memories`; the
statistics vector, 1 + n + E words): R counts the LUT-RAM cells (ECP5 ``DPR16X4``, 16 x 4 bits)
of those it keeps in LUT-RAM, B the block RAMs of the others. Yosys
decides by cost (``memory_libmap``: a DPR16X4 costs 4, an ECP5 block RAM 128), so on the ECP5 a
lane memory up to about 48-64 deep is LUT-RAM (logic) and a deeper one a block RAM; the iCE40 has
no LUT-RAM. :func:`lane_memory_features` repeats that rule, which a linear model in n, E and L
alone cannot see (it missed the ECP5's held-out builds by 14-18 %).

with one set of non-negative coefficients per part and hardware design, fitted by non-negative
least squares to the committed calibration table (:data:`TABLE`, ``firmware/calibration.json``):
one row per real build (part, design, graph, n, E, lanes → the logic cells, block RAMs and SPRAMs
nextpnr packs, which are what it then places: :func:`.build.build_firmware` with
``measure_only``). Rows marked ``"role": "check"`` are never fitted: ``tests/test_costmodel.py``
predicts them from the ``"fit"`` rows and holds the model to :data:`LOGIC_TOLERANCE` and
:data:`BRAM_TOLERANCE`. Re-calibrate after a change to the gateware with
``python -m pbitsim.firmware.costmodel calibrate`` (it runs the builds; see ``--help``).

A design fits when the estimate is at most the board's ``logic_ceiling`` share of the part's
logic cells (:class:`.tops.BoardSpec`: room for the router and the estimate's error) and at most
all of its block RAMs and SPRAMs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "TABLE",
    "FEATURES",
    "USES",
    "LOGIC_TOLERANCE",
    "BRAM_TOLERANCE",
    "CostModel",
    "LanePlan",
    "load_table",
    "fit",
    "model_for",
    "design_name",
    "max_useful_lanes",
    "plan_lanes",
]

#: The committed calibration table.
TABLE = Path(__file__).with_name("calibration.json")
#: Inputs of the linear model, in coefficient order.
FEATURES = ("const", "n", "edges", "lanes", "lane_lutram_cells", "lane_bram_blocks")
#: The inputs each resource is fitted on: logic does not depend on how many block RAMs the
#: memories take (a block costs no logic), block RAM not on LUT-RAM cells.
USES = {
    "logic": ("const", "n", "edges", "lanes", "lane_lutram_cells"),
    "bram": ("const", "n", "edges", "lanes", "lane_bram_blocks"),
    "spram": ("const", "n", "edges", "lanes"),
}
#: Largest relative error of the logic-cell estimate on builds it was not fitted on (tested).
LOGIC_TOLERANCE = 0.05
#: Largest error of the block-RAM estimate on builds it was not fitted on: this fraction of the
#: measured count, or 1 block, whichever is larger (tested).
BRAM_TOLERANCE = 0.10


def load_table(path: str | Path = TABLE) -> list[dict]:
    """The calibration rows (a list of dicts; see the module docstring)."""
    data = json.loads(Path(path).read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    for r in rows:
        for key in ("part", "design", "n", "edges", "lanes", "logic", "bram", "role"):
            if key not in r:
                raise ValueError(f"calibration row {r!r} has no {key!r}")
        if r["role"] not in ("fit", "check"):
            raise ValueError(f"calibration row role must be 'fit' or 'check', not {r['role']!r}")
    return rows


def _x(n: float, edges: float, lanes: float, lutram: float = 0, blocks: float = 0) -> np.ndarray:
    return np.array([1.0, float(n), float(edges), float(lanes), float(lutram), float(blocks)])


def _row_x(r: dict) -> np.ndarray:
    return _x(
        r["n"], r["edges"], r["lanes"], r.get("lane_lutram_cells", 0), r.get("lane_bram_blocks", 0)
    )


def slots_of(couplings, lanes: int) -> int:
    """Clocks per sweep of ``PbitEngine(couplings, lanes=lanes)``: ⌈class / L⌉ + 2 per colour
    (the depth of every lane memory)."""
    from pbitsim.hdl.engine import GAP

    return sum(max(math.ceil(len(c) / lanes), 1) + GAP for c in couplings.color_classes())


def lane_memories(design, degree: int, slots: int) -> list[tuple[int, int]]:
    """(depth, width) of each lane's memories in ``PbitEngine`` (``hdl/engine.py``): the J row
    and bias word (degree J codes and a bias), and the generator state."""
    from pbitsim.board.regmap import sum_width
    from pbitsim.rng import state_bits

    spec = design.fixed_point
    degree = max(int(degree), 1)
    return [
        (slots, degree * spec.weight_bits + sum_width(spec, degree)),
        (slots, state_bits(design.rng)),
    ]


def _placed(part: str, depth: int, width: int) -> tuple[int, int]:
    """(LUT-RAM cells, block RAMs) Yosys gives one ``depth`` x ``width`` memory on ``part``.

    ECP5: LUT-RAM when 4 per DPR16X4 (16 x 4 bits) costs no more than 128 per PDPW16KD block
    (512 x 36), Yosys' ``memory_libmap`` costs; iCE40: always block RAM, the fewest 4 kbit blocks
    (256 x 16 ... 2048 x 2) that hold it.
    """
    if part.startswith("ecp5"):
        cells = math.ceil(depth / 16) * math.ceil(width / 4)
        bram = math.ceil(width / 36) * math.ceil(depth / 512)
        return (cells, 0) if 4 * cells <= 128 * bram else (0, bram)
    return 0, min(
        math.ceil(width / w) * math.ceil(depth / d)
        for d, w in ((256, 16), (512, 8), (1024, 4), (2048, 2))
    )


def lane_memory_features(
    part: str, design, lanes: int, slots: int, degree: int, stat_entries: int = 0
) -> tuple:
    """(LUT-RAM cells, block RAMs) of the memories whose size follows the topology: every lane's
    (:func:`lane_memories`) and the statistics vector's (``stat_entries`` = 1 + n + E words of
    64 bits, one bank), each placed as :func:`_placed` says."""
    from .stats import STAT_BITS

    lutram = blocks = 0
    for depth, width in lane_memories(design, degree, slots):
        cells, bram = _placed(part, depth, width)
        lutram, blocks = lutram + lanes * cells, blocks + lanes * bram
    if stat_entries:
        cells, bram = _placed(part, stat_entries, STAT_BITS)
        lutram, blocks = lutram + cells, blocks + bram
    return lutram, blocks


@dataclass(frozen=True)
class CostModel:
    """Fitted coefficients for one (part, design).

    Attributes
    ----------
    part, design : str
    logic, bram, spram : tuple of float
        Coefficients in :data:`FEATURES` order.
    rows : int
        Builds it was fitted on.
    n_range, lanes_range : (int, int)
        The fitted rows' extent; estimates outside it are extrapolations.
    """

    part: str
    design: str
    logic: tuple
    bram: tuple
    spram: tuple
    rows: int
    n_range: tuple
    lanes_range: tuple

    def predict(self, n: int, edges: int, lanes: int, lutram: int = 0, blocks: int = 0) -> dict:
        """Estimated ``logic`` cells, ``bram`` and ``spram`` blocks (ints), and whether the
        point lies outside the fitted range (``extrapolated``). ``lutram`` and ``blocks``: the
        lane memories' :func:`lane_memory_features`."""
        x = _x(n, edges, lanes, lutram, blocks)
        return {
            "logic": max(int(round(float(x @ np.array(self.logic)))), 0),
            "bram": max(int(math.ceil(float(x @ np.array(self.bram)) - 0.25)), 0),
            "spram": max(int(math.ceil(float(x @ np.array(self.spram)) - 0.25)), 0),
            "extrapolated": not (
                self.n_range[0] <= n <= self.n_range[1]
                and self.lanes_range[0] <= lanes <= self.lanes_range[1]
            ),
        }


def _nnls(X: np.ndarray, y: np.ndarray) -> tuple:
    # Non-negative least squares: a p-bit, an edge or a lane never frees a resource, and with n
    # and E nearly collinear in the calibration graphs an unconstrained fit trades a negative
    # coefficient for a positive one, which extrapolates to nonsense (fewer block RAMs for a
    # larger model).
    from scipy.optimize import nnls

    coef, _ = nnls(X, y)
    return tuple(float(c) for c in coef)


def fit(rows: list[dict]) -> dict[tuple[str, str], CostModel]:
    """Non-negative least-squares models per (part, design) from the ``"fit"`` rows of
    ``rows``."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["role"] == "fit":
            groups.setdefault((r["part"], r["design"]), []).append(r)
    models = {}
    for (part, design), rs in groups.items():
        X = np.array([_row_x(r) for r in rs])
        # Columns scaled to comparable size for the solver.
        scale = np.maximum(np.abs(X).max(axis=0), 1.0)
        Xs = X / scale

        def solve(key, Xs=Xs, scale=scale, rs=rs):
            y = np.array([float(r.get(key, 0) or 0) for r in rs])
            use = np.array([f in USES[key] for f in FEATURES])
            coef = np.zeros(len(FEATURES))
            coef[use] = _nnls(Xs[:, use], y)
            return tuple(float(c / s) for c, s in zip(coef, scale))

        models[(part, design)] = CostModel(
            part=part,
            design=design,
            logic=solve("logic"),
            bram=solve("bram"),
            spram=solve("spram"),
            rows=len(rs),
            n_range=(min(r["n"] for r in rs), max(r["n"] for r in rs)),
            lanes_range=(min(r["lanes"] for r in rs), max(r["lanes"] for r in rs)),
        )
    return models


_MODELS: dict | None = None


def model_for(part: str, design: str) -> CostModel | None:
    """The model fitted on the committed table for (part, design), or None if it has no rows."""
    global _MODELS
    if _MODELS is None:
        _MODELS = fit(load_table()) if TABLE.exists() else {}
    return _MODELS.get((part, design))


def design_name(design) -> str:
    """The preset a design is ("default", "published"), else "custom"."""
    from pbitsim.board.design import HardwareDesign

    for preset in ("default", "published"):
        if design == HardwareDesign.from_name(preset):
            return preset
    return "custom"


def max_useful_lanes(couplings) -> int:
    """Lanes beyond the largest colour class add nothing (every colour already takes one slot)."""
    return max((len(c) for c in couplings.color_classes()), default=1) or 1


def estimate(model: CostModel, part: str, hw, n, edges, lanes, degree, class_sizes) -> dict:
    """:meth:`CostModel.predict` for a topology given by its size, edges, largest degree and
    colour-class sizes (the lane memories' depth follows from them)."""
    slots = sum(max(math.ceil(s / lanes), 1) + 2 for s in class_sizes) or 3
    lutram, blocks = lane_memory_features(part, hw, lanes, slots, degree, 1 + n + edges)
    return model.predict(n, edges, lanes, lutram, blocks)


@dataclass
class LanePlan:
    """The lane counts the cost model considered for one build, and the verdict.

    Attributes
    ----------
    spec : BoardSpec
    design : str
        Preset name the estimate is for ("custom" designs use the default design's model).
    n, edges : int
    candidates : list of (lanes, estimate dict, fits)
    lanes : int
        The chosen (or requested) lane count.
    fits : bool
    requested : bool
        ``lanes`` was given by the caller.
    """

    spec: object
    design: str
    n: int
    edges: int
    candidates: list = field(default_factory=list)
    lanes: int = 1
    fits: bool = True
    requested: bool = False
    model: CostModel | None = None
    max_lanes: int = 1
    hw: object = None
    degree: int = 1
    class_sizes: tuple = ()

    def _estimate(self, spec, model, lanes: int, n: int | None = None) -> dict:
        """The estimate on ``spec`` with ``model`` for ``lanes``; for ``n`` p-bits of this
        model's mean degree and colouring when ``n`` is given (advice), else for this model."""
        if n is None:
            return estimate(model, spec.part, self.hw, self.n, self.edges, lanes, self.degree,
                            self.class_sizes)  # fmt: skip
        scale = n / max(self.n, 1)
        sizes = [math.ceil(s * scale) for s in self.class_sizes]
        edges = round(self.edges * scale)
        return estimate(model, spec.part, self.hw, n, edges, lanes, self.degree, sizes)

    @property
    def estimate(self) -> dict:
        for lanes, est, _ in self.candidates:
            if lanes == self.lanes:
                return {**est, "lanes": lanes, "fits": self.fits, "model_design": self.design}
        return {"lanes": self.lanes, "fits": self.fits, "logic": None, "bram": None}

    def _line(self, est: dict) -> str:
        s = self.spec
        text = (
            f"{est['logic']:,} / {s.logic_cells:,} logic cells "
            f"({100 * est['logic'] / s.logic_cells:.0f}%), {est['bram']} / {s.block_rams} "
            f"block RAM"
        )
        if s.sprams:
            text += f", {est['spram']} / {s.sprams} SPRAM"
        return text + (" (extrapolated)" if est.get("extrapolated") else "")

    def describe(self) -> list[str]:
        """Lines printed before anything is built."""
        if self.model is None:
            why = (
                f"no calibration for the {self.spec.part} with the {self.design} design"
                if TABLE.exists()
                else f"the calibration table {TABLE.name} is not installed with pbitsim"
            )
            return [
                f"estimate: {why}; building {self.lanes} lane(s) unchecked (synthesis and "
                f"packing still check)"
            ]
        verdict = "fits" if self.fits else "does NOT fit"
        how = "requested" if self.requested else "the most that fit" if self.fits else "the fewest"
        lines = [
            f"estimate (cost model, {self.model.rows} calibration builds): {self.lanes} lane(s) "
            f"({how}): {self._line(self.estimate)} - {verdict}"
        ]
        return lines

    def _fitting(self) -> list[int]:
        return [lanes for lanes, _, ok in self.candidates if ok]

    def advice_short(self) -> str:
        fitting = self._fitting()
        if fitting:
            return f"The cost model says up to {max(fitting)} lane(s) fit."
        return self._what_would_fit()

    def _what_would_fit(self) -> str:
        s = self.spec
        if self.model is None:
            return ""
        # The largest n of the same mean degree that fits with one lane.
        ratio = self.edges / max(self.n, 1)
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _fits(s, self._estimate(s, self.model, 1, n=mid)):
                lo = mid
            else:
                hi = mid - 1
        parts = []
        if lo >= 1:
            parts.append(
                f"at most about {lo} p-bits of this mean degree ({2 * ratio:.1f}) fit the "
                f"{s.name} (1 lane)"
            )
        else:
            alone = self._estimate(s, self.model, 1, n=1)["logic"]
            parts.append(
                f"no model fits the {s.name} with the {self.design} design (the firmware with "
                f"one p-bit and one lane takes about {alone:,} logic cells)"
            )
        for preset in ("default", "published"):
            m = model_for(s.part, preset)
            if preset == self.design or m is None:
                continue
            ok = self._lanes_that_fit(s, m)
            if ok:
                parts.append(
                    f"with --design {preset} this model fits the {s.name} with up to "
                    f"{max(ok)} lane(s)"
                )
        from .tops import BOARDS

        for other in BOARDS.values():
            if other.name == s.name:
                continue
            m = model_for(other.part, self.design if self.design != "custom" else "default")
            if m is None:
                continue
            ok = self._lanes_that_fit(other, m)
            if ok:
                parts.append(
                    f"this model fits the {other.name} with up to {max(ok)} lanes "
                    f"(pbitsim build --board {other.name})"
                )
        return "What would fit: " + "; ".join(parts) + "."

    def _lanes_that_fit(self, spec, model) -> list[int]:
        return [
            lanes
            for lanes in range(1, self.max_lanes + 1)
            if _fits(spec, self._estimate(spec, model, lanes))
        ]

    def advice(self) -> str:
        """Why the build was refused and what would fit."""
        s = self.spec
        est = self.estimate
        if self.requested and self._fitting():
            return (
                f"{self.lanes} lanes do not fit the {s.name} by the cost model: "
                f"{self._line(est)} (limit {s.logic_ceiling:.0%} of the logic cells, all of the "
                f"block RAM). At most {max(self._fitting())} lane(s) fit; or use --force to "
                f"try anyway (synthesis still checks)."
            )
        smallest = self.candidates[0][1]
        return (
            f"{self.n} p-bits ({self.edges} edges) do not fit the {s.name} with any lane count: "
            f"even 1 lane needs about {self._line(smallest)} (limit {s.logic_ceiling:.0%} of the "
            f"logic cells, all of the block RAM). {self._what_would_fit()}"
        )


def _fits(spec, est: dict) -> bool:
    return (
        est["logic"] <= spec.logic_ceiling * spec.logic_cells
        and est["bram"] <= spec.block_rams
        and est.get("spram", 0) <= spec.sprams
    )


def plan_lanes(spec, design, couplings, lanes: int | None = None) -> LanePlan:
    """Estimate every useful lane count on ``spec``'s part and choose one.

    Without ``lanes``: the largest count that fits (the fastest build), or the plan is marked
    not fitting. With ``lanes``: that count, marked fitting or not.

    Raises
    ------
    ValueError
        ``lanes`` is not an int in 1 .. the largest colour class.
    """
    useful = max_useful_lanes(couplings)
    if lanes is not None:
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an int >= 1, not {lanes!r}")
        if lanes > useful:
            raise ValueError(
                f"{lanes} lanes: the largest colour class has {useful} p-bits, so more than "
                f"{useful} lanes cannot run faster; use --lanes {useful} or fewer"
            )
    name = design_name(design)
    model = model_for(spec.part, name if name != "custom" else "default")
    n, edges = couplings.n, int(couplings.n_edges)
    plan = LanePlan(
        spec=spec, design=name, n=n, edges=edges, model=model, max_lanes=useful, hw=design,
        degree=max(int(couplings.degrees.max()), 1) if n else 1,
        class_sizes=tuple(len(c) for c in couplings.color_classes()),
    )  # fmt: skip
    if model is None:
        plan.lanes, plan.fits, plan.requested = (lanes or 1), True, lanes is not None
        return plan
    for k in range(1, useful + 1):
        est = plan._estimate(spec, model, k)
        plan.candidates.append((k, est, _fits(spec, est)))
    fitting = plan._fitting()
    if lanes is not None:
        plan.lanes, plan.requested = lanes, True
        plan.fits = lanes in fitting
    elif fitting:
        plan.lanes, plan.fits = max(fitting), True
    else:
        plan.lanes, plan.fits = 1, False
    return plan


# ------------------------------------------------------------------------------------------------
# Calibration: run real builds and append their rows to the table
# ------------------------------------------------------------------------------------------------


#: The builds the committed table holds, per board: (design, graph, n, lanes, role). Graphs of
#: mean degree 2 (ring), 4 (square), 6 (triangular) and random ones separate the n and E terms;
#: the "check" builds are other sizes, lane counts and graphs than the "fit" ones.
CALIBRATION_POINTS = {
    "icebreaker": [
        (design, graph, n, lanes, role)
        for design in ("default", "published")
        for graph, n, lanes, role in (
            ("ring", 8, 1, "fit"),
            ("triangular", 16, 1, "fit"),
            ("triangular", 64, 1, "fit"),
            ("triangular", 64, 4, "fit"),
            ("square", 64, 2, "fit"),
            ("ring", 32, 2, "fit"),
            ("random", 48, 3, "fit"),
            ("ring", 12, 2, "check"),
            ("square", 36, 3, "check"),
            ("triangular", 100, 3, "check"),
        )
    ],
    "ulx3s": [
        (design, graph, n, lanes, role)
        for design in ("default", "published")
        for graph, n, lanes, role in (
            ("triangular", 64, 4, "fit"),
            ("ring", 128, 2, "fit"),
            ("triangular", 256, 8, "fit"),
            ("square", 256, 16, "fit"),
            ("random", 192, 6, "fit"),
            ("triangular", 512, 4, "fit"),
            ("random", 256, 8, "check"),
            ("triangular", 384, 12, "check"),
        )
    ],
}


def row_from_report(report: dict, graph: str, role: str) -> dict:
    """A calibration row from a build report (:func:`.build.build_firmware`'s return value)."""
    u = report.get("utilisation") or report["packed"]
    return {
        "part": report["part"],
        "design": design_name_from_dict(report["design"]),
        "graph": graph,
        "n": report["pbits"],
        "edges": report["edges"],
        "lanes": report["lanes"],
        "logic": u["logic"]["used"],
        "bram": u.get("bram", {}).get("used", 0),
        "spram": u.get("spram", {}).get("used", 0),
        "ffs": report["synthesis"]["at_least"]["ffs"],
        "max_degree": report["max_degree"],
        "slots": report["clocks_per_sweep"],
        **dict(
            zip(
                ("lane_lutram_cells", "lane_bram_blocks"),
                lane_memory_features(
                    report["part"],
                    _design_from_dict(report["design"]),
                    report["lanes"],
                    report["clocks_per_sweep"],
                    report["max_degree"],
                    1 + report["pbits"] + report["edges"],
                ),
            )
        ),
        "fmax_mhz": report.get("fmax_mhz"),
        "seconds": report["seconds"]["total"],
        "role": role,
    }


def _design_from_dict(d: dict):
    from pbitsim.board.design import HardwareDesign

    return HardwareDesign.from_name(d)


def design_name_from_dict(d: dict) -> str:
    return design_name(_design_from_dict(d))


def calibrate(points: list[tuple], board: str, table: Path, workdir: Path, say=print) -> None:
    """Build each (design, graph, n, lanes, role) of ``points`` on ``board`` and append its row
    to ``table`` (written after every build, so an interrupted run keeps what it measured)."""
    from pbitsim.board.design import HardwareDesign

    from .build import DoesNotFit, build_firmware
    from .synth import test_graph

    data = json.loads(table.read_text()) if table.exists() else {"rows": []}
    for design, graph, n, lanes, role in points:
        c = test_graph(graph, n)
        say(f"calibration build: {board} {design} {graph} n={n} lanes={lanes} ({role})")
        try:
            rep = build_firmware(
                c, board, design=HardwareDesign.from_name(design), lanes=lanes, measure_only=True,
                out=workdir, name=f"cal-{design}-{graph}-{n}-{lanes}", say=say,
            )  # fmt: skip
        except DoesNotFit as e:
            say(f"  skipped: {e}")
            continue
        data["rows"].append(row_from_report(rep, graph, role))
        table.write_text(json.dumps(data, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pbitsim.firmware.costmodel",
        description="Check the cost model against its table, or run calibration builds.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="predict the table's check rows from its fit rows")
    cal = sub.add_parser("calibrate", help="run builds and append rows to a table")
    cal.add_argument("--board", required=True)
    cal.add_argument(
        "--point", action="append", default=None,
        help="DESIGN,GRAPH,N,LANES,ROLE (e.g. default,triangular,64,2,fit); repeatable "
        "(default: CALIBRATION_POINTS of the board)",
    )  # fmt: skip
    cal.add_argument("--table", default=str(TABLE))
    cal.add_argument("--workdir", default="calibration-builds")
    cal.add_argument(
        "--replace", action="store_true", help="drop the table's rows of this board's part first"
    )
    args = ap.parse_args(argv)
    if args.cmd == "check":
        for line in check_lines(load_table()):
            print(line)
        return 0
    from .tops import board_spec

    spec = board_spec(args.board)
    points = list(CALIBRATION_POINTS[spec.name])
    if args.point:
        points = []
        for p in args.point:
            design, graph, n, lanes, role = p.split(",")
            points.append((design, graph, int(n), int(lanes), role))
    table = Path(args.table)
    if args.replace and table.exists():
        data = json.loads(table.read_text())
        data["rows"] = [r for r in data["rows"] if r["part"] != spec.part]
        table.write_text(json.dumps(data, indent=1) + "\n")
    calibrate(points, spec.name, table, Path(args.workdir))
    return 0


def check_lines(rows: list[dict]) -> list[str]:
    """Each check row's measured and predicted resources and relative errors."""
    models = fit(rows)
    out = []
    for r in rows:
        if r["role"] != "check":
            continue
        m = models.get((r["part"], r["design"]))
        if m is None:
            out.append(f"{r['part']} {r['design']} n={r['n']}: no fit rows")
            continue
        p = m.predict(
            r["n"], r["edges"], r["lanes"], r.get("lane_lutram_cells", 0),
            r.get("lane_bram_blocks", 0),
        )  # fmt: skip
        out.append(
            f"{r['part']:9s} {r['design']:9s} {r.get('graph', ''):10s} n={r['n']:<5} "
            f"E={r['edges']:<5} L={r['lanes']:<3} logic {r['logic']:>6} est {p['logic']:>6} "
            f"({100 * (p['logic'] - r['logic']) / r['logic']:+.1f}%)  bram {r['bram']:>3} "
            f"est {p['bram']:>3}"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
