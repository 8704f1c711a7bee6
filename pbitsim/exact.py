"""Exact enumeration of small models (n <= ~20): the ground truth statistical tests compare to.

States are indexed by integers x in 0 .. 2**n - 1 with spin i = +1 iff bit i of x is set
(bit 0 = spin 0). Every exact routine in pbitsim (spectra, transition matrices) uses this order.
"""

from __future__ import annotations

import numpy as np

from pbitsim.couplings import Couplings

MAX_EXACT_N = 24

__all__ = [
    "all_states",
    "state_index",
    "boltzmann",
    "exact_moments",
    "kl_divergence",
    "async_tick_kernel",
]


def _check_n(n: int) -> None:
    if n > MAX_EXACT_N:
        raise ValueError(
            f"exact enumeration of {n} spins (2**{n} states) is too large (limit {MAX_EXACT_N})"
        )


def all_states(n: int) -> np.ndarray:
    """All 2**n states as an int8 array (2**n, n) of +-1, in index order."""
    _check_n(n)
    x = np.arange(1 << n, dtype=np.int64)[:, None]
    bits = (x >> np.arange(n, dtype=np.int64)) & 1
    return (2 * bits - 1).astype(np.int8)


def state_index(spins) -> np.ndarray:
    """Index of each state (..., n) of +-1 in the :func:`all_states` order."""
    s = np.asarray(spins)
    n = s.shape[-1]
    _check_n(n)
    return ((s > 0).astype(np.int64) << np.arange(n, dtype=np.int64)).sum(axis=-1)


def boltzmann(c: Couplings, beta: float | None = None) -> np.ndarray:
    """p(x) = exp(-beta E(x)) / Z over all 2**n states (index order)."""
    b = c.beta if beta is None else float(beta)
    e = c.energy(all_states(c.n))
    logw = -b * e
    logw -= logw.max()
    p = np.exp(logw)
    return p / p.sum()


def exact_moments(c: Couplings, beta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(<s_i>, <s_i s_j>) under the Boltzmann distribution; the second is an n x n matrix."""
    p = boltzmann(c, beta)
    s = all_states(c.n).astype(np.float64)
    m = p @ s
    C = (s * p[:, None]).T @ s
    return m, C


def empirical_distribution(spins, n: int) -> np.ndarray:
    """Histogram of states (..., n) over the 2**n indices, normalised."""
    idx = state_index(np.asarray(spins).reshape(-1, n))
    counts = np.bincount(idx, minlength=1 << n).astype(np.float64)
    return counts / counts.sum()


def kl_divergence(p_emp: np.ndarray, p_exact: np.ndarray) -> float:
    """KL(p_emp || p_exact) in nats (terms with p_emp = 0 contribute 0)."""
    m = p_emp > 0
    return float(np.sum(p_emp[m] * np.log(p_emp[m] / p_exact[m])))


def async_tick_kernel(c: Couplings, p: float) -> np.ndarray:
    """The exact one-tick transition matrix (rows: from-state, index order) of the asynchronous
    model (``method="async"``, mode "poisson", delay 0): every p-bit independently holds with
    probability 1 - p, or fires and is drawn from its heat-bath conditional given the *old* state,

        T[x, y] = prod_i [(1 - p) 1{y_i = x_i} + p P(s_i = y_i | x)].

    Its stationary distribution (:func:`pbitsim.async_design.stationary_distribution`) is what
    the sampler draws from; it differs from Boltzmann for p > 0 (p-bits firing together).
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], not {p!r}")
    S = all_states(c.n).astype(np.float64)
    J, h = c.to_dense()
    up = 0.5 * (1.0 + np.tanh(c.beta * (S @ J + h)))  # P(s_i = +1 | x), (states, n)
    T = np.ones((len(S), len(S)))
    for i in range(c.n):
        cond = np.where(S[None, :, i] > 0, up[:, None, i], 1.0 - up[:, None, i])
        T *= (1.0 - p) * (S[:, None, i] == S[None, :, i]) + p * cond
    return T
