"""Everything a board runs but its clock and pins: :class:`BoardCore` (bytes in, bytes out) and
:class:`SerialBoard` (the same behind a UART: ``rx`` and ``tx`` pins).

A board top level (iCEBreaker, ULX3S) only adds the clock (a PLL where the baud rate needs it),
connects ``rx``/``tx`` to the UART pins and the four LED outputs to LEDs::

    top = SerialBoard(couplings, design, lanes=4, divisor=4)   # 12 MHz / 4 = 3 Mbaud
    m.submodules.board = top
    m.d.comb += [top.rx.eq(uart.rx.i), uart.tx.o.eq(top.tx), led0.eq(top.led_running), ...]

Data path: UART rx → byte FIFO (holds what arrives while the engine is busy with a frame) →
:class:`~.framing.FrameReceiver` → :class:`~.engine.CommandEngine` ↔ the p-bit array
(``PbitArray`` or, with ``lanes``, ``PbitEngine``) → :class:`~.framing.FrameTransmitter` → UART
tx. Twin of the whole: :class:`pbitsim.board.session.BoardSession` with
:class:`pbitsim.sim.array.ArrayModel`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from pbitsim.hdl.engine import PbitEngine
from pbitsim.hdl.hardware import PbitArray

from pbitsim.board.design import HardwareDesign

from .engine import CommandEngine
from .framing import FrameReceiver
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["BoardCore", "SerialBoard", "LED_HOLD"]

#: Clocks an LED event (a write, an error) stays lit: about 90 ms at 12 MHz.
LED_HOLD = 1 << 20


class BoardCore(wiring.Component):
    """The command engine, the frame receiver and the p-bit array, bytes in and out.

    Parameters
    ----------
    couplings : Couplings
        The topology the array is built for (values are loaded at run time).
    design : HardwareDesign, optional
    lanes : int, optional
        None: ``PbitArray`` (one colour per clock); else ``PbitEngine`` with this many lanes.
    max_frame, buffer_frames, stat_banks, single_port
        As for :class:`~.engine.CommandEngine`.
    rx_fifo : int
        Bytes the receive FIFO holds while a frame is being handled (default 64).
    led_hold : int
        Clocks an LED event stays lit.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host. Taken whenever the FIFO has room; a byte offered to a full FIFO
        is lost and ``overflow`` pulses (the frame it belongs to then fails its CRC).
    tx : Out(stream.Signature(8))
        Bytes to the host.
    led_idle, led_loading, led_running, led_error : Out(1)
        No run / a WRITE was executed recently / a run in progress (blinking while paused for
        credit) / an ERROR was sent recently.
    overflow : Out(1)
    """

    def __init__(
        self,
        couplings,
        design: HardwareDesign | None = None,
        *,
        lanes: int | None = None,
        max_frame: int = 256,
        buffer_frames: int = 8,
        stat_banks: int = 1,
        single_port: bool = True,
        rx_fifo: int = 64,
        led_hold: int = LED_HOLD,
    ) -> None:
        design = HardwareDesign.default() if design is None else design
        if lanes is None:
            self.pbits = PbitArray(couplings, design)
        else:
            self.pbits = PbitEngine(couplings, design, lanes=lanes)
        self.engine = CommandEngine(
            self.pbits,
            max_frame=max_frame,
            buffer_frames=buffer_frames,
            stat_banks=stat_banks,
            single_port=single_port,
        )
        self.receiver = FrameReceiver(max_frame)
        if isinstance(rx_fifo, bool) or not isinstance(rx_fifo, int) or rx_fifo < 2:
            raise ValueError(f"rx_fifo must be an int >= 2, not {rx_fifo!r}")
        self.rx_fifo = rx_fifo
        self.led_hold = int(led_hold)
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "tx": Out(stream.Signature(8)),
                "led_idle": Out(1),
                "led_loading": Out(1),
                "led_running": Out(1),
                "led_error": Out(1),
                "overflow": Out(1),
            }
        )

    @property
    def max_frame(self) -> int:
        return self.engine.max_frame

    @property
    def buffer_frames(self) -> int:
        return self.engine.buffer_frames

    def elaborate(self, platform):
        m = Module()
        m.submodules.pbits = pbits = self.pbits
        m.submodules.engine = engine = self.engine
        m.submodules.receiver = receiver = self.receiver
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.rx_fifo)
        wiring.connect(m, engine.array, pbits)
        m.d.comb += [
            rx_fifo.w_data.eq(self.rx.payload),
            rx_fifo.w_en.eq(self.rx.valid),
            self.rx.ready.eq(1),
            self.overflow.eq(self.rx.valid & ~rx_fifo.w_rdy),
            receiver.i.payload.eq(rx_fifo.r_data),
            receiver.i.valid.eq(rx_fifo.r_rdy),
            rx_fifo.r_en.eq(receiver.i.ready),
            engine.rx_data.eq(receiver.rd_data),
            receiver.rd_addr.eq(engine.rx_addr),
        ]
        wiring.connect(m, receiver.event, engine.frames)
        wiring.connect(m, engine.tx, wiring.flipped(self.tx))

        # LEDs: events held for led_hold clocks; "running" blinks while paused for credit.
        def held(event, name):
            left = Signal(range(self.led_hold + 1), name=name)
            with m.If(event):
                m.d.sync += left.eq(self.led_hold)
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
            return left != 0

        blink = Signal(range(max(self.led_hold, 2)))
        m.d.sync += blink.eq(blink + 1)
        m.d.comb += [
            self.led_idle.eq(~engine.running),
            self.led_loading.eq(held(engine.wrote, "loading_left")),
            self.led_running.eq(engine.running & (~engine.paused | blink[-1])),
            self.led_error.eq(held(engine.error, "error_left")),
        ]
        return m


class SerialBoard(wiring.Component):
    """:class:`BoardCore` behind an 8N1 UART of ``divisor`` clocks per bit.

    Parameters
    ----------
    couplings, design, lanes, max_frame, buffer_frames, stat_banks, single_port, rx_fifo,
    led_hold
        As for :class:`BoardCore`.
    divisor : int
        Clocks per bit (>= 3): 4 = 3 Mbaud at 12 MHz (iCEBreaker, no PLL).

    Attributes
    ----------
    rx : In(1), init 1
        The UART receive pin (asynchronous: synchronised inside).
    tx : Out(1)
        The UART transmit pin (idle high).
    led_idle, led_loading, led_running, led_error : Out(1)
    framing_error : Out(1)
        A byte with a low stop bit was dropped (one-clock pulse).
    """

    def __init__(self, couplings, design=None, *, divisor: int = 4, **kw) -> None:
        self.divisor = check_divisor(divisor)
        self.core = BoardCore(couplings, design, **kw)
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "led_idle": Out(1),
                "led_loading": Out(1),
                "led_running": Out(1),
                "led_error": Out(1),
                "framing_error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.d.comb += [
            urx.rx.eq(self.rx),
            self.tx.eq(utx.tx),
            self.framing_error.eq(urx.framing_error),
            self.led_idle.eq(core.led_idle),
            self.led_loading.eq(core.led_loading),
            self.led_running.eq(core.led_running),
            self.led_error.eq(core.led_error),
        ]
        wiring.connect(m, urx.o, core.rx)
        wiring.connect(m, core.tx, utx.i)
        return m
