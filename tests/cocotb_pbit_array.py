"""cocotb test of a PbitArray's Verilog (run by tests/test_hdl_rtl.py, not collected by pytest).

The case file (env ``PBIT_CASE``, JSON) holds the register writes that load a model, the expected
spins after every model cycle (from :func:`pbitsim.sim.hardware.simulate_cycles`, one integer per
cycle, bit i = p-bit i), the expected topology id and where to pause ``run``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer


class TB:
    """Owns the clock, the reset and the register-port driver (inputs change on falling edges)."""

    def __init__(self, dut) -> None:
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self) -> None:
        d = self.dut
        d.rst.value = 1
        d.run.value = 0
        d.bus__w_en.value = 0
        d.bus__addr.value = 0
        d.bus__w_data.value = 0
        await ClockCycles(d.clk, 3)
        await FallingEdge(d.clk)
        d.rst.value = 0

    async def write(self, addr: int, data: int) -> None:
        d = self.dut
        await FallingEdge(d.clk)
        d.bus__addr.value = addr
        d.bus__w_data.value = data
        d.bus__w_en.value = 1
        await FallingEdge(d.clk)
        d.bus__w_en.value = 0

    async def read(self, addr: int) -> int:
        d = self.dut
        await FallingEdge(d.clk)
        d.bus__addr.value = addr
        await Timer(1, "ns")
        return d.bus__r_data.value.to_unsigned()


@cocotb.test()
async def follows_cycle_model(dut):
    """Every p-bit's spin after every model cycle equals the cycle model's."""
    with open(os.environ["PBIT_CASE"]) as f:
        case = json.load(f)
    tb = TB(dut)
    await tb.reset()
    # The host's first step: refuse a design built for another graph.
    lo = await tb.read(case["reg_topology_lo"])
    hi = await tb.read(case["reg_topology_hi"])
    assert hi << 32 | lo == case["topology_id"], f"topology id {hi << 32 | lo:#x}"
    for addr, data in case["writes"]:
        await tb.write(addr, data)

    expected = case["expected"]
    pause_at = case.get("pause_at")
    got = []
    was_running = False
    paused = 0
    while len(got) < len(expected):
        await FallingEdge(dut.clk)
        if was_running:
            got.append(dut.spins.value.to_unsigned())
            k = len(got) - 1
            if got[k] != expected[k]:
                diff = got[k] ^ expected[k]
                bad = [i for i in range(case["n"]) if diff >> i & 1]
                raise AssertionError(f"cycle {k + 1}: p-bits {bad} differ from the model")
        pausing = pause_at is not None and len(got) == pause_at and paused < 4
        paused += pausing
        dut.run.value = 0 if pausing else 1
        await Timer(1, "ns")
        was_running = bool(dut.cycle_done.value)
    dut._log.info("%d cycles of %d p-bits match the cycle model", len(got), case["n"])
