"""The hardware-faithful cycle model: what a pbitsim FPGA design does, clock cycle by clock cycle.

This is the software twin the RTL is checked against bit for bit (cocotb compares every p-bit's
spin after every clock cycle with :func:`simulate_cycles`). ``docs/hardware-model.md`` states the
same rules for the HDL engineer; the arithmetic is that of :mod:`pbitsim.fixedpoint` and the
generators are those of :mod:`pbitsim.rng`.

The machine, precisely
----------------------
n p-bits, one clock. Cycles are numbered t = 1, 2, ... (cycle t ends with rising edge t); S_t is
the spin vector after edge t and S_0 the initial state (default all -1, i.e. every spin register
0). At edge t a set A_t of p-bits *acts*; the schedule (``HardwareDesign.schedule``) says which:

* ``"chromatic"`` (a proper colouring into colours 0..C-1): cycle t belongs to colour
  c(t) = (t - 1) mod C and is edge number e(t) = (t - 1) // C + 1 of that colour's clock; A_t is
  colour c(t). Warm-up: edges e(t) <= ``warmup_edges``.
* ``"async-random"``: every p-bit i has a second, *enable* generator; i is in A_t iff the top
  ENABLE_BITS = 16 bits of its enable generator, as it stands before the edge, are < P (the
  ENABLE register; p = P / 2**16). Both generators of every p-bit advance at every edge,
  enabled or not. Warm-up: cycles t <= ``warmup_edges``.
* ``"async-periodic"``: every p-bit i has a counter k_i, loaded with PHASE phi_i at a restart;
  at every edge i is in A_t iff k_i == 0, and then k_i <- (T_i - 1) mod 2**16 (T_i = PERIOD),
  else k_i <- k_i - 1. So i acts at cycles phi_i + 1 + m T_i. Warm-up: cycles t <=
  ``warmup_edges``.

For each p-bit i in A_t, at edge t:

1. R = the output of i's (decision) generator as it stands before the edge (:mod:`pbitsim.rng`).
2. Past warm-up: acc = h_i + sum_j (s_j ? J_ij : -J_ij) over i's neighbours j, with s_j read from
   S_{t-1-L} (L = ``read_latency``; S_k = S_0 for k < 0), exact in ``acc_bits``;
   I = clamp(acc, -input_max, +input_max); new s_i = decide(I, T[|I|], R)
   (:func:`pbitsim.fixedpoint.decide`: R == T gives -1; else I >= 0: +1 iff T > R; I < 0: -1 iff
   T > R). In warm-up s_i keeps its value.
3. i's decision generator advances one step (also during warm-up). ("async-random": every p-bit's
   decision generator advances at every edge, acting or not.)

S_t is S_{t-1} with the new spins of A_t; the other p-bits hold. All p-bits of A_t decide from
the same S_{t-1-L}, so coupled p-bits acting in one cycle update in parallel: this is what biases
the un-coloured schedules (and an improper colouring, which is modelled as hardware would behave).

Hence in the chromatic schedule each generator advances once per colour period (C cycles),
exactly when its p-bit's colour clock ticks, and with L = 0 a p-bit sees every neighbour's newest
value (a chromatic Gibbs sweep). "async-periodic" with T_i = C and phi_i = colour of i is the
chromatic schedule (with warm-up counted in cycles).

The published design's phase-shifted colour clocks (0, 120, 240 degrees for 3 colours) map onto this
as colour c <-> phase c * 360/C: its edges in time order are c0 e1, c1 e1, c2 e1, c0 e2, ..., which
is the cycle order above, and a p-bit there samples its neighbours just before its own edge, which
is L = 0. Its 2-flip-flop enable synchroniser is ``warmup_edges = 2``: the first update of colour c
happens at its edge 3, i.e. cycle 2C + c + 1, comparing the seed shifted twice.

Seeds are one per p-bit (the generator's content before edge 1): an explicit array, or derived
from one master seed by :func:`pbitsim.rng.derive_seeds` (replica r uses indices r*n + i, so
replica 0 is what hardware given that master seed loads); the enable generators' seeds likewise
by :func:`pbitsim.rng.derive_enable_seeds`, never equal to a decision seed. Run-time values (p,
periods, phases) are converted to register values by :func:`pbitsim.board.design.run_time_values`,
the same conversion :func:`pbitsim.board.regmap.load_writes` uses.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from pbitsim.board.design import (
    ENABLE_BITS,
    SCHEDULES,
    TIMER_BITS,
    HardwareDesign,
    cycles_per_step,
    enable_probability,
    run_time_values,
)
from pbitsim.couplings import Couplings, greedy_coloring
from pbitsim.fixedpoint import FixedPointSpec, QuantizedCouplings, decide, saturate_input
from pbitsim.rng import make_generator, resolve_enable_seeds, resolve_seeds, rng_kind_code
from pbitsim.sampling import Runner, register_method
from pbitsim.sim import hardware_lanes as hl
from pbitsim.sim import hardware_replica as hrep

__all__ = [
    "HardwareDesign",
    "HardwareRunner",
    "HardwareMachine",
    "simulate_cycles",
    "simulate_cycles_reference",
    "trace_cycles",
    "resolve_seeds",
]

# HardwareDesign (and SCHEDULES) live in pbitsim.board.design, which the gateware and the host read
# too; they are re-exported here, where the model that gives them meaning lives.
__all__ += ["SCHEDULES"]

_TIMER_MASK = (1 << TIMER_BITS) - 1
#: replicas from which the chromatic schedule runs across replica lanes (hardware_lanes) rather
#: than replica after replica with each colour's p-bits vectorised (hardware_replica): measured
#: on the 128 x 128 lattice, flips per CPU-ns by class / across lanes, 0.44 / 0.39 at 32
#: replicas, 0.43 / 0.49 at 48, 0.43 / 0.56 at 64 (by class ~0.42-0.44 whatever the count)
LANES_FROM = 48
#: bytes the kernels' copy by class may take (hardware_replica.ClassState); beyond it the lanes
#: or the event-driven kernel run
CLASS_STATE_BYTES = 1 << 30


# --------------------------------------------------------------------------------------------
# Preparing inputs (shared by the reference, the Numba model and the runner).
# --------------------------------------------------------------------------------------------


def _prepare(couplings_or_quantized, design: HardwareDesign, coloring=None):
    """(QuantizedCouplings, colouring int64 array, number of colours) after checks."""
    if isinstance(couplings_or_quantized, Couplings):
        c = couplings_or_quantized
        if c.fixed_point is not None and c.fixed_point != design.fixed_point:
            # The design's widths are what the hardware has; the couplings' own spec is not used.
            warnings.warn(
                f"the couplings carry {c.fixed_point} but the design uses {design.fixed_point}; "
                f"the design's spec is what runs",
                stacklevel=3,
            )
        q = c.quantized(design.fixed_point)
        if coloring is None:
            coloring = c.coloring
    elif isinstance(couplings_or_quantized, QuantizedCouplings):
        q = couplings_or_quantized
        if q.spec != design.fixed_point:
            raise ValueError(
                f"the couplings were quantised with {q.spec} but the design uses "
                f"{design.fixed_point}"
            )
        if coloring is None:
            coloring = greedy_coloring(q.indptr, q.indices)
    else:
        raise TypeError(
            f"expected Couplings or QuantizedCouplings, not {type(couplings_or_quantized)}"
        )
    col = np.asarray(coloring)
    if col.shape != (q.n,) or (q.n and (col.dtype.kind not in "iu" or col.min() < 0)):
        raise ValueError(f"coloring must be {q.n} non-negative integers")
    col = col.astype(np.int64)
    n_colors = int(col.max()) + 1 if q.n else 1
    design.check(q, n_colors if design.coloured else None)
    return q, col, n_colors


def _initial(initial, design: HardwareDesign, n: int) -> np.ndarray:
    if initial is None:
        return np.full(n, design.initial_spin, dtype=np.int8)
    s = np.asarray(initial)
    if s.shape[-1:] != (n,) or not np.all(np.isin(s, (-1, 1))):
        raise ValueError(f"initial state must hold n = {n} values of -1/+1 (per replica)")
    return s.astype(np.int8)


def _schedule_inputs(
    design: HardwareDesign,
    n: int,
    seed_or_seeds,
    replicas: int | None,
    p=None,
    period=None,
    phase=None,
    enable_seeds=None,
    master: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Decision seeds and the keyword arguments of :class:`HardwareMachine` for the schedule
    (``enable_seeds``, ``enable``, ``period``, ``phase``), from user-level values. Defaults
    (enable seeds, phases) come from the master seed: ``seed_or_seeds`` when it is one, else
    ``master``."""
    seeds = resolve_seeds(seed_or_seeds, n, design.rng, replicas)
    if np.ndim(seed_or_seeds) == 0:
        master = int(seed_or_seeds)
    values = run_time_values(design, n, master, p=p, period=period, phase=phase, replicas=replicas)
    kw: dict = {}
    if design.schedule == "async-random":
        if enable_seeds is None and master is None:
            raise ValueError(
                "async-random with explicit seeds needs enable_seeds (a master seed or one per "
                "p-bit)"
            )
        kw["enable_seeds"] = resolve_enable_seeds(
            master if enable_seeds is None else enable_seeds, seeds, design.rng
        )
        kw["enable"] = values["enable"]
    elif enable_seeds is not None:
        raise ValueError(f"enable_seeds: schedule {design.schedule!r} has no enable generators")
    if design.schedule == "async-periodic":
        kw["period"], kw["phase"] = values["period"], values["phase"]
    return seeds, kw


