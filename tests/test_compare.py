"""pbitsim.diagnostics.compare: sample-vs-sample and sample-vs-exact statistics and the verdict.

Statistical checks use fixed seeds and tolerances from the error bars; exact values come from
enumeration. The false-positive-rate tests run 200 pairs of independent exact-sampler runs (the
disjoint replicas of one vectorised call; every replica has its own random stream).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pbitsim
from pbitsim import exact, models
from pbitsim.diagnostics.compare import (
    CompareMismatchError,
    compare,
    effective_beta,
    g_test,
    holm,
    mmd_test,
    quantized_p_up,
    quantized_stationary,
    write_report,
)
from pbitsim.diagnostics.observables import pair_list
from pbitsim.fixedpoint import FixedPointSpec, decide
from pbitsim.samples import FingerprintMismatchError, Samples

ALPHA = 0.05
#: A deliberately coarse design: s2.1 codes, a 4-bit input, 8-bit random numbers (xorshift64).
COARSE = FixedPointSpec(
    weight_bits=4, frac_bits=1, input_bits=4, acc_bits=8, rng_bits=8, overflow="saturate"
)


@pytest.fixture(scope="module")
def glass():
    return models.spin_glass(5, seed=2, field=0.3, beta=0.8)


@pytest.fixture(scope="module")
def runs(glass):
    """Two independent chromatic runs of the glass (4 replicas x 2000 draws each)."""
    a = pbitsim.sample(glass, 2000, method="chromatic", replicas=4, burn_in=50, seed=1)
    b = pbitsim.sample(glass, 2000, method="chromatic", replicas=4, burn_in=50, seed=2)
    return a, b


def split(big: Samples, R: int) -> list[Samples]:
    """The replicas of one run as independent runs of R replicas each."""
    return [
        Samples(
            np.ascontiguousarray(big.spins[k : k + R]),
            big.fingerprint,
            big.topology_fingerprint,
            big.method,
            k,
            big.settings,
        )
        for k in range(0, big.replicas - R + 1, R)
    ]


def quiet_compare(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(*args, **kw)


# --------------------------------------------------------------------------------------------
# Building blocks.
# --------------------------------------------------------------------------------------------


def test_holm_by_hand():
    reject, adj = holm([0.01, 0.04, 0.03, 0.005], 0.05)
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 -> running max 0.02, 0.03, 0.06, 0.06
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]
    assert holm([], 0.05)[0].size == 0


def test_g_test_calibrated_on_independent_draws(glass):
    p = exact.boltzmann(glass)
    rng = np.random.default_rng(0)
    fit = [g_test(rng.multinomial(150, p), p_ref=p)[3] for _ in range(1000)]
    two = [g_test(rng.multinomial(150, p), rng.multinomial(200, p))[3] for _ in range(1000)]
    for pv in (fit, two):
        rate = np.mean(np.array(pv) <= ALPHA)
        assert abs(rate - ALPHA) < 4 * np.sqrt(ALPHA * (1 - ALPHA) / 1000)
    q = p.copy()
    q[:4] *= 3
    q /= q.sum()
    assert g_test(rng.multinomial(2000, q), p_ref=p)[3] < 1e-6
    assert g_test(rng.multinomial(2000, q), rng.multinomial(2000, p))[3] < 1e-6


def test_g_test_zero_probability_state():
    p = np.array([0.5, 0.5, 0.0, 0.0])
    g, _, _, pv = g_test(np.array([10, 10, 1, 0]), p_ref=p)
    assert g == np.inf and pv == 0.0


def test_mmd_null_and_alternative():
    rng = np.random.default_rng(1)

    def draws(bias, m):
        return np.where(rng.random((m, 20)) < bias, 1, -1).astype(np.int8)

    null = [mmd_test(draws(0.5, 80), draws(0.5, 80), 200, rng)[1] for _ in range(100)]
    assert np.mean(np.array(null) <= ALPHA) <= 2 * ALPHA
    assert mmd_test(draws(0.5, 300), draws(0.6, 300), 200, rng)[1] < 0.01


def test_quantized_p_up_is_the_comparator_with_a_uniform_r(glass):
    spec = FixedPointSpec(weight_bits=5, frac_bits=2, input_bits=5, acc_bits=8, rng_bits=6)
    q = glass.quantized(spec)
    p_up = quantized_p_up(q)
    states = exact.all_states(glass.n)
    r = np.arange(1 << spec.rng_bits)
    for x in (0, 7, 19, 31):
        codes = q.input_codes(states[x])
        for i in range(glass.n):
            counted = np.mean(decide(np.full(len(r), codes[i]), q.table, r) == 1)
            assert p_up[x, i] == counted


def test_quantized_stationary_solvers_agree_and_fine_codes_give_boltzmann(glass):
    direct = quantized_stationary(glass, COARSE, solver="direct")
    power = quantized_stationary(glass, COARSE, solver="power")
    assert np.abs(direct - power).max() < 1e-10
    assert exact.kl_divergence(direct, exact.boltzmann(glass)) > 1e-2  # coarse codes bias it
    fine = FixedPointSpec(weight_bits=16, frac_bits=10, input_bits=16, acc_bits=24, rng_bits=32)
    assert exact.kl_divergence(quantized_stationary(glass, fine), exact.boltzmann(glass)) < 1e-5
    with pytest.raises(ValueError, match="n <= 12"):
        quantized_stationary(models.ring(13), COARSE)


def test_effective_beta_recovers_a_known_beta(glass):
    s = pbitsim.sample(glass, 2000, replicas=8, burn_in=50, seed=3, beta=0.55)
    for method in ("mle", "pseudo-likelihood"):
        beta, err, how = effective_beta(s.spins, glass, method=method)
        assert how == method
        assert 0 < err < 0.03
        assert abs(beta - 0.55) < 3 * err


# --------------------------------------------------------------------------------------------
# compare(): consistent when it should be, and how often it is wrong.
# --------------------------------------------------------------------------------------------


def test_two_runs_of_an_exact_sampler_are_consistent(glass, runs):
    r = compare(*runs, model=glass)
    assert r.consistent and r.differing == []
    assert r.verdict().startswith("verdict: A is consistent with B at alpha = 0.05")
    assert r.joint.name == "G-test" and r.joint.p_value > ALPHA / 2
    assert [s.name for s in r.statistics][-1] == "beta_eff"
    # each side's moments are near exact within their error bars; Q of the difference is ~0
    m_exact = exact.boltzmann(glass) @ exact.all_states(glass.n)
    for side in (r.a, r.b):
        se = np.sqrt((1 - side.means[:5] ** 2) * side.tau[:5] / side.n_draws)
        assert np.all(np.abs(side.means[:5] - m_exact) < 4 * se)
        assert abs(side.q.q) < 3 * side.q.q_err + 0.05
        assert side.exact["boltzmann"].kl < 3 * side.exact["boltzmann"].kl_expected
    assert set(r.a.series) == {"energy", "magnetisation", "slowest moment"}


def test_false_positive_rate_over_200_pairs_of_runs():
    # tau_int up to ~3 draws: without the tau correction and the thinning 16-18% are flagged
    c = models.spin_glass(4, seed=2, field=0.3, beta=1.3)
    big = pbitsim.sample(c, 500, method="chromatic", replicas=4 * 400, burn_in=50, seed=11)
    parts = split(big, 4)
    two = [not compare(parts[2 * k], parts[2 * k + 1], model=c).consistent for k in range(200)]
    fit = [not compare(parts[k], model=c).consistent for k in range(200)]
    assert sum(two) <= 2 * ALPHA * 200
    assert sum(fit) <= 2 * ALPHA * 200


def test_different_beta_refused_then_inconsistent(glass, runs):
    hot = pbitsim.sample(glass, 2000, replicas=4, burn_in=50, seed=5, beta=0.6)
    with pytest.raises(CompareMismatchError, match="same graph") as e:
        compare(runs[0], hot, model=glass)
    assert isinstance(e.value, FingerprintMismatchError)
    assert "--allow-mismatch" in e.value.message("--allow-mismatch")
    r = quiet_compare(runs[0], hot, model=glass, allow_mismatch=True)
    assert not r.consistent
    assert "beta_eff" in r.differing and "beta_eff" in r.verdict()
    beta = next(s for s in r.statistics if s.name == "beta_eff")
    assert abs(beta.b - 0.6) < 3 * beta.b_err and abs(beta.a - 0.8) < 3 * beta.a_err
    assert r.a.q.q > 3 * r.a.q.q_err  # the difference is visible per estimate
    # against the exact distribution of the model too
    assert not quiet_compare(hot, model=glass, allow_mismatch=True).consistent


def test_perturbed_coupling_is_named(glass, runs):
    rows = np.repeat(np.arange(glass.n), glass.degrees)
    k = np.flatnonzero(((rows == 1) & (glass.indices == 4)) | ((rows == 4) & (glass.indices == 1)))
    data = glass.data.copy()
    data[k] += 0.6
    other = glass.replace(data=data)
    b = pbitsim.sample(other, 2000, replicas=4, burn_in=50, seed=6)
    r = quiet_compare(runs[0], b, model=glass, allow_mismatch=True)
    assert not r.consistent
    correlations = [s for s in r.statistics if s.kind == "correlation"]
    assert max(correlations, key=lambda s: abs(s.z)).name == "<s1 s4>"
    assert "<s1 s4>" in r.verdict()


# --------------------------------------------------------------------------------------------
# Hardware samples and the quantised chain.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coarse_hardware():
    from pbitsim.board.design import HardwareDesign  # tests may use the board and the sim

    c = models.spin_glass(6, seed=2, field=0.3, beta=0.8)
    design = HardwareDesign(fixed_point=COARSE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weights clipped to the coarse range
        s = pbitsim.sample(
            c, 3000, method="hardware", replicas=4, burn_in=20, seed=3, design=design
        )
    return c, s


def test_hardware_samples_match_the_quantised_chain(coarse_hardware):
    c, s = coarse_hardware
    r = quiet_compare(s, model=c)
    assert r.reference == "quantized" and "quantised chain" in r.reference_description
    assert r.consistent, r.text()
    fit = r.a.exact["quantized"]
    assert fit.kl < 3 * fit.kl_expected
    assert r.a.exact["boltzmann"].kl > 5 * fit.kl


def test_coarse_hardware_differs_from_boltzmann_where_the_codes_do(coarse_hardware):
    c, s = coarse_hardware
    r = quiet_compare(s, model=c, reference="boltzmann")
    assert not r.consistent
    pairs = pair_list(c)
    S = exact.all_states(c.n).astype(float)
    f = np.c_[S, S[:, pairs[:, 0]] * S[:, pairs[:, 1]]]
    shift = (quantized_stationary(c, COARSE) - exact.boltzmann(c)) @ f  # exact, per moment
    moments = [st for st in r.statistics if st.kind != "beta"]
    err = np.array([st.a_err for st in moments])
    flagged = np.array([st.differs for st in moments])
    assert flagged.any()
    assert np.all(np.abs(shift[flagged]) > 2 * err[flagged])  # only real differences flagged
    assert flagged[np.argmax(np.abs(shift) / err)]  # the largest real difference is flagged


def test_quantized_reference_needs_a_design(glass, runs):
    with pytest.raises(ValueError, match="records none"):
        compare(runs[0], model=glass, reference="quantized")


# --------------------------------------------------------------------------------------------
# Larger n, PT, bad input, the report.
# --------------------------------------------------------------------------------------------


def test_large_n_uses_mmd_and_pseudo_likelihood():
    c = models.ring(20, J=0.6, h=0.1, beta=1.0)
    a = pbitsim.sample(c, 1500, replicas=4, burn_in=50, seed=1)
    b = pbitsim.sample(c, 1500, replicas=4, burn_in=50, seed=2)
    hot = pbitsim.sample(c, 1500, replicas=4, burn_in=50, seed=3, beta=0.6)
    r = compare(a, b, model=c, permutations=200)
    assert r.joint.name == "MMD" and r.a.beta_method == "pseudo-likelihood"
    assert r.consistent, r.text()
    r = quiet_compare(a, hot, model=c, permutations=200, allow_mismatch=True)
    assert not r.consistent and "beta_eff" in r.differing
    assert r.joint.p_value <= ALPHA / 2
    with pytest.raises(ValueError, match="n <= 16"):
        compare(a, model=c)


def test_parallel_tempering_rung_at_the_models_beta(glass):
    pt = pbitsim.sample(glass, 2000, betas=[0.3, 0.55, 0.8], replicas=2, burn_in=50, seed=4)
    r = compare(pt, model=glass)
    assert any("rung 2" in n for n in r.notes)
    assert r.a.replicas == 2 and r.consistent, r.text()


def test_bad_input(glass, runs):
    small = pbitsim.sample(models.spin_glass(4, seed=2), 100, seed=1)
    with pytest.raises(ValueError, match="n = 5 spins but B has n = 4"):
        compare(runs[0], small)
    with pytest.raises(ValueError, match="model has n = 4"):
        compare(runs[0], model=models.spin_glass(4, seed=2))
    with pytest.raises(CompareMismatchError, match="different graph"):
        compare(runs[0], pbitsim.sample(models.ring(5), 100, seed=1))
    with pytest.raises(ValueError, match="needs the model"):
        compare(runs[0])
    with pytest.raises(ValueError, match="alpha"):
        compare(*runs, alpha=1.5)
    with pytest.raises(TypeError, match="Samples"):
        compare(runs[0].spins, runs[1])


def test_without_a_model_all_pairs(runs):
    r = compare(*runs)
    assert sum(s.kind == "correlation" for s in r.statistics) == 10
    assert r.a.beta_eff is None and "energy" not in r.a.series
    assert r.consistent


def test_report_html_and_pngs(glass, runs, tmp_path):
    r1 = compare(*runs, model=glass)
    r2 = compare(runs[0], model=glass)
    path = write_report([r1, r2], tmp_path / "cmp.html")
    page = path.read_text()
    assert r1.verdict() in page.replace("&#x27;", "'") and "<img" in page
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 6
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    assert "verdict:" in r1.text() and "tau_int energy" in r1.text()
