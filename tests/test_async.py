"""Tests of the asynchronous p-bit model (pbitsim.sim.async_, method "async").

Statistical tests use one draw per replica after burn-in, so the draws are independent and the
KL divergence of their histogram from the exact distribution has a known null distribution:
2 N KL ~ chi-square(K - 1) for N draws over K states, i.e. mean (K-1)/(2N), sd sqrt(2(K-1))/(2N).
"""

import numpy as np
import pytest

import pbitsim
from pbitsim import Couplings, models
from pbitsim.async_design import stationary_distribution
from pbitsim.exact import async_tick_kernel, boltzmann, empirical_distribution, kl_divergence
from pbitsim.sampling import get_method
from pbitsim.sim.async_ import AsyncRunner

N = 20_000
MODELS = {
    "ferromagnet5": models.ferromagnet(5, J=0.25, h=0.1),
    "glass6": models.spin_glass(6, p=0.7, seed=3, beta=0.5),
}


def kl_z(c, burn_in=20, seed=1, **options):
    """(KL, its null mean, its null sd) of N independent draws of the async sampler."""
    init = np.random.default_rng(seed).choice([-1, 1], (N, c.n)).astype(np.int8)
    run = AsyncRunner(c, replicas=N, seed=seed, initial=init, **options)
    run.advance(burn_in)
    s = run.draw(1)
    K = 2**c.n
    kl = kl_divergence(empirical_distribution(s, c.n), boltzmann(c))
    return kl, (K - 1) / (2 * N), np.sqrt(2 * (K - 1)) / (2 * N)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bias_vanishes_as_firing_probability_drops(name):
    c = MODELS[name]
    kl = {}
    for p in (1.0, 0.3, 0.02):
        kl[p], null, sd = kl_z(c, p=p)
    # p = 1: every p-bit fires every tick (synchronous parallel updates): far from Boltzmann.
    assert kl[1.0] > null + 50 * sd
    # The bias falls with p, each step well outside the sampling error ...
    assert kl[1.0] > kl[0.3] + 5 * sd
    assert kl[0.3] > kl[0.02] + 5 * sd
    # ... and at p = 0.02 is consistent with zero.
    assert kl[0.02] < null + 4 * sd


def test_tick_kernel_is_stochastic_and_tends_to_boltzmann_as_p_squared():
    """pbitsim.exact.async_tick_kernel: rows sum to 1, and the stationary distribution's KL from
    Boltzmann falls as p**2 (p -> 0 is random-scan Gibbs; the first-order deviation is O(p)):
    halving p divides it by 4 up to O(p) (4.02-4.05 measured at p = 0.04 -> 0.01)."""
    c = MODELS["ferromagnet5"]
    kl = []
    for p in (0.04, 0.02, 0.01):
        T = async_tick_kernel(c, p)
        np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
        kl.append(kl_divergence(stationary_distribution(T), boltzmann(c)))
    assert 3.8 < kl[0] / kl[1] < 4.2 and 3.8 < kl[1] / kl[2] < 4.2
    with pytest.raises(ValueError, match="p must be in"):
        async_tick_kernel(c, 1.5)


@pytest.mark.parametrize("layout", [1, 2])
def test_both_stream_layouts_sample_the_models_stationary_distribution(layout):
    """At p = 0.5 the chain is biased away from Boltzmann (parallel firings); its own
    stationary distribution, enumerated, is what either stream layout must sample: KL of N
    independent draws within 4 null sd of zero, and far from Boltzmann (30 sd; 58-77 measured)."""
    c = MODELS["ferromagnet5"]
    exact = stationary_distribution(async_tick_kernel(c, 0.5))
    init = np.random.default_rng(2).choice([-1, 1], (N, c.n)).astype(np.int8)
    run = AsyncRunner(c, replicas=N, seed=7, p=0.5, initial=init, stream_layout=layout)
    run.advance(20)
    emp = empirical_distribution(run.draw(1), c.n)
    K = 2**c.n
    null, sd = (K - 1) / (2 * N), np.sqrt(2 * (K - 1)) / (2 * N)
    assert kl_divergence(emp, exact) < null + 4 * sd
    assert kl_divergence(emp, boltzmann(c)) > null + 30 * sd


def test_staleness_increases_bias():
    c = MODELS["ferromagnet5"]
    kl = {}
    for d in (0, 5, 20):
        kl[d], null, sd = kl_z(c, p=0.1, delay=d)
    assert kl[0] < null + 5 * sd
    assert kl[5] > kl[0] + 10 * sd
    assert kl[20] > kl[5] + 10 * sd


