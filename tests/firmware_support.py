"""Shared helpers for the firmware tests (tests/test_firmware_*.py, tests/cocotb_firmware.py).

Amaranth-simulator drivers, a minimal host that numbers commands and decodes the board's frames,
and the comparison of two boards' output (the gateware's and :class:`BoardSession`'s): what the
protocol fixes exactly is compared exactly, what depends on timing (where a reply falls among
stream frames, hence the board seqs) is compared as the protocol allows.
"""

from __future__ import annotations

import os

import numpy as np
from amaranth.sim import Simulator

from pbitsim.board import protocol as P


def simulate(dut, bench, *, deadline: float | None = None, vcd: str | None = None) -> None:
    """Run ``bench`` (an async testbench) on ``dut`` with a 1 MHz clock; waveforms only when the
    environment variable ``PBITSIM_VCD`` names a folder."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    folder = os.environ.get("PBITSIM_VCD")
    if folder and vcd:
        with sim.write_vcd(os.path.join(folder, vcd + ".vcd")):
            sim.run_until(deadline) if deadline else sim.run()
    elif deadline:
        sim.run_until(deadline)
    else:
        sim.run()


async def wait_until(ctx, condition, timeout: int, what: str) -> int:
    """Tick until ``condition()`` holds (checked before each tick); the clocks waited.
    Raises AssertionError naming ``what`` after ``timeout`` clocks."""
    for k in range(timeout):
        if condition():
            return k
        await ctx.tick()
    raise AssertionError(f"timed out after {timeout} clocks waiting for {what}")


def decode_all(wire: bytes, max_frame: int, n: int | None = None):
    """Every frame in ``wire`` decoded: a list of (seq, message) (errors raise)."""
    out = []
    for item in P.Decoder(max_frame).feed(wire):
        assert isinstance(item, P.Frame), f"the board sent a damaged frame: {item}"
        out.append((item.seq, P.decode_message(item, n)))
    return out


def split_replies(frames):
    """(replies, stream) of a decoded board output: replies as (seq, msg), stream as (seq, msg)."""
    replies = [(s, m) for s, m in frames if m.TYPE not in P.STREAM]
    stream = [(s, m) for s, m in frames if m.TYPE in P.STREAM]
    return replies, stream


def assert_same_board_output(got, want, *, exact_seqs: bool) -> None:
    """Compare two boards' decoded output (lists of (seq, msg) in wire order).

    Replies (with their ack_seq) must be equal and in the same order; stream frames (SAMPLES,
    DONE) must be equal and in the same order. With ``exact_seqs`` the board seqs must be equal
    too (no stream frames, or none whose timing relative to replies may differ). Without it the
    board seqs must count every new frame in wire order: each seq is the next one, except for a
    frame sent again (a repeated reply, a resend), which keeps the seq it had.
    """
    got_r, got_s = split_replies(got)
    want_r, want_s = split_replies(want)
    assert [m for _, m in got_r] == [m for _, m in want_r], (got_r, want_r)
    assert [m for _, m in got_s] == [m for _, m in want_s], "stream frames differ"
    if exact_seqs:
        assert [s for s, _ in got] == [s for s, _ in want]
        return
    seen = {}
    expected = got[0][0] if got else 0
    for seq, msg in got:
        key = (msg.TYPE, msg.pack())
        if seq in seen:
            assert seen[seq] == key, f"seq {seq} used for two different frames"
            continue
        assert seq == expected, f"board seq {seq}, expected {expected}"
        seen[seq] = key
        expected = P.seq_next(seq)


def samples_of(stream) -> tuple[np.ndarray, list[int]]:
    """All SAMPLES vectors (k, n) of a decoded stream and each frame's first cycle."""
    frames = [m for _, m in stream if isinstance(m, P.Samples)]
    if not frames:
        return np.zeros((0, 0), np.int8), []
    return np.concatenate([f.spins for f in frames]), [f.first_cycle for f in frames]


