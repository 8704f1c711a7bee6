"""Tests of the hardware-faithful cycle model (pbitsim.sim.hardware) and of docs/hardware-model.md.

Run ``python tests/test_hardware_model.py`` to rewrite the test-vector blocks of the document from
the model (then review the diff: a changed vector means the RTL contract changed).
"""

import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pbitsim import Couplings, FixedPointSpec, models
from pbitsim.exact import boltzmann, state_index
from pbitsim.fixedpoint import activation_table
from pbitsim.rng import Lfsr32Xnor, Xorshift64, derive_seeds, splitmix64
from pbitsim.sampling import get_method
from pbitsim.sim.hardware import (
    HardwareDesign,
    HardwareMachine,
    HardwareRunner,
    simulate_cycles,
    simulate_cycles_reference,
    trace_cycles,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware-model.md"
PUBLISHED = HardwareDesign.published()
DEFAULT = HardwareDesign.default()


def pair(j, h0=0.0, h1=0.0, beta=1.0, coloring=(0, 1)):
    """Two coupled p-bits; by default p-bit 0 is colour 0 and p-bit 1 colour 1."""
    return Couplings.from_edges(2, [(0, 1, j)], h=[h0, h1], beta=beta, coloring=list(coloring))


# -- the design ----------------------------------------------------------------------------------


def test_init():
    assert DEFAULT == HardwareDesign()
    assert DEFAULT.fixed_point == FixedPointSpec.default()
    assert (DEFAULT.rng, DEFAULT.schedule, DEFAULT.warmup_edges, DEFAULT.read_latency) == (
        "xorshift64",
        "chromatic",
        0,
        0,
    )
    assert DEFAULT.initial_spin == -1 and DEFAULT.max_degree is None
    assert HardwareDesign.from_name(PUBLISHED.to_dict()) == PUBLISHED
    assert HardwareDesign.from_name("default") == DEFAULT


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"rng": "mt19937"}, "rng must be"),
        ({"schedule": "random"}, "schedule must be"),
        ({"warmup_edges": -1}, "warmup_edges"),
        ({"read_latency": 1.5}, "read_latency"),
        ({"initial_spin": 0}, "initial_spin"),
        ({"max_degree": 0}, "max_degree"),
    ],
)
def test_init_wrong(kw, match):
    with pytest.raises(ValueError, match=match):
        HardwareDesign(**kw)
    with pytest.raises(ValueError, match="unknown hardware design"):
        HardwareDesign.from_name("fast")


def test_wrong_inputs():
    c = models.ring(4)
    with pytest.raises(ValueError, match="stuck state"):
        simulate_cycles(c, DEFAULT, [1, 2, 0, 3], 4)
    with pytest.raises(ValueError, match="shape"):
        simulate_cycles(c, DEFAULT, [1, 2, 3], 4)
    with pytest.raises(ValueError, match="initial state"):
        simulate_cycles(c, DEFAULT, 1, 4, initial=[1, 0, 1, 1])
    with pytest.raises(ValueError, match="quantised with"):
        simulate_cycles(c.quantized(FixedPointSpec.default()), PUBLISHED, 1, 4)
    with pytest.raises(ValueError, match="neighbour slots"):
        simulate_cycles(models.ferromagnet(8, J=0.5), PUBLISHED, 1, 4)
    with pytest.warns(UserWarning, match="the design's spec is what runs"):
        simulate_cycles(c.replace(fixed_point=FixedPointSpec.published()), DEFAULT, 1, 4)


# -- every fact of shared/reference/published-pbit-rtl.md -------------------------------------


def test_published_numbers():
    spec = PUBLISHED.fixed_point
    assert (spec.weight_bits, spec.frac_bits, spec.format_name) == (6, 1, "s4.1")
    assert (spec.code_min, spec.code_max, spec.input_max, spec.acc_bits) == (-32, 31, 31, 9)
    assert (spec.rng_bits, spec.beta_in_table) == (32, False)
    assert (PUBLISHED.rng, PUBLISHED.warmup_edges, PUBLISHED.max_degree) == ("lfsr32-xnor", 2, 6)
    assert PUBLISHED.read_latency == 0


