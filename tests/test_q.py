"""Q estimator: exact Q(M) against explicit path enumeration, and the sample estimator against
exact Q(M) -- the bias correction makes the difference, the naive estimate is biased by 1/R.

Tolerances: exact identities 1e-10; the mean of G independent estimates within 3.5 standard
errors (spread / sqrt(G)) of the exact value.
"""

import numpy as np
import pytest
from diag_support import exact_samples, simulate

from pbitsim import FingerprintMismatchError, models
from pbitsim.diagnostics.observables import pair_list
from pbitsim.diagnostics.q import (
    data_moments,
    exact_gradient,
    exact_q,
    gradient_estimates,
    gradient_observables,
    predicted_q,
    q_from_estimates,
    q_from_samples,
)
from pbitsim.diagnostics.spectra import DegenerateEigenvalueWarning, ExactChain
from pbitsim.exact import exact_moments


@pytest.fixture(scope="module")
def setup():
    c = models.spin_glass(5, p=0.6, seed=3, field=0.5, beta=0.8)
    teacher = models.spin_glass(5, p=0.6, seed=3, field=0.5, beta=0.9)
    pairs = pair_list(c)
    m, C = exact_moments(teacher)
    target = np.concatenate([C[pairs[:, 0], pairs[:, 1]], m])  # pairs, then fields
    return c, ExactChain(c, "sequential"), pairs, target


def test_q_from_estimates_formula_and_jackknife():
    rng = np.random.default_rng(0)
    g = rng.normal(0.2, 1.0, (9, 4))
    R = len(g)
    res = q_from_estimates(g, steps=3)
    norm2 = (g.mean(0) ** 2).sum()
    s2 = g.var(0, ddof=1).sum()
    assert res.q == pytest.approx((norm2 - s2 / R) / s2, rel=1e-12)
    assert res.q_naive == pytest.approx(norm2 / s2, rel=1e-12)
    assert res.q_naive - res.q == pytest.approx(1 / R)  # the correction is exactly 1/R
    assert res.signal == pytest.approx(norm2 - s2 / R) and res.noise == pytest.approx(s2)
    loo = []
    for r in range(R):
        h = np.delete(g, r, axis=0)
        n2, v = (h.mean(0) ** 2).sum(), h.var(0, ddof=1).sum()
        loo.append((n2 - v / (R - 1)) / v)
    loo = np.array(loo)
    assert res.q_err == pytest.approx(
        np.sqrt((R - 1) / R * ((loo - loo.mean()) ** 2).sum()), rel=1e-10
    )
    assert res.steps == 3 and res.replicas == R and res.components == 4
    assert "Q = " in str(res)


