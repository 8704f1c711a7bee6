"""Derivatives of the exact diagnostics (pbitsim.diagnostics.derivatives).

First the values against independent paths: ExactChain's fundamental-matrix tau_int, the
eigen-expansion sum_k c_k^2 (1 + lambda_k) / (1 - lambda_k), predict_tau, predicted_q and exact_q.
Then the gradients against central finite differences of those independent values: Richardson-
extrapolated central differences (steps 1e-5 and 5e-6, truncation error O(h^4)), agreement within
rtol 1e-5 of the largest derivative. Models: a random spin glass with fields (no symmetry) under
every kernel; flip-symmetric all-to-all ferromagnets whose spectra hold exactly degenerate
clusters and, at beta = 3, a flip-odd eigenvalue 1 - 3e-16 (the "1e-16 trap"); a planted RBM; and
cases where the truncation boundary splits a (near-)degenerate cluster, which must be refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pbitsim import models
from pbitsim.diagnostics.derivatives import (
    ExactDerivatives,
    NotDifferentiableError,
    parameter_vector,
    with_parameters,
)
from pbitsim.diagnostics.kernels import exact_chain
from pbitsim.diagnostics.q import data_moments, exact_q, gradient_observables, predicted_q

RTOL = 1e-5
STEP = 1e-5

KERNELS = [
    ("random-scan", None),
    ("sequential", None),
    ("chromatic", None),
    ("symmetric", None),
    ("sweep-mixture", 0.3),
    ("sweep-mixture", 0.5),
]


@pytest.fixture(autouse=True)
def _quiet():
    # one BLAS thread: these are thousands of tiny solves, which threads only slow down
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # degenerate-cluster warnings of the reference values
        yield


def glass():
    return models.spin_glass(5, p=0.6, seed=3, field=0.5, beta=0.8)


def fd(fun, c, idx, h=STEP):
    """Richardson-extrapolated central differences of fun(couplings) in parameters idx; ``fun``
    may return a tuple of arrays (one chain per perturbed model serves them all)."""

    def flat(cc):
        out = fun(cc)
        parts = out if isinstance(out, tuple) else (out,)
        return [np.asarray(x, dtype=np.float64) for x in parts]

    def central(step):
        th = parameter_vector(c)
        cols = []
        for k in idx:
            a, b = th.copy(), th.copy()
            a[k] += step
            b[k] -= step
            cols.append(
                [
                    (x - y) / (2 * step)
                    for x, y in zip(flat(with_parameters(c, a)), flat(with_parameters(c, b)))
                ]
            )
        return [np.stack([col[j] for col in cols], axis=-1) for j in range(len(cols[0]))]

    res = [(4 * a - b) / 3 for a, b in zip(central(h / 2), central(h))]
    return tuple(res) if len(res) > 1 else res[0]


def close(analytic, numeric):
    scale = np.abs(numeric).max()
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=RTOL * scale)


def sigma2(f, kernel, q=None, K=None):
    """Independent values: ExactChain's tau_int (or predict_tau) times Var_p."""

    def fun(c):
        ch = exact_chain(c, kernel, q=q)
        tau = ch.tau_int(f) if K is None else ch.predict_tau(f, K)
        return tau * ch.variance(f)

    return fun


def q_large_m(ch, target, M, K=None):
    """M ||g||^2 / sum_k Var_p(f_k) tau_k from ExactChain's values (exact tau, or predict_tau)."""
    F = ch.pair_values()
    g = target - ch.p @ F
    tau = ch.tau_int(F) if K is None else ch.predict_tau(F, K)
    return M * (g @ g) / np.sum(ch.variance(F) * tau)