def test_published_table_formula_all_32_entries():
    table = pair(1.0).quantized(PUBLISHED.fixed_point).table
    want = [min(2**32 - 1, math.floor(2**32 * (1 + math.tanh(k / 2)) / 2 + 0.5)) for k in range(32)]
    assert table.tolist() == want
    assert table[0] == 2**31 and table[21] < 2**32 - 1
    assert all(t == 2**32 - 1 for t in table[22:])


def test_published_beta_folded_with_clipping_warning():
    q = pair(3.0, h0=-0.75, beta=2.0).quantized(PUBLISHED.fixed_point)
    assert q.j_codes.tolist() == [12, 12] and q.h_codes.tolist() == [-3, 0]  # -1.5 -> code -3
    assert q.effective_couplings()[2] == 1.0  # beta lives in the codes, table built for beta = 1
    with pytest.warns(UserWarning, match="clipped"):
        q = pair(10.0, h1=-9.0, beta=2.0).quantized(PUBLISHED.fixed_point)
    assert q.j_codes.tolist() == [31, 31] and q.h_codes.tolist() == [0, -32]
    with pytest.warns(UserWarning, match="clipped"):
        simulate_cycles(pair(10.0, beta=2.0), PUBLISHED, 1, 3)


def _lfsr_prev(x):
    """Inverse LFSR step, from the reference's rule (r' = {r31..r1, NOT(r32^r22^r2^r1)})."""

    def bit(k):
        return (x >> (k - 1)) & 1

    r32 = (1 - bit(1)) ^ bit(23) ^ bit(3) ^ bit(2)  # r22, r2, r1 of the old state
    return (r32 << 31) | (x >> 1)


def _seed_for_edge3(r):
    """A seed whose LFSR output at edge 3 (the seed shifted twice) is r."""
    seed = _lfsr_prev(_lfsr_prev(r))
    g = Lfsr32Xnor(seed)
    g.step()
    g.step()
    assert g.state == r
    return seed


@pytest.mark.parametrize(
    "h, initial, r_offset, want",
    [
        (-0.5, +1, 0, -1),  # I < 0, R == T: tie gives -1 (without the rule it would be +1)
        (-0.5, -1, +1, +1),  # I < 0, R > T: +1
        (-0.5, +1, -1, -1),  # I < 0, R < T: -1
        (+0.5, +1, 0, -1),  # I >= 0, R == T: -1
        (+0.5, -1, -1, +1),  # I >= 0, R < T: +1
    ],
)
def test_published_comparator_and_first_update_at_edge_3(h, initial, r_offset, want):
    c = Couplings.from_dense(np.zeros((1, 1)), h=[h])  # one p-bit: one colour, one edge a cycle
    t1 = int(c.quantized(PUBLISHED.fixed_point).table[1])  # |I| = 1 (0.5)
    seed = _seed_for_edge3(t1 + r_offset)
    s = simulate_cycles(c, PUBLISHED, [seed], 3, initial=[initial])
    assert s[:, 0].tolist() == [initial, initial, want]  # edges 1 and 2 change nothing


def test_published_lfsr_seen_through_a_free_pbit():
    """h = 0: s = +1 iff R < 2**31 (and R != T[0] = 2**31), i.e. iff bit 32 of R is 0.

    With warm-up 0 edge k compares the seed shifted k - 1 times: the spins read out the LFSR.
    """
    c = Couplings.from_dense(np.zeros((1, 1)))
    design = HardwareDesign(fixed_point=PUBLISHED.fixed_point, rng="lfsr32-xnor")
    for seed in (0, 1, 0xDEADBEEF):
        g = Lfsr32Xnor(seed)
        want = [1 if r >> 31 == 0 and r != 2**31 else -1 for r in g.take(64)]
        assert simulate_cycles(c, design, [seed], 64)[:, 0].tolist() == want


