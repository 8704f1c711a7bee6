"""Matrix-free exact spectra (``ExactChain(..., backend="krylov")``, diagnostics.matfree) against
the dense path: gaps, flip-sector gaps, exact tau_int, autocovariances and Var of time
averages, for every kernel, with and without field, in kernel steps and in sampler steps.

Tolerances: gaps agree to 1e-9 absolute (ARPACK's relative tolerance is 1e-12 on the eigenvalue,
and 1 - gap = |lambda| <= 1); tau_int to rtol 1e-7 (solves stop at a relative residual of 1e-11
or at the rounding floor ~eps/gap with a backward error <= 1e-11; the relative error of
<u, (I - A')^{-1} u> is at most the residual times 1/gap); operator products to 1e-12.
"""

import numpy as np
import pytest

from pbitsim import models
from pbitsim.diagnostics import ExactChain, matfree
from pbitsim.diagnostics.kernels import exact_chain, sampler_step_power, transition_matrix
from pbitsim.exact import boltzmann

KERNELS = ["random-scan", "sequential", "chromatic"]


def glass(n=8, field=0.5, beta=0.8, seed=3):
    return models.spin_glass(n, p=0.6, seed=seed, field=field, beta=beta)


def observables(ch):
    s = ch.states.astype(np.float64)
    return np.column_stack([ch.couplings.energy(ch.states), s.mean(axis=1), s[:, 0] * s[:, 1]])


def pair(c, kernel, **kw):
    return (
        exact_chain(c, kernel, backend="dense", **kw),
        exact_chain(c, kernel, backend="krylov", **kw),
    )


def test_log_weights_are_boltzmann():
    c = glass(9)
    np.testing.assert_allclose(np.exp(matfree.log_weights(c)), boltzmann(c), rtol=1e-12)
    # a wide distribution: weights down to ~exp(-600) are exact logs, not underflowed zeros
    hot = glass(9, beta=40.0)
    L = matfree.log_weights(hot)
    E = hot.energy(ExactChain(hot, check=False).states)
    np.testing.assert_allclose(L - L.max(), -40.0 * (E - E.min()), atol=1e-9)


@pytest.mark.parametrize("field", [0.5, 0.0])
@pytest.mark.parametrize("kernel", KERNELS + ["symmetric"])
def test_operator_matches_dense_matrix(kernel, field):
    c = glass(7, field=field)
    d, k = pair(c, kernel)
    rng = np.random.default_rng(0)
    for s in k.sectors:
        v = rng.standard_normal((k._sector(s)["dim"], 2))
        np.testing.assert_allclose(k._matvec(s, v), d._matvec(s, v), atol=1e-12)


@pytest.mark.parametrize("field", [0.5, 0.0])
@pytest.mark.parametrize("kernel", KERNELS)
def test_gap_and_tau_match_dense(kernel, field):
    c = glass(8, field=field)
    d, k = pair(c, kernel)
    assert k.backend == "krylov" and k.P is None and d.backend == "dense"
    assert k.spectral_gap() == pytest.approx(d.spectral_gap(), abs=1e-9)
    if field == 0.0:
        gk, gd = k.sector_gaps(), d.sector_gaps()
        for s in ("even", "odd"):
            assert gk[s] == pytest.approx(gd[s], abs=1e-9)
        assert gk["even"] != pytest.approx(gk["odd"], rel=1e-3)  # distinct: the test can fail
    F = observables(d)
    np.testing.assert_allclose(k.tau_int(F), d.tau_int(F), rtol=1e-7)
    np.testing.assert_allclose(k.variance(F), d.variance(F), rtol=1e-12)
    assert all(e["matvecs"] > 0 for e in k.krylov_log)
    assert not d.krylov_log


@pytest.mark.parametrize("kernel", ["symmetric", "sweep-mixture"])
def test_schedule_kernels_match_dense(kernel):
    c = glass(8, field=0.3)
    q = 0.3 if kernel == "sweep-mixture" else None
    d, k = pair(c, kernel, q=q)
    assert k.reversible == d.reversible
    assert k.spectral_gap() == pytest.approx(d.spectral_gap(), abs=1e-9)
    F = observables(d)
    np.testing.assert_allclose(k.tau_int(F), d.tau_int(F), rtol=1e-7)


def test_slow_planted_mode_needs_many_iterations_and_still_agrees():
    """A cold frustrated model with h = 0: a random-scan odd gap ~2e-8 (tau of m ~ 1e8). The
    solves take several times the iterations of a hot model, and stay exact."""
    c = glass(10, field=0.0, beta=1.6, seed=5)
    d, k = pair(c, "random-scan")
    gd = d.sector_gaps()
    assert gd["odd"] < 1e-4
    gk = k.sector_gaps()
    assert gk["odd"] == pytest.approx(gd["odd"], rel=1e-6)
    m = d.magnetisation_values()
    assert k.tau_int(m) == pytest.approx(d.tau_int(m), rel=1e-7)
    hot = exact_chain(c.with_beta(0.2), "random-scan", backend="krylov")
    hot.tau_int(m)
    slow, fast = k.krylov_log[-1], hot.krylov_log[-1]
    # the relative residual floor is ~eps/gap; the backward error is at rounding level
    assert slow["what"] == fast["what"] == "solve" and slow["backward_error"] <= 1e-11
    assert slow["iterations"] > 3 * fast["iterations"]


