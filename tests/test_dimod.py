"""``pbitsim.dimod.PbitSampler``: dimod's sampler conformance tests, the Boltzmann distribution of
the final states at fixed beta (against exact enumeration), annealing, provenance, argument
checks."""

from __future__ import annotations

import unittest

import dimod
import numpy as np
import pytest

import pbitsim
from pbitsim import models
from pbitsim.dimod import PbitSampler


def test_sampler_api():
    dimod.testing.assert_sampler_api(PbitSampler())


@dimod.testing.load_sampler_bqm_tests(PbitSampler)
class TestConformance(unittest.TestCase):
    """dimod's own tests: empty, one-variable, path and complicated-label BQMs of every BQM class,
    SPIN and BINARY; energies checked against the BQM."""


def _states(ss: dimod.SampleSet, variables) -> np.ndarray:
    """The rows in read order (``ss.samples()`` sorts by energy), columns in ``variables``."""
    return ss.record.sample[:, [ss.variables.index(v) for v in variables]]


def test_fixed_beta_final_states_follow_the_boltzmann_distribution():
    """P(s) ~ exp(-beta E_dimod(s)) within binomial error bars (6 sigma, 16 states)."""
    h = {"a": 0.3, "b": -0.5, "c": 0.0, "d": 0.2}
    J = {("a", "b"): -0.8, ("b", "c"): 0.6, ("c", "d"): -0.4, ("a", "d"): 0.5}
    bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
    beta, reads = 0.9, 4000
    ss = PbitSampler().sample(bqm, num_reads=reads, num_sweeps=20, beta=beta, seed=3)
    variables = list(bqm.variables)
    states = _states(ss, variables)
    assert states.shape == (reads, 4) and set(np.unique(states)) <= {-1, 1}
    grid = np.array([[1 - 2 * ((k >> i) & 1) for i in range(4)] for k in range(16)])
    e = bqm.energies((grid, variables))
    p = np.exp(-beta * (e - e.min()))
    p /= p.sum()
    counts = np.array([np.sum(np.all(states == g, axis=1)) for g in grid])
    sigma = np.sqrt(reads * p * (1 - p))
    assert np.all(np.abs(counts - reads * p) < 6 * sigma), (counts, reads * p)
    np.testing.assert_allclose(ss.record.energy, bqm.energies((states, variables)))


def test_annealing_finds_the_ground_state():
    """A frustrated 10-spin glass (gap 0.62 above a unique ground state): annealing beta 0.1 -> 10
    (geometric, as neal's default, or linear) ends in the ground state in most reads; a hot fixed
    beta almost never does."""
    c = models.spin_glass(10, seed=7, field=0.2)
    bqm = c.to_bqm()
    ground = dimod.ExactSolver().sample(bqm).first.energy
    kw = dict(num_reads=100, num_sweeps=500, seed=1)
    hot = PbitSampler().sample(bqm, beta=0.05, **kw)
    geo = PbitSampler().sample(bqm, beta_range=(0.1, 10), **kw)
    lin = PbitSampler().sample(bqm, beta_range=(0.1, 10), beta_schedule_type="linear", **kw)
    assert np.mean(np.isclose(geo.record.energy, ground)) > 0.6
    assert np.mean(np.isclose(lin.record.energy, ground)) > 0.6
    assert np.mean(np.isclose(hot.record.energy, ground)) < 0.1
    assert geo.info["pbitsim"]["beta_schedule_type"] == "geometric"
    assert geo.info["pbitsim"]["settings"]["runner"]["anneal"]["kind"] == "geometric"
    assert lin.info["pbitsim"]["settings"]["runner"]["anneal"]["kind"] == "linear"


def test_qubo_states_and_energies():
    Q = {(0, 0): -1.0, (1, 1): -1.0, (0, 1): 2.0}  # ground states 01 and 10 at energy -1
    ss = PbitSampler().sample_qubo(Q, num_reads=20, beta_range=(0.1, 10), seed=2)
    assert ss.vartype is dimod.BINARY and set(np.unique(ss.record.sample)) <= {0, 1}
    assert np.all(ss.record.energy == -1.0)


def test_provenance_and_reproducibility():
    bqm = dimod.BinaryQuadraticModel({0: 1.0}, {(0, 1): -1.0}, 0.0, "SPIN")
    a = PbitSampler().sample(bqm, num_reads=5, num_sweeps=10, seed=9)
    b = PbitSampler("sequential").sample(bqm, num_reads=5, num_sweeps=10, seed=9)
    again = PbitSampler().sample(bqm, num_reads=5, num_sweeps=10, seed=9)
    info = a.info["pbitsim"]
    assert info["version"] == pbitsim.__version__ and info["method"] == "chromatic"
    assert (info["seed"], info["num_reads"], info["num_sweeps"], info["beta"]) == (9, 5, 10, 1.0)
    # the model pbitsim sampled: J = -b, h = -a (dimod's energy sign is the opposite)
    c = pbitsim.Couplings.from_edges(2, [(0, 1, 1.0)], h=[-1.0, 0.0])
    assert info["fingerprint"] == c.fingerprint
    assert b.info["pbitsim"]["method"] == "sequential"
    np.testing.assert_array_equal(a.record.sample, again.record.sample)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_reads": 0}, "num_reads must be an integer >= 1"),
        ({"num_sweeps": 1.5}, "num_sweeps must be an integer >= 1"),
        ({"beta": -1}, "beta must be a finite number > 0"),
        ({"beta": float("nan")}, "beta must be a finite number > 0"),
        ({"beta_range": (0.1,)}, "beta_range must be \\(start, stop\\)"),
        ({"beta_range": (0.1, 0)}, "beta_range must be \\(start, stop\\)"),
        ({"beta_range": (0.1, 1), "beta_schedule_type": "cubic"}, "beta_schedule_type must"),
        ({"method": "gibbs"}, "unknown sampling method 'gibbs'"),
    ],
)
def test_bad_arguments(kwargs, message):
    bqm = dimod.BinaryQuadraticModel({0: 1.0}, {}, 0.0, "SPIN")
    with pytest.raises(ValueError, match=message):
        PbitSampler().sample(bqm, **kwargs)


def test_unknown_keyword_warns_as_dimod_samplers_do():
    bqm = dimod.BinaryQuadraticModel({0: 1.0}, {}, 0.0, "SPIN")
    with pytest.warns(dimod.exceptions.SamplerUnknownArgWarning):
        PbitSampler().sample(bqm, num_reads=1, num_sweeps=1, chain_strength=2)
