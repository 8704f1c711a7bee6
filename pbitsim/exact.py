"""Exact enumeration of small models (n <= ~20): the ground truth statistical tests compare to.

States are indexed by integers x in 0 .. 2**n - 1 with spin i = +1 iff bit i of x is set
(bit 0 = spin 0). Every exact routine in pbitsim (spectra, transition matrices) uses this order.
"""

from __future__ import annotations

import numpy as np

from pbitsim.couplings import Couplings

MAX_EXACT_N = 24

__all__ = ["all_states", "state_index", "boltzmann", "exact_moments", "kl_divergence"]


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