# -- values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "q"), KERNELS)
def test_values_match_exact_chain(kernel, q):
    c = glass()
    D = ExactDerivatives(c, kernel, q=q)
    ch = exact_chain(c, kernel, q=q)
    F = ch.pair_values()
    np.testing.assert_allclose(D.variance(F).value, ch.variance(F), rtol=1e-12)
    np.testing.assert_allclose(D.tau_int(F).value, ch.tau_int(F), rtol=1e-10)
    # the eigen path: every mode kept, the expansion is exact
    me = ch.mode_expansion(F, K=1 << c.n)
    np.testing.assert_allclose(
        D.asymptotic_variance(F).value, me.variance * me.tau_multi_mode, rtol=1e-9
    )
    np.testing.assert_allclose(
        D.predicted_variance(F, K=6).value, ch.predict_tau(F, 6) * ch.variance(F), rtol=1e-10
    )
    target = np.linspace(-0.4, 0.6, len(D.edges))
    pq = predicted_q(ch, target, 50, K=6)
    assert D.q(target, 50).value == pytest.approx(pq["exact_tau"], rel=1e-10)
    assert D.q(target, 50, K=6).value == pytest.approx(pq["multi_mode"], rel=1e-10)


def test_reversible_sigma2_is_the_eigen_sum():
    """sigma^2 = sum_k c_k^2 (1 + lambda_k) / (1 - lambda_k) from a plain eigendecomposition."""
    c = glass()
    ch = exact_chain(c, "symmetric")
    f = ch.pair_values()[:, 2]
    A = ch.P * np.sqrt(ch.p)[:, None] / np.sqrt(ch.p)[None, :]
    lam, U = np.linalg.eigh(0.5 * (A + A.T))
    coef = U.T @ (np.sqrt(ch.p) * (f - ch.p @ f))
    keep = np.abs(lam - 1) > 1e-9
    expect = np.sum(coef[keep] ** 2 * (1 + lam[keep]) / (1 - lam[keep]))
    assert ExactDerivatives(c, "symmetric").asymptotic_variance(f).value == pytest.approx(
        expect, rel=1e-10
    )


def test_asymptotic_q_is_the_large_m_limit_of_exact_q():
    c = glass()
    D = ExactDerivatives(c, "sequential")
    F = D.chain.pair_values()
    target = np.linspace(-0.4, 0.6, len(D.edges))
    tau = D.tau_int(F).value.max()
    M = 20000
    # M Var(mean of M) = sigma^2 - O(tau^2 / M): relative difference below a few tau / M
    assert D.q(target, M).value == pytest.approx(exact_q(D.chain, target, M), rel=4 * tau / M)


# -- derivatives, no symmetry ---------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "q"), KERNELS)
def test_gradients_match_finite_differences(kernel, q):
    c = glass()
    D = ExactDerivatives(c, kernel, q=q)
    F = D.chain.pair_values()[:, :3]
    K = 6  # a cluster boundary for every kernel here
    target = np.linspace(-0.4, 0.6, len(D.edges))

    def values(cc):
        ch = exact_chain(cc, kernel, q=q)
        var, tau = ch.variance(F), ch.tau_int(F)
        return (
            var,
            tau,
            var * tau,
            var * ch.predict_tau(F, K),
            q_large_m(ch, target, 50),
            q_large_m(ch, target, 50, K),
        )

    idx = range(len(parameter_vector(c)))  # every edge and every field
    var, tau, sig2, sig2_k, q_exact, q_k = fd(values, c, idx)
    close(D.variance(F).grad, var)
    close(D.tau_int(F).grad, tau)
    close(D.asymptotic_variance(F).grad, sig2)
    close(D.predicted_variance(F, K=K).grad, sig2_k)
    close(D.q(target, 50).grad, q_exact)
    close(D.q(target, 50, K=K).grad, q_k)


def test_fields_in_q_gradient():
    """Q with field components, data given as spins."""
    c = glass()
    D = ExactDerivatives(c, "chromatic")
    data = np.random.default_rng(1).choice([-1, 1], size=(40, c.n)).astype(np.int8)
    idx = range(len(parameter_vector(c)))

    def qfun(cc):
        ch = exact_chain(cc, "chromatic")
        F = gradient_observables(ch.states, ch.couplings, fields=True)
        g = data_moments(data, ch.couplings, fields=True) - ch.p @ F
        return 30 * (g @ g) / np.sum(ch.variance(F) * ch.tau_int(F))

    close(D.q(data, 30, fields=True).grad, fd(qfun, c, idx))


