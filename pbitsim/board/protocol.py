"""The wire protocol between a host and a p-bit board or its emulator. Spec: ``docs/protocol.md``.

A frame, unencoded::

    [type u8][seq u16][payload ...][crc32 u32]    little-endian, crc = zlib.crc32(type+seq+payload)

On the wire every frame is ``0x00 + COBS(frame) + 0x00``. This module is the reference encoder and
a streaming :class:`Decoder`, plus one frozen dataclass per message type with ``pack()`` (the
payload) and ``unpack(payload)``. Pure Python: the standard library and numpy only, so that the
host, the emulator and the gateware tests all share one definition of every byte.
"""

from __future__ import annotations

import enum
import operator
import struct
import zlib
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np

# IDENT_REPLY carries the ID register's magic; one definition, the register map's.
from pbitsim.board.regmap import MAGIC as MAGIC

PROTOCOL_VERSION = 1
HEADER_BYTES = 3  # type u8 + seq u16
CRC_BYTES = 4
MIN_FRAME = HEADER_BYTES + CRC_BYTES
DEFAULT_MAX_FRAME = 1024
UNKNOWN_SEQ = None  # the seq of a frame too damaged to read one from

SEQ_MOD = 1 << 16

RUN_SAMPLES = 1  # Run.flags bit 0: stream the recorded states in SAMPLES frames
RUN_STATS = 2  # Run.flags bit 1: accumulate statistics over the recorded states
_RUN_FLAGS = RUN_SAMPLES | RUN_STATS

_CREDIT_ACK_VALID = 1  # Credit flags bit 0: the ack_seq field is meaningful

_HEADER = struct.Struct("<BH")
_CRC = struct.Struct("<I")


class MsgType(enum.IntEnum):
    """The type byte of a frame. Host → board below 0x80, board → host from 0x80."""

    IDENT = 0x01
    WRITE = 0x02
    READ = 0x03
    LOAD_DIGEST = 0x04
    RUN = 0x05
    STOP = 0x06
    RESET = 0x07
    STATUS = 0x08
    CREDIT = 0x09
    RESEND = 0x0A
    READ_STATS = 0x0B

    IDENT_REPLY = 0x81
    ACK = 0x82
    DATA = 0x83
    DIGEST = 0x84
    STATUS_REPLY = 0x85
    STATS = 0x86
    SAMPLES = 0x90
    DONE = 0x91
    ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    """The ``code`` of an ERROR frame and of a :class:`ProtocolError`."""

    BAD_CRC = 1
    BAD_FRAME = 2
    TOO_LONG = 3
    UNKNOWN_TYPE = 4
    BAD_LENGTH = 5
    BAD_ADDRESS = 6
    BUSY = 7  # WRITE or RUN while a run is in progress
    VERSION = 8
    BAD_ARGUMENT = 9
    NOT_IDLE = 10  # reserved


class BoardState(enum.IntEnum):
    """``StatusReply.state``."""

    IDLE = 0
    RUNNING = 1
    PAUSED = 2  # running, but waiting for credit


# Host commands that get exactly one reply (ACK, DATA, DIGEST, IDENT_REPLY, STATUS_REPLY, STATS
# or ERROR) carrying their seq.
COMMANDS = frozenset(
    {
        MsgType.IDENT,
        MsgType.WRITE,
        MsgType.READ,
        MsgType.LOAD_DIGEST,
        MsgType.RUN,
        MsgType.STOP,
        MsgType.RESET,
        MsgType.STATUS,
        MsgType.READ_STATS,
    }
)
# Host frames that get no reply and are not remembered by the board.
FLOW = frozenset({MsgType.CREDIT, MsgType.RESEND})
# Board frames that the board keeps until acknowledged and that need credit.
STREAM = frozenset({MsgType.SAMPLES, MsgType.DONE})


