"""firmware/engine.py (CommandEngine, with the frame receiver, the stream ring, the statistics and a
p-bit array: firmware/board.py BoardCore) against its twin BoardSession, byte by byte in Amaranth's
simulator. The same tests at the UART pins, in Icarus, are tests/test_firmware_rtl.py."""

import numpy as np
import pytest
from board_support import make_board
from firmware_support import (
    CoreHost,
    assert_same_board_output,
    decode_all,
    replay,
    samples_of,
    simulate,
    stats_of,
)
from hdl_support import lattice
from pbitsim.firmware.board import BoardCore

from pbitsim.board import protocol as P
from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import AddressMap, Region, Register, load_digests, load_writes
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.hardware import simulate_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

PUBLISHED = HardwareDesign.published()
# A narrow default-style design: xorshift64 (two seed words), a 32-entry table.
NARROW = HardwareDesign(
    fixed_point=FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=6, acc_bits=10, rng_bits=12)
)
MAX_FRAME = 64
SEED = 5


def model(design=PUBLISHED):
    """A 2 x 3 lattice: degrees 2 and 3 (so a slot >= degree exists in the address field)."""
    return lattice(2, 3, design.fixed_point, seed=2, beta=0.9)


def session_for(c, design, buffer_frames=8):
    """The twin: BoardSession with ArrayModel, the gateware's frame sizes."""
    return make_board(c, design, max_frame=MAX_FRAME, buffer_frames=buffer_frames)


def run_core(core, script, *, pace=1, tx_ready=1.0, seed=0):
    """Run ``script(host)`` (async) against ``core``; return the host (its frames and bytes)."""
    out = {}

    async def bench(ctx):
        host = CoreHost(ctx, core, core.engine.n, pace=pace, tx_ready=tx_ready, seed=seed)
        await script(host)
        out["host"] = host

    simulate(core, bench)
    return out["host"]


def command_script(c, design):
    """Host frames (wire bytes) covering every command and every malformed input that needs no
    run; each item is (wire, note)."""
    amap = AddressMap.for_design(c, design)
    mf = MAX_FRAME
    seq = iter(range(1000))

    def frame(msg, s=None):
        return P.encode_message(msg, next(seq) if s is None else s, mf)

    items = [(frame(P.Ident()), "ident"), (frame(P.Ident(2)), "version")]
    writes = load_writes(c, design, SEED)
    chunk = (mf - P.MIN_FRAME) // 8
    items += [
        (frame(P.Write(tuple(writes[k : k + chunk]))), "load") for k in range(0, len(writes), chunk)
    ]
    items.append((frame(P.LoadDigest()), "digest"))
    deg0 = int(c.degrees[0])
    reads = [amap.register(r) for r in Register][:9] + [amap.j(0, 0), amap.j(c.n - 1, deg0 - 1)]
    reads += [amap.bias(0), amap.bias(c.n - 1), amap.table(0), amap.table(amap.table_depth - 1)]
    items.append((frame(P.Read(tuple(reads[:13]))), "read"))
    items.append((frame(P.Read(tuple(reads[13:] + [amap.spin_word(0)]))), "read"))
    items.append((frame(P.Status()), "status"))
    raw = bytearray(P.frame_bytes(P.MsgType.STATUS, next(seq)))
    raw[-1] ^= 0x20  # the CRC no longer matches; the COBS encoding is valid
    items.append((b"\0" + P.cobs_encode(bytes(raw)) + b"\0", "bad crc"))
    damaged = bytearray(frame(P.Status()))
    damaged[4] ^= 0x20
    items.append((bytes(damaged), "a damaged byte"))
    items.append((frame(P.Status())[:-5] + b"\x00", "truncated"))
    items.append((b"\x13\x37garbage" + frame(P.Status()), "garbage between frames"))
    items.append((P.encode_frame(0x42, next(seq), b"", mf), "unknown type"))
    items.append((frame(P.Ack(1, 2)), "a board type"))
    items.append((P.encode_frame(P.MsgType.RUN, next(seq), b"\x01\x02", mf), "bad length"))
    items.append((P.encode_frame(P.MsgType.WRITE, next(seq), bytes(12), mf), "bad length"))
    items.append((P.encode_frame(P.MsgType.CREDIT, next(seq), bytes(3), mf), "bad length"))
    good = (amap.j(0, 0), 3)
    bad_addresses = [
        amap.address(Region.SPIN, 0) + (1 << amap.index_bits),  # region 6
        amap.bias(c.n),  # p-bit >= n
        amap.j(0, int(c.degrees[0])),  # slot >= degree (p-bit 0 is a corner)
        amap.register(Register.ID),  # read-only
        1 << amap.width,  # outside the port
    ]
    for bad in bad_addresses:
        items.append((frame(P.Write((good, (bad, 1)))), "bad address"))
    items.append((frame(P.Read((amap.seed(0, 0),))), "seed is not readable"))
    items.append((frame(P.Read(tuple([amap.table(0)] * 14))), "read too long"))
    items.append((frame(P.ReadStats(0, 6)), "stats"))
    items.append((P.encode_frame(P.MsgType.READ_STATS, next(seq), bytes(6), mf), "count 0"))
    items.append((frame(P.ReadStats(1 + c.n, 6)), "past the end"))
    items.append((frame(P.ReadStats(0, 7)), "too long for a frame"))
    thin0 = (5).to_bytes(8, "little") + bytes(4) + b"\x01"
    items.append((P.encode_frame(P.MsgType.RUN, next(seq), thin0, mf), "thin 0"))
    flags4 = (5).to_bytes(8, "little") + (1).to_bytes(4, "little") + b"\x04"
    items.append((P.encode_frame(P.MsgType.RUN, next(seq), flags4, mf), "bad flags"))
    items.append(
        (P.encode_frame(P.MsgType.CREDIT, next(seq), b"\x02\x00\x00\x01\x00", mf), "flags")
    )
    s = next(seq)
    items.append((frame(P.Status(), s), "status"))
    items.append((frame(P.Status(), s), "repeat"))
    items.append((frame(P.Stop()), "stop while idle"))
    items.append((frame(P.Reset()), "reset"))
    items.append((frame(P.LoadDigest()), "digest"))
    return items


