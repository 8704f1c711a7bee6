"""The same host client against the firmware's RTL and against the emulator: bit-identical
samples and identical on-board statistics for the same couplings, design and seed.

The RTL (SerialBoard, published preset, a 2 x 3 lattice, 4 clocks per bit) runs in Icarus under
cocotb; tests/cocotb_bridge.py bridges a local TCP socket to its UART pins, so the client speaks to
it exactly as to a board. The simulated link carries a few hundred bytes per second, so the
client's timeout is raised (a parameter of the board method)."""

import os
import threading
import time

import numpy as np
import pytest
from hdl_support import HERE, lattice, requires_iverilog
from pbitsim.host.emulator import Emulator

import pbitsim
from pbitsim.board.design import HardwareDesign

pytestmark = [requires_iverilog, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PUBLISHED = HardwareDesign.published()
DIVISOR, MAX_FRAME, BUFFER_FRAMES, SEED = 4, 64, 4, 11


def session(url, c, timeout):
    """What the client does with any board: samples, then on-board statistics."""
    with pbitsim.open_runner(c, "board", seed=SEED, port=url, timeout=timeout, retries=1) as r:
        spins = pbitsim.sample(c, 12, method=r, thin=2).spins
        stats = r.statistics(10)
    return spins, stats


def test_rtl_and_emulator_give_the_same_samples(tmp_path):
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner
    from pbitsim.firmware.board import SerialBoard

    c = lattice(2, 3, PUBLISHED.fixed_point, seed=2, beta=0.9)
    top = SerialBoard(
        c, PUBLISHED, divisor=DIVISOR, max_frame=MAX_FRAME, buffer_frames=BUFFER_FRAMES
    )
    src = tmp_path / "top.v"
    src.write_text(verilog.convert(top, name="top", emit_src=False))
    runner = get_runner("icarus")
    runner.build(
        sources=[src], hdl_toplevel="top", build_dir=tmp_path / "build", timescale=("1ns", "1ps")
    )
    port_file = tmp_path / "port"
    sim = threading.Thread(
        target=runner.test,
        kwargs=dict(
            hdl_toplevel="top",
            test_module="cocotb_bridge",
            build_dir=tmp_path / "build",
            test_dir=tmp_path,
            results_xml=str(tmp_path / "results.xml"),
            extra_env={
                "PBIT_DIVISOR": str(DIVISOR),
                "PBIT_PORT_FILE": str(port_file),
                "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            },
        ),
        daemon=True,
    )
    sim.start()
    for _ in range(600):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.1)
    rtl_spins, rtl_stats = session(f"socket://127.0.0.1:{port_file.read_text()}", c, timeout=60)
    sim.join(120)

    with Emulator(c, PUBLISHED, max_frame=MAX_FRAME, buffer_frames=BUFFER_FRAMES) as emu:
        emu_spins, emu_stats = session(emu.start(), c, timeout=1)
    np.testing.assert_array_equal(rtl_spins, emu_spins)
    assert rtl_stats["count"] == emu_stats["count"] == 10
    np.testing.assert_array_equal(rtl_stats["sum"], emu_stats["sum"])
    np.testing.assert_array_equal(rtl_stats["pair_sum"], emu_stats["pair_sum"])
    # and both are the hardware-faithful simulator's
    want = pbitsim.sample(c, 12, method="hardware", design=PUBLISHED, seed=SEED, thin=2).spins
    np.testing.assert_array_equal(emu_spins, want)