# --------------------------------------------------------------------------------------------------
# Errors


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol.

    Parameters
    ----------
    message
        What is wrong: which field, which value, what was expected.
    code
        The :class:`ErrorCode` a board would answer with (None: no specific code).
    seq
        The seq of the frame concerned, when known (information only: it may be damaged).

    A subclass of ValueError, so that an out-of-range field is both.
    """

    default_code: ClassVar[ErrorCode | None] = None

    def __init__(self, message: str, code: ErrorCode | None = None, seq: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else ErrorCode(code)
        self.seq = seq


class BadCrc(ProtocolError):
    """A frame whose CRC does not match its contents."""

    default_code = ErrorCode.BAD_CRC


class BadFrame(ProtocolError):
    """Invalid COBS, or a frame shorter than :data:`MIN_FRAME`."""

    default_code = ErrorCode.BAD_FRAME


class FrameTooLong(ProtocolError):
    """More bytes between two delimiters than a ``max_frame`` frame can encode to."""

    default_code = ErrorCode.TOO_LONG


def _uint(owner: str, name: str, value: object, bits: int) -> int:
    """``value`` as a plain int if it is an integer in 0 .. 2**bits - 1, else ProtocolError."""
    try:
        v = operator.index(value)
    except TypeError:
        v = None
    if v is None or not 0 <= v < 1 << bits:
        raise ProtocolError(
            f"{owner}{name} must be an integer in 0..{(1 << bits) - 1} (u{bits}), got {value!r}",
            code=ErrorCode.BAD_ARGUMENT,
        )
    return int(v)


def _int64(owner: str, name: str, value: object) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        v = None
    if v is None or not -(1 << 63) <= v < 1 << 63:
        raise ProtocolError(
            f"{owner}{name} must be an integer in -2**63..2**63-1 (i64), got {value!r}",
            code=ErrorCode.BAD_ARGUMENT,
        )
    return int(v)


# --------------------------------------------------------------------------------------------------
# Sequence numbers


def seq_next(s: int) -> int:
    """The seq after ``s`` (mod 2**16)."""
    return (s + 1) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` mod 2**16, as a number in -32768..32767: ``a`` is after ``b`` iff it is > 0."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


# --------------------------------------------------------------------------------------------------
# COBS


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (Cheshire & Baker): ``data`` without any 0x00 byte.

    Blocks of up to 254 non-zero bytes, each preceded by a code byte = block length + 1; every
    code but 0xFF stands for a 0x00 after its block (the zero after the last block is implied by
    the frame's end and dropped). The result is at most ``len(data) + len(data) // 254 + 1`` bytes.
    """
    data = bytes(data)
    # Fast path (numpy): when every block is shorter than 254 bytes, the encoding is the data with
    # each 0x00 replaced by the distance to the next one, behind the distance to the first.
    arr = np.frombuffer(data, np.uint8)
    gaps = np.diff(np.concatenate(([-1], np.flatnonzero(arr == 0), [len(data)])))
    if gaps.max() < 255:
        out_fast = np.empty(len(data) + 1, np.uint8)
        out_fast[0] = gaps[0]
        out_fast[1:] = arr
        out_fast[1:][arr == 0] = gaps[1:]
        return out_fast.tobytes()
    out = bytearray()
    pos, n = 0, len(data)
    while True:
        limit = min(pos + 254, n)
        zero = data.find(0, pos, limit)
        if zero >= 0:  # a block ended by a zero: the code stands for that zero
            out.append(zero - pos + 1)
            out += data[pos:zero]
            pos = zero + 1
            continue  # even at the end: a trailing zero needs a final (empty) block
        out.append(limit - pos + 1)
        out += data[pos:limit]
        pos = limit
        if pos >= n:
            return bytes(out)
        # A full 254-byte block (code 0xFF) with more data after it: no zero implied.


def cobs_decode(data: bytes) -> bytes:
    """Undo :func:`cobs_encode`; raises :class:`BadFrame` on an invalid encoding."""
    data = bytes(data)
    if not data:
        raise BadFrame("empty COBS data (an encoding is at least 1 byte)")
    out = bytearray()
    pos, n = 0, len(data)
    while pos < n:
        code = data[pos]
        if code == 0:
            raise BadFrame(f"COBS code byte 0x00 at offset {pos} (0x00 is never part of a frame)")
        end = pos + code
        if end > n:
            raise BadFrame(
                f"COBS code 0x{code:02X} at offset {pos} needs {code - 1} bytes, "
                f"only {n - pos - 1} left"
            )
        block = data[pos + 1 : end]
        if 0 in block:
            raise BadFrame(f"0x00 byte inside the COBS block at offset {pos}")
        out += block
        pos = end
        if code != 0xFF and pos < n:
            out.append(0)
    return bytes(out)


