"""The reversible sweep family: the symmetric (forward-then-backward) sweep and the q-mixture of
forward and backward sweeps, as exact kernels (pbitsim.diagnostics.kernels) and as samplers
(``method="symmetric"``, ``method="sweep-mixture"``).

Exact kernels against brute-force enumeration of every update's outcomes; reversibility and time
reversal as identities (1e-12). Samplers: the one-step transition histogram from a fixed state
against the exact row (every state within 5 standard errors), moments against exact enumeration
(test_sim_kernels.moment_check), bit-identity with ``"sequential"`` at q = 1, and the usual
promises (threads, chunking, replicas, seeds).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_sim_kernels import moment_check
from test_spectra import brute_step

import pbitsim
from pbitsim import models
from pbitsim.diagnostics.kernels import (
    exact_chain,
    kernel_reversible,
    non_reversibility,
    transition_matrix,
    updates_per_step,
)
from pbitsim.exact import all_states, state_index

NEW = ["symmetric", "sweep-mixture"]


def glass(n=4, beta=0.9):
    return models.spin_glass(n, p=0.7, seed=5, field=0.4, beta=beta)


# -- exact kernels ----------------------------------------------------------------------------
def test_symmetric_kernel_is_forward_then_backward_by_brute_force():
    c = glass()
    n, N = c.n, 1 << c.n
    schedule = [[i] for i in range(n)] + [[i] for i in range(n - 2, -1, -1)]
    brute = np.array([brute_step(c, x, schedule, False) for x in range(N)])
    np.testing.assert_allclose(transition_matrix(c, "symmetric"), brute, atol=1e-12)
    # the turning site updated twice gives the same kernel (a heat-bath update is idempotent)
    twice = [[i] for i in range(n)] + [[i] for i in range(n - 1, -1, -1)]
    brute2 = np.array([brute_step(c, x, twice, False) for x in range(N)])
    np.testing.assert_allclose(brute2, brute, atol=1e-12)


@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 1.0])
def test_mixture_kernel_by_brute_force(q):
    c = glass()
    n, N = c.n, 1 << c.n
    fwd = np.array([brute_step(c, x, [[i] for i in range(n)], False) for x in range(N)])
    bwd = np.array([brute_step(c, x, [[i] for i in range(n - 1, -1, -1)], False) for x in range(N)])
    np.testing.assert_allclose(
        transition_matrix(c, "sweep-mixture", q=q), q * fwd + (1 - q) * bwd, atol=1e-12
    )


@pytest.mark.parametrize(("kernel", "q"), [("symmetric", None), ("sweep-mixture", 0.5)])
def test_reversible_members(kernel, q):
    c = glass(5, beta=1.2)
    ch = exact_chain(c, kernel, q=q)
    assert ch.reversible and kernel_reversible(kernel, q)
    assert non_reversibility(ch.P, ch.p) < 1e-12
    D = np.sqrt(ch.p)
    A = ch.P * D[:, None] / D[None, :]
    np.testing.assert_allclose(A, A.T, atol=1e-12)  # detailed balance
    assert np.abs(np.linalg.eigvals(ch.P).imag).max() < 1e-10  # real spectrum
    np.testing.assert_allclose(ch.p @ ch.P, ch.p, atol=1e-14)


def test_forward_sweep_is_not_reversible_and_the_family_interpolates():
    """A_q - A_q^T = (2q - 1)(A_F - A_F^T): non-reversibility vanishes only at q = 1/2."""
    c = glass(5, beta=1.2)
    p = exact_chain(c, "sequential").p
    r = np.sqrt(p)
    A = {q: transition_matrix(c, "sweep-mixture", q=q) * r[:, None] / r[None, :] for q in (0.2, 1)}
    np.testing.assert_allclose(A[0.2] - A[0.2].T, (2 * 0.2 - 1) * (A[1] - A[1].T), atol=1e-12)
    assert non_reversibility(transition_matrix(c, "sequential"), p) > 0.1
    assert not kernel_reversible("sequential") and not kernel_reversible("sweep-mixture", 0.3)


def test_time_reversal_q_and_one_minus_q_have_equal_tau():
    """The kernels at q and 1 - q are each other's L2(p) adjoints: C(t) and tau_int agree."""
    c = glass(5, beta=1.2)
    F = exact_chain(c).pair_values()
    taus = {q: exact_chain(c, "sweep-mixture", q=q).tau_int(F) for q in (0.1, 0.9, 0.0, 1.0)}
    np.testing.assert_allclose(taus[0.1], taus[0.9], rtol=1e-10)
    np.testing.assert_allclose(taus[0.0], taus[1.0], rtol=1e-10)
    np.testing.assert_allclose(taus[1.0], exact_chain(c, "sequential").tau_int(F), rtol=1e-10)


def test_flip_symmetric_sectors():
    c = models.ferromagnet(5, beta=0.5)
    for kernel, q in (("symmetric", None), ("sweep-mixture", 0.5), ("sweep-mixture", 0.8)):
        ch = exact_chain(c, kernel, q=q)
        assert ch.flip_symmetric
        gaps = ch.sector_gaps()
        assert gaps["odd"] < gaps["even"]