def test_q_from_estimates_wrong_shape():
    with pytest.raises(ValueError, match="at least 3"):
        q_from_estimates(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        q_from_estimates(np.zeros(5))


def brute_time_average_variance(chain, F, M):
    """Var of (1/M) sum_{t=1}^M F(X_t) by enumerating every path X_0..X_M (X_0 ~ p)."""
    P = np.asarray(chain.P)
    N = len(chain.p)
    joint = chain.p.copy()  # probability of each path, flattened over (x_0..x_t)
    sums = np.zeros((N, F.shape[1]))  # running sum of F(X_1..X_t) for each path
    last = np.arange(N)
    for _ in range(M):
        joint = (joint[:, None] * P[last]).ravel()
        sums = (sums[:, None, :] + F[None, :, :]).reshape(-1, F.shape[1])
        last = np.tile(np.arange(N), len(last))
    avg = sums / M
    mean = joint @ avg
    return joint @ (avg - mean) ** 2


@pytest.mark.parametrize("M", [1, 2, 3])
def test_exact_q_vs_path_enumeration(setup, M):
    c, ch, pairs, target = setup
    F = gradient_observables(ch.states, pairs, fields=True)
    brute = brute_time_average_variance(ch, F, M)
    np.testing.assert_allclose(ch.time_average_variance(F, M), brute, rtol=1e-10)
    g = target - ch.p @ F
    assert exact_q(ch, target, M, fields=True) == pytest.approx(g @ g / brute.sum(), rel=1e-10)
    np.testing.assert_allclose(exact_gradient(ch, target, fields=True), g, atol=1e-14)


def test_predicted_q_large_m(setup):
    c, ch, pairs, target = setup
    M = 2000  # >> tau: Q(M) -> ||g||^2 M / sum Var tau
    with pytest.warns(DegenerateEigenvalueWarning):  # all modes: the sweep's many zeros
        pred = predicted_q(ch, target[: len(pairs)], M, K=1 << c.n)
    assert pred["multi_mode"] == pytest.approx(pred["exact_tau"], rel=1e-8)
    assert pred["exact"] == pytest.approx(pred["exact_tau"], rel=1e-2)
    assert pred["single_gap"] < 0.5 * pred["exact"]  # one gap for all observables: too slow


def test_q_estimator_is_unbiased_and_naive_is_not(setup):
    c, ch, pairs, target = setup
    M, R, G = 10, 50, 400  # G independent groups of R replicas, each M steps from stationarity
    target = target[: len(pairs)]
    q_exact = exact_q(ch, target, M)
    assert 0.5 / R < q_exact < 2 / R  # the regime where the 1/R bias matters
    rng = np.random.default_rng(11)
    x = simulate(ch.P, ch.p, M, R * G, rng)[:, 1:]
    F = gradient_observables(ch.states, pairs)
    est = (target - F[x].mean(axis=1)).reshape(G, R, -1)
    res = [q_from_estimates(e) for e in est]
    q = np.array([r.q for r in res])
    naive = np.array([r.q_naive for r in res])
    se = q.std(ddof=1) / np.sqrt(G)
    assert abs(q.mean() - q_exact) < 3.5 * se
    assert naive.mean() - q_exact > 10 * se  # biased, by about 1/R
    assert naive.mean() - q_exact == pytest.approx(1 / R, abs=3.5 * se)
    # the jackknife error bar describes the spread of single estimates (within 40%)
    assert np.median([r.q_err for r in res]) == pytest.approx(q.std(ddof=1), rel=0.4)


def test_q_from_samples_matches_estimates_and_batches(setup):
    c, ch, pairs, target = setup
    s = exact_samples(c, "sequential", draws=200, replicas=6, seed=2)
    data = np.where(np.random.default_rng(1).random((50, c.n)) < 0.7, 1, -1)
    res = q_from_samples(s, data, couplings=c, fields=True)
    g = data_moments(data, pairs, fields=True) - gradient_observables(
        np.asarray(s.spins, float), pairs, fields=True
    ).mean(axis=1)
    assert res.q == pytest.approx(q_from_estimates(g).q, rel=1e-12)
    assert res.steps == 200 and res.replicas == 6
    est = gradient_estimates(s, data, couplings=c, batch=50)
    assert est.shape == (24, len(pairs))
    ref = data_moments(data, pairs) - gradient_observables(
        np.asarray(s.spins[0, :50], float), pairs
    ).mean(axis=0)
    np.testing.assert_allclose(est[0], ref, atol=1e-14)
    # without a model: all pairs; a target vector instead of data spins
    allp = gradient_estimates(s, np.zeros(c.n * (c.n - 1) // 2))
    assert allp.shape == (6, 10)
    with pytest.raises(ValueError, match="length"):
        gradient_estimates(s, np.zeros(3), couplings=c)
    with pytest.raises(ValueError, match="batch"):
        gradient_estimates(s, data, couplings=c, batch=0)


def test_fingerprint_guard(setup):
    c, ch, pairs, target = setup
    s = exact_samples(c, "sequential", draws=50, replicas=4, seed=3)
    other = c.with_beta(1.1)  # same graph, other values: stale weights
    with pytest.raises(FingerprintMismatchError, match="stale"):
        q_from_samples(s, target[: len(pairs)], couplings=other)
    with pytest.warns(UserWarning, match="override"):
        q_from_samples(s, target[: len(pairs)], couplings=other, allow_mismatch=True)
