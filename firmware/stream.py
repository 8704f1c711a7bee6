"""The board's stream frames (SAMPLES, DONE): built in a ring of frame slots, sent against credit,
kept until acknowledged, sent again on RESEND. Twin: the stream half of
:class:`pbitsim.board.session.BoardSession` (``_stream``, ``_flush_queue``, ``_credit``, RESEND).

The ring is the sample FIFO and the resend buffer at once: recorded states are written straight
into the SAMPLES frame being filled (slot ``fill``), and a frame stays in its slot until a CREDIT
acknowledges it. Slots, in ring order::

    ack ... tx        sent, not acknowledged (each with the seq it went out with)
    tx ... commit     counted as sent (the window allowed them), not yet on the wire
    commit ... fill   complete, waiting for window ("queued": the array is paused)
    fill              the SAMPLES frame being filled

Exactly as in the session, a complete frame is counted as sent as soon as fewer than
``min(window, buffer_frames)`` frames are outstanding; the array waits while a frame is queued.
``buffer_frames + 2`` slots always suffice: at most ``buffer_frames`` outstanding, one queued full
frame, and the DONE (or a partial frame and DONE) when a run ends.

A slot holds the unencoded frame without its seq and CRC: the transmitter gets the seq (assigned
when the frame first goes out, kept for resending) and computes the CRC itself.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pbitsim.board.protocol import MsgType, samples_per_frame

from .buffers import SharedBuffer

__all__ = ["StreamRing", "SAMPLES_HEAD", "DONE_LENGTH"]

#: Bytes before the first vector of a SAMPLES frame: type, seq, first_cycle u64, count u16.
SAMPLES_HEAD = 3 + 8 + 2
#: A DONE frame without CRC: type, seq, end_cycle u64, vectors u64.
DONE_LENGTH = 3 + 8 + 8


def seq_after_or_at(a, b):
    """``seq_diff(a, b) >= 0`` on 16-bit signals."""
    return ~(a - b)[15]


class StreamRing(wiring.Component):
    """Ring of stream-frame slots with the sample writer, credits and resend.

    Parameters
    ----------
    n : int
        P-bits per recorded state.
    max_frame : int
    buffer_frames : int
        The largest credit window honoured (IDENT_REPLY states it); the ring has two more slots.
    single_port : bool
        The ring memory has one address (SPRAM); see :class:`~.buffers.SharedBuffer`.

    Attributes
    ----------
    vec_valid : In(1), vec_ready : Out(1), vector : In(n), vec_cycle : In(64)
        A recorded state (bit i = p-bit i) and the cycle index it is the state after.
    finish : In(1), end_cycle : In(64), vectors : In(64)
        End of a run: close the partly filled SAMPLES frame (if any), then add DONE.
    credit : In(1), ack_valid : In(1), ack_seq : In(16), window_in : In(16)
        A CREDIT: drop the sent frames up to ``ack_seq``, set the window.
    resend : In(1), from_seq : In(16)
        Send again every sent, unacknowledged frame from ``from_seq`` on.
    reset : In(1)
        Forget every frame, window 0.
    busy : Out(1)
        A request or a recorded state is being handled; requests are taken only when low, one
        at a time. A request's arguments (``end_cycle`` ... ``from_seq``) are read while it is
        handled: the caller holds them until ``busy`` is low again (no copies here). So does
        ``vec_cycle`` while a state is offered (the array waits until it is taken).
    window : Out(16), outstanding : Out(range(slots + 1)), queued : Out(range(slots + 1))
        The window (clipped to ``buffer_frames``), frames counted as sent and not acknowledged
        (STATUS_REPLY.unacked), complete frames waiting for window (the array is paused).
    closing : Out(1)
        The state being written completes a frame (the array must wait for the verdict).
    tx_avail : Out(1), tx_len : Out, tx_seq : Out(16), tx_fresh : Out(1), tx_take : In(1),
    tx_new_seq : In(16), tx_done : In(1)
        The next frame to send (a resend before a new one); ``tx_take`` takes it (a fresh one
        gets ``tx_new_seq``); ``tx_done`` says the transmitter no longer reads it.
    rd_rel : In, rd_en : In(1), rd_grant : Out(1), rd_data : Out(8)
        The transmitter's reads in the taken frame (byte offset in the frame).
    """

    def __init__(
        self, n: int, max_frame: int, buffer_frames: int, *, single_port: bool = True
    ) -> None:
        if isinstance(buffer_frames, bool) or not isinstance(buffer_frames, int):
            raise ValueError(f"buffer_frames must be an int, not {buffer_frames!r}")
        if not 1 <= buffer_frames <= 0x7FFF:
            raise ValueError(f"buffer_frames must be in 1..32767, not {buffer_frames}")
        self.n = int(n)
        self.max_frame = int(max_frame)
        self.buffer_frames = buffer_frames
        self.slots = buffer_frames + 2
        self.per_frame = samples_per_frame(self.n, self.max_frame)
        self.vector_bytes = -(-self.n // 8)
        self.stride = 1 << (self.max_frame - 1).bit_length()
        self.single_port = single_port
        s = self.slots
        super().__init__(
            {
                "vec_valid": In(1),
                "vec_ready": Out(1),
                "vector": In(self.n),
                "vec_cycle": In(64),
                "finish": In(1),
                "end_cycle": In(64),
                "vectors": In(64),
                "credit": In(1),
                "ack_valid": In(1),
                "ack_seq": In(16),
                "window_in": In(16),
                "resend": In(1),
                "from_seq": In(16),
                "reset": In(1),
                "busy": Out(1),
                "window": Out(16),
                "outstanding": Out(range(s + 1)),
                "queued": Out(range(s + 1)),
                "closing": Out(1),
                "tx_avail": Out(1),
                "tx_len": Out(range(self.max_frame)),
                "tx_seq": Out(16),
                "tx_fresh": Out(1),
                "tx_take": In(1),
                "tx_new_seq": In(16),
                "tx_done": In(1),
                "rd_rel": In(range(self.max_frame)),
                "rd_en": In(1),
                "rd_grant": Out(1),
                "rd_data": Out(8),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s, mf, bpv, per = self.slots, self.max_frame, self.vector_bytes, self.per_frame
        m.submodules.mem = mem = SharedBuffer(8, s * self.stride, single_port=self.single_port)

        def following(p):
            return Mux(p == s - 1, 0, p + 1)

        ack_ptr, tx_ptr, commit_ptr, fill_ptr = (Signal(range(s), name=x) for x in "actf")
        n_sent, n_unsent, n_queued = (Signal(range(s + 1), name=x) for x in ("ns", "nu", "nq"))
        window = Signal(16)
        slot_seq = Array(Signal(16, name=f"seq{k}") for k in range(s))
        slot_len = Array(Signal(range(mf), name=f"len{k}") for k in range(s))
        rs_ptr = Signal(range(s))
        rs_left = Signal(range(s + 1))
        reading = Signal()
        reading_slot = Signal(range(s))

        fill_count = Signal(range(per + 1))
        fill_off = Signal(range(mf + 1), init=SAMPLES_HEAD)
        first_cycle = Signal(64)
        shift = Signal(max(self.n, 8))
        k = Signal(range(max(bpv, DONE_LENGTH) + 1))
        finishing = Signal()
        scanned = Signal(range(s + 1))
        ack_valid, ack_seq, window_in = self.ack_valid, self.ack_seq, self.window_in
        from_seq = self.from_seq
        # One read of the slot seqs, at the slot the current state looks at.
        seq_at = Signal(range(s))
        seq_of = Signal(16)
        m.d.comb += seq_of.eq(slot_seq[seq_at])
        tx_slot = Mux(rs_left != 0, rs_ptr, tx_ptr)  # the next frame to send
        m.d.comb += seq_at.eq(tx_slot)  # by default; CREDIT and RESEND look elsewhere

        outstanding = Signal(range(2 * s + 1))
        m.d.comb += [
            outstanding.eq(n_sent + n_unsent),
            self.outstanding.eq(outstanding),
            self.queued.eq(n_queued),
            self.window.eq(window),
        ]

        # Memory writes (the writer is this module; the transmitter reads).
        w_off = Signal(range(self.stride))
        w_data = Signal(8)
        w_en = Signal()
        m.d.comb += [
            mem.w_addr.eq(fill_ptr * self.stride + w_off),
            mem.w_data.eq(w_data),
            mem.w_en.eq(w_en),
            mem.r_addr.eq(reading_slot * self.stride + self.rd_rel),
            mem.r_en.eq(self.rd_en),
            self.rd_grant.eq(mem.r_grant),
            self.rd_data.eq(mem.r_data),
        ]

        # The events that move the pointers, combined once per clock.
        close_ev, commit_ev, fresh_ev, pop_ev, resent_ev = (Signal(name=x) for x in "cfopr")

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.sync += k.eq(0)
                with m.If(self.reset):
                    m.next = "RESET"
                with m.Elif(self.credit):
                    m.next = "CREDIT"
                with m.Elif(self.resend):
                    m.d.sync += [scanned.eq(0), rs_ptr.eq(ack_ptr)]
                    m.next = "RESEND"
                with m.Elif(self.finish):
                    m.d.sync += finishing.eq(1)
                    with m.If(fill_count != 0):
                        m.next = "CLOSE"
                    with m.Else():
                        m.next = "DONE"
                with m.Elif(self.vec_valid & self.vec_ready):
                    m.d.sync += shift.eq(self.vector)
                    with m.If(fill_count == 0):
                        m.d.sync += first_cycle.eq(self.vec_cycle)
                    m.next = "VECTOR"

            # A recorded state: its bytes at the end of the frame being filled.
            with m.State("VECTOR"):
                m.d.comb += [
                    self.closing.eq(fill_count == per - 1),
                    w_off.eq(fill_off + k),
                    w_data.eq(shift[:8]),
                    w_en.eq(1),
                ]
                m.d.sync += [shift.eq(shift >> 8), k.eq(k + 1)]
                with m.If(k == bpv - 1):
                    m.d.sync += [
                        k.eq(0),
                        fill_off.eq(fill_off + bpv),
                        fill_count.eq(fill_count + 1),
                    ]
                    with m.If(fill_count == per - 1):
                        m.next = "CLOSE"
                    with m.Else():
                        m.next = "IDLE"

            # Close the SAMPLES frame: type, first_cycle, count; it is then complete.
            with m.State("CLOSE"):
                count = Cat(fill_count, Const(0, 16))[:16]
                header = Cat(Const(MsgType.SAMPLES, 8), first_cycle, count)
                m.d.comb += [
                    self.closing.eq(1),
                    w_off.eq(Mux(k == 0, 0, k + 2)),
                    w_data.eq(header.word_select(k[:4], 8)),
                    w_en.eq(1),
                ]
                m.d.sync += k.eq(k + 1)
                with m.If(k == SAMPLES_HEAD - 3):
                    m.d.comb += close_ev.eq(1)
                    m.d.sync += [
                        k.eq(0),
                        slot_len[fill_ptr].eq(fill_off),
                        fill_count.eq(0),
                        fill_off.eq(SAMPLES_HEAD),
                    ]
                    with m.If(finishing):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "IDLE"

            # DONE: end_cycle, vectors (in the slot after the last SAMPLES frame).
            with m.State("DONE"):
                done = Cat(Const(MsgType.DONE, 8), self.end_cycle, self.vectors)
                with m.If(~(reading & (reading_slot == fill_ptr))):
                    m.d.comb += [
                        w_off.eq(Mux(k == 0, 0, k + 2)),
                        w_data.eq(done.word_select(k, 8)),
                        w_en.eq(1),
                    ]
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == DONE_LENGTH - 3):
                        m.d.comb += close_ev.eq(1)
                        m.d.sync += [k.eq(0), slot_len[fill_ptr].eq(DONE_LENGTH), finishing.eq(0)]
                        m.next = "IDLE"

            # CREDIT: acknowledge sent frames one per clock, then take the new window.
            with m.State("CREDIT"):
                m.d.comb += seq_at.eq(ack_ptr)
                head_acked = ~seq_after_or_at(seq_of, ack_seq + 1)  # seq <= ack
                with m.If(ack_valid & (n_sent != 0) & head_acked):
                    m.d.comb += pop_ev.eq(1)
                    with m.If((rs_left != 0) & (rs_ptr == ack_ptr)):
                        m.d.sync += [rs_ptr.eq(following(rs_ptr)), rs_left.eq(rs_left - 1)]
                with m.Else():
                    limit = self.buffer_frames
                    m.d.sync += window.eq(Mux(window_in > limit, limit, window_in))
                    m.next = "IDLE"

            # RESEND: find the first sent frame at or after from_seq; resend it and the rest.
            with m.State("RESEND"):
                m.d.comb += seq_at.eq(rs_ptr)
                with m.If((scanned != n_sent) & ~seq_after_or_at(seq_of, from_seq)):
                    m.d.sync += [rs_ptr.eq(following(rs_ptr)), scanned.eq(scanned + 1)]
                with m.Else():
                    m.d.sync += rs_left.eq(n_sent - scanned)
                    m.next = "IDLE"

            with m.State("RESET"):
                with m.If(~reading):
                    for x in (ack_ptr, tx_ptr, commit_ptr, fill_ptr, n_sent, n_unsent, n_queued):
                        m.d.sync += x.eq(0)
                    m.d.sync += [
                        window.eq(0),
                        rs_left.eq(0),
                        fill_count.eq(0),
                        fill_off.eq(SAMPLES_HEAD),
                        finishing.eq(0),
                    ]
                    m.next = "IDLE"

        quiet = fsm.ongoing("IDLE")
        # Commits and sends wait while a CREDIT or RESEND is applied, so that they see its
        # outcome (the session applies a CREDIT at once, then flushes).
        requested = self.credit | self.resend | self.reset
        flow = (
            (quiet & requested)
            | fsm.ongoing("CREDIT")
            | fsm.ongoing("RESEND")
            | fsm.ongoing("RESET")
        )
        m.d.comb += [
            commit_ev.eq(~flow & (n_queued != 0) & (outstanding < window)),
            self.busy.eq(~quiet),
            self.vec_ready.eq(
                quiet
                & ~self.finish
                & ~self.credit
                & ~self.resend
                & ~self.reset
                & ~(reading & (reading_slot == fill_ptr))
            ),
        ]
        m.d.comb += [
            self.tx_avail.eq(~flow & ((rs_left != 0) | (n_unsent != 0))),
            self.tx_fresh.eq(rs_left == 0),
            self.tx_len.eq(slot_len[tx_slot]),
            self.tx_seq.eq(seq_of),  # CREDIT and RESEND read other slots, but block sending
        ]
        with m.If(self.tx_take):
            m.d.sync += [reading.eq(1), reading_slot.eq(tx_slot)]
            with m.If(rs_left != 0):
                m.d.comb += resent_ev.eq(1)
            with m.Else():
                m.d.sync += slot_seq[tx_ptr].eq(self.tx_new_seq)
                m.d.comb += fresh_ev.eq(1)
        with m.Elif(self.tx_done):
            m.d.sync += reading.eq(0)

        with m.If(~fsm.ongoing("RESET")):
            # Each count changes only under an explicit condition: in Verilog an input that is
            # still X at power-up (a combinational block not yet evaluated by an event-driven
            # simulator) then leaves it alone instead of making it X for good.
            for count, up, down in (
                (n_queued, close_ev, commit_ev),
                (n_unsent, commit_ev, fresh_ev),
                (n_sent, fresh_ev, pop_ev),
            ):
                with m.If(up & ~down):
                    m.d.sync += count.eq(count + 1)
                with m.Elif(down & ~up):
                    m.d.sync += count.eq(count - 1)
            with m.If(close_ev):
                m.d.sync += fill_ptr.eq(following(fill_ptr))
            with m.If(commit_ev):
                m.d.sync += commit_ptr.eq(following(commit_ptr))
            with m.If(fresh_ev):
                m.d.sync += tx_ptr.eq(following(tx_ptr))
            with m.If(pop_ev):
                m.d.sync += ack_ptr.eq(following(ack_ptr))
            with m.If(resent_ev):
                m.d.sync += [rs_ptr.eq(following(rs_ptr)), rs_left.eq(rs_left - 1)]
        return m
