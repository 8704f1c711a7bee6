"""cocotb test of a PbitArray's Verilog (run by tests/test_hdl_rtl.py, not collected by pytest).

The case file (env ``PBIT_CASE``, JSON) holds the expected topology id and one or more *runs* in
one simulation (one build): each run is a list of *segments*, each segment the register writes
made while stopped (a model load with its restart, or a run-time change such as a new ENABLE or
PERIOD, which the model continues through), the expected spins after every model cycle that
follows (one integer per cycle, bit i = p-bit i, from the cycle model), and the model cycles after
which ``run`` drops for a few clocks (pauses must change nothing). The older single-run layout
(``writes``, ``expected``, ``pause_at``) is still read.
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

    async def read(self, addr: int, late: bool = False) -> int:
        """One register read: combinational, or (``late``: J, BIAS, TABLE, TIMER) the word
        addressed one clock earlier: hold the address two clocks, sample in the second."""
        d = self.dut
        await FallingEdge(d.clk)
        d.bus__addr.value = addr
        if late:
            await FallingEdge(d.clk)
        await Timer(1, "ns")
        return d.bus__r_data.value.to_unsigned()

    async def run_cycles(self, expected, pauses, n: int, where: str) -> None:
        """Hold ``run`` high until len(expected) model cycles have passed, comparing the spins
        after each; after the model cycles listed in ``pauses``, drop ``run`` for 3 clocks."""
        d = self.dut
        got = 0
        was_running = False
        paused = 0
        pauses = set(pauses)
        while True:
            await FallingEdge(d.clk)
            if was_running:
                value = d.spins.value.to_unsigned()
                if value != expected[got]:
                    diff = value ^ expected[got]
                    bad = [i for i in range(n) if diff >> i & 1]
                    raise AssertionError(f"{where}, cycle {got + 1}: p-bits {bad} differ")
                got += 1
            if got == len(expected):
                d.run.value = 0  # before the next rising edge: no model cycle beyond these
                return
            pausing = got in pauses and paused < 3
            paused = paused + 1 if pausing else 0
            if pausing and paused == 3:
                pauses.discard(got)
            d.run.value = 0 if pausing else 1
            await Timer(1, "ns")
            was_running = bool(d.cycle_done.value)


def _runs(case: dict) -> list:
    if "runs" in case:
        return case["runs"]
    pause = [] if case.get("pause_at") is None else [case["pause_at"]]
    return [[{"writes": case["writes"], "expected": case["expected"], "pauses": pause}]]


@cocotb.test()
async def follows_cycle_model(dut):
    """Every p-bit's spin after every model cycle equals the cycle model's, in every run."""
    with open(os.environ["PBIT_CASE"]) as f:
        case = json.load(f)
    tb = TB(dut)
    await tb.reset()
    # The host's first step: refuse a design built for another graph.
    lo = await tb.read(case["reg_topology_lo"])
    hi = await tb.read(case["reg_topology_hi"])
    assert hi << 32 | lo == case["topology_id"], f"topology id {hi << 32 | lo:#x}"
    total = 0
    for r, run in enumerate(_runs(case)):
        for k, seg in enumerate(run):
            for addr, data in seg["writes"]:
                await tb.write(addr, data)
            for addr, want, late in seg.get("reads", []):
                got = await tb.read(addr, late)
                assert got == want, f"run {r} segment {k}: read {addr:#x} = {got:#x}, not {want:#x}"
            await tb.run_cycles(seg["expected"], seg["pauses"], case["n"], f"run {r} segment {k}")
            total += len(seg["expected"])
    dut._log.info("%d cycles of %d p-bits match the cycle model", total, case["n"])