# --------------------------------------------------------------------------------------------
# Pure-Python reference: one obviously-correct loop, following the module docstring line by line.
# --------------------------------------------------------------------------------------------


def trace_cycles(
    couplings_or_quantized,
    design: HardwareDesign,
    seed_or_seeds,
    cycles: int,
    initial=None,
    coloring=None,
    *,
    p: float | None = None,
    period=None,
    phase=None,
    enable_seeds=None,
) -> tuple[np.ndarray, list[dict]]:
    """Slow reference model with a log of every p-bit decision (for docs and RTL debugging).

    Arguments as :func:`simulate_cycles`.

    Returns
    -------
    states : np.ndarray of int8, shape (cycles, n)
        S_1 .. S_cycles.
    events : list of dict
        One per acting p-bit per cycle, in cycle order, then p-bit order: ``cycle``, ``colour``
        (None for un-coloured schedules), ``edge`` (chromatic: edge of the colour's clock;
        un-coloured: how many times this p-bit has acted, this one included), ``pbit``, ``e``
        (async-random: the compared enable number, else None), ``r`` (compared random number),
        ``acc`` (exact sum, None in warm-up), ``i_code`` (saturated), ``t`` (table entry),
        ``spin`` (after the edge), ``updated`` (False in warm-up).
    """
    q, col, n_colors = _prepare(couplings_or_quantized, design, coloring)
    n = q.n
    spec = design.fixed_point
    seeds, kw = _schedule_inputs(design, n, seed_or_seeds, None, p, period, phase, enable_seeds)
    gens = [make_generator(design.rng, int(s)) for s in seeds]
    if design.schedule == "async-random":
        egens = [make_generator(design.rng, int(s)) for s in kw["enable_seeds"]]
        threshold = kw["enable"]
    if design.schedule == "async-periodic":
        counters = [int(x) & _TIMER_MASK for x in kw["phase"]]
        reload = [(int(x) - 1) & _TIMER_MASK for x in kw["period"]]
    acted = [0] * n
    warmup = design.warmup_cycles(n_colors)
    history = [_initial(initial, design, n).astype(np.int64)]  # history[k] = S_k
    states = np.empty((int(cycles), n), dtype=np.int8)
    events: list[dict] = []
    for t in range(1, int(cycles) + 1):
        read = history[max(t - 1 - design.read_latency, 0)]
        new = history[t - 1].copy()
        colour = edge = None
        enables = {}
        if design.schedule == "chromatic":
            colour = (t - 1) % n_colors
            edge = (t - 1) // n_colors + 1
            acting = [int(i) for i in np.flatnonzero(col == colour)]
        elif design.schedule == "async-random":
            enables = {i: egens[i].output(ENABLE_BITS) for i in range(n)}
            acting = [i for i in range(n) if enables[i] < threshold]
        else:
            acting = [i for i in range(n) if counters[i] == 0]
            counters = [reload[i] if counters[i] == 0 else counters[i] - 1 for i in range(n)]
        for i in acting:
            acted[i] += 1
            r = gens[i].output(spec.rng_bits)
            ev = {
                "cycle": t,
                "colour": colour,
                "edge": edge if design.coloured else acted[i],
                "pbit": i,
                "e": enables.get(i),
                "r": r,
                "acc": None,
                "i_code": None,
                "t": None,
                "updated": False,
            }
            if t > warmup:
                acc = int(q.h_codes[i])
                for k in range(q.indptr[i], q.indptr[i + 1]):
                    acc += int(q.j_codes[k]) * int(read[q.indices[k]])
                i_code = int(saturate_input(acc, spec))
                new[i] = int(decide(i_code, q.table, r))
                ev.update(acc=acc, i_code=i_code, t=int(q.table[abs(i_code)]), updated=True)
            ev["spin"] = int(new[i])
            events.append(ev)
        # Generators advance at the edge: the acting p-bits' (their clocks tick), or, in
        # async-random, every p-bit's decision and enable generator (free-running).
        for i in range(n) if design.schedule == "async-random" else acting:
            gens[i].step()
        if design.schedule == "async-random":
            for g in egens:
                g.step()
        history.append(new)
        states[t - 1] = new
    return states, events