def test_commands_and_errors_equal_session():
    """Every command and malformed input without a run: the same bytes out as BoardSession
    (tests/test_firmware_rtl.py repeats this at the UART pins, for the narrow design too)."""
    design = PUBLISHED
    c = model(design)
    items = command_script(c, design)
    session = session_for(c, design)
    expected = [session.receive(wire) for wire, _ in items]
    core = BoardCore(c, design, max_frame=MAX_FRAME)

    async def script(host):
        done = 0
        for (wire, note), want in zip(items, expected):
            await host.send_raw(wire)
            done += len(decode_all(want, MAX_FRAME))
            await host.wait_replies(done)
            await host.tick(20)
            assert len(host.frames) == done, f"after {note}: {len(host.frames)} != {done} frames"

    host = run_core(core, script)
    want = b"".join(expected)
    assert bytes(host.out) == want
    frames = decode_all(want, MAX_FRAME)
    digests = [m for _, m in frames if isinstance(m, P.Digest)]
    host_digest = load_digests(c, design)
    assert (digests[0].j, digests[0].bias, digests[0].table) == (
        host_digest[Region.J],
        host_digest[Region.BIAS],
        host_digest[Region.TABLE],
    )
    # Nothing that was refused changed the model (the last digest comes after every error).
    assert (digests[-1].j, digests[-1].bias, digests[-1].table) == (
        digests[0].j,
        digests[0].bias,
        digests[0].table,
    )
    errors = [m.code for _, m in frames if isinstance(m, P.Error)]
    for code in (
        P.ErrorCode.VERSION,
        P.ErrorCode.BAD_CRC,
        P.ErrorCode.BAD_FRAME,
        P.ErrorCode.UNKNOWN_TYPE,
        P.ErrorCode.BAD_LENGTH,
        P.ErrorCode.BAD_ADDRESS,
        P.ErrorCode.BAD_ARGUMENT,
    ):
        assert code in errors, code


async def acknowledge_until_done(host, window, every=30, limit=400):
    """Credit every stream frame received, ``every`` clocks, until DONE."""
    for _ in range(limit):
        await host.tick(every)
        stream = host.stream()
        await host.command(P.Credit(stream[-1][0] if stream else None, window))
        if stream and isinstance(stream[-1][1], P.Done):
            return
    raise AssertionError("no DONE")


