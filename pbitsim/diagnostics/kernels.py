"""Exact transition matrices of pbitsim's p-bit kernels on small models (n <~ 14).

States are indexed as in :mod:`pbitsim.exact` (bit i of the index = spin i). ``P[x, y]`` is the
probability to go from x to y in one kernel step (row-stochastic; distributions are row vectors,
``p P = p``). A p-bit (heat-bath) update of site i sets s_i = +1 with probability
(1 + tanh(beta I_i)) / 2, I_i = sum_j J_ij s_j + h_i. One step is (diagnostics-definitions):

* ``"random-scan"``: one update at a uniformly chosen site, P = (1/n) sum_i K_i;
* ``"sequential"``: n updates in a fixed order (default 0..n-1), P = K_{o_1} K_{o_2} ... K_{o_n};
* ``"chromatic"``: every colour class updated at once, classes in order 0..C-1,
  P = B_0 B_1 ... B_{C-1}. A class is an independent set (the colouring is proper), so no site's
  field depends on another site of its class, and the simultaneous class update B_c equals the
  product of its sites' single-site matrices (in any order);
* ``"symmetric"``: a forward sweep then a backward one, P = K_{o_1} ... K_{o_n} K_{o_{n-1}} ...
  K_{o_1}: 2n - 1 updates (a heat-bath update is idempotent, K_i K_i = K_i, so the turning site is
  updated once). Each K_i is self-adjoint in L2(p) and the product is a palindrome, so P is
  reversible (its spectrum is real);
* ``"sweep-mixture"`` with a probability ``q``: a forward sweep with probability q, else a backward
  one, P = q F + (1 - q) B with F = K_{o_1} ... K_{o_n} and B = K_{o_n} ... K_{o_1} (n updates).
  B is the L2(p)-adjoint of F, so q = 1/2 is reversible, q = 1 is ``"sequential"``, and the
  kernels at q and 1 - q are each other's time reversal (same tau_int for every observable).

:func:`kernel_schedule` writes every kernel as a weighted sum of products of single-site updates,
sum_t w_t K_{s_t1} K_{s_t2} ..., the form the derivatives (:mod:`pbitsim.diagnostics.derivatives`)
differentiate. :func:`exact_chain` is the :class:`~pbitsim.diagnostics.ExactChain` of any kernel
(``q`` included), :func:`non_reversibility` the distance from detailed balance.

Random-scan P is sparse (n + 1 entries a row); a sweep reaches every state, so sequential and
chromatic P are dense and are built densely by applying the single-site updates to an identity.
Above 2**12 states nothing is built: ``ExactChain(..., backend="krylov")`` applies the step update
by update (:mod:`pbitsim.diagnostics.matfree`). :func:`sampler_step_power` converts kernel steps
to sampler steps (docs/diagnostics.md, "Time units"), beside :func:`updates_per_step`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from scipy.sparse.linalg import norm as sparse_norm

from pbitsim.couplings import Couplings
from pbitsim.exact import all_states

__all__ = [
    "KERNELS",
    "MAX_SPECTRA_N",
    "MAX_KRYLOV_N",
    "site_update_matrix",
    "color_class_update_matrix",
    "transition_matrix",
    "transition_operator",
    "kernel_sites",
    "kernel_schedule",
    "kernel_reversible",
    "updates_per_step",
    "sampler_step_power",
    "exact_chain",
    "non_reversibility",
]

KERNELS = ("random-scan", "sequential", "chromatic", "symmetric", "sweep-mixture")
#: kernels whose sweep order ``order=`` sets (a permutation of 0..n-1)
ORDERED_KERNELS = ("sequential", "symmetric", "sweep-mixture")

#: Largest model the exact routines accept (2**16 states: sparse random-scan only at that size).
MAX_SPECTRA_N = 16
#: Largest model of the matrix-free ExactChain (``backend="krylov"``; memory is checked first).
MAX_KRYLOV_N = 30

#: Above this many states a sweep kernel is not built densely (2**12 states = 128 MiB).
DENSE_LIMIT = 1 << 12


def _check(c: Couplings, kernel: str, max_n: int = MAX_SPECTRA_N) -> None:
    if not isinstance(c, Couplings):
        raise TypeError(f"expected Couplings, not {type(c).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    if c.n < 1:
        raise ValueError("the model has no spins")
    if c.n > max_n:
        raise ValueError(
            f"exact transition matrices need n <= {max_n} (2**n states); model has n = {c.n}"
            + ("" if max_n > MAX_SPECTRA_N else " (ExactChain(..., backend='krylov') goes further)")
        )


def _p_up(c: Couplings, beta: float | None) -> np.ndarray:
    """Probability that site i is set to +1, for every state: (2**n, n)."""
    b = c.beta if beta is None else float(beta)
    fields = c.local_fields(all_states(c.n))
    return 0.5 * (1.0 + np.tanh(b * fields))


def _site_csr(p_up_i: np.ndarray, i: int, N: int) -> sp.csr_matrix:
    x = np.arange(N, dtype=np.int64)
    down, up = x & ~(1 << i), x | (1 << i)
    indices = np.stack([down, up], axis=1).ravel()
    data = np.stack([1.0 - p_up_i, p_up_i], axis=1).ravel()
    indptr = np.arange(0, 2 * N + 1, 2, dtype=np.int64)
    return sp.csr_matrix((data, indices, indptr), shape=(N, N))


def site_update_matrix(c: Couplings, i: int, *, beta: float | None = None) -> sp.csr_matrix:
    """K_i: one p-bit update of site i (2 entries a row), at the model's beta unless given."""
    _check(c, "random-scan")
    if not 0 <= int(i) < c.n:
        raise ValueError(f"site {i} out of range 0..{c.n - 1}")
    return _site_csr(_p_up(c, beta)[:, int(i)], int(i), 1 << c.n)


