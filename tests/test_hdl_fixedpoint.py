"""hdl/fixedpoint.py blocks against pbitsim.fixedpoint (Amaranth simulator)."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator
from pbitsim.hdl.fixedpoint import ActivationTable, Comparator, InputAccumulator, sum_width

from pbitsim.fixedpoint import FixedPointSpec, activation_table, decide, saturate_input

SPECS = [
    FixedPointSpec.published(),
    FixedPointSpec.default(),
    FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=5, acc_bits=8, rng_bits=6),
]


def run(dut, bench, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.format_name)
@pytest.mark.parametrize("degree", [0, 1, 6])
def test_accumulator_sim(spec, degree):
    """Exact sum and symmetric saturation, extremes included (J = code_min negated, etc.)."""
    dut = InputAccumulator(spec, degree)
    rng = np.random.default_rng(degree)
    lo, hi = spec.code_min, spec.code_max
    vectors = [
        (np.full(degree, lo), lo, np.zeros(degree, int)),  # -(-2^(w-1)) terms: maximum
        (np.full(degree, lo), lo, np.ones(degree, int)),
        (np.full(degree, hi), hi, np.ones(degree, int)),
    ]
    for _ in range(200):
        vectors.append(
            (
                rng.integers(lo, hi + 1, degree),
                int(rng.integers(lo, hi + 1)),
                rng.integers(0, 2, degree),
            )
        )

    async def bench(ctx):
        for j, h, s in vectors:
            for k in range(degree):
                ctx.set(dut.j[k], int(j[k]))
            ctx.set(dut.bias, InputAccumulator.bias_of(h, j))
            ctx.set(dut.spins, sum(int(b) << k for k, b in enumerate(s)))
            exact = int(h) + int(np.sum(np.where(s == 1, j, -j)))
            sat = int(saturate_input(exact, spec))
            assert ctx.get(dut.acc) == exact
            assert ctx.get(dut.value) == sat
            assert ctx.get(dut.magnitude) == abs(sat)
            assert ctx.get(dut.negative) == (sat < 0)

    run(dut, bench, clock=False)


def test_accumulator_init():
    spec = FixedPointSpec.published()
    acc = InputAccumulator(spec, 6)
    assert acc.degree == 6 and len(acc.acc) == len(acc.bias) == sum_width(spec, 6) == 10
    assert InputAccumulator.bias_of(3, [1, -2, 5]) == -1
    assert len(acc.magnitude) == 5
    with pytest.raises(ValueError, match="degree"):
        InputAccumulator(spec, -1)
    with pytest.raises(TypeError, match="FixedPointSpec"):
        InputAccumulator("s4.1", 2)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.format_name)
def test_comparator_sim(spec):
    """Every (sign, T, R) near the ties and random ones: same spin as decide()."""
    dut = Comparator(spec)
    top = (1 << spec.rng_bits) - 1
    rng = np.random.default_rng(1)
    ts = [0, 1, top // 2, top - 1, top] + rng.integers(0, top + 1, 10).tolist()
    vectors = []
    for t in ts:
        for r in {t, max(t - 1, 0), min(t + 1, top), int(rng.integers(0, top + 1))}:
            vectors += [(-1, t, r), (1, t, r), (0, t, r)]

    async def bench(ctx):
        for sign, t, r in vectors:
            i_code = sign * 3
            table = np.full(4, t, dtype=np.uint64)
            expected = int(decide(i_code, table, r))
            ctx.set(dut.negative, int(i_code < 0))
            ctx.set(dut.entry, t)
            ctx.set(dut.random, r)
            assert (1 if ctx.get(dut.spin) else -1) == expected, (i_code, t, r)

    run(dut, bench, clock=False)


def test_comparator_exhaustive_small():
    spec = FixedPointSpec(weight_bits=4, frac_bits=1, input_bits=4, acc_bits=8, rng_bits=3)
    dut = Comparator(spec)

    async def bench(ctx):
        for neg, t, r in itertools.product((0, 1), range(8), range(8)):
            ctx.set(dut.negative, neg)
            ctx.set(dut.entry, t)
            ctx.set(dut.random, r)
            expected = int(decide(-1 if neg else 1, np.array([0, t], dtype=np.uint64), r))
            assert (1 if ctx.get(dut.spin) else -1) == expected

    run(dut, bench, clock=False)


@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: s.format_name)
def test_table_sim(spec):
    """Reset contents = activation_table(beta); reads are one cycle late; writes reload it."""
    beta = 0.75
    dut = ActivationTable(spec, read_ports=3, beta=beta)
    init = activation_table(spec, beta).tolist()
    new = (
        activation_table(spec, 2.0).tolist()
        if spec.beta_in_table
        else [(k * 7919) % (1 << spec.rng_bits) for k in range(dut.depth)]
    )

    async def bench(ctx):
        for k in range(dut.depth):
            for p in range(3):
                ctx.set(dut.r_addr[p], (k + p) % dut.depth)
            await ctx.tick()
            for p in range(3):
                assert ctx.get(dut.r_data[p]) == init[(k + p) % dut.depth]
        for k, v in enumerate(new):
            ctx.set(dut.w_addr, k)
            ctx.set(dut.w_data, v)
            ctx.set(dut.w_en, 1)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        for k in range(dut.depth):
            ctx.set(dut.r_addr[1], k)
            await ctx.tick()
            assert ctx.get(dut.r_data[1]) == new[k]

    run(dut, bench)


def test_table_init_wrong():
    with pytest.raises(ValueError, match="read_ports"):
        ActivationTable(FixedPointSpec(), read_ports=0)
