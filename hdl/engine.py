"""A time-multiplexed p-bit array: a few datapaths ("lanes") with state in block RAM.

:class:`PbitEngine` computes exactly what :class:`~pbitsim.hdl.hardware.PbitArray` computes (the
cycle model, :func:`pbitsim.sim.hardware.simulate_cycles`, bit for bit) and has the same register
port (:class:`~pbitsim.hdl.hardware.AddressMap`), but a model cycle (one colour) takes
``ceil(class size / lanes)`` clocks instead of one. Each lane is one p-bit datapath (input sum,
table read port, comparator, generator step) that handles one p-bit per clock; J codes, biases
and generator states live in per-lane memories indexed by the *slot* (the position in the sweep)
instead of flip-flops, so an array is bounded by block RAM and by the n spin flip-flops rather
than by logic per p-bit.

Pipeline (all lanes in lockstep, one slot per clock):

* stage 0: the schedule issues slot sigma; the lanes' J/bias memories are read at sigma;
* stage 1: each lane sums its p-bit's neighbours (a multiplexer per J slot, selected by sigma,
  picks the neighbour's spin register) into a register;
* stage 2: saturation and |I| address the lane's table read port; the generator state is read;
* stage 3: the comparator decides; the spin register and the advanced generator state are
  written.

Every colour's slots are followed by ``GAP = 2`` idle slots, so that the last p-bit of colour c
has committed (end of its stage 3) before the first p-bit of colour c + 1 reads spins (its
stage 1): read latency 0, exactly. P-bits of one colour are never neighbours (proper colouring),
so their order within the colour does not matter. The gaps cost 2 clocks per colour; in exchange
every path is one short step (a J-memory read and an adder tree; a saturation and a table
address; a table read and one carry chain), unlike :class:`PbitArray`'s look-ahead path.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import DATA_BITS, AddressMap, BoardWords, Region, Register
from pbitsim.couplings import Couplings
from pbitsim.rng import derive_seeds, state_bits

from .fixedpoint import ActivationTable, Comparator, InputAccumulator, Saturation, sum_width
from .hardware import (
    ArrayInfo,
    array_signature,
    late_read,
    read_back,
    select_or,
    sign_extend,
    status_signal,
)
from .rng import next_state

__all__ = ["PbitEngine", "GAP"]

GAP = 2  # idle slots after each colour: stage 3 (commit) minus stage 1 (spin read)


def _rom(index, values, width: int):
    """``values[index]`` as a shift of one constant.

    Not a Switch: Verilog turns a Switch with constant outputs into an ``always @*`` block that
    an event-driven simulator first evaluates when ``index`` changes, so its outputs stay X while
    ``index`` keeps its initial value; a shift is a continuous assignment.
    """
    packed = 0
    for k, v in enumerate(values):
        packed |= (int(v) & ((1 << width) - 1)) << (k * width)
    # Padded to every value of ``index`` (zeros), so that no index reads past the constant.
    entries = max(len(values), 1 << len(index))
    return Const(packed, width * entries).word_select(index, width)


class PbitEngine(ArrayInfo, wiring.Component):
    """Time-multiplexed p-bit array with ``lanes`` datapaths; same results as :class:`PbitArray`.

    Parameters
    ----------
    couplings : Couplings
        Build-time topology (graph and colouring).
    design : HardwareDesign, optional
        Default :meth:`HardwareDesign.default`; ``read_latency`` must be 0.
    lanes : int
        Datapaths. Colour c takes ``ceil(|class c| / lanes) + GAP`` clocks; the whole sweep
        ``slots`` clocks.
    seed : int
        Master seed of the generator states the memories start with.

    Attributes
    ----------
    bus, run, color, spins
        As for :class:`~pbitsim.hdl.hardware.PbitArray`. Write only while stopped (STATUS bit 17
        low): a write is not synchronised with the lanes' own memory writes. J, BIAS and TABLE
        words read back one clock after their address (hold it two clocks), only while stopped
        (``running`` low): the reads borrow the lanes' J-memory and lane 0's table read ports.
    cycle_start : Out(1)
        ``run`` was accepted in this clock: one more colour step (model cycle) is issued; its
        ``cycle_done`` follows when the step's last p-bit commits.
    cycle_done : Out(1)
        This clock edge completes a model cycle (the spins after it are S_t).
    running : Out(1)
        The schedule is issuing slots in this clock.
    slots : int
        Clocks per sweep (sum over colours of the clocks per colour).

    Raises
    ------
    ValueError
        If ``lanes`` < 1, ``read_latency`` is not 0, or the graph needs more neighbour slots than
        ``design.max_degree``.
    """

    def __init__(
        self,
        couplings: Couplings,
        design: HardwareDesign | None = None,
        *,
        lanes: int,
        seed: int = 0,
    ) -> None:
        if not isinstance(couplings, Couplings):
            raise TypeError(f"couplings must be a Couplings, not {couplings!r}")
        design = HardwareDesign.default() if design is None else design
        if not isinstance(design, HardwareDesign):
            raise TypeError(f"design must be a HardwareDesign, not {design!r}")
        if design.schedule != "chromatic":
            raise ValueError(
                f"PbitEngine time-multiplexes colour classes: schedule {design.schedule!r} "
                f"needs PbitArray"
            )
        if design.read_latency != 0:
            raise ValueError(
                f"PbitEngine implements read_latency 0 only, not {design.read_latency}"
            )
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an int >= 1, not {lanes!r}")
        design.check(couplings)
        deg = couplings.degrees
        self._couplings, self._design, self._seed = couplings, design, int(seed)
        self.lanes = lanes
        self.address_map = AddressMap.for_design(couplings, design)
        self.words = BoardWords.for_array(couplings, design)
        self.n_colors = max(couplings.n_colors, 1)
        self.degree = max(int(deg.max()), 1)
        # The sweep: colour c gets ceil(|class| / lanes) slots plus GAP idle ones; p-bit k of a
        # class goes to lane k % lanes, slot (colour's first slot) + k // lanes.
        self.slot_color, self.slot_real, self.slot_done, self.slot_last = [], [], [], []
        self.members = [[] for _ in range(lanes)]
        self.place = np.zeros((couplings.n, 2), dtype=np.int64)  # (lane, slot) of each p-bit
        base = 0
        for c, cls in enumerate(couplings.color_classes()):
            k_c = max(math.ceil(len(cls) / lanes), 1)
            for lane in range(lanes):
                self.members[lane] += [None] * (k_c + GAP)
            for k, i in enumerate(cls.tolist()):
                self.members[k % lanes][base + k // lanes] = i
                self.place[i] = (k % lanes, base + k // lanes)
            self.slot_color += [c] * (k_c + GAP)
            self.slot_real += [True] * k_c + [False] * GAP
            self.slot_done += [False] * (k_c - 1) + [True] + [False] * GAP
            self.slot_last += [False] * (k_c + GAP - 1) + [True]
            base += k_c + GAP
        self.slots = base
        super().__init__(array_signature(self.address_map, self.n_colors, couplings.n))

    def elaborate(self, platform):
        m = Module()
        c, d, amap = self._couplings, self._design, self.address_map
        spec = d.fixed_point
        n, n_colors, lanes, slots, deg = c.n, self.n_colors, self.lanes, self.slots, self.degree
        w = spec.weight_bits
        bias_w = sum_width(spec, deg)
        sbits = state_bits(d.rng)
        words = sbits // 32

        # -- register port: decode now, write to the memories one clock later ------------------
        bus = self.bus
        region = bus.addr[amap.index_bits :]
        index = bus.addr[: amap.index_bits]
        slot = index[: amap.slot_bits]
        pidx = index[amap.slot_bits : amap.slot_bits + amap.pbit_bits]
        lane_of = Signal(range(max(lanes, 2)))
        sigma_of = Signal(range(max(slots, 2)))
        m.d.comb += [
            lane_of.eq(_rom(pidx, self.place[:, 0].tolist(), len(lane_of))),
            sigma_of.eq(_rom(pidx, self.place[:, 1].tolist(), len(sigma_of))),
        ]
        wr_en = Signal()
        wr_region = Signal(len(region))
        wr_slot = Signal(len(slot))
        wr_index = Signal(len(index))
        wr_pbit = Signal(len(pidx))
        wr_lane = Signal.like(lane_of)
        wr_sigma = Signal.like(sigma_of)
        wr_data = Signal(DATA_BITS)
        m.d.sync += [
            wr_en.eq(bus.w_en & (region != int(Region.REG))),
            wr_region.eq(region),
            wr_slot.eq(slot),
            wr_index.eq(index),
            wr_pbit.eq(pidx),
            wr_lane.eq(lane_of),
            wr_sigma.eq(sigma_of),
            wr_data.eq(bus.w_data),
        ]

        def wrote(reg: Region):
            return wr_en & (wr_region == int(reg))

        # -- schedule -------------------------------------------------------------------------
        active = Signal()  # the schedule steps through slot sigma0 in this clock
        sigma0 = Signal(range(max(slots, 2)))
        color0 = Signal(range(max(n_colors, 2)))
        real0, done0, last0 = Signal(), Signal(), Signal()
        m.d.comb += [
            color0.eq(_rom(sigma0, self.slot_color, len(color0))),
            real0.eq(_rom(sigma0, self.slot_real, 1)),
            done0.eq(_rom(sigma0, self.slot_done, 1)),
            last0.eq(_rom(sigma0, self.slot_last, 1)),
        ]
        warm_total = d.warmup_edges * n_colors
        warm_left = Signal(range(warm_total + 1), init=warm_total)
        warm0 = Signal()
        run_ok = Signal()
        restart = (
            bus.w_en
            & (region == int(Region.REG))
            & (index == int(Register.CONTROL))
            & bus.w_data[0]
        )
        m.d.comb += [
            warm0.eq(warm_left != 0),
            # Written values reach the memories one clock after w_en: start two clocks later.
            run_ok.eq(self.run & ~bus.w_en & ~wr_en),
            self.running.eq(active),
            # A step starts when run is accepted at the end of a step or while idle (a restart
            # write cannot coincide: it is a write, so run_ok is low).
            self.cycle_start.eq(run_ok & (~active | last0)),
            self.color.eq(color0),
        ]
        with m.If(active):
            m.d.sync += sigma0.eq(Mux(sigma0 == slots - 1, 0, sigma0 + 1))
            with m.If(last0):
                # A colour step (its slots and gaps) is atomic: stop or go on only at its end.
                m.d.sync += active.eq(run_ok)
                with m.If(warm0):
                    m.d.sync += warm_left.eq(warm_left - 1)
        with m.Elif(restart):
            m.d.sync += [sigma0.eq(0), warm_left.eq(warm_total)]
        with m.Else():
            m.d.sync += active.eq(run_ok)

        # Pipeline control: valid (a real slot), its slot, warm-up, last real slot of a colour.
        stages = [(active & real0, sigma0, warm0, done0)]
        for k in (1, 2, 3):
            v, sg, wm, dn = (
                Signal(name=f"valid{k}"),
                Signal.like(sigma0, name=f"sigma{k}"),
                Signal(name=f"warm{k}"),
                Signal(name=f"done{k}"),
            )
            pv, psg, pwm, pdn = stages[-1]
            m.d.sync += [v.eq(pv), sg.eq(psg), wm.eq(pwm), dn.eq(pdn)]
            stages.append((v, sg, wm, dn))
        valid3, sigma3, warm3, done3 = stages[3]
        sigma1, sigma2 = stages[1][1], stages[2][1]
        commit = Signal()
        m.d.comb += [commit.eq(valid3 & ~warm3), self.cycle_done.eq(valid3 & done3)]
        at1 = [Signal(name=f"at1_{s}") for s in range(slots)]  # stage 1 sums slot s
        for s in range(slots):
            m.d.comb += at1[s].eq(sigma1 == s)
        at3 = [Signal(name=f"at3_{s}") for s in range(slots)]  # stage 3 commits slot s
        for s in range(slots):
            m.d.comb += at3[s].eq(commit & (sigma3 == s))

        # -- spins ----------------------------------------------------------------------------
        spin_init = 1 if d.initial_spin > 0 else 0
        spin = [Signal(init=spin_init, name=f"spin{i}") for i in range(n)]
        decision = [Signal(name=f"decision{k}") for k in range(lanes)]
        for i in range(n):
            lane, s = int(self.place[i, 0]), int(self.place[i, 1])
            with m.If(wrote(Region.SPIN) & (wr_pbit == i) & (wr_slot == 0)):
                m.d.sync += spin[i].eq(wr_data[0])
            with m.Elif(at3[s]):
                m.d.sync += spin[i].eq(decision[lane])
        m.d.comb += self.spins.eq(Cat(*spin))

        # -- lanes ----------------------------------------------------------------------------
        m.submodules.table = table = ActivationTable(spec, lanes, 1.0)
        rows = []  # each lane's J/bias row as read at the port's address (read-back)
        m.d.comb += [
            table.w_addr.eq(wr_index),
            table.w_data.eq(wr_data),
            table.w_en.eq(wrote(Region.TABLE)),
        ]
        seeds = derive_seeds(self._seed, n, d.rng)
        for lane in range(lanes):
            members = self.members[lane]
            # Explicit zeros: unused J slots must read 0, and Verilog leaves a memory without
            # initial contents X.
            jmem = memory.Memory(shape=unsigned(deg * w + bias_w), depth=slots, init=[0] * slots)
            rmem = memory.Memory(
                shape=unsigned(sbits),
                depth=slots,
                init=[int(seeds[i]) if i is not None else 1 for i in members],
            )
            m.submodules[f"jmem{lane}"] = jmem
            m.submodules[f"rmem{lane}"] = rmem
            # J/bias: one row per slot, bit-granular writes so a J slot or the bias is written
            # alone.
            j_rd = jmem.read_port()
            j_wr = jmem.write_port(granularity=1)
            mine = wr_lane == lane
            j_mask = Cat(
                *[(wrote(Region.J) & mine & (wr_slot == k)).replicate(w) for k in range(deg)],
                (wrote(Region.BIAS) & mine & (wr_slot == 0)).replicate(bias_w),
            )
            rows.append(j_rd.data)
            m.d.comb += [
                # While idle the read port serves register-port reads (the schedule reads sigma0
                # in the clock it becomes active, so nothing it needs is lost).
                j_rd.addr.eq(Mux(active, sigma0, sigma_of)),
                j_wr.addr.eq(wr_sigma),
                j_wr.data.eq(Cat(*([wr_data[:w]] * deg), wr_data[:bias_w])),
                j_wr.en.eq(j_mask),
            ]
            # Generator states: read in stage 2, written back (advanced) in stage 3.
            r_rd = rmem.read_port()
            r_wr = rmem.write_port(granularity=32)
            m.d.comb += r_rd.addr.eq(sigma2)
            with m.If(wrote(Region.SEED) & mine):
                m.d.comb += [
                    r_wr.addr.eq(wr_sigma),
                    r_wr.data.eq(Cat(*([wr_data] * words))),
                    r_wr.en.eq(Cat(*[wr_slot == k for k in range(words)])),
                ]
            with m.Elif(valid3):
                m.d.comb += [
                    r_wr.addr.eq(sigma3),
                    r_wr.data.eq(next_state(d.rng, r_rd.data)),
                    r_wr.en.eq(Const((1 << words) - 1, words)),
                ]

            # Stage 1: the exact input sum of the slot's p-bit, registered.
            acc = InputAccumulator(spec, deg)
            m.submodules[f"acc{lane}"] = acc
            neighbours = Signal(deg, name=f"neighbours{lane}")
            nbr_of = [
                c.indices[c.indptr[i] : c.indptr[i + 1]].tolist() if i is not None else []
                for i in members
            ]
            m.d.comb += neighbours.eq(
                select_or(
                    [(at1[s], Cat(*[spin[j] for j in nb])) for s, nb in enumerate(nbr_of) if nb],
                    deg,
                )
            )
            for k in range(deg):
                m.d.comb += acc.j[k].eq(j_rd.data[k * w : (k + 1) * w])
            m.d.comb += [acc.spins.eq(neighbours), acc.bias.eq(j_rd.data[deg * w :])]
            total = Signal.like(acc.acc, name=f"total{lane}")
            m.d.sync += total.eq(acc.acc)

            # Stage 2: saturate, address the table.
            sat = Saturation(spec, len(total))
            m.submodules[f"sat{lane}"] = sat
            negative = Signal(name=f"negative{lane}")
            table_addr = sat.magnitude
            if lane == 0:
                # While idle, lane 0's table port serves TABLE reads: the pipeline is empty then
                # (a step ends with GAP idle slots), so no decision uses that answer.
                table_addr = Mux(active, sat.magnitude, index[: len(sat.magnitude)])
            m.d.comb += [sat.acc.eq(total), table.r_addr[lane].eq(table_addr)]
            m.d.sync += negative.eq(sat.negative)

            # Stage 3: decide.
            cmp = Comparator(spec)
            m.submodules[f"cmp{lane}"] = cmp
            m.d.comb += [
                cmp.negative.eq(negative),
                cmp.entry.eq(table.r_data[lane]),
                cmp.random.eq(r_rd.data[sbits - spec.rng_bits :]),
                decision[lane].eq(cmp.spin),
            ]

        # -- read-back ------------------------------------------------------------------------
        # J / BIAS: the addressed p-bit's lane row (read at its slot one clock earlier), then the
        # J slot or the bias field of it; TABLE: lane 0's table port.
        row = select_or([(lane_of == k, r) for k, r in enumerate(rows)], len(rows[0]))
        sel = slot[: max(1, (deg - 1).bit_length())]
        padded = Cat(row[: deg * w], Const(0, w * ((1 << len(sel)) - deg)))  # no read past the end
        j_word = sign_extend(padded.word_select(sel, w))
        bias_word = sign_extend(row[deg * w :])
        late = select_or(
            [
                (region == int(Region.J), j_word),
                (region == int(Region.BIAS), bias_word),
                (region == int(Region.TABLE), table.r_data[0]),
            ],
            DATA_BITS,
        )
        status = status_signal(color0, ~warm0, active)
        early = read_back(region, index, self.words, amap, status, self.spins)
        m.d.comb += bus.r_data.eq(late_read(region, early, late))
        return m