def _check_independent(c: Couplings, sites: np.ndarray) -> None:
    inside = np.zeros(c.n, bool)
    inside[sites] = True
    for i in sites:
        nb = c.indices[c.indptr[i] : c.indptr[i + 1]]
        if inside[nb].any():
            j = int(nb[inside[nb]][0])
            raise ValueError(
                f"sites {int(i)} and {j} are coupled: a simultaneous update of both is not a "
                f"product of single-site updates (the colour class must be an independent set)"
            )


def color_class_update_matrix(
    c: Couplings, sites: Sequence[int], *, beta: float | None = None
) -> sp.csr_matrix:
    """B: all ``sites`` (an independent set) updated at once; 2**len(sites) entries a row."""
    _check(c, "chromatic")
    sites = np.asarray(sites, dtype=np.int64)
    _check_independent(c, sites)
    pu = _p_up(c, beta)
    N = 1 << c.n
    out = sp.identity(N, format="csr")
    for i in sites:
        out = out @ _site_csr(pu[:, i], int(i), N)
    return out.tocsr()


def kernel_sites(c: Couplings, kernel: str, order: Sequence[int] | None = None) -> list:
    """The update schedule of one step: a list of site groups applied left to right.

    For ``"random-scan"`` the groups are the n alternatives (averaged, not composed).
    """
    _check(c, kernel, max_n=MAX_KRYLOV_N)  # a schedule is O(n): no state-space limit
    if kernel == "chromatic":
        if order is not None:
            raise ValueError("order= applies to the sequential kernel only")
        return [np.asarray(s, dtype=np.int64) for s in c.color_classes()]
    if order is None:
        order = range(c.n)
    order = [int(i) for i in order]
    if kernel in ORDERED_KERNELS and sorted(order) != list(range(c.n)):
        raise ValueError(f"order must be a permutation of 0..{c.n - 1}, not {order}")
    if kernel == "symmetric":  # back again; the turning site once (K_i K_i = K_i)
        order = order + order[-2::-1]
    return [np.array([i]) for i in order]


def _check_q(kernel: str, q) -> float | None:
    if kernel != "sweep-mixture":
        if q is not None:
            raise ValueError(f"q= applies to the sweep-mixture kernel only, not {kernel!r}")
        return None
    if q is None:
        raise ValueError("the sweep-mixture kernel needs q, the probability of a forward sweep")
    if isinstance(q, bool) or not isinstance(q, int | float | np.floating | np.integer):
        raise TypeError(f"q must be a number in [0, 1], not {type(q).__name__}")
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"q must be in [0, 1], not {q}")
    return float(q)


