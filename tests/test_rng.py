"""Tests of pbitsim.rng: the per-p-bit generators, their seeding, and their statistics."""

import numpy as np
import pytest
from scipy import stats

from pbitsim.rng import (
    GOLDEN64,
    MASK64,
    Lfsr32Xnor,
    Xorshift64,
    check_seeds,
    derive_seeds,
    lfsr32_xnor_next,
    lfsr32_xnor_output,
    make_generator,
    rng_kind_code,
    rng_stream,
    splitmix64,
    splitmix64_next,
    uniform53,
    xorshift64_next,
    xorshift64_output,
)
from pbitsim.sim import jit

# -- splitmix64 and seeding -------------------------------------------------------------------


def test_splitmix64_reference_values():
    # First outputs of Vigna's splitmix64.c started at state 0.
    assert [splitmix64(0, k) for k in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]
    state, z = splitmix64_next(np.zeros(1, np.uint64))  # the plain rule, on an array
    assert int(z[0]) == 0xE220A8397B1DCDAF and int(state[0]) == GOLDEN64
    state, z = jit.splitmix64_next(0)  # the compiled one
    assert int(z) == 0xE220A8397B1DCDAF and int(state) == GOLDEN64


@pytest.mark.parametrize(
    "name", ["xorshift64_next", "lfsr32_xnor_next", "xorshift64_output", "lfsr32_xnor_output"]
)
def test_compiled_rules_are_the_plain_ones(name):
    """pbitsim/sim/jit.py compiles the very functions of pbitsim/rng.py: same numbers, and the
    plain ones also run elementwise on arrays (how rng_stream uses them)."""
    import pbitsim.rng as plain

    states = derive_seeds(5, 200)
    args = (16,) if name.endswith("output") else ()
    want = np.array([getattr(jit, name)(s, *args) for s in states.tolist()], np.uint64)
    np.testing.assert_array_equal(getattr(plain, name)(states, *args), want)
    assert getattr(jit, name).py_func is getattr(plain, name)


def test_compiled_decision_is_the_plain_one():
    from pbitsim.fixedpoint import decide_spin, saturate

    assert jit.decide_spin.py_func is decide_spin and jit.saturate.py_func is saturate
    for i_code, t, r in [(3, 9, 8), (3, 8, 8), (-3, 9, 8), (-3, 8, 9), (0, 5, 5), (0, 6, 5)]:
        assert jit.decide_spin(i_code, np.uint64(t), np.uint64(r)) == decide_spin(i_code, t, r)
    assert [jit.saturate(a, 7) for a in (-9, -7, 0, 7, 9)] == [-7, -7, 0, 7, 7]


def test_derive_seeds_rule():
    n, R, master = 5, 3, 987654321
    seeds = derive_seeds(master, n, "xorshift64", replicas=R)
    assert seeds.shape == (R, n) and seeds.dtype == np.uint64
    want = [[splitmix64(master, r * n + i) for i in range(n)] for r in range(R)]
    assert seeds.tolist() == want
    # Replica 0 is what hardware loads for that master seed.
    assert derive_seeds(master, n).tolist() == want[0]
    lfsr = derive_seeds(master, n, "lfsr32-xnor", replicas=R)
    assert lfsr.tolist() == [[w >> 32 for w in row] for row in want]


def test_derived_seeds_avoid_stuck_states():
    s = derive_seeds(MASK64, 20000, "xorshift64")  # master at the wrap-around edge
    assert np.all(s != 0) and len(np.unique(s)) == len(s)
    t = derive_seeds(3, 20000, "lfsr32-xnor")
    assert np.all((t != 0) & (t != 0xFFFFFFFF)) and t.max() <= 0xFFFFFFFF


def test_check_seeds():
    assert check_seeds([1, 2**64 - 1], "xorshift64").dtype == np.uint64
    with pytest.raises(ValueError, match="stuck state"):
        check_seeds([1, 0], "xorshift64")
    with pytest.raises(ValueError, match="stuck state"):
        check_seeds([0xFFFFFFFF], "lfsr32-xnor")
    with pytest.raises(ValueError, match="outside the 32-bit state"):
        check_seeds([2**32], "lfsr32-xnor")
    with pytest.raises(TypeError, match="integer"):
        check_seeds([1.5], "xorshift64")
    assert check_seeds([0], "lfsr32-xnor").tolist() == [0]  # zero is an ordinary LFSR state


def test_rng_kind_code_wrong():
    assert rng_kind_code("lfsr32-xnor") == 1
    with pytest.raises(ValueError, match="unknown random number generator"):
        rng_kind_code("mt19937")


# -- xorshift64 ----------------------------------------------------------------------------------


def test_xorshift64_first_step_by_hand():
    # 1 ^ (1 << 13) = 0x2001; ^ (0x2001 >> 7 = 0x40) = 0x2041; ^ (0x2041 << 17) = 0x40822041.
    assert int(xorshift64_next(np.uint64(1))) == 0x40822041
    g = Xorshift64(1)
    g.step()
    assert g.state == 0x40822041


