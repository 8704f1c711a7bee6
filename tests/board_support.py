"""A minimal host for driving a BoardSession in tests: numbered commands, decoded replies,
stream frames collected in order. (The real host client lives in pbitsim.host.)"""

from __future__ import annotations

import numpy as np

from pbitsim.board import protocol as P
from pbitsim.board.session import BoardSession
from pbitsim.sim.array import ArrayModel


def make_board(couplings, design, **kw) -> BoardSession:
    return BoardSession(ArrayModel(couplings, design), couplings.indptr, couplings.indices, **kw)


class MiniHost:
    """Speaks to a session directly (no link): every frame the board sends is decoded."""

    def __init__(self, board: BoardSession, n: int) -> None:
        self.board = board
        self.n = n
        self.seq = 0
        self.decoder = P.Decoder(board.max_frame)
        self.replies: list[tuple[P.Frame, P.Message]] = []
        self.stream: list[tuple[int, P.Message]] = []  # (seq, SAMPLES/DONE)

    def take(self, wire: bytes) -> None:
        for item in self.decoder.feed(wire):
            assert isinstance(item, P.Frame), item
            msg = P.decode_message(item, self.n)
            if item.type in P.STREAM:
                self.stream.append((item.seq, msg))
            else:
                self.replies.append((item, msg))

    def send_raw(self, wire: bytes):
        before = len(self.replies)
        self.take(self.board.receive(wire))
        return self.replies[before:]

    def send(self, msg: P.Message, seq: int | None = None):
        """Send one command (or flow frame); return its reply message (None for flow)."""
        if seq is None:
            seq = self.seq
        self.seq = P.seq_next(seq)
        got = self.send_raw(P.encode_message(msg, seq, self.board.max_frame))
        if msg.TYPE in P.FLOW:
            assert not got
            return None
        assert len(got) == 1, got
        return got[0][1]

    def write(self, writes) -> None:
        chunk = (self.board.max_frame - P.MIN_FRAME) // 8
        for k in range(0, len(writes), chunk):
            reply = self.send(P.Write(tuple(writes[k : k + chunk])))
            assert isinstance(reply, P.Ack), reply

    def step_all(self, window: int = 4, limit: int = 10_000) -> None:
        """Run the board to the end of its run, acknowledging every stream frame."""
        self.send(P.Credit(self.last_stream_seq(), window))
        for _ in range(limit):
            self.take(self.board.step(4096))
            self.send(P.Credit(self.last_stream_seq(), window))
            if self.board.state is P.BoardState.IDLE and not self.board.unacked:
                return
        raise AssertionError("the run did not end")

    def last_stream_seq(self):
        return self.stream[-1][0] if self.stream else None

    def samples(self) -> tuple[np.ndarray, list[int]]:
        """All SAMPLES vectors (k, n) and the first cycle of each frame."""
        frames = [m for _, m in self.stream if isinstance(m, P.Samples)]
        if not frames:
            return np.zeros((0, self.n), np.int8), []
        return np.concatenate([f.spins for f in frames]), [f.first_cycle for f in frames]
