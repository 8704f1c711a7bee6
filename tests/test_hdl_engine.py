"""hdl/engine.py (PbitEngine, time-multiplexed lanes) against the cycle model, Amaranth simulator.

The RTL version of the same comparison is in tests/test_hdl_rtl.py.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_support import bus_read, bus_write, lattice, random_sparse, rbm, record_cycles, ring
from pbitsim.hdl.engine import GAP, PbitEngine
from pbitsim.hdl.hardware import Register, topology_id

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import MAGIC
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.hardware import simulate_cycles

DEFAULT = HardwareDesign.default()
PUBLISHED = HardwareDesign.published()


def simulate_engine(couplings, design, seed, cycles, lanes, initial=None, pause_at=None):
    dut = PbitEngine(couplings, design, lanes=lanes)
    writes = dut.address_map.load_writes(couplings, design, seed, initial)
    out = {}

    async def bench(ctx):
        assert await bus_read(ctx, dut.bus, dut.address_map.register(Register.ID)) == MAGIC
        for addr, data in writes:
            await bus_write(ctx, dut.bus, addr, data)
        out["spins"] = await record_cycles(ctx, dut, cycles, couplings.n, pause_at)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out["spins"]


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_lanes_match_model(lanes):
    """Uneven colour classes (bubbles in some lanes), a pause, a non-default initial state."""
    c = random_sparse(13, DEFAULT.fixed_point, seed=5)
    initial = np.where(np.arange(13) % 4 == 1, 1, -1)
    got = simulate_engine(c, DEFAULT, 9, 70, lanes, initial=initial, pause_at=20)
    np.testing.assert_array_equal(got, simulate_cycles(c, DEFAULT, 9, 70, initial))


@pytest.mark.parametrize("graph", ["ring", "lattice", "rbm"])
def test_published_matches_model(graph):
    spec = PUBLISHED.fixed_point
    c = {
        "ring": lambda: ring(10, spec, 1),
        "lattice": lambda: lattice(3, 4, spec, 2),
        "rbm": lambda: rbm(4, 5, spec, 3),
    }[graph]()
    got = simulate_engine(c, PUBLISHED, 4, 60, lanes=2)
    np.testing.assert_array_equal(got, simulate_cycles(c, PUBLISHED, 4, 60))


def test_one_slot_per_colour_and_ties():
    """One slot per colour (every p-bit of a colour in its own lane: generator read and
    write-back as close as they get), with 3-bit random numbers so that R == T happens often."""
    spec = FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=4, acc_bits=8, rng_bits=3)
    design = HardwareDesign(fixed_point=spec, rng="lfsr32-xnor", warmup_edges=1)
    c = ring(8, spec, seed=6, beta=0.3)
    got = simulate_engine(c, design, 3, 50, lanes=4)
    np.testing.assert_array_equal(got, simulate_cycles(c, design, 3, 50))


def test_init():
    c = lattice(3, 3, DEFAULT.fixed_point, 0)  # classes of 5 and 4
    e = PbitEngine(c, lanes=2)
    assert e.slots == (3 + GAP) + (2 + GAP) and e.slot_color == [0] * 5 + [1] * 4
    assert e.slot_done == [False, False, True, False, False, False, True, False, False]
    assert e.slot_last == [False] * 4 + [True] + [False] * 3 + [True]
    assert sorted(i for lane in e.members for i in lane if i is not None) == list(range(9))
    assert e.topology_id == topology_id(c)


def test_init_wrong():
    c = ring(4, DEFAULT.fixed_point, 0)
    with pytest.raises(ValueError, match="lanes"):
        PbitEngine(c, lanes=0)
    with pytest.raises(TypeError, match="Couplings"):
        PbitEngine("ring", lanes=1)
    with pytest.raises(ValueError, match="read_latency"):
        PbitEngine(c, HardwareDesign(read_latency=1), lanes=1)
    with pytest.raises(ValueError, match="needs PbitArray"):
        PbitEngine(c, HardwareDesign(schedule="async-random"), lanes=1)