@pytest.mark.parametrize("rng_bits", [1, 16, 32])
def test_xorshift64_numba_matches_python(rng_bits):
    for seed in derive_seeds(11, 4):
        g = Xorshift64(int(seed))
        assert g.take(300, rng_bits) == rng_stream("xorshift64", seed, 300, rng_bits).tolist()
        s = np.uint64(seed)
        for _ in range(5):
            assert int(xorshift64_output(s, rng_bits)) == int(s) >> (64 - rng_bits)
            s = xorshift64_next(s)


# -- the published LFSR -----------------------------------------------------------------------


def _lfsr_bits_step(bits):
    """Independent LFSR from the reference's words: bits = [r32, ..., r1]."""
    r = dict(zip(range(32, 0, -1), bits))
    fb = 1 - (r[32] ^ r[22] ^ r[2] ^ r[1])
    return bits[1:] + [fb]  # {r31..r1, fb}


def test_lfsr32_against_bit_list_model():
    for seed in (1, 0xDEADBEEF, 0x80000000, 0x7FFFFFFF):
        bits = [(seed >> (k - 1)) & 1 for k in range(32, 0, -1)]
        g = Lfsr32Xnor(seed)
        s = np.uint64(seed)
        for _ in range(100):
            value = int("".join(map(str, bits)), 2)  # r32..r1 read as unsigned, r32 the MSB
            assert g.output(32) == value == int(lfsr32_xnor_output(s, 32))
            bits = _lfsr_bits_step(bits)
            g.step()
            s = lfsr32_xnor_next(s)


def test_lfsr32_zero_is_ordinary_all_ones_is_stuck():
    assert Lfsr32Xnor(0).take(6) == [0, 1, 2, 4, 9, 18]
    assert rng_stream("lfsr32-xnor", 0, 6, 32).tolist() == [0, 1, 2, 4, 9, 18]
    assert Lfsr32Xnor(0xFFFFFFFF).take(4) == [0xFFFFFFFF] * 4
    assert rng_stream("lfsr32-xnor", 0xFFFFFFFF, 4, 32).tolist() == [0xFFFFFFFF] * 4


def test_lfsr32_top_bits_output():
    g = make_generator("lfsr32-xnor", 0xDEADBEEF)
    assert g.output(16) == 0xDEAD and int(lfsr32_xnor_output(np.uint64(0xDEADBEEF), 16)) == 0xDEAD


def test_generators_reject_bad_seeds():
    with pytest.raises(ValueError):
        Xorshift64(-1)
    with pytest.raises(ValueError):
        Lfsr32Xnor(2**32)


# -- statistics (fixed seeds; tolerances from the sample size) ---------------------------------

N_DRAWS = 40_000


def _uniforms(kind, n_pbits=16, master=2024):
    x = rng_stream(kind, derive_seeds(master, n_pbits, kind), N_DRAWS, 32)
    return (x.astype(np.float64) + 0.5) / 2.0**32


@pytest.mark.parametrize("kind", ["xorshift64", "lfsr32-xnor"])
def test_uniformity(kind):
    u = _uniforms(kind)
    if kind == "lfsr32-xnor":
        # Consecutive LFSR outputs share 31 bits, so their top bytes are not independent draws
        # and the chi-square test would not apply; every 32nd output is a fresh 32-bit window.
        u = u[:, ::32]
    # Chi-square of the top 8 bits per p-bit; a p-value below 1e-4 would be a defect.
    for row in u:
        counts = np.bincount((row * 256).astype(int), minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)


@pytest.mark.parametrize("kind", ["xorshift64", "lfsr32-xnor"])
def test_no_cross_correlation_between_neighbouring_pbits(kind):
    u = _uniforms(kind) - 0.5
    tol = 5.0 / np.sqrt(N_DRAWS)  # 5 standard errors of a correlation of independent streams
    for i in range(u.shape[0] - 1):
        for lag in (-2, -1, 0, 1, 2):
            a = u[i, max(lag, 0) : N_DRAWS + min(lag, 0)]
            b = u[i + 1, max(-lag, 0) : N_DRAWS + min(-lag, 0)]
            assert abs(np.corrcoef(a, b)[0, 1]) < tol, (i, lag)


def test_serial_correlation_xorshift64_small_lfsr32_large():
    """xorshift64's consecutive outputs are uncorrelated; the published LFSR's are not.

    Each LFSR edge shifts the register by one bit, so R_{k+1} = 2 R_k mod 2**32 (+ one new bit):
    consecutive numbers a p-bit compares have correlation 1/2. This is why the published design
    does not sample the Boltzmann distribution of its couplings exactly (docs/hardware-model.md).
    """
    tol = 5.0 / np.sqrt(N_DRAWS)
    u = _uniforms("xorshift64")
    for row in u:
        assert abs(np.corrcoef(row[:-1], row[1:])[0, 1]) < tol
    v = _uniforms("lfsr32-xnor")
    rho = np.mean([np.corrcoef(row[:-1], row[1:])[0, 1] for row in v])
    assert abs(rho - 0.5) < tol


def test_uniform53_range():
    assert uniform53(np.uint64(0)) == 0.0
    assert 0.0 < uniform53(np.uint64(MASK64)) < 1.0
    assert jit.uniform53(MASK64) == uniform53(np.uint64(MASK64))