def kernel_schedule(
    c: Couplings, kernel: str, order: Sequence[int] | None = None, q: float | None = None
) -> list[tuple[float, np.ndarray]]:
    """One step as a weighted sum of products of single-site updates: [(w_t, sites_t), ...] with
    P = sum_t w_t K_{sites_t[0]} K_{sites_t[1]} ... (terms of weight 0 left out).

    random-scan: (1/n, [i]) for each site; sequential, chromatic, symmetric: one product (a
    chromatic class is a product of its sites' updates in any order); sweep-mixture: (q, forward)
    and (1 - q, backward).
    """
    _check(c, kernel, max_n=MAX_KRYLOV_N)  # a schedule is O(n): no state-space limit
    q = _check_q(kernel, q)
    if kernel == "random-scan":
        if order is not None:
            raise ValueError("order= applies to the sweep kernels, not random-scan")
        return [(1.0 / c.n, np.array([i])) for i in range(c.n)]
    sites = np.concatenate(kernel_sites(c, kernel, order)).astype(np.int64)
    if kernel != "sweep-mixture":
        return [(1.0, sites)]
    return [(w, s) for w, s in ((q, sites), (1.0 - q, sites[::-1].copy())) if w > 0]


def kernel_reversible(kernel: str, q: float | None = None) -> bool:
    """Whether the kernel satisfies detailed balance for every model (any n > 1)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    return kernel in ("random-scan", "symmetric") or (kernel == "sweep-mixture" and q == 0.5)


def updates_per_step(kernel: str, n: int) -> int:
    """Single-site updates one step of the exact kernel performs: 1 (random-scan), n (sequential,
    chromatic, sweep-mixture) or 2n - 1 (symmetric). The unit for work-normalised comparisons."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    n = int(n)
    return {"random-scan": 1, "symmetric": max(2 * n - 1, 1)}.get(kernel, n)


