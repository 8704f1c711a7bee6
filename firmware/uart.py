"""UART receiver and transmitter, 8N1, ``divisor`` clocks per bit; and their bit-level twin.

:class:`UARTRx` samples the (synchronised) line in the middle of each bit: it sees a start bit at
the first low clock, checks it is still low ``divisor // 2`` clocks later, then samples the 8 data
bits (LSB first) and the stop bit every ``divisor`` clocks. A byte whose stop bit is low is dropped
and flagged (``framing_error``); the receiver then waits for the line to go high again (a break
condition yields one error, not a stream of zero bytes). It is ready for the next start bit in the
middle of the stop bit, so back-to-back bytes from a slightly faster sender are received.

:class:`UARTTx` sends a start bit, the 8 data bits LSB first and a stop bit, each ``divisor``
clocks long, and takes the next byte as the stop bit ends (back-to-back bytes, no idle gap).

The twin (:func:`line_levels`, :class:`LineReceiver`) is the same protocol in Python at the clock
level: what the line carries clock by clock for some bytes, and what a receiver that samples by
the same rule decodes from a line; the tests hold the gateware to both.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "line_levels", "LineReceiver", "check_divisor"]

#: Clocks of one 8N1 byte per clock of ``divisor``: start + 8 data + stop bits.
BITS_PER_BYTE = 10


def check_divisor(divisor) -> int:
    """``divisor`` as an int >= 3 (the receiver needs a middle to sample), else ValueError."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 3:
        raise ValueError(f"divisor (clocks per bit) must be an int >= 3, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clocks per bit (>= 3), e.g. 4 for 3 Mbaud at 12 MHz.

    Attributes
    ----------
    rx : In(1), init 1
        The line (idle high), asynchronous: it passes a 2-flip-flop synchroniser first.
    o : Out(stream.Signature(8))
        Received bytes. A byte not taken (``ready`` low) when the next one is complete is
        replaced by it and ``overrun`` pulses.
    framing_error : Out(1)
        Pulses for one clock when a byte is dropped because its stop bit was low.
    overrun : Out(1)
        Pulses for one clock when a byte is lost because the previous one was not taken.
    """

    def __init__(self, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__(
            {
                "rx": In(1, init=1),
                "o": Out(stream.Signature(8)),
                "framing_error": Out(1),
                "overrun": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(d))
        bits = Signal(range(9))
        shift = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1), timer.eq(d - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.d.comb += self.overrun.eq(self.o.valid & ~self.o.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clocks per bit (>= 3).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; one is taken (``ready`` high) when the line is idle or a stop bit ends.
    tx : Out(1), init 1
        The line (registered, idle high).
    busy : Out(1)
        A byte is being sent.
    """

    def __init__(self, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        left = Signal(range(BITS_PER_BYTE + 1))  # bits still to send, the current one included
        shift = Signal(BITS_PER_BYTE, init=(1 << BITS_PER_BYTE) - 1)
        last = (left == 0) | ((left == 1) & (timer == 0))  # the line is free after this clock
        m.d.comb += [self.busy.eq(left != 0), self.i.ready.eq(last), self.tx.eq(shift[0])]
        with m.If(self.i.valid & last):
            # start bit 0, data LSB first, stop bit 1
            m.d.sync += [
                shift.eq(Cat(0, self.i.payload, 1)),
                left.eq(BITS_PER_BYTE),
                timer.eq(d - 1),
            ]
        with m.Elif(left != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], 1)), left.eq(left - 1), timer.eq(d - 1)]
        return m


# --------------------------------------------------------------------------------------------------
# The twin: the line, clock by clock


def line_levels(data: bytes, divisor: int, gaps=None, stop_bits=None) -> list[int]:
    """What an 8N1 line carries, one level per clock, for ``data`` (idle high before nothing).

    Parameters
    ----------
    data : bytes
    divisor : int
        Clocks per bit.
    gaps : sequence of int, optional
        Idle clocks after each byte (default none: back to back).
    stop_bits : sequence of int, optional
        The stop-bit level of each byte (default 1; 0 makes a framing error).
    """
    check_divisor(divisor)
    out = []
    for k, byte in enumerate(bytes(data)):
        stop = 1 if stop_bits is None else int(stop_bits[k])
        for bit in [0] + [(byte >> b) & 1 for b in range(8)] + [stop]:
            out += [bit] * divisor
        if gaps is not None:
            out += [1] * int(gaps[k])
    return out


class LineReceiver:
    """A receiver in Python with :class:`UARTRx`'s sampling rule, fed one line level per clock.

    ``feed(levels)`` returns what it decodes: ``(byte, True)`` for a byte, ``(None, False)`` for
    a framing error (the byte is dropped, and nothing is decoded until the line is high again).
    """

    def __init__(self, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        self._state = "IDLE"
        self._timer = 0
        self._bits = 0
        self._shift = 0

    def feed(self, levels) -> list[tuple[int | None, bool]]:
        out = []
        d = self.divisor
        for level in levels:
            state = self._state
            if state == "IDLE":
                if not level:
                    self._timer, self._state = d // 2 - 1, "START"
            elif state == "BREAK":
                if level:
                    self._state = "IDLE"
            else:
                if self._timer:
                    self._timer -= 1
                    continue
                self._timer = d - 1
                if state == "START":
                    self._state = "IDLE" if level else "DATA"
                    self._bits = self._shift = 0
                elif state == "DATA":
                    self._shift |= int(level) << self._bits
                    self._bits += 1
                    if self._bits == 8:
                        self._state = "STOP"
                else:  # STOP
                    if level:
                        out.append((self._shift, True))
                        self._state = "IDLE"
                    else:
                        out.append((None, False))
                        self._state = "BREAK"
        return out
