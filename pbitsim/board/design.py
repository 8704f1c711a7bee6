"""What a p-bit design computes, fixed when the gateware is built: :class:`HardwareDesign`.

The hardware-faithful cycle model (:mod:`pbitsim.sim.hardware`), the gateware (``hdl/``),
the register map (:mod:`pbitsim.board.regmap`, whose FORMAT and DESIGN words encode a design) and
the host all read this one class. Pure Python: importing it loads neither Numba nor Amaranth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.rng import AUX_INDEX, RNG_KINDS, splitmix64_block

__all__ = [
    "HardwareDesign",
    "SCHEDULES",
    "UNCOLOURED",
    "ENABLE_BITS",
    "TIMER_BITS",
    "DEFAULT_ENABLE_P",
    "DEFAULT_PERIOD",
    "enable_threshold",
    "enable_probability",
    "effective_period",
    "derive_phases",
    "run_time_values",
    "cycles_per_step",
]

#: Update schedules a design can have (``docs/hardware-model.md``), in the order of their DESIGN
#: word codes: "chromatic" (one colour per cycle), "async-random" (every p-bit every cycle with
#: probability p, from a second generator per p-bit), "async-periodic" (p-bit i every T_i cycles
#: at phase phi_i, from a counter per p-bit).
SCHEDULES = ("chromatic", "async-random", "async-periodic")
#: Schedules without colours: any p-bit may update in any cycle.
UNCOLOURED = ("async-random", "async-periodic")

#: Width of the enable comparison of "async-random": a p-bit updates in a cycle iff the top
#: ENABLE_BITS bits of its enable generator are < the ENABLE register (p = ENABLE / 2**16).
ENABLE_BITS = 16
#: Width of the PERIOD and PHASE registers and of the counters of "async-periodic".
TIMER_BITS = 16
_TIMER_MASK = (1 << TIMER_BITS) - 1
#: Run-time values used when none are given (the float-level ``method="async"`` defaults).
DEFAULT_ENABLE_P = 0.1
DEFAULT_PERIOD = 8


@dataclass(frozen=True)
class HardwareDesign:
    """Build-time choices of a p-bit design that change what it computes.

    Parameters
    ----------
    fixed_point : FixedPointSpec
        Widths and arithmetic (:mod:`pbitsim.fixedpoint`).
    rng : {"xorshift64", "lfsr32-xnor"}
        Per-p-bit generator (:mod:`pbitsim.rng`).
    schedule : {"chromatic", "async-random", "async-periodic"}
        "chromatic": one colour per clock cycle, colours in order 0..C-1. "async-random": every
        cycle every p-bit updates with probability p (ENABLE register vs a second generator per
        p-bit). "async-periodic": p-bit i updates every T_i cycles at phase phi_i (PERIOD and
        PHASE registers, a counter per p-bit). ``docs/hardware-model.md`` section 5.
    warmup_edges : int
        Chromatic: edges of each colour's clock, counted from the first, at which no spin changes
        (the generators still advance): 2 for the published design's 2-flip-flop enable
        synchroniser. Un-coloured schedules: cycles, counted from the first, in which no spin
        changes (one clock domain, so one synchroniser).
    read_latency : int
        L: a p-bit updating at edge t reads its neighbours' spins as they were after edge t-1-L.
        0 = the values at the start of the cycle (combinational read).
    initial_spin : {-1, +1}
        Value of every spin register before edge 1 (-1 = register value 0) unless an explicit
        initial state is given.
    max_degree : int or None
        Neighbour slots per p-bit (published: 6); None = as many as the graph needs.

    Raises
    ------
    TypeError, ValueError
        A field of the wrong type or out of range (the message names it).
    """

    fixed_point: FixedPointSpec = field(default_factory=FixedPointSpec.default)
    rng: str = "xorshift64"
    schedule: str = "chromatic"
    warmup_edges: int = 0
    read_latency: int = 0
    initial_spin: int = -1
    max_degree: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fixed_point, FixedPointSpec):
            raise TypeError(f"fixed_point must be a FixedPointSpec, not {self.fixed_point!r}")
        if self.rng not in RNG_KINDS:
            raise ValueError(f"rng must be one of {RNG_KINDS}, not {self.rng!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        for name in ("warmup_edges", "read_latency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, not {v!r}")
        if self.initial_spin not in (-1, 1):
            raise ValueError(f"initial_spin must be -1 or +1, not {self.initial_spin!r}")
        if self.max_degree is not None and (
            isinstance(self.max_degree, bool)
            or not isinstance(self.max_degree, int | np.integer)
            or self.max_degree < 1
        ):
            raise ValueError(f"max_degree must be None or an int >= 1, not {self.max_degree!r}")
        if self.rng == "lfsr32-xnor" and self.fixed_point.rng_bits > 32:
            raise ValueError("lfsr32-xnor gives at most 32 random bits")

    @property
    def coloured(self) -> bool:
        """The schedule updates one colour per cycle (only "chromatic")."""
        return self.schedule not in UNCOLOURED

    @property
    def generators(self) -> int:
        """Generators per p-bit: 2 for "async-random" (decision and enable), else 1."""
        return 2 if self.schedule == "async-random" else 1

    def warmup_cycles(self, n_colors: int) -> int:
        """Cycles after a restart in which no spin changes: ``warmup_edges`` colour periods
        (chromatic) or ``warmup_edges`` cycles (un-coloured)."""
        return self.warmup_edges * (max(int(n_colors), 1) if self.coloured else 1)

    @classmethod
    def default(cls) -> HardwareDesign:
        """pbitsim's own design: default fixed point, xorshift64, no warm-up, combinational read."""
        return cls()

    @classmethod
    def published(cls) -> HardwareDesign:
        """The published UCSB design (``shared/reference/published-pbit-rtl.md``), bit for bit."""
        return cls(
            fixed_point=FixedPointSpec.published(),
            rng="lfsr32-xnor",
            warmup_edges=2,
            max_degree=6,
        )

    @classmethod
    def from_name(cls, name: str | HardwareDesign | dict) -> HardwareDesign:
        """A design from a preset name, a dict (:meth:`to_dict`) or a design (returned as is)."""
        if isinstance(name, HardwareDesign):
            return name
        if isinstance(name, dict):
            d = dict(name)
            d["fixed_point"] = FixedPointSpec.from_dict(d["fixed_point"])
            return cls(**d)
        presets = {"default": cls.default, "published": cls.published}
        if name not in presets:
            raise ValueError(f"unknown hardware design {name!r}; presets: {sorted(presets)}")
        return presets[name]()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fixed_point"] = self.fixed_point.to_dict()
        return d

    def check(self, couplings, n_colors: int | None = None) -> None:
        """Refuse a topology this design cannot hold: the one place for these checks.

        Parameters
        ----------
        couplings : Couplings or QuantizedCouplings
            Anything with CSR ``indptr`` (its degrees are checked).
        n_colors : int, optional
            Colours of the schedule (default: ``couplings.n_colors`` when it has one).

        Raises
        ------
        ValueError
            A p-bit has more neighbours than ``max_degree`` slots, or the graph does not fit the
            register map's fields (p-bits, neighbour slots, colours), naming the number and limit.
        """
        from pbitsim.board.regmap import MAX_COLORS, MAX_PBITS, MAX_SLOTS

        deg = np.diff(np.asarray(couplings.indptr))
        n = len(deg)
        if n > MAX_PBITS:
            raise ValueError(f"{n} p-bits do not fit the register map (at most {MAX_PBITS})")
        if n:
            i = int(np.argmax(deg))
            limit = MAX_SLOTS if self.max_degree is None else min(self.max_degree, MAX_SLOTS)
            if deg[i] > limit:
                raise ValueError(
                    f"p-bit {i} has {int(deg[i])} neighbours but the design has {limit} "
                    f"neighbour slots per p-bit; sparsify the graph"
                )
        if n_colors is None:
            n_colors = getattr(couplings, "n_colors", None)
        if n_colors is not None and n_colors > MAX_COLORS:
            raise ValueError(
                f"{n_colors} colours do not fit the register map (at most {MAX_COLORS})"
            )