def test_published_saturation_and_negated_minus_16():
    # p-bit 1 is colour 0 here: it first updates at cycle 5, reading the initial s0.
    seeds = derive_seeds(5, 2, "lfsr32-xnor", replicas=50)
    c = pair(-16.0, coloring=(1, 0))  # J = -16 is code -32 (bits 100000)
    for s in seeds:
        # s0 = -1: -(-32) = +32 (not wrapped to -32), saturated to +31 -> +1 whatever R.
        assert simulate_cycles(c, PUBLISHED, s, 5, initial=[-1, -1])[4].tolist() == [-1, 1]
        # s0 = +1: the sum -32 is clamped to -31 (|I| never wraps to index 0) -> -1 whatever R.
        assert simulate_cycles(c, PUBLISHED, s, 5, initial=[1, 1])[4].tolist() == [1, -1]


def test_published_deterministic_pair_by_hand():
    """J = -15.5 (code -31), h = 0, start (+1, +1). Worked from the reference's rules:

    colour 0 = p-bit 0 updates at cycles 1, 3, 5, ...; colour 1 at 2, 4, 6, ...; edges 1 and 2 of
    each colour (cycles 1-4) change nothing. Cycle 5: I0 = -31 * (+1) = -31 -> -1. Cycle 6: p-bit 1
    reads the new s0 = -1: I1 = +31 -> +1. From then on I0 = -31, I1 = +31: the state stays.
    """
    c = pair(-15.5)
    want = [[1, 1]] * 4 + [[-1, 1]] * 4
    for s in derive_seeds(9, 2, "lfsr32-xnor", replicas=20):
        assert simulate_cycles(c, PUBLISHED, s, 8, initial=[1, 1]).tolist() == want


def test_read_latency_pair_by_hand():
    """Same pair with read latency 1: the p-bit at cycle t reads S_{t-2} (worked by hand)."""
    c = pair(-15.5)
    design = HardwareDesign(
        fixed_point=PUBLISHED.fixed_point, rng="lfsr32-xnor", warmup_edges=2, read_latency=1
    )
    want = [[1, 1]] * 4 + [[-1, 1], [-1, -1], [-1, -1], [-1, 1], [1, 1], [1, 1], [-1, 1], [-1, -1]]
    for s in derive_seeds(9, 2, "lfsr32-xnor", replicas=20):
        assert simulate_cycles(c, design, s, 12, initial=[1, 1]).tolist() == want


def test_published_three_colour_clocks():
    """Colour c <-> clock phase c * 120 degrees: the first updates are at cycles 7, 8, 9."""
    c = models.ring(3, J=0.5, h=15.5)  # |I| >= 30: every update gives +1
    assert c.coloring.tolist() == [0, 1, 2]
    s = simulate_cycles(c, PUBLISHED, 3, 10)
    assert s[:6].tolist() == [[-1, -1, -1]] * 6
    assert s[6:].tolist() == [[1, -1, -1], [1, 1, -1], [1, 1, 1], [1, 1, 1]]


# -- an independent implementation of docs/hardware-model.md, for hand-size graphs -----------


def doc_model(J_codes, h_codes, colours, seeds, cycles, spec, rng, warmup, initial):
    """The document's rules written out again with Python ints (no pbitsim arithmetic)."""
    n, C = len(h_codes), max(colours) + 1
    gens = [Xorshift64(s) if rng == "xorshift64" else Lfsr32Xnor(s) for s in seeds]
    r_bits, f = spec.rng_bits, spec.frac_bits
    imax = 2 ** (spec.input_bits - 1) - 1
    table = [
        min(2**r_bits - 1, math.floor(2**r_bits * (1 + math.tanh(k / 2**f)) / 2 + 0.5))
        for k in range(imax + 1)
    ]
    s = list(initial)
    out = []
    for t in range(1, cycles + 1):
        colour, edge = (t - 1) % C, (t - 1) // C + 1
        new = list(s)
        for i in range(n):
            if colours[i] != colour:
                continue
            r = gens[i].output(r_bits)
            if edge > warmup:
                acc = h_codes[i] + sum(J_codes[i][j] * s[j] for j in range(n))
                I = max(-imax, min(imax, acc))
                T = table[abs(I)]
                new[i] = (
                    -1 if r == T else ((1 if T > r else -1) if I >= 0 else (-1 if T > r else 1))
                )
            gens[i].step()
        s = new
        out.append(list(s))
    return out


