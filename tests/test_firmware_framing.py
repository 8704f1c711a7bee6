"""firmware/framing.py: FrameReceiver and FrameTransmitter against pbitsim.board.protocol (their
twin: Decoder and encode_frame) on random frames, garbage and corruption, Amaranth simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import memory
from firmware_support import simulate
from pbitsim.firmware.framing import EVENT_FRAME, FrameReceiver, FrameTransmitter

from pbitsim.board import protocol as P

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def random_frame(rng, max_frame: int) -> tuple[int, int, bytes]:
    """(type, seq, payload): zero-rich, zero-free (long COBS blocks) or random payloads."""
    size = int(rng.integers(0, max_frame - P.MIN_FRAME + 1))
    kind = rng.integers(0, 3)
    if kind == 0:
        payload = bytes(rng.choice([0, 0, 0, 7], size).tolist())
    elif kind == 1:
        payload = bytes(rng.integers(1, 256, size).tolist())
    else:
        payload = bytes(rng.integers(0, 256, size).tolist())
    return int(rng.integers(0, 256)), int(rng.integers(0, 1 << 16)), payload


def reference(stream: bytes, max_frame: int):
    """What protocol.Decoder makes of ``stream``: ('frame', type, seq, payload) / ('error', code,
    seq) in order (an error's unknown seq is 0, as a board reports it)."""
    out = []
    for item in P.Decoder(max_frame).feed(stream):
        if isinstance(item, P.Frame):
            out.append(("frame", item.type, item.seq, item.payload))
        else:
            out.append(("error", int(item.code), item.seq or 0))
    return out


def receive(stream: bytes, max_frame: int, gap_every: int = 0):
    """Feed ``stream`` to a FrameReceiver (one byte per clock, or a gap every ``gap_every``);
    read each frame's payload out of its buffer before releasing it."""
    dut = FrameReceiver(max_frame)
    got = []

    async def bench(ctx):
        k = 0
        idle = 0
        for _ in range(20 * len(stream) + 100):  # progress is at most a few clocks per byte
            if not (k < len(stream) or ctx.get(dut.event.valid)):
                break
            if ctx.get(dut.event.valid):
                ctx.set(dut.i.valid, 0)
                kind = ctx.get(dut.event.payload.kind)
                seq = ctx.get(dut.event.payload.seq)
                if kind == EVENT_FRAME:
                    length = ctx.get(dut.event.payload.length)
                    payload = []
                    for a in range(3, length - 4):
                        ctx.set(dut.rd_addr, a)
                        await ctx.tick()
                        payload.append(ctx.get(dut.rd_data))
                    got.append(("frame", ctx.get(dut.event.payload.type), seq, bytes(payload)))
                else:
                    got.append(("error", ctx.get(dut.event.payload.code), seq))
                ctx.set(dut.event.ready, 1)
                await ctx.tick()
                ctx.set(dut.event.ready, 0)
                continue
            if gap_every and idle < 1 and k % gap_every == 0:
                idle += 1
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                continue
            idle = 0
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, stream[k])
            taken = ctx.get(dut.i.ready)
            await ctx.tick()
            k += taken
        else:
            raise AssertionError(f"the receiver stalled at byte {k} of {len(stream)}")
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            await ctx.tick()
            assert not ctx.get(dut.event.valid)

    simulate(dut, bench)
    return got


def test_random_frames_back_to_back():
    rng = np.random.default_rng(1)
    max_frame = 300  # > 254 + 7: full 0xFF blocks occur
    frames = [random_frame(rng, max_frame) for _ in range(12)]
    frames.append((0x42, 0x1234, bytes(range(1, 255)) * 1))  # exactly one full block
    stream = b"".join(P.encode_frame(t, s, p, max_frame) for t, s, p in frames)
    want = reference(stream, max_frame)
    assert [w[0] for w in want] == ["frame"] * len(frames)
    assert receive(stream, max_frame, gap_every=7) == want


def test_garbage_and_corruption():
    """Every kind of damage, each followed by a good frame that must still arrive."""
    max_frame = 64
    limit = P.max_encoded_length(max_frame)
    good = P.encode_frame(P.MsgType.STATUS, 9, b"", max_frame)
    bad_crc = bytearray(P.encode_frame(P.MsgType.READ, 10, b"\x01\x02\x03\x04", max_frame))
    bad_crc[-3] ^= 0x40
    truncated = P.encode_frame(P.MsgType.RUN, 11, bytes(13), max_frame)[:-6] + b"\x00"
    zero_rich = P.cobs_encode(P.frame_bytes(0x05, 12, bytes(max_frame)))  # decodes too long
    pieces = [
        b"\x13\x37garbage\x00",  # garbage between frames: a bad COBS code or CRC
        b"\x05\x01\x02\x00",  # COBS code past the end
        b"\x02\x01\x00",  # 1 byte: shorter than a header
        b"\x05\x01\x02\x03\x04\x00",  # 4 bytes: seq readable, still too short
        bytes(bad_crc),
        truncated,
        b"\x00" + zero_rich + b"\x00",  # decoded longer than max_frame
        b"\x01" * (limit + 20) + b"\x00",  # no delimiter for too long: reported once
        b"\x00\x00\x00",  # empty runs are ignored
    ]
    stream = b"".join(p + good for p in pieces)
    want = reference(stream, max_frame)
    codes = [w[1] for w in want if w[0] == "error"]
    assert {int(c) for c in P.ErrorCode if c in codes} >= {
        P.ErrorCode.BAD_CRC,
        P.ErrorCode.BAD_FRAME,
        P.ErrorCode.TOO_LONG,
    }
    assert sum(w[0] == "frame" for w in want) == len(pieces)
    assert receive(stream, max_frame) == want


