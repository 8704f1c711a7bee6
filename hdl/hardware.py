"""The p-bit array in gateware: twin of the cycle model :mod:`pbitsim.sim.hardware`.

:class:`PbitArray` is built for one topology (graph, colouring: a :class:`~pbitsim.couplings.
Couplings`) and one :class:`~pbitsim.board.design.HardwareDesign`; everything else (J and h codes,
the activation table, generator seeds, spins) is written at run time through a small register
port whose layout :class:`AddressMap` defines (``docs/hardware.md`` has the table). Whenever
``running`` is high, one clock edge is one cycle of :func:`pbitsim.sim.hardware.simulate_cycles`:
colour ``color`` updates, colours in order.

Why the activation table can live in block RAM without a pipeline bubble
------------------------------------------------------------------------
Block RAM reads are synchronous, but a p-bit must decide at the edge that ends its cycle from the
spins at the start of that cycle. Those spins are the *next-state* values (the D inputs of the
spin registers) one cycle earlier. So every p-bit sums its neighbours' ``spin_next`` and presents
``|I|`` to the table one cycle ahead; the table answers just in time, and the comparator decides.
This is exactly the model's read latency 0 (``read_latency = 0``), not an approximation.

Why the table is shared
-----------------------
Only one colour decides per cycle, so p-bits of different colours never need the table at the same
time. P-bits are dealt into *lanes*: lane k holds the k-th p-bit of every colour (colours sorted
by index). A lane owns one table read port whose address is multiplexed by the colour about to
run. An array needs max(colour class size) read ports instead of n.

Read latency and un-coloured schedules
--------------------------------------
With read latency L > 0 (``docs/hardware-model.md`` section 5) the table address for the next
model cycle is computed from older spins: a delay line of L copies of the spin vector, shifted at
every model cycle, holds S_{u-1} .. S_{u-L} beside the spin registers' S_u (u: the last model
cycle). In a clock that is itself a model cycle the next one is u + 2, so the address comes from
S_{u+1-L}; in a paused clock the next one is u + 1 and it comes from S_{u-L}: a multiplexer by
``running`` keeps pauses invisible, as the look-ahead of L = 0 does. A restart fills the delay
line with the current spins and a SPIN write sets the written p-bit's copies too, as the model
defines (written state is taken as held).

The un-coloured schedules ("async-random", "async-periodic") let any p-bit act in any cycle, so
every p-bit has its own table read port (lane i = p-bit i) and the colour counter stays at 0.
"async-random": every p-bit has a second generator (the *enable* generator, seeded through SEED
slots after the decision generator's words); it acts when the top 16 bits of that generator are
below the ENABLE register, and both its generators advance at every model cycle. "async-periodic":
every p-bit has PERIOD and PHASE registers (region TIMER) and a 16-bit down-counter, loaded from
PHASE at a restart; it acts when the counter is 0, and its generator advances only then.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pbitsim.board.design import ENABLE_BITS, TIMER_BITS, HardwareDesign, run_time_values
from pbitsim.board.regmap import (
    DATA_BITS,
    IDENTITY,
    TIMER_PERIOD,
    TIMER_PHASE,
    AddressMap,
    BoardWords,
    Region,
    Register,
    topology_id,
)
from pbitsim.couplings import Couplings
from pbitsim.rng import derive_enable_seeds, derive_seeds, state_bits

from .fixedpoint import ActivationTable, Comparator, InputAccumulator, sum_width
from .rng import generator_for

# The register map (AddressMap, Region, Register, the identity words) is pbitsim.board.regmap's;
# the names are re-exported here because the gateware implements it.
__all__ = [
    "Region",
    "Register",
    "AddressMap",
    "Pbit",
    "PbitArray",
    "topology_id",
]


def select_or(pairs, width: int):
    """``value`` of the pair whose condition holds (conditions one-hot; 0 if none), as one
    AND-OR expression.

    Used instead of ``m.Switch`` wherever the selected values can be constant or can keep their
    initial values: Verilog makes a Switch an ``always @*`` block, which an event-driven simulator
    (Icarus) first evaluates when an input changes, so its output would stay X until then.
    """
    terms = [cond.replicate(width) & value for cond, value in pairs]
    if not terms:
        return Const(0, width)
    while len(terms) > 1:  # balanced OR tree
        terms = [
            terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
            for i in range(0, len(terms), 2)
        ]
    return terms[0][:width]


def read_back(region, index, words: BoardWords, amap: AddressMap, status, spins):
    """The register port's combinational read data (``docs/hardware.md``): the identity
    registers, STATUS and the spin words. J, BIAS and TABLE are read through :func:`late_read`."""
    n = amap.n
    spins_padded = Cat(spins, Const(0, amap.spin_words * DATA_BITS - n))
    reg = region == int(Region.REG)
    pairs = [(reg & (index == int(r)), Const(words.register(r), DATA_BITS)) for r in IDENTITY]
    pairs.append((reg & (index == int(Register.CONTROL)), status))
    spin_region = region == int(Region.SPIN)
    pairs += [
        (spin_region & (index == wd), spins_padded[DATA_BITS * wd : DATA_BITS * (wd + 1)])
        for wd in range(amap.spin_words)
    ]
    return select_or(pairs, DATA_BITS)


#: Regions whose words an array reads from its storage one clock after the address (block RAM and
#: wide multiplexers): :func:`late_read` selects them.
LATE_REGIONS = (Region.J, Region.BIAS, Region.TABLE, Region.TIMER)


def late_read(region, early, late):
    """``bus.r_data``: ``late`` (the J / BIAS / TABLE word addressed one clock earlier) when the
    address is in one of :data:`LATE_REGIONS`, else ``early`` (combinational). A reader holds the
    address for two clocks and samples ``r_data`` in the second; both kinds are valid then."""
    is_late = Const(0, 1)
    for r in LATE_REGIONS:
        is_late = is_late | (region == int(r))
    return Mux(is_late, late, early)


def sign_extend(value, width: int = DATA_BITS):
    """A two's-complement code as a ``width``-bit word (as ``RegisterFile`` reads it back)."""
    if len(value) >= width:
        return value[:width]
    return Cat(value, value[-1].replicate(width - len(value)))


