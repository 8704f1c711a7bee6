"""The wire framing of :mod:`pbitsim.board.protocol` in gateware: receive and transmit frames.

:class:`FrameReceiver` takes the bytes from the UART, undoes COBS as they arrive, writes the
decoded frame into a buffer memory and runs its CRC-32 over every decoded byte; at the closing
0x00 it either hands the whole, checked frame to the command engine (``event``: type, seq, length;
the payload is read from the buffer with ``rd_addr``/``rd_data``) or reports the error the
reference :class:`~pbitsim.board.protocol.Decoder` reports for the same bytes, with the same seq.
Nothing in a frame acts before its CRC has been checked. The CRC check uses the CRC-32 residue:
running the CRC over the frame *including* its trailing CRC ends in a fixed value
(``amaranth.lib.crc.Processor.match_detected``), so the end of the frame need not be known in
advance.

:class:`FrameTransmitter` sends one frame from a buffer: a first pass computes the CRC, a second
COBS-encodes the bytes and the CRC as they go out, each block's code byte found by looking ahead
up to 254 bytes in the buffer, with a 0x00 before and after. The seq (bytes 1-2) is supplied at
start and the CRC is appended, so a kept frame can be sent again with its original seq.

Twin: :mod:`pbitsim.board.protocol` (``Decoder``, ``encode_frame``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

from pbitsim.board.protocol import (
    CRC_BYTES,
    HEADER_BYTES,
    MIN_FRAME,
    ErrorCode,
    max_encoded_length,
)

__all__ = ["FrameReceiver", "FrameTransmitter", "check_max_frame", "EVENT_FRAME", "EVENT_ERROR"]

#: ``FrameReceiver.event.payload.kind``: a checked frame is in the buffer / an error to report.
EVENT_FRAME = 0
EVENT_ERROR = 1

#: COBS blocks hold at most 254 non-zero bytes (code 0xFF).
COBS_BLOCK = 254


def check_max_frame(max_frame) -> int:
    """``max_frame`` as an int in 64 .. 65535 (an IDENT_REPLY frame, 51 bytes, must fit)."""
    ok = isinstance(max_frame, int) and not isinstance(max_frame, bool)
    if not ok or not 64 <= max_frame < 1 << 16:
        raise ValueError(f"max_frame must be an int in 64..65535, not {max_frame!r}")
    return max_frame


def crc32():
    """A byte-wide CRC-32/ISO-HDLC processor (``zlib.crc32``)."""
    return catalog.CRC32_ISO_HDLC().create()


def event_layout(max_frame: int) -> data.StructLayout:
    return data.StructLayout(
        {
            "kind": 1,  # EVENT_FRAME or EVENT_ERROR
            "code": 8,  # ErrorCode (errors)
            "seq": 16,  # the frame's seq; for errors as read, 0 when unreadable
            "type": 8,
            "length": range(max_frame + 1),  # decoded frame length, CRC included
        }
    )


class FrameReceiver(wiring.Component):
    """Bytes in, checked frames (in a buffer) and framing errors out.

    Parameters
    ----------
    max_frame : int
        Longest unencoded frame accepted (the buffer's depth).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes from the line. Not taken while an event waits (the engine reads the buffer then).
    event : Out(stream.Signature(event_layout))
        One per frame or error, in stream order; ``ready`` releases it (and the buffer).
    rd_addr : In(range(max_frame)), rd_data : Out(8)
        Buffer read port for the engine (data one clock after the address), valid while a frame
        event waits.

    Errors, as :class:`~pbitsim.board.protocol.Decoder` reports them: TOO_LONG at once (seq 0)
    when more than ``max_encoded_length(max_frame)`` bytes arrive without a 0x00, then everything
    up to the next 0x00 is dropped; at the closing 0x00, BAD_FRAME (seq 0) for a COBS code that
    points past the end, TOO_LONG for a decoded frame over ``max_frame``, BAD_FRAME for one under
    7 bytes (seq as read when at least 3 bytes), BAD_CRC (seq as read).
    """

    def __init__(self, max_frame: int = 256) -> None:
        self.max_frame = check_max_frame(max_frame)
        self.limit = max_encoded_length(self.max_frame)
        super().__init__(
            {
                "i": In(stream.Signature(8)),
                "event": Out(stream.Signature(event_layout(self.max_frame))),
                "rd_addr": In(range(self.max_frame)),
                "rd_data": Out(8),
            }
        )

    def elaborate(self, platform):
        m = Module()
        mf, limit = self.max_frame, self.limit
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=mf, init=[])
        wr = buf.write_port()
        rd = buf.read_port()
        m.submodules.crc = crc = crc32()

        enc = Signal(range(limit + 1))  # encoded bytes since the last 0x00
        dec = Signal(range(limit + 1))  # decoded bytes so far
        left = Signal(8)  # bytes left in the current COBS block
        prev_ff = Signal()  # the current block's code was 0xFF (no implied zero after it)
        discarding = Signal()
        ftype = Signal(8)
        seq = Signal(16)
        ev = self.event.payload

        # One address for the buffer (a single-port RAM fits): the engine's while an event waits.
        out_byte = Signal(8)
        out_valid = Signal()
        m.d.comb += [
            rd.addr.eq(Mux(self.event.valid, self.rd_addr, dec)),
            wr.addr.eq(rd.addr),
            wr.data.eq(out_byte),
            wr.en.eq(out_valid & (dec < mf)),
            self.rd_data.eq(rd.data),
            crc.data.eq(out_byte),
            crc.valid.eq(out_valid),
            crc.start.eq(dec == 0),
            self.i.ready.eq(~self.event.valid),
        ]
        with m.If(out_valid):
            m.d.sync += dec.eq(dec + 1)
            with m.If(dec == 0):
                m.d.sync += ftype.eq(out_byte)
            with m.If(dec == 1):
                m.d.sync += seq[:8].eq(out_byte)
            with m.If(dec == 2):
                m.d.sync += seq[8:].eq(out_byte)

        with m.If(self.event.ready):
            m.d.sync += self.event.valid.eq(0)

        def emit(kind, code=0, seq_value=0):
            m.d.sync += [
                self.event.valid.eq(1),
                ev.kind.eq(kind),
                ev.code.eq(code),
                ev.seq.eq(seq_value),
                ev.type.eq(ftype),
                ev.length.eq(dec[: len(ev.length)]),
            ]

        def restart():
            m.d.sync += [enc.eq(0), dec.eq(0), left.eq(0), prev_ff.eq(0)]

        byte = self.i.payload
        with m.If(self.i.valid & self.i.ready):
            with m.If(byte == 0):
                restart()
                m.d.sync += discarding.eq(0)
                with m.If(~discarding & (enc != 0)):
                    with m.If(left != 0):
                        emit(EVENT_ERROR, ErrorCode.BAD_FRAME)
                    with m.Elif(dec > mf):
                        emit(EVENT_ERROR, ErrorCode.TOO_LONG, seq)
                    with m.Elif(dec < MIN_FRAME):
                        emit(EVENT_ERROR, ErrorCode.BAD_FRAME, Mux(dec >= HEADER_BYTES, seq, 0))
                    with m.Elif(~crc.match_detected):
                        emit(EVENT_ERROR, ErrorCode.BAD_CRC, seq)
                    with m.Else():
                        emit(EVENT_FRAME, 0, seq)
            with m.Elif(discarding):
                pass
            with m.Elif(enc == limit):
                # Longer than any encoded max_frame frame: report once, drop up to the next 0x00.
                emit(EVENT_ERROR, ErrorCode.TOO_LONG)
                restart()
                m.d.sync += discarding.eq(1)
            with m.Else():
                m.d.sync += enc.eq(enc + 1)
                with m.If(left == 0):  # a code byte
                    m.d.sync += [left.eq(byte - 1), prev_ff.eq(byte == 0xFF)]
                    # Every code but 0xFF stands for a zero after its block, sent only when
                    # another block follows: i.e. when this (next) code byte arrives.
                    m.d.comb += [out_byte.eq(0), out_valid.eq((enc != 0) & ~prev_ff)]
                with m.Else():
                    m.d.sync += left.eq(left - 1)
                    m.d.comb += [out_byte.eq(byte), out_valid.eq(1)]
        return m


class FrameTransmitter(wiring.Component):
    """Sends one frame held in a buffer: ``0x00 + COBS(frame + CRC-32) + 0x00``.

    Parameters
    ----------
    max_frame : int
        Longest frame (CRC included).

    Attributes
    ----------
    start : In(1)
        Begin sending the frame whose first ``length`` bytes (type, seq, payload: no CRC) are in
        the buffer; ``seq`` replaces buffer bytes 1 and 2 (never read). Taken while ``busy`` is low.
    length : In(range(max_frame - 3)), seq : In(16)
    busy : Out(1)
    rd_addr : Out(range(max_frame)), rd_en : Out(1), rd_grant : In(1), rd_data : In(8)
        Buffer reads: a request (``rd_en``) is served in a clock where ``rd_grant`` is high, and
        its data is on ``rd_data`` in the next clock (a shared buffer may hold requests off).
    o : Out(stream.Signature(8))
        The wire bytes (to the UART).
    """

    def __init__(self, max_frame: int = 256) -> None:
        self.max_frame = check_max_frame(max_frame)
        super().__init__(
            {
                "start": In(1),
                "length": In(range(self.max_frame - CRC_BYTES + 1)),
                "seq": In(16),
                "busy": Out(1),
                "rd_addr": Out(range(self.max_frame)),
                "rd_en": Out(1),
                "rd_grant": In(1),
                "rd_data": In(8),
                "o": Out(stream.Signature(8)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        mf = self.max_frame
        m.submodules.crc = crc = crc32()
        length = Signal.like(self.length)
        total = Signal(range(mf + 1))  # length + CRC
        seq = Signal(16)
        check = Signal(32)
        pos = Signal(range(mf + 1))  # start of the current COBS block
        count = Signal(range(COBS_BLOCK + 1))  # non-zero bytes in it
        zero = Signal()  # the block ends at a zero byte
        k = Signal(range(mf + 1))  # the byte being fetched
        byte = Signal(8)

        # The frame as sent: buffer bytes, with the seq in bytes 1-2 and the CRC after the end.
        virtual = Signal()
        virtual_byte = Signal(8)
        m.d.comb += [
            virtual.eq((k == 1) | (k == 2) | (k >= length)),
            virtual_byte.eq(
                Mux(
                    k >= length,
                    check.word_select((k - length)[:2], 8),
                    Mux(k == 1, seq[:8], seq[8:]),
                )
            ),
            self.rd_addr.eq(k),
            crc.data.eq(byte),
        ]

        def fetch(name: str, got: str):
            """States ``name`` (request byte k) and ``name + '_DATA'`` (buffer answer), then
            ``got`` with the byte in ``byte``."""
            with m.State(name):
                with m.If(virtual):
                    m.d.sync += byte.eq(virtual_byte)
                    m.next = got
                with m.Else():
                    m.d.comb += self.rd_en.eq(1)
                    with m.If(self.rd_grant):
                        m.next = name + "_DATA"
            with m.State(name + "_DATA"):
                m.d.sync += byte.eq(self.rd_data)
                m.next = got

        def send(value, then: str):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
            with m.If(self.o.ready):
                m.next = then

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        length.eq(self.length),
                        total.eq(self.length + CRC_BYTES),
                        seq.eq(self.seq),
                        k.eq(0),
                        pos.eq(0),
                        check.eq(0),
                    ]
                    m.next = "CRC"
            # Pass 1: the CRC of bytes 0 .. length-1 (the check stays 0 meanwhile: k < length).
            fetch("CRC", "CRC_GOT")
            with m.State("CRC_GOT"):
                m.d.comb += [crc.valid.eq(1), crc.start.eq(k == 0)]
                m.d.sync += k.eq(k + 1)
                with m.If(k + 1 == length):
                    m.next = "CRC_END"
                with m.Else():
                    m.next = "CRC"
            with m.State("CRC_END"):  # the processor's output is registered
                m.d.sync += check.eq(crc.crc)
                m.next = "OPEN"
            with m.State("OPEN"):
                send(0, "BLOCK")
            # Pass 2: COBS. Scan up to 254 bytes for a zero, send the code, then the bytes.
            with m.State("BLOCK"):
                m.d.sync += [count.eq(0), zero.eq(0), k.eq(pos)]
                m.next = "SCAN_TEST"
            with m.State("SCAN_TEST"):
                with m.If((k == total) | (count == COBS_BLOCK)):
                    m.next = "CODE"
                with m.Else():
                    m.next = "SCAN"
            fetch("SCAN", "SCAN_GOT")
            with m.State("SCAN_GOT"):
                with m.If(byte == 0):
                    m.d.sync += zero.eq(1)
                    m.next = "CODE"
                with m.Else():
                    m.d.sync += [count.eq(count + 1), k.eq(k + 1)]
                    m.next = "SCAN_TEST"
            with m.State("CODE"):
                m.d.sync += k.eq(pos)
                send(count + 1, "EMIT_TEST")
            with m.State("EMIT_TEST"):
                with m.If(k == pos + count):
                    # Past a zero the next block starts after it (even at the end: a trailing
                    # zero needs a final empty block); else the frame may be done.
                    m.d.sync += pos.eq(k + zero)
                    with m.If(~zero & (k == total)):
                        m.next = "CLOSE"
                    with m.Else():
                        m.next = "BLOCK"
                with m.Else():
                    m.next = "EMIT"
            fetch("EMIT", "EMIT_GOT")
            with m.State("EMIT_GOT"):
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                send(byte, "EMIT_TEST")
            with m.State("CLOSE"):
                send(0, "IDLE")
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