def simulate_cycles_reference(
    couplings_or_quantized,
    design: HardwareDesign,
    seed_or_seeds,
    cycles: int,
    initial=None,
    coloring=None,
    **values,
) -> np.ndarray:
    """Pure-Python version of :func:`simulate_cycles` (same arguments, same result, slow)."""
    return trace_cycles(
        couplings_or_quantized, design, seed_or_seeds, cycles, initial, coloring, **values
    )[0]


def _replica_major(name: str) -> property:
    """A state array of :class:`HardwareMachine` in the replica-major layout, as an attribute.

    The kernels run on their own copy of the state (lane-major, :mod:`pbitsim.sim.hardware_lanes`,
    or by class, :class:`pbitsim.sim.hardware_replica.ClassState`); reading the attribute first
    brings the array up to date from it and, since the caller may write into the array, marks
    the copy stale (the next run reloads it); so does assigning.
    """
    key = "_rm" + name

    def get(self):
        self._sync_replica_major()
        self._lanes_current = False
        return self.__dict__[key]

    def set(self, value):
        self._sync_replica_major()
        self._lanes_current = False
        self.__dict__[key] = value

    return property(get, set, doc=f"replica-major {name.strip('_')} (see _replica_major)")


class HardwareMachine:
    """Many replicas of one design running one model, advanced cycle by cycle (Numba).

    Replicas whose p-bits act in classes (the chromatic schedule below :data:`LANES_FROM`
    replicas, "async-periodic" with one period) run one after another with each class's p-bits
    vectorised (:mod:`pbitsim.sim.hardware_replica`); from LANES_FROM replicas the chromatic
    schedule runs vectorised across replica lanes (:mod:`pbitsim.sim.hardware_lanes`);
    "async-random", and "async-periodic" with several periods, run replica after replica with
    only the acting p-bits deciding. Every replica runs exactly as it would alone.

    Parameters
    ----------
    couplings_or_quantized : Couplings or QuantizedCouplings
    design : HardwareDesign
    seeds : np.ndarray of uint64, shape (replicas, n)
        Generator states before edge 1 (see :func:`resolve_seeds`).
    initial : array_like, optional
        Initial spins, shape (n,) or (replicas, n); default ``design.initial_spin``.
    coloring : array_like, optional
        Needed only with QuantizedCouplings (default: greedy colouring of its graph).
    enable_seeds : np.ndarray of uint64, shape (replicas, n)
        "async-random" (required): enable generator states before edge 1.
    enable : int
        "async-random" (required): the ENABLE register (p = enable / 2**16).
    period : array_like of int, shape (n,)
        "async-periodic" (required): the PERIOD registers (0 counts as 2**16).
    phase : array_like of int, shape (n,) or (replicas, n)
        "async-periodic" (required): the PHASE registers, loaded into the counters now and at
        every :meth:`restart`.

    Attributes
    ----------
    cycle : int
        Cycles run so far.
    n_colors : int
        Colours of the colouring (used by the chromatic schedule only).
    quantized : QuantizedCouplings
    """

    # The state, replica-major: spins hist[R, L + 1, n] (hist[:, k % (L + 1)] = S_k), decision
    # and enable generators [R, n], counters [R, n]. The kernels that keep their own copy
    # (hardware_lanes.LaneState, hardware_replica.ClassState) convert only when one side has
    # changed; the others run on these arrays.
    _hist = _replica_major("_hist")
    _gen = _replica_major("_gen")
    _egen = _replica_major("_egen")
    _counter = _replica_major("_counter")

    def __init__(
        self,
        couplings_or_quantized,
        design: HardwareDesign,
        seeds: np.ndarray,
        initial=None,
        coloring=None,
        *,
        enable_seeds=None,
        enable: int | None = None,
        period=None,
        phase=None,
    ) -> None:
        self._lanes = None  # the kernels' own copy of the state (LaneState or ClassState)
        self._lanes_current = False  # it holds the state
        self._rm_current = True  # the replica-major arrays hold the state
        self._layout = None  # the couplings as the lane kernels read them
        self._rows = None  # the couplings as the one-replica kernels read them
        self._periods_seen = None  # "async-periodic": what the PERIOD registers imply
        q, col, self.n_colors = _prepare(couplings_or_quantized, design, coloring)
        self.design, self.quantized = design, q
        seeds = np.asarray(seeds, dtype=np.uint64)
        if seeds.ndim != 2 or seeds.shape[1] != q.n:
            raise ValueError(f"seeds must have shape (replicas, {q.n}), not {seeds.shape}")
        self.replicas = seeds.shape[0]
        R, n = seeds.shape
        s0 = np.broadcast_to(_initial(initial, design, q.n), (self.replicas, q.n))
        self._hist = np.ascontiguousarray(
            np.repeat(s0[:, None, :], design.read_latency + 1, axis=1), dtype=np.int8
        )
        self._gen = seeds.copy()
        self._order = np.argsort(col, kind="stable").astype(np.int64)
        self._cstart = np.searchsorted(col[self._order], np.arange(self.n_colors + 1))
        self._cstart = self._cstart.astype(np.int64)
        self._indices = q.indices.astype(np.int64)
        self._indptr = q.indptr.astype(np.int64)
        self._j = q.j_codes.astype(np.int64)
        self._h = q.h_codes.astype(np.int64)
        self._table = q.table.astype(np.uint64)
        self._kind = rng_kind_code(design.rng)
        self.cycle = 0
        # Run-time values of the un-coloured schedules (empty arrays where unused: the kernel
        # takes them all).
        self._egen = np.zeros((R, 0), np.uint64)
        self._threshold = 0
        self._reload = np.zeros(0, np.int64)
        self._phase = np.zeros((R, 0), np.int64)
        self._counter = np.zeros((R, 0), np.int64)
        given = {"enable_seeds": enable_seeds, "enable": enable, "period": period, "phase": phase}
        wants = {
            "async-random": ("enable_seeds", "enable"),
            "async-periodic": ("period", "phase"),
        }.get(design.schedule, ())
        for name, value in given.items():
            if (value is None) == (name in wants):
                raise ValueError(
                    f"{name} is {'required' if value is None else 'not used'} by schedule "
                    f"{design.schedule!r}"
                )
        if enable_seeds is not None:
            self.set_enable_generator_states(
                np.broadcast_to(np.asarray(enable_seeds, np.uint64), (R, n))
            )
            self.set_enable(enable)
        if period is not None:
            self._reload = np.zeros(n, np.int64)
            self._phase = np.zeros((R, n), np.int64)
            self._counter = np.zeros((R, n), np.int64)
            self.set_periods(period)
            self.set_phases(phase)
            self._counter[:] = self._phase

    @property
    def spins(self) -> np.ndarray:
        """Current spins, int8 (replicas, n) (a copy)."""
        return self._peek("_hist")[:, self.cycle % (self.design.read_latency + 1)].copy()

    @property
    def generator_states(self) -> np.ndarray:
        """Current (decision) generator states, uint64 (replicas, n) (a copy)."""
        return self._peek("_gen").copy()

    @property
    def enable_generator_states(self) -> np.ndarray:
        """Current enable generator states, uint64 (replicas, n) ("async-random"; a copy)."""
        return self._peek("_egen").copy()

    @property
    def counters(self) -> np.ndarray:
        """Current counters k_i, int64 (replicas, n) ("async-periodic"; a copy)."""
        return self._peek("_counter").copy()

    def _peek(self, name: str) -> np.ndarray:
        """The replica-major array ``name``, up to date, to read only (the lane-major copy stays
        current)."""
        self._sync_replica_major()
        return self.__dict__["_rm" + name]

    def _sync_replica_major(self) -> None:
        if not self._rm_current:
            d = self.__dict__
            self._lanes.store(
                d["_rm_hist"], d["_rm_gen"], d["_rm_egen"], d["_rm_counter"], self.cycle
            )
            self._rm_current = True

    def _drop_copy(self) -> None:
        """Bring the replica-major arrays up to date and forget the kernels' copy (it holds
        couplings or periods that are about to change)."""
        self._sync_replica_major()
        self._lanes, self._lanes_current = None, False

    def _by_class(self) -> bool:
        """Whether this call runs by class (:class:`hardware_replica.ClassState`): the chromatic
        schedule below LANES_FROM replicas; "async-periodic" with one period T and every counter
        below it (while the copy by class holds the state, it holds the classes too). Either
        only while the copy fits in CLASS_STATE_BYTES."""
        if isinstance(self._lanes, hrep.ClassState) and self._lanes_current:
            return True
        periodic = self.design.schedule == "async-periodic"
        if self.design.coloured and self.replicas >= LANES_FROM:
            return False
        if not self.design.coloured and not (periodic and self._period_summary()[0]):
            return False
        n, entries = self.quantized.n, len(self._replica_rows()[1])
        slots = self.design.read_latency + 1
        if hrep.ClassState.nbytes(self.replicas, n, slots, entries, not periodic) > (
            CLASS_STATE_BYTES
        ):
            return False
        return not periodic or self._peek("_counter").max(initial=0) < self._period_summary()[0]

    def _lane_state(self, by_class: bool = False):
        """The kernels' own copy of the state, current (made and loaded when needed): by class
        (``by_class``, :meth:`_by_class`) or lane-major."""
        n = self.quantized.n
        slots = self.design.read_latency + 1
        if self._lanes is not None and isinstance(self._lanes, hrep.ClassState) != by_class:
            self._drop_copy()
        if self._lanes is None and by_class:
            if self.design.coloured:
                self._lanes = hrep.ClassState(
                    self.replicas, n, slots, self.n_colors, self._replica_rows(), self._order,
                    self._cstart,
                )  # fmt: skip
            else:
                T = self._period_summary()[0]
                self._lanes = hrep.ClassState(self.replicas, n, slots, T, self._replica_rows())
        elif self._lanes is None:
            from numba import get_num_threads

            self._lanes = hl.LaneState(self.replicas, n, slots, self._order, get_num_threads())
        if not self._lanes_current:
            d = self.__dict__
            self._lanes.load(
                d["_rm_hist"], d["_rm_gen"], d["_rm_egen"], d["_rm_counter"], self.cycle
            )
            self._lanes_current = True
        return self._lanes

    def _lanes_layout(self) -> tuple:
        if self._layout is None:
            n = self.quantized.n
            order = self._order if self.design.coloured else np.arange(n)
            self._layout = hl.lanes_layout(
                self._indptr, self._indices, self._j, self._h, order,
                self.design.fixed_point.acc_bits,
            )  # fmt: skip
        return self._layout

    def _replica_rows(self) -> tuple:
        if self._rows is None:
            n = self.quantized.n
            self._rows = hrep.rows(
                self._indptr, self._indices, self._j, self._h,
                self._order if self.design.coloured else np.arange(n),
                self.design.fixed_point.acc_bits,
            )  # fmt: skip
        return self._rows

    @property
    def enable(self) -> int:
        """The ENABLE register ("async-random")."""
        return self._threshold

    @property
    def periods(self) -> np.ndarray:
        """The PERIOD registers, int64 (n,) ("async-periodic")."""
        return (self._reload + 1) & _TIMER_MASK

    @property
    def cycles_per_step(self) -> int:
        """Cycles in one Runner step (:func:`pbitsim.board.design.cycles_per_step`)."""
        if self.design.schedule == "async-periodic":
            return self._period_summary()[2]
        return cycles_per_step(self.design, self.n_colors, self._threshold, self.periods)

    def _period_summary(self) -> tuple:
        """ "async-periodic": (the one period T, or 0 when they differ; the mean period; cycles
        per step), kept until the next :meth:`set_periods` (a short call would otherwise spend
        more on these O(n) reductions than on its updates)."""
        if self._periods_seen is None:
            per = self.periods
            one = len(per) and bool(np.all(self._reload == self._reload[0]))
            self._periods_seen = (
                int(self._reload[0]) + 1 if one else 0,
                float(np.mean(self._reload + 1)) if len(per) else 1.0,
                cycles_per_step(self.design, self.n_colors, self._threshold, per),
            )
        return self._periods_seen

    @property
    def warmup_cycles(self) -> int:
        return self.design.warmup_cycles(self.n_colors)

    def set_codes(self, j_codes, h_codes, table) -> None:
        """New J codes (CSR order), h codes and table on the same graph; spins, generators and
        the cycle count continue (what rewriting a board's J/BIAS/TABLE registers does)."""
        n, nnz = len(self._h), len(self._j)
        j = np.asarray(j_codes, np.int64)
        h = np.asarray(h_codes, np.int64)
        t = np.asarray(table, np.uint64)
        if j.shape != (nnz,) or h.shape != (n,) or t.shape != self._table.shape:
            raise ValueError(
                f"codes must have shapes J ({nnz},), h ({n},), table {self._table.shape}; got "
                f"{j.shape}, {h.shape}, {t.shape}"
            )
        if isinstance(self._lanes, hrep.ClassState):
            self._drop_copy()  # it holds the rows
        self._j, self._h, self._table = j.copy(), h.copy(), t.copy()
        self._layout = self._rows = None

    def set_quantized(self, q: QuantizedCouplings) -> None:
        """:meth:`set_codes` from a QuantizedCouplings of the same graph and fixed-point spec."""
        if q.spec != self.design.fixed_point:
            raise ValueError(f"the couplings use {q.spec}, the design {self.design.fixed_point}")
        if not (
            np.array_equal(q.indptr, self._indptr) and np.array_equal(q.indices, self._indices)
        ):
            raise ValueError("the new couplings have another graph than the machine's")
        self.set_codes(q.j_codes, q.h_codes, q.table)
        self.quantized = q

    def set_spins(self, spins) -> None:
        """Overwrite the spins, (n,) or (replicas, n) of -1/+1. With read latency L > 0 the last
        L states read by the next cycles are overwritten too (the state is taken as held)."""
        s = np.broadcast_to(
            _initial(spins, self.design, len(self._h)), (self.replicas, len(self._h))
        )
        self._hist[:] = s[:, None, :]

    def set_spin(self, i: int, spin: int) -> None:
        """Overwrite p-bit i's spin in every replica (what a SPIN write does): with read latency
        L > 0 its last L values read by the next cycles are overwritten too; the other p-bits'
        histories are untouched."""
        if spin not in (-1, 1):
            raise ValueError(f"spin must be -1 or +1, not {spin!r}")
        self._hist[:, :, int(i)] = spin

    def set_generator_states(self, states) -> None:
        """Overwrite the generator states, uint64 (replicas, n) (as seed writes do)."""
        g = np.asarray(states, dtype=np.uint64)
        if g.shape != self._gen.shape:
            raise ValueError(f"generator states must have shape {self._gen.shape}, not {g.shape}")
        self._gen[:] = g

    def _require(self, schedule: str, what: str) -> None:
        if self.design.schedule != schedule:
            raise ValueError(f"{what}: schedule {self.design.schedule!r} has none ({schedule})")

    def set_enable_generator_states(self, states) -> None:
        """Overwrite the enable generator states, uint64 (replicas, n) ("async-random")."""
        self._require("async-random", "enable generators")
        g = np.asarray(states, dtype=np.uint64)
        if g.shape != self._gen.shape:
            raise ValueError(f"enable states must have shape {self._gen.shape}, not {g.shape}")
        self._egen = g.copy()

    def set_enable(self, enable: int) -> None:
        """The ENABLE register ("async-random"): from the next cycle on, a p-bit acts iff its
        enable number (16 bits) is < ``enable``."""
        self._require("async-random", "ENABLE")
        e = int(enable)
        if e < 0:
            raise ValueError(f"ENABLE must be >= 0, not {e}")
        self._threshold = e

    def set_periods(self, period) -> None:
        """The PERIOD registers, (n,) of 0..65535 ("async-periodic"): read at each counter
        reload, so a new period takes effect after the p-bit's next update."""
        self._require("async-periodic", "PERIOD")
        t = np.broadcast_to(np.asarray(period, np.int64), self._reload.shape)
        if t.size and (t.min() < 0 or t.max() > _TIMER_MASK):
            raise ValueError(f"PERIOD values must be in 0..{_TIMER_MASK}")
        self._drop_copy()  # its classes follow the periods
        self._reload = (t - 1) & _TIMER_MASK
        self._periods_seen = None

    def set_phases(self, phase) -> None:
        """The PHASE registers, (n,) or (replicas, n) of 0..65535 ("async-periodic"): loaded
        into the counters at the next :meth:`restart`."""
        self._require("async-periodic", "PHASE")
        ph = np.broadcast_to(np.asarray(phase, np.int64), self._phase.shape)
        if ph.size and (ph.min() < 0 or ph.max() > _TIMER_MASK):
            raise ValueError(f"PHASE values must be in 0..{_TIMER_MASK}")
        self._phase = ph.copy()

    def restart(self) -> None:
        """Restart the schedule as a CONTROL restart does: the next cycle is cycle 1 (colour 0,
        warm-up again; "async-periodic": counters loaded from PHASE); spins and generators keep
        their values."""
        spins = self.spins
        self.cycle = 0
        self._hist[:] = spins[:, None, :]
        self._counter[:] = self._phase

    def run(self, cycles: int, record_every: int = 1) -> np.ndarray:
        """Run ``cycles`` cycles; return the spins after every ``record_every``-th cycle.

        Returns int8 (replicas, cycles // record_every, n); ``record_every=0`` records nothing.
        """
        cycles = int(cycles)
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, not {cycles}")
        k = cycles // record_every if record_every > 0 else 0
        out = np.empty((self.replicas, k, self.quantized.n), dtype=np.int8)
        if cycles and self.quantized.n:
            if self.design.coloured:
                self._run_chromatic(cycles, int(record_every), out)
            else:
                self._run_uncoloured(cycles, int(record_every), out)
        self.cycle += cycles
        return out

    def _threads(self, lane_sites: int) -> int:
        """Threads for a call that updates or scans ``lane_sites`` (replica, p-bit) pairs: one
        for a short call (no thread to wake), else Numba's count. Results do not depend on it."""
        from numba import get_num_threads

        return 1 if lane_sites < hl.ONE_THREAD_BELOW else get_num_threads()

    def _run_chromatic(self, cycles: int, record_every: int, out: np.ndarray) -> None:
        spec = self.design.fixed_point
        work = self.replicas * self.quantized.n * cycles // max(self.n_colors, 1)
        if self._by_class():
            # few replicas (one: the emulator's many short calls): each colour's p-bits
            # vectorised, replica after replica
            hrep.run_classes(
                self._lane_state(True), self._table, self._kind, spec.rng_bits, spec.input_max,
                self.design.warmup_edges * self.n_colors + 1, self.design.read_latency,
                self.cycle, cycles, record_every, out, self._threads(work),
            )  # fmt: skip
        else:
            rules = (
                self._table, self._order, self._cstart, self.n_colors, self._kind,
                spec.rng_bits, spec.input_max, self.design.warmup_edges, self.design.read_latency,
            )  # fmt: skip
            hl.run_chromatic(
                self._lanes_layout() + rules, self._lane_state(), self.cycle, cycles,
                record_every, out, self._threads(work),
            )  # fmt: skip
        self._rm_current = False

    def _run_uncoloured(self, cycles: int, record_every: int, out: np.ndarray) -> None:
        spec = self.design.fixed_point
        n = self.quantized.n
        rules = (
            self._table,
            self._kind,
            spec.rng_bits,
            spec.input_max,
            self.warmup_cycles,
            self.design.read_latency,
        )
        if self.design.schedule == "async-periodic":
            updates = self.replicas * n * cycles / self._period_summary()[1]
            threads = self._threads(int(updates))
            if self._by_class():
                # one period: its phase classes, each replica's filed once and kept
                hrep.run_classes(
                    self._lane_state(True), self._table, self._kind, spec.rng_bits,
                    spec.input_max, self.warmup_cycles + 1, self.design.read_latency,
                    self.cycle, cycles, record_every, out, threads,
                )  # fmt: skip
                self._rm_current = False
            else:
                hrep.run_periodic_events(
                    self._replica_rows() + rules, self._reload, self._hist, self._gen,
                    self._counter, self.cycle, cycles, record_every, out, threads,
                )  # fmt: skip
            return
        # "async-random": replica after replica (every generator steps every cycle, in vector
        # passes over the p-bits; the acting tenth decide)
        hrep.run_random_replicas(
            self._replica_rows() + rules, self._threshold, self._hist, self._gen, self._egen,
            self.cycle, cycles, record_every, out, self._threads(self.replicas * n * cycles),
        )  # fmt: skip


