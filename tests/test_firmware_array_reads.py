"""The J / BIAS / TABLE read paths the firmware's READ and LOAD_DIGEST use (hdl/hardware.py,
hdl/engine.py), against RegisterFile (the register map's storage model), Amaranth simulator:
every word reads back as written, reads while stopped leave the chain exactly on the model's
path, and ``cycle_start`` counts the cycles that follow."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_support import bus_write, lattice, random_sparse, spins_from_bits
from pbitsim.hdl.engine import PbitEngine
from pbitsim.hdl.hardware import PbitArray

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import AddressMap, Region, RegisterFile, load_writes, region_addresses
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.hardware import simulate_cycles

PUBLISHED = HardwareDesign.published()
NARROW = HardwareDesign(
    fixed_point=FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=6, acc_bits=10, rng_bits=12)
)


async def late_read(ctx, bus, addr: int) -> int:
    """Hold the address two clocks, sample in the second (J / BIAS / TABLE answer then)."""
    ctx.set(bus.addr, addr)
    await ctx.tick()
    return ctx.get(bus.r_data)


async def run_exactly(ctx, dut, cycles: int, n: int):
    """Start exactly ``cycles`` model cycles (counting ``cycle_start``), let them complete and
    the array stop; the spins after each, and the number of cycles started."""
    ctx.set(dut.run, 1)
    starts, got = 0, []
    for _ in range(50 * cycles + 50):
        if starts == cycles:
            ctx.set(dut.run, 0)
            if len(got) == cycles and not ctx.get(dut.running):
                break
        starts += ctx.get(dut.cycle_start)
        done = ctx.get(dut.cycle_done)
        await ctx.tick()
        if done:
            got.append(spins_from_bits(ctx.get(dut.spins), n))
    return np.array(got).reshape(-1, n), starts


def storage_addresses(c, design):
    amap = AddressMap.for_design(c, design)
    regions = (Region.J, Region.BIAS, Region.TABLE)
    return [a for r in regions for a in region_addresses(amap, c.indptr, r)]


@pytest.mark.parametrize(
    "design, lanes",
    [(PUBLISHED, None), (NARROW, None), (PUBLISHED, 2), (NARROW, 3)],
    ids=["array-published", "array-narrow", "engine-published", "engine-narrow"],
)
def test_reads_equal_register_file_and_leave_the_chain_alone(design, lanes):
    spec = design.fixed_point
    c = random_sparse(9, spec, seed=3) if lanes else lattice(2, 3, spec, 1)
    dut = PbitArray(c, design) if lanes is None else PbitEngine(c, design, lanes=lanes)
    amap = dut.address_map
    writes = load_writes(c, design, 4)
    # Then codes out of their range: the read-back keeps exactly the bits the register map keeps.
    odd = [(amap.bias(0), 0xFFFF_F123), (amap.bias(1), 0x0000_0ABC), (amap.j(1, 0), 0x7F)]
    odd.append((amap.table(2), 0xFFFF_FFFF))
    addrs = storage_addresses(c, design)
    got = {}

    async def bench(ctx):
        for a, d in writes:
            await bus_write(ctx, dut.bus, a, d)
        got["loaded"] = [await late_read(ctx, dut.bus, a) for a in addrs]
        first, starts = await run_exactly(ctx, dut, 25, c.n)
        got["stopped"] = [await late_read(ctx, dut.bus, a) for a in addrs]
        # A TABLE read, then run at once: the clock after it must not take its answer as T[|I|].
        ctx.set(dut.bus.addr, amap.table(3))
        await ctx.tick()
        second, more = await run_exactly(ctx, dut, 25, c.n)
        for _ in range(10):  # stopped: nothing starts or ends
            assert not ctx.get(dut.cycle_start) and not ctx.get(dut.cycle_done)
            await ctx.tick()
        got["starts"] = starts + more
        got["spins"] = np.concatenate([first, second])
        for a, d in odd:
            await bus_write(ctx, dut.bus, a, d)
        got["odd"] = [await late_read(ctx, dut.bus, a) for a in addrs]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    regs = RegisterFile(c, design).apply(writes)
    assert got["loaded"] == got["stopped"] == [regs.read(a) for a in addrs]
    assert got["starts"] == 50
    np.testing.assert_array_equal(got["spins"], simulate_cycles(c, design, 4, 50))
    regs.apply(odd)
    assert got["odd"] == [regs.read(a) for a in addrs]