def max_encoded_length(max_frame: int) -> int:
    """The longest COBS encoding of a frame of at most ``max_frame`` bytes (no delimiters)."""
    return max_frame + max_frame // 254 + 1


# --------------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    """One decoded frame: type byte, seq and payload (CRC already checked and removed)."""

    type: int
    seq: int
    payload: bytes

    def __post_init__(self):
        object.__setattr__(self, "type", _uint("Frame.", "type", self.type, 8))
        object.__setattr__(self, "seq", _uint("Frame.", "seq", self.seq, 16))
        object.__setattr__(self, "payload", bytes(self.payload))


def frame_bytes(type: int, seq: int, payload: bytes = b"") -> bytes:
    """The unencoded frame ``[type u8][seq u16][payload][crc32 u32]``."""
    body = _HEADER.pack(_uint("frame ", "type", type, 8), _uint("frame ", "seq", seq, 16))
    body += bytes(payload)
    return body + _CRC.pack(zlib.crc32(body))


def parse_frame(raw: bytes) -> Frame:
    """Check an unencoded frame's length and CRC and split it; raises BadFrame or BadCrc."""
    raw = bytes(raw)
    seq = _HEADER.unpack_from(raw)[1] if len(raw) >= HEADER_BYTES else UNKNOWN_SEQ
    if len(raw) < MIN_FRAME:
        raise BadFrame(
            f"frame of {len(raw)} bytes is shorter than the minimum {MIN_FRAME} (type, seq, crc)",
            seq=seq,
        )
    body, (crc,) = raw[:-CRC_BYTES], _CRC.unpack_from(raw, len(raw) - CRC_BYTES)
    computed = zlib.crc32(body)
    if crc != computed:
        raise BadCrc(
            f"bad CRC in frame type 0x{raw[0]:02X} seq {seq} ({len(raw)} bytes): "
            f"received 0x{crc:08X}, computed 0x{computed:08X}",
            seq=seq,
        )
    return Frame(raw[0], seq, body[HEADER_BYTES:])


def encode_frame(
    type: int, seq: int, payload: bytes = b"", max_frame: int = DEFAULT_MAX_FRAME
) -> bytes:
    """The wire bytes of one frame: ``0x00 + COBS(frame_bytes(...)) + 0x00``.

    Raises ProtocolError (code TOO_LONG) if the unencoded frame is longer than ``max_frame``.
    """
    raw = frame_bytes(type, seq, payload)
    if len(raw) > max_frame:
        raise ProtocolError(
            f"frame type 0x{type:02X} seq {seq} is {len(raw)} bytes "
            f"({len(raw) - MIN_FRAME} bytes of payload), more than max_frame {max_frame}",
            code=ErrorCode.TOO_LONG,
            seq=seq,
        )
    return b"\0" + cobs_encode(raw) + b"\0"


