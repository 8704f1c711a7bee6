"""Test support for the diagnostics: an exact Markov-chain simulator (draws from the rows of an
exact transition matrix), a tiny parallel-tempering run built on it, a fast simulator of the p-bit
kernels site by site for many chains at once, and exact tau_int for a kernel step of n random-scan
updates. Independent of the production samplers, so sample-based estimators are checked against
exact values with no sampler in between.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.kernels import KERNELS, transition_matrix, transition_operator
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


_SITE_KERNEL = None

#: The kernels :func:`simulate_states` runs (the samplers' defaults).
SIMULATED = ("random-scan", "sequential", "chromatic")


def _site_kernel():
    """The compiled site-by-site chain runner (compiled on first use, not at import)."""
    global _SITE_KERNEL
    if _SITE_KERNEL is None:
        import numba

        @numba.njit(cache=False)
        def run(x0, p_up, order, random_sites, updates, draws, seed, out):  # pragma: no cover
            np.random.seed(seed)  # noqa: NPY002 (Numba has the legacy API only)
            n = p_up.shape[1]
            for r in range(x0.shape[0]):
                x = x0[r]
                for t in range(draws):
                    for j in range(updates):
                        i = np.random.randint(0, n) if random_sites else order[j]  # noqa: NPY002
                        if np.random.random() < p_up[x, i]:  # noqa: NPY002
                            x |= 1 << i
                        else:
                            x &= ~(1 << i)
                    out[r, t] = x

        _SITE_KERNEL = run
    return _SITE_KERNEL


def simulate_states(
    c: Couplings, kernel: str, draws: int, chains: int, seed: int, updates: int | None = None
) -> np.ndarray:
    """State indices (chains, draws) of independent chains started in stationarity (X_0 ~ p,
    exactly), recording X_1..X_T, one draw per kernel step *as the samplers count it*:

    * "sequential": sites 0..n-1 in order; "chromatic": the colour classes in order (a class is
      an independent set, so updating its sites one after another is the simultaneous update);
    * "random-scan": ``updates`` single-site updates at uniformly drawn sites, default n (the
      samplers' random-scan step; ``ExactChain(c, "random-scan")`` has updates = 1).

    Each update is the p-bit rule s_i = +1 with probability (1 + tanh(beta I_i)) / 2, from a
    table over all states (n <= 16), for all chains in one compiled loop.
    """
    if kernel not in SIMULATED:
        raise ValueError(f"kernel must be one of {SIMULATED}, not {kernel!r}")
    n = c.n
    if n > 16:
        raise ValueError(f"site tables need n <= 16, not {n}")
    states = all_states(n)
    p_up = 0.5 * (1.0 + np.tanh(c.beta * c.local_fields(states)))
    if kernel == "chromatic":
        order = np.concatenate(c.color_classes()).astype(np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
    random_sites = kernel == "random-scan"
    k = (n if updates is None else int(updates)) if random_sites else n
    rng = np.random.default_rng(seed)
    x0 = rng.choice(1 << n, size=chains, p=boltzmann(c)).astype(np.int64)
    out = np.empty((chains, draws), dtype=np.int32)  # n <= 16
    _site_kernel()(x0, p_up, order, random_sites, k, draws, int(rng.integers(2**31)), out)
    return out


def exact_tau(c: Couplings, kernel: str, F, updates: int | None = None) -> np.ndarray:
    """Exact tau_int of observables F (values on the states, (N,) or (N, m)) for one draw of
    :func:`simulate_states`: the fundamental matrix of the step kernel
    (``shared/reference/diagnostics-definitions.md``), applied by iterative solves so that no
    2^n x 2^n matrix is formed or factorised.

    With f~ = f - E f and Q = P - 1 p^T, sum_{s>=0} C(s) = <f~, (I - Q)^{-1} f~>_p. A random-scan
    draw of k updates is P^k (P the single-update kernel, reversible): in the symmetric picture
    A' = D^1/2 P D^-1/2 (deflated), I - A'^k is positive definite and conjugate gradients solve
    it. Sweeps are not reversible: GMRES on I - Q with P applied site by site
    (:func:`~pbitsim.diagnostics.kernels.transition_operator`). ``tests/test_tau_validation.py``
    checks both against :meth:`ExactChain.tau_int`.
    """
    F = np.asarray(F, dtype=np.float64)
    p = boltzmann(c)
    cols = F.reshape(len(p), -1)
    centred = cols - p @ cols
    var = p @ centred**2
    if kernel == "random-scan":
        k = c.n if updates is None else int(updates)
        sq = np.sqrt(p)
        A = sp.diags(sq) @ transition_matrix(c, "random-scan") @ sp.diags(1.0 / sq)

        def step(v):
            for _ in range(k):
                v = A @ v
                v = v - sq * (sq @ v)  # deflate the stationary direction (and its rounding)
            return v

        op = spla.LinearOperator(A.shape, matvec=lambda v: v - step(v), dtype=np.float64)
        rhs = sq[:, None] * centred
        solve = spla.cg
    elif kernel in KERNELS:
        P = transition_operator(c, kernel)
        op = spla.LinearOperator(
            P.shape, matvec=lambda g: g - P.matvec(g) + p @ g, dtype=np.float64
        )
        rhs = centred
        solve = _gmres
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    total = np.empty(cols.shape[1])
    for j in range(cols.shape[1]):
        g, info = solve(op, rhs[:, j], rtol=1e-12, atol=0.0, maxiter=100_000)
        if info != 0:
            raise RuntimeError(f"the iterative solve did not converge (info {info})")
        total[j] = rhs[:, j] @ g if kernel == "random-scan" else (p * centred[:, j]) @ g
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (2.0 * total - var) / var
    return tau.reshape(F.shape[1:])


def _gmres(op, b, **kw):
    return spla.gmres(op, b, restart=200, **kw)
