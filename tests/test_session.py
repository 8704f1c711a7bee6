"""pbitsim/board/session.py: the board's command engine, driven frame by frame, with the cycle
model (pbitsim.sim.array.ArrayModel) injected as its p-bit array."""

import numpy as np
import pytest
from board_support import MiniHost, make_board

from pbitsim import models
from pbitsim.board import protocol as P
from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import (
    AddressMap,
    Register,
    decode_design,
    load_digests,
    load_writes,
    weight_writes,
)
from pbitsim.couplings import Couplings
from pbitsim.sim.hardware import HardwareMachine, simulate_cycles

DEFAULT = HardwareDesign.default()
PUBLISHED = HardwareDesign.published()


def loaded(couplings, design=DEFAULT, seed=3, **kw):
    board = make_board(couplings, design, **kw)
    host = MiniHost(board, couplings.n)
    host.write(load_writes(couplings, design, seed))
    return board, host


def lattice(beta=1.0):
    return models.lattice_2d(4, 4, J=0.5, h=0.1, beta=beta)


@pytest.mark.parametrize("design", [DEFAULT, PUBLISHED], ids=["default", "published"])
@pytest.mark.parametrize("thin", [1, 3])
def test_run_streams_the_cycle_models_states(design, thin):
    c = lattice(beta=0.7)
    board, host = loaded(c, design, max_frame=48)  # small frames: many of them
    cycles = 200
    assert host.send(P.Run(cycles, thin, P.RUN_SAMPLES | P.RUN_STATS)) == P.Ack(host.seq - 1, 0)
    host.step_all(window=3)
    spins, firsts = host.samples()
    want = simulate_cycles(c, design, 3, cycles)[thin - 1 :: thin]
    np.testing.assert_array_equal(spins, want)
    per = board.per_frame
    assert firsts == [thin * (1 + k * per) for k in range(len(firsts))]
    seq, done = host.stream[-1]
    assert done == P.Done(cycles, len(want))
    # On-board statistics over exactly the streamed states.
    count, sums = board.stats_vector()[0], board.stats_vector()[1 : 1 + c.n]
    assert count == len(want)
    np.testing.assert_array_equal(sums, want.sum(axis=0))
    rows = np.repeat(np.arange(c.n), np.diff(c.indptr))
    upper = rows < c.indices
    pairs = (want[:, rows[upper]].astype(int) * want[:, c.indices[upper]]).sum(axis=0)
    np.testing.assert_array_equal(board.stats_vector()[1 + c.n :], pairs)
    # READ_STATS pages through the same vector.
    vec = board.stats_vector()
    got = []
    for first in range(0, len(vec), 4):
        got += host.send(P.ReadStats(first, min(4, len(vec) - first))).values
    assert got == vec.tolist()


def test_ident_describes_the_array():
    c = lattice()
    board, host = loaded(c, PUBLISHED)
    reply = host.send(P.Ident(P.PROTOCOL_VERSION))
    assert reply.magic == P.MAGIC and reply.topology == int(c.topology_fingerprint[:16], 16)
    assert decode_design(reply.format_word, reply.design_word) == PUBLISHED
    assert reply.max_frame == board.max_frame and reply.buffer_frames == board.buffer_frames
    err = host.send(P.Ident(P.PROTOCOL_VERSION + 1))
    assert err == P.Error(P.ErrorCode.VERSION, host.seq - 1, P.PROTOCOL_VERSION)


def test_load_digest_is_the_hosts():
    c = lattice()
    board, host = loaded(c)
    want = load_digests(c, DEFAULT)
    from pbitsim.board.regmap import Region

    got = host.send(P.LoadDigest())
    assert (got.j, got.bias, got.table) == (want[Region.J], want[Region.BIAS], want[Region.TABLE])
    amap = AddressMap.for_design(c, DEFAULT)
    host.send(P.Write(((amap.bias(2), 5),)))
    got2 = host.send(P.LoadDigest())
    assert got2.j == got.j and got2.table == got.table and got2.bias != got.bias


def test_repeated_seq_is_answered_not_executed():
    c = lattice()
    board, host = loaded(c)
    seq = host.seq
    first = host.send(P.Run(0, 1, 0), seq=seq)
    again = host.send(P.Run(0, 1, 0), seq=seq)
    assert first == again == P.Ack(seq, 0)
    board.step(10)
    # A second RUN with a new seq is refused: one run was started, not two.
    assert host.send(P.Run(0, 1, 0)).code == P.ErrorCode.BUSY
    stop = host.send(P.Stop())
    assert stop.value == 10 and board.state is P.BoardState.IDLE