class Decoder:
    """Streaming decoder: bytes in (split or joined anyhow), frames and errors out.

    Parameters
    ----------
    max_frame
        The longest unencoded frame accepted. The decoder never holds more than
        ``max_encoded_length(max_frame)`` bytes.

    Examples
    --------
    >>> d = Decoder()
    >>> wire = encode_frame(MsgType.STATUS, 5)
    >>> d.feed(wire[:4]), d.feed(wire[4:])
    ([], [Frame(type=8, seq=5, payload=b'')])
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        if operator.index(max_frame) < MIN_FRAME:
            raise ValueError(f"max_frame must be >= {MIN_FRAME}, got {max_frame}")
        self.max_frame = int(max_frame)
        self._limit = max_encoded_length(self.max_frame)
        self._buf = bytearray()
        self._discarding = False  # after FrameTooLong, until the next delimiter

    @property
    def buffered(self) -> int:
        """Bytes held: the start of a frame whose closing delimiter has not arrived yet."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after reopening the port)."""
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | ProtocolError]:
        """Consume ``data``; return, in stream order, each complete frame and each error.

        Errors are returned, not raised, so one damaged frame never hides the frames after it.
        Empty runs between two delimiters (the gap between back-to-back frames) are ignored.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"Decoder.feed needs bytes, bytearray or memoryview, got {type(data)}")
        data = bytes(data)
        out: list[Frame | ProtocolError] = []
        pos = 0
        while pos < len(data):
            zero = data.find(0, pos)
            end = len(data) if zero < 0 else zero
            if not self._discarding:
                if len(self._buf) + (end - pos) > self._limit:
                    # Drop what we have and everything up to the next delimiter: memory stays
                    # bounded and the error is reported once, however long the garbage.
                    self._buf.clear()
                    self._discarding = True
                    out.append(
                        FrameTooLong(
                            f"more than {self._limit} bytes between delimiters: longer than any "
                            f"encoded frame of max_frame {self.max_frame} bytes; dropped"
                        )
                    )
                else:
                    self._buf += data[pos:end]
            if zero < 0:
                break
            if self._discarding:
                self._discarding = False
            elif self._buf:
                out.append(self._finish(bytes(self._buf)))
                self._buf.clear()
            pos = zero + 1
        return out

    def _finish(self, encoded: bytes) -> Frame | ProtocolError:
        try:
            raw = cobs_decode(encoded)
            if len(raw) > self.max_frame:
                # Possible: zero-rich frames encode to fewer bytes than the buffer limit allows.
                return FrameTooLong(
                    f"frame of {len(raw)} bytes is longer than max_frame {self.max_frame}",
                    seq=_HEADER.unpack_from(raw)[1],
                )
            return parse_frame(raw)
        except ProtocolError as e:
            return e


# --------------------------------------------------------------------------------------------------
# Messages


def _check_length(cls: type, payload: bytes, expected: int) -> None:
    if len(payload) != expected:
        raise ProtocolError(
            f"{cls.__name__} payload must be {expected} bytes, got {len(payload)}",
            code=ErrorCode.BAD_LENGTH,
        )


def _check_array_length(cls: type, payload: bytes, head: int, item: int, min_items: int) -> int:
    """The number of ``item``-byte records after a ``head``-byte header; BAD_LENGTH if ragged."""
    size = len(payload)
    if size < head + min_items * item or (size - head) % item:
        shape = f"{head} + {item}*k" if head else f"{item}*k"
        raise ProtocolError(
            f"{cls.__name__} payload must be {shape} bytes with k >= {min_items}, got {size}",
            code=ErrorCode.BAD_LENGTH,
        )
    return (size - head) // item


_BITS = {"B": 8, "H": 16, "I": 32, "Q": 64}


class Message:
    """Base of the message dataclasses.

    A fixed-layout message lists its fields with struct codes in ``_LAYOUT``; that one table gives
    the payload layout and every field's range. Variable-length messages override ``pack`` and
    ``unpack`` and check their extra fields in ``_check``.
    """

    TYPE: ClassVar[MsgType]
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = ()
    _STRUCT: ClassVar[struct.Struct]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._STRUCT = struct.Struct("<" + "".join(code for _, code in cls._LAYOUT))

    def __post_init__(self):
        for name, code in self._LAYOUT:
            self._set(
                name, _uint(f"{type(self).__name__}.", name, getattr(self, name), _BITS[code])
            )
        self._check()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)  # normalising a frozen dataclass's field

    def _check(self) -> None:
        """Checks beyond the integer ranges of ``_LAYOUT``."""

    def pack(self) -> bytes:
        """The payload bytes."""
        return self._STRUCT.pack(*(getattr(self, name) for name, _ in self._LAYOUT))

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """The message from its payload; ProtocolError BAD_LENGTH if the length is wrong."""
        _check_length(cls, payload, cls._STRUCT.size)
        return cls(*cls._STRUCT.unpack(payload))


def _bad_argument(cls: type, message: str) -> ProtocolError:
    return ProtocolError(f"{cls.__name__}: {message}", code=ErrorCode.BAD_ARGUMENT)


# Host → board ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ident(Message):
    """IDENT: the host's protocol version. Reply: IDENT_REPLY, or ERROR VERSION."""

    version: int = PROTOCOL_VERSION

    TYPE = MsgType.IDENT
    _LAYOUT = (("version", "H"),)


