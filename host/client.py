"""The host side of the wire protocol: :class:`BoardClient`.

It speaks only :mod:`pbitsim.board.protocol` (``docs/protocol.md``) and the register map
(:mod:`pbitsim.board.regmap`), so it drives a real board, the emulator and the RTL in cocotb alike.
What it guarantees:

* one command outstanding at a time; no reply within ``timeout`` → the same bytes again (same seq;
  the board answers a repeat without executing it), up to ``retries`` times, then
  :class:`BoardTimeout` naming the command, its seq and the time waited;
* a streamed run delivers every recorded state exactly once and in order: SAMPLES frames are
  acknowledged cumulatively in CREDIT frames; a frame that does not start at the expected cycle
  (lost or damaged on the link) makes the client ask RESEND from the first missing seq, and
  duplicates are dropped by their cycle index;
* a board that resets or a link that breaks mid-run raises :class:`BoardFault` naming the last
  cycle index received, with the states received so far attached: a chain cannot be resumed bit
  for bit, so it is never resumed silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pbitsim.board import protocol as P
from pbitsim.board.regmap import (
    DIGEST_REGIONS,
    BoardWords,
    Region,
    load_digests,
)
from pbitsim.sampling import DrawInterrupted

from .link import BoardLinkError, Link

__all__ = ["BoardClient", "BoardError", "BoardTimeout", "BoardFault", "DigestMismatch", "Identity"]


class BoardError(RuntimeError):
    """The board answered with an ERROR frame, or something the protocol does not allow."""


class BoardTimeout(BoardError, TimeoutError):
    """No valid reply after every retry."""


class DigestMismatch(BoardError):
    """The board's LOAD-DIGEST differs from the host's for the couplings it should hold."""

    def __init__(self, regions: list[Region], board: dict, host: dict) -> None:
        names = ", ".join(r.name for r in regions)
        detail = "; ".join(f"{r.name} board {board[r]:08x} host {host[r]:08x}" for r in regions)
        super().__init__(
            f"the board does not hold the couplings it was asked to: {names} differ ({detail})"
        )
        self.regions = regions


class BoardFault(BoardError, DrawInterrupted):
    """A run broke off (board reset, disconnect, stream lost); the chain cannot be resumed.

    A :class:`~pbitsim.sampling.DrawInterrupted`, so :func:`pbitsim.sample` keeps the states
    received before the fault and marks the run incomplete.

    Attributes
    ----------
    last_cycle : int or None
        Cycle index of the last state received (None: none received).
    received : np.ndarray
        int8 (1, k, n): every state of the interrupted run received, in order, before the fault.
    """

    def __init__(self, message: str, last_cycle: int | None, received: np.ndarray) -> None:
        DrawInterrupted.__init__(self, message, np.asarray(received, np.int8)[None])
        self.last_cycle = last_cycle


@dataclass(frozen=True)
class Identity:
    """What IDENT says about a board: its words, the design they decode to, its link limits."""

    words: BoardWords
    max_frame: int
    buffer_frames: int

    @property
    def design(self):
        return self.words.hardware_design()

    @property
    def n(self) -> int:
        return self.words.n


class BoardClient:
    """Commands and streamed runs over a :class:`~pbitsim.host.link.Link`.

    Parameters
    ----------
    link : Link
    timeout : float
        Seconds to wait for a reply (or the next stream frame) before retrying.
    retries : int
        Retransmissions of a command before giving up.
    window : int
        Credit window granted to the board (stream frames in flight); capped by its buffer.
    """

    def __init__(self, link: Link, *, timeout: float = 1.0, retries: int = 4, window: int = 8):
        if timeout <= 0 or retries < 0 or window < 1:
            raise ValueError(
                f"timeout must be > 0, retries >= 0 and window >= 1; got {timeout}, {retries}, "
                f"{window}"
            )
        self.link = link
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.window = int(window)
        self.seq = 0
        self._previous: int | None = None  # seq of the command before the outstanding one
        self._stream: list[P.Frame] = []  # stream frames that arrived while awaiting a reply
        self.identity: Identity | None = None
        self.last_reply_seq: int | None = None  # the board's seq of the last reply frame

    # -- commands ----------------------------------------------------------------------------
    def command(self, msg: P.Message, timeout: float | None = None) -> P.Message:
        """Send one command and return its reply (ERROR replies raise :class:`BoardError`)."""
        seq = self.seq
        self.seq = P.seq_next(seq)
        wire = P.encode_message(msg, seq, self.link.max_frame)
        wait = self.timeout if timeout is None else timeout
        start = time.monotonic()
        for _attempt in range(self.retries + 1):
            self.link.write(wire)
            reply = self._await_reply(seq, wait)
            if reply is None:
                continue  # lost on the way there or back: the same bytes again
            if isinstance(reply, P.Error):
                if reply.code in (P.ErrorCode.BAD_CRC, P.ErrorCode.BAD_FRAME):
                    continue  # our frame arrived damaged: send it again
                self._previous = seq
                raise BoardError(self._describe_error(msg, reply))
            self._previous = seq
            return reply
        raise BoardTimeout(
            f"no valid reply to {type(msg).__name__} (seq {seq}) after {self.retries + 1} tries "
            f"in {time.monotonic() - start:.2f} s"
        )

    def _await_reply(self, seq: int, timeout: float) -> P.Message | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.link.receive(deadline - time.monotonic()):
                if isinstance(item, P.ProtocolError):
                    continue  # a damaged board frame: the retry (or RESEND) recovers it
                if item.type in P.STREAM:
                    self._stream.append(item)
                    continue
                msg = self._decode(item)
                if msg is None:
                    continue
                if isinstance(msg, P.Error) and msg.code in (
                    P.ErrorCode.BAD_CRC,
                    P.ErrorCode.BAD_FRAME,
                ):
                    return msg  # the board could not read our frame (its ack_seq is unreliable)
                if msg.TYPE < 0x80:
                    raise BoardError(
                        f"received a host frame ({msg.TYPE.name}) where a board reply was due: "
                        f"is the port a loopback, or another host's link?"
                    )
                ack = getattr(msg, "ack_seq", None)
                if ack == seq:
                    self.last_reply_seq = item.seq
                    return msg
                if ack == self._previous:
                    continue  # a late duplicate answer to the command before (after a retry)
                raise BoardError(
                    f"the board answered seq {ack} with {type(msg).__name__}, but the command "
                    f"outstanding is seq {seq}"
                )
        return None

    def _decode(self, frame: P.Frame) -> P.Message | None:
        n = self.identity.n if self.identity else None
        try:
            return P.decode_message(frame, n)
        except P.ProtocolError:
            return None  # undecodable board frame: treated as lost

    @staticmethod
    def _describe_error(msg: P.Message, err: P.Error) -> str:
        code = err.code.name if isinstance(err.code, P.ErrorCode) else str(err.code)
        extra = {
            P.ErrorCode.BAD_ADDRESS: f" (address {err.detail:#010x})",
            P.ErrorCode.VERSION: f" (the board speaks protocol version {err.detail}, this host "
            f"{P.PROTOCOL_VERSION})",
            P.ErrorCode.BUSY: " (the board is running: STOP it first)",
        }.get(err.code, f" (detail {err.detail})" if err.detail else "")
        return f"the board refused {type(msg).__name__}: {code}{extra}"

    # -- what a board is -----------------------------------------------------------------------
    def ident(self) -> Identity:
        """IDENT: the board's identity words (checked) and link limits."""
        r = self.command(P.Ident(P.PROTOCOL_VERSION))
        if r.magic != P.MAGIC:
            raise BoardError(f"this is not a pbitsim board: magic {r.magic:#010x}")
        words = BoardWords(
            id=r.id_word,
            version=r.version_word,
            topology=r.topology,
            shape=r.shape,
            colors=r.colors,
            format=r.format_word,
            design=r.design_word,
        )
        words.check()
        self.identity = Identity(words, r.max_frame, r.buffer_frames)
        self.link.set_max_frame(r.max_frame)
        self.window = min(self.window, r.buffer_frames)
        return self.identity

    # -- register access ------------------------------------------------------------------------
    def write(self, writes) -> None:
        """WRITE (address, data) pairs, as many per frame as fit."""
        per = (self.link.max_frame - P.MIN_FRAME) // 8
        writes = list(writes)
        for k in range(0, len(writes), per):
            self.command(P.Write(tuple(writes[k : k + per])))

    def read(self, addresses) -> list[int]:
        per = (self.link.max_frame - P.MIN_FRAME - 2) // 4
        addresses = list(addresses)
        out: list[int] = []
        for k in range(0, len(addresses), per):
            out += self.command(P.Read(tuple(addresses[k : k + per]))).words
        return out

    def digests(self) -> dict[Region, int]:
        r = self.command(P.LoadDigest())
        return {Region.J: r.j, Region.BIAS: r.bias, Region.TABLE: r.table}

    def check_digests(self, couplings, design) -> dict[Region, int]:
        """LOAD-DIGEST must equal the host's for ``couplings``; DigestMismatch names the regions."""
        board = self.digests()
        host = load_digests(couplings, design)
        bad = [r for r in DIGEST_REGIONS if board[r] != host[r]]
        if bad:
            raise DigestMismatch(bad, board, host)
        return board

    def status(self) -> P.StatusReply:
        return self.command(P.Status())

    def stop(self) -> int:
        return self.command(P.Stop()).value

    def reset(self) -> None:
        self.command(P.Reset())
        self._stream.clear()

    def statistics(self, length: int) -> np.ndarray:
        """The on-board statistics vector, int64 of ``length`` = 1 + n + edges entries:
        [count, sum s_i per p-bit, sum s_i s_j per edge (CSR order, i < j)]."""
        per = (self.link.max_frame - P.MIN_FRAME - 6) // 8
        values: list[int] = []
        while len(values) < length:
            values += self.command(P.ReadStats(len(values), min(per, length - len(values)))).values
        return np.asarray(values, dtype=np.int64)

    # -- streamed runs ---------------------------------------------------------------------------
    def run(self, cycles: int, thin: int, flags: int) -> tuple[int, np.ndarray, P.Done]:
        """RUN ``cycles`` model cycles recording every ``thin``-th state; stream them in.

        Returns (start cycle, states int8 (k, n) in order — empty unless RUN_SAMPLES, DONE).

        Raises
        ------
        BoardFault
            The board reset or the link broke mid-run (the states received so far attached).
        """
        n = self.identity.n
        start = self.command(P.Run(cycles, thin, flags)).value
        after = self.last_reply_seq  # stream frames of this run have seqs after the RUN's ACK
        rec = _Reception(start, thin, n)
        self._credit(None)
        try:
            done = self._stream_until_done(rec, after, flags & P.RUN_SAMPLES)
        except BoardLinkError as e:
            raise rec.fault(f"the link to the board broke mid-run: {e}") from e
        return start, rec.states(), done

    def _flow_seq(self) -> int:
        seq = self.seq
        self.seq = P.seq_next(seq)
        return seq

    def _credit(self, ack: int | None) -> None:
        self.link.write(P.encode_message(P.Credit(ack, self.window), self._flow_seq()))

    def _resend(self, from_seq: int) -> None:
        self.link.write(P.encode_message(P.Resend(from_seq), self._flow_seq()))

    def _stream_until_done(self, rec: _Reception, after: int, samples: bool) -> P.Done:
        probes = 0
        self._probed_cycle = -1
        while True:
            frames, self._stream = self._stream, []
            if not frames:
                for item in self.link.receive(self.timeout):
                    if isinstance(item, P.Frame):
                        if item.type in P.STREAM:
                            frames.append(item)
                        # a reply now answers nothing outstanding: a late duplicate, ignored
            if not frames:
                probes += 1
                self._probe(rec, after, probes)
                continue
            probes = 0
            for frame in frames:
                msg = self._decode(frame)
                if msg is None:
                    continue  # damaged: the gap it leaves is noticed at the next frame
                if isinstance(msg, P.Samples):
                    got = rec.take(msg, frame.seq)
                    if got == "gap":
                        self._resend(
                            P.seq_next(rec.last_seq if rec.last_seq is not None else after)
                        )
                elif isinstance(msg, P.Done):
                    if samples and rec.count < msg.vectors:
                        self._resend(
                            P.seq_next(rec.last_seq if rec.last_seq is not None else after)
                        )
                        continue
                    self._credit(frame.seq)
                    return msg
            self._credit(rec.last_seq)

    def _probe(self, rec: _Reception, after: int, probes: int) -> None:
        """Nothing arrived for a timeout: ask the board where it is."""
        try:
            st = self.status()
        except BoardTimeout as e:
            raise rec.fault(f"the board stopped answering mid-run ({e})") from e
        if st.state == P.BoardState.RUNNING and st.cycle > self._probed_cycle:
            self._probed_cycle = st.cycle  # still running (a long interval between frames)
            return
        if probes > self.retries + 1:
            raise rec.fault("the board stopped streaming and does not answer RESEND")
        if st.cycle < rec.last_cycle_or_start or (
            st.state == P.BoardState.IDLE and st.unacked == 0
        ):
            raise rec.fault(
                f"the board was reset mid-run (it reports cycle {st.cycle}, state "
                f"{P.BoardState(st.state).name})"
            )
        # Frames in flight were lost (or our CREDIT was): ask for everything after what we have.
        self._resend(rec.next_seq(after))
        self._credit(rec.last_seq)


