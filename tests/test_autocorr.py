"""Autocorrelation estimators against processes with known tau (AR(1) and mixtures of AR(1)s with
a slow component of small weight) and brute-force sums.

Tolerances: sample estimates must agree with the exact value within 3.5 of their own reported
standard errors; exact identities to 1e-10. The estimator against exact Markov chains of p-bit
kernels: ``tests/test_tau_validation.py``.
"""

import numpy as np
import pytest

from pbitsim.diagnostics.autocorr import (
    AutocorrError,
    AutocorrWarning,
    auto_window,
    autocorrelation,
    autocovariance,
    batch_means_tau,
    effective_sample_size,
    estimate_tau,
    initial_sequence_window,
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
    # informative, though wider than Sokal's (3.8% here): the price of the longer window
    assert float(it.tau_err) / float(it.tau) < 0.08
    assert float(it.ess) == pytest.approx(x.size / float(it.tau))
    assert float(it.ess_err) == pytest.approx(x.size * float(it.tau_err) / float(it.tau) ** 2)
    assert effective_sample_size(x) == pytest.approx(it.ess)
    # the sum reaches well past the noise: 2.5 times Geyer's initial positive sequence, and the
    # error bar is that of the sum a fifth further
    acov = autocovariance(x)
    w0, found = initial_sequence_window(acov)
    assert found and int(it.window) == int(np.ceil(2.5 * (int(w0) + 1))) - 1
    assert int(it.error_window) == int(np.ceil(3.0 * (int(w0) + 1))) - 1
    assert float(it.tau) == pytest.approx(1 + 2 * (acov[1 : int(it.window) + 1] / acov[0]).sum())
    assert len(it.batch_sizes) >= 2 and not it.disagree and it.reasons == ()


def test_sokal_method_keeps_the_old_window():
    x = ar1(0.9, replicas=4, T=50_000, seed=1)[..., 0]
    it = estimate_tau(x, method="sokal")
    taus = 2 * np.cumsum(autocorrelation(x)) - 1
    assert int(it.window) == int(auto_window(taus[:, None], 5.0)[0])
    assert it.window >= it.c * it.tau and it.method == "sokal"
    with pytest.raises(ValueError, match="method"):
        estimate_tau(x, method="emcee")


def mixture(T, R, seed, phis=(0.5, 0.98), weights=(0.97, 0.03)):
    """Sum of independent stationary AR(1)s; component k has variance weights[k], so
    rho(t) = sum_k w_k phi_k^t and tau = sum_k w_k (1 + phi_k) / (1 - phi_k)."""
    x = 0.0
    for i, (phi, w) in enumerate(zip(phis, weights)):
        x = x + np.sqrt(w * (1 - phi**2)) * ar1(phi, R, T, seed + 100 * i)[..., 0]
    tau = sum(w * (1 + p) / (1 - p) for p, w in zip(phis, weights))
    return x, tau


def test_slow_mode_with_small_weight_is_not_cut_off():
    """3% of the variance in a mode with tau 99 carries 3 of the 5.9 of tau_int: Sokal's window
    (c = 5, about 25 lags) stops long before that tail; the extended initial sequence does not."""
    x, tau = mixture(T=20_000, R=8, seed=3)
    it = estimate_tau(x)
    assert it.converged
    assert abs(float(it.tau) - tau) < 3.5 * float(it.tau_err)
    with pytest.warns(AutocorrWarning, match="batch means disagree"):
        old = estimate_tau(x, method="sokal", quiet=True)
    assert tau - float(old.tau) > 5 * float(old.tau_err)  # Sokal's window: many bars low...
    assert old.disagree and not old.converged  # ...which the batch-means cross-check catches


def test_initial_sequence_window():
    acov = np.array([1.0, 0.5, 0.2, 0.1, 0.05, -0.1, 0.01, 0.0, 0.3])
    w, found = initial_sequence_window(acov)  # Gamma = 1.5, 0.3, -0.05, ...
    assert found and w == 3
    w, found = initial_sequence_window(0.9 ** np.arange(40))  # never non-positive
    assert not found and w == 39
    both = initial_sequence_window(np.column_stack([acov, acov[::-1] * 0 + 1]))
    assert list(both[0]) == [3, 8] and list(both[1]) == [True, False]


def test_batch_means_tau_expectation():
    phi, b = 0.8, 64
    x = ar1(phi, replicas=8, T=32_768, seed=6)[..., 0]
    tau, err, n = batch_means_tau(x, b)
    assert n == 8 * (32_768 // b)
    t = np.arange(1, b)
    expected = 1 + 2 * np.sum((1 - t / b) * phi**t)  # finite-b expectation, below tau = 9
    assert abs(float(tau) - expected) < 3.5 * float(err)
    with pytest.raises(ValueError, match="batch size"):
        batch_means_tau(x, 20_000)


def test_slow_mode_beyond_the_window_is_flagged():
    """A component with 0.2% of the variance and tau ~ 4000: invisible lag by lag, so the window
    ends early; batch means of thousands of steps see it, and the estimate is not trusted."""
    x, tau = mixture(T=50_000, R=8, seed=8, phis=(0.0, 0.9995), weights=(0.998, 0.002))
    with pytest.warns(AutocorrWarning, match="batch means disagree"):
        it = estimate_tau(x, quiet=True)
    assert bool(it.disagree) and not it.converged
    assert any("batch means disagree" in r for r in it.reasons)
    assert float(it.tau) < tau / 2 < np.max(it.batch_tau)
    with pytest.raises(AutocorrError, match="batch means disagree"):
        estimate_tau(x)


def test_shared_window_and_one_each():
    fast = ar1(0.2, 4, 20_000, seed=12)
    slow = ar1(0.95, 4, 20_000, seed=13)
    x = np.concatenate([fast, slow], axis=2)
    shared = estimate_tau(x)
    assert shared.window[0] == shared.window[1]  # the slow one's window serves both
    each = estimate_tau(x, shared_window=False)
    assert each.window[0] < each.window[1]
    for j in range(2):
        one = estimate_tau(x[:, :, j])
        assert float(one.tau) == pytest.approx(each.tau[j])
        assert abs(shared.tau[j] - ar1_tau([0.2, 0.95][j])) < 3.5 * shared.tau_err[j]


def test_error_bar_holds_for_a_non_gaussian_series():
    """White noise whose amplitude wanders slowly: rho(t) = 0 for t >= 1, but the lag products
    are correlated over the amplitude's time, so Madras-Sokal's Gaussian formula is too small.
    The blocked error follows the spread of 60 independent estimates (as 60 observables)."""
    rng = np.random.default_rng(21)
    R, T, k = 4, 8_000, 60
    amp = np.exp(0.8 * ar1(0.995, R, T, seed=22, k=k) * np.sqrt(1 - 0.995**2))
    x = amp * rng.normal(size=(R, T, k))
    it = estimate_tau(x, shared_window=False)
    assert it.converged.all()  # the cross-check widens its bars by the batch means' kurtosis
    spread = np.std(it.tau, ddof=1)
    ms = np.mean(it.tau * np.sqrt(2 * (2 * it.window + 1) / (R * T)))
    assert spread > 1.5 * ms  # the Gaussian formula would be far too small here
    assert np.mean(it.tau_err) == pytest.approx(spread, rel=0.35)
    assert np.mean(np.abs(it.tau - 1.0) < 2 * it.tau_err) > 0.85


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
    it = estimate_tau(x, shared_window=False)
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
    for method in ("geyer", "sokal"):
        with pytest.raises(AutocorrError) as e:
            estimate_tau(x, method=method)
        assert np.isfinite(e.value.tau)
        assert "shorter than 50" in str(e.value) or "never sank" in str(e.value)
        with pytest.warns(AutocorrWarning):
            it = estimate_tau(x, quiet=True, method=method)
        assert not it.converged and it.reasons


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