def status_signal(color, warm_done, running):
    """The STATUS word (:func:`pbitsim.board.regmap.status_word`) from its signals."""
    return Cat(color, Const(0, 16 - len(color)), warm_done, running)


def array_signature(address_map: AddressMap, n_colors: int, n: int) -> dict:
    """The ports of every p-bit array (:class:`PbitArray` and ``PbitEngine`` share one contract):
    the register bus, run control, the colour being updated and every spin.

    ``cycle_start`` is high in a clock in which the array commits to one more model cycle (``run``
    high and accepted); that cycle's ``cycle_done`` comes in the same clock (:class:`PbitArray`)
    or a few clocks later (``PbitEngine``). A controller that must stop after exactly k cycles
    counts ``cycle_start`` and holds ``run`` low after the k-th.
    """
    return {
        "bus": In(
            wiring.Signature(
                {
                    "addr": Out(address_map.width),
                    "w_data": Out(DATA_BITS),
                    "w_en": Out(1),
                    "r_data": In(DATA_BITS),
                }
            )
        ),
        "run": In(1),
        "running": Out(1),
        "cycle_start": Out(1),
        "cycle_done": Out(1),
        "color": Out(range(max(n_colors, 2))),
        "spins": Out(n),
    }


class ArrayInfo:
    """What a built array says about itself: its couplings, design and topology id."""

    _couplings: Couplings
    _design: HardwareDesign

    @property
    def couplings(self) -> Couplings:
        return self._couplings

    @property
    def design(self) -> HardwareDesign:
        return self._design

    @property
    def topology_id(self) -> int:
        return topology_id(self._couplings)


