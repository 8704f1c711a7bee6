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
from pbitsim.rng import RNG_KINDS

__all__ = ["HardwareDesign", "SCHEDULES"]

#: Update schedules a design can have (``docs/hardware-model.md``).
SCHEDULES = ("chromatic",)


@dataclass(frozen=True)
class HardwareDesign:
    """Build-time choices of a p-bit design that change what it computes.

    Parameters
    ----------
    fixed_point : FixedPointSpec
        Widths and arithmetic (:mod:`pbitsim.fixedpoint`).
    rng : {"xorshift64", "lfsr32-xnor"}
        Per-p-bit generator (:mod:`pbitsim.rng`).
    schedule : {"chromatic"}
        One colour per clock cycle, colours in order 0..C-1.
    warmup_edges : int
        Edges of each colour's clock, counted from the first, at which no spin changes (the
        generators still advance): 2 for the published design's 2-flip-flop enable synchroniser.
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
