"""Parallel-tempering diagnostics against exact enumeration (swap acceptance and specific heat of
independent Boltzmann states), hand-made walker histories, and a tiny exact-kernel PT run.

Tolerances: sample estimates within 3.5 of their reported standard errors.
"""

import numpy as np
import pytest
from diag_support import exact_samples, parallel_tempering

from pbitsim import FingerprintMismatchError, Samples, models
from pbitsim.diagnostics.pt import (
    adapt_ladder,
    exact_specific_heat,
    exact_swap_acceptance,
    is_pt,
    pt_betas,
    pt_profile,
    round_trips,
    specific_heat,
    starving_rungs,
    swap_acceptance,
)


@pytest.fixture(scope="module")
def pt_run():
    c = models.ferromagnet(6, beta=0.6)
    betas = np.linspace(0.05, 0.6, 5)
    return c, betas, parallel_tempering(c, betas, draws=3000, chains=4, seed=2)


def test_round_trips_handcrafted():
    K = 3
    rung = np.array(
        [
            [0, 1, 2, 2, 1, 0, 0, 1, 2, 2],  # walker 0: ends 0@0 2@2 0@5 2@8
            [1, 0, 0, 1, 2, 2, 1, 0, 0, 1],  # walker 1: ends 0@1 2@4 0@7
            [2, 2, 1, 0, 0, 1, 2, 2, 1, 0],  # walker 2: ends 2@0 0@3 2@6 0@9
        ]
    )
    T = rung.shape[1]
    walker_index = np.empty((K, T), dtype=int)  # slot k -> walker
    walker_index[rung, np.arange(T)] = np.arange(K)[:, None]
    rt = round_trips(walker_index, K)
    # 3 legs, 2 legs, 3 legs -> one completed round trip each; times between returns to an end
    assert rt.per_chain.tolist() == [3]
    assert sorted(rt.times.tolist()) == [5, 6, 6, 6, 6]
    assert rt.mean_time == pytest.approx(29 / 5)
    assert rt.flow[0] == 1.0 and rt.flow[2] == 0.0 and 0 < rt.flow[1] < 1
    # two chains: counts per chain
    rt2 = round_trips(np.concatenate([walker_index, walker_index]), K)
    assert rt2.per_chain.tolist() == [3, 3] and rt2.total == 6


def test_round_trips_none_when_walkers_stay():
    K, T = 4, 50
    wi = np.tile(np.arange(K)[:, None], (2, T))  # 2 chains, nobody ever swaps
    rt = round_trips(wi, K)
    assert rt.total == 0 and len(rt.times) == 0 and rt.mean_time == np.inf


def test_acceptance_and_specific_heat_vs_exact(pt_run):
    c, betas, s = pt_run
    assert is_pt(s) and np.array_equal(pt_betas(s), betas)
    exact = exact_swap_acceptance(c, betas)
    acc, err, src = swap_acceptance(s, recompute=True)
    assert src == "energies"
    np.testing.assert_array_less(np.abs(acc - exact), 3.5 * err)
    acc_i, err_i, src_i = swap_acceptance(s)
    assert src_i == "info"
    # binomial errors ignore the correlation of successive attempts: allow 5 of them
    np.testing.assert_array_less(np.abs(acc_i - exact), 5 * err_i)
    cv, cv_err = specific_heat(s)
    np.testing.assert_array_less(np.abs(cv - exact_specific_heat(c, betas)), 3.5 * cv_err)
    # from the spins and the model instead of the recorded energies: the same numbers
    cv2, _ = specific_heat(s, c)
    np.testing.assert_allclose(cv2, cv, rtol=1e-12)


def test_specific_heat_exact_vs_enumeration():
    c = models.ring(5, beta=1.0)
    from pbitsim.exact import all_states, boltzmann

    E = c.energy(all_states(5))
    for b in (0.3, 1.2):
        p = boltzmann(c, b)
        assert exact_specific_heat(c, [b])[0] == pytest.approx(b**2 * (p @ E**2 - (p @ E) ** 2))
    # exact acceptance by explicit double sum over states
    b = [0.4, 0.9]
    p0, p1 = boltzmann(c, b[0]), boltzmann(c, b[1])
    a = np.exp(np.minimum((b[0] - b[1]) * (E[:, None] - E[None, :]), 0))
    assert exact_swap_acceptance(c, b)[0] == pytest.approx(p0 @ a @ p1, rel=1e-12)


def test_profile_of_healthy_run(pt_run):
    c, betas, s = pt_run
    prof = pt_profile(s, c)
    assert prof.ok and len(prof.starving) == 0
    assert prof.round_trips.total > 100
    assert len(prof.suggested_betas) == len(betas)
    text = prof.summary()
    assert "round trips" in text and "STARVING" not in text