class Pbit(wiring.Component):
    """One p-bit: J/bias registers, generator, look-ahead input sum, comparator, spin register.

    The spin decided at an edge where ``update`` is high uses ``table_data`` = T[``magnitude`` as
    presented one cycle earlier] and the sign registered then (see the module docstring).

    Parameters
    ----------
    design : HardwareDesign
    degree : int
    j_init : list of int
        Reset values of the J registers (codes).
    bias_init : int
        Reset value of the bias register, ``h - sum_k J_k`` (codes).
    seed : int
        Reset value of the generator.
    spin_init : int
        Reset value of the spin register (1 = +1, 0 = -1).
    bias_bits : int, optional
        Width of the bias register (default :func:`sum_width` of ``degree``). An array gives every
        p-bit the width of its widest one, so that a bias word reads back as the register map's
        ``RegisterFile`` stores it; the input sum uses the low ``sum_width(degree)`` bits, which
        hold every bias a model can have.

    Attributes
    ----------
    neighbours : In(degree)
        The neighbours' spins that the next cycle's decision reads: ``spin_next`` (the spins at
        the start of the next cycle) for read latency 0, older copies for L > 0.
    table_data : In(rng_bits)
    active : In(1)
        The generator advances at this edge (its colour runs; "async-random": every model
        cycle; "async-periodic": the p-bit acts).
    update : In(1)
        The p-bit acts in this cycle and is past warm-up: the spin takes the comparator's
        value.
    w_data : In(32), we_j : In(degree), we_bias, we_spin : In(1), we_seed : In(seed words)
        Register writes (codes are the low bits of ``w_data``, two's complement).
    magnitude : Out(input_bits - 1)
        |I| computed from ``neighbours``: the table address for the next cycle.
    j_codes : Out(degree * weight_bits)
        The J registers, slot k in bits ``k*w .. k*w + w - 1`` (read-back).
    bias_code : Out(bias_bits)
        The bias register (read-back).
    spin, spin_next : Out(1)
        The spin register and its next value.
    random : Out(rng_bits)
        The generator's output.
    """

    def __init__(
        self,
        design: HardwareDesign,
        degree: int,
        j_init=None,
        bias_init: int = 0,
        seed: int | None = None,
        spin_init: int = 0,
        bias_bits: int | None = None,
    ) -> None:
        self._design = design
        self._degree = int(degree)
        spec = design.fixed_point
        narrow = sum_width(spec, self._degree)
        self._bias_bits = narrow if bias_bits is None else int(bias_bits)
        if self._bias_bits < narrow:
            raise ValueError(f"bias_bits {bias_bits} < {narrow}, the bias of degree {degree}")
        self._j_init = [0] * self._degree if j_init is None else [int(x) for x in j_init]
        if len(self._j_init) != self._degree:
            raise ValueError(f"j_init has {len(self._j_init)} codes for degree {self._degree}")
        self._bias_init = int(bias_init)
        self._spin_init = int(spin_init)
        self._rng = (
            generator_for(design.rng, spec.rng_bits, seed)
            if seed is not None
            else generator_for(design.rng, spec.rng_bits, 1)
        )
        super().__init__(
            {
                "neighbours": In(self._degree),
                "table_data": In(spec.rng_bits),
                "active": In(1),
                "update": In(1),
                "w_data": In(DATA_BITS),
                "we_j": In(self._degree),
                "we_bias": In(1),
                "we_spin": In(1),
                "we_seed": In(state_bits(design.rng) // DATA_BITS),
                "magnitude": Out(spec.input_bits - 1),
                "j_codes": Out(self._degree * spec.weight_bits),
                "bias_code": Out(self._bias_bits),
                "spin": Out(1),
                "spin_next": Out(1),
                "random": Out(spec.rng_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        spec = self._design.fixed_point
        w = spec.weight_bits
        m.submodules.rng = rng = self._rng
        m.submodules.acc = acc = InputAccumulator(spec, self._degree)
        m.submodules.cmp = cmp = Comparator(spec)

        j = [Signal(signed(w), init=self._j_init[k], name=f"j{k}") for k in range(self._degree)]
        bias = Signal(signed(self._bias_bits), init=self._bias_init)
        spin = Signal(init=self._spin_init)
        negative = Signal()  # sign of the input whose |I| addressed the table last cycle

        for k in range(self._degree):
            m.d.comb += acc.j[k].eq(j[k])
            with m.If(self.we_j[k]):
                m.d.sync += j[k].eq(self.w_data[:w])
        with m.If(self.we_bias):
            m.d.sync += bias.eq(self.w_data[: len(bias)])
        m.d.comb += [
            self.j_codes.eq(Cat(*j)),
            self.bias_code.eq(bias),
            acc.bias.eq(bias[: len(acc.bias)]),
            acc.spins.eq(self.neighbours),
            self.magnitude.eq(acc.magnitude),
            rng.en.eq(self.active),
            rng.seed_data.eq(self.w_data),
            rng.seed_we.eq(self.we_seed),
            self.random.eq(rng.output),
            cmp.negative.eq(negative),
            cmp.entry.eq(self.table_data),
            cmp.random.eq(rng.output),
            self.spin.eq(spin),
            self.spin_next.eq(Mux(self.update, cmp.spin, spin)),
        ]
        m.d.sync += negative.eq(acc.negative)
        with m.If(self.we_spin):
            m.d.sync += spin.eq(self.w_data[0])
        with m.Else():
            m.d.sync += spin.eq(self.spin_next)
        return m


class PbitArray(ArrayInfo, wiring.Component):
    """A p-bit array for one topology, loaded at run time; twin of the cycle model.

    Parameters
    ----------
    couplings : Couplings
        Build-time topology (graph and colouring). With ``preload``, its quantised values too.
    design : HardwareDesign, optional
        Default :meth:`HardwareDesign.default`; any schedule and read latency.
    preload : bool
        Reset values of J, h, the table, seeds (master seed ``seed``), spins and the schedule's
        run-time values (the defaults of :func:`pbitsim.board.design.run_time_values`) follow
        ``couplings``, so the array runs that model without any write (default False: J = h = 0,
        table for beta = 1, ENABLE, PERIOD and PHASE 0, seeds from master seed ``seed``).
    seed : int
        Master seed of the reset-value seeds (:func:`pbitsim.rng.derive_seeds`).

    Attributes
    ----------
    bus : In(signature): addr, w_data, w_en in; r_data out
        The register port; :class:`AddressMap` gives the layout. A write pauses the schedule for
        that clock and the next (the look-ahead table address is recomputed meanwhile). Reads:
        identity registers, STATUS and SPIN words are combinational; J, BIAS and TABLE words
        come one clock after their address (hold it two clocks, sample ``r_data`` in the second;
        :func:`late_read`). A TABLE read borrows lane 0's table port, so it is answered only
        while ``run`` is low, and the clock after one is not a model cycle.
    run : In(1)
        Run enable.
    running : Out(1)
        This clock edge is a model cycle: ``run``, not the first clock after reset, no write in
        this or the previous clock, no TABLE read in the previous clock.
    cycle_start : Out(1)
        Same as ``running``: a model cycle starts and ends at this edge.
    cycle_done : Out(1)
        Same as ``running`` (the name :class:`~pbitsim.hdl.engine.PbitEngine` shares): the spins
        after this edge are the model's S_t.
    color : Out(range(C))
        Colour of the current cycle (0 for un-coloured schedules).
    spins : Out(n)
        All spin registers (bit i = p-bit i, 1 = +1).

    Raises
    ------
    ValueError
        If the graph needs more neighbour slots than ``design.max_degree``.
    """

    def __init__(
        self,
        couplings: Couplings,
        design: HardwareDesign | None = None,
        *,
        preload: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(couplings, Couplings):
            raise TypeError(f"couplings must be a Couplings, not {couplings!r}")
        design = HardwareDesign.default() if design is None else design
        if not isinstance(design, HardwareDesign):
            raise TypeError(f"design must be a HardwareDesign, not {design!r}")
        design.check(couplings)
        self._couplings = couplings
        self._design = design
        self._preload = bool(preload)
        self._seed = int(seed)
        self.address_map = AddressMap.for_design(couplings, design)
        self.words = BoardWords.for_array(couplings, design)
        self.n_colors = max(couplings.n_colors, 1)
        # Lanes: lane k = the k-th p-bit (by index) of every colour; un-coloured schedules: every
        # p-bit its own lane (any p-bit may act in any cycle).
        classes = (
            couplings.color_classes()
            if design.coloured
            else [np.arange(couplings.n, dtype=np.int64)]
        )
        self.lanes = max(len(c) for c in classes)
        self.lane_of = np.zeros(couplings.n, dtype=np.int64)
        self.members = [[None] * self.n_colors for _ in range(self.lanes)]
        for c, cls in enumerate(classes):
            for k, i in enumerate(cls.tolist()):
                self.lane_of[i] = k
                self.members[k][c] = i
        super().__init__(array_signature(self.address_map, self.n_colors, couplings.n))

    def _reset_values(self):
        c, d = self._couplings, self._design
        n = c.n
        seeds = derive_seeds(self._seed, n, d.rng)
        if self._preload:
            q = c.quantized(d.fixed_point)
            j = [q.j_codes[q.indptr[i] : q.indptr[i + 1]].tolist() for i in range(n)]
            bias = [InputAccumulator.bias_of(q.h_codes[i], j[i]) for i in range(n)]
            beta = c.beta if d.fixed_point.beta_in_table else 1.0
        else:
            j = [[0] * int(k) for k in c.degrees]
            bias = [0] * n
            beta = 1.0
        return j, bias, beta, seeds

    def _reset_schedule(self, seeds):
        """Reset values of the schedule's registers: ENABLE, PERIOD, PHASE (0 unless preloaded)
        and the enable generators' seeds (from master seed ``seed``)."""
        d, n = self._design, self._couplings.n
        values = {"enable": 0, "period": [0] * n, "phase": [0] * n}
        if self._preload:
            v = run_time_values(d, n, self._seed)
            values["enable"] = v["enable"]
            if v["period"] is not None:
                values["period"], values["phase"] = v["period"].tolist(), v["phase"].tolist()
        en = derive_enable_seeds(self._seed, seeds, d.rng) if d.generators == 2 else None
        return values, en

    def elaborate(self, platform):
        m = Module()
        c, d, amap = self._couplings, self._design, self.address_map
        spec = d.fixed_point
        n, n_colors = c.n, self.n_colors
        j_init, bias_init, beta, seeds = self._reset_values()
        values, en_seeds = self._reset_schedule(seeds)
        spin_init = 1 if d.initial_spin > 0 else 0
        random = d.schedule == "async-random"
        latency = d.read_latency

        # -- register port decoding --------------------------------------------------------
        bus = self.bus
        region = bus.addr[amap.index_bits :]
        index = bus.addr[: amap.index_bits]
        slot = index[: amap.slot_bits]
        pidx = index[amap.slot_bits : amap.slot_bits + amap.pbit_bits]
        w_en_last = Signal()
        # The table answers one clock after it is addressed, so the first clock after reset only
        # prepares the look-ahead address ("primed" goes high at the first edge).
        primed = Signal()
        # A TABLE read (while stopped) borrows lane 0's table port: the clock after it, that port
        # answers the read, not the look-ahead, so it cannot be a model cycle.
        table_read = Signal()
        table_read_last = Signal()
        m.d.comb += table_read.eq(~self.run & (region == int(Region.TABLE)))
        m.d.sync += [w_en_last.eq(bus.w_en), primed.eq(1), table_read_last.eq(table_read)]

        def strobe(reg: Region):
            return bus.w_en & (region == int(reg))

        restart = strobe(Region.REG) & (index == int(Register.CONTROL)) & bus.w_data[0]

        # -- schedule ----------------------------------------------------------------------
        running = Signal()
        # range(max(C, 2)): a single colour would give 0-bit signals, which Switch/Case refuse.
        color = Signal(range(max(n_colors, 2)), init=0)
        following = Signal.like(color)  # colour after this cycle's
        next_color = Signal.like(color)  # colour of the next cycle
        warm_total = d.warmup_cycles(n_colors)
        warm_left = Signal(range(warm_total + 1), init=warm_total)
        warm_done = Signal()
        m.d.comb += [
            running.eq(self.run & primed & ~bus.w_en & ~w_en_last & ~table_read_last),
            following.eq(Mux(color == n_colors - 1, 0, color + 1)),
            next_color.eq(Mux(running, following, color)),
            warm_done.eq(warm_left == 0),
            self.running.eq(running),
            self.cycle_start.eq(running),
            self.cycle_done.eq(running),
            self.color.eq(color),
        ]
        with m.If(restart):
            m.d.sync += [color.eq(0), warm_left.eq(warm_total)]
        with m.Elif(running):
            if d.coloured:
                m.d.sync += color.eq(following)
            with m.If(~warm_done):
                m.d.sync += warm_left.eq(warm_left - 1)

        # -- the table, one read port per lane -----------------------------------------------
        m.submodules.table = table = ActivationTable(spec, self.lanes, beta)
        m.d.comb += [
            table.w_addr.eq(index),
            table.w_data.eq(bus.w_data),
            table.w_en.eq(strobe(Region.TABLE)),
        ]

        # -- p-bits --------------------------------------------------------------------------
        pbits = []
        timers = []  # (PERIOD, PHASE) registers per p-bit ("async-periodic")
        bias_bits = sum_width(spec, amap.slots)  # as wide as RegisterFile's bias words
        for i in range(n):
            p = Pbit(
                d, int(c.degrees[i]), j_init[i], bias_init[i], int(seeds[i]), spin_init, bias_bits
            )
            m.submodules[f"pbit{i}"] = p
            pbits.append(p)
        slot_hit = [slot == k for k in range(1 << amap.slot_bits)]

        # -- what the next model cycle's decisions read ---------------------------------------
        # With S_u the spins after the last model cycle u (the spin registers), the table
        # address computed in this clock serves the next model cycle: u + 2 when this clock is
        # a model cycle, else u + 1. It must come from S_{(u + running) - L}: the next-state
        # spins for L = 0; else history[L - 1] or history[L] (history[k] = S_{u-k}: the spin
        # registers and a delay line of L copies shifted at every model cycle), so that a pause
        # changes nothing.
        spins_now = Cat(*[p.spin for p in pbits])
        delay = [Signal(n, init=spin_init * ((1 << n) - 1), name=f"history{k + 1}")
                 for k in range(latency)]  # fmt: skip
        with m.If(running):
            for k, dl in enumerate(delay):
                m.d.sync += dl.eq(spins_now if k == 0 else delay[k - 1])
        with m.If(restart):  # the spins at a restart are taken as held
            m.d.sync += [dl.eq(spins_now) for dl in delay]
        for i in range(n):
            with m.If(strobe(Region.SPIN) & (pidx == i) & slot_hit[0]):
                m.d.sync += [dl[i].eq(bus.w_data[0]) for dl in delay]
        if latency == 0:
            source = [p.spin_next for p in pbits]
        else:
            history = [spins_now, *delay]
            source = [Mux(running, history[latency - 1][i], history[latency][i]) for i in range(n)]

        # -- un-coloured schedules: ENABLE and the enable generators, or the period counters --
        enable = Signal(ENABLE_BITS + 1, init=values["enable"])
        enable_write = strobe(Region.REG) & (index == int(Register.ENABLE))
        if random:
            with m.If(enable_write):
                m.d.sync += enable.eq(bus.w_data[: len(enable)])

        for i, p in enumerate(pbits):
            nb = c.indices[c.indptr[i] : c.indptr[i + 1]].tolist()
            mine = pidx == i
            acts = Signal(name=f"acts{i}")  # this p-bit acts in this (running) cycle
            if d.coloured:
                m.d.comb += acts.eq(running & (color == int(c.coloring[i])))
            elif random:
                en = generator_for(d.rng, ENABLE_BITS, int(en_seeds[i]))
                m.submodules[f"enable{i}"] = en
                words = amap.seed_words
                m.d.comb += [
                    en.en.eq(running),
                    en.seed_data.eq(bus.w_data),
                    en.seed_we.eq(
                        Cat(
                            *[
                                strobe(Region.SEED) & mine & slot_hit[words + w]
                                for w in range(words)
                            ]
                        )
                    ),  # fmt: skip
                    acts.eq(running & (en.output < enable)),
                ]
            else:
                period = Signal(TIMER_BITS, init=int(values["period"][i]), name=f"period{i}")
                phase = Signal(TIMER_BITS, init=int(values["phase"][i]), name=f"phase{i}")
                counter = Signal(TIMER_BITS, init=int(values["phase"][i]), name=f"counter{i}")
                timer = strobe(Region.TIMER) & mine
                with m.If(timer & slot_hit[TIMER_PERIOD]):
                    m.d.sync += period.eq(bus.w_data[:TIMER_BITS])
                with m.If(timer & slot_hit[TIMER_PHASE]):
                    m.d.sync += phase.eq(bus.w_data[:TIMER_BITS])
                with m.If(restart):
                    m.d.sync += counter.eq(phase)
                with m.Elif(running):
                    m.d.sync += counter.eq(Mux(counter == 0, period - 1, counter - 1)[:TIMER_BITS])
                m.d.comb += acts.eq(running & (counter == 0))
                timers.append((period, phase))
            m.d.comb += [
                p.active.eq(running if random else acts),
                p.update.eq(acts & warm_done),
                p.neighbours.eq(Cat(*[source[k] for k in nb])),
                p.table_data.eq(table.r_data[int(self.lane_of[i])]),
                p.w_data.eq(bus.w_data),
                p.we_bias.eq(strobe(Region.BIAS) & mine & slot_hit[0]),
                p.we_spin.eq(strobe(Region.SPIN) & mine & slot_hit[0]),
                p.we_seed.eq(
                    Cat(*[strobe(Region.SEED) & mine & slot_hit[w] for w in range(amap.seed_words)])
                ),
            ]
            if len(nb):
                m.d.comb += p.we_j.eq(
                    Cat(*[strobe(Region.J) & mine & slot_hit[k] for k in range(len(nb))])
                )
        m.d.comb += self.spins.eq(Cat(*[p.spin for p in pbits]))

        # Each lane presents the |I| of its member in the colour that runs next (un-coloured: its
        # only member, every cycle).
        for k, members in enumerate(self.members):
            lookahead = select_or(
                [
                    (next_color == col, pbits[i].magnitude)
                    for col, i in enumerate(members)
                    if i is not None
                ],
                len(table.r_addr[k]),
            ) if d.coloured else pbits[members[0]].magnitude  # fmt: skip
            if k == 0:
                lookahead = Mux(table_read, index[: len(table.r_addr[k])], lookahead)
            m.d.comb += table.r_addr[k].eq(lookahead)

        # -- read-back ------------------------------------------------------------------------
        # J and BIAS: one registered AND-OR selection over every p-bit's registers.
        w = spec.weight_bits
        words = []
        for i, p in enumerate(pbits):
            mine = (region == int(Region.BIAS)) & (pidx == i) & slot_hit[0]
            words.append((mine, sign_extend(p.bias_code)))
            for k in range(int(c.degrees[i])):
                mine = (region == int(Region.J)) & (pidx == i) & slot_hit[k]
                words.append((mine, sign_extend(p.j_codes[k * w : (k + 1) * w])))
        for i, (period, phase) in enumerate(timers):
            for k, reg in ((TIMER_PERIOD, period), (TIMER_PHASE, phase)):
                mine = (region == int(Region.TIMER)) & (pidx == i) & slot_hit[k]
                words.append((mine, Cat(reg, Const(0, DATA_BITS - TIMER_BITS))))
        registers = Signal(DATA_BITS)
        m.d.sync += registers.eq(select_or(words, DATA_BITS))
        late = Mux(region == int(Region.TABLE), table.r_data[0], registers)
        status = status_signal(color, warm_done, running)
        early = read_back(region, index, self.words, amap, status, self.spins)
        if random:
            is_enable = (region == int(Region.REG)) & (index == int(Register.ENABLE))
            early = Mux(is_enable, Cat(enable, Const(0, DATA_BITS - len(enable))), early)
        m.d.comb += bus.r_data.eq(late_read(region, early, late))
        return m
