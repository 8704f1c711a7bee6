"""firmware/throughput.py: link and statistics rates, and the table of docs/protocol.md that
quotes them ("Link throughput per board")."""

from pathlib import Path

import pytest
from pbitsim.firmware.synth import test_graph as synthesis_graph
from pbitsim.firmware.throughput import link_rates, wire_bytes

from pbitsim.board import protocol as P

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def doc_rows():
    text = DOC.read_text()
    section = text[text.index("## Link throughput per board") :]
    rows = [
        line
        for line in section.splitlines()
        if line.startswith("| iCE") or line.startswith("| ULX")
    ]
    assert rows, "the throughput table is missing"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.parametrize("row", doc_rows(), ids=lambda r: "-".join(r[:5]))
def test_docs_table_is_computed(row):
    board, n, edges, clock, banks, memories, samples, stats, readout, win = row
    n, edges, banks = int(n), int(edges), int(banks)
    assert synthesis_graph("triangular", n).nnz // 2 == edges
    r = link_rates(
        n,
        edges,
        baud=3e6,
        clock_hz=float(clock.split()[0]) * 1e6,
        max_frame=256,
        banks=banks,
        single_port=memories == "single",
    )
    assert samples == f"{r.samples_per_s:,.0f}"
    assert stats == f"{r.stats_states_per_s:,.0f}"
    assert readout == f"{r.readout_s * 1e3:.1f} ms"
    assert win == f"{r.win:.2f}×"


def test_samples_rate_counts_every_wire_byte():
    """64 p-bits, max_frame 256: 29 vectors in 17 + 29*8 = 249 bytes, 252 on the wire."""
    assert P.samples_per_frame(64, 256) == 29
    assert wire_bytes(249) == len(P.encode_frame(0x90, 0x0101, b"\x01" * 242, 256))
    r = link_rates(64, 0, baud=3e6, clock_hz=12e6)
    assert r.samples_per_s == pytest.approx(300_000 * 29 / 252)
    assert r.stats_states_per_s == pytest.approx(12e6 / (2 * 65))