def test_slow_mode_of_a_sweep_kernel():
    """Chromatic on a cold glass, h = 0: odd gap ~3e-7. BiCGSTAB (restarted GMRES stalls on such
    modes) gives the dense tau of the magnetisation."""
    c = models.spin_glass(8, p=0.6, seed=1, field=0.0, beta=4.0)
    d, k = pair(c, "chromatic")
    gd = d.sector_gaps()
    assert gd["odd"] < 1e-4
    assert k.sector_gaps()["odd"] == pytest.approx(gd["odd"], rel=1e-6)
    m = d.magnetisation_values()
    assert k.tau_int(m) == pytest.approx(d.tau_int(m), rel=1e-7)
    assert k.krylov_log[-1]["solver"] == "bicgstab"


def test_autocovariance_and_time_average_variance_match_dense():
    c = glass(8, field=0.0)
    d, k = pair(c, "chromatic")
    F = observables(d)
    np.testing.assert_allclose(k.autocovariance(F, 6), d.autocovariance(F, 6), atol=1e-12)
    np.testing.assert_allclose(
        k.time_average_variance(F, 15), d.time_average_variance(F, 15), rtol=1e-7
    )


def test_sampler_steps_are_the_power_of_the_kernel_step():
    """steps="sampler": random scan's sampler step is n kernel steps (P**n); sweeps unchanged."""
    c = glass(7, field=0.4)
    assert sampler_step_power("random-scan", c.n) == c.n
    assert sampler_step_power("chromatic", c.n) == 1
    P = transition_matrix(c, "random-scan", sparse=False)
    ref = ExactChain.from_matrix(np.linalg.matrix_power(P, c.n), boltzmann(c))
    k = ExactChain(c, "random-scan", backend="krylov", steps="sampler")
    d = ExactChain(c, "random-scan", backend="dense", steps="sampler")
    F = observables(d)
    np.testing.assert_allclose(k.tau_int(F), ref.tau_int(F), rtol=1e-7)
    np.testing.assert_allclose(d.tau_int(F), ref.tau_int(F), rtol=1e-9)
    assert k.spectral_gap() == pytest.approx(ref.spectral_gap(), abs=1e-9)
    one = ExactChain(c, "random-scan", backend="krylov")
    assert k.spectral_gap() == pytest.approx(1 - (1 - one.spectral_gap()) ** c.n, abs=1e-9)
    # an int: k kernel steps (a thinned draw), here two sweeps
    P = transition_matrix(c, "sequential")
    two = ExactChain.from_matrix(P @ P, boltzmann(c))
    k2 = ExactChain(c, "sequential", backend="krylov", steps=2)
    np.testing.assert_allclose(k2.tau_int(F), two.tau_int(F), rtol=1e-7)


def test_auto_backend_and_a_larger_model():
    """auto: dense up to 2**12 states, matrix-free above. n = 14 with h = 0 (sector vectors of
    2**13) against the sparse random-scan matrix: the gaps from ARPACK on that matrix, and tau
    from the sum of its exact autocovariances (no solve; the model mixes in ~10^3 steps)."""
    assert ExactChain(glass(8), "sequential").backend == "dense"
    c = models.spin_glass(14, p=0.3, seed=2, beta=0.5)
    k = ExactChain(c, "random-scan")
    assert k.backend == "krylov" and k.P is None
    d = ExactChain(c, "random-scan", backend="dense")
    gk, gd = k.sector_gaps(), d.sector_gaps()
    for s in ("even", "odd"):
        assert gk[s] == pytest.approx(gd[s], abs=1e-9)
    f = d.pair_values()[:, :2]  # even: only the even gap sets their decay
    C = d.autocovariance(f, int(40 / gd["even"]))
    assert np.all(np.abs(C[-1]) < 1e-14 * C[0])  # the sum has converged
    np.testing.assert_allclose(k.tau_int(f), (2 * C.sum(axis=0) - C[0]) / C[0], rtol=1e-7)


def test_not_available_matrix_free_says_so():
    c = glass(8, field=0.0)
    k = ExactChain(c, "sequential", backend="krylov")
    with pytest.raises(NotImplementedError, match="Schur"):
        k.mode_expansion(k.magnetisation_values())
    with pytest.raises(NotImplementedError, match="spectrum"):
        ExactChain(c, "random-scan", backend="krylov").eigenvalues()
    with pytest.raises(NotImplementedError):
        k.fundamental_matrix()


def test_init_wrong_backend_and_memory():
    c = glass(8)
    with pytest.raises(ValueError, match="backend"):
        ExactChain(c, backend="sparse")
    for bad in ("sweeps", 0, True):
        with pytest.raises(ValueError, match="steps"):
            ExactChain(c, steps=bad)
    with pytest.raises(MemoryError, match="GiB"):
        ExactChain(c, backend="krylov", max_memory=1000)
    with pytest.raises(ValueError, match="n <= 16"):
        ExactChain(models.ferromagnet(17), backend="dense")
    assert matfree.estimate_memory(20, True) < 2**30


def test_reversible_mode_expansion_matrix_free():
    """Random scan matrix-free keeps the iterative (Lanczos) mode expansion; its K-mode predictor
    agrees with the dense one and the exact tau is the solve's."""
    c = glass(9, field=0.3)
    d, k = pair(c, "random-scan")
    f = observables(d)[:, :2]
    np.testing.assert_allclose(k.predict_tau(f, K=5), d.predict_tau(f, K=5), rtol=1e-7)
