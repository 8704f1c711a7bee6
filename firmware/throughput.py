"""What a board's serial link and its statistics accumulator allow: the numbers of
``docs/protocol.md`` ("Link throughput per board"), computed from the protocol's own frame sizes.

Pure Python (no Amaranth): a build tool can call it to advise before synthesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pbitsim.board import protocol as P

__all__ = ["LinkRates", "link_rates", "wire_bytes", "BITS_PER_BYTE"]

#: 8N1: start + 8 data + stop bits per byte on the line.
BITS_PER_BYTE = 10


def wire_bytes(frame_length: int) -> int:
    """Bytes on the wire for an unencoded frame of ``frame_length`` bytes: COBS (one code byte
    per block of up to 254) and the two delimiters, at most (zero-free data needs every code)."""
    return frame_length + math.ceil(frame_length / 254) + 2


@dataclass(frozen=True)
class LinkRates:
    """Rates for one board and one graph.

    Attributes
    ----------
    samples_per_s : float
        Recorded states per second that SAMPLES frames carry over the link (its limit).
    stats_states_per_s : float
        Recorded states per second the statistics accumulator takes (``banks`` memories).
    readout_s : float
        Seconds the link needs to read the whole statistics vector once (READ_STATS pages).
    win : float
        ``stats_states_per_s / samples_per_s``: how many times more states the statistics mode
        uses than streaming can carry (the array permitting).
    """

    samples_per_s: float
    stats_states_per_s: float
    readout_s: float

    @property
    def win(self) -> float:
        return self.stats_states_per_s / self.samples_per_s


def link_rates(
    n: int,
    edges: int,
    *,
    baud: float,
    clock_hz: float,
    max_frame: int = 256,
    banks: int = 1,
    single_port: bool = True,
) -> LinkRates:
    """Link and accumulator rates for ``n`` p-bits and ``edges`` edges.

    Parameters
    ----------
    n, edges : int
    baud : float
        Line rate (bits per second, 8N1).
    clock_hz : float
        The firmware's clock. The accumulator takes ``2 ceil((1 + n + edges) / banks)`` clocks
        per state (a read and a write of each entry) on single-port memories, and
        ``ceil((1 + n + edges) / banks) + 1`` with separate read and write ports.
    max_frame : int
        The board's frame size (IDENT_REPLY).
    banks : int
        Statistics memories updated in parallel.
    single_port : bool
        The statistics memories have one address (SPRAM).
    """
    bytes_per_s = baud / BITS_PER_BYTE
    per_frame = P.samples_per_frame(n, max_frame)
    frame = P.MIN_FRAME + 10 + per_frame * -(-n // 8)
    samples = bytes_per_s * per_frame / wire_bytes(frame)
    entries = 1 + n + edges
    depth = math.ceil(entries / banks)
    stats = clock_hz / (2 * depth if single_port else depth + 1)
    page = (max_frame - P.MIN_FRAME - 6) // 8  # entries per STATS frame
    pages, last = divmod(entries, page)
    reply = pages * wire_bytes(P.MIN_FRAME + 6 + 8 * page)
    reply += wire_bytes(P.MIN_FRAME + 6 + 8 * last) if last else 0
    return LinkRates(samples, stats, reply / bytes_per_s)