@pytest.mark.parametrize("name", ["default", "published"])
def test_doc_model_agrees_on_small_graphs(name):
    design = HardwareDesign.from_name(name)
    rng = np.random.default_rng(4)
    for trial in range(4):
        c = models.spin_glass(5, p=0.6, seed=trial, beta=1.0)
        q = c.quantized(design.fixed_point)
        J = np.zeros((c.n, c.n), dtype=np.int64)
        J[np.repeat(np.arange(c.n), c.degrees), c.indices] = q.j_codes
        init = rng.choice([-1, 1], c.n).tolist()
        seeds = derive_seeds(trial, c.n, design.rng)
        want = doc_model(
            J.tolist(),
            q.h_codes.tolist(),
            c.coloring.tolist(),
            [int(x) for x in seeds],
            40,
            design.fixed_point,
            design.rng,
            design.warmup_edges,
            init,
        )
        assert simulate_cycles(c, design, trial, 40, initial=init).tolist() == want


# -- Python reference vs Numba ---------------------------------------------------------------


@pytest.mark.parametrize(
    "design",
    [
        DEFAULT,
        PUBLISHED,
        HardwareDesign(warmup_edges=3, read_latency=2, initial_spin=1),
        HardwareDesign(
            fixed_point=FixedPointSpec(
                weight_bits=5, frac_bits=2, input_bits=4, acc_bits=8, rng_bits=7
            ),
            rng="lfsr32-xnor",
            read_latency=1,
        ),
    ],
)
def test_reference_and_numba_bit_identical(design):
    graphs = [
        models.spin_glass(10, p=0.35, seed=1, weights="gauss", field=0.5, beta=0.8),
        models.random_regular(10, degree=3, seed=2, beta=1.3),
        models.ring(7, J=-0.75, h=0.3),
    ]
    for k, c in enumerate(graphs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # clipping in the narrow formats is fine here
            init = np.random.default_rng(k).choice([-1, 1], c.n)
            a = simulate_cycles(c, design, 100 + k, 150, initial=init)
            b = simulate_cycles_reference(c, design, 100 + k, 150, initial=init)
        assert a.dtype == np.int8 and a.shape == (150, c.n)
        np.testing.assert_array_equal(a, b)


def test_improper_colouring_updates_in_parallel():
    """Coupled p-bits of one colour see each other's values from before the edge."""
    c = pair(-7.5)
    q = c.quantized(DEFAULT.fixed_point)
    s = simulate_cycles(q, DEFAULT, 1, 3, initial=[1, 1], coloring=[0, 0])
    # Both read (+1, +1): I = -120, both flip to -1 together, then both back to +1.
    assert s[:, 0].tolist() == s[:, 1].tolist()
    np.testing.assert_array_equal(
        s, simulate_cycles_reference(q, DEFAULT, 1, 3, initial=[1, 1], coloring=[0, 0])
    )


# -- runner, replicas, chunking --------------------------------------------------------------


def test_runner_replicas_match_simulate_cycles():
    c = models.spin_glass(7, p=0.5, seed=3, beta=0.7)
    R, S, C = 3, 77, c.n_colors
    run = HardwareRunner(c, replicas=R, seed=S, design="published")
    d = run.draw(4, thin=2)
    assert d.shape == (R, 4, c.n) and d.dtype == np.int8
    seeds = derive_seeds(S, c.n, "lfsr32-xnor", replicas=R)
    for r in range(R):
        full = simulate_cycles(c, PUBLISHED, seeds[r], 8 * C)
        np.testing.assert_array_equal(d[r], full[2 * C - 1 :: 2 * C])
    assert run.info()["cycles"] == 8 * C and run.step_unit == "colour period"
    assert get_method("hardware") is HardwareRunner


def test_runner_chunking_is_invisible():
    c = models.random_regular(12, degree=3, seed=5)
    a = HardwareRunner(c, replicas=4, seed=1, design=HardwareDesign(read_latency=2))
    b = HardwareRunner(c, replicas=4, seed=1, design=HardwareDesign(read_latency=2))
    x = np.concatenate([a.draw(3, 2), a.draw(2, 2)], axis=1)
    b.advance(1)
    y = b.draw(9, 1)
    np.testing.assert_array_equal(x, np.concatenate([y[:, 0:1], y[:, 2::2]], axis=1))


def test_runner_explicit_seeds_and_settings():
    c = models.ring(4)
    seeds = [[1, 2, 3, 4], [5, 6, 7, 8]]
    run = HardwareRunner(c, replicas=2, seeds=seeds, initial=[1, 1, -1, -1])
    assert run.settings["seeds"] == seeds and run.settings["design"]["rng"] == "xorshift64"
    np.testing.assert_array_equal(
        run.draw(5)[1], simulate_cycles(c, DEFAULT, seeds[1], 10, initial=[1, 1, -1, -1])[1::2]
    )
    m = HardwareMachine(c, DEFAULT, np.array(seeds, dtype=np.uint64))
    m.run(3)
    g = Xorshift64(5)
    for _ in range(2):  # p-bit 0 (colour 0) has seen edges at cycles 1 and 3
        g.step()
    assert m.generator_states[1, 0] == g.state and m.cycle == 3


def test_through_sample_when_available():
    import pbitsim

    sample = getattr(pbitsim, "sample", None)
    if sample is None:
        pytest.skip("pbitsim.sample is not written yet")
    c = models.ring(5, J=0.5)
    out = sample(c, method="hardware", sweeps=6, replicas=2, seed=3)
    assert out.method == "hardware" and out.spins.shape[0] == 2


# -- statistics: samples follow the Boltzmann distribution of the quantised couplings ---------

R_STAT = 20_000


def effective_model(c, design):
    j, h, beta = c.quantized(design.fixed_point).effective_couplings()
    return Couplings(c.indptr, c.indices, j, h, beta, coloring=c.coloring)


def chi_square_pvalue(spins, p):
    """Pearson chi-square of independent draws against p (cells with < 5 expected pooled)."""
    counts = np.bincount(state_index(spins), minlength=len(p))
    e = p * len(spins)
    small = e < 5
    o = np.r_[counts[~small], counts[small].sum()]
    e = np.r_[e[~small], e[small].sum()]
    if e[-1] == 0:
        o, e = o[:-1], e[:-1]
    return stats.chi2.sf(((o - e) ** 2 / e).sum(), len(e) - 1)


def final_states(c, design, seed):
    """One draw per replica after burn-in: independent draws, so the chi-square test applies."""
    init = np.random.default_rng(seed).choice([-1, 1], (R_STAT, c.n)).astype(np.int8)
    run = HardwareRunner(c, replicas=R_STAT, seed=seed, design=design, initial=init)
    run.advance(40)
    return run.draw(1)[:, 0]


STAT_MODELS = {
    "ring5": models.ring(5, J=0.6, h=-0.2),
    "glass6": models.spin_glass(6, p=0.7, seed=3, beta=0.5),
}

PUBLISHED_NUMBERS_XORSHIFT = HardwareDesign(
    fixed_point=FixedPointSpec.published(), rng="xorshift64", warmup_edges=2
)


@pytest.mark.parametrize("model", sorted(STAT_MODELS))
@pytest.mark.parametrize(
    "design", [DEFAULT, PUBLISHED_NUMBERS_XORSHIFT], ids=["default", "published-numbers-xorshift64"]
)
def test_samples_follow_quantised_boltzmann(model, design):
    c = STAT_MODELS[model]
    s = final_states(c, design, seed=11)
    assert chi_square_pvalue(s, boltzmann(effective_model(c, design))) > 1e-3


def test_published_lfsr_biases_the_distribution():
    """The published preset does NOT sample its quantised Boltzmann distribution.

    Its LFSR shifts one bit per p-bit edge, so consecutive numbers a p-bit compares are
    correlated (rho = 1/2, see test_rng). The same numbers with xorshift64 pass the test above;
    with the LFSR the deviation is far outside the sampling error.
    """
    c = STAT_MODELS["ring5"]
    s = final_states(c, PUBLISHED, seed=11)
    assert chi_square_pvalue(s, boltzmann(effective_model(c, PUBLISHED))) < 1e-12


# -- docs/hardware-model.md: its test vectors are the model's output -------------------------


def _fmt_trace(c, design, seed, cycles):
    states, events = trace_cycles(c, design, seed, cycles)
    rbits = design.fixed_point.rng_bits
    w = (rbits + 3) // 4
    lines = [
        f"{'cycle':>5} {'col':>3} {'pbit':>4} {'edge':>4}  {'R':>{w + 2}} {'acc':>4} "
        f"{'I':>4} {'T':>{w + 2}} {'s':>2}   S_t"
    ]
    for ev in events:
        upd = ev["updated"]
        lines.append(
            f"{ev['cycle']:>5} {ev['colour']:>3} {ev['pbit']:>4} {ev['edge']:>4}  "
            f"{ev['r']:#0{w + 2}x} "
            f"{ev['acc'] if upd else '-':>4} {ev['i_code'] if upd else '-':>4} "
            f"{format(ev['t'], f'#0{w + 2}x') if upd else 'hold':>{w + 2}} {ev['spin']:>+2}   "
            + " ".join(f"{x:+d}" for x in states[ev["cycle"] - 1])
        )
    return "\n".join(lines)


def _fmt_async_trace(c, design, seed, cycles, **values):
    """Trace of an un-coloured schedule: one line per acting p-bit (k: its k-th action; E: the
    enable number it compared, async-random only)."""
    states, events = trace_cycles(c, design, seed, cycles, **values)
    rbits = design.fixed_point.rng_bits
    w = (rbits + 3) // 4
    random = design.schedule == "async-random"
    lines = [
        f"{'cycle':>5} {'pbit':>4} {'k':>3}  "
        + (f"{'E':>6} " if random else "")
        + f"{'R':>{w + 2}} {'acc':>4} {'I':>4} {'T':>{w + 2}} {'s':>2}   S_t"
    ]
    for ev in events:
        upd = ev["updated"]
        lines.append(
            f"{ev['cycle']:>5} {ev['pbit']:>4} {ev['edge']:>3}  "
            + (f"{ev['e']:#06x} " if random else "")
            + f"{ev['r']:#0{w + 2}x} "
            f"{ev['acc'] if upd else '-':>4} {ev['i_code'] if upd else '-':>4} "
            f"{format(ev['t'], f'#0{w + 2}x') if upd else 'hold':>{w + 2}} {ev['spin']:>+2}   "
            + " ".join(f"{x:+d}" for x in states[ev["cycle"] - 1])
        )
    return "\n".join(lines)


RING3 = Couplings.from_edges(
    3, [(0, 1, 0.75), (1, 2, -0.5), (0, 2, 0.25)], h=[0.25, 0.0, -0.5], beta=1.0
)


def doc_vectors() -> dict[str, str]:
    """Every test-vector block of docs/hardware-model.md, as the model makes it."""
    v = {}
    rows = ["  i  splitmix64(1, i)    xorshift64 seed     lfsr32-xnor seed"]
    xs, ls = derive_seeds(1, 4, "xorshift64"), derive_seeds(1, 4, "lfsr32-xnor")
    for i in range(4):
        rows.append(f"{i:>3}  {splitmix64(1, i):#018x}  {int(xs[i]):#018x}  {int(ls[i]):#010x}")
    v["seeds"] = "\n".join(rows)

    rows = []
    for seed in (1, int(xs[0])):
        rows.append(f"seed {seed:#018x}")
        rows.append("edge  state before edge     R (16 bits)  R (32 bits)")
        g = Xorshift64(seed)
        for k in range(1, 9):
            rows.append(f"{k:>4}  {g.state:#018x}  {g.output(16):#06x}       {g.output(32):#010x}")
            g.step()
    v["xorshift64"] = "\n".join(rows)

    rows = ["edge  " + "  ".join(f"seed {s:#010x}" for s in (1, 0, 0xDEADBEEF))]
    gens = [Lfsr32Xnor(s) for s in (1, 0, 0xDEADBEEF)]
    for k in range(1, 9):
        rows.append(f"{k:>4}  " + "  ".join(f"     {g.output(32):#010x}" for g in gens))
        for g in gens:
            g.step()
    v["lfsr32-xnor"] = "\n".join(rows)

    t = activation_table(FixedPointSpec.published())
    v["published-table"] = "\n".join(
        "  ".join(f"T[{k:>2}] = {int(t[k]):#010x}" for k in range(r, r + 4))
        for r in range(0, 32, 4)
    )
    t = activation_table(FixedPointSpec.default(), beta=1.0)
    ks = list(range(12)) + [16, 32, 48, 64, 85, 86, 128, 511]
    v["default-table"] = "\n".join(
        "  ".join(f"T[{k:>3}] = {int(t[k]):#06x}" for k in ks[r : r + 4]) for r in range(0, 20, 4)
    )
    v["ring3-default"] = _fmt_trace(RING3, DEFAULT, 1, 6)
    v["ring3-published"] = _fmt_trace(RING3, PUBLISHED, 1, 12)
    v["ring3-async-random"] = _fmt_async_trace(
        RING3, HardwareDesign(schedule="async-random"), 1, 8, p=0.5
    )
    v["ring3-async-periodic"] = _fmt_async_trace(
        RING3,
        HardwareDesign(schedule="async-periodic", read_latency=1),
        1,
        10,
        period=[3, 2, 4],
        phase=[0, 1, 3],
    )
    return v


# A vector block: the marker line, then a text fence (vectors contain no backquotes).
_BLOCK = re.compile(r"<!-- vector: (?P<name>[\w-]+) -->\n```text\n(?P<body>[^`]*)```")


def test_doc_vectors_are_the_models_output():
    text = DOC.read_text()
    found = {m["name"]: m["body"].rstrip("\n") for m in _BLOCK.finditer(text)}
    want = doc_vectors()
    assert sorted(found) == sorted(want), "vector blocks in the document and the test differ"
    for name, body in want.items():
        assert found[name] == body, (
            f"docs/hardware-model.md vector {name!r} is stale; run python {__file__}"
        )


def test_doc_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands here, not in the checkout
    blocks = re.findall(r"<!-- example -->\n```python\n([^`]*)```", DOC.read_text())
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})


def test_ring3_vectors_match_numba():
    for design, cycles in ((DEFAULT, 6), (PUBLISHED, 12)):
        states, _ = trace_cycles(RING3, design, 1, cycles)
        np.testing.assert_array_equal(states, simulate_cycles(RING3, design, 1, cycles))
    periodic = HardwareDesign(schedule="async-periodic", read_latency=1)
    values = {"period": [3, 2, 4], "phase": [0, 1, 3]}
    states, _ = trace_cycles(RING3, periodic, 1, 10, **values)
    np.testing.assert_array_equal(states, simulate_cycles(RING3, periodic, 1, 10, **values))


def _update_doc() -> None:
    text = DOC.read_text()
    want = doc_vectors()

    def repl(m):
        return f"<!-- vector: {m['name']} -->\n```text\n{want[m['name']]}\n```"

    DOC.write_text(_BLOCK.sub(repl, text))
    print(f"rewrote {len(want)} vector blocks of {DOC}")


if __name__ == "__main__":
    _update_doc() if sys.argv[1:] != ["--print"] else print(doc_vectors())