@dataclass(frozen=True)
class Write(Message):
    """WRITE: ``(addr, data)`` u32 pairs, k >= 1, written atomically. Reply: ACK (value = k)."""

    pairs: tuple[tuple[int, int], ...]

    TYPE = MsgType.WRITE
    _PAIR = struct.Struct("<II")

    def _check(self):
        pairs = tuple(
            (_uint("Write.", f"pairs[{k}].addr", a, 32), _uint("Write.", f"pairs[{k}].data", d, 32))
            for k, (a, d) in enumerate(self.pairs)
        )
        if not pairs:
            raise _bad_argument(Write, "pairs must hold at least one (addr, data) pair")
        self._set("pairs", pairs)

    def pack(self) -> bytes:
        return b"".join(self._PAIR.pack(a, d) for a, d in self.pairs)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        _check_array_length(cls, payload, 0, cls._PAIR.size, 1)
        return cls(tuple(cls._PAIR.iter_unpack(payload)))


@dataclass(frozen=True)
class Read(Message):
    """READ: u32 addresses, k >= 1. Reply: DATA with one word per address."""

    addrs: tuple[int, ...]

    TYPE = MsgType.READ

    def _check(self):
        addrs = tuple(_uint("Read.", f"addrs[{k}]", a, 32) for k, a in enumerate(self.addrs))
        if not addrs:
            raise _bad_argument(Read, "addrs must hold at least one address")
        self._set("addrs", addrs)

    def pack(self) -> bytes:
        return struct.pack(f"<{len(self.addrs)}I", *self.addrs)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        k = _check_array_length(cls, payload, 0, 4, 1)
        return cls(struct.unpack(f"<{k}I", payload))


@dataclass(frozen=True)
class LoadDigest(Message):
    """LOAD_DIGEST: no payload. Reply: DIGEST."""

    TYPE = MsgType.LOAD_DIGEST


@dataclass(frozen=True)
class Run(Message):
    """RUN ``cycles`` model cycles (0: until STOP), recording every ``thin``-th state.

    ``flags``: :data:`RUN_SAMPLES` (stream SAMPLES) | :data:`RUN_STATS` (accumulate statistics).
    Reply: ACK with the start cycle index.
    """

    cycles: int
    thin: int = 1
    flags: int = RUN_SAMPLES

    TYPE = MsgType.RUN
    _LAYOUT = (("cycles", "Q"), ("thin", "I"), ("flags", "B"))

    def _check(self):
        if self.thin < 1:
            raise _bad_argument(Run, f"thin must be >= 1, got {self.thin}")
        if self.flags & ~_RUN_FLAGS:
            raise _bad_argument(
                Run, f"flags 0x{self.flags:02X} has bits other than RUN_SAMPLES|RUN_STATS (0x03)"
            )


@dataclass(frozen=True)
class Stop(Message):
    """STOP: no payload. Reply: ACK with the last cycle index."""

    TYPE = MsgType.STOP


@dataclass(frozen=True)
class Reset(Message):
    """RESET: no payload. Reply: ACK (value 0)."""

    TYPE = MsgType.RESET


@dataclass(frozen=True)
class Status(Message):
    """STATUS: no payload. Reply: STATUS_REPLY."""

    TYPE = MsgType.STATUS