@pytest.mark.parametrize("lanes", [None, 2], ids=["PbitArray", "PbitEngine"])
def test_run_equals_model_and_session(lanes):
    """RUN with samples and statistics: spins bit for bit, sums exact, the stream and the replies
    the same messages as BoardSession's."""
    design, cycles, thin = PUBLISHED, 110, 2
    c = model(design)
    core = BoardCore(c, design, lanes=lanes, max_frame=MAX_FRAME, buffer_frames=3)
    entries = 1 + c.n + c.nnz // 2

    async def script(host):
        await host.write(load_writes(c, design, SEED))
        await host.command(P.Credit(None, 2))
        assert await host.command(P.Run(cycles, thin, P.RUN_SAMPLES | P.RUN_STATS)) == P.Ack(
            host.seq - 1, 0
        )
        await acknowledge_until_done(host, 2)
        for first in range(0, entries, 6):
            await host.command(P.ReadStats(first, min(6, entries - first)))
        await host.command(P.Status())

    host = run_core(core, script)
    want = simulate_cycles(c, design, SEED, cycles)[thin - 1 :: thin]
    spins, firsts = samples_of(host.stream())
    np.testing.assert_array_equal(spins, want)
    per = core.engine.per_frame
    assert firsts == [thin * (1 + k * per) for k in range(len(firsts))]
    values = [v for _, m in host.replies() if isinstance(m, P.Stats) for v in m.values]
    assert values == stats_of(want, c.indptr, c.indices)
    assert host.replies()[-1][1] == P.StatusReply(host.seq - 1, 0, cycles, 2, 0, len(want))

    # The twin, driven with the same host messages: the same replies, the same stream.
    twin = replay(session_for(c, design, buffer_frames=3), host.sent, c.n)
    assert_same_board_output(host.frames, decode_all(twin, MAX_FRAME, c.n), exact_seqs=False)


def test_backpressure_pauses_and_resend():
    """Window 1 and a slow host: the array pauses (STATUS PAUSED, the cycle index stands still),
    no state is lost or repeated; a frame lost on the link comes again with its seq and bytes."""
    design, cycles = NARROW, 110
    c = model(design)
    core = BoardCore(c, design, max_frame=MAX_FRAME, buffer_frames=4)
    per = core.engine.per_frame
    seen = {}

    async def script(host):
        await host.write(load_writes(c, design, SEED))
        await host.command(P.Run(cycles, 1, P.RUN_SAMPLES))
        await host.tick(500)  # window 0: one frame fills, then the array waits
        a = await host.command(P.Status())
        await host.tick(200)
        b = await host.command(P.Status())
        seen["paused"] = (a, b)
        assert not host.stream()
        # Window 3: three frames come; pretend the second was lost and ask for it again.
        await host.command(P.Credit(None, 3))
        await host.wait_stream(3)
        first3 = host.stream()[:3]
        assert len(first3) == 3
        raw_before = bytes(host.out)
        await host.command(P.Resend(first3[1][0]))
        await host.wait_stream(5)
        seen["resent"] = (first3, host.stream()[3:5], raw_before)
        await acknowledge_until_done(host, 1, every=50)

    host = run_core(core, script)
    a, b = seen["paused"]
    assert a.state == b.state == P.BoardState.PAUSED and a.cycle == b.cycle == per
    first3, again, _ = seen["resent"]
    assert [s for s, _ in again] == [s for s, _ in first3[1:]]
    assert [m for _, m in again] == [m for _, m in first3[1:]]
    stream = [(s, m) for s, m in host.stream()]
    unique = {s: m for s, m in stream}  # a resent frame keeps its seq
    frames = [unique[s] for s in sorted(unique)]
    spins, firsts = samples_of([(0, m) for m in frames])
    np.testing.assert_array_equal(spins, simulate_cycles(c, design, SEED, cycles))
    assert firsts == [1 + k * per for k in range(len(firsts))]
    assert frames[-1] == P.Done(cycles, cycles)


