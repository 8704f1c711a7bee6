"""The firmware at its serial pins: SerialBoard's Verilog in Icarus, cocotb 2 run from pytest,
bytes in on rx and out on tx at 4 clocks per bit (tests/cocotb_firmware.py is the testbench).

One Verilog build per configuration (PbitArray with the published design on a 2 x 3 lattice and
single-port buffers, as on the UP5K; PbitEngine with 2 lanes, a narrow xorshift design, a 3 x 4
RBM and dual-port buffers with the pipelined statistics, as on the ECP5; max_frame 64, 4 resend
frames)
runs every cocotb case in one simulation; each case's transcript is then replayed into the twin,
BoardSession with ArrayModel, and compared: byte for byte where the protocol fixes every byte
(no stream frames involved), message for message otherwise (board seqs may interleave
differently, see firmware/engine.py).
"""

import json
import os
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from board_support import make_board
from firmware_support import (
    assert_same_board_output,
    decode_all,
    replay,
    samples_of,
    stats_of,
)
from hdl_support import HERE, lattice, rbm, requires_iverilog
from pbitsim.firmware.board import SerialBoard

from pbitsim.board import protocol as P
from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import (
    AddressMap,
    Region,
    Register,
    RegisterFile,
    load_digests,
    load_writes,
)
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.hardware import simulate_cycles

pytestmark = [requires_iverilog, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PUBLISHED = HardwareDesign.published()
NARROW = HardwareDesign(
    fixed_point=FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=6, acc_bits=10, rng_bits=12)
)
CONFIGS = {  # name: (design, couplings, lanes, single_port)
    "PbitArray": (PUBLISHED, lattice(2, 3, PUBLISHED.fixed_point, seed=2, beta=0.9), None, True),
    "PbitEngine": (NARROW, rbm(3, 4, NARROW.fixed_point, seed=3, beta=0.8), 2, False),
}
MAX_FRAME, BUFFER_FRAMES, DIVISOR, SEED = 64, 4, 4, 7
TESTS = ["ident_and_load", "run_samples", "run_stats", "backpressure_and_resend", "malformed_input"]


def malformed(c, design) -> list[dict]:
    """Each malformed input, the bytes to send and the ERROR code it must get."""
    amap = AddressMap.for_design(c, design)
    seq = iter(range(5000, 6000))

    def wire(msg):
        return P.encode_message(msg, next(seq), MAX_FRAME)

    raw = bytearray(P.frame_bytes(P.MsgType.STATUS, next(seq)))
    raw[-2] ^= 0x08
    items = [("bad CRC", b"\0" + P.cobs_encode(bytes(raw)) + b"\0", P.ErrorCode.BAD_CRC)]
    items.append(("truncated frame", wire(P.Status())[:-4] + b"\0", P.ErrorCode.BAD_FRAME))
    items.append(("garbage between frames", b"\x13\x37garbage\0", P.ErrorCode.BAD_FRAME))
    items.append(("frame too long", b"\x01" * 80 + b"\0", P.ErrorCode.TOO_LONG))
    items.append(("unknown type", P.encode_frame(0x42, next(seq), b"", MAX_FRAME), 4))
    items.append(("bad length", P.encode_frame(P.MsgType.RUN, next(seq), b"\1\2", MAX_FRAME), 5))
    good = (amap.j(0, 0), 1)
    # A p-bit whose degree leaves room in the slot field for a slot that does not exist.
    short = next(i for i in range(c.n) if c.degrees[i] < 1 << amap.slot_bits)
    for note, bad in [
        ("bad region", amap.address(Region.SPIN, 0) + (1 << amap.index_bits)),
        ("p-bit >= n", amap.bias(c.n)),
        ("slot >= degree", amap.j(short, int(c.degrees[short]))),
        ("read-only register", amap.register(Register.SHAPE)),
    ]:
        items.append((note, wire(P.Write((good, (bad, 5)))), P.ErrorCode.BAD_ADDRESS))
    items.append(("seed read", wire(P.Read((amap.seed(1, 0),))), P.ErrorCode.BAD_ADDRESS))
    thin0 = (9).to_bytes(8, "little") + bytes(4) + b"\1"
    items.append(("thin 0", P.encode_frame(P.MsgType.RUN, next(seq), thin0, MAX_FRAME), 9))
    return [{"note": n, "wire": w.hex(), "code": int(code)} for n, w, code in items]


