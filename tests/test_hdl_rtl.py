"""The PbitArray's Verilog in Icarus (cocotb 2, run from pytest) against the cycle model.

Each case: convert the array to Verilog with Amaranth, load a model through the register port,
run a few hundred cycles (with a pause of ``run`` in the middle) and compare every p-bit's spin
after every cycle with :func:`pbitsim.sim.hardware.simulate_cycles`, bit for bit. The cocotb side
is tests/cocotb_pbit_array.py. Small arrays (8-24 p-bits) keep Icarus fast.

The schedules and read latencies (:func:`test_schedules_and_read_latency`) build each array once
and load it three times inside one simulation (seeds, initial spins, p or periods and phases), each
load followed by a run-time change the model continues through (a new ENABLE, new PERIODs), with
two pauses of ``run`` per segment: 8 builds, about 3 minutes on a busy 2-core machine.
"""

import dataclasses

import numpy as np
import pytest
from hdl_support import (
    bits_from_spins,
    lattice,
    random_sparse,
    rbm,
    requires_iverilog,
    ring,
    run_cocotb,
)
from pbitsim.hdl.engine import PbitEngine
from pbitsim.hdl.hardware import PbitArray, Register, topology_id

from pbitsim.board.design import HardwareDesign, enable_threshold
from pbitsim.board.regmap import Region, load_writes
from pbitsim.fixedpoint import FixedPointSpec
from pbitsim.sim.array import ArrayModel
from pbitsim.sim.hardware import simulate_cycles

pytestmark = requires_iverilog

NARROW = FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=6, acc_bits=10, rng_bits=12)
DEFAULT = FixedPointSpec.default()
WIDE = FixedPointSpec(weight_bits=12, frac_bits=6, input_bits=10, acc_bits=20, rng_bits=24)


def check(tmp_path, couplings, design, seed, cycles=180, initial=None, lanes=None):
    """Run the case in Icarus: a PbitArray, or a PbitEngine with ``lanes`` lanes."""
    if lanes is None:
        dut = PbitArray(couplings, design)
    else:
        dut = PbitEngine(couplings, design, lanes=lanes)
    amap = dut.address_map
    expected = simulate_cycles(couplings, design, seed, cycles, initial)
    case = {
        "n": couplings.n,
        "writes": amap.load_writes(couplings, design, seed, initial),
        "expected": [bits_from_spins(row) for row in expected],
        "topology_id": topology_id(couplings),
        "reg_topology_lo": amap.register(Register.TOPOLOGY_LO),
        "reg_topology_hi": amap.register(Register.TOPOLOGY_HI),
        "pause_at": cycles // 3,
    }
    run_cocotb(tmp_path, dut, case)


GRAPHS = {
    "ring12": lambda spec, s: ring(12, spec, s, beta=0.9),
    "lattice4x4": lambda spec, s: lattice(4, 4, spec, s, beta=1.1),
    "rbm8x6": lambda spec, s: rbm(8, 6, spec, s, beta=0.7),
    "random20": lambda spec, s: random_sparse(20, spec, s),
}


WIDTHS = {"s3.4": (DEFAULT, 1), "s2.1": (NARROW, 2), "s5.6": (WIDE, 3)}


@pytest.mark.parametrize(
    "graph, width",
    [
        ("ring12", "s3.4"),
        ("ring12", "s2.1"),
        ("lattice4x4", "s3.4"),
        ("lattice4x4", "s5.6"),
        ("rbm8x6", "s2.1"),
        ("rbm8x6", "s5.6"),
        ("random20", "s3.4"),
        ("random20", "s2.1"),
    ],
)
def test_default_design(tmp_path, graph, width):
    """pbitsim's own design (xorshift64, beta in the table) at weight widths 4, 8 and 12 bits
    (every graph at two of them, each with its own seed)."""
    spec, seed = WIDTHS[width]
    c = GRAPHS[graph](spec, seed)
    design = HardwareDesign(fixed_point=spec)
    initial = np.where(np.random.default_rng(seed).random(c.n) < 0.5, -1, 1)
    check(tmp_path, c, design, seed=100 + seed, initial=initial)


@pytest.mark.parametrize(
    "graph, seed", [("lattice4x4", 7), ("random16", 7), ("random16", 8), ("rbm4x6", 8)]
)
def test_published_preset(tmp_path, graph, seed):
    """The published design: s4.1, 32-entry table of 32-bit values, XNOR LFSR32, tie rule,
    two warm-up edges per colour, beta folded into J and h, at most 6 neighbours."""
    design = HardwareDesign.published()
    spec = design.fixed_point
    if graph == "lattice4x4":
        c = lattice(4, 4, spec, seed, beta=1.0)
    elif graph == "random16":
        c = random_sparse(16, spec, seed, max_degree=6, beta=1.0)
    else:
        c = rbm(4, 6, spec, seed, beta=1.0)
    check(tmp_path, c, design, seed=seed, cycles=160)