def test_stop_and_reset():
    """STOP ends an endless run at a cycle boundary: ACK, the partial frame, DONE; the next RUN
    continues the chain. RESET restarts it, clears credit and keeps the model."""
    design = PUBLISHED
    c = model(design)
    core = BoardCore(c, design, lanes=2, max_frame=MAX_FRAME)
    got = {}

    async def script(host):
        await host.write(load_writes(c, design, SEED))
        digest = await host.command(P.LoadDigest())
        await host.command(P.Credit(None, 8))
        await host.command(P.Run(0, 3, P.RUN_SAMPLES))
        await host.tick(400)
        got["stop"] = await host.command(P.Stop())
        await host.tick(800)
        got["run2"] = await host.command(P.Run(30, 3, P.RUN_SAMPLES))
        await acknowledge_until_done(host, 8)
        await host.command(P.Run(0, 1, 0))
        await host.tick(100)
        got["reset"] = await host.command(P.Reset())
        got["status"] = await host.command(P.Status())
        got["digest"] = (digest, await host.command(P.LoadDigest()))

    host = run_core(core, script)
    stop = got["stop"].value
    assert isinstance(got["stop"], P.Ack) and stop > 0 and got["run2"].value == stop
    spins, _ = samples_of(host.stream())
    full = simulate_cycles(c, design, SEED, stop + 30)
    want = np.concatenate([full[2:stop:3], full[stop + 2 :: 3]])
    np.testing.assert_array_equal(spins, want)
    dones = [m for _, m in host.stream() if isinstance(m, P.Done)]
    assert dones[:2] == [P.Done(stop, stop // 3), P.Done(stop + 30, 10)]
    assert got["reset"].value == 0
    status = got["status"]
    assert (status.state, status.cycle, status.window, status.unacked) == (0, 0, 0, 0)
    before, after = got["digest"]
    assert (before.j, before.bias, before.table) == (after.j, after.bias, after.table)


def test_runs_without_credit_fill_the_ring_then_run_is_refused():
    """Window 0: each STOPped run leaves its frames queued. The ring holds buffer_frames + 2;
    once the queued frames could leave a new run no room, RUN gets BUSY (BoardSession would
    queue without bound). Credit then sends every frame, in order, none lost."""
    design = PUBLISHED
    c = model(design)
    core = BoardCore(c, design, max_frame=MAX_FRAME, buffer_frames=3)
    got = {}

    async def script(host):
        replies = []
        for _ in range(4):
            replies.append(await host.command(P.Run(0, 1, P.RUN_SAMPLES)))
            await host.tick(30)
            replies.append(await host.command(P.Stop()))
        got["replies"] = replies
        got["status"] = await host.command(P.Status())
        await host.command(P.Credit(None, 3))
        await host.wait_stream(3)
        await host.command(P.Credit(host.stream()[-1][0], 3))
        await host.wait_stream(4)
        got["again"] = await host.command(P.Run(5, 1, P.RUN_SAMPLES))
        await host.wait_stream(6)

    host = run_core(core, script)
    kinds = [type(m).__name__ for m in got["replies"]]
    # Run 1 fills a partial frame (+ DONE); runs 2 and 3 are blocked at once and leave a DONE
    # each: 4 queued frames > buffer_frames 3, so run 4 is refused.
    assert kinds == ["Ack"] * 6 + ["Error", "Ack"], kinds
    assert got["replies"][6].code == P.ErrorCode.BUSY
    assert got["status"].state == P.BoardState.IDLE and got["status"].unacked == 0
    assert isinstance(got["again"], P.Ack)
    stream = [m for _, m in host.stream()]
    first_stop = got["replies"][1].value
    assert [type(m).__name__ for m in stream] == [
        "Samples",
        "Done",
        "Done",
        "Done",
        "Samples",
        "Done",
    ]
    assert [m.vectors for m in stream if isinstance(m, P.Done)] == [first_stop, 0, 0, 5]


def test_init():
    c = model()
    core = BoardCore(c, PUBLISHED, max_frame=64, buffer_frames=4)
    assert core.max_frame == 64 and core.engine.per_frame == P.samples_per_frame(c.n, 64)
    assert core.engine.ident_payload()[-4:] == (64).to_bytes(2, "little") + (4).to_bytes(
        2, "little"
    )


def test_init_wrong():
    c = model()
    with pytest.raises(ValueError, match="max_frame"):
        BoardCore(c, PUBLISHED, max_frame=50)
    with pytest.raises(ValueError, match="buffer_frames"):
        BoardCore(c, PUBLISHED, buffer_frames=0)
    with pytest.raises(ValueError, match="banks"):
        BoardCore(c, PUBLISHED, stat_banks=3)