def make_case(c, d) -> dict:
    amap = AddressMap.for_design(c, d)
    load = load_writes(c, d, SEED)
    reseed = [(a, v) for a, v in load if amap.split(a)[0] in (Region.SEED, Region.SPIN)]
    reseed.append((amap.register(Register.CONTROL), 1))
    digest = load_digests(c, d)
    reads = [amap.register(Register.ID), amap.j(0, 0), amap.j(c.n - 1, 1), amap.bias(2)]
    reads += [amap.table(0), amap.table(amap.table_depth - 1), amap.spin_word(0)]
    regs = RegisterFile(c, d).apply(load)
    run_cycles, run_thin = 150, 1
    stats_cycles, stats_thin = 300, 2
    stats_states = simulate_cycles(c, d, SEED, stats_cycles)[stats_thin - 1 :: stats_thin]
    return {
        "divisor": DIVISOR,
        "max_frame": MAX_FRAME,
        "n": c.n,
        "per_frame": P.samples_per_frame(c.n, MAX_FRAME),
        "load": load,
        "reseed": reseed,
        "digest": [digest[Region.J], digest[Region.BIAS], digest[Region.TABLE]],
        "reads": reads,
        "read_words": [regs.read(a) for a in reads],
        "run_cycles": run_cycles,
        "run_thin": run_thin,
        "run_spins": simulate_cycles(c, d, SEED, run_cycles)[run_thin - 1 :: run_thin].tolist(),
        "stats_cycles": stats_cycles,
        "stats_thin": stats_thin,
        "stats": stats_of(stats_states, c.indptr, c.indices),
        "bp_cycles": 200,
        "malformed": malformed(c, d),
    }


def results_of(xml_path) -> dict:
    """{cocotb test name: failure message or None} from cocotb's JUnit results file."""
    out = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        failure = case.find("failure")
        out[case.get("name")] = None if failure is None else failure.get("message", "failed")
    return out


