"""A buffer memory shared by one writer that never waits and one reader that may.

The command engine's buffers (the reply slots, the ring of stream frames) are written by one side
(the engine, the sample writer) and read by the frame transmitter, at most one byte per clock
each. With ``single_port`` the memory has one address for both, as a single-port RAM needs (the
iCE40UP5K's SPRAM): a write takes the port, and a read request waits (``r_grant`` low) until a
clock without one. Reads are rare (one byte per UART byte time) and writes come in short bursts,
so the reader loses little.

Elaborated for an iCE40UP platform (``platform.device`` starting with ``iCE40UP``), a single-port
buffer of at most 16 384 words of at most 16 bits is an ``SB_SPRAM256KA`` instance (yosys does
not infer SPRAM from a memory); elsewhere (simulation, ECP5) it is an Amaranth memory.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SharedBuffer", "uses_spram"]

SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16


def uses_spram(platform, width: int, depth: int, single_port: bool) -> bool:
    """Whether a buffer becomes an iCE40UP SPRAM block on ``platform``."""
    device = str(getattr(platform, "device", ""))
    return single_port and device.startswith("iCE40UP") and width <= 16 and depth <= SPRAM_DEPTH


class SharedBuffer(wiring.Component):
    """A ``depth`` x ``width`` memory with a write port and a read port that may be held off.

    Parameters
    ----------
    width, depth : int
    single_port : bool
        One address for reads and writes (default True): writes take precedence.

    Attributes
    ----------
    w_addr, w_data, w_en : In
        A write, done in the clock it is asserted.
    r_addr, r_en : In
        A read request; served in a clock where ``r_grant`` is high.
    r_grant : Out(1)
    r_data : Out(width)
        The word of the request served in the previous clock.
    """

    def __init__(self, width: int, depth: int, *, single_port: bool = True) -> None:
        if depth < 1 or width < 1:
            raise ValueError(f"a buffer needs width and depth >= 1, not {width} x {depth}")
        self.width, self.depth, self.single_port = int(width), int(depth), bool(single_port)
        super().__init__(
            {
                "w_addr": In(range(self.depth)),
                "w_data": In(self.width),
                "w_en": In(1),
                "r_addr": In(range(self.depth)),
                "r_en": In(1),
                "r_grant": Out(1),
                "r_data": Out(self.width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        if uses_spram(platform, self.width, self.depth, self.single_port):
            return self._spram(m)
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port()
        m.d.comb += [
            wr.data.eq(self.w_data),
            wr.en.eq(self.w_en),
            self.r_data.eq(rd.data),
        ]
        if self.single_port:
            m.d.comb += [
                rd.addr.eq(Mux(self.w_en, self.w_addr, self.r_addr)),
                wr.addr.eq(rd.addr),
                self.r_grant.eq(self.r_en & ~self.w_en),
            ]
        else:
            m.d.comb += [
                rd.addr.eq(self.r_addr),
                wr.addr.eq(self.w_addr),
                self.r_grant.eq(self.r_en),
            ]
        return m

    def _spram(self, m):
        """The iCE40UP's single-port RAM: 16 384 x 16 bits, data one clock after the address."""
        addr = Signal(14)
        data_out = Signal(SPRAM_WIDTH)
        m.d.comb += [
            addr.eq(Mux(self.w_en, self.w_addr, self.r_addr)),
            self.r_grant.eq(self.r_en & ~self.w_en),
            self.r_data.eq(data_out[: self.width]),
        ]
        m.submodules.spram = Instance(
            "SB_SPRAM256KA",
            i_ADDRESS=addr,
            i_DATAIN=Cat(self.w_data, Const(0, SPRAM_WIDTH - self.width)),
            i_MASKWREN=Const(0b1111, 4),
            i_WREN=self.w_en,
            i_CHIPSELECT=Const(1, 1),
            i_CLOCK=ClockSignal(),
            i_STANDBY=Const(0, 1),
            i_SLEEP=Const(0, 1),
            i_POWEROFF=Const(1, 1),  # 1: powered (the pin is active low)
            o_DATAOUT=data_out,
        )
        return m