def test_write_while_running_is_refused_and_changes_nothing():
    c = lattice()
    board, host = loaded(c)
    before = host.send(P.LoadDigest())
    host.send(P.Run(0, 1, 0))
    amap = AddressMap.for_design(c, DEFAULT)
    err = host.send(P.Write(((amap.j(0, 0), 7),)))
    assert err.code == P.ErrorCode.BUSY
    host.send(P.Stop())
    after = host.send(P.LoadDigest())
    assert (after.j, after.bias, after.table) == (before.j, before.bias, before.table)


def test_bad_address_writes_nothing():
    c = lattice()
    board, host = loaded(c)
    amap = AddressMap.for_design(c, DEFAULT)
    before = host.send(P.LoadDigest())
    bad = amap.bias(c.n)
    err = host.send(P.Write(((amap.j(0, 0), 7), (bad, 1))))
    assert err == P.Error(P.ErrorCode.BAD_ADDRESS, host.seq - 1, bad)
    after = host.send(P.LoadDigest())
    assert after.j == before.j
    assert host.send(P.Read((amap.seed(0, 0),))).code == P.ErrorCode.BAD_ADDRESS
    assert host.send(P.Read((amap.register(Register.ID),))).words == (0x50424954,)


def test_credit_window_pauses_the_array_and_nothing_is_lost():
    c = lattice()
    board, host = loaded(c, max_frame=40)
    host.send(P.Run(300, 1, P.RUN_SAMPLES))
    host.take(board.step(10_000))  # window 0: one frame fills, then the array waits
    assert board.state is P.BoardState.PAUSED and not host.stream
    paused_at = board.machine.cycle
    assert paused_at == board.per_frame
    host.take(board.step(10_000))
    assert board.machine.cycle == paused_at  # a paused cycle does not exist
    host.send(P.Credit(None, 2))
    assert len(host.stream) == 1 and board.unacked == 1
    host.take(board.step(10_000))
    assert board.unacked == 2 and board.state is P.BoardState.PAUSED
    host.step_all(window=2)
    spins, _ = host.samples()
    np.testing.assert_array_equal(spins, simulate_cycles(c, DEFAULT, 3, 300))


def test_a_lost_samples_frame_is_resent():
    c = lattice()
    board, host = loaded(c, max_frame=40)
    host.send(P.Run(120, 1, P.RUN_SAMPLES))
    host.send(P.Credit(None, 4))
    wire = board.step(10_000)
    frames = [f for f in P.Decoder(board.max_frame).feed(wire)]
    assert len(frames) == 4
    # Frame 2 is lost on the link: the host sees frames 1, 3, 4.
    for f in (frames[0], frames[2], frames[3]):
        host.take(P.encode_frame(f.type, f.seq, f.payload, board.max_frame))
    expected_first = host.stream[0][1].first_cycle + host.stream[0][1].count
    assert host.stream[1][1].first_cycle != expected_first  # the gap the host detects
    host.stream = host.stream[:1]  # keep what is in order, ask for the rest again
    host.send(P.Resend(P.seq_next(host.stream[0][0])))
    assert [s for s, _ in host.stream] == [f.seq for f in frames]
    host.step_all(window=4)
    spins, _ = host.samples()
    np.testing.assert_array_equal(spins, simulate_cycles(c, DEFAULT, 3, 120))


def test_stop_drains_the_partial_frame():
    c = lattice()
    board, host = loaded(c)
    host.send(P.Credit(None, 8))
    host.send(P.Run(0, 2, P.RUN_SAMPLES))
    host.take(board.step(31))
    stop = host.send(P.Stop())
    assert stop.value == 31
    spins, firsts = host.samples()
    np.testing.assert_array_equal(spins, simulate_cycles(c, DEFAULT, 3, 31)[1::2])
    assert host.stream[-1][1] == P.Done(31, 15)
    # The chain continues with the next RUN (no restart): cycle 31 onward, recorded from 33.
    assert host.send(P.Run(9, 2, P.RUN_SAMPLES)).value == 31
    host.step_all(window=8)
    spins, _ = host.samples()
    full = simulate_cycles(c, DEFAULT, 3, 40)
    np.testing.assert_array_equal(spins[15:], full[[32, 34, 36, 38]])


def test_reset_restarts_the_chain():
    c = lattice()
    board, host = loaded(c, PUBLISHED)
    host.send(P.Run(50, 1, 0))
    board.step(25)
    assert host.send(P.Reset()) == P.Ack(host.seq - 1, 0)
    assert board.state is P.BoardState.IDLE and board.machine.cycle == 0 and board.window == 0
    status = host.send(P.Status())
    assert status.cycle == 0 and status.unacked == 0


