"""The board's command engine in gateware: :class:`CommandEngine`. Twin:
:class:`pbitsim.board.session.BoardSession` (frames in, frames out, the array injected).

It takes checked frames from :class:`~.framing.FrameReceiver`, one at a time, executes them on
the p-bit array's register port and run control, and sends replies and stream frames through its
:class:`~.framing.FrameTransmitter`:

* every command gets exactly one reply, kept with the command's seq; a command with that seq again
  is answered with the kept reply (same bytes, same board seq) and not executed;
* WRITE checks every address (region, p-bit < n, slot < that p-bit's degree, ...) before writing
  any, and is refused while a run is in progress; READ and LOAD_DIGEST read the array's storage
  (pausing a run meanwhile: a paused cycle does not exist for the model); LOAD_DIGEST is the
  CRC-32 of each region's (address, word) pairs in ascending address order;
* RUN lets the array run cycle by cycle (it counts the array's ``cycle_start``), records every
  ``thin``-th state into the SAMPLES frame being filled (:class:`~.stream.StreamRing`) and/or the
  statistics (:class:`~.stats.StatsAccumulator`), and holds the array at a frame boundary while a
  complete frame waits for credit; STOP / RESET / STATUS / READ_STATS as the protocol says;
* CREDIT and RESEND go to the ring; every malformed frame gets an ERROR.

Where it necessarily differs from the session (timing, not content): a reply is sent as soon as
the transmitter is free, before stream frames that are counted as sent but not yet on the wire,
so the board seqs of replies and stream frames may interleave differently than in an emulator
that streams in ``step()`` calls; the stream frames of a STOP go after its ACK (the session gives
them the lower seqs but also sends them after the ACK). A command repeated while its kept reply
is still waiting to be sent is answered once. Messages and their order within replies and within
the stream are the same.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from pbitsim.hdl.hardware import array_signature, select_or

from pbitsim.board import protocol as P
from pbitsim.board.regmap import DATA_BITS, MAGIC, Region, Register

from .buffers import SharedBuffer
from .framing import EVENT_FRAME, FrameTransmitter, check_max_frame, crc32, event_layout
from .stats import StatsAccumulator, stat_edges
from .stream import StreamRing

__all__ = ["CommandEngine", "rom"]

_ERROR_LENGTH = P.HEADER_BYTES + 7
_ACK_LENGTH = P.HEADER_BYTES + 10


def rom(index, values, width: int):
    """``values[index]`` (0 past the end) as a shift of one constant (a continuous assignment in
    Verilog, so an event-driven simulator never sees X; see ``hdl.engine``)."""
    packed = 0
    for k, v in enumerate(values):
        packed |= (int(v) & ((1 << width) - 1)) << (k * width)
    entries = max(len(values), 1 << len(index))
    return Const(packed, width * entries).word_select(index, width)


def _payload_length_ok(t, plen):
    """The payload length rule of each host type (``docs/protocol.md``), as a 1-bit expression."""
    fixed = {
        P.MsgType.IDENT: 2,
        P.MsgType.LOAD_DIGEST: 0,
        P.MsgType.RUN: 13,
        P.MsgType.STOP: 0,
        P.MsgType.RESET: 0,
        P.MsgType.STATUS: 0,
        P.MsgType.CREDIT: 5,
        P.MsgType.RESEND: 2,
        P.MsgType.READ_STATS: 6,
    }
    ok = Const(0, 1)
    for typ, size in fixed.items():
        ok = ok | ((t == typ) & (plen == size))
    ok = ok | ((t == P.MsgType.WRITE) & (plen != 0) & (plen[:3] == 0))
    ok = ok | ((t == P.MsgType.READ) & (plen != 0) & (plen[:2] == 0))
    return ok


class CommandEngine(wiring.Component):
    """The board's command engine for one array.

    Parameters
    ----------
    array : PbitArray or PbitEngine
        The array it drives (its address map, identity words and topology; it is not a
        submodule: the board top wires ``array`` to it).
    max_frame : int
        Longest frame either way (IDENT_REPLY states it); default 256.
    buffer_frames : int
        Stream frames kept for resending, the largest credit window (default 8).
    stat_banks : int
        Statistics memories updated in parallel (power of two, default 1).
    single_port : bool
        Buffers and statistics memories with one address each (the UP5K's SPRAM), default
        True; False (block RAM, LUT-RAM) halves the clocks per recorded state of the statistics.

    Attributes
    ----------
    frames : In(stream.Signature(event))
        Checked frames and framing errors from :class:`~.framing.FrameReceiver`.
    rx_addr : Out, rx_data : In(8)
        The receiver's buffer (payload bytes of the frame being handled).
    tx : Out(stream.Signature(8))
        Wire bytes to the UART.
    array : Out(flipped array signature)
        The array's register port and run control (``wiring.connect`` it to the array).
    running, paused, wrote, error : Out(1)
        A run is in progress / waiting for credit; a WRITE was executed; an ERROR was queued
        (one-clock pulses): for the board's LEDs.
    """

    def __init__(
        self,
        array,
        *,
        max_frame: int = 256,
        buffer_frames: int = 8,
        stat_banks: int = 1,
        single_port: bool = True,
    ) -> None:
        self.max_frame = check_max_frame(max_frame)
        self.couplings = array.couplings
        self.amap = array.address_map
        self.words = array.words
        self.n = self.couplings.n
        self.n_colors = array.n_colors
        self.degrees = [int(x) for x in self.couplings.degrees]
        self.edges = stat_edges(self.couplings.indptr, self.couplings.indices)
        self.stride = 1 << (self.max_frame - 1).bit_length()
        self.buffer_frames = buffer_frames
        self.stat_banks = stat_banks
        self.single_port = single_port
        # Built here so that their parameters are checked now and readable (per_frame, ...).
        self.ring = StreamRing(self.n, self.max_frame, buffer_frames, single_port=single_port)
        self.stats = StatsAccumulator(self.n, self.edges, stat_banks, single_port=single_port)
        self.per_frame = self.ring.per_frame
        sig = wiring.Signature(array_signature(self.amap, self.n_colors, self.n))
        super().__init__(
            {
                "frames": In(stream.Signature(event_layout(self.max_frame))),
                "rx_addr": Out(range(self.max_frame)),
                "rx_data": In(8),
                "tx": Out(stream.Signature(8)),
                "array": Out(sig.flip()),
                "running": Out(1),
                "paused": Out(1),
                "wrote": Out(1),
                "error": Out(1),
            }
        )

    # ------------------------------------------------------------------------------------------
    def ident_payload(self) -> bytes:
        """IDENT_REPLY's payload after ack_seq: the same bytes whatever the command's seq."""
        w = self.words
        reply = P.IdentReply(
            ack_seq=0,
            magic=MAGIC,
            version=P.PROTOCOL_VERSION,
            id_word=w.id,
            version_word=w.version,
            shape=w.shape,
            colors=w.colors,
            format_word=w.format,
            design_word=w.design,
            topology=w.topology,
            max_frame=self.max_frame,
            buffer_frames=self.buffer_frames,
        )
        return reply.pack()[2:]

    def _address_ok(self, a, write):
        """1 iff address ``a`` (32 bits) can be written (``write``) or read: the register map's
        rules (``RegisterFile.check``)."""
        amap, n = self.amap, self.n
        ib, sb, width = amap.index_bits, amap.slot_bits, amap.width
        region = a[ib:width]
        index = a[:ib]
        slot = index[:sb]
        pbit = index[sb:]
        in_range = a[width:] == 0 if width < DATA_BITS else Const(1, 1)
        pbit_ok = pbit < n
        degree = rom(pbit[: max(amap.pbit_bits, 1)], self.degrees, 16)
        rules = {
            Region.REG: Mux(write, index == Register.CONTROL, index < len(Register)),
            Region.BIAS: pbit_ok & (slot == 0),
            Region.J: pbit_ok & (slot < degree),
            Region.TABLE: index < amap.table_depth,
            Region.SEED: write & pbit_ok & (slot < amap.seed_words),
            Region.SPIN: Mux(write, pbit_ok & (slot == 0), index < amap.spin_words),
        }
        ok = Const(0, 1)
        for r, rule in rules.items():
            ok = ok | ((region == int(r)) & rule)
        return in_range & ok

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        mf, amap, n = self.max_frame, self.amap, self.n
        arr = self.array
        m.submodules.tx = tx = FrameTransmitter(mf)
        m.submodules.ring = ring = self.ring
        m.submodules.stats = stats = self.stats
        m.submodules.replies = replies = SharedBuffer(8, 2 * self.stride, single_port=True)
        m.submodules.digest = crc = crc32()
        m.d.comb += self.tx.payload.eq(tx.o.payload)
        m.d.comb += [self.tx.valid.eq(tx.o.valid), tx.o.ready.eq(self.tx.ready)]

        # ---- reply slots and the transmitter's scheduler -------------------------------------
        board_seq = Signal(16)
        r_pending, r_fresh, r_seq = Signal(), Signal(), Signal(16)
        r_len = Signal(range(mf))
        e_pending, e_first = Signal(), Signal()
        e_len = Signal(range(mf))
        sending = Signal()
        src = Signal(2)  # 0: R, 1: E, 2: ring
        SRC_R, SRC_E, SRC_RING = 0, 1, 2
        m.d.comb += [
            replies.r_addr.eq(Mux(src == SRC_E, self.stride, 0) + tx.rd_addr),
            replies.r_en.eq(tx.rd_en & (src != SRC_RING)),
            ring.rd_rel.eq(tx.rd_addr),
            ring.rd_en.eq(tx.rd_en & (src == SRC_RING)),
            tx.rd_grant.eq(Mux(src == SRC_RING, ring.rd_grant, replies.r_grant)),
            tx.rd_data.eq(Mux(src == SRC_RING, ring.rd_data, replies.r_data)),
            ring.tx_new_seq.eq(board_seq),
        ]
        r_busy = r_pending | (sending & (src == SRC_R))
        e_busy = e_pending | (sending & (src == SRC_E))
        with m.If(sending):
            with m.If(~tx.busy):
                m.d.sync += sending.eq(0)
                m.d.comb += ring.tx_done.eq(src == SRC_RING)
        with m.Elif(e_pending & (e_first | ~r_pending)):
            m.d.comb += [tx.start.eq(1), tx.length.eq(e_len), tx.seq.eq(board_seq)]
            m.d.sync += [sending.eq(1), src.eq(SRC_E), e_pending.eq(0), board_seq.eq(board_seq + 1)]
        with m.Elif(r_pending):
            m.d.comb += [
                tx.start.eq(1),
                tx.length.eq(r_len),
                tx.seq.eq(Mux(r_fresh, board_seq, r_seq)),
            ]
            m.d.sync += [sending.eq(1), src.eq(SRC_R), r_pending.eq(0), r_fresh.eq(0)]
            with m.If(r_fresh):
                m.d.sync += [r_seq.eq(board_seq), board_seq.eq(board_seq + 1)]
        with m.Elif(ring.tx_avail):
            m.d.comb += [
                tx.start.eq(1),
                tx.length.eq(ring.tx_len),
                tx.seq.eq(Mux(ring.tx_fresh, board_seq, ring.tx_seq)),
                ring.tx_take.eq(1),
            ]
            m.d.sync += [sending.eq(1), src.eq(SRC_RING)]
            with m.If(ring.tx_fresh):
                m.d.sync += board_seq.eq(board_seq + 1)

        # ---- run control ---------------------------------------------------------------------
        cycle = Signal(64)
        run_active, stop_req, pause_req = Signal(), Signal(), Signal()
        left, infinite = Signal(64), Signal()
        thin, until_start, until_done = Signal(32), Signal(32), Signal(32)
        rec_samples, rec_stats, rec_gate = Signal(), Signal(), Signal()
        in_flight = Signal(range(4))
        vectors, last_vectors = Signal(64), Signal(64)
        cap_pending, cap_full, need_ring, need_stats = Signal(), Signal(), Signal(), Signal()
        cap_vec = Signal(n)
        restart_written = Signal()  # a CONTROL restart goes to the array in this clock

        grant = Signal()
        m.d.comb += [
            # As in the session, the array waits while any complete frame waits for credit.
            grant.eq(
                run_active
                & ~stop_req
                & ~pause_req
                & ~rec_gate
                & (ring.queued == 0)
                & (infinite | (left != 0))
            ),
            arr.run.eq(grant),
            self.running.eq(run_active),
            self.paused.eq(run_active & (ring.queued != 0)),
        ]
        m.d.sync += in_flight.eq(in_flight + arr.cycle_start - arr.cycle_done)
        with m.If(arr.cycle_start):
            with m.If(~infinite):
                m.d.sync += left.eq(left - 1)
            with m.If(until_start == 1):
                m.d.sync += [until_start.eq(thin), rec_gate.eq(1)]
            with m.Else():
                m.d.sync += until_start.eq(until_start - 1)
        with m.If(restart_written):
            m.d.sync += cycle.eq(0)
        with m.Elif(arr.cycle_done):
            m.d.sync += cycle.eq(cycle + 1)
            with m.If(run_active):
                with m.If(until_done == 1):
                    m.d.sync += [
                        until_done.eq(thin),
                        vectors.eq(vectors + 1),
                        cap_pending.eq(rec_samples | rec_stats),
                    ]
                with m.Else():
                    m.d.sync += until_done.eq(until_done - 1)
        # The spins after a recording cycle are on ``spins`` in the next clock.
        ring_taken = ring.vec_valid & ring.vec_ready
        stats_taken = stats.take & stats.ready
        m.d.comb += [
            ring.vector.eq(cap_vec),
            # The array waits at a recording cycle until its state is taken: the cycle index then
            # is still that of the state.
            ring.vec_cycle.eq(cycle),
            ring.vec_valid.eq(cap_full & need_ring),
            stats.vector.eq(cap_vec),
            stats.take.eq(cap_full & need_stats),
        ]
        with m.If(cap_pending):
            m.d.sync += [
                cap_pending.eq(0),
                cap_full.eq(1),
                cap_vec.eq(arr.spins),
                need_ring.eq(rec_samples),
                need_stats.eq(rec_stats),
            ]
        with m.Elif(cap_full):
            still_ring = need_ring & ~ring_taken
            still_stats = need_stats & ~stats_taken
            m.d.sync += [need_ring.eq(still_ring), need_stats.eq(still_stats)]
            m.d.sync += cap_full.eq(still_ring | still_stats)
        # After a recording cycle the array waits until the state is taken and, if it completes
        # a SAMPLES frame, until that frame is counted as sent (else it is queued: paused).
        with m.If(
            rec_gate
            & (in_flight == 0)
            & ~cap_pending
            & ~cap_full
            & ~ring.closing
            & (ring.queued == 0)
        ):
            m.d.sync += rec_gate.eq(0)
        # The array is stopped: no cycle in flight and none starting (a stop or pause request
        # takes effect one clock after it is made).
        stopped = Signal()
        m.d.comb += stopped.eq((in_flight == 0) & ~arr.running & ~grant)
        quiet = Signal()  # stopped, and every recorded state applied
        m.d.comb += quiet.eq(stopped & ~cap_pending & ~cap_full & ~stats.busy)

        # ---- the command FSM -----------------------------------------------------------------
        ev = self.frames.payload
        plen = Signal(range(mf + 1))
        m.d.comb += plen.eq(ev.length - P.MIN_FRAME)
        is_command = Const(0, 1)
        for t in P.COMMANDS:
            is_command = is_command | (ev.type == t)
        is_flow = (ev.type == P.MsgType.CREDIT) | (ev.type == P.MsgType.RESEND)
        last_valid, last_seq = Signal(), Signal(16)

        k = Signal(range(64))
        off = Signal(range(mf + 1))  # byte offset of the field being read
        pairs = Signal(range(mf))  # records in a WRITE / READ
        p = Signal(range(mf))  # the record being handled
        # Fields are read little-endian into the top of ``field`` (a field of b bytes is
        # field[64 - 8b:]); a WRITE record is (address, data) = (field[:32], field[32:]).
        field = Signal(64)
        addr_in = Signal(32)  # the address being checked
        word = Signal(32)  # a word read from the array
        word64 = Signal(64)  # a statistics entry read
        to_r = Signal()  # the reply being built goes to R (a command's) or E
        err_code, err_detail = Signal(8), Signal(range(16))  # err_detail: which detail
        check_write = Signal()
        rtype = Signal(8)
        bus_addr = Signal(amap.width)
        m.d.comb += [arr.bus.addr.eq(bus_addr), arr.bus.w_data.eq(field[32:])]
        address_ok = self._address_ok(addr_in, check_write)

        # Shared sub-states (one register assignment each keeps the multiplexers small):
        # GET reads bytes of the frame into the top of ``field`` (little-endian: a field of b
        # bytes is field[64 - 8b:]); PUT writes the bytes of one of a few ``sources`` into the
        # reply. Both return to the state named by ``ret``.
        out = Signal(64)
        out_src = Signal(range(32))
        out_left = Signal(range(8))
        out_addr = Signal(range(2 * self.stride))
        g_addr = Signal(range(mf + 1))
        g_left = Signal(range(9))
        returns: list[str] = []
        ret = Signal(range(128))
        sources: list = []  # (key, value)
        base = Mux(to_r, 0, self.stride)  # where the reply being built goes

        def call(then):
            if then not in returns:
                returns.append(then)
            m.d.sync += ret.eq(returns.index(then))

        def emit(key, value, nbytes, offset, then):
            """Write ``nbytes`` bytes of ``value`` (a source named ``key``) at ``offset`` of the
            reply, then go to ``then``. The value is taken in the clock after this one."""
            keys = [k_ for k_, _ in sources]
            if key not in keys:
                sources.append((key, value))
                keys.append(key)
            call(then)
            m.d.sync += [
                out_src.eq(keys.index(key)),
                out_left.eq(nbytes - 1),
                out_addr.eq(base + offset),
            ]
            m.next = "LOAD"

        def get(name, nxt, nbytes, offset=None):
            """State ``name``: read ``nbytes`` bytes at ``offset`` (default ``off``) into the top
            of ``field``, then go to ``nxt``."""
            with m.State(name):
                call(nxt)
                m.d.sync += [g_addr.eq(off if offset is None else offset), g_left.eq(nbytes)]
                m.next = "GET"

        details: list = [("zero", Const(0, 32))]  # ERROR details by number (0: none)
        detail_value = Signal(32)

        def fail(code, detail=None):
            """Answer the current frame with ERROR ``code`` (to R for a command, else E);
            ``detail`` is a (key, value) pair or None for 0."""
            key, value = ("zero", Const(0, 32)) if detail is None else detail
            keys = [k_ for k_, _ in details]
            if key not in keys:
                details.append((key, value))
                keys.append(key)
            m.d.sync += [err_code.eq(code), err_detail.eq(keys.index(key)), to_r.eq(is_command)]
            m.next = "ERROR"

        def reply(typ, length):
            """The reply body is in R: write its type and ack_seq, then send it."""
            m.d.sync += [rtype.eq(typ), r_len.eq(length)]
            m.next = "COMMIT"

        def bus_read(name, nxt, address):
            """Read ``address`` from the array into ``word`` (held two clocks: J, BIAS and TABLE
            answer in the second)."""
            with m.State(name):
                m.d.comb += bus_addr.eq(address)
                m.next = name + "_2"
            with m.State(name + "_2"):
                m.d.comb += bus_addr.eq(address)
                m.d.sync += word.eq(arr.bus.r_data)
                m.next = nxt

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [k.eq(0), to_r.eq(1)]
                with m.If(self.frames.valid):
                    with m.If(ev.kind == EVENT_FRAME):
                        m.next = "DISPATCH"
                    with m.Else():
                        m.d.sync += [err_code.eq(ev.code), err_detail.eq(0), to_r.eq(0)]
                        m.next = "ERROR"
                with m.Elif(run_active & ~infinite & (left == 0) & quiet):
                    m.next = "FINISH"

            with m.State("DISPATCH"):
                m.d.sync += off.eq(P.HEADER_BYTES)
                with m.If(is_command & last_valid & (ev.seq == last_seq)):
                    # A repeat: answer again with the kept reply, execute nothing.
                    with m.If(~r_pending):
                        m.d.sync += r_pending.eq(1)
                    m.next = "RELEASE"
                with m.Elif(~is_command & ~is_flow):
                    fail(P.ErrorCode.UNKNOWN_TYPE, ("type", ev.type))
                with m.Elif(~_payload_length_ok(ev.type, plen)):
                    fail(P.ErrorCode.BAD_LENGTH, ("length", plen))
                with m.Elif(ev.type == P.MsgType.CREDIT):
                    m.next = "CREDIT"
                with m.Elif(ev.type == P.MsgType.RESEND):
                    m.next = "RESEND"
                with m.Elif(~r_busy):  # the reply slot is free: execute
                    with m.Switch(ev.type):
                        for typ in P.COMMANDS:
                            with m.Case(typ):
                                m.next = typ.name

            with m.State("RELEASE"):
                m.d.comb += self.frames.ready.eq(1)
                m.next = "IDLE"

            # -- ERROR: code, ack_seq, detail; then the type -----------------------------------
            with m.State("ERROR"):
                with m.If(Mux(to_r, ~r_busy, ~e_busy)):
                    emit("error", Cat(err_code, ev.seq, detail_value), 7, 3, "ERROR_TYPE")
            with m.State("ERROR_TYPE"):
                emit("error type", Const(P.MsgType.ERROR, 8), 1, 0, "ERROR_SEND")
            with m.State("ERROR_SEND"):
                m.d.comb += self.error.eq(1)
                with m.If(to_r):
                    m.d.sync += [
                        r_pending.eq(1),
                        r_fresh.eq(1),
                        r_len.eq(_ERROR_LENGTH),
                        last_valid.eq(1),
                        last_seq.eq(ev.seq),
                    ]
                with m.Else():
                    m.d.sync += [e_pending.eq(1), e_len.eq(_ERROR_LENGTH), e_first.eq(~r_pending)]
                m.next = "RELEASE"

            # -- a reply in R: its type (byte 0) and ack_seq (bytes 3-4), then send it ---------
            with m.State("COMMIT"):
                emit("head", Cat(rtype, Const(0, 16), ev.seq), 5, 0, "COMMIT_SEND")
            with m.State("COMMIT_SEND"):
                m.d.sync += [r_pending.eq(1), r_fresh.eq(1), last_valid.eq(1), last_seq.eq(ev.seq)]
                m.next = "RELEASE"

            # -- IDENT ---------------------------------------------------------------------
            get("IDENT", "IDENT_CHECK", 2)
            body = self.ident_payload()
            with m.State("IDENT_CHECK"):
                with m.If(field[48:] != P.PROTOCOL_VERSION):
                    fail(P.ErrorCode.VERSION, ("version", Const(P.PROTOCOL_VERSION, 32)))
                with m.Else():
                    m.next = "IDENT_BODY"
            with m.State("IDENT_BODY"):  # constant bytes after ack_seq
                constant = Const(int.from_bytes(body, "little"), 8 * len(body))
                m.d.comb += [
                    replies.w_addr.eq(5 + k),
                    replies.w_data.eq(constant.word_select(k, 8)),
                    replies.w_en.eq(1),
                ]
                m.d.sync += k.eq(k + 1)
                with m.If(k == len(body) - 1):
                    m.d.sync += k.eq(0)
                    reply(P.MsgType.IDENT_REPLY, P.HEADER_BYTES + 2 + len(body))

            # -- WRITE: check every address, then write them all -----------------------------
            with m.State("WRITE"):
                m.d.sync += [pairs.eq(plen >> 3), p.eq(0), check_write.eq(1)]
                with m.If(run_active):
                    fail(P.ErrorCode.BUSY)
                with m.Else():
                    m.next = "WRITE_CHECK"
            with m.State("WRITE_CHECK"):
                with m.If(p == pairs):
                    m.d.sync += [p.eq(0), off.eq(P.HEADER_BYTES)]
                    m.next = "WRITE_GET"
                with m.Else():
                    m.next = "WRITE_CHECK_GET"
            get("WRITE_CHECK_GET", "WRITE_CHECK_ONE", 4)
            with m.State("WRITE_CHECK_ONE"):
                m.d.comb += addr_in.eq(field[32:])
                with m.If(~address_ok):
                    fail(P.ErrorCode.BAD_ADDRESS, ("address", field[32:]))
                with m.Else():
                    m.d.sync += [p.eq(p + 1), off.eq(off + 8)]
                    m.next = "WRITE_CHECK"
            get("WRITE_GET", "WRITE_ONE", 8)
            with m.State("WRITE_ONE"):
                m.d.comb += [bus_addr.eq(field[: amap.width]), arr.bus.w_en.eq(1)]
                is_restart = (field[:32] == amap.register(Register.CONTROL)) & field[32]
                m.d.comb += restart_written.eq(is_restart)
                m.d.sync += [p.eq(p + 1), off.eq(off + 8)]
                with m.If(p + 1 == pairs):
                    m.next = "WRITE_DONE"
                with m.Else():
                    m.next = "WRITE_GET"
            with m.State("WRITE_DONE"):
                m.d.comb += self.wrote.eq(1)
                emit("pairs", pairs, 8, 5, "ACK")
            with m.State("ACK"):
                reply(P.MsgType.ACK, _ACK_LENGTH)

            # -- READ: check every address, then read them (a run pauses meanwhile) ---------
            with m.State("READ"):
                m.d.sync += [pairs.eq(plen >> 2), p.eq(0), check_write.eq(0)]
                m.next = "READ_CHECK"
            with m.State("READ_CHECK"):
                with m.If(p == pairs):
                    m.d.sync += [p.eq(0), off.eq(P.HEADER_BYTES)]
                    with m.If(2 + 4 * pairs + P.MIN_FRAME > mf):
                        fail(P.ErrorCode.BAD_ARGUMENT, ("pairs", pairs))
                    with m.Else():
                        m.d.sync += pause_req.eq(1)
                        m.next = "READ_WAIT"
                with m.Else():
                    m.next = "READ_CHECK_GET"
            get("READ_CHECK_GET", "READ_CHECK_ONE", 4)
            with m.State("READ_CHECK_ONE"):
                m.d.comb += addr_in.eq(field[32:])
                with m.If(~address_ok):
                    fail(P.ErrorCode.BAD_ADDRESS, ("address", field[32:]))
                with m.Else():
                    m.d.sync += [p.eq(p + 1), off.eq(off + 4)]
                    m.next = "READ_CHECK"
            with m.State("READ_WAIT"):
                with m.If(p == pairs):
                    m.d.sync += pause_req.eq(0)
                    reply(P.MsgType.DATA, P.HEADER_BYTES + 2 + 4 * pairs)
                with m.Elif(stopped):
                    m.next = "READ_GET"
            get("READ_GET", "READ_BUS", 4)
            bus_read("READ_BUS", "READ_PUT", field[32 : 32 + amap.width])
            with m.State("READ_PUT"):
                m.d.sync += [p.eq(p + 1), off.eq(off + 4)]
                emit("word", word, 4, 5 + 4 * p, "READ_WAIT")

            # -- LOAD_DIGEST: CRC-32 of J, BIAS, TABLE read back, written as each completes --
            self._digest(m, crc, bus_read, emit, arr, stopped, pause_req, word)
            with m.State("DIGEST_DONE"):
                reply(P.MsgType.DIGEST, P.HEADER_BYTES + 14)

            # -- RUN ----------------------------------------------------------------------
            get("RUN", "RUN_CHECK", 5, offset=11)  # thin u32, flags u8
            thin_in, flags_in = Signal(32), Signal(8)  # kept apart: ``field`` reads cycles next
            with m.State("RUN_CHECK"):
                with m.If((field[24:56] == 0) | (field[58:] != 0)):
                    fail(P.ErrorCode.BAD_ARGUMENT)
                with m.Elif(run_active):
                    fail(P.ErrorCode.BUSY)
                with m.Elif(ring.outstanding + ring.queued > self.buffer_frames):
                    # Frames of earlier runs still wait for credit: a run could not be sure of
                    # ring slots for its frames and DONE (BoardSession's lists have no bound).
                    fail(P.ErrorCode.BUSY)
                with m.Else():
                    m.d.sync += [thin_in.eq(field[24:56]), flags_in.eq(field[56:])]
                    m.next = "RUN_CYCLES"
            get("RUN_CYCLES", "RUN_LEFT", 8)
            with m.State("RUN_LEFT"):
                m.d.sync += left.eq(field)  # idle: ``left`` is free
                m.next = "RUN_CLEAR"
            with m.State("RUN_CLEAR"):
                with m.If(~flags_in[1]):
                    m.next = "RUN_START"
                with m.Elif(stats.ready):
                    m.d.comb += stats.clear.eq(1)
                    m.next = "RUN_CLEARING"
            with m.State("RUN_CLEARING"):
                with m.If(~stats.busy):
                    m.next = "RUN_START"
            with m.State("RUN_START"):
                with m.If(~ring.busy):  # a DONE being written still reads ``vectors``
                    m.d.sync += [
                        run_active.eq(1),
                        stop_req.eq(0),
                        rec_gate.eq(0),
                        infinite.eq(left == 0),
                        thin.eq(thin_in),
                        until_start.eq(thin_in),
                        until_done.eq(thin_in),
                        rec_samples.eq(flags_in[0]),
                        rec_stats.eq(flags_in[1]),
                        vectors.eq(0),
                    ]
                    emit("cycle", cycle, 8, 5, "ACK")

            # -- STOP: at the end of the current cycle; ACK, then the last frames ------------
            with m.State("STOP"):
                m.d.sync += stop_req.eq(1)
                with m.If(~run_active):
                    emit("cycle", cycle, 8, 5, "ACK")
                with m.Elif(quiet):
                    m.d.sync += rtype.eq(P.MsgType.ACK)
                    emit("cycle", cycle, 8, 5, "STOP_COMMIT")
            with m.State("STOP_COMMIT"):
                emit("head", Cat(rtype, Const(0, 16), ev.seq), 5, 0, "STOP_SEND")
            with m.State("STOP_SEND"):
                m.d.sync += [
                    r_len.eq(_ACK_LENGTH),
                    r_pending.eq(1),
                    r_fresh.eq(1),
                    last_valid.eq(1),
                    last_seq.eq(ev.seq),
                ]
                m.next = "FINISH_STOP"

            # -- the end of a run: partial SAMPLES frame and DONE to the ring ----------------
            # (the ring reads ``cycle`` and ``vectors`` while it writes them; nothing changes
            # them until the next RUN, which waits for the ring)
            m.d.comb += [ring.end_cycle.eq(cycle), ring.vectors.eq(vectors)]
            for name, nxt in (("FINISH", "IDLE"), ("FINISH_STOP", "RELEASE")):
                with m.State(name):
                    with m.If(~ring.busy):
                        m.d.comb += ring.finish.eq(1)
                        m.d.sync += [run_active.eq(0), stop_req.eq(0), last_vectors.eq(vectors)]
                        m.next = nxt

            # -- RESET ----------------------------------------------------------------------
            with m.State("RESET"):
                m.d.sync += stop_req.eq(1)
                with m.If(stopped & ~stats.busy & ~ring.busy):
                    m.d.sync += [cap_pending.eq(0), cap_full.eq(0), field.eq(1 << 32)]
                    m.next = "RESET_ARRAY"
            with m.State("RESET_ARRAY"):  # CONTROL = 1: restart
                m.d.comb += [
                    bus_addr.eq(amap.register(Register.CONTROL)),
                    arr.bus.w_en.eq(1),
                    restart_written.eq(1),
                ]
                m.next = "RESET_STATS"
            with m.State("RESET_STATS"):
                with m.If(stats.ready & ~ring.busy):
                    m.d.comb += [stats.clear.eq(1), ring.reset.eq(1)]
                    m.next = "RESET_WAIT"
            with m.State("RESET_WAIT"):
                with m.If(~stats.busy & ~ring.busy):
                    m.d.sync += [
                        run_active.eq(0),
                        stop_req.eq(0),
                        rec_gate.eq(0),
                        last_vectors.eq(0),
                        vectors.eq(0),
                    ]
                    emit("zero", Const(0, 8), 8, 5, "ACK")

            # -- STATUS ---------------------------------------------------------------------
            with m.State("STATUS"):
                state = Mux(run_active, Mux(ring.queued != 0, 2, 1), 0)
                emit("state", state, 1, 5, "STATUS_CYCLE")
            with m.State("STATUS_CYCLE"):
                emit("cycle", cycle, 8, 6, "STATUS_WINDOW")
            with m.State("STATUS_WINDOW"):
                credit = Cat(ring.window, ring.outstanding.as_unsigned())
                emit("credit", credit, 4, 14, "STATUS_VECTORS")
            with m.State("STATUS_VECTORS"):
                emit("vectors", Mux(run_active, vectors, last_vectors), 8, 18, "STATUS_DONE")
            with m.State("STATUS_DONE"):
                reply(P.MsgType.STATUS_REPLY, P.HEADER_BYTES + 23)

            # -- READ_STATS -----------------------------------------------------------------
            get("READ_STATS", "STATS_CHECK", 6)  # first u32, count u16
            first, count = field[16:48], field[48:]
            entries = stats.entries
            with m.State("STATS_CHECK"):
                m.d.sync += p.eq(0)
                with m.If(count == 0):
                    fail(P.ErrorCode.BAD_ARGUMENT)
                with m.Elif(first + count > entries):
                    fail(P.ErrorCode.BAD_ARGUMENT, ("entries", Const(entries, 32)))
                with m.Elif(2 + 4 + 8 * count + P.MIN_FRAME > mf):
                    fail(P.ErrorCode.BAD_ARGUMENT, ("count", count))
                with m.Else():
                    m.next = "STATS_READ"
            with m.State("STATS_READ"):
                with m.If(p == count):
                    emit("first", first, 4, 5, "STATS_DONE")
                with m.Else():
                    m.d.comb += [stats.rd_index.eq(first + p), stats.rd_req.eq(1)]
                    with m.If(stats.rd_valid):
                        m.d.sync += [p.eq(p + 1), word64.eq(stats.rd_data)]
                        emit("stat", word64, 8, 9 + 8 * p, "STATS_READ")
            with m.State("STATS_DONE"):
                reply(P.MsgType.STATS, P.HEADER_BYTES + 6 + 8 * count)

            # -- CREDIT / RESEND: to the ring, no reply (it reads the fields while busy) ------
            get("CREDIT", "CREDIT_CHECK", 5)  # flags u8, ack_seq u16, window u16
            with m.State("CREDIT_CHECK"):
                with m.If(field[25:32] != 0):
                    fail(P.ErrorCode.BAD_ARGUMENT)
                with m.Elif(~ring.busy):
                    m.d.comb += ring.credit.eq(1)
                    m.next = "FLOW_WAIT"
            get("RESEND", "RESEND_GO", 2)
            with m.State("RESEND_GO"):
                with m.If(~ring.busy):
                    m.d.comb += ring.resend.eq(1)
                    m.next = "FLOW_WAIT"
            m.d.comb += [
                ring.ack_valid.eq(field[24]),
                ring.ack_seq.eq(field[32:48]),
                ring.window_in.eq(field[48:]),
                ring.from_seq.eq(field[48:]),
            ]
            with m.State("FLOW_WAIT"):
                with m.If(~ring.busy):
                    m.next = "RELEASE"

            # -- GET / LOAD + PUT: the shared sub-states, then return -------------------------
            with m.State("GET"):  # k = 0: address byte 0; k = j: byte j - 1 arrives
                m.d.comb += self.rx_addr.eq(g_addr + k)
                m.d.sync += k.eq(k + 1)
                with m.If(k != 0):
                    m.d.sync += field.eq(Cat(field[8:], self.rx_data))
                with m.If(k == g_left):
                    m.d.sync += k.eq(0)
                    with m.Switch(ret):
                        for code, name in enumerate(returns):
                            with m.Case(code):
                                m.next = name
            with m.State("LOAD"):
                with m.Switch(out_src):
                    for code, (_, value) in enumerate(sources):
                        with m.Case(code):
                            m.d.sync += out.eq(value)
                m.next = "PUT"
            with m.State("PUT"):
                m.d.comb += [
                    replies.w_addr.eq(out_addr),
                    replies.w_data.eq(out[:8]),
                    replies.w_en.eq(1),
                ]
                m.d.sync += [out.eq(out >> 8), out_addr.eq(out_addr + 1), out_left.eq(out_left - 1)]
                with m.If(out_left == 0):
                    with m.Switch(ret):
                        for code, name in enumerate(returns):
                            with m.Case(code):
                                m.next = name
        # An AND-OR selection (a continuous assignment in Verilog: never X at power-up).
        m.d.comb += detail_value.eq(
            select_or([(err_detail == i, v) for i, (_, v) in enumerate(details)], 32)
        )
        return m

    def _digest(self, m, crc, bus_read, emit, arr, stopped, pause_req, word):
        """States LOAD_DIGEST ... DIGEST_DONE: pause a run, then one CRC-32 per region over its
        (address u32 LE, word u32 LE) pairs in ascending address order, each written into the
        reply (J at 5, BIAS at 9, TABLE at 13) as it completes."""
        amap, n = self.amap, self.n
        ib, sb = amap.index_bits, amap.slot_bits
        region = Signal(2)  # 0 J, 1 BIAS, 2 TABLE (DIGEST_REGIONS order)
        i = Signal(range(max(n, amap.table_depth) + 1))
        kk = Signal(range(max(amap.slots, 1) + 1))
        byte = Signal(range(8))
        where = Signal(32)
        degree = rom(i[: max(amap.pbit_bits, 1)], self.degrees, 16)
        j_addr = (int(Region.J) << ib) | (i << sb) | kk
        b_addr = (int(Region.BIAS) << ib) | (i << sb)
        t_addr = (int(Region.TABLE) << ib) | i
        with m.State("LOAD_DIGEST"):
            m.d.sync += [pause_req.eq(1), region.eq(0)]
            with m.If(stopped):
                m.next = "DIGEST_BEGIN"
        with m.State("DIGEST_BEGIN"):  # a region's CRC starts (an empty region's is 0)
            m.d.comb += crc.start.eq(1)
            m.d.sync += [i.eq(0), kk.eq(0)]
            m.next = "DIGEST_NEXT"
        with m.State("DIGEST_NEXT"):
            with m.Switch(region):
                with m.Case(0):
                    with m.If(i == n):
                        m.next = "DIGEST_END"
                    with m.Elif(kk >= degree):
                        m.d.sync += [i.eq(i + 1), kk.eq(0)]
                    with m.Else():
                        m.d.sync += [where.eq(j_addr), kk.eq(kk + 1)]
                        m.next = "DIGEST_BUS"
                with m.Case(1):
                    with m.If(i == n):
                        m.next = "DIGEST_END"
                    with m.Else():
                        m.d.sync += [where.eq(b_addr), i.eq(i + 1)]
                        m.next = "DIGEST_BUS"
                with m.Default():
                    with m.If(i == amap.table_depth):
                        m.next = "DIGEST_END"
                    with m.Else():
                        m.d.sync += [where.eq(t_addr), i.eq(i + 1)]
                        m.next = "DIGEST_BUS"
        bus_read("DIGEST_BUS", "DIGEST_CRC", where[: amap.width])
        with m.State("DIGEST_CRC"):
            m.d.comb += [crc.data.eq(Cat(where, word).word_select(byte, 8)), crc.valid.eq(1)]
            m.d.sync += byte.eq(byte + 1)
            with m.If(byte == 7):
                m.next = "DIGEST_NEXT"
        with m.State("DIGEST_END"):  # the CRC register holds the region's last byte now
            m.d.sync += region.eq(region + 1)
            with m.If(region == 2):
                m.d.sync += pause_req.eq(0)
                emit("crc", crc.crc, 4, 5 + 4 * region, "DIGEST_DONE")
            with m.Else():
                emit("crc", crc.crc, 4, 5 + 4 * region, "DIGEST_BEGIN")