def simulate_cycles(
    couplings_or_quantized,
    design: HardwareDesign,
    seed_or_seeds,
    cycles: int,
    initial=None,
    coloring=None,
    *,
    p: float | None = None,
    period=None,
    phase=None,
    enable_seeds=None,
) -> np.ndarray:
    """Every p-bit's spin after every clock cycle: what the RTL must reproduce bit for bit.

    Parameters
    ----------
    couplings_or_quantized : Couplings or QuantizedCouplings
        A Couplings is quantised with ``design.fixed_point`` and run with its own colouring; a
        QuantizedCouplings must use that spec and takes ``coloring`` (default: greedy).
    design : HardwareDesign
    seed_or_seeds : int or array_like
        Master seed, or one generator seed per p-bit (shape (n,)).
    cycles : int
    initial : array_like, optional
        Initial spins (n,) of -1/+1; default all ``design.initial_spin``.
    coloring : array_like, optional
    p : float, optional
        "async-random": enable probability, rounded to the ENABLE register value
        round(p * 2**16) (default 0.1).
    period : int or array_like of int, optional
        "async-periodic": T_i in cycles, 1..65535 (default 8).
    phase : array_like of int, optional
        "async-periodic": phi_i (p-bit i first acts in cycle phi_i + 1); default derived from
        the master seed (:func:`pbitsim.board.design.derive_phases`).
    enable_seeds : int or array_like, optional
        "async-random": master seed or per-p-bit seeds of the enable generators; default the
        master seed ``seed_or_seeds``.

    Returns
    -------
    np.ndarray of int8, shape (cycles, n)
        Row t-1 is the state after edge t.
    """
    q, col, _ = _prepare(couplings_or_quantized, design, coloring)
    seeds, kw = _schedule_inputs(design, q.n, seed_or_seeds, 1, p, period, phase, enable_seeds)
    m = HardwareMachine(q, design, seeds, initial=initial, coloring=col, **kw)
    return m.run(cycles)[0]


