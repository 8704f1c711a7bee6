"""The board wire protocol (pbitsim.board.protocol) against docs/protocol.md."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pbitsim.board import protocol
from pbitsim.board.protocol import (
    COMMANDS,
    DEFAULT_MAX_FRAME,
    FLOW,
    MESSAGES,
    MIN_FRAME,
    RUN_SAMPLES,
    RUN_STATS,
    STREAM,
    Ack,
    BadCrc,
    BadFrame,
    BoardState,
    Credit,
    Data,
    Decoder,
    Digest,
    Done,
    Error,
    ErrorCode,
    Frame,
    FrameTooLong,
    Ident,
    IdentReply,
    LoadDigest,
    MsgType,
    ProtocolError,
    Read,
    ReadStats,
    Resend,
    Reset,
    Run,
    Samples,
    Stats,
    Status,
    StatusReply,
    Stop,
    Write,
    cobs_decode,
    cobs_encode,
    decode_message,
    encode_frame,
    encode_message,
    frame_bytes,
    max_encoded_length,
    parse_frame,
    samples_per_frame,
    seq_diff,
    seq_next,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
FAST = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------------------------------
# Strategies: one per message class, each drawing (message, n) where n is only set for SAMPLES.

u8, u16, u32, u64 = (st.integers(0, (1 << b) - 1) for b in (8, 16, 32, 64))
i64 = st.integers(-(1 << 63), (1 << 63) - 1)


def _items(elements, min_size=0):
    return st.lists(elements, min_size=min_size, max_size=8).map(tuple)


@st.composite
def _samples(draw):
    n = draw(st.integers(1, 40))
    count = draw(st.integers(1, 6))
    spins = draw(arrays(np.int8, (count, n), elements=st.sampled_from([-1, 1])))
    return Samples(draw(u64), spins), n


STRATEGIES = {
    Ident: st.builds(Ident, u16),
    Write: st.builds(Write, _items(st.tuples(u32, u32), 1)),
    Read: st.builds(Read, _items(u32, 1)),
    LoadDigest: st.just(LoadDigest()),
    Run: st.builds(Run, u64, st.integers(1, (1 << 32) - 1), st.integers(0, 3)),
    Stop: st.just(Stop()),
    Reset: st.just(Reset()),
    Status: st.just(Status()),
    Credit: st.builds(Credit, st.none() | u16, u16),
    Resend: st.builds(Resend, u16),
    ReadStats: st.builds(ReadStats, u32, st.integers(1, 0xFFFF)),
    IdentReply: st.builds(IdentReply, u16, u32, u16, u32, u32, u32, u32, u32, u32, u64, u16, u16),
    Ack: st.builds(Ack, u16, u64),
    Data: st.builds(Data, u16, _items(u32)),
    Digest: st.builds(Digest, u16, u32, u32, u32),
    StatusReply: st.builds(StatusReply, u16, st.sampled_from(BoardState), u64, u16, u16, u64),
    Stats: st.builds(Stats, u16, u32, _items(i64)),
    Samples: _samples(),
    Done: st.builds(Done, u64, u64),
    Error: st.builds(Error, u8, u16, u32),
}
any_message = st.one_of(
    [s if cls is Samples else s.map(lambda m: (m, None)) for cls, s in STRATEGIES.items()]
)
frames_in = st.lists(st.tuples(any_message, u16), min_size=1, max_size=6)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def _feed_all(decoder: Decoder, chunks: list[bytes]) -> list:
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
        assert decoder.buffered <= max_encoded_length(decoder.max_frame)
    return out


def _is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def test_strategies_cover_every_message_type():
    assert set(STRATEGIES) == set(MESSAGES.values())
    assert set(MESSAGES) == set(MsgType)
    assert all(cls.TYPE == t for t, cls in MESSAGES.items())


# --------------------------------------------------------------------------------------------------
# Round trips and fuzzing


@FAST
@given(items=frames_in, data=st.data())
def test_round_trip_with_short_garbage_and_arbitrary_chunks(items, data):
    # Why garbage of at most 7 bytes can never come out as a frame: it sits between one frame's
    # closing 0x00 and the next frame's opening 0x00, so it never merges with a frame's bytes, and
    # each of its runs between zeros is <= 7 bytes, which COBS-decodes to <= 6 bytes, shorter than
    # MIN_FRAME. So every run of garbage gives exactly one error and the frames come out exactly.
    garbage = data.draw(
        st.lists(st.binary(max_size=7), min_size=len(items) + 1, max_size=len(items) + 1)
    )
    stream = b"".join(g + encode_message(m, seq) for g, ((m, _), seq) in zip(garbage, items))
    stream += garbage[-1] + b"\0"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))

    out = _feed_all(Decoder(), _chunks(stream, cuts))

    frames = [x for x in out if isinstance(x, Frame)]
    errors = [x for x in out if not isinstance(x, Frame)]
    assert all(isinstance(e, ProtocolError) for e in errors)
    assert len(errors) == sum(len([r for r in g.split(b"\0") if r]) for g in garbage)
    assert [f.seq for f in frames] == [seq for _, seq in items]
    assert [decode_message(f, n) for f, ((_, n), _) in zip(frames, items, strict=True)] == [
        m for (m, _), _ in items
    ]


@FAST
@given(items=frames_in, data=st.data())
def test_round_trip_with_long_garbage_keeps_every_frame_in_order(items, data):
    # Longer garbage could in principle hold a run whose last 4 bytes happen to be the CRC-32 of
    # the rest (probability 2^-32 per run), which would be a frame that was never sent. So here we
    # only require the frames sent to come out in order among the output, and nothing but
    # ProtocolError values besides.
    garbage = data.draw(
        st.lists(st.binary(max_size=80), min_size=len(items) + 1, max_size=len(items) + 1)
    )
    stream = b"".join(g + encode_message(m, seq) for g, ((m, _), seq) in zip(garbage, items))
    stream += garbage[-1] + b"\0"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))

    out = _feed_all(Decoder(), _chunks(stream, cuts))

    sent = [Frame(m.TYPE, seq, m.pack()) for (m, _), seq in items]
    assert _is_subsequence(sent, [x for x in out if isinstance(x, Frame)])
    assert all(isinstance(x, Frame | ProtocolError) for x in out)


@settings(max_examples=300, deadline=None)
@given(
    blob=st.binary(max_size=600),
    max_frame=st.sampled_from([MIN_FRAME, 32, DEFAULT_MAX_FRAME]),
    cuts=st.lists(st.integers(0, 600), max_size=10),
)
def test_fuzz_random_bytes_never_raise(blob, max_frame, cuts):
    out = _feed_all(Decoder(max_frame), _chunks(blob, cuts))
    assert all(isinstance(x, Frame | ProtocolError) for x in out)


_mutation = st.tuples(
    st.sampled_from(["flip", "drop", "dup"]), st.integers(0, 10**6), st.integers(0, 7)
)


@FAST
@given(
    items=frames_in,
    mutations=st.lists(_mutation, min_size=1, max_size=4),
    max_frame=st.sampled_from([32, DEFAULT_MAX_FRAME]),
    cuts=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_fuzz_mutated_streams_never_raise_nor_invent_frames(items, mutations, max_frame, cuts):
    stream = bytearray(b"".join(encode_message(m, seq) for (m, _), seq in items))
    for kind, pos, bit in mutations:
        pos %= len(stream)
        if kind == "flip":
            stream[pos] ^= 1 << bit
        elif kind == "drop":
            del stream[pos]
        else:
            stream.insert(pos, stream[pos])
    out = _feed_all(Decoder(max_frame), _chunks(bytes(stream), cuts))
    assert all(isinstance(x, Frame | ProtocolError) for x in out)
    # A damaged frame passes only if its CRC still matches (2^-32 for a random change, and never
    # for the single-bit flips CRC-32 is built to catch), so every frame out is one that went in.
    sent = {Frame(m.TYPE, seq, m.pack()) for (m, _), seq in items}
    assert all(x in sent for x in out if isinstance(x, Frame))


# --------------------------------------------------------------------------------------------------
# COBS

COBS_VECTORS = [  # Wikipedia, "Consistent Overhead Byte Stuffing", examples 1-9
    ("00", "01 01"),
    ("00 00", "01 01 01"),
    ("00 11 00", "01 02 11 01"),
    ("11 22 00 33", "03 11 22 02 33"),
    ("11 22 33 44", "05 11 22 33 44"),
    ("11 00 00 00", "02 11 01 01 01"),
    (bytes(range(1, 255)).hex(), "FF" + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), "01 FF" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "FF" + bytes(range(1, 255)).hex() + "02 FF"),
    (bytes(range(2, 256)).hex() + "00", "FF" + bytes(range(2, 256)).hex() + "01 01"),
    (bytes(range(3, 256)).hex() + "00 01", "FE" + bytes(range(3, 256)).hex() + "02 01"),
    ("", "01"),
]


@pytest.mark.parametrize(("plain", "encoded"), COBS_VECTORS)
def test_cobs_known_vectors(plain, encoded):
    plain, encoded = bytes.fromhex(plain), bytes.fromhex(encoded)
    assert cobs_encode(plain) == encoded
    assert cobs_decode(encoded) == plain


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_round_trip_has_no_zero_and_bounded_overhead(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= max_encoded_length(len(data))
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize(
    "bad", [b"", b"\x00", b"\x05\x11\x22", b"\x03\x11\x00", b"\x02\x11\xff\x01"]
)
def test_cobs_decode_rejects_invalid(bad):
    with pytest.raises(BadFrame) as e:
        cobs_decode(bad)
    assert e.value.code == ErrorCode.BAD_FRAME


# --------------------------------------------------------------------------------------------------
# Frames and CRC


def test_crc_is_zlib_crc32_over_type_seq_payload():
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC32_ISO_HDLC catalogue check value
    raw = frame_bytes(0x05, 0x1234, b"abc")
    assert raw[:6] == b"\x05\x34\x12abc"
    assert raw[6:] == zlib.crc32(b"\x05\x34\x12abc").to_bytes(4, "little")
    assert parse_frame(raw) == Frame(0x05, 0x1234, b"abc")


def test_every_bit_flip_is_detected():
    msg = Run(cycles=1000, thin=10, flags=RUN_SAMPLES | RUN_STATS)
    raw = frame_bytes(msg.TYPE, 0xBEEF, msg.pack())
    for pos in range(len(raw)):
        for bit in range(8):
            bad = bytearray(raw)
            bad[pos] ^= 1 << bit
            with pytest.raises(BadCrc) as e:
                parse_frame(bytes(bad))
            assert e.value.code == ErrorCode.BAD_CRC
    wire = encode_message(msg, 0xBEEF)
    for pos in range(len(wire)):
        for bit in range(8):
            bad = bytearray(wire)
            bad[pos] ^= 1 << bit
            out = Decoder().feed(bytes(bad) + b"\0")  # the extra 0x00 closes a damaged end
            assert out, (pos, bit)
            assert all(isinstance(x, BadCrc | BadFrame) for x in out), (pos, bit, out)


def test_bad_crc_carries_seq_as_read():
    raw = bytearray(frame_bytes(0x08, 0x0102, b""))
    raw[-1] ^= 0xFF
    (err,) = Decoder().feed(b"\0" + cobs_encode(bytes(raw)) + b"\0")
    assert isinstance(err, BadCrc) and err.seq == 0x0102
    assert "seq 258" in str(err) and "CRC" in str(err)


def test_short_frame_is_bad_frame():
    (err,) = Decoder().feed(b"\0" + cobs_encode(b"\x01\x02\x03\x04\x05\x06") + b"\0")
    assert isinstance(err, BadFrame) and err.code == ErrorCode.BAD_FRAME
    assert "shorter" in str(err)


@pytest.mark.parametrize(
    ("type_", "seq"), [(1, -1), (1, 65536), (256, 0), (-1, 0), (1, 1.5), (1, None)]
)
def test_type_and_seq_out_of_range_raise(type_, seq):
    with pytest.raises(ProtocolError):
        encode_frame(type_, seq)
    with pytest.raises(ProtocolError):
        frame_bytes(type_, seq)


def test_encode_message_seq_out_of_range_raises():
    with pytest.raises(ProtocolError, match="seq"):
        encode_message(Status(), 0x10000)


def test_seq_helpers_wrap():
    assert seq_next(0xFFFF) == 0
    assert seq_next(7) == 8
    assert seq_diff(0, 0xFFFF) == 1
    assert seq_diff(0xFFFF, 0) == -1
    assert seq_diff(5, 5) == 0
    assert seq_diff(0x7FFF, 0) == 32767
    assert seq_diff(0x8000, 0) == -32768
    assert seq_diff(3, 0xFFFE) == 5


# --------------------------------------------------------------------------------------------------
# Decoder


def test_decoder_accepts_bytes_like_and_rejects_others():
    wire = encode_message(Status(), 3)
    assert Decoder().feed(bytearray(wire)) == [Frame(MsgType.STATUS, 3, b"")]
    assert Decoder().feed(memoryview(wire)) == [Frame(MsgType.STATUS, 3, b"")]
    for bad in (wire.hex(), list(wire), 5, None):
        with pytest.raises(TypeError):
            Decoder().feed(bad)
    with pytest.raises(ValueError, match="max_frame"):
        Decoder(MIN_FRAME - 1)


def test_decoder_ignores_empty_runs_and_buffers_partial_frames():
    d = Decoder()
    assert d.feed(b"\0\0\0\0") == []
    assert d.buffered == 0
    wire = encode_message(Ack(1, 2), 9)
    assert d.feed(wire[:-3]) == []
    assert d.buffered == len(wire) - 4  # everything but the two delimiters and the last 2 bytes
    assert d.feed(wire[-3:]) == [Frame(MsgType.ACK, 9, Ack(1, 2).pack())]
    assert d.buffered == 0


def test_encoder_refuses_frame_longer_than_max_frame():
    assert len(cobs_decode(encode_frame(1, 0, bytes(25), max_frame=32)[1:-1])) == 32
    with pytest.raises(ProtocolError, match="max_frame") as e:
        encode_frame(1, 0, bytes(26), max_frame=32)
    assert e.value.code == ErrorCode.TOO_LONG
    encode_message(Write(tuple((a, a) for a in range(127))), 0)  # 7 + 8*127 = 1023 bytes
    with pytest.raises(ProtocolError, match="1031 bytes"):
        encode_message(Write(tuple((a, a) for a in range(128))), 0)


@pytest.mark.parametrize("bytewise", [False, True])
def test_decoder_reports_too_long_once_and_recovers(bytewise):
    max_frame = 32
    long = encode_frame(1, 1, bytes(range(1, 120)), max_frame=DEFAULT_MAX_FRAME)
    good = encode_frame(2, 2, b"ok", max_frame=max_frame)
    stream = long + good
    chunks = [stream[i : i + 1] for i in range(len(stream))] if bytewise else [stream]
    out = _feed_all(Decoder(max_frame), chunks)
    assert len(out) == 2
    assert isinstance(out[0], FrameTooLong) and out[0].code == ErrorCode.TOO_LONG
    assert out[1] == Frame(2, 2, b"ok")


def test_decoder_too_long_without_delimiters_is_reported_once():
    d = Decoder(32)
    out = d.feed(b"\x11" * 100) + d.feed(b"\x22" * 1000)
    assert len(out) == 1 and isinstance(out[0], FrameTooLong)
    assert d.buffered == 0
    assert d.feed(encode_message(Stop(), 4)) == [Frame(MsgType.STOP, 4, b"")]


def test_decoder_too_long_zero_rich_frame_within_encoded_limit():
    # Zeros cost one COBS byte each, so a 301-byte frame of mostly zeros encodes to 302 bytes,
    # within the buffer limit of max_frame 300: the decoder must check the decoded length too.
    wire = encode_frame(1, 0, bytes(294), max_frame=DEFAULT_MAX_FRAME)
    assert len(wire) - 2 <= max_encoded_length(300)
    (err,) = Decoder(300).feed(wire)
    assert isinstance(err, FrameTooLong) and "301" in str(err)


# --------------------------------------------------------------------------------------------------
# Messages

EXAMPLES = {
    Ident: Ident(1),
    Write: Write(((1, 2), (3, 4))),
    Read: Read((1, 2)),
    LoadDigest: LoadDigest(),
    Run: Run(100, 10, RUN_SAMPLES),
    Stop: Stop(),
    Reset: Reset(),
    Status: Status(),
    Credit: Credit(3, 8),
    Resend: Resend(5),
    ReadStats: ReadStats(0, 12),
    IdentReply: IdentReply(0, protocol.MAGIC, 1, 1, 2, 3, 4, 5, 6, 7, 1024, 8),
    Ack: Ack(1, 2),
    Data: Data(1, (5, 6)),
    Digest: Digest(1, 2, 3, 4),
    StatusReply: StatusReply(1, BoardState.PAUSED, 3, 4, 5, 6),
    Stats: Stats(1, 2, (-3, 4)),
    Samples: Samples(7, np.array([[1, -1, 1], [-1, -1, 1]])),
    Done: Done(1, 2),
    Error: Error(ErrorCode.BAD_ADDRESS, 1, 0x1234),
}
FIXED_SIZES = {  # the payload sizes of docs/protocol.md's message table
    Ident: 2,
    LoadDigest: 0,
    Run: 13,
    Stop: 0,
    Reset: 0,
    Status: 0,
    Credit: 5,
    Resend: 2,
    ReadStats: 6,
    IdentReply: 44,
    Ack: 10,
    Digest: 14,
    StatusReply: 23,
    Done: 16,
    Error: 7,
}


@pytest.mark.parametrize("cls", list(FIXED_SIZES), ids=lambda c: c.__name__)
def test_fixed_payload_sizes(cls):
    assert len(EXAMPLES[cls].pack()) == FIXED_SIZES[cls]


def test_variable_payload_sizes():
    assert len(Write(((1, 2), (3, 4))).pack()) == 16
    assert len(Read((1, 2, 3)).pack()) == 12
    assert len(Data(1, (5, 6)).pack()) == 2 + 8
    assert len(Data(1, ()).pack()) == 2
    assert len(Stats(1, 2, (-3, 4)).pack()) == 6 + 16
    assert len(Samples(0, np.ones((3, 17), np.int8)).pack()) == 10 + 3 * 3


def _bad_lengths(payload: bytes) -> list[bytes]:
    bad = [payload + b"\0", payload + bytes(3)]
    if payload:
        bad += [payload[:-1], b""]
    return [b for b in bad if b != payload]


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_wrong_payload_length_is_bad_length(cls):
    msg = EXAMPLES[cls]
    n = 3 if cls is Samples else None
    assert decode_message(Frame(cls.TYPE, 9, msg.pack()), n) == msg
    for payload in _bad_lengths(msg.pack()):
        if cls in (Data, Stats) and payload == b"":
            payload = b"\0"  # empty Data/Stats lists are fine; a lone byte is not
        with pytest.raises(ProtocolError) as e:
            decode_message(Frame(cls.TYPE, 9, payload), n)
        assert e.value.code == ErrorCode.BAD_LENGTH, payload
        assert e.value.seq == 9
        assert cls.__name__ in str(e.value) and f"got {len(payload)}" in str(e.value)


def test_unknown_type_is_unknown_type():
    unknown = [t for t in range(256) if t not in MESSAGES]
    assert len(unknown) == 256 - len(MsgType)
    for t in unknown:
        with pytest.raises(ProtocolError, match=f"0x{t:02X}") as e:
            decode_message(Frame(t, 4, b""))
        assert e.value.code == ErrorCode.UNKNOWN_TYPE and e.value.seq == 4


def test_samples_needs_n():
    frame = Frame(MsgType.SAMPLES, 0, EXAMPLES[Samples].pack())
    with pytest.raises(ValueError, match="needs n"):
        decode_message(frame)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Run(1, 0, 0),
        lambda: Run(1, 1, 4),
        lambda: Run(-1, 1, 0),
        lambda: ReadStats(0, 0),
        lambda: Write(()),
        lambda: Write(((1 << 32, 0),)),
        lambda: Read(()),
        lambda: Ident(65536),
        lambda: Credit(70000, 1),
        lambda: Credit(None, -1),
        lambda: Data(0, (1 << 32,)),
        lambda: Stats(0, 0, (1 << 63,)),
        lambda: StatusReply(0, 3, 0, 0, 0, 0),
        lambda: Error(256, 0, 0),
        lambda: Samples(0, np.zeros((1, 3))),
        lambda: Samples(0, np.ones((0, 3))),
        lambda: Samples(0, np.ones(3)),
    ],
)
def test_field_out_of_range_raises(make):
    with pytest.raises(ProtocolError) as e:
        make()
    assert e.value.code == ErrorCode.BAD_ARGUMENT
    assert isinstance(e.value, ValueError)


def test_field_errors_name_field_and_value():
    with pytest.raises(ProtocolError, match=r"Run: thin must be >= 1, got 0"):
        Run(5, 0, 0)
    with pytest.raises(ProtocolError, match=r"Ident.version .*0\.\.65535.*70000"):
        Ident(70000)
    with pytest.raises(ProtocolError, match=r"Write.pairs\[1\].data"):
        Write(((1, 2), (3, -4)))


def test_bad_flags_on_the_wire_are_bad_argument():
    with pytest.raises(ProtocolError) as e:
        decode_message(Frame(MsgType.RUN, 1, Run(1, 1, 0).pack()[:-1] + b"\x04"))
    assert e.value.code == ErrorCode.BAD_ARGUMENT and e.value.seq == 1
    with pytest.raises(ProtocolError) as e:
        decode_message(Frame(MsgType.CREDIT, 1, b"\x02\x00\x00\x08\x00"))
    assert e.value.code == ErrorCode.BAD_ARGUMENT


def test_credit_none_and_flags():
    assert Credit(None, 8).pack() == b"\x00\x00\x00\x08\x00"
    assert Credit(0x1234, 8).pack() == b"\x01\x34\x12\x08\x00"
    assert Credit.unpack(b"\x00\x05\x00\x08\x00") == Credit(None, 8)  # field ignored, flag clear
    assert Credit.unpack(b"\x01\x00\x00\x08\x00") == Credit(0, 8)


def test_normalised_fields():
    assert Write([[1, 2]]) == Write(((1, 2),))
    assert Read([np.uint32(7)]).addrs == (7,)
    assert type(Read([np.uint32(7)]).addrs[0]) is int
    assert StatusReply(0, 1, 0, 0, 0, 0).state is BoardState.RUNNING
    assert Error(2, 0).code is ErrorCode.BAD_FRAME
    assert Error(200, 0).code == 200


@pytest.mark.parametrize("n", [1, 8, 9, 17])
def test_samples_bit_order(n):
    per_vector = (n + 7) // 8
    for i in range(n):  # one-hot: p-bit i is bit i % 8 of byte i // 8
        spins = -np.ones((1, n), np.int8)
        spins[0, i] = 1
        payload = Samples(0, spins).pack()
        assert payload[10:] == (1 << i).to_bytes(per_vector, "little")
        assert Samples.unpack(payload, n) == Samples(0, spins)
    payload = Samples(0, np.ones((2, n), np.int8)).pack()
    assert payload[10:] == ((1 << n) - 1).to_bytes(per_vector, "little") * 2  # padding bits 0
    assert payload[:10] == bytes(8) + b"\x02\x00"


def test_samples_p_bit_0_is_lsb_of_byte_0():
    spins = np.array([[1, -1, -1, -1, -1, -1, -1, -1, -1, 1]], np.int8)
    assert Samples(0, spins).pack()[10:] == b"\x01\x02"


@pytest.mark.parametrize("n", [1, 9, 17, 23])
def test_samples_nonzero_padding_is_rejected(n):
    payload = bytearray(Samples(0, -np.ones((2, n), np.int8)).pack())
    payload[10 + 2 * ((n + 7) // 8) - 1] |= 0x80  # the top padding bit of the last vector
    with pytest.raises(ProtocolError, match="padding"):
        Samples.unpack(bytes(payload), n)


def test_samples_equality_and_immutability():
    spins = np.array([[1, -1]], np.int8)
    s = Samples(3, spins)
    spins[0, 0] = -1  # the message keeps its own copy
    assert s == Samples(3, np.array([[1, -1]]))
    assert s != Samples(4, np.array([[1, -1]]))
    assert s != Samples(3, np.array([[1, -1, 1]]))
    assert hash(s) == hash(Samples(3, np.array([[1, -1]])))
    assert s.spins.dtype == np.int8 and (s.count, s.n) == (1, 2)
    with pytest.raises(ValueError):
        s.spins[0, 0] = 1


def test_samples_per_frame():
    assert samples_per_frame(10) == (1024 - 17) // 2
    assert samples_per_frame(8 * 1007) == 1
    with pytest.raises(ProtocolError, match="n = 8057"):
        samples_per_frame(8 * 1007 + 1)
    for n, max_frame in [(10, 1024), (100, 64), (3, 32)]:
        k = samples_per_frame(n, max_frame)
        encode_message(Samples(0, np.ones((k, n), np.int8)), 0, max_frame)
        with pytest.raises(ProtocolError, match="max_frame"):
            encode_message(Samples(0, np.ones((k + 1, n), np.int8)), 0, max_frame)


def test_message_classes():
    assert {t for t in MsgType if t < 0x80} == COMMANDS | FLOW
    assert not COMMANDS & FLOW
    assert STREAM == {MsgType.SAMPLES, MsgType.DONE}
    assert protocol.MAGIC.to_bytes(4, "big") == b"PBIT"
    assert protocol.PROTOCOL_VERSION == 1 and protocol.UNKNOWN_SEQ is None


# --------------------------------------------------------------------------------------------------
# The worked examples of docs/protocol.md

FRAME_BLOCK = re.compile(r"```frame\n(.*?)```", re.S)


def _doc_examples() -> list[dict[str, str]]:
    examples = []
    for block in FRAME_BLOCK.findall(DOC.read_text()):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1].isspace():  # continuation of the previous field
                fields[key] += " " + line.strip()
            elif line.strip():
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        examples.append(fields)
    return examples


DOC_EXAMPLES = _doc_examples()


def _message(example: dict[str, str]):
    return eval(example["message"], {**vars(protocol), "np": np})


@pytest.mark.parametrize("example", DOC_EXAMPLES, ids=lambda e: e["message"].split("(")[0])
def test_doc_example_bytes(example):
    msg = _message(example)
    seq = int(example["seq"])
    n = int(example["n"]) if "n" in example else None
    assert msg.pack().hex(" ").upper() == example["payload"]
    assert frame_bytes(msg.TYPE, seq, msg.pack()).hex(" ").upper() == example["unencoded"]
    wire = encode_message(msg, seq)
    assert wire.hex(" ").upper() == example["wire"]
    (frame,) = Decoder().feed(wire)
    assert decode_message(frame, n) == msg


def test_doc_has_the_required_examples():
    assert len(DOC_EXAMPLES) >= 6
    msgs = [_message(e) for e in DOC_EXAMPLES]
    types = {m.TYPE for m in msgs}
    assert {
        MsgType.IDENT,
        MsgType.IDENT_REPLY,
        MsgType.WRITE,
        MsgType.RUN,
        MsgType.SAMPLES,
        MsgType.CREDIT,
        MsgType.ERROR,
    } <= types
    assert any(isinstance(m, Write) and len(m.pairs) == 2 for m in msgs)
    assert any(isinstance(m, Samples) and m.spins.shape == (2, 10) for m in msgs)
    assert any(isinstance(m, Error) and m.code == ErrorCode.BAD_CRC for m in msgs)