@dataclass(frozen=True)
class Credit(Message):
    """CREDIT: "I have every stream frame up to and including ``ack_seq``; allow ``window``".

    ``ack_seq`` None: nothing acknowledged yet (flags bit 0 clear, the field sent as 0 and ignored
    on receipt). No reply.
    """

    ack_seq: int | None
    window: int

    TYPE = MsgType.CREDIT
    _WIRE = struct.Struct("<BHH")

    def _check(self):
        if self.ack_seq is not None:
            self._set("ack_seq", _uint("Credit.", "ack_seq", self.ack_seq, 16))
        self._set("window", _uint("Credit.", "window", self.window, 16))

    def pack(self) -> bytes:
        if self.ack_seq is None:
            return self._WIRE.pack(0, 0, self.window)
        return self._WIRE.pack(_CREDIT_ACK_VALID, self.ack_seq, self.window)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        _check_length(cls, payload, cls._WIRE.size)
        flags, ack_seq, window = cls._WIRE.unpack(payload)
        if flags & ~_CREDIT_ACK_VALID:
            raise _bad_argument(cls, f"flags 0x{flags:02X} has bits other than bit 0 (ack valid)")
        return cls(ack_seq if flags & _CREDIT_ACK_VALID else None, window)


@dataclass(frozen=True)
class Resend(Message):
    """RESEND every kept stream frame from board seq ``from_seq`` on. No reply."""

    from_seq: int

    TYPE = MsgType.RESEND
    _LAYOUT = (("from_seq", "H"),)


@dataclass(frozen=True)
class ReadStats(Message):
    """READ_STATS: ``count`` >= 1 entries of the statistics vector from index ``first``.

    Reply: STATS.
    """

    first: int
    count: int

    TYPE = MsgType.READ_STATS
    _LAYOUT = (("first", "I"), ("count", "H"))

    def _check(self):
        if self.count < 1:
            raise _bad_argument(ReadStats, f"count must be >= 1, got {self.count}")


# Board → host ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentReply(Message):
    """IDENT_REPLY: who the board is. The u32 words are register values (opaque here)."""

    ack_seq: int
    magic: int
    version: int
    id_word: int
    version_word: int
    shape: int
    colors: int
    format_word: int
    design_word: int
    topology: int
    max_frame: int
    buffer_frames: int

    TYPE = MsgType.IDENT_REPLY
    _LAYOUT = (
        ("ack_seq", "H"),
        ("magic", "I"),
        ("version", "H"),
        ("id_word", "I"),
        ("version_word", "I"),
        ("shape", "I"),
        ("colors", "I"),
        ("format_word", "I"),
        ("design_word", "I"),
        ("topology", "Q"),
        ("max_frame", "H"),
        ("buffer_frames", "H"),
    )


@dataclass(frozen=True)
class Ack(Message):
    """ACK: RUN → start cycle, STOP → last cycle index, WRITE → pairs written, else 0."""

    ack_seq: int
    value: int = 0

    TYPE = MsgType.ACK
    _LAYOUT = (("ack_seq", "H"), ("value", "Q"))


@dataclass(frozen=True)
class Data(Message):
    """DATA: the words READ asked for, in the order asked (k >= 0)."""

    ack_seq: int
    words: tuple[int, ...]

    TYPE = MsgType.DATA
    _LAYOUT = (("ack_seq", "H"),)

    def _check(self):
        self._set(
            "words", tuple(_uint("Data.", f"words[{k}]", w, 32) for k, w in enumerate(self.words))
        )

    def pack(self) -> bytes:
        return struct.pack(f"<H{len(self.words)}I", self.ack_seq, *self.words)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        k = _check_array_length(cls, payload, 2, 4, 0)
        ack_seq, *words = struct.unpack(f"<H{k}I", payload)
        return cls(ack_seq, tuple(words))


@dataclass(frozen=True)
class Digest(Message):
    """DIGEST: zlib CRC-32 of the J, BIAS and TABLE regions as stored on the board."""

    ack_seq: int
    j: int
    bias: int
    table: int

    TYPE = MsgType.DIGEST
    _LAYOUT = (("ack_seq", "H"), ("j", "I"), ("bias", "I"), ("table", "I"))