def test_periodic_mode():
    c = MODELS["ferromagnet5"]
    # All periods 1 and no jitter: everyone fires every tick, as p = 1.
    kl, null, sd = kl_z(c, mode="periodic", period=1.0, jitter=0.0)
    assert kl > null + 50 * sd
    # Long periods, random phases, jitter: firings of coupled p-bits rarely coincide.
    kl, null, sd = kl_z(c, mode="periodic", period=20.0, jitter=1.0)
    assert kl < null + 4 * sd


def test_synchronous_pair_oscillates():
    """p = 1, strong antiferromagnetic pair from (+1, +1): both read (+1, +1) and flip together,
    then both read (-1, -1) and flip back (each flip fails with probability ~1e-9)."""
    c = Couplings.from_edges(2, [(0, 1, -10.0)])
    run = AsyncRunner(c, replicas=2, seed=4, p=1.0, initial=[1, 1])
    s = run.draw(6)
    assert s[0].tolist() == [[-1, -1], [1, 1]] * 3 and s[1].tolist() == s[0].tolist()


def test_one_step_is_one_update_per_pbit_on_average():
    c = models.ring(6, J=0.3)
    for options in ({"p": 0.1}, {"p": 0.25}, {"mode": "periodic", "period": 8.0, "jitter": 0.5}):
        run = AsyncRunner(c, replicas=200, seed=2, **options)
        run.advance(50)
        u = run.info()["updates_per_step"]
        # Poisson: mean of 200 * 50 Bernoulli sums, sd ~ sqrt(1 / (200 * 50)) = 0.01 per p-bit.
        assert np.all(np.abs(u - 1.0) < 0.05), (options, u)
    assert AsyncRunner(c, p=0.25).ticks_per_step == 4
    assert AsyncRunner(c, mode="periodic", period=[7.6, 8.4] * 3).ticks_per_step == 8


@pytest.mark.parametrize(
    "options",
    [
        {"p": 0.2},
        {"p": 0.2, "delay": 3},
        {"mode": "periodic", "period": 5.0, "jitter": 0.7},
    ],
)
def test_deterministic_and_chunking_invisible(options):
    c = models.spin_glass(7, p=0.5, seed=1, field=0.3)
    a = AsyncRunner(c, replicas=3, seed=9, **options)
    b = AsyncRunner(c, replicas=3, seed=9, **options)
    x = np.concatenate([a.draw(3, 2), a.draw(2, 2)], axis=1)
    b.advance(2)
    y = b.draw(8, 1)
    np.testing.assert_array_equal(x[:, 1:], y[:, 1::2])
    assert x.dtype == np.int8 and x.shape == (3, 5, 7)
    other = AsyncRunner(c, replicas=3, seed=10, **options).draw(5, 2)
    assert not np.array_equal(other, x)


def test_explicit_phase():
    c = Couplings.from_dense(np.zeros((2, 2)), h=[20.0, 20.0])  # any firing gives +1
    run = AsyncRunner(
        c, mode="periodic", period=4.0, jitter=0.0, phase=[0.5, 2.5], seed=1, initial=[-1, -1]
    )
    s = run._ticks(4, 1)[0]  # tick by tick: p-bit 0 fires at tick 1, p-bit 1 at tick 3
    assert s.tolist() == [[1, -1], [1, -1], [1, 1], [1, 1]]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"mode": "clocked"}, "mode must be"),
        ({"p": 0.0}, "p must be"),
        ({"delay": -1}, "delay"),
        ({"period": 0.0, "mode": "periodic"}, "period"),
        ({"jitter": -1.0}, "jitter"),
        ({"phase": [0.0, 1.0, 2.0]}, "applies to mode=.periodic. only"),
        ({"initial": [1, 0, 1]}, "initial"),
        ({"stream_layout": 3}, "stream_layout must be"),
        ({"stream_layout": True}, "stream_layout must be"),
        ({"stream_layout": 2.0}, "stream_layout must be"),
        ({"stream_layout": 2, "mode": "periodic"}, "applies to mode='poisson' only"),
    ],
)
def test_init_wrong(options, match):
    with pytest.raises(ValueError, match=match):
        AsyncRunner(models.ring(3), **options)


def test_registered():
    assert get_method("async") is AsyncRunner
    run = AsyncRunner(models.ring(3), p=0.5, seed=3)
    assert run.settings["master_seed"] == 3 and run.step_unit == "async step"
    # the stream layout is recorded: poisson's default 2, periodic's only 1
    assert run.settings["stream_layout"] == 2
    assert AsyncRunner(models.ring(3), mode="periodic").settings["stream_layout"] == 1
    s = pbitsim.sample(models.ring(3), 2, method="async", seed=1, stream_layout=1)
    assert s.settings["runner"]["stream_layout"] == 1  # what a Samples file carries