def stat_edges(indptr, indices):
    """The edges of the statistics vector, CSR order with i < j (as BoardSession)."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    upper = rows < indices
    return rows[upper], indices[upper]


def stats_of(states: np.ndarray, indptr, indices) -> list[int]:
    """[count, sum s_i, sum s_i s_j per edge] of recorded states, as the protocol defines it."""
    s = np.asarray(states, np.int64)
    i, j = stat_edges(indptr, indices)
    return [len(s)] + s.sum(axis=0).tolist() + (s[:, i] * s[:, j]).sum(axis=0).tolist()


# -- BoardCore in Amaranth's simulator, bytes in and out ---------------------------------------


class CoreHost:
    """A host speaking to a :class:`BoardCore` in Amaranth's simulator, byte by byte.

    Bytes go in one every ``pace`` clocks (the UART delivers one every 10 x divisor); every byte
    the board sends is collected (``out``) and decoded (``frames``: (seq, message) in wire
    order). ``tx_ready`` < 1 holds the board's output back at random.
    """

    def __init__(self, ctx, core, n: int, pace: int = 6, tx_ready: float = 1.0, seed: int = 0):
        self.ctx, self.core, self.n, self.pace = ctx, core, n, pace
        self.tx_ready = tx_ready
        self.rng = np.random.default_rng(seed)
        self.out = bytearray()
        self.frames: list = []
        self.decoder = P.Decoder(core.max_frame)
        self.seq = 0
        self.clocks = 0
        self.sent: list = []  # (message, seq) of every command and flow frame, in order

    async def tick(self, count: int = 1) -> None:
        ctx, core = self.ctx, self.core
        for _ in range(count):
            ready = self.tx_ready >= 1 or self.rng.random() < self.tx_ready
            ctx.set(core.tx.ready, ready)
            if ready and ctx.get(core.tx.valid):
                byte = ctx.get(core.tx.payload)
                self.out.append(byte)
                for item in self.decoder.feed(bytes([byte])):
                    assert isinstance(item, P.Frame), f"board sent a damaged frame: {item}"
                    self.frames.append((item.seq, P.decode_message(item, self.n)))
            assert not ctx.get(core.overflow), "receive FIFO overflow"
            await ctx.tick()
            self.clocks += 1

    async def send_raw(self, wire: bytes) -> None:
        ctx, core = self.ctx, self.core
        for byte in wire:
            ctx.set(core.rx.payload, byte)
            ctx.set(core.rx.valid, 1)
            await self.tick()
            ctx.set(core.rx.valid, 0)
            await self.tick(self.pace - 1)

    def replies(self):
        return [(s, m) for s, m in self.frames if m.TYPE not in P.STREAM]

    def stream(self):
        return [(s, m) for s, m in self.frames if m.TYPE in P.STREAM]

    async def wait_replies(self, count: int, timeout: int = 200_000) -> None:
        for _ in range(timeout):
            if len(self.replies()) >= count:
                return
            await self.tick()
        raise AssertionError(f"no reply after {timeout} clocks ({len(self.replies())} < {count})")

    async def wait_stream(self, count: int, timeout: int = 100_000) -> None:
        """Tick until ``count`` stream frames have arrived (AssertionError after ``timeout``)."""
        for _ in range(timeout):
            if len(self.stream()) >= count:
                return
            await self.tick()
        raise AssertionError(f"{len(self.stream())} stream frames after {timeout} clocks")

    async def command(self, msg, seq: int | None = None, timeout: int = 200_000):
        """Send one command and wait for its reply (returned); flow frames: wait a little."""
        seq = self.seq if seq is None else seq
        self.seq = P.seq_next(seq)
        self.sent.append((msg, seq))
        before = len(self.replies())
        await self.send_raw(P.encode_message(msg, seq, self.core.max_frame))
        if msg.TYPE in P.FLOW:
            await self.tick(40)
            return None
        await self.wait_replies(before + 1, timeout)
        return self.replies()[before][1]

    async def write(self, writes) -> None:
        chunk = (self.core.max_frame - P.MIN_FRAME) // 8
        for k in range(0, len(writes), chunk):
            reply = await self.command(P.Write(tuple(writes[k : k + chunk])))
            assert isinstance(reply, P.Ack), reply


def replay(session, sent, n: int, board_frames=(), before: bytes = b"") -> bytes:
    """Drive the twin ``session`` with a host's frames ``sent`` (in order: (message, seq), or raw
    bytes), letting it run as far as it can after each (as the gateware does between host
    frames). Board seqs are the gateware's in ``sent``: a CREDIT acknowledges everything this
    board has streamed so far (as the gateware's host did); a RESEND asks from this board's seq
    of the frame that had that seq in ``board_frames`` (the gateware's decoded output).
    ``before``: what this session sent earlier. Returns the session's new output bytes."""
    out = b""
    gateware = dict(board_frames)
    for item in sent:
        if isinstance(item, bytes | bytearray):
            out += session.receive(bytes(item))
            out += session.step(1 << 20)
            continue
        msg, seq = item
        mine = [(s, m) for s, m in decode_all(before + out, session.max_frame, n)]
        stream = [(s, m) for s, m in mine if m.TYPE in P.STREAM]
        if isinstance(msg, P.Credit):
            msg = P.Credit(stream[-1][0] if stream else None, msg.window)
        elif isinstance(msg, P.Resend):
            wanted = gateware[msg.from_seq]
            msg = P.Resend(next(s for s, m in stream if m == wanted))
        out += session.receive(P.encode_message(msg, seq, session.max_frame))
        out += session.step(1 << 20)
    return out