def sampler_step_power(kernel: str, n: int) -> int:
    """Exact-kernel steps in one sampler step (``pbitsim.sample``'s ``sweeps`` count these): n for
    random-scan (a sampler step is n single-site updates), 1 for every other kernel. The
    conversion docs/diagnostics.md ("Time units") states; a sampler step's chain is P**k."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    return int(n) if kernel == "random-scan" else 1


def _schedule_dense(pu: np.ndarray, schedule, N: int) -> np.ndarray:
    P = np.zeros((N, N))
    for w, sites in schedule:
        M = np.eye(N)
        for i in sites:
            M = _apply_right(M, pu[:, i], int(i))
        P += w * M
    return P


def _apply_right(M: np.ndarray, pu_i: np.ndarray, i: int) -> np.ndarray:
    """M @ K_i for dense M (..., N): column y collects the mass of y and y ^ bit, times q(y)."""
    b = 1 << i
    x = np.arange(M.shape[-1])
    up = (x & b) != 0
    pair = M + M[..., x ^ b]
    return pair * np.where(up, pu_i, 1.0 - pu_i)


def _apply_left(f: np.ndarray, pu_i: np.ndarray, i: int) -> np.ndarray:
    """K_i @ f for f (N, ...): (K_i f)(x) = q_up(x) f(x | bit) + (1 - q_up(x)) f(x & ~bit)."""
    b = 1 << i
    x = np.arange(f.shape[0])
    w = pu_i.reshape((-1,) + (1,) * (f.ndim - 1))
    return w * f[x | b] + (1.0 - w) * f[x & ~b]


def transition_matrix(
    c: Couplings,
    kernel: str = "random-scan",
    *,
    beta: float | None = None,
    order: Sequence[int] | None = None,
    sparse: bool | None = None,
    q: float | None = None,
) -> np.ndarray | sp.csr_matrix:
    """One-step transition matrix P of an exact kernel.

    Parameters
    ----------
    c : Couplings
    kernel : {"random-scan", "sequential", "chromatic", "symmetric", "sweep-mixture"}
    beta : float, optional
        Inverse temperature of the p-bit updates (default: the model's).
    order : sequence of int, optional
        Site order of the sequential, symmetric and mixture sweeps (default 0..n-1).
    sparse : bool, optional
        Return a ``scipy.sparse.csr_matrix`` (True) or a dense ndarray (False). Default: sparse for
        random-scan, dense for the sweep kernels (which are dense anyway).
    q : float, optional
        Probability of a forward sweep (``"sweep-mixture"`` only, where it is required).

    Returns
    -------
    scipy.sparse.csr_matrix or np.ndarray
        Row-stochastic (2**n, 2**n) matrix, rows = from-state.
    """
    if kernel in ("symmetric", "sweep-mixture"):
        schedule = kernel_schedule(c, kernel, order, q)
        N = 1 << c.n
        if N > DENSE_LIMIT * 4:
            raise ValueError(f"a dense {N} x {N} matrix is too large; use transition_operator")
        P = _schedule_dense(_p_up(c, beta), schedule, N)
        return sp.csr_matrix(P) if sparse else P
    _check_q(kernel, q)
    groups = kernel_sites(c, kernel, order)
    pu = _p_up(c, beta)
    N = 1 << c.n
    if sparse is None:
        sparse = kernel == "random-scan"
    if kernel == "random-scan":
        P = sum(_site_csr(pu[:, i], i, N) for i in range(c.n)) / c.n
        return P.tocsr() if sparse else P.toarray()
    if not sparse:
        if N > DENSE_LIMIT * 4:
            raise ValueError(f"a dense {N} x {N} matrix is too large; use transition_operator")
        M = np.eye(N)
        for g in groups:
            for i in g:
                M = _apply_right(M, pu[:, i], int(i))
        return M
    out = sp.identity(N, format="csr")
    for g in groups:
        for i in g:
            out = out @ _site_csr(pu[:, i], int(i), N)
    return out.tocsr()


def transition_operator(
    c: Couplings,
    kernel: str = "random-scan",
    *,
    beta: float | None = None,
    order: Sequence[int] | None = None,
    q: float | None = None,
) -> LinearOperator:
    """P as a ``LinearOperator`` (never formed): ``matvec`` is P f, ``rmatvec`` is P^T mu.

    Costs O(n 2**n) per product, for models too large for :func:`transition_matrix`.
    """
    if kernel in ("symmetric", "sweep-mixture"):
        return _schedule_operator(c, kernel_schedule(c, kernel, order, q), beta)
    _check_q(kernel, q)
    groups = kernel_sites(c, kernel, order)
    pu = _p_up(c, beta)
    N = 1 << c.n
    sites = [int(i) for g in groups for i in g]

    if kernel == "random-scan":

        def matvec(f):
            f = np.asarray(f, dtype=np.float64)
            return sum(_apply_left(f, pu[:, i], i) for i in sites) / c.n

        def rmatvec(mu):
            mu = np.asarray(mu, dtype=np.float64)
            return sum(_apply_right(mu.T, pu[:, i], i).T for i in sites) / c.n

    else:

        def matvec(f):
            f = np.asarray(f, dtype=np.float64)
            for i in reversed(sites):  # P f = K_1 (K_2 (... K_n f))
                f = _apply_left(f, pu[:, i], i)
            return f

        def rmatvec(mu):
            mu = np.asarray(mu, dtype=np.float64).T
            for i in sites:  # mu P = ((mu K_1) K_2) ...
                mu = _apply_right(mu, pu[:, i], i)
            return mu.T

    return LinearOperator((N, N), matvec=matvec, rmatvec=rmatvec, matmat=matvec, dtype=np.float64)


def _schedule_operator(c: Couplings, schedule, beta) -> LinearOperator:
    pu = _p_up(c, beta)
    N = 1 << c.n

    def matvec(f):
        f = np.asarray(f, dtype=np.float64)
        out = np.zeros_like(f)
        for w, sites in schedule:
            g = f
            for i in sites[::-1]:  # P f = K_1 (K_2 (... K_L f))
                g = _apply_left(g, pu[:, i], int(i))
            out += w * g
        return out

    def rmatvec(mu):
        mu = np.asarray(mu, dtype=np.float64).T
        out = np.zeros_like(mu)
        for w, sites in schedule:
            g = mu
            for i in sites:
                g = _apply_right(g, pu[:, i], int(i))
            out += w * g
        return out.T

    return LinearOperator((N, N), matvec=matvec, rmatvec=rmatvec, matmat=matvec, dtype=np.float64)


def exact_chain(
    c: Couplings,
    kernel: str = "random-scan",
    *,
    q: float | None = None,
    beta: float | None = None,
    order: Sequence[int] | None = None,
    check: bool = True,
    backend: str = "auto",
    steps: str = "kernel",
):
    """The :class:`~pbitsim.diagnostics.ExactChain` of any kernel of :data:`KERNELS`.

    The original three are ``ExactChain(c, kernel)`` itself. ``"symmetric"`` and
    ``"sweep-mixture"`` (with ``q``) are built, on the dense backend, from their dense matrix
    (n <= 12) with :meth:`ExactChain.from_matrix`, which recognises a reversible kernel by its
    symmetric A (so eigenvalues are real and the eigen path is used), and carry the couplings, so
    pair observables and :func:`~pbitsim.diagnostics.q.exact_q` default to the model's edges.
    ``backend`` and ``steps`` as for ExactChain: "auto" is matrix-free above 2**12 states, for
    every kernel.

    Attributes set beside ExactChain's: ``q`` (None unless a mixture), ``updates_per_step``.
    """
    from pbitsim.diagnostics.spectra import BACKENDS, KRYLOV_ABOVE, ExactChain
    from pbitsim.exact import all_states

    _check(c, kernel, max_n=MAX_KRYLOV_N)
    q = _check_q(kernel, q)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        backend = "krylov" if (1 << c.n) > KRYLOV_ABOVE else "dense"
    kw = dict(beta=beta, order=order, check=check, backend=backend, steps=steps)
    if backend == "krylov" and c.n > 1:
        chain = ExactChain(c, kernel, q=q, **kw)
    elif kernel not in ("symmetric", "sweep-mixture"):
        chain = ExactChain(c, kernel, **kw)
    else:
        N = 1 << c.n
        if N > DENSE_LIMIT:
            raise NotImplementedError(
                f"the dense {kernel} chain needs n <= {DENSE_LIMIT.bit_length() - 1} (the model "
                f"has n = {c.n}): use backend='krylov'"
            )
        b = c.beta if beta is None else float(beta)
        P = transition_matrix(c, kernel, beta=b, order=order, q=q, sparse=False)
        logp = -b * c.energy(all_states(c.n))
        logp -= logp.max()
        p = np.exp(logp)
        flip = not np.any(c.h)
        chain = ExactChain.from_matrix(P, p / p.sum(), flip_symmetric=flip, check=False)
        chain.couplings, chain.kernel, chain.beta = c, kernel, b
        if kernel_reversible(kernel, q):
            # Reversible by construction. Rounding in the products of K_i, scaled by
            # sqrt(p_x / p_y), leaves A asymmetric by far more than 1e-12 when p spans many
            # decades: use its symmetric part, the nearest symmetric matrix.
            chain._A = 0.5 * (chain._A + chain._A.T)
            chain.reversible = True
        if check:
            chain._self_check()
    chain.q = q
    chain.updates_per_step = updates_per_step(kernel, c.n)
    return chain


def non_reversibility(P, p: np.ndarray) -> float:
    """||A - A^T||_F / ||A||_F with A = D^{1/2} P D^{-1/2}, D = diag(p): 0 for a reversible P.

    ``P`` dense or sparse (row-stochastic), ``p`` its stationary distribution (positive).
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(p <= 0):
        raise ValueError("p must be positive")
    r = np.sqrt(p)
    if sp.issparse(P):
        A = sp.diags(r) @ P @ sp.diags(1.0 / r)
        return float(sparse_norm(A - A.T) / sparse_norm(A))
    A = np.asarray(P, dtype=np.float64) * r[:, None] / r[None, :]
    return float(np.linalg.norm(A - A.T) / np.linalg.norm(A))