# --------------------------------------------------------------------------------------------
# Sampling method "hardware".
# --------------------------------------------------------------------------------------------


def resolve_design(
    couplings: Couplings,
    design=None,
    *,
    schedule: str | None = None,
    read_latency: int | None = None,
    fixed_point: FixedPointSpec | None = None,
) -> HardwareDesign:
    """The design ``method="hardware"`` runs: a preset or a given design, with options applied.

    The fixed-point spec is, in order: ``fixed_point`` when given; the design's own when
    ``design`` is a :class:`HardwareDesign` or its dict (an explicit design is used as given);
    else (``design`` None or a preset name) the model's own spec (``couplings.fixed_point``)
    when it carries one, else the preset's. ``schedule`` and ``read_latency`` replace the
    design's.
    """
    explicit = isinstance(design, HardwareDesign | dict)
    d = HardwareDesign.from_name("default" if design is None else design)
    changes: dict = {}
    if fixed_point is not None:
        if not isinstance(fixed_point, FixedPointSpec):
            raise TypeError(f"fixed_point must be a FixedPointSpec, not {fixed_point!r}")
        changes["fixed_point"] = fixed_point
    elif not explicit and couplings.fixed_point is not None:
        changes["fixed_point"] = couplings.fixed_point
    if schedule is not None:
        changes["schedule"] = schedule
    if read_latency is not None:
        changes["read_latency"] = read_latency
    return dataclasses.replace(d, **changes) if changes else d