class _Reception:
    """States of one run received so far, in order; detects gaps and duplicates by cycle."""

    def __init__(self, start: int, thin: int, n: int) -> None:
        self.start, self.thin, self.n = start, thin, n
        self.expected = start + thin  # cycle index of the next state wanted
        self.chunks: list[np.ndarray] = []
        self.count = 0
        self.last_seq: int | None = None

    def next_seq(self, after: int) -> int:
        """The first board seq not yet received in order (``after``: the RUN's ACK seq)."""
        return P.seq_next(self.last_seq if self.last_seq is not None else after)

    @property
    def last_cycle_or_start(self) -> int:
        return self.expected - self.thin

    def take(self, msg: P.Samples, seq: int) -> str:
        if msg.first_cycle == self.expected:
            self.chunks.append(msg.spins)
            self.count += msg.count
            self.expected += msg.count * self.thin
            self.last_seq = seq
            return "ok"
        if msg.first_cycle < self.expected:
            return "duplicate"
        return "gap"

    def states(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, self.n), np.int8)
        return np.concatenate(self.chunks)

    def fault(self, why: str) -> BoardFault:
        last = self.expected - self.thin if self.count else None
        where = f"last cycle index received {last}" if last is not None else "no state received"
        return BoardFault(
            f"{why}; {where} ({self.count} states kept). The chain cannot be resumed bit for "
            f"bit, so it is not resumed: reload and run again.",
            last,
            self.states(),
        )
