"""hdl/hardware.py (PbitArray, Pbit, AddressMap) against the cycle model, Amaranth simulator.

The RTL (Verilog + Icarus + cocotb) version of the same comparison is tests/test_hdl_rtl.py.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_support import bus_read, bus_write, lattice, random_sparse, record_cycles, ring
from pbitsim.hdl.hardware import AddressMap, PbitArray, Register, topology_id

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import MAGIC, BoardWords, decode_status
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.hardware import simulate_cycles, trace_cycles

DEFAULT = HardwareDesign.default()
PUBLISHED = HardwareDesign.published()


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def simulate_array(couplings, design, seed, cycles, *, preload=False, initial=None, pause_at=None):
    """Spins after each model cycle: loaded through the register port unless ``preload``."""
    dut = PbitArray(couplings, design, preload=preload, seed=seed if preload else 0)
    writes = [] if preload else dut.address_map.load_writes(couplings, design, seed, initial)
    out = {}

    async def bench(ctx):
        for addr, data in writes:
            await bus_write(ctx, dut.bus, addr, data)
        out["spins"] = await record_cycles(ctx, dut, cycles, couplings.n, pause_at)

    run(dut, bench)
    return out["spins"]


@pytest.mark.parametrize("design", [DEFAULT, PUBLISHED], ids=["default", "published"])
def test_preloaded_matches_model(design):
    c = ring(8, design.fixed_point, seed=3, beta=0.8)
    got = simulate_array(c, design, 11, 80, preload=True)
    np.testing.assert_array_equal(got, simulate_cycles(c, design, 11, 80))


@pytest.mark.parametrize("design", [DEFAULT, PUBLISHED], ids=["default", "published"])
def test_loaded_matches_model(design):
    """Values written through the port, a non-default initial state, a pause mid-run."""
    c = random_sparse(12, design.fixed_point, seed=4)
    assert c.n_colors >= 3
    initial = np.where(np.arange(12) % 3 == 0, 1, -1)
    got = simulate_array(c, design, 5, 90, initial=initial, pause_at=37)
    np.testing.assert_array_equal(got, simulate_cycles(c, design, 5, 90, initial))


def test_narrow_weights_saturating():
    spec = FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=4, acc_bits=8, rng_bits=10)
    design = HardwareDesign(fixed_point=spec, rng="lfsr32-xnor", warmup_edges=1)
    c = lattice(3, 3, spec, seed=9, beta=1.3)
    got = simulate_array(c, design, 2, 60)
    np.testing.assert_array_equal(got, simulate_cycles(c, design, 2, 60))


def test_ties_follow_model():
    """3-bit random numbers make R == T common, so the tie rule is exercised in the array."""
    spec = FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=4, acc_bits=8, rng_bits=3)
    design = HardwareDesign(fixed_point=spec)
    c = ring(8, spec, seed=6, beta=0.3)
    _, events = trace_cycles(c, design, 3, 120)
    assert sum(e["updated"] and e["r"] == e["t"] for e in events) > 20
    got = simulate_array(c, design, 3, 120)
    np.testing.assert_array_equal(got, simulate_cycles(c, design, 3, 120))


def test_registers_and_restart():
    c = ring(6, DEFAULT.fixed_point, seed=1)
    dut = PbitArray(c, DEFAULT)
    amap = dut.address_map

    async def bench(ctx):
        assert await bus_read(ctx, dut.bus, amap.register(Register.ID)) == MAGIC
        lo = await bus_read(ctx, dut.bus, amap.register(Register.TOPOLOGY_LO))
        hi = await bus_read(ctx, dut.bus, amap.register(Register.TOPOLOGY_HI))
        assert hi << 32 | lo == topology_id(c) == int(c.topology_fingerprint[:16], 16)
        words = {r: await bus_read(ctx, dut.bus, amap.register(r)) for r in Register}
        reported = BoardWords(
            id=words[Register.ID],
            version=words[Register.VERSION],
            topology=words[Register.TOPOLOGY_HI] << 32 | words[Register.TOPOLOGY_LO],
            shape=words[Register.SHAPE],
            colors=words[Register.COLORS],
            format=words[Register.FORMAT],
            design=words[Register.DESIGN],
        )
        reported.check()
        assert (reported.n, reported.slots, reported.n_colors) == (6, 2, c.n_colors)
        assert reported.hardware_design() == DEFAULT
        await bus_write(ctx, dut.bus, amap.spin(4), 1)
        await bus_write(ctx, dut.bus, amap.spin(1), 1)
        assert await bus_read(ctx, dut.bus, amap.spin_word(0)) == 0b010010
        ctx.set(dut.run, 1)
        for _ in range(4):  # the first clock after a write does not run: 3 cycles, colour 1
            await ctx.tick()
        ctx.set(dut.run, 0)
        colour, warm_done, running = decode_status(
            await bus_read(ctx, dut.bus, amap.register(Register.CONTROL))
        )
        assert colour == 1 and warm_done and not running
        await bus_write(ctx, dut.bus, amap.register(Register.CONTROL), 1)
        assert ctx.get(dut.color) == 0

    run(dut, bench)


def test_address_map():
    c = random_sparse(20, DEFAULT.fixed_point, seed=2)
    amap = AddressMap.for_design(c, DEFAULT)
    assert amap.slots == int(c.degrees.max()) and amap.seed_words == 2
    addrs = [amap.bias(i) for i in range(20)] + [amap.seed(i, w) for i in range(20) for w in (0, 1)]
    addrs += [amap.j(i, k) for i in range(20) for k in range(int(c.degrees[i]))]
    addrs += [amap.table(k) for k in range(512)] + [amap.spin(i) for i in range(20)]
    assert len(set(addrs)) == len(addrs) and max(addrs) < 1 << amap.width
    writes = amap.load_writes(c, DEFAULT, 1)
    assert writes[-1] == (amap.register(Register.CONTROL), 1)
    assert len(writes) == 20 + c.nnz + 512 + 40 + 20 + 1


def test_init():
    c = lattice(2, 3, DEFAULT.fixed_point, seed=0)
    a = PbitArray(c)
    assert a.lanes == 3 and a.n_colors == 2 and len(a.spins) == 6
    assert a.topology_id == topology_id(c)


def test_init_wrong():
    c = ring(4, DEFAULT.fixed_point, seed=0)
    with pytest.raises(ValueError, match="slots"):
        PbitArray(c, HardwareDesign(max_degree=1))
    with pytest.raises(TypeError, match="Couplings"):
        PbitArray("ring")