def test_all_modes_kept_predictor_is_the_resolvent():
    """With every mode kept, the projector path must give the resolvent's value and gradient."""
    c = glass()
    for kernel in ("random-scan", "sequential"):
        D = ExactDerivatives(c, kernel)
        F = D.chain.pair_values()[:, :2]
        a, b = D.predicted_variance(F, K=1 << c.n), D.asymptotic_variance(F)
        np.testing.assert_allclose(a.value, b.value, rtol=1e-9)
        close(a.grad, b.grad)


@pytest.mark.parametrize("kernel", ["random-scan", "symmetric"])
def test_reversible_fast_path_matches_schur_path(kernel):
    """Reversible kernels use the eigenbasis (Daleckii-Krein) form; the general Schur/Sylvester
    path must give the same values and gradients."""
    c = glass()
    D = ExactDerivatives(c, kernel)
    F = D.chain.pair_values()[:, :3]
    fast = D.predicted_variance(F, K=6)
    D._force_schur = True
    slow = D.predicted_variance(F, K=6)
    np.testing.assert_allclose(fast.value, slow.value, rtol=1e-12)
    close(fast.grad, slow.grad)


# -- (near-)degenerate spectra --------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["random-scan", "sequential", "symmetric"])
@pytest.mark.parametrize("beta", [0.35, 3.0])
def test_flip_symmetric_ferromagnet(kernel, beta):
    """Exactly degenerate clusters (permutation symmetry) and, at beta = 3, a flip-odd eigenvalue
    within 1e-15 of the stationary 1: J-derivatives of s_i s_j stay exact."""
    c = models.ferromagnet(6, beta=beta)
    D = ExactDerivatives(c, kernel)
    if beta == 3.0:
        assert D.chain.sector_gaps()["odd"] < 1e-12
    F = D.chain.pair_values()[:, [0, 7]]
    idx = [0, 7, 14]
    K = 6  # the end of a degenerate cluster in the even sector of every kernel here

    def values(cc):
        ch = exact_chain(cc, kernel)
        var = ch.variance(F)
        return var * ch.tau_int(F), var * ch.predict_tau(F, K)

    sig2, sig2_k = fd(values, c, idx)
    close(D.asymptotic_variance(F, wrt="J").grad[:, idx], sig2)
    close(D.predicted_variance(F, K=K, wrt="J").grad[:, idx], sig2_k)


def test_field_derivatives_at_a_flip_symmetric_point():
    """sigma^2 is differentiable in h at h = 0 (a mixed observable sees both sectors); the
    per-sector predictor is not, and says so."""
    c = models.ferromagnet(5, beta=0.35)
    D = ExactDerivatives(c, "sequential")
    f = D.chain.pair_values()[:, 0] + D.chain.states[:, 0]  # even + odd parts
    idx = range(len(parameter_vector(c)))
    close(D.asymptotic_variance(f).grad, fd(sigma2(f, "sequential"), c, idx))
    with pytest.raises(NotDifferentiableError, match="flip-symmetric"):
        D.predicted_variance(f, K=2)


def test_planted_rbm_chromatic():
    c = models.planted(4, 3, patterns=2, strength=1.5, seed=0)
    D = ExactDerivatives(c, "chromatic")
    F = D.chain.pair_values()[:, :4]
    idx = [0, 5, 11]

    def values(cc):
        ch = exact_chain(cc, "chromatic")
        var = ch.variance(F)
        return var * ch.tau_int(F), var * ch.predict_tau(F, 3)

    sig2, sig2_k = fd(values, c, idx)
    close(D.asymptotic_variance(F, wrt="J").grad[:, idx], sig2)
    # block Gibbs on an RBM has rank 2**3 (most eigenvalues exactly 0): K = 3 keeps every
    # nonzero even mode, K = 4 would split the cluster at 0
    close(D.predicted_variance(F, K=3, wrt="J").grad[:, idx], sig2_k)
    with pytest.raises(NotDifferentiableError, match=r"\(3 or 64\)"):
        D.predicted_variance(F, K=4, wrt="J")


