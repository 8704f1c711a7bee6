"""Test support for the diagnostics: an exact Markov-chain simulator (draws from the rows of an
exact transition matrix) and a tiny parallel-tempering run built on it. Independent of the Numba
samplers, so sample-based estimators are checked against exact values with no sampler in between.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.kernels import transition_matrix
from pbitsim.exact import all_states, boltzmann
from pbitsim.samples import Samples


def _dense(P) -> np.ndarray:
    return P.toarray() if sp.issparse(P) else np.asarray(P)


def _cumulative(P) -> np.ndarray:
    cum = np.cumsum(_dense(P), axis=1)
    cum[:, -1] = np.inf  # never fall off the end through rounding
    return cum


def _step(cum: np.ndarray, x: np.ndarray, rng) -> np.ndarray:
    u = rng.random(len(x))
    return (cum[x] < u[:, None]).sum(axis=1)


def simulate(P, p, steps: int, replicas: int, rng, x0=None) -> np.ndarray:
    """State indices (replicas, steps + 1) of independent chains started from p (or x0)."""
    cum = _cumulative(P)
    x = rng.choice(len(p), size=replicas, p=p) if x0 is None else np.asarray(x0)
    out = np.empty((replicas, steps + 1), dtype=np.int64)
    out[:, 0] = x
    for t in range(steps):
        x = _step(cum, x, rng)
        out[:, t + 1] = x
    return out


def exact_samples(c: Couplings, kernel: str, draws: int, replicas: int, seed: int) -> Samples:
    """Samples of the exact kernel started in stationarity (draws X_1..X_T)."""
    rng = np.random.default_rng(seed)
    idx = simulate(transition_matrix(c, kernel), boltzmann(c), draws, replicas, rng)[:, 1:]
    spins = all_states(c.n)[idx]
    return Samples(
        spins,
        c.fingerprint,
        c.topology_fingerprint,
        f"exact-{kernel}",
        seed,
        {"sweeps": draws, "replicas": replicas, "thin": 1},
        {"energies": c.energy(spins)},
    )


def parallel_tempering(
    c: Couplings, betas, draws: int, chains: int, seed: int, kernel: str = "sequential"
) -> Samples:
    """PT with exact kernels: each step every slot takes one kernel step at its beta, then
    neighbours (k, k+1) attempt swaps, even rungs on even steps and odd rungs on odd steps."""
    rng = np.random.default_rng(seed)
    betas = np.asarray(betas, dtype=np.float64)
    K = len(betas)
    E_states = c.energy(all_states(c.n))
    cums = [_cumulative(transition_matrix(c, kernel, beta=b)) for b in betas]
    x = np.stack([rng.choice(1 << c.n, size=chains, p=boltzmann(c, b)) for b in betas], 1)
    walker = np.tile(np.arange(K), (chains, 1))
    states = np.empty((chains, K, draws), dtype=np.int64)
    walkers = np.empty((chains, K, draws), dtype=np.int64)
    attempts = np.zeros(K - 1)
    accepts = np.zeros(K - 1)
    for t in range(draws):
        for k in range(K):
            x[:, k] = _step(cums[k], x[:, k], rng)
        for k in range(t % 2, K - 1, 2):
            d = (betas[k] - betas[k + 1]) * (E_states[x[:, k]] - E_states[x[:, k + 1]])
            ok = rng.random(chains) < np.exp(np.minimum(d, 0.0))
            attempts[k] += chains
            accepts[k] += ok.sum()
            x[ok, k], x[ok, k + 1] = x[ok, k + 1], x[ok, k].copy()
            walker[ok, k], walker[ok, k + 1] = walker[ok, k + 1], walker[ok, k].copy()
        states[:, :, t] = x
        walkers[:, :, t] = walker
    spins = all_states(c.n)[states.reshape(chains * K, draws)]
    info = {
        "betas": betas,
        "swap_acceptance": accepts / attempts,
        "swap_attempts": attempts,
        "walker_index": walkers.reshape(chains * K, draws),
        "energies": E_states[states.reshape(chains * K, draws)],
    }
    return Samples(
        spins,
        c.fingerprint,
        c.topology_fingerprint,
        "exact-pt",
        seed,
        {"sweeps": draws, "chains": chains, "betas": betas.tolist()},
        info,
    )
