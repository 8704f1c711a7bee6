"""On-board statistics: running sums over the recorded states, read back in STATS frames.

The link carries ⌈n/8⌉ bytes per recorded state; the moments a learning rule needs are a vector
of ``1 + n + edges`` numbers however many states went into them. :class:`StatsAccumulator` keeps
the statistics vector of ``docs/protocol.md`` (twin: ``BoardSession.stats_vector``)::

    [count, Σ s_0 … Σ s_{n−1}, Σ s_i s_j per edge (CSR order, i < j)]     signed 64-bit

Each entry lives in a memory word. A recorded state adds ±1 to every entry (+1 to the count; s_i;
s_i s_j = +1 when the two spins agree): a read and a write of each word. On a single-port memory
(the iCE40UP5K's SPRAM) that is 2 clocks per entry; with separate read and write ports (block
RAM, LUT-RAM) the read of entry k + 1 overlaps the write of entry k, 1 clock per entry. ``banks``
memories work in parallel (entry e in bank e mod banks): a state takes
``2 ⌈(1 + n + edges) / banks⌉`` or ``⌈(1 + n + edges) / banks⌉ + 1`` clocks
(:meth:`clocks_per_state`).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StatsAccumulator", "stat_edges", "STAT_BITS"]

STAT_BITS = 64


def stat_edges(indptr, indices) -> list[tuple[int, int]]:
    """The edges of the statistics vector: (i, j) with i < j, in CSR order (row i, then its
    neighbours as stored), as :class:`pbitsim.board.session.BoardSession` orders them."""
    indptr = np.asarray(indptr, np.int64)
    indices = np.asarray(indices, np.int64)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    upper = rows < indices
    return list(zip(rows[upper].tolist(), indices[upper].tolist()))


class StatsAccumulator(wiring.Component):
    """The statistics vector of the recorded states, in ``banks`` memories.

    Parameters
    ----------
    n : int
        P-bits.
    edges : list of (i, j)
        :func:`stat_edges` of the topology.
    banks : int
        Memories updated in parallel, a power of two (default 1).
    single_port : bool
        One address per memory (SPRAM): 2 clocks per entry; False: 1 clock per entry.

    Attributes
    ----------
    vector : In(n), take : In(1), ready : Out(1)
        A recorded state (bit i = 1: s_i = +1), taken when ``take`` and ``ready``.
    clear : In(1)
        Set every entry to 0 (taken when ``ready``; ``busy`` until done).
    busy : Out(1)
        A state or a clear is being applied.
    rd_index : In(range(entries)), rd_req : In(1), rd_valid : Out(1), rd_data : Out(64)
        Read entry ``rd_index``: hold ``rd_req`` until ``rd_valid``; served between states.
    """

    def __init__(self, n: int, edges, banks: int = 1, *, single_port: bool = True) -> None:
        if isinstance(banks, bool) or not isinstance(banks, int) or banks < 1 or banks & banks - 1:
            raise ValueError(f"banks must be a power of two >= 1, not {banks!r}")
        self.n = int(n)
        self.edges = [(int(i), int(j)) for i, j in edges]
        for i, j in self.edges:
            if not 0 <= i < j < self.n:
                raise ValueError(f"edge ({i}, {j}) is not (i, j) with 0 <= i < j < n = {self.n}")
        self.banks = banks
        self.single_port = bool(single_port)
        self.entries = 1 + self.n + len(self.edges)
        self.depth = math.ceil(self.entries / banks)
        super().__init__(
            {
                "vector": In(self.n),
                "take": In(1),
                "ready": Out(1),
                "clear": In(1),
                "busy": Out(1),
                "rd_index": In(range(self.entries)),
                "rd_req": In(1),
                "rd_valid": Out(1),
                "rd_data": Out(STAT_BITS),
            }
        )

    def clocks_per_state(self) -> int:
        """Clocks to add one recorded state (a read and a write of each word)."""
        return 2 * self.depth if self.single_port else self.depth + 1

    def elaborate(self, platform):
        m = Module()
        banks, depth, n = self.banks, self.depth, self.n
        state = Signal(n)
        step = Signal(range(depth + 1))
        bank_bits = (banks - 1).bit_length()

        # The ±1 of every entry for the held state (1 = +1).
        signs = [Const(1, 1)] + [state[i] for i in range(n)]
        signs += [~(state[i] ^ state[j]) for i, j in self.edges]

        # The entry whose new value is written in this clock.
        at = Signal(range(depth + 1))
        ports = []
        for b in range(banks):
            mem = memory.Memory(shape=STAT_BITS, depth=depth, init=[])
            m.submodules[f"bank{b}"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            # Bank b holds entries b, b + banks, ...; padded with +1 (never written) to depth.
            pad = [Const(1, 1)] * (banks * depth - len(signs))
            mine = (signs + pad)[b::banks]
            sign = Signal(name=f"sign{b}")
            m.d.comb += sign.eq(Cat(*mine).bit_select(at, 1))
            exists = Signal(name=f"exists{b}")
            m.d.comb += exists.eq(at * banks + b < self.entries)
            ports.append((rd, wr, sign, exists))

        addr = Signal(range(depth))
        w_addr = Signal(range(depth))  # the pipelined pass writes one entry behind its reads
        write = Signal()
        clearing = Signal()
        for rd, wr, sign, exists in ports:
            m.d.comb += [
                rd.addr.eq(addr),
                # One address in single-port mode (a single-port RAM fits).
                wr.addr.eq(addr if self.single_port else w_addr),
                wr.en.eq(write & (exists | clearing)),
                wr.data.eq(Mux(clearing, 0, rd.data + Mux(sign, 1, -1))),
            ]
        # The entry being written: ``step`` (single port), ``step - 1`` (pipelined).
        w_step = Signal(range(depth + 1))
        m.d.comb += w_addr.eq(w_step)

        rd_bank = Signal(max(bank_bits, 1))
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.ready.eq(~self.rd_req)
                m.d.sync += step.eq(0)
                with m.If(self.clear):
                    m.next = "CLEAR"
                with m.Elif(self.rd_req):
                    m.d.comb += addr.eq(self.rd_index >> bank_bits)
                    m.d.sync += rd_bank.eq(self.rd_index[:bank_bits] if bank_bits else 0)
                    m.next = "ANSWER"
                with m.Elif(self.take):
                    m.d.sync += state.eq(self.vector)
                    m.next = "READ"
            with m.State("ANSWER"):
                m.d.comb += [
                    self.rd_valid.eq(1),
                    self.rd_data.eq(Cat(*[rd.data for rd, *_ in ports]).word_select(rd_bank, 64)),
                ]
                m.next = "IDLE"
            if self.single_port:
                with m.State("READ"):
                    m.d.comb += addr.eq(step)
                    m.next = "WRITE"
                with m.State("WRITE"):
                    m.d.comb += [addr.eq(step), at.eq(step), write.eq(1)]
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == depth - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "READ"
            else:
                with m.State("READ"):  # read entry step, write entry step - 1
                    m.d.comb += [
                        addr.eq(step),
                        at.eq(step - 1),
                        w_step.eq(step - 1),
                        write.eq(step != 0),
                    ]
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == depth):
                        m.next = "IDLE"
            with m.State("CLEAR"):
                m.d.comb += [addr.eq(step), w_step.eq(step), write.eq(1), clearing.eq(1)]
                m.d.sync += step.eq(step + 1)
                with m.If(step == depth - 1):
                    m.next = "IDLE"
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
