"""The exact schemes (pbitsim.sim.gibbs): samples against exact enumeration, and the promises of
the kernels (same numbers whatever the thread count, kernel, chunking or replica count).

Statistics: R independent replicas, each thinned after burn-in. Standard errors of every moment
come from the spread of the R replica means (batch means, so autocorrelation is included); a
moment passes when |sampled - exact| < 5 SE + 1e-3. With N draws the KL divergence of the state
histogram from the exact distribution is, for independent draws, about chi2(S - 1) / (2N) over S
states; correlation inflates it by about tau, estimated as the largest ratio of a moment's
squared SE to its independent-draw value Var / N. The bound is tau * (S - 1 + 5 sd) / (2N).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import pbitsim
from pbitsim import exact, models
from pbitsim.sim import gibbs

SCHEMES = ["sequential", "random-scan", "chromatic"]
MODELS = {
    "ferromagnet": models.ferromagnet(8, J=0.15),
    "ferromagnet+h": models.ferromagnet(8, J=0.15, h=0.15),
    "glass": models.spin_glass(10, p=0.5, seed=1, beta=0.7),
    "glass+h": models.spin_glass(10, p=0.5, seed=1, field=0.5, beta=0.7),
    "rbm": models.rbm(6, 4, seed=2, scale=0.7),
    "rbm+h": models.rbm(6, 4, seed=2, scale=0.7, field=0.5),
}
REPLICAS, BURN_IN, SWEEPS, THIN = 256, 100, 400, 4


def moment_check(spins: np.ndarray, c, beta: float | None = None) -> dict:
    """Compare (rows, draws, n) spins with the exact distribution of ``c`` (at ``beta``)."""
    s = np.asarray(spins, dtype=np.float64)
    R, T, n = s.shape
    iu = np.triu_indices(n, 1)
    # per-replica means of s_i and s_i s_j (i < j): the batches
    first = s.mean(axis=1)
    second = np.einsum("rti,rtj->rij", s, s)[:, iu[0], iu[1]] / T
    batches = np.concatenate([first, second], axis=1)
    est = batches.mean(axis=0)
    se = batches.std(axis=0, ddof=1) / np.sqrt(R)
    m, C = exact.exact_moments(c, beta)
    truth = np.concatenate([m, C[iu]])
    z = np.abs(est - truth) / (5 * se + 1e-3)
    N = R * T
    tau = max(1.0, float(np.max(N * se**2 / np.maximum(1 - truth**2, 1e-12))))
    S = 2**n
    kl = exact.kl_divergence(exact.empirical_distribution(s, n), exact.boltzmann(c, beta))
    bound = tau * (S - 1 + 5 * np.sqrt(2 * (S - 1))) / (2 * N)
    return {"worst": float(z.max()), "kl": kl, "kl_bound": bound, "tau": tau}


def draws(c, method, seed=0, **kw):
    return pbitsim.sample(
        c, SWEEPS, method=method, replicas=REPLICAS, burn_in=BURN_IN, thin=THIN, seed=seed, **kw
    )


@pytest.mark.parametrize("method", SCHEMES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_exact_distribution(method, name):
    c = MODELS[name]
    r = moment_check(draws(c, method).spins, c)
    assert r["worst"] < 1, r
    assert r["kl"] < r["kl_bound"], r


@pytest.mark.parametrize("method", SCHEMES)
def test_check_detects_wrong_beta(method):
    """The statistical checks above have power: samples at 1.15 beta fail them."""
    c = MODELS["glass+h"]
    r = moment_check(draws(c, method, beta=1.15 * c.beta).spins, c)
    assert r["worst"] > 1 or r["kl"] > r["kl_bound"], r


def test_energies_recorded_exactly():
    c = MODELS["glass+h"]
    s = pbitsim.sample(c, 50, replicas=3, seed=1)
    assert s.info["energies"].shape == (3, 50)
    np.testing.assert_allclose(s.info["energies"], c.energy(s.spins), rtol=0, atol=1e-12)


CASES = {
    "lattice": models.lattice_2d(6, 10, beta=0.5, h=0.1),
    "regular": models.random_regular(200, 3, seed=1, beta=0.7),
    "dense": models.spin_glass(30, p=0.4, seed=2, field=0.2),  # rows longer than 4 entries
}


def run(c, method, threads=None, **kw):
    if threads is not None:
        numba.set_num_threads(threads)
    try:
        return pbitsim.sample(
            c, 40, method=method, replicas=20, burn_in=7, thin=4, seed=5, **kw
        ).spins
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


PT = {"betas": [0.3, 0.6, 1.0], "swap_every": 2}


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("pt", [False, True])
@pytest.mark.parametrize("method", SCHEMES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_thread_count_does_not_change_samples(method, name, pt):
    c, kw = CASES[name], PT if pt else {}
    np.testing.assert_array_equal(run(c, method, threads=1, **kw), run(c, method, threads=2, **kw))


@pytest.mark.parametrize("pt", [False, True])
@pytest.mark.parametrize("method", ["sequential", "chromatic"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_agree(method, name, pt, monkeypatch):
    """Replica-vectorised, column-by-column and site-vectorised kernels compute the same bits."""
    c, kw = CASES[name], PT if pt else {}
    monkeypatch.setattr(gibbs, "_COLUMN_KERNELS_BELOW", 0)
    by_replicas = run(c, method, **kw)
    monkeypatch.setattr(gibbs, "_COLUMN_KERNELS_BELOW", 10**9)
    np.testing.assert_array_equal(by_replicas, run(c, method, **kw))


@pytest.mark.parametrize("pt", [False, True])
@pytest.mark.parametrize("name", ["lattice", "regular"])
def test_word_recording_agrees(name, pt, monkeypatch):
    """Blocks of a multiple of 8 columns record 8 x 8 tiles as words (every tile of the regular
    graph's 200 sites, 4 ragged sites of the lattice's 60, tempering's rows by rung): the same
    spins, energies and walkers as the column kernels' byte-at-a-time recording."""
    c, kw = CASES[name], PT if pt else {}
    replicas = 8 if pt else 16  # 24 or 16 columns in one block

    def one(below):
        monkeypatch.setattr(gibbs, "_COLUMN_KERNELS_BELOW", below)
        s = pbitsim.sample(c, 12, method="chromatic", replicas=replicas, thin=3, seed=4, **kw)
        return s.spins, s.info["energies"], s.info.get("walker_index")

    words, columns = one(0), one(10**9)
    for a, b in zip(words, columns, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pt", [False, True])
def test_draws_without_energies(pt):
    """``record_energies = False`` (what PCD sets) gives the same spins and no energies; tempering
    keeps them (its swaps need them)."""
    c, kw = CASES["regular"], PT if pt else {}
    cls = pbitsim.sampling.get_method("chromatic")
    a, b = cls(c, replicas=16, seed=3, **kw), cls(c, replicas=16, seed=3, **kw)
    b.record_energies = False
    np.testing.assert_array_equal(a.draw(6, thin=2), b.draw(6, thin=2))
    assert ("energies" in b.draw_info()) == pt
    if pt:
        np.testing.assert_array_equal(a.draw_info()["energies"], b.draw_info()["energies"])


@pytest.mark.parametrize("method", SCHEMES)
def test_chunking_does_not_change_samples(method):
    c = CASES["regular"]
    cls = pbitsim.sampling.get_method(method)
    a = cls(c, replicas=3, seed=1)
    a.advance(3)
    split = np.concatenate([a.draw(5, thin=2), a.draw(5, thin=2)], axis=1)
    b = cls(c, replicas=3, seed=1)
    b.advance(1)
    b.advance(2)
    np.testing.assert_array_equal(split, b.draw(10, thin=2))


@pytest.mark.parametrize("method", SCHEMES)
def test_replica_does_not_depend_on_the_others(method):
    c = CASES["lattice"]
    few = pbitsim.sample(c, 10, method=method, replicas=3, seed=2).spins
    many = pbitsim.sample(c, 10, method=method, replicas=40, seed=2).spins
    np.testing.assert_array_equal(few, many[:3])


@pytest.mark.parametrize("method", SCHEMES)
def test_seed_controls_the_samples(method):
    c = CASES["lattice"]
    a, b, other = (
        pbitsim.sample(c, 20, method=method, replicas=2, seed=s).spins for s in (3, 3, 4)
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other)


def test_acceptance_probability_is_tanh():
    """Single spin, field h: P(+1) = (1 + tanh(beta h)) / 2 across the whole range of beta h,
    including the clamped tails (|beta h| > 7.9)."""
    for bh in (-9.0, -3.0, -0.7, 0.0, 0.2, 1.5, 8.5):
        c = pbitsim.Couplings.from_dense(np.zeros((1, 1)), h=[bh], beta=1.0)
        s = pbitsim.sample(c, 20000, replicas=8, seed=11).spins
        p = (1 + np.tanh(bh)) / 2
        N = s.size
        sd = np.sqrt(p * (1 - p) / N) + 1 / N
        assert abs((s > 0).mean() - p) < 5 * sd, bh


def test_sample_records_energies_of_a_held_runner_without_them():
    """``sample`` on a held runner whose caller turned the energies off still returns them, and
    gives the caller's setting back."""
    c = CASES["regular"]
    with pbitsim.open_runner(c, "chromatic", 16, seed=2) as r:
        r.record_energies = False
        s = pbitsim.sample(c, 4, method=r)
        assert r.record_energies is False
    np.testing.assert_allclose(s.info["energies"], c.energy(s.spins), rtol=0, atol=1e-9)