def test_fuzzed_stream():
    """Random byte flips, drops and insertions in a stream of random frames."""
    rng = np.random.default_rng(7)
    max_frame = 64
    frames = [random_frame(rng, max_frame) for _ in range(30)]
    stream = bytearray(b"".join(P.encode_frame(t, s, p, max_frame) for t, s, p in frames))
    for _ in range(25):
        k = int(rng.integers(0, len(stream)))
        what = rng.integers(0, 3)
        if what == 0:
            stream[k] ^= int(rng.integers(1, 256))
        elif what == 1:
            del stream[k]
        else:
            stream.insert(k, int(rng.integers(0, 256)))
    want = reference(bytes(stream), max_frame)
    assert len({w[0] for w in want}) == 2  # frames and errors both occur
    assert receive(bytes(stream), max_frame) == want


class FrameMemory:
    """A testbench around FrameTransmitter: frames in a memory, reads granted at random."""

    def __init__(self, frames, max_frame, grant_p, seed):
        self.frames = frames
        self.max_frame = max_frame
        self.grant_p = grant_p
        self.rng = np.random.default_rng(seed)

    def run(self, ready_p: float = 1.0) -> bytes:
        mf = self.max_frame
        tx = FrameTransmitter(mf)
        image = []
        for t, _, payload in self.frames:  # bytes 1-2 (the seq) are not read: put garbage there
            raw = bytes([t, 0xEE, 0xEE]) + payload
            image += list(raw) + [0] * (mf - len(raw))
        mem = memory.Memory(shape=8, depth=len(image), init=image)
        m = Module()
        m.submodules.tx = tx
        m.submodules.mem = mem
        rd = mem.read_port()
        base = Signal(range(len(image)))
        grant = Signal()
        m.d.comb += [rd.addr.eq(base + tx.rd_addr), tx.rd_data.eq(rd.data), tx.rd_grant.eq(grant)]
        out = bytearray()
        frames, rng = self.frames, self.rng

        async def bench(ctx):
            for k, (_, seq, payload) in enumerate(frames):
                ctx.set(base, k * mf)
                ctx.set(tx.length, 3 + len(payload))
                ctx.set(tx.seq, seq)
                ctx.set(tx.start, 1)
                await ctx.tick()
                ctx.set(tx.start, 0)
                for _ in range(100 * mf):
                    if not ctx.get(tx.busy):
                        break
                    ctx.set(grant, bool(rng.random() < self.grant_p))
                    ready = bool(rng.random() < ready_p)
                    ctx.set(tx.o.ready, ready)
                    if ready and ctx.get(tx.o.valid):
                        out.append(ctx.get(tx.o.payload))
                    await ctx.tick()
                else:
                    raise AssertionError(f"frame {k} not sent within {100 * mf} clocks")

        simulate(m, bench)
        return bytes(out)


@pytest.mark.parametrize("grant_p, ready_p", [(1.0, 1.0), (0.4, 0.5)])
def test_transmitter_equals_encode_frame(grant_p, ready_p):
    rng = np.random.default_rng(5)
    max_frame = 300
    frames = [random_frame(rng, max_frame) for _ in range(6)]
    frames += [(0x90, 0xFFFF, bytes(range(1, 255)) + b"\x01" * 30), (0x82, 0, bytes(10))]
    frames += [(0x81, 0x0100, b"\x00")]  # a zero right before the CRC
    got = FrameMemory(frames, max_frame, grant_p, seed=2).run(ready_p)
    want = b"".join(P.encode_frame(t, s, p, max_frame) for t, s, p in frames)
    assert got == want


def test_transmitter_to_receiver_round_trip():
    """Whatever the transmitter sends, the receiver gives back (CRC zero bytes included)."""
    rng = np.random.default_rng(11)
    max_frame = 64
    frames = [random_frame(rng, max_frame) for _ in range(10)]
    wire = FrameMemory(frames, max_frame, 0.7, seed=3).run()
    assert receive(wire, max_frame) == [("frame", t, s, p) for t, s, p in frames]


def test_init_wrong():
    with pytest.raises(ValueError, match="max_frame"):
        FrameReceiver(32)
    with pytest.raises(ValueError, match="max_frame"):
        FrameTransmitter(1 << 16)