def test_units_and_bad_arguments():
    assert updates_per_step("symmetric", 6) == 11
    assert updates_per_step("sweep-mixture", 6) == 6
    assert updates_per_step("random-scan", 6) == 1
    c = glass()
    with pytest.raises(ValueError, match="needs q"):
        transition_matrix(c, "sweep-mixture")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        transition_matrix(c, "sweep-mixture", q=1.5)
    with pytest.raises(ValueError, match="sweep-mixture kernel only"):
        transition_matrix(c, "sequential", q=0.5)
    with pytest.raises(ValueError, match="permutation"):
        transition_matrix(c, "symmetric", order=[0, 0, 1, 2])


# -- samplers ---------------------------------------------------------------------------------
def one_step_histogram(c, method, x0, replicas, **kw):
    s0 = all_states(c.n)[x0]
    s = pbitsim.sample(
        c, 1, method=method, replicas=replicas, seed=3, initial=s0, progress=False, **kw
    )
    return np.bincount(state_index(s.spins[:, 0]), minlength=1 << c.n)


@pytest.mark.parametrize(("method", "q"), [("symmetric", None), ("sweep-mixture", 0.3)])
def test_sampler_step_is_the_exact_kernel(method, q):
    """From a fixed state, one sampler step lands in y with the exact P[x0, y]."""
    c = glass()
    kw = {} if q is None else {"q": q}
    P = transition_matrix(c, method, **kw)
    R = 40_000
    for x0 in (0, 9):
        counts = one_step_histogram(c, method, x0, R, **kw)
        expect = R * P[x0]
        sd = np.sqrt(R * P[x0] * (1 - P[x0])) + 1
        assert np.all(np.abs(counts - expect) < 5 * sd), (x0, counts, expect)


@pytest.mark.parametrize(("method", "kw"), [("symmetric", {}), ("sweep-mixture", {"q": 0.3})])
@pytest.mark.parametrize("name", ["glass", "rbm"])
def test_sampler_matches_exact_distribution(method, kw, name):
    c = {
        "glass": models.spin_glass(8, p=0.5, seed=1, field=0.3, beta=0.7),
        "rbm": models.rbm(5, 3, seed=2, scale=0.7, field=0.4),
    }[name]
    s = pbitsim.sample(
        c, 300, method=method, replicas=64, burn_in=50, thin=2, seed=1, progress=False, **kw
    )
    r = moment_check(s.spins, c)
    assert r["worst"] < 1, r
    assert r["kl"] < r["kl_bound"], r


@pytest.mark.parametrize("replicas", [3, 40])
def test_mixture_at_q_one_is_sequential_bit_for_bit(replicas):
    c = models.lattice_2d(4, 5, beta=0.5, h=0.1)
    kw = {"replicas": replicas, "burn_in": 3, "thin": 2, "seed": 8, "progress": False}
    a = pbitsim.sample(c, 20, method="sequential", **kw).spins
    b = pbitsim.sample(c, 20, method="sweep-mixture", q=1.0, **kw).spins
    np.testing.assert_array_equal(a, b)
    # q = 0 is a different (backward) chain from the same seed
    assert not np.array_equal(a, pbitsim.sample(c, 20, method="sweep-mixture", q=0.0, **kw).spins)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("method", NEW)
def test_threads_chunks_and_replicas_do_not_change_samples(method):
    c = models.random_regular(60, 3, seed=1, beta=0.7)
    kw = {"method": method, "burn_in": 2, "thin": 3, "seed": 5, "progress": False}
    try:
        numba.set_num_threads(1)
        one = pbitsim.sample(c, 30, replicas=300, **kw).spins
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    two = pbitsim.sample(c, 30, replicas=300, **kw).spins
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(pbitsim.sample(c, 30, replicas=3, **kw).spins, two[:3])
    runner = pbitsim.sampling.get_method(method)(c, replicas=3, seed=5)
    runner.advance(2)
    split = np.concatenate([runner.draw(4, thin=3), runner.draw(6, thin=3)], axis=1)
    np.testing.assert_array_equal(split, two[:3])
    other = pbitsim.sample(c, 30, replicas=3, **{**kw, "seed": 6}).spins
    assert not np.array_equal(other, two[:3])


def test_mixture_with_parallel_tempering_and_new_weights():
    c = glass(6, beta=1.0)
    s = pbitsim.sample(
        c,
        400,
        method="sweep-mixture",
        q=0.7,
        replicas=32,
        betas=[0.5, 1.0],
        burn_in=50,
        seed=2,
        progress=False,
    )
    assert s.info["swap_acceptance"][0] > 0
    cold = s.spins.reshape(32, 2, 400, c.n)[:, 1]
    assert moment_check(cold, c)["worst"] < 1
    c2 = c.replace(data=c.data * 0.5)
    with pbitsim.sampling.get_method("symmetric")(c, replicas=2, seed=1) as r:
        r.load(c2)
        a = r.draw(5)
    with pbitsim.sampling.get_method("symmetric")(c2, replicas=2, seed=1) as r:
        np.testing.assert_array_equal(a, r.draw(5))


def test_mixture_option_checks():
    c = glass()
    for bad, err in ((1.2, ValueError), (-0.1, ValueError), ("x", TypeError), (True, TypeError)):
        with pytest.raises(err, match="q must"):
            pbitsim.sample(c, 5, method="sweep-mixture", q=bad, progress=False)
    with pytest.raises(ValueError, match="no option"):
        pbitsim.sample(c, 5, method="symmetric", q=0.5, progress=False)
    s = pbitsim.sample(c, 5, method="sweep-mixture", q=0.25, seed=1, progress=False)
    assert s.settings["options"] == {"q": 0.25}
    assert pbitsim.sampling.get_method("symmetric").step_unit.startswith("symmetric sweep")
