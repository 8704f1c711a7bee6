"""hdl/rng.py generators against their software twins in pbitsim/rng.py (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from pbitsim.hdl.rng import Lfsr32Xnor, Xorshift64, generator_for

from pbitsim import rng as soft

CASES = [
    (Xorshift64, soft.Xorshift64, 16, 0x0123456789ABCDEF),
    (Xorshift64, soft.Xorshift64, 32, 1),
    (Xorshift64, soft.Xorshift64, 7, 0xFFFFFFFFFFFFFFFF),
    (Lfsr32Xnor, soft.Lfsr32Xnor, 32, 0),
    (Lfsr32Xnor, soft.Lfsr32Xnor, 32, 0xDEADBEEF),
    (Lfsr32Xnor, soft.Lfsr32Xnor, 12, 0x7FFFFFFF),
]


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("hard, twin, rng_bits, seed", CASES)
def test_sim_matches_twin(hard, twin, rng_bits, seed):
    """Output before each edge and state after it, with ``en`` toggling pseudo-randomly."""
    dut = hard(rng_bits, seed)
    ref = twin(seed)
    enables = np.random.default_rng(seed & 0xFFFF).integers(0, 2, 300)

    async def bench(ctx):
        for en in enables.tolist():
            assert ctx.get(dut.output) == ref.output(rng_bits)
            ctx.set(dut.en, en)
            await ctx.tick()
            if en:
                ref.step()
            assert ctx.get(dut.state) == ref.state

    run(dut, bench)


@pytest.mark.parametrize(
    "hard, twin", [(Xorshift64, soft.Xorshift64), (Lfsr32Xnor, soft.Lfsr32Xnor)]
)
def test_seed_write(hard, twin):
    """Seeds arrive 32 bits at a time and win over ``en``; then the stream is the twin's."""
    seeds = soft.derive_seeds(7, 3, twin.kind).tolist()
    dut = hard(16 if twin is soft.Xorshift64 else 32)
    words = dut.state_bits // 32

    async def bench(ctx):
        for s in seeds:
            ctx.set(dut.en, 1)
            for w in range(words):
                ctx.set(dut.seed_data, (s >> (32 * w)) & 0xFFFFFFFF)
                ctx.set(dut.seed_we, 1 << w)
                await ctx.tick()
            ctx.set(dut.seed_we, 0)
            assert ctx.get(dut.state) == s
            ref = twin(s)
            expected = ref.take(20, dut.rng_bits)
            got = []
            for _ in range(20):
                got.append(ctx.get(dut.output))
                await ctx.tick()
            assert got == expected

    run(dut, bench)


def test_init():
    g = Xorshift64(16, 5)
    assert g.seed == 5 and g.rng_bits == 16 and len(g.seed_we) == 2 and len(g.output) == 16
    g = Lfsr32Xnor()
    assert g.seed == 1 and g.rng_bits == 32 and len(g.seed_we) == 1
    assert isinstance(generator_for("lfsr32-xnor", 32, 3), Lfsr32Xnor)


def test_init_wrong():
    with pytest.raises(ValueError, match="rng_bits"):
        Xorshift64(33)
    with pytest.raises(ValueError, match="seed"):
        Lfsr32Xnor(32, 1 << 32)
    with pytest.raises(TypeError, match="seed"):
        Xorshift64(16, 1.5)
    with pytest.raises(ValueError, match="unknown"):
        generator_for("mt19937", 16, 1)