@register_method("hardware")
class HardwareRunner(Runner):
    """``sample(..., method="hardware")``: the cycle model as a sampler.

    One step is :attr:`HardwareMachine.cycles_per_step` cycles: one colour period (C cycles:
    every colour updated once) for the chromatic schedule, round(1/p) cycles for
    "async-random", round(mean T) cycles for "async-periodic" (each p-bit updates about once per
    step, as ``method="async"`` counts).

    Options
    -------
    design : str, HardwareDesign or dict
        ``"default"`` (default), ``"published"``, a :class:`HardwareDesign` or its dict.
    schedule, read_latency : optional
        Replace the design's (e.g. ``schedule="async-random", read_latency=1``).
    fixed_point : FixedPointSpec, optional
        The spec to run. Default: the model's own spec when it carries one and ``design`` is a
        preset name (:func:`resolve_design`).
    p, period, phase, enable_seeds : optional
        Run-time values of the un-coloured schedules (:func:`simulate_cycles`); phases (when not
        given) differ per replica, derived from the master seed.
    seeds : array_like, optional
        Explicit generator seeds, shape (replicas, n), instead of deriving them from ``seed``.
    initial : array_like, optional
        Initial spins, (n,) or (replicas, n).

    Replica r with master seed S runs exactly what :func:`simulate_cycles` runs with
    ``derive_seeds(S, n, kind, replicas)[r]`` (and the enable seeds and phases of replica r).
    """

    step_unit = "colour period"

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        design=None,
        seeds=None,
        initial=None,
        schedule: str | None = None,
        read_latency: int | None = None,
        fixed_point: FixedPointSpec | None = None,
        p: float | None = None,
        period=None,
        phase=None,
        enable_seeds=None,
    ) -> None:
        design = resolve_design(
            couplings, design, schedule=schedule, read_latency=read_latency,
            fixed_point=fixed_point,
        )  # fmt: skip
        if seed is None:
            # Explicit seeds need no master seed, but defaults derived from it (enable seeds,
            # phases) do: one is drawn and recorded either way.
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        super().__init__(couplings, replicas, seed)
        self.design = design
        if not design.coloured:
            self.step_unit = "async step"
        gen, kw = _schedule_inputs(
            design,
            couplings.n,
            seed if seeds is None else seeds,
            self.replicas,
            p,
            period,
            phase,
            enable_seeds,
            master=seed,
        )
        self.machine = HardwareMachine(couplings, design, gen, initial=initial, **kw)
        self.settings = {"design": design.to_dict(), "master_seed": seed}
        if seeds is not None:
            self.settings["seeds"] = [[int(x) for x in row] for row in gen]
        if initial is not None:
            self.settings["initial"] = np.asarray(initial).tolist()
        if design.schedule == "async-random":
            self.settings["enable"] = int(kw["enable"])
            self.settings["p"] = enable_probability(kw["enable"])
            if enable_seeds is not None:
                self.settings["enable_seeds"] = np.asarray(kw["enable_seeds"]).tolist()
        if design.schedule == "async-periodic":
            self.settings["period"] = kw["period"].tolist()
            if phase is not None:
                self.settings["phase"] = np.asarray(phase).tolist()
        self.settings["cycles_per_step"] = self.machine.cycles_per_step

    def advance(self, sweeps: int) -> None:
        self.machine.run(int(sweeps) * self.machine.cycles_per_step, record_every=0)

    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        period = self.machine.cycles_per_step
        return self.machine.run(int(k) * int(thin) * period, record_every=int(thin) * period)

    def _load(self, couplings: Couplings) -> None:
        # What weight_writes does to a board: new J, bias and table; spins, generators and the
        # cycle count (colour, warm-up) continue.
        q, _, _ = _prepare(couplings, self.design)
        self.machine.set_quantized(q)

    def _set_state(self, spins: np.ndarray) -> None:
        self.machine.set_spins(spins)

    def info(self) -> dict:
        return {
            "cycles": self.machine.cycle,
            "colors": self.machine.n_colors,
            "cycles_per_step": self.machine.cycles_per_step,
            "quantization": self.machine.quantized.report(),
        }
