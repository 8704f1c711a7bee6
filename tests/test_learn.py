"""Boltzmann machine training: exact likelihoods, statistics, and PCD with several samplers."""

import numpy as np
import pytest

from pbitsim.exact import all_states, boltzmann
from pbitsim.learn import RBM, FullyVisibleBM


@pytest.fixture
def small_rbm():
    rng = np.random.default_rng(1)
    return RBM(rng.normal(0, 0.7, (5, 3)), rng.normal(0, 0.3, 5), rng.normal(0, 0.3, 3))


def test_rbm_couplings_have_the_rbm_energy(small_rbm):
    c = small_rbm.to_couplings()
    assert c.n_colors == 2 and c.n_edges == 15
    s = all_states(8).astype(float)
    v, h = s[:, :5], s[:, 5:]
    e = -(np.einsum("si,ij,sj->s", v, small_rbm.W, h) + v @ small_rbm.a + h @ small_rbm.b)
    np.testing.assert_allclose(c.energy(s), e)


def test_rbm_exact_likelihood_matches_enumeration(small_rbm):
    p = boltzmann(small_rbm.to_couplings())
    s = all_states(8)
    # marginal over hiddens (bits 5..7 of the state index)
    p_v = p.reshape(8, 32).sum(axis=0)  # index = v_bits + 32 * h_bits
    v_states = s[:32, :5]
    np.testing.assert_allclose(
        np.exp(-small_rbm.free_energy(v_states) - small_rbm.log_partition()), p_v, rtol=1e-10
    )
    data = v_states[[0, 3, 3, 17]]
    assert small_rbm.log_likelihood(data) == pytest.approx(np.mean(np.log(p_v[[0, 3, 3, 17]])))


def test_rbm_data_statistics_are_exact_conditionals(small_rbm):
    p = boltzmann(small_rbm.to_couplings()).reshape(8, 32)  # [h_bits, v_bits]
    s = all_states(8)
    v = s[5, :5][None].astype(float)  # one visible vector (index 5)
    cond = p[:, 5] / p[:, 5].sum()  # p(h | v)
    h_states = s[::32, 5:]
    vh, mv, mh = small_rbm.data_statistics(v)
    np.testing.assert_allclose(mh, cond @ h_states)
    np.testing.assert_allclose(vh, np.outer(v[0], cond @ h_states))


def test_pseudo_likelihood_is_below_zero_and_tracks_exact(small_rbm):
    v = all_states(5)
    assert small_rbm.pseudo_log_likelihood(v) < 0


def test_fvbm_likelihood_normalised():
    m = FullyVisibleBM.init(4, seed=0, scale=0.5)
    ll = np.array([m.log_likelihood(x[None]) for x in all_states(4)])
    assert np.exp(ll).sum() == pytest.approx(1.0)


def test_init_matches_data_means():
    data = np.where(np.random.default_rng(0).random((500, 6)) < 0.8, 1, -1)
    m = RBM.init(6, 2, data=data, scale=0.0)
    np.testing.assert_allclose(np.tanh(m.a), np.clip(data.mean(0), -0.98, 0.98))


# -- training ------------------------------------------------------------------------------------

from pbitsim.learn import (  # noqa: E402
    RunnerSampler,
    TrainConfig,
    load_checkpoint,
    train,
)


def tiny_data():
    """Two noisy prototypes on 8 visibles: a model that learns must raise the likelihood."""
    rng = np.random.default_rng(0)
    protos = np.array([[1, 1, 1, 1, -1, -1, -1, -1], [-1, 1, -1, 1, -1, 1, -1, 1]])
    x = protos[rng.integers(0, 2, 300)]
    flip = rng.random(x.shape) < 0.05
    return np.where(flip, -x, x).astype(np.int8)


@pytest.mark.parametrize("method", ["chromatic", "hardware"])
def test_pcd_raises_likelihood(method, tmp_path):
    data = tiny_data()
    model = RBM.init(8, 4, seed=0, data=data)
    ll0 = model.log_likelihood(data)
    cfg = TrainConfig(
        epochs=6, batch_size=50, lr=0.1, lr_final=None, chains=32, k=3, measure_tau_steps=0
    )
    history = train(
        model, data, RunnerSampler(method), cfg, checkpoint_dir=tmp_path, progress=False
    )
    assert [r.epoch for r in history] == list(range(1, 7))
    # The gain is many times the epoch-to-epoch noise of PCD on this problem (~0.05 nats).
    assert history[-1].log_likelihood > ll0 + 0.5
    assert all(np.isfinite(r.q) and r.q_err >= 0 for r in history)
    assert all(r.q < r.q_naive for r in history)  # the correction removes the noise floor
    back, cfg2, hist2 = load_checkpoint(tmp_path)
    np.testing.assert_array_equal(back.W, model.W)
    assert cfg2 == cfg
    assert [(r.log_likelihood, r.q) for r in hist2] == [(r.log_likelihood, r.q) for r in history]


def test_training_refuses_a_sampler_that_runs_other_weights():
    class StaleSampler:
        """Keeps sampling the couplings it first saw (the stale-weights failure)."""

        name = "stale"

        def __init__(self):
            self.inner = RunnerSampler("chromatic")
            self.first = None

        def run(self, couplings, state, steps, seed):
            self.first = self.first or couplings
            return self.inner.run(self.first, state, steps, seed)

    data = tiny_data()
    model = RBM.init(8, 2, seed=0, data=data)
    cfg = TrainConfig(epochs=1, batch_size=50, measure_tau_steps=0)
    with pytest.raises(RuntimeError, match="not sampling the current weights"):
        train(model, data, StaleSampler(), cfg, progress=False)


def test_train_rejects_bad_data():
    model = RBM.init(8, 2)
    with pytest.raises(ValueError, match="match the model"):
        train(model, np.ones((10, 7), np.int8), progress=False)
    with pytest.raises(ValueError, match="spins"):
        train(model, np.zeros((10, 8), np.int8), progress=False)