def test_new_weights_continue_the_chain():
    """weight_writes between runs == the cycle model with new codes at that cycle."""
    c1 = lattice(beta=0.8)
    J, h = c1.to_dense()
    scale = np.random.default_rng(0).uniform(0.5, 1.5, J.shape)
    c2 = Couplings.from_dense(J * (scale + scale.T) / 2, -h, c1.beta, coloring=c1.coloring)
    assert c2.topology_fingerprint == c1.topology_fingerprint
    board, host = loaded(c1)
    host.send(P.Run(40, 1, P.RUN_SAMPLES))
    host.step_all()
    host.write(weight_writes(c1, c2, DEFAULT))
    host.send(P.Run(40, 1, P.RUN_SAMPLES))
    host.step_all()
    spins, _ = host.samples()
    from pbitsim.rng import derive_seeds

    m = HardwareMachine(c1, DEFAULT, derive_seeds(3, c1.n, DEFAULT.rng)[None])
    first = m.run(40)[0]
    m.set_quantized(c2.quantized(DEFAULT.fixed_point))
    np.testing.assert_array_equal(spins, np.concatenate([first, m.run(40)[0]]))


def test_frame_errors_are_answered():
    c = lattice()
    board, host = loaded(c)
    wire = bytearray(P.encode_message(P.Status(), 77))
    wire[3] ^= 0x10
    ((frame, msg),) = host.send_raw(bytes(wire))
    assert msg.code in (P.ErrorCode.BAD_CRC, P.ErrorCode.BAD_FRAME)
    ((_, msg),) = host.send_raw(P.encode_frame(0x42, 78, b""))
    assert msg == P.Error(P.ErrorCode.UNKNOWN_TYPE, 78, 0x42)
    ((_, msg),) = host.send_raw(P.encode_frame(P.MsgType.RUN, 79, b"\x01\x02"))
    assert msg == P.Error(P.ErrorCode.BAD_LENGTH, 79, 2)
    run_thin0 = (5).to_bytes(8, "little") + (0).to_bytes(4, "little") + b"\x00"
    ((_, msg),) = host.send_raw(P.encode_frame(P.MsgType.RUN, 80, run_thin0))
    assert msg.code == P.ErrorCode.BAD_ARGUMENT and board.state is P.BoardState.IDLE
    # A board frame sent to the board is not a command.
    ((_, msg),) = host.send_raw(P.encode_message(P.Ack(1, 2), 81))
    assert msg.code == P.ErrorCode.UNKNOWN_TYPE
    # Garbage between frames costs only itself.
    got = host.send_raw(b"\x13\x37garbage" + P.encode_message(P.Status(), 82))
    assert isinstance(got[-1][1], P.StatusReply) and got[-1][1].ack_seq == 82


def test_board_frames_sent_to_the_board_are_unknown_types():
    """Was: a SAMPLES frame crashed receive() (decoding it needs n); now every board type is
    UNKNOWN_TYPE, whatever its payload."""
    c = lattice()
    board, host = loaded(c)
    for t, payload in [(P.MsgType.SAMPLES, b"\x00" * 12), (P.MsgType.ACK, b"\x01")]:
        ((_, msg),) = host.send_raw(P.encode_frame(t, 90, payload))
        assert msg == P.Error(P.ErrorCode.UNKNOWN_TYPE, 90, t)


def test_stop_reply_comes_first_in_seq_order():
    c = lattice()
    board, host = loaded(c)
    host.send(P.Credit(None, 8))
    host.send(P.Run(0, 1, P.RUN_SAMPLES))
    board.step(5)
    wire = board.receive(P.encode_message(P.Stop(), host.seq))
    frames = P.Decoder().feed(wire)
    assert [f.type for f in frames] == [P.MsgType.ACK, P.MsgType.SAMPLES, P.MsgType.DONE]
    assert [P.seq_diff(f.seq, frames[0].seq) for f in frames] == [0, 1, 2]


def test_run_is_refused_while_old_frames_fill_the_buffer():
    c = lattice()
    board, host = loaded(c, max_frame=32, buffer_frames=2)
    host.send(P.Credit(None, 2))
    host.send(P.Run(200, 1, P.RUN_SAMPLES))
    host.take(board.step(10_000))  # 2 frames out, unacknowledged; the array waits
    host.send(P.Stop())  # the partial frame and DONE queue behind them
    assert board.unacked + len(board._queued) > board.buffer_frames
    assert host.send(P.Run(10, 1, 0)).code == P.ErrorCode.BUSY
    host.step_all(window=2)  # acknowledged: room again
    assert isinstance(host.send(P.Run(10, 1, 0)), P.Ack)