@dataclass(frozen=True)
class StatusReply(Message):
    """STATUS_REPLY: state, cycle index, credit window, unacknowledged frames, vectors recorded."""

    ack_seq: int
    state: int
    cycle: int
    window: int
    unacked: int
    vectors: int

    TYPE = MsgType.STATUS_REPLY
    _LAYOUT = (
        ("ack_seq", "H"),
        ("state", "B"),
        ("cycle", "Q"),
        ("window", "H"),
        ("unacked", "H"),
        ("vectors", "Q"),
    )

    def _check(self):
        try:
            self._set("state", BoardState(self.state))
        except ValueError:
            raise _bad_argument(
                StatusReply, f"state {self.state} is not a BoardState (0 IDLE, 1 RUNNING, 2 PAUSED)"
            ) from None


@dataclass(frozen=True)
class Stats(Message):
    """STATS: signed 64-bit entries ``first``, ``first + 1``, ... of the statistics vector."""

    ack_seq: int
    first: int
    values: tuple[int, ...]

    TYPE = MsgType.STATS
    _LAYOUT = (("ack_seq", "H"), ("first", "I"))

    def _check(self):
        self._set(
            "values", tuple(_int64("Stats.", f"values[{k}]", v) for k, v in enumerate(self.values))
        )

    def pack(self) -> bytes:
        return struct.pack(f"<HI{len(self.values)}q", self.ack_seq, self.first, *self.values)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        k = _check_array_length(cls, payload, 6, 8, 0)
        ack_seq, first, *values = struct.unpack(f"<HI{k}q", payload)
        return cls(ack_seq, first, tuple(values))


