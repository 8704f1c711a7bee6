"""cocotb tests of the firmware at its serial pins (run by tests/test_firmware_rtl.py, not collected
by pytest): bytes in on ``rx`` and out on ``tx`` through a bit-level UART of this testbench,
decoded with :mod:`pbitsim.board.protocol`.

The case file (env ``PBIT_CASE``, JSON) holds what the host sends (load writes, the malformed
frames) and what it must get (digests, spins, statistics, error codes), computed by the pytest
side. Each test writes a transcript to ``PBIT_OUT/<test>.json``: every frame the host sent (as
message fields or raw bytes) and every byte the board sent, which the pytest side replays into
the twin (``BoardSession``) and compares. The tests share one simulation (one power-up): the
first loads the model; the others restart the chain by rewriting seeds and spins.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from pbitsim.board import protocol as P

with open(os.environ["PBIT_CASE"]) as _f:
    CASE = json.load(_f)
DIVISOR = CASE["divisor"]
MAX_FRAME = CASE["max_frame"]
N = CASE["n"]


class Host:
    """A host at the UART pins: a bit-level transmitter on ``rx``, a receiver on ``tx``."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.decoder = P.Decoder(MAX_FRAME)
        self.received = bytearray()
        self.frames: list = []  # (seq, message) in wire order
        self.seq = 0
        self.log: list = []

    async def clocks(self, count: int) -> None:
        await ClockCycles(self.dut.clk, count)

    async def _monitor(self) -> None:
        dut = self.dut
        while True:
            await FallingEdge(dut.tx)  # a start bit; sample each bit in its middle
            await ClockCycles(dut.clk, DIVISOR // 2)
            if int(dut.tx.value):
                continue
            byte = 0
            for bit in range(8):
                await ClockCycles(dut.clk, DIVISOR)
                byte |= int(dut.tx.value) << bit
            await ClockCycles(dut.clk, DIVISOR)
            assert int(dut.tx.value) == 1, "stop bit low on tx"
            self.received.append(byte)
            for item in self.decoder.feed(bytes([byte])):
                assert isinstance(item, P.Frame), f"the board sent a damaged frame: {item}"
                self.frames.append((item.seq, P.decode_message(item, N)))

    async def send_bytes(self, data: bytes) -> None:
        rx = self.dut.rx
        for byte in data:
            for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                rx.value = bit
                await ClockCycles(self.dut.clk, DIVISOR)

    def start_log(self) -> None:
        self.log = []
        self.mark = len(self.received)

    def save_log(self, name: str, **extra) -> None:
        data = {"sent": self.log, "received": self.received[self.mark :].hex(), **extra}
        with open(os.path.join(os.environ["PBIT_OUT"], name + ".json"), "w") as f:
            json.dump(data, f)

    def replies(self):
        return [(s, m) for s, m in self.frames if m.TYPE not in P.STREAM]

    def stream(self):
        return [(s, m) for s, m in self.frames if m.TYPE in P.STREAM]

    def last_stream_seq(self):
        stream = self.stream()
        return stream[-1][0] if stream else None

    async def raw(self, wire: bytes, replies: int, timeout: int = 100_000):
        """Send raw bytes; wait for ``replies`` more replies; return them."""
        before = len(self.replies())
        self.log.append(["raw", wire.hex()])
        await self.send_bytes(wire)
        for _ in range(timeout // 50):
            if len(self.replies()) >= before + replies:
                break
            await self.clocks(50)
        got = self.replies()[before:]
        assert len(got) == replies, f"{len(got)} replies to {wire.hex()}, expected {replies}"
        return [m for _, m in got]

    async def send(self, msg, seq: int | None = None, timeout: int = 200_000):
        """Send a command (wait for its reply and return it) or a flow frame (no reply)."""
        seq = self.seq if seq is None else seq
        self.seq = P.seq_next(seq)
        self.log.append(["msg", int(msg.TYPE), seq, msg.pack().hex()])
        before = len(self.replies())
        await self.send_bytes(P.encode_message(msg, seq, MAX_FRAME))
        if msg.TYPE in P.FLOW:
            return None
        for _ in range(timeout // 50):
            if len(self.replies()) > before:
                return self.replies()[before][1]
            await self.clocks(50)
        raise AssertionError(f"no reply to {msg} (seq {seq}) within {timeout} clocks")

    async def write(self, writes) -> None:
        chunk = (MAX_FRAME - P.MIN_FRAME) // 8
        for k in range(0, len(writes), chunk):
            reply = await self.send(P.Write(tuple(tuple(w) for w in writes[k : k + chunk])))
            assert isinstance(reply, P.Ack), reply

    async def run_to_done(self, window: int, wait: int = 0, timeout: int = 400_000) -> None:
        """Acknowledge every stream frame (after ``wait`` clocks each) until DONE arrives."""
        seen = len(self.stream())
        await self.send(P.Credit(self.last_stream_seq(), window))
        for _ in range(timeout // 100):
            stream = self.stream()
            if len(stream) > seen:
                seen = len(stream)
                await self.clocks(wait)
                await self.send(P.Credit(stream[-1][0], window))
                if isinstance(stream[-1][1], P.Done):
                    return
            await self.clocks(100)
        summary = [(s, type(m).__name__) for s, m in self.frames[-12:]]
        raise AssertionError(f"no DONE; the last frames: {summary}")


HOST: Host | None = None


async def host_for(dut) -> Host:
    """The one host of this simulation (the board remembers the last command's seq, so the host
    keeps counting across tests); the first call resets the board. cocotb ends a test's tasks
    with the test, so each test starts the clock and the receiver again."""
    global HOST
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    if HOST is None:
        dut.rx.value = 1
        dut.rst.value = 1
        await ClockCycles(dut.clk, 4)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 4)
        HOST = Host(dut)
    cocotb.start_soon(HOST._monitor())
    HOST.start_log()
    return HOST


@cocotb.test()
async def ident_and_load(dut):
    """IDENT, the full load, LOAD_DIGEST equal to the host's digests, reads of the storage."""
    host = await host_for(dut)
    ident = await host.send(P.Ident())
    assert isinstance(ident, P.IdentReply) and ident.max_frame == MAX_FRAME
    await host.write(CASE["load"])
    digest = await host.send(P.LoadDigest())
    assert [digest.j, digest.bias, digest.table] == CASE["digest"], digest
    data = await host.send(P.Read(tuple(CASE["reads"])))
    assert list(data.words) == CASE["read_words"], data
    host.save_log("ident_and_load")


@cocotb.test()
async def run_samples(dut):
    """A RUN streaming every state: the spins equal the cycle model's bit for bit."""
    host = await host_for(dut)
    await host.write(CASE["reseed"])
    await host.send(P.Credit(None, 3))
    cycles, thin = CASE["run_cycles"], CASE["run_thin"]
    ack = await host.send(P.Run(cycles, thin, P.RUN_SAMPLES))
    assert ack.value == 0, ack
    await host.run_to_done(3)
    await host.send(P.Status())
    frames = [m for _, m in host.stream()]
    spins = np.concatenate([m.spins for m in frames if isinstance(m, P.Samples)])
    want = np.array(CASE["run_spins"], np.int8)
    assert np.array_equal(spins, want), "streamed spins differ from simulate_cycles"
    host.save_log("run_samples")


@cocotb.test()
async def run_stats(dut):
    """A RUN with on-board statistics only: one DONE, then the sums in STATS pages."""
    host = await host_for(dut)
    await host.write(CASE["reseed"])
    await host.send(P.Credit(host.last_stream_seq(), 1))
    cycles, thin = CASE["stats_cycles"], CASE["stats_thin"]
    before = len(host.stream())
    await host.send(P.Run(cycles, thin, P.RUN_STATS))
    await host.run_to_done(1)
    assert [type(m) for _, m in host.stream()[before:]] == [P.Done]
    values = []
    entries = len(CASE["stats"])
    per_page = (MAX_FRAME - P.MIN_FRAME - 6) // 8
    for first in range(0, entries, per_page):
        reply = await host.send(P.ReadStats(first, min(per_page, entries - first)))
        values += list(reply.values)
    assert values == CASE["stats"], values
    host.save_log("run_stats")


@cocotb.test()
async def backpressure_and_resend(dut):
    """No credit: the array pauses after one frame (STATUS PAUSED, the cycle index stands still).
    Window 1 and a slow host: every state arrives once, in order; a RESEND gets the same frame."""
    host = await host_for(dut)
    await host.write(CASE["reseed"])
    await host.send(P.Credit(host.last_stream_seq(), 0))
    before = len(host.stream())
    cycles = CASE["bp_cycles"]
    await host.send(P.Run(cycles, 1, P.RUN_SAMPLES))
    await host.clocks(3000)
    a = await host.send(P.Status())
    await host.clocks(2000)
    b = await host.send(P.Status())
    assert a.state == b.state == P.BoardState.PAUSED, (a, b)
    assert a.cycle == b.cycle == CASE["per_frame"], (a, b)
    assert len(host.stream()) == before
    await host.send(P.Credit(None, 1))
    await host.clocks(4000)
    (seq, first), *_ = host.stream()[before:]
    # Pretend the frame was lost: ask again, get the same seq and message.
    await host.send(P.Resend(seq))
    await host.clocks(4000)
    again = host.stream()[before + 1 :]
    assert again == [(seq, first)], again
    await host.run_to_done(1, wait=1500)
    host.save_log("backpressure_and_resend", status=[a.pack().hex(), b.pack().hex()])


@cocotb.test()
async def malformed_input(dut):
    """Each malformed frame gets an ERROR with the expected code; nothing changes the model; a
    WRITE while running gets BUSY."""
    host = await host_for(dut)
    before = await host.send(P.LoadDigest())
    for item in CASE["malformed"]:
        (reply,) = await host.raw(bytes.fromhex(item["wire"]), 1)
        assert isinstance(reply, P.Error) and reply.code == item["code"], (item["note"], reply)
    after = await host.send(P.LoadDigest())
    assert (after.j, after.bias, after.table) == (before.j, before.bias, before.table)
    host.save_log("malformed_input")
    # A WRITE while running (timing-dependent afterwards: not compared byte for byte).
    await host.send(P.Credit(host.last_stream_seq(), 2))
    await host.send(P.Run(0, 1, 0))
    busy = await host.send(P.Write(tuple(tuple(w) for w in CASE["load"][:2])))
    assert isinstance(busy, P.Error) and busy.code == P.ErrorCode.BUSY, busy
    stop = await host.send(P.Stop())
    assert isinstance(stop, P.Ack) and stop.value > 0
    await host.clocks(2000)
    assert isinstance(host.stream()[-1][1], P.Done)
    last = await host.send(P.LoadDigest())
    assert (last.j, last.bias, last.table) == (before.j, before.bias, before.table)