# --------------------------------------------------------------------------------------------
# Run-time values of the un-coloured schedules (register contents, not build-time choices)
# --------------------------------------------------------------------------------------------


def enable_threshold(p: float) -> int:
    """The ENABLE register value for enable probability ``p``: round(p * 2**ENABLE_BITS).

    Raises
    ------
    ValueError
        ``p`` is not in (0, 1], or rounds to 0 (below 2**-17).
    """
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
        raise TypeError(f"p must be a number in (0, 1], not {p!r}")
    if not 0.0 < float(p) <= 1.0:
        raise ValueError(f"p must be in (0, 1], not {p!r}")
    t = round(float(p) * (1 << ENABLE_BITS))
    if t < 1:
        raise ValueError(
            f"p = {p!r} is below the smallest enable probability 2**-{ENABLE_BITS} "
            f"({ENABLE_BITS}-bit enable comparison)"
        )
    return int(t)


def enable_probability(threshold: int) -> float:
    """The enable probability an ENABLE register value gives: min(threshold, 2**16) / 2**16."""
    return min(int(threshold), 1 << ENABLE_BITS) / (1 << ENABLE_BITS)


def effective_period(period) -> np.ndarray:
    """Cycles between updates for PERIOD register values: the counter reloads PERIOD - 1 modulo
    2**TIMER_BITS, so 1..65535 mean themselves and 0 means 65536."""
    t = np.asarray(period, dtype=np.int64)
    return ((t - 1) & _TIMER_MASK) + 1