@dataclass(frozen=True, eq=False)
class Samples(Message):
    """SAMPLES: ``count`` recorded states of n p-bits, the first being the state after cycle
    ``first_cycle`` (the next ones ``thin`` cycles apart).

    ``spins`` is an int8 array (count, n) of ±1, stored as a read-only copy; count >= 1. On the
    wire each vector is n bits, p-bit i in bit i % 8 of byte i // 8 (1 = +1), padded with 0 bits
    to whole bytes. Equality compares ``first_cycle`` and the arrays (shape and values).
    """

    first_cycle: int
    spins: np.ndarray

    TYPE = MsgType.SAMPLES
    _LAYOUT = (("first_cycle", "Q"),)
    _HEAD = struct.Struct("<QH")

    def _check(self):
        spins = np.asarray(self.spins)
        if spins.ndim != 2 or spins.shape[0] < 1 or spins.shape[1] < 1:
            raise _bad_argument(
                Samples, f"spins must be a (count >= 1, n >= 1) array, got shape {spins.shape}"
            )
        if spins.shape[0] >= SEQ_MOD:
            raise _bad_argument(Samples, f"count {spins.shape[0]} does not fit the u16 count field")
        if not np.isin(spins, (-1, 1)).all():
            raise _bad_argument(Samples, "spins must be -1 or +1")
        spins = spins.astype(np.int8)  # astype copies: the caller's array may change later
        spins.flags.writeable = False
        self._set("spins", spins)

    @property
    def count(self) -> int:
        return self.spins.shape[0]

    @property
    def n(self) -> int:
        return self.spins.shape[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Samples):
            return NotImplemented
        return self.first_cycle == other.first_cycle and np.array_equal(self.spins, other.spins)

    def __hash__(self) -> int:
        return hash((self.first_cycle, self.spins.shape, self.spins.tobytes()))

    def pack(self) -> bytes:
        bits = np.packbits(self.spins > 0, axis=1, bitorder="little")
        return self._HEAD.pack(self.first_cycle, self.count) + bits.tobytes()

    @classmethod
    def unpack(cls, payload: bytes, n: int) -> Self:  # type: ignore[override]
        """The message from its payload; ``n`` (the number of p-bits) comes from IDENT_REPLY."""
        n = operator.index(n)
        if n < 1:
            raise ValueError(f"Samples.unpack: n must be >= 1, got {n}")
        if len(payload) < cls._HEAD.size:
            _check_length(cls, payload, cls._HEAD.size)  # raises, naming the header length
        first_cycle, count = cls._HEAD.unpack_from(payload)
        per_vector = -(-n // 8)
        expected = cls._HEAD.size + count * per_vector
        if len(payload) != expected:
            raise ProtocolError(
                f"Samples payload with count {count} and n {n} must be 10 + {count}*{per_vector} "
                f"= {expected} bytes, got {len(payload)}",
                code=ErrorCode.BAD_LENGTH,
            )
        bits = np.frombuffer(payload, np.uint8, offset=cls._HEAD.size).reshape(count, per_vector)
        if n % 8 and count and (bits[:, -1] >> (n % 8)).any():
            raise _bad_argument(cls, f"padding bits above p-bit {n - 1} must be 0")
        spins = np.unpackbits(bits, axis=1, count=n, bitorder="little").astype(np.int8) * 2 - 1
        return cls(first_cycle, spins)


def samples_per_frame(n: int, max_frame: int = DEFAULT_MAX_FRAME) -> int:
    """How many n-p-bit vectors one SAMPLES frame of at most ``max_frame`` bytes carries (>= 1)."""
    if n < 1:
        raise ProtocolError(f"n must be >= 1 p-bit, got {n}", code=ErrorCode.BAD_ARGUMENT)
    per_vector = -(-n // 8)
    room = max_frame - MIN_FRAME - Samples._HEAD.size
    k = room // per_vector
    if k < 1:
        raise ProtocolError(
            f"n = {n} p-bits ({per_vector} bytes per vector) is too large for max_frame "
            f"{max_frame}: a SAMPLES frame has room for {max(room, 0)} bytes of vectors",
            code=ErrorCode.BAD_ARGUMENT,
        )
    return min(k, SEQ_MOD - 1)


@dataclass(frozen=True)
class Done(Message):
    """DONE: the end of a run's stream: the cycle index after the last cycle run and the number
    of vectors the run recorded."""

    end_cycle: int
    vectors: int

    TYPE = MsgType.DONE
    _LAYOUT = (("end_cycle", "Q"), ("vectors", "Q"))


@dataclass(frozen=True)
class Error(Message):
    """ERROR: ``code`` (an :class:`ErrorCode`; unknown codes stay ints), the seq it refers to
    and a code-specific ``detail`` (BAD_ADDRESS: the address; BAD_LENGTH: the payload length;
    UNKNOWN_TYPE: the type; VERSION: the board's protocol version; otherwise 0)."""

    code: int
    ack_seq: int
    detail: int = 0

    TYPE = MsgType.ERROR
    _LAYOUT = (("code", "B"), ("ack_seq", "H"), ("detail", "I"))

    def _check(self):
        try:
            self._set("code", ErrorCode(self.code))
        except ValueError:
            pass  # a code from a newer board stays a plain int


# Every message class, by type (all of them are direct subclasses of Message, defined above).
MESSAGES: dict[MsgType, type[Message]] = {cls.TYPE: cls for cls in Message.__subclasses__()}


def encode_message(msg: Message, seq: int, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """The wire bytes of ``msg`` sent with ``seq``."""
    return encode_frame(msg.TYPE, seq, msg.pack(), max_frame)


def decode_message(frame: Frame, n: int | None = None) -> Message:
    """The message in ``frame``; SAMPLES needs ``n`` (ValueError without it).

    Raises ProtocolError with code UNKNOWN_TYPE, BAD_LENGTH or BAD_ARGUMENT and ``seq`` set to the
    frame's seq (what a board puts in the ERROR reply's ack_seq).
    """
    cls = MESSAGES.get(frame.type)
    if cls is None:
        raise ProtocolError(
            f"unknown message type 0x{frame.type:02X} (seq {frame.seq})",
            code=ErrorCode.UNKNOWN_TYPE,
            seq=frame.seq,
        )
    try:
        if cls is Samples:
            if n is None:
                raise ValueError("decoding SAMPLES needs n, the number of p-bits (IDENT_REPLY)")
            return Samples.unpack(frame.payload, n)
        return cls.unpack(frame.payload)
    except ProtocolError as e:
        if e.seq is None:
            e.seq = frame.seq
        raise