@pytest.fixture(scope="module", params=list(CONFIGS))
def rtl(request, tmp_path_factory):
    """Build SerialBoard's Verilog once, run every cocotb case, replay each into the twin."""
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    design, couplings, lanes, single_port = CONFIGS[request.param]
    tmp = tmp_path_factory.mktemp("firmware_rtl")
    started = time.monotonic()
    top = SerialBoard(
        couplings,
        design,
        lanes=lanes,
        divisor=DIVISOR,
        max_frame=MAX_FRAME,
        buffer_frames=BUFFER_FRAMES,
        single_port=single_port,
    )
    src = tmp / "top.v"
    src.write_text(verilog.convert(top, name="top", emit_src=False))
    case = make_case(couplings, design)
    (tmp / "case.json").write_text(json.dumps(case))
    out = tmp / "out"
    out.mkdir()
    runner = get_runner("icarus")
    runner.build(
        sources=[src], hdl_toplevel="top", build_dir=tmp / "build", timescale=("1ns", "1ps")
    )
    built = time.monotonic()
    results = tmp / "results.xml"
    try:
        runner.test(
            hdl_toplevel="top",
            test_module="cocotb_firmware",
            build_dir=tmp / "build",
            test_dir=tmp,
            results_xml=str(results),
            extra_env={
                "PBIT_CASE": str(tmp / "case.json"),
                "PBIT_OUT": str(out),
                "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            },
        )
    except SystemExit:  # under pytest the runner exits on a failed case: report them one by one
        pass
    print(
        f"firmware RTL: build {built - started:.1f} s, simulation {time.monotonic() - built:.1f} s"
    )
    verdicts = results_of(results)
    transcripts = {}
    session = make_board(couplings, design, max_frame=MAX_FRAME, buffer_frames=BUFFER_FRAMES)
    twin_so_far = b""
    for name in TESTS:
        path = out / f"{name}.json"
        if not path.exists():
            break
        t = json.loads(path.read_text())
        got = decode_all(bytes.fromhex(t["received"]), MAX_FRAME, couplings.n)
        sent = [
            bytes.fromhex(x[1])
            if x[0] == "raw"
            else (P.decode_message(P.Frame(x[1], x[2], bytes.fromhex(x[3]))), x[2])
            for x in t["sent"]
        ]
        twin = replay(session, sent, couplings.n, got, before=twin_so_far)
        twin_so_far += twin
        transcripts[name] = {**t, "got": got, "twin": twin}
    return {
        "verdicts": verdicts,
        "transcripts": transcripts,
        "case": case,
        "couplings": couplings,
        "design": design,
    }


def passed(rtl, name):
    assert name in rtl["verdicts"], f"cocotb case {name} did not run"
    assert rtl["verdicts"][name] is None, f"cocotb case {name}: {rtl['verdicts'][name]}"
    return rtl["transcripts"][name]


def test_ident_and_load_digest(rtl):
    """IDENT, a full load through load_writes, LOAD_DIGEST = load_digests, READ of the storage:
    the same bytes as BoardSession."""
    t = passed(rtl, "ident_and_load")
    assert bytes.fromhex(t["received"]) == t["twin"]
    digest = [m for _, m in t["got"] if isinstance(m, P.Digest)][0]
    assert [digest.j, digest.bias, digest.table] == rtl["case"]["digest"]


def test_run_streams_simulate_cycles(rtl):
    t = passed(rtl, "run_samples")
    spins, firsts = samples_of(t["got"])
    case = rtl["case"]
    np.testing.assert_array_equal(spins, np.array(case["run_spins"], np.int8))
    per = case["per_frame"]
    assert firsts == [1 + k * per for k in range(len(firsts))]
    twin = decode_all(t["twin"], MAX_FRAME, rtl["couplings"].n)
    assert_same_board_output(t["got"], twin, exact_seqs=False)


def test_stats_equal_software(rtl):
    t = passed(rtl, "run_stats")
    values = [v for _, m in t["got"] if isinstance(m, P.Stats) for v in m.values]
    assert values == rtl["case"]["stats"]
    assert_same_board_output(
        t["got"], decode_all(t["twin"], MAX_FRAME, rtl["couplings"].n), exact_seqs=False
    )


def test_backpressure_loses_nothing(rtl):
    t = passed(rtl, "backpressure_and_resend")
    stream = [(s, m) for s, m in t["got"] if m.TYPE in P.STREAM]
    unique = dict(stream)
    assert len(unique) < len(stream)  # the resent frame came twice, with its seq
    frames = [unique[s] for s in sorted(unique)]
    spins, firsts = samples_of([(0, m) for m in frames])
    cycles, per = rtl["case"]["bp_cycles"], rtl["case"]["per_frame"]
    want = simulate_cycles(rtl["couplings"], rtl["design"], SEED, cycles)
    np.testing.assert_array_equal(spins, want)
    assert firsts == [1 + k * per for k in range(len(firsts))]  # contiguous
    assert frames[-1] == P.Done(cycles, cycles)
    assert_same_board_output(
        t["got"], decode_all(t["twin"], MAX_FRAME, rtl["couplings"].n), exact_seqs=False
    )


def test_malformed_input_answered_and_harmless(rtl):
    """Every malformed input gets its ERROR (the same bytes as BoardSession's) and the digest is
    unchanged; a WRITE while running gets BUSY (checked in the cocotb case)."""
    t = passed(rtl, "malformed_input")
    assert bytes.fromhex(t["received"]) == t["twin"]
    codes = [m.code for _, m in t["got"] if isinstance(m, P.Error)]
    assert codes == [item["code"] for item in rtl["case"]["malformed"]]