def derive_phases(master: int, period, replicas: int | None = None) -> np.ndarray:
    """Default phases of "async-periodic": phi_i uniform on 0..T_i - 1, from the master seed.

    phi = splitmix64(M, AUX_INDEX + r*n + i) mod T_i (:data:`pbitsim.rng.AUX_INDEX`: a counter
    range of splitmix64 that no generator seed uses); replica 0 is what hardware loads.

    Returns int64 (n,), or (replicas, n) when ``replicas`` is given.
    """
    per = effective_period(period)
    n = per.shape[-1]
    r = 1 if replicas is None else int(replicas)
    z = splitmix64_block(master, AUX_INDEX, r * n).reshape(r, n)
    ph = (z % per.astype(np.uint64)).astype(np.int64)
    return ph if replicas is not None else ph[0]


def _int_array(name: str, value, shape, lo: int, hi: int) -> np.ndarray:
    """``value`` broadcast to ``shape`` as int64, every element an integer in lo..hi."""
    a = np.asarray(value)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(f"{name} must hold integers (cycles), not {value!r}")
    elif a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {value!r}")
    try:
        a = np.broadcast_to(a.astype(np.int64), shape).copy()
    except ValueError:
        raise ValueError(f"{name} must be a scalar or have shape {shape}, not {a.shape}") from None
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return a


def run_time_values(
    design: HardwareDesign,
    n: int,
    master: int | None = None,
    *,
    p: float | None = None,
    period=None,
    phase=None,
    replicas: int | None = None,
) -> dict:
    """The schedule's run-time register values, from user-level ones (the one conversion).

    Parameters
    ----------
    design : HardwareDesign
    n : int
    master : int, optional
        Master seed, from which the default phases are derived (:func:`derive_phases`).
    p : float, optional
        Enable probability ("async-random"; default :data:`DEFAULT_ENABLE_P`).
    period : int or array_like of int, optional
        T_i in cycles, 1..65535, scalar or (n,) ("async-periodic"; default
        :data:`DEFAULT_PERIOD`).
    phase : array_like of int, optional
        phi_i, 0..65535, (n,) or (replicas, n) ("async-periodic"; default derived from
        ``master``). p-bit i first updates in cycle phi_i + 1.
    replicas : int, optional
        When given, ``phase`` has shape (replicas, n).

    Returns
    -------
    dict
        ``enable`` (the ENABLE register, int; 0 unless "async-random"), ``period`` (int64 (n,)
        or None) and ``phase`` (int64 (n,) or (replicas, n), or None).

    Raises
    ------
    ValueError
        A value for another schedule, out of range, or default phases without a master seed.
    """
    given = {"p": p, "period": period, "phase": phase}
    wants = {"async-random": ("p",), "async-periodic": ("period", "phase")}.get(design.schedule, ())
    for name, value in given.items():
        if value is not None and name not in wants:
            owner = "async-random" if name == "p" else "async-periodic"
            raise ValueError(
                f"{name} is a run-time value of schedule {owner!r}, not of {design.schedule!r}"
            )
    out = {"enable": 0, "period": None, "phase": None}
    if design.schedule == "async-random":
        out["enable"] = enable_threshold(DEFAULT_ENABLE_P if p is None else p)
    elif design.schedule == "async-periodic":
        per = _int_array(
            "period", DEFAULT_PERIOD if period is None else period, (n,), 1, _TIMER_MASK
        )
        shape = (n,) if replicas is None else (int(replicas), n)
        if phase is None:
            if master is None:
                raise ValueError(
                    "async-periodic needs phases: give phase=, or a master seed to derive them"
                )
            ph = derive_phases(master, per, replicas)
        else:
            ph = _int_array("phase", phase, shape, 0, _TIMER_MASK)
        out["period"], out["phase"] = per, ph
    return out


def cycles_per_step(design: HardwareDesign, n_colors: int, enable: int = 0, period=None) -> int:
    """Cycles in one Runner step: C (chromatic: every colour once), round(1/p) ("async-random",
    p = :func:`enable_probability`) or round(mean T_i) ("async-periodic"), at least 1, so that
    each p-bit updates about once per step whatever the schedule (as ``method="async"`` counts).
    """
    if design.schedule == "async-random":
        p = enable_probability(enable)
        return max(1, round(1.0 / p)) if p > 0 else 1
    if design.schedule == "async-periodic":
        return max(1, round(float(np.mean(effective_period(period))))) if period is not None else 1
    return max(int(n_colors), 1)
