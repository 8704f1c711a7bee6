"""Autocorrelation estimators against processes with known tau (AR(1)) and brute-force sums.

Tolerances: sample estimates must agree with the exact value within 3.5 of their own reported
standard errors (Madras-Sokal for tau); exact identities to 1e-10.
"""

import numpy as np
import pytest

from pbitsim.diagnostics.autocorr import (
    AutocorrError,
    AutocorrWarning,
    autocorrelation,
    autocovariance,
    estimate_tau,
    integrated_time,
    time_average_variance,
)


def ar1(phi: float, replicas: int, T: int, seed: int, k: int = 1) -> np.ndarray:
    """Stationary AR(1) x_t = phi x_{t-1} + eps_t, unit innovations: (R, T, k)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    eps = rng.normal(size=(replicas, T, k))
    eps[:, 0] /= np.sqrt(1 - phi**2)  # start in stationarity
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


def ar1_tau(phi):
    return (1 + phi) / (1 - phi)


def test_ar1_tau_within_error_bar():
    phi = 0.9  # tau = 19
    x = ar1(phi, replicas=4, T=50_000, seed=1)[..., 0]
    it = estimate_tau(x)
    assert it.converged
    assert abs(float(it.tau) - ar1_tau(phi)) < 3.5 * float(it.tau_err)
    assert float(it.tau_err) / float(it.tau) < 0.05  # the error bar is informative
    assert float(it.ess) == pytest.approx(x.size / float(it.tau))
    # the window obeys Sokal's rule: W >= c tau(W), and is the first such lag
    assert it.window >= it.c * it.tau


def test_ar1_acf_matches_phi_power():
    phi = 0.8
    x = ar1(phi, replicas=4, T=40_000, seed=2)[..., 0]
    rho = autocorrelation(x)
    t = np.arange(15)
    # sd of rho_hat(t) is about sqrt(tau / N) ~ 0.005 here
    np.testing.assert_allclose(rho[t], phi**t, atol=0.03)


def test_vectorised_over_observables_matches_one_by_one():
    phis = [0.3, 0.7, 0.9]
    x = np.concatenate([ar1(p, 3, 20_000, seed=10 + i) for i, p in enumerate(phis)], axis=2)
    it = estimate_tau(x)
    assert it.tau.shape == (3,) and it.window.shape == (3,) and it.acf.shape == (20_000, 3)
    for j in range(3):
        one = estimate_tau(x[:, :, j])
        assert float(one.tau) == pytest.approx(it.tau[j])
        assert abs(it.tau[j] - ar1_tau(phis[j])) < 3.5 * it.tau_err[j]
    # a single series (T,) and extra observable axes
    assert np.ndim(integrated_time(x[0, :, 0])) == 0
    assert integrated_time(x.reshape(3, 20_000, 3, 1)).shape == (3, 1)


def test_autocovariance_equals_direct_sum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 37, 2))
    m = x.mean(axis=(0, 1))
    y = x - m
    T = x.shape[1]
    direct = np.array([(y[:, : T - t] * y[:, t:]).sum(axis=(0, 1)) / (2 * T) for t in range(T)])
    np.testing.assert_allclose(autocovariance(x), direct, atol=1e-12)
    # per-replica centring
    y = x - x.mean(axis=1, keepdims=True)
    direct = np.array([(y[:, : T - t] * y[:, t:]).sum(axis=(0, 1)) / (2 * T) for t in range(T)])
    np.testing.assert_allclose(autocovariance(x, center="replica"), direct, atol=1e-12)


def test_too_short_raises_and_quiet_warns():
    x = ar1(0.99, replicas=2, T=2_000, seed=4)[..., 0]  # tau ~ 199: needs ~10^4 steps
    with pytest.raises(AutocorrError) as e:
        estimate_tau(x)
    assert np.isfinite(e.value.tau)
    assert "shorter than 50" in str(e.value)
    with pytest.warns(AutocorrWarning):
        it = estimate_tau(x, quiet=True)
    assert not it.converged


def test_constant_series_is_refused():
    x = np.ones((2, 500))
    with pytest.raises(AutocorrError, match="constant"):
        integrated_time(x)
    with pytest.warns(AutocorrWarning):
        assert np.isnan(integrated_time(x, quiet=True))


def test_init_wrong_shape():
    with pytest.raises(ValueError):
        autocovariance(np.zeros(()))
    with pytest.raises(ValueError):
        autocovariance(np.zeros((3, 1)))
    with pytest.raises(ValueError):
        autocovariance(np.zeros((2, 10)), center="median")


def test_time_average_variance_formula_exact():
    phi, M = 0.7, 40
    t = np.arange(M)
    acov = phi**t / (1 - phi**2)  # exact AR(1) autocovariance, unit innovations
    cov = acov[np.abs(t[:, None] - t[None, :])]
    assert time_average_variance(acov, M) == pytest.approx(cov.sum() / M**2, rel=1e-12)
    assert time_average_variance(acov, 1) == pytest.approx(acov[0])
    # large M: Var(f) tau / M
    big = 20_000
    acov_big = phi ** np.arange(big) / (1 - phi**2)
    assert time_average_variance(acov_big, big) == pytest.approx(
        acov[0] * ar1_tau(phi) / big, rel=1e-3
    )
    with pytest.raises(ValueError, match="lags"):
        time_average_variance(acov, M + 1)


def test_time_average_variance_from_estimated_acov():
    phi, M = 0.9, 200
    x = ar1(phi, replicas=4, T=50_000, seed=5)[..., 0]
    it = estimate_tau(x)
    est = time_average_variance(autocovariance(x), M, window=int(it.window))
    t = np.arange(M)
    exact = time_average_variance(phi**t / (1 - phi**2), M)
    # the windowed sum carries the relative error of tau (and of C(0), smaller)
    assert est == pytest.approx(exact, rel=3.5 * float(it.tau_err / it.tau))
