"""The hardware-faithful cycle model: what a pbitsim FPGA design does, clock cycle by clock cycle.

This is the software twin the RTL is checked against bit for bit (cocotb compares every p-bit's
spin after every clock cycle with :func:`simulate_cycles`). ``docs/hardware-model.md`` states the
same rules for the HDL engineer; the arithmetic is that of :mod:`pbitsim.fixedpoint` and the
generators are those of :mod:`pbitsim.rng`.

The machine, precisely
----------------------
n p-bits with a proper colouring into colours 0..C-1, one clock. Cycles are numbered t = 1, 2, ...
(cycle t ends with rising edge t); S_t is the spin vector after edge t and S_0 the initial state
(default all -1, i.e. every spin register 0).

* Cycle t belongs to colour c(t) = (t - 1) mod C and is edge number e(t) = (t - 1) // C + 1 of that
  colour's clock. Only p-bits of colour c(t) do anything at edge t.
* For each such p-bit i, at edge t:

  1. R = the output of i's generator as it stands before the edge (:mod:`pbitsim.rng`).
  2. If e(t) > ``warmup_edges``: acc = h_i + sum_j (s_j ? J_ij : -J_ij) over i's neighbours j,
     with s_j read from S_{t-1-L} (L = ``read_latency``; S_k = S_0 for k < 0), exact in
     ``acc_bits``; I = clamp(acc, -input_max, +input_max); new s_i = decide(I, T[|I|], R)
     (:func:`pbitsim.fixedpoint.decide`: R == T gives -1; else I >= 0: +1 iff T > R;
     I < 0: -1 iff T > R). Otherwise (warm-up) s_i keeps its value.
  3. i's generator advances one step (also during warm-up).

  S_t is S_{t-1} with the colour's new spins; p-bits of other colours hold. All p-bits of a colour
  decide from the same S_{t-1-L}, so even an improper colouring is modelled as hardware would
  behave (coupled p-bits of one colour update in parallel).

Hence each generator advances once per colour period (C cycles), exactly when its p-bit's colour
clock ticks, and with L = 0 a p-bit sees every neighbour's newest value (a chromatic Gibbs sweep).

The published design's phase-shifted colour clocks (0, 120, 240 degrees for 3 colours) map onto this
as colour c <-> phase c * 360/C: its edges in time order are c0 e1, c1 e1, c2 e1, c0 e2, ..., which
is the cycle order above, and a p-bit there samples its neighbours just before its own edge, which
is L = 0. Its 2-flip-flop enable synchroniser is ``warmup_edges = 2``: the first update of colour c
happens at its edge 3, i.e. cycle 2C + c + 1, comparing the seed shifted twice.

Seeds are one per p-bit (the generator's content before edge 1): an explicit array, or derived
from one master seed by :func:`pbitsim.rng.derive_seeds` (replica r uses indices r*n + i, so
replica 0 is what hardware given that master seed loads).
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np

from pbitsim.board.design import SCHEDULES, HardwareDesign
from pbitsim.couplings import Couplings, greedy_coloring
from pbitsim.fixedpoint import QuantizedCouplings, decide, saturate_input
from pbitsim.rng import make_generator, resolve_seeds, rng_kind_code
from pbitsim.sampling import Runner, register_method
from pbitsim.sim.jit import decide_spin, rng_next, rng_output, saturate

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
    design.check(q, n_colors)
    return q, col, n_colors


def _initial(initial, design: HardwareDesign, n: int) -> np.ndarray:
    if initial is None:
        return np.full(n, design.initial_spin, dtype=np.int8)
    s = np.asarray(initial)
    if s.shape[-1:] != (n,) or not np.all(np.isin(s, (-1, 1))):
        raise ValueError(f"initial state must hold n = {n} values of -1/+1 (per replica)")
    return s.astype(np.int8)


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
) -> tuple[np.ndarray, list[dict]]:
    """Slow reference model with a log of every p-bit decision (for docs and RTL debugging).

    Returns
    -------
    states : np.ndarray of int8, shape (cycles, n)
        S_1 .. S_cycles.
    events : list of dict
        One per p-bit per edge of its colour, in cycle order: ``cycle``, ``colour``, ``edge``,
        ``pbit``, ``r`` (compared random number), ``acc`` (exact sum, None in warm-up), ``i_code``
        (saturated), ``t`` (table entry), ``spin`` (after the edge), ``updated`` (False in warm-up).
    """
    q, col, n_colors = _prepare(couplings_or_quantized, design, coloring)
    n = q.n
    spec = design.fixed_point
    seeds = resolve_seeds(seed_or_seeds, n, design.rng)
    gens = [make_generator(design.rng, int(s)) for s in seeds]
    history = [_initial(initial, design, n).astype(np.int64)]  # history[k] = S_k
    states = np.empty((int(cycles), n), dtype=np.int8)
    events: list[dict] = []
    for t in range(1, int(cycles) + 1):
        colour = (t - 1) % n_colors
        edge = (t - 1) // n_colors + 1
        read = history[max(t - 1 - design.read_latency, 0)]
        new = history[t - 1].copy()
        for i in np.flatnonzero(col == colour):
            r = gens[i].output(spec.rng_bits)
            ev = {
                "cycle": t,
                "colour": colour,
                "edge": edge,
                "pbit": int(i),
                "r": r,
                "acc": None,
                "i_code": None,
                "t": None,
                "updated": False,
            }
            if edge > design.warmup_edges:
                acc = int(q.h_codes[i])
                for k in range(q.indptr[i], q.indptr[i + 1]):
                    acc += int(q.j_codes[k]) * int(read[q.indices[k]])
                i_code = int(saturate_input(acc, spec))
                new[i] = int(decide(i_code, q.table, r))
                ev.update(acc=acc, i_code=i_code, t=int(q.table[abs(i_code)]), updated=True)
            gens[i].step()
            ev["spin"] = int(new[i])
            events.append(ev)
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
) -> np.ndarray:
    """Pure-Python version of :func:`simulate_cycles` (same arguments, same result, slow)."""
    return trace_cycles(couplings_or_quantized, design, seed_or_seeds, cycles, initial, coloring)[0]


# --------------------------------------------------------------------------------------------
# Numba model.
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def _run_replica(
    indptr,
    indices,
    j_codes,
    h_codes,
    table,
    order,
    cstart,
    n_colors,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    hist,
    gen,
    cycle0,
    ncycles,
    stride,
    out,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica (see the module docstring).

    ``hist[k % (latency + 1)]`` holds S_k for the last latency + 1 values of k; ``tmp`` is scratch.
    """
    slots = latency + 1
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        colour = (t - 1) % n_colors
        edge = (t - 1) // n_colors + 1
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        lo = cstart[colour]
        hi = cstart[colour + 1]
        for k in range(lo, hi):
            i = order[k]
            r = rng_output(kind, gen[i], rng_bits)
            if edge > warmup:
                acc = h_codes[i]
                for p in range(indptr[i], indptr[i + 1]):
                    acc += j_codes[p] * hist[cur, indices[p]]
                acc = saturate(acc, input_max)
                tmp[k - lo] = decide_spin(acc, table[abs(acc)], r)
            else:
                tmp[k - lo] = hist[prev, i]
            gen[i] = rng_next(kind, gen[i])
        if slots > 1:
            hist[cur, :] = hist[prev, :]
        for k in range(lo, hi):
            hist[cur, order[k]] = tmp[k - lo]
        done = t - cycle0
        if stride > 0 and done % stride == 0:
            out[done // stride - 1, :] = hist[cur, :]


@nb.njit(cache=True, parallel=True)
def _run(
    indptr,
    indices,
    j_codes,
    h_codes,
    table,
    order,
    cstart,
    n_colors,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    hist,
    gen,
    cycle0,
    ncycles,
    stride,
    out,
):
    # Replicas are independent (own spins, own generators): one per thread, no barrier, so the
    # result does not depend on the thread count.
    width = 1
    for c in range(n_colors):
        width = max(width, cstart[c + 1] - cstart[c])
    for rep in nb.prange(hist.shape[0]):
        tmp = np.empty(width, dtype=np.int8)
        _run_replica(
            indptr,
            indices,
            j_codes,
            h_codes,
            table,
            order,
            cstart,
            n_colors,
            kind,
            rng_bits,
            input_max,
            warmup,
            latency,
            hist[rep],
            gen[rep],
            cycle0,
            ncycles,
            stride,
            out[rep],
            tmp,
        )


class HardwareMachine:
    """Many replicas of one design running one model, advanced cycle by cycle (Numba).

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

    Attributes
    ----------
    cycle : int
        Cycles run so far.
    n_colors : int
    quantized : QuantizedCouplings
    """

    def __init__(
        self,
        couplings_or_quantized,
        design: HardwareDesign,
        seeds: np.ndarray,
        initial=None,
        coloring=None,
    ) -> None:
        q, col, self.n_colors = _prepare(couplings_or_quantized, design, coloring)
        self.design, self.quantized = design, q
        seeds = np.asarray(seeds, dtype=np.uint64)
        if seeds.ndim != 2 or seeds.shape[1] != q.n:
            raise ValueError(f"seeds must have shape (replicas, {q.n}), not {seeds.shape}")
        self.replicas = seeds.shape[0]
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

    @property
    def spins(self) -> np.ndarray:
        """Current spins, int8 (replicas, n) (a copy)."""
        return self._hist[:, self.cycle % (self.design.read_latency + 1)].copy()

    @property
    def generator_states(self) -> np.ndarray:
        """Current generator states, uint64 (replicas, n) (a copy)."""
        return self._gen.copy()

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
        self._j, self._h, self._table = j.copy(), h.copy(), t.copy()

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

    def set_generator_states(self, states) -> None:
        """Overwrite the generator states, uint64 (replicas, n) (as seed writes do)."""
        g = np.asarray(states, dtype=np.uint64)
        if g.shape != self._gen.shape:
            raise ValueError(f"generator states must have shape {self._gen.shape}, not {g.shape}")
        self._gen[:] = g

    def restart(self) -> None:
        """Restart the schedule as a CONTROL restart does: the next cycle is cycle 1 (colour 0,
        warm-up again); spins and generators keep their values."""
        spins = self.spins
        self.cycle = 0
        self._hist[:] = spins[:, None, :]

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
            spec = self.design.fixed_point
            args = (
                self._indptr,
                self._indices,
                self._j,
                self._h,
                self._table,
                self._order,
                self._cstart,
                self.n_colors,
                self._kind,
                spec.rng_bits,
                spec.input_max,
                self.design.warmup_edges,
                self.design.read_latency,
            )
            if self.replicas == 1:
                # One chain: no parallel region, whose thread wake-up costs a scheduler slice per
                # call on a busy machine (the emulator makes many short calls).
                tmp = np.empty(int(np.diff(self._cstart).max()), dtype=np.int8)
                _run_replica(
                    *args, self._hist[0], self._gen[0], self.cycle, cycles, int(record_every),
                    out[0], tmp,
                )  # fmt: skip
            else:
                _run(
                    *args, self._hist, self._gen, self.cycle, cycles, int(record_every), out
                )  # fmt: skip
        self.cycle += cycles
        return out


def simulate_cycles(
    couplings_or_quantized,
    design: HardwareDesign,
    seed_or_seeds,
    cycles: int,
    initial=None,
    coloring=None,
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

    Returns
    -------
    np.ndarray of int8, shape (cycles, n)
        Row t-1 is the state after edge t.
    """
    q, col, _ = _prepare(couplings_or_quantized, design, coloring)
    seeds = resolve_seeds(seed_or_seeds, q.n, design.rng)[None, :]
    m = HardwareMachine(q, design, seeds, initial=initial, coloring=col)
    return m.run(cycles)[0]


# --------------------------------------------------------------------------------------------
# Sampling method "hardware".
# --------------------------------------------------------------------------------------------


@register_method("hardware")
class HardwareRunner(Runner):
    """``sample(..., method="hardware")``: the cycle model as a sampler.

    One step is one colour period (C cycles: every colour updated once). Options: ``design``
    (``"default"``, ``"published"``, a :class:`HardwareDesign` or its dict), ``seeds`` (explicit
    generator seeds, shape (replicas, n), instead of deriving them from ``seed``), ``initial``
    (initial spins, (n,) or (replicas, n)). Replica r with master seed S runs exactly what
    :func:`simulate_cycles` runs with ``derive_seeds(S, n, kind, replicas)[r]``.
    """

    step_unit = "colour period"

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        design="default",
        seeds=None,
        initial=None,
    ) -> None:
        design = HardwareDesign.from_name(design)
        if seed is None and seeds is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        super().__init__(couplings, replicas, seed)
        self.design = design
        gen = resolve_seeds(
            seed if seeds is None else seeds, couplings.n, design.rng, self.replicas
        )
        self.machine = HardwareMachine(couplings, design, gen, initial=initial)
        self.settings = {"design": design.to_dict(), "master_seed": seed}
        if seeds is not None:
            self.settings["seeds"] = [[int(x) for x in row] for row in gen]
        if initial is not None:
            self.settings["initial"] = np.asarray(initial).tolist()

    def advance(self, sweeps: int) -> None:
        self.machine.run(int(sweeps) * self.machine.n_colors, record_every=0)

    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        period = self.machine.n_colors
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
            "quantization": self.machine.quantized.report(),
        }