def test_adapted_ladder_fixes_an_uneven_specific_heat():
    # An h = 0 ferromagnet across its transition: C(beta) is sharply peaked, so a linear ladder
    # starves one rung while the others swap almost always.
    c = models.ferromagnet(10, beta=1.0)
    b = np.linspace(0.02, 1.0, 5)
    acc0 = exact_swap_acceptance(c, b)
    assert starving_rungs(acc0).tolist() == [0] and acc0.max() > 0.99
    # one step from the specific heat at the rungs
    b1 = adapt_ladder(b, specific_heat=exact_specific_heat(c, b))
    acc1 = exact_swap_acceptance(c, b1)
    assert b1[0] == b[0] and b1[-1] == b[-1] and np.all(np.diff(b1) > 0)
    assert len(starving_rungs(acc1)) == 0 and acc1.min() > 0.25
    # feedback on the measured acceptance converges to a flat profile
    b2 = b
    for _ in range(3):
        b2 = adapt_ladder(b2, acceptance=exact_swap_acceptance(c, b2))
    acc2 = exact_swap_acceptance(c, b2)
    assert acc2.max() / acc2.min() < 1.2
    # more rungs for a higher target acceptance; direction of the ladder is kept
    more = adapt_ladder(b, acceptance=acc0, target_acceptance=0.9)
    assert len(more) > len(b)
    rev = adapt_ladder(b[::-1], specific_heat=exact_specific_heat(c, b)[::-1])
    np.testing.assert_allclose(rev, b1[::-1], rtol=1e-12)


def test_adapt_ladder_wrong_input():
    with pytest.raises(ValueError, match="monotone"):
        adapt_ladder([0.1, 0.3, 0.2], acceptance=[0.5, 0.5])
    with pytest.raises(ValueError, match="exactly one"):
        adapt_ladder([0.1, 0.2], acceptance=[0.5], specific_heat=[1, 1])
    with pytest.raises(ValueError, match="shape"):
        adapt_ladder([0.1, 0.2, 0.3], acceptance=[0.5])


def test_starving_report():
    c = models.ferromagnet(4, beta=1.0)
    K, C, T = 3, 2, 40
    rng = np.random.default_rng(0)
    spins = rng.choice(np.array([-1, 1], np.int8), size=(C * K, T, 4))
    info = {
        "betas": [0.2, 0.5, 1.0],
        "swap_acceptance": [0.4, 0.0099],
        "swap_attempts": [400, 400],
        "walker_index": np.tile(np.arange(K)[:, None], (C, T)),
        "energies": c.energy(spins),
    }
    s = Samples(spins, c.fingerprint, c.topology_fingerprint, "pt", 0, {}, info)
    prof = pt_profile(s)
    assert prof.starving.tolist() == [1] and not prof.ok
    text = prof.summary()
    assert "STARVING" in text and "starving rungs" in text and "round trip" in text
    assert starving_rungs([0.05, 0.5, 0.2], threshold=0.25).tolist() == [0, 2]


def test_fingerprint_guard_and_non_pt(pt_run):
    c, betas, s = pt_run
    with pytest.raises(FingerprintMismatchError):
        specific_heat(s, c.with_beta(0.7))
    with pytest.raises(FingerprintMismatchError):
        pt_profile(s, models.ferromagnet(6, J=0.5, beta=0.6))
    plain = exact_samples(c, "sequential", draws=20, replicas=2, seed=0)
    assert not is_pt(plain)
    with pytest.raises(ValueError, match="parallel-tempering"):
        pt_betas(plain)


def test_numba_pt_profile_vs_exact():
    # The production PT sampler (skipped until pbitsim.sample exists).
    import pbitsim

    if not hasattr(pbitsim, "sample"):
        pytest.skip("pbitsim.sample is not available yet")
    c = models.ferromagnet(6, beta=0.6)
    betas = np.linspace(0.05, 0.6, 5)
    s = pbitsim.sample(
        c, 4000, method="chromatic", replicas=4, burn_in=200, thin=1, seed=1, betas=betas.tolist()
    )
    assert is_pt(s)
    exact = exact_swap_acceptance(c, betas)
    acc, err, _ = swap_acceptance(s, recompute=True)
    np.testing.assert_array_less(np.abs(acc - exact), 3.5 * err)
    cv, cv_err = specific_heat(s, c)
    np.testing.assert_array_less(np.abs(cv - exact_specific_heat(c, betas)), 3.5 * cv_err)
    assert pt_profile(s, c).round_trips.total > 0