@pytest.mark.parametrize(
    "graph, spec, design_name, lanes",
    [
        ("lattice4x4", DEFAULT, "default", 3),
        ("rbm8x6", WIDE, "default", 4),
        ("random16", None, "published", 2),
    ],
)
def test_engine(tmp_path, graph, spec, design_name, lanes):
    """The time-multiplexed PbitEngine: same spins after every model cycle."""
    if design_name == "published":
        design = HardwareDesign.published()
        c = random_sparse(16, design.fixed_point, 11, max_degree=6)
    else:
        design = HardwareDesign(fixed_point=spec)
        c = GRAPHS[graph](spec, 12)
    check(tmp_path, c, design, seed=21, cycles=120, lanes=lanes)


# -- schedules and read latency: one build per (graph, schedule, L), several runs in it ----------

# Every (schedule, L) pair that test_default_design does not build (chromatic, L = 0) once, every
# graph twice; "published" builds the published preset's numbers and LFSR with that schedule.
SCHEDULE_CASES = [
    ("lattice4x4", "chromatic", 1, "default"),
    ("random20", "chromatic", 2, "default"),
    ("ring12", "async-random", 0, "published"),
    ("rbm8x6", "async-random", 1, "default"),
    ("random20", "async-random", 2, "default"),
    ("rbm8x6", "async-periodic", 0, "default"),
    ("lattice4x4", "async-periodic", 1, "default"),
    ("ring12", "async-periodic", 2, "published"),
]

#: Regions a reload of seeds, spins and run-time values writes (J, BIAS and TABLE stay).
_RELOAD = (Region.REG, Region.SEED, Region.SPIN, Region.TIMER)


def schedule_runs(c, design, seed: int, cycles: int = 60, after: int = 40) -> list:
    """Three runs in one simulation: each loads seeds, initial spins and the schedule's run-time
    values (p, or periods and phases; the first run the whole model), runs ``cycles`` model
    cycles, changes a run-time value without a restart (a new ENABLE, new PERIODs), and runs
    ``after`` more. Expected spins from the register-port twin ``ArrayModel`` (checked against
    ``simulate_cycles`` for each load); two pauses of ``run`` in every segment."""
    rng = np.random.default_rng(seed)
    arr = ArrayModel(c, design)
    amap = arr.amap

    # Run-time registers read back after each segment's writes (ENABLE is read at once, TIMER
    # words one clock after their address, like J and BIAS).
    if design.schedule == "async-random":
        readable = [(amap.register(Register.ENABLE), False)]
    elif design.schedule == "async-periodic":
        readable = [(a, True) for i in (0, c.n - 1) for a in (amap.period(i), amap.phase(i))]
    else:
        readable = []

    def segment(writes, count):
        for a, d in writes:
            arr.write(a, d)
        reads = [[a, arr.read(a), late] for a, late in readable]
        spins = arr.run(count)
        pauses = sorted(rng.choice(np.arange(1, count), 2, replace=False).tolist())
        return {
            "writes": [list(w) for w in writes],
            "reads": reads,
            "expected": [bits_from_spins(row) for row in spins],
            "pauses": pauses,
        }

    runs = []
    for r in range(3):
        s = seed * 10 + r
        initial = rng.choice([-1, 1], c.n)
        values, change = {}, []
        if design.schedule == "async-random":
            values["p"] = (0.3, 1.0, 0.05)[r]
            change = [(amap.register(Register.ENABLE), enable_threshold((0.8, 0.2, 0.5)[r]))]
        elif design.schedule == "async-periodic":
            values["period"] = (rng.integers(1, 8, c.n), np.ones(c.n, int), np.full(c.n, 5))[r]
            if r == 2:
                values["phase"] = np.zeros(c.n, int)  # all in step: parallel updates
            change = [(amap.period(i), int(rng.integers(1, 9))) for i in range(0, c.n, 3)]
        writes = load_writes(c, design, s, initial, **values)
        if r:
            writes = [(a, d) for a, d in writes if amap.split(a)[0] in _RELOAD]
        first = segment(writes, cycles)
        want = simulate_cycles(c, design, s, cycles, initial, **values)
        assert first["expected"] == [bits_from_spins(row) for row in want]
        runs.append([first, segment(change, after)])
    return runs


@pytest.mark.parametrize("graph, schedule, latency, preset", SCHEDULE_CASES)
def test_schedules_and_read_latency(tmp_path, graph, schedule, latency, preset):
    """Un-coloured schedules and read latency L > 0, bit for bit: one build each, in it three
    loads of seeds, spins and run-time values with a run-time change each (module docstring)."""
    base = HardwareDesign.published() if preset == "published" else HardwareDesign()
    c = GRAPHS[graph](base.fixed_point, 4)
    design = dataclasses.replace(base, schedule=schedule, read_latency=latency)
    dut = PbitArray(c, design)
    amap = dut.address_map
    case = {
        "n": c.n,
        "runs": schedule_runs(c, design, seed=7),
        "topology_id": topology_id(c),
        "reg_topology_lo": amap.register(Register.TOPOLOGY_LO),
        "reg_topology_hi": amap.register(Register.TOPOLOGY_HI),
    }
    run_cocotb(tmp_path, dut, case)