def test_boundary_inside_a_degenerate_cluster_is_refused():
    """random-scan on the all-to-all ferromagnet: |lambda| = 0.783 is a multiple eigenvalue of
    the even sector; K = 2 would split it. Perturbing one coupling splits the cluster, the
    reference predictor then keeps part of it, and its value jumps."""
    c = models.ferromagnet(6, beta=0.35)
    D = ExactDerivatives(c, "random-scan")
    F = D.chain.pair_values()[:, :2]
    with pytest.raises(NotDifferentiableError, match="splits a cluster"):
        D.predicted_variance(F, K=2, wrt="J")
    # the jump the error reports: a tiny symmetry-breaking perturbation changes the value by O(1)
    th = parameter_vector(c)
    th[0] += 1e-7
    ch0, ch1 = exact_chain(c, "random-scan"), exact_chain(with_parameters(c, th), "random-scan")
    jump = np.abs(ch1.predict_tau(F, 2) - ch0.predict_tau(F, 2)).max()
    assert jump > 1e3 * 1e-7


def test_near_degenerate_boundary_is_refused():
    """beta = 3: two even-sector eigenvalues 1e-8 apart (relative), not one cluster for the
    reference code (tolerance 1e-10), but closer than gap_tol: refused."""
    c = models.ferromagnet(6, beta=3.0)
    D = ExactDerivatives(c, "random-scan")
    F = D.chain.pair_values()[:, :2]
    with pytest.raises(NotDifferentiableError, match="closer than gap_tol"):
        D.predicted_variance(F, K=1, wrt="J")
    # a looser tolerance answers (the derivative is then large, as 1 / gap)
    D.predicted_variance(F, K=1, wrt="J", gap_tol=1e-12)


def test_chain_that_does_not_mix_is_refused():
    """beta = 3: the flip-odd eigenvalue is 1 within 3e-16, so the magnetisation's predictor has
    no finite value; even observables (which never see the odd sector) are unaffected."""
    c = models.ferromagnet(6, beta=3.0)
    D = ExactDerivatives(c, "sequential")
    with pytest.raises(NotDifferentiableError, match="does not mix"):
        D.predicted_variance(D.chain.magnetisation_values(), K=1, wrt="J")
    assert np.isfinite(D.predicted_variance(D.chain.pair_values()[:, 0], K=1, wrt="J").value)


def test_wrong_arguments():
    c = glass()
    D = ExactDerivatives(c, "random-scan")
    with pytest.raises(ValueError, match="wrt"):
        D.variance(D.chain.pair_values(), wrt="beta")
    with pytest.raises(ValueError, match="shape"):
        D.tau_int(np.ones(7))
    with pytest.raises(ValueError, match="M must be"):
        D.q(np.zeros(len(D.edges)), 0)
    with pytest.raises(ValueError, match="theta"):
        with_parameters(c, np.zeros(3))
    with pytest.raises(ValueError, match="needs q"):
        ExactDerivatives(c, "sweep-mixture")


def test_gradient_layout():
    c = glass()
    g = ExactDerivatives(c, "random-scan").asymptotic_variance(exact_chain(c).pair_values()[:, 0])
    assert g.grad.shape == (len(g.edges) + c.n,)
    M = g.d_J_matrix(c.n)
    i, j = g.edges[1]
    assert M[i, j] == M[j, i] == g.d_J[1]
    assert g.d_h.shape == (c.n,)
    only_j = ExactDerivatives(c, "random-scan").variance(
        exact_chain(c).pair_values()[:, 0], wrt="J"
    )
    with pytest.raises(ValueError, match="J only"):
        _ = only_j.d_h
