"""The board's behaviour, frames in and frames out: :class:`BoardSession`.

This is the command engine of a pbitsim board as a pure-Python state machine. The p-bit array it
drives is injected (any object with the :class:`PbitMachine` interface): the board emulator
injects the Numba cycle model (:class:`pbitsim.sim.array.ArrayModel`), and the firmware's tests
hold the gateware's command engine against this class byte for byte. There is one state machine,
here, not one in the firmware and another in the host.

``docs/protocol.md`` states the rules this class implements; in short:

* bytes in (:meth:`BoardSession.receive`) are decoded into frames; each command gets exactly one
  reply, remembered with its seq so that a repeated seq is answered again without executing again;
* a RUN records every ``thin``-th state into SAMPLES frames and/or on-board statistics; the array
  advances only in :meth:`BoardSession.step` (the emulator's clock), and only while the host's
  credit window has room for the frame being filled — a paused cycle does not exist for the model;
* stream frames (SAMPLES, DONE) are kept until acknowledged by a CREDIT and sent again on RESEND.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pbitsim.board import protocol as P
from pbitsim.board.regmap import (
    DIGEST_REGIONS,
    AddressError,
    AddressMap,
    BoardWords,
    Region,
    region_addresses,
    region_digest,
)

__all__ = ["PbitMachine", "BoardSession", "DEFAULT_BUFFER_FRAMES"]

#: Stream frames a board keeps for resending (the largest credit window it accepts).
DEFAULT_BUFFER_FRAMES = 16
#: Model cycles one :meth:`BoardSession.step` runs at most when no budget is given.
DEFAULT_STEP_CYCLES = 1 << 16


class PbitMachine(Protocol):
    """What the command engine needs of a p-bit array: its register port and its clock.

    ``run(cycles, record_every)`` runs model cycles and returns the spins after every
    ``record_every``-th one, int8 (k, n); ``cycle`` counts model cycles since the last restart
    (a CONTROL restart write); ``check`` raises :class:`~pbitsim.board.regmap.AddressError` for
    an address the port has nothing at (``write`` says which access).
    """

    words: BoardWords
    amap: AddressMap

    @property
    def cycle(self) -> int: ...

    def check(self, address: int, write: bool) -> None: ...

    def write(self, address: int, data: int) -> None: ...

    def read(self, address: int) -> int: ...

    def restart(self) -> None: ...

    def run(self, cycles: int, record_every: int = 1) -> np.ndarray: ...


@dataclass
class _Run:
    """A RUN in progress."""

    start: int  # cycle index when it started
    end: int | None  # cycle index at which it ends (None: until STOP)
    thin: int
    samples: bool
    stats: bool
    vectors: int = 0  # states recorded so far
    pending: list = field(default_factory=list)  # recorded states not yet in a frame
    pending_first: int = 0  # cycle index of pending[0]


class BoardSession:
    """A board: frames in, frames out, the p-bit array injected.

    Parameters
    ----------
    machine : PbitMachine
        The array (its identity words say what it is; ``machine.amap`` is its address map).
    indptr : array_like
        CSR row pointers of the topology the array is built for (the J slots that exist);
        ``indices`` the neighbours (for the on-board pair statistics).
    indices : array_like
    max_frame : int
        Longest unencoded frame, both ways (reported in IDENT_REPLY).
    buffer_frames : int
        Stream frames kept for resending: the largest credit window honoured.

    Attributes
    ----------
    state : BoardState
    window : int
        The host's current credit window (0 after power-up and RESET).
    """

    def __init__(
        self,
        machine: PbitMachine,
        indptr,
        indices,
        *,
        max_frame: int = P.DEFAULT_MAX_FRAME,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
    ) -> None:
        if not 1 <= buffer_frames <= 0x7FFF:
            raise ValueError(f"buffer_frames must be in 1..32767, not {buffer_frames}")
        self.machine = machine
        self.indptr = np.asarray(indptr, np.int64)
        indices = np.asarray(indices, np.int64)
        self.n = len(self.indptr) - 1
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        upper = rows < indices  # each edge once, CSR order with i < j
        self._edges = (rows[upper], indices[upper])
        self.max_frame = int(max_frame)
        self.per_frame = P.samples_per_frame(self.n, self.max_frame)
        self.buffer_frames = int(buffer_frames)
        self._decoder = P.Decoder(self.max_frame)
        self._seq = 0  # the board's next frame seq
        self._last_command: tuple[int, bytes] | None = None  # (seq, reply bytes)
        self.window = 0
        self._kept: list[tuple[int, bytes]] = []  # sent stream frames not yet acknowledged
        self._queued: list[P.Message] = []  # stream messages waiting for window
        self._run: _Run | None = None
        self._last_vectors = 0
        self._clear_stats()

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> P.BoardState:
        if self._run is None:
            return P.BoardState.IDLE
        if self._blocked():
            return P.BoardState.PAUSED
        return P.BoardState.RUNNING

    @property
    def unacked(self) -> int:
        return len(self._kept)

    def _clear_stats(self) -> None:
        self._count = 0
        self._sum = np.zeros(self.n, np.int64)
        self._pairs = np.zeros(len(self._edges[0]), np.int64)

    def stats_vector(self) -> np.ndarray:
        """[count, sum s_i per p-bit, sum s_i s_j per edge (CSR order, i < j)], int64."""
        return np.concatenate([[self._count], self._sum, self._pairs]).astype(np.int64)

    # -- output --------------------------------------------------------------------------------
    def _frame(self, msg: P.Message) -> tuple[int, bytes]:
        seq = self._seq
        self._seq = P.seq_next(seq)
        return seq, P.encode_message(msg, seq, self.max_frame)

    def _stream(self, msg: P.Message) -> bytes:
        """Send a stream frame now if the window allows, else queue it."""
        self._queued.append(msg)
        return self._flush_queue()

    def _flush_queue(self) -> bytes:
        out = b""
        while self._queued and len(self._kept) < min(self.window, self.buffer_frames):
            seq, wire = self._frame(self._queued.pop(0))
            self._kept.append((seq, wire))
            out += wire
        return out

    def _blocked(self) -> bool:
        """The array must wait: a frame is queued for lack of window."""
        return bool(self._queued)

    # -- input ---------------------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Bytes from the host in; the bytes the board sends in answer out (replies, and stream
        frames that a CREDIT or RESEND released)."""
        out = b""
        for item in self._decoder.feed(data):
            if isinstance(item, P.ProtocolError):
                seq = item.seq if item.seq is not None else 0
                out += self._frame(P.Error(item.code, seq, 0))[1]
            else:
                out += self._handle(item)
        return out

    def _handle(self, frame: P.Frame) -> bytes:
        t = frame.type
        if t in P.COMMANDS and self._last_command and self._last_command[0] == frame.seq:
            return self._last_command[1]  # a repeat: answer again, execute nothing
        try:
            if t not in P.COMMANDS and t not in P.FLOW:
                # Before decoding: a board frame (SAMPLES needs n to decode) is no command, and
                # the answer must not depend on its payload.
                raise P.ProtocolError(
                    f"type 0x{t:02X} is not a host frame", code=P.ErrorCode.UNKNOWN_TYPE
                )
            msg = P.decode_message(frame)
        except P.ProtocolError as e:
            detail = {
                P.ErrorCode.UNKNOWN_TYPE: t,
                P.ErrorCode.BAD_LENGTH: len(frame.payload),
            }.get(e.code, 0)
            reply = P.Error(e.code or P.ErrorCode.BAD_ARGUMENT, frame.seq, detail)
            return self._reply(frame, reply)
        if isinstance(msg, P.Credit):
            return self._credit(msg)
        if isinstance(msg, P.Resend):
            return b"".join(wire for seq, wire in self._kept if P.seq_diff(seq, msg.from_seq) >= 0)
        extra = b""
        reply = getattr(self, "_do_" + type(msg).__name__.lower())(msg, frame.seq)
        if isinstance(reply, tuple):
            reply, extra = reply
        wire = self._reply(frame, reply)
        return wire + (extra() if callable(extra) else extra)

    def _reply(self, frame: P.Frame, msg: P.Message) -> bytes:
        wire = self._frame(msg)[1]
        if frame.type in P.COMMANDS:
            self._last_command = (frame.seq, wire)
        return wire

    def _credit(self, msg: P.Credit) -> bytes:
        if msg.ack_seq is not None:
            self._kept = [(s, w) for s, w in self._kept if P.seq_diff(s, msg.ack_seq) > 0]
        self.window = min(msg.window, self.buffer_frames)
        return self._flush_queue()

    # -- commands ------------------------------------------------------------------------------
    def _busy(self, seq: int) -> P.Error | None:
        return P.Error(P.ErrorCode.BUSY, seq, 0) if self._run is not None else None

    def _do_ident(self, msg: P.Ident, seq: int) -> P.Message:
        if msg.version != P.PROTOCOL_VERSION:
            return P.Error(P.ErrorCode.VERSION, seq, P.PROTOCOL_VERSION)
        w = self.machine.words
        return P.IdentReply(
            ack_seq=seq,
            magic=P.MAGIC,
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

    def _do_write(self, msg: P.Write, seq: int) -> P.Message:
        busy = self._busy(seq)
        if busy:
            return busy
        try:
            for addr, _ in msg.pairs:  # atomic: check everything before writing anything
                self.machine.check(addr, write=True)
        except AddressError as e:
            return P.Error(P.ErrorCode.BAD_ADDRESS, seq, e.address)
        for addr, data in msg.pairs:
            self.machine.write(addr, data)
        return P.Ack(seq, len(msg.pairs))

    def _do_read(self, msg: P.Read, seq: int) -> P.Message:
        try:
            for addr in msg.addrs:
                self.machine.check(addr, write=False)
        except AddressError as e:
            return P.Error(P.ErrorCode.BAD_ADDRESS, seq, e.address)
        if 2 + 4 * len(msg.addrs) + P.MIN_FRAME > self.max_frame:
            return P.Error(P.ErrorCode.BAD_ARGUMENT, seq, len(msg.addrs))
        return P.Data(seq, tuple(self.machine.read(a) for a in msg.addrs))

    def _do_loaddigest(self, msg: P.LoadDigest, seq: int) -> P.Message:
        amap = self.machine.amap
        crc = {
            region: region_digest(
                (a, self.machine.read(a)) for a in region_addresses(amap, self.indptr, region)
            )
            for region in DIGEST_REGIONS
        }
        return P.Digest(seq, crc[Region.J], crc[Region.BIAS], crc[Region.TABLE])

    def _do_run(self, msg: P.Run, seq: int) -> P.Message:
        busy = self._busy(seq)
        if busy:
            return busy
        if len(self._kept) + len(self._queued) > self.buffer_frames:
            # Frames of earlier runs still wait for credit: a board's ring could not be sure of
            # slots for this run's frames and DONE (the gateware refuses the same way).
            return P.Error(P.ErrorCode.BUSY, seq, 0)
        start = self.machine.cycle
        self._run = _Run(
            start=start,
            end=start + msg.cycles if msg.cycles else None,
            thin=msg.thin,
            samples=bool(msg.flags & P.RUN_SAMPLES),
            stats=bool(msg.flags & P.RUN_STATS),
        )
        if self._run.stats:
            self._clear_stats()
        return P.Ack(seq, start)

    def _do_stop(self, msg: P.Stop, seq: int) -> tuple[P.Message, bytes]:
        # The ACK goes on the wire first, so it takes its seq first (_reply frames it before the
        # stream frames _finish releases: seqs stay in wire order).
        ack = P.Ack(seq, self.machine.cycle)
        return ack, self._finish if self._run is not None else b""

    def _do_reset(self, msg: P.Reset, seq: int) -> P.Message:
        self._run = None
        self._kept.clear()
        self._queued.clear()
        self.window = 0
        self._last_vectors = 0
        self._clear_stats()
        self.machine.restart()
        return P.Ack(seq, 0)

    def _do_status(self, msg: P.Status, seq: int) -> P.Message:
        vectors = self._run.vectors if self._run is not None else self._last_vectors
        return P.StatusReply(
            seq, int(self.state), self.machine.cycle, self.window, len(self._kept), vectors
        )

    def _do_readstats(self, msg: P.ReadStats, seq: int) -> P.Message:
        vec = self.stats_vector()
        if msg.first + msg.count > len(vec):
            return P.Error(P.ErrorCode.BAD_ARGUMENT, seq, len(vec))
        if 2 + 4 + 8 * msg.count + P.MIN_FRAME > self.max_frame:
            return P.Error(P.ErrorCode.BAD_ARGUMENT, seq, msg.count)
        values = vec[msg.first : msg.first + msg.count]
        return P.Stats(seq, msg.first, tuple(int(v) for v in values))

    # -- running -------------------------------------------------------------------------------
    def _finish(self) -> bytes:
        """End the run: the partly filled frame and DONE go out (window permitting)."""
        run = self._run
        out = self._emit_pending() if run.samples and run.pending else b""
        self._run = None
        self._last_vectors = run.vectors
        return out + self._stream(P.Done(self.machine.cycle, run.vectors))

    def _emit_pending(self) -> bytes:
        run = self._run
        msg = P.Samples(run.pending_first, np.asarray(run.pending, dtype=np.int8))
        run.pending = []
        return self._stream(msg)

    def step(self, max_cycles: int = DEFAULT_STEP_CYCLES) -> bytes:
        """Advance the array by up to ``max_cycles`` model cycles of the current run (fewer when
        the credit window is full or the run ends); return the stream bytes produced.

        The emulator calls this in a loop, between reads from the host, so that it stays
        responsive; a real board's array runs on its own clock with the same outcome.
        """
        run = self._run
        out = b""
        budget = int(max_cycles)
        while run is not None and budget > 0 and not self._blocked():
            now = self.machine.cycle
            since = (now - run.start) % run.thin  # cycles since the last recorded state
            left = budget if run.end is None else min(budget, run.end - now)
            if since:
                # A budget cut the last interval short: finish it, recording its last state.
                every = run.thin - since
                cycles = min(every, left)
            else:
                # Whole intervals: as many states as the frame being filled still takes.
                every = run.thin
                k = self.per_frame - len(run.pending) if run.samples else 1024
                cycles = min(k * run.thin, left)
            if cycles > 0:
                rec = self.machine.run(cycles, every)
                budget -= cycles
                if len(rec):
                    self._record(run, now + every, rec)
                if run.samples and len(run.pending) >= self.per_frame:
                    out += self._emit_pending()
            if run.end is not None and self.machine.cycle >= run.end:
                out += self._finish()
                run = None
        return out

    def _record(self, run: _Run, first: int, states: np.ndarray) -> None:
        """Recorded states, the first being the state after cycle ``first``."""
        if run.samples:
            if not run.pending:
                run.pending_first = first
            run.pending.extend(states)
        if run.stats:
            self._accumulate(states)
        run.vectors += len(states)

    def _accumulate(self, states: np.ndarray) -> None:
        s = states.astype(np.int64)
        self._count += len(s)
        self._sum += s.sum(axis=0)
        i, j = self._edges
        self._pairs += (s[:, i] * s[:, j]).sum(axis=0)
