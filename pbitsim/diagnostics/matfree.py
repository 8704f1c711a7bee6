"""Matrix-free exact spectra: a kernel step applied site by site, and the Krylov solvers on it.

:class:`~pbitsim.diagnostics.ExactChain` with ``backend="krylov"`` (the default above
:data:`~pbitsim.diagnostics.spectra.KRYLOV_ABOVE` states) never forms a 2**n x 2**n matrix. It
works, like the dense path, with A = D^{1/2} P D^{-1/2} (D = diag p), where one p-bit update of
site i is an orthogonal projection: on each pair of states (x, x ^ bit i) with conditional
probabilities a_lo, a_hi of s_i = -1, +1 (a_lo + a_hi = 1),

    A_i restricted to the pair = psi psi^T,   psi = (sqrt(a_lo), sqrt(a_hi)),

so A_i v needs two coefficients per pair and no Boltzmann weight itself: nothing overflows or
underflows however wide p is (a_hi = expit(log p(x_hi) - log p(x_lo)) from log-weights). A step
is applied as its updates in turn (Numba, in place, O(2**n) per update, single-threaded):

* random-scan: A = (1/n) sum_i A_i (the single-site operator, n + 1 non-zeros a row);
* sequential, chromatic (a class is a product of its sites' commuting updates), symmetric and
  sweep-mixture: A = sum_t w_t A_{s_t1} A_{s_t2} ... (``kernels.kernel_schedule``).

With h = 0 the even and odd functions under the global flip F are invariant; a sector vector is
a function on the half of the states with s_{n-1} = -1 (f(F x) = +-f(x) gives the rest), so the
update of site n-1 pairs x with h - 1 - x inside the half (h = 2**(n-1)) and every vector is half
as long.

Solvers (scipy.sparse.linalg), on the deflated A' = A - v0 v0^T (v0 = sqrt(p) in the sector,
absent in the odd one):

* gap: ARPACK ``eigsh`` (reversible: A' symmetric) or ``eigs`` (sweeps) for the largest |lambda|,
  relative tolerance ``eig_tol`` on the Ritz values (default 1e-12), so |gap error| <~ 1e-12;
* exact tau_int: sum_{t>=0} C(t) = <u, (I - A')^{-1} u> (u = sqrt(p)(f - E f)), the fundamental
  matrix applied by conjugate gradients (reversible: I - A' is symmetric positive definite) or
  BiCGSTAB (sweeps; GMRES(40) takes over on a breakdown), stopped at ||residual|| <= ``rtol``
  ||u|| (default 1e-11), restarted from the solution (up to 3 times) while the true residual
  misses that and still halves. Rounding in A g floors the relative residual at ~eps / gap
  (||g|| grows like ||u|| / gap), so what must meet ``rtol`` is the normwise backward error
  ||r|| / (||u|| + 2 ||g||), else :class:`KrylovError`. The relative error of the sum is at
  most residual / gap.

Slow modes cost iterations: Lanczos / Arnoldi and CG converge at a rate set by sqrt(gap). Measured
(benchmarks/bench_exact_spectra.py, n = 16-20 glasses): gaps 1e-2..1e-4 take 25-450 operator
applications for the gap and 15-350 CG / BiCGSTAB iterations per observable; a cold glass with
an odd gap of 5e-10 (tau ~ 3e9) 200 for the gap and ~770 CG iterations. Restarted GMRES(40)
stalled on such modes (20,000 applications without converging), hence BiCGSTAB. Every call
records its counts in :attr:`MatrixFreeKernel.log`.
"""

from __future__ import annotations

import os
import time

import numba as nb
import numpy as np
import scipy.sparse.linalg as spla
from scipy.special import expit

from pbitsim.blas import blas_threads
from pbitsim.couplings import Couplings

__all__ = [
    "EIG_TOL",
    "SOLVE_RTOL",
    "KrylovError",
    "MatrixFreeKernel",
    "log_weights",
    "estimate_memory",
]

#: ARPACK's relative tolerance on the Ritz values of the slowest modes.
EIG_TOL = 1e-12
#: Relative residual at which the fundamental-matrix solves stop.
SOLVE_RTOL = 1e-11
#: Arnoldi / Lanczos basis size (ARPACK's ncv) and the GMRES restart length.
NCV = 24
GMRES_RESTART = 40
#: Restarts from the current solution when the true residual misses the tolerance.
REFINEMENTS = 3
#: Operator applications allowed per solve before a KrylovError.
MAX_MATVECS = 200_000


class KrylovError(RuntimeError):
    """A Krylov solver did not reach its tolerance (the result would not be exact)."""


# -- Numba kernels: one projection A_i = psi psi^T per pair, in place or accumulated ------------
@nb.njit(cache=True, nogil=True)
def _project_site(v, rl, rh, i):  # pragma: no cover (compiled)
    b = 1 << i
    k = 0
    for a in range(v.shape[0] >> (i + 1)):
        base = a << (i + 1)
        for j in range(b):
            lo = base + j
            s = rl[k] * v[lo] + rh[k] * v[lo + b]
            v[lo] = rl[k] * s
            v[lo + b] = rh[k] * s
            k += 1


@nb.njit(cache=True, nogil=True)
def _accumulate_site(v, out, rl, rh, i, w):  # pragma: no cover (compiled)
    b = 1 << i
    k = 0
    for a in range(v.shape[0] >> (i + 1)):
        base = a << (i + 1)
        for j in range(b):
            lo = base + j
            s = w * (rl[k] * v[lo] + rh[k] * v[lo + b])
            out[lo] += rl[k] * s
            out[lo + b] += rh[k] * s
            k += 1


@nb.njit(cache=True, nogil=True)
def _project_flip(v, rl, rh, sigma):  # pragma: no cover (compiled)
    # site n-1 in a flip sector: the partner of x (s_{n-1} = -1) is F(x) ^ bit, stored at h-1-x
    h = v.shape[0]
    for x in range(h // 2):
        y = h - 1 - x
        s = rl[x] * v[x] + sigma * rh[x] * v[y]
        v[x] = rl[x] * s
        v[y] = sigma * rh[x] * s


@nb.njit(cache=True, nogil=True)
def _accumulate_flip(v, out, rl, rh, sigma, w):  # pragma: no cover (compiled)
    h = v.shape[0]
    for x in range(h // 2):
        y = h - 1 - x
        s = w * (rl[x] * v[x] + sigma * rh[x] * v[y])
        out[x] += rl[x] * s
        out[y] += sigma * rh[x] * s


@nb.njit(cache=True, nogil=True)
def _random_scan_rows(v, out, diag, off, bits, sigma):  # pragma: no cover (compiled)
    # random scan as its n + 1 non-zeros a row, in one pass: (A v)(x) = diag(x) v(x) +
    # sum_i off_i(pair) v(partner_i(x)); bits = sites paired inside the vector; in a flip sector
    # (sigma = +-1) site n-1 pairs x with h-1-x, its off-diagonal row holding sigma's sign
    h = v.shape[0]
    for x in range(h):
        acc = diag[x] * v[x]
        for i in range(bits):
            b = 1 << i
            k = ((x >> (i + 1)) << i) | (x & (b - 1))
            acc += off[i, k] * v[x ^ b]
        if sigma != 0.0:
            y = h - 1 - x
            acc += sigma * off[bits, min(x, y)] * v[y]
        out[x] = acc


# -- Boltzmann weights without the 2**n x n state array ------------------------------------------
def log_weights(c: Couplings, beta: float | None = None) -> np.ndarray:
    """log p(x) over all 2**n states (index order of :mod:`pbitsim.exact`), normalised.

    Built spin by spin: adding spin k multiplies the weights of the 2**k states of spins 0..k-1 by
    exp(+-beta (h_k + sum_{j<k} J_kj s_j)), O(degree * 2**n) time and one vector of memory; float64
    logs, so no weight overflows or underflows.
    """
    b = c.beta if beta is None else float(beta)
    L = np.zeros(1)
    for k in range(c.n):
        lo, hi = c.indptr[k], c.indptr[k + 1]
        cols, vals = c.indices[lo:hi], c.data[lo:hi]
        x = np.arange(1 << k, dtype=np.int64)
        field = np.full(1 << k, float(c.h[k]))
        for j, w in zip(cols[cols < k], vals[cols < k]):
            field += w * (((x >> int(j)) & 1) * 2.0 - 1.0)
        field *= b
        L = np.concatenate([L - field, L + field])
    L -= L.max()
    L -= np.log(np.exp(L).sum())
    return L


def _available_memory() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover (non-POSIX)
        return 1 << 62


def estimate_memory(n: int, flip_symmetric: bool, columns: int = 1) -> int:
    """Bytes the matrix-free path needs for an n-spin model, roughly (float64 vectors of 2**n):

    log p, p and sqrt p (3 vectors); the update coefficients of both sectors (n vectors); the
    Krylov basis (ARPACK's ncv = 24 or GMRES's restart = 40 vectors of a sector) and ~16 work
    vectors; the observables' values and centred copies (3 vectors per column). Measured at
    n = 20 with h != 0 and two observables (benchmarks/bench_exact_spectra.py): 466 MiB peak for
    the sweeps (BiCGSTAB; 642 MiB when GMRES(40) ran), 361 MiB for random scan (CG); the estimate,
    which leaves room for the GMRES fallback, is 680 MiB.
    """
    N = 1 << int(n)
    dim = N // 2 if flip_symmetric else N
    return 8 * (N * (3 + int(n) + 3 * max(int(columns), 1)) + dim * (GMRES_RESTART + 16))


class MatrixFreeKernel:
    """One step of an exact kernel as an implicit operator on each symmetry sector.

    Parameters
    ----------
    couplings : Couplings
    schedule : list of (float, np.ndarray)
        The step as sum_t w_t K_{s_t1} K_{s_t2} ... (:func:`~pbitsim.diagnostics.kernels.
        kernel_schedule`). Terms that all have one site each are summed (random scan).
    logp : np.ndarray
        log p over the 2**n states (:func:`log_weights`).
    flip_symmetric : bool
        Work in the even and odd sectors (h = 0).
    reversible : bool
        A is symmetric: Lanczos and CG instead of Arnoldi and GMRES.
    power : int
        The operator is A**power (a sampler step of random scan: n kernel steps).
    eig_tol, rtol : float
        Tolerances of the eigensolver (relative, on Ritz values) and of the solves (relative
        residual).

    Attributes
    ----------
    log : list of dict
        One entry per solver call: what, sector, operator applications ("matvecs"), seconds,
        and the solver's own iteration count where it reports one.
    """

    def __init__(
        self,
        couplings: Couplings,
        schedule,
        logp: np.ndarray,
        *,
        flip_symmetric: bool,
        reversible: bool,
        power: int = 1,
        eig_tol: float = EIG_TOL,
        rtol: float = SOLVE_RTOL,
    ) -> None:
        n = couplings.n
        if n < 2:
            raise ValueError("the matrix-free path needs n >= 2 (use backend='dense')")
        self.n = n
        self.N = 1 << n
        self.logp = logp
        self.flip_symmetric = bool(flip_symmetric)
        self.reversible = bool(reversible)
        self.power = int(power)
        if self.power < 1:
            raise ValueError(f"power must be >= 1, not {power}")
        self.eig_tol = float(eig_tol)
        self.rtol = float(rtol)
        self._single = all(len(s) == 1 for _, s in schedule)
        self._schedule = [(float(w), [int(i) for i in s]) for w, s in schedule]
        # random scan exactly: every site once with weight 1/n
        self._random_scan = (
            self._single
            and sorted(s[0] for _, s in self._schedule) == list(range(n))
            and all(w == 1.0 / n for w, _ in self._schedule)
        )
        self._single_only = self._random_scan
        self._coef: dict = {}
        self.log: list[dict] = []

    # -- the operator ---------------------------------------------------------------------------
    def dim(self, sector: str) -> int:
        return self.N if sector == "all" else self.N // 2

    def _coefficients(self, sector: str):
        """(rl, rh) per site: sqrt of the conditional probabilities of s_i = -1, +1 per pair."""
        key = "all" if sector == "all" else "flip"  # even and odd share them
        if key not in self._coef:
            L = self.logp if sector == "all" else self.logp[: self.N // 2]
            pairs = len(L) // 2
            rl = np.empty((self.n, pairs))
            rh = np.empty((self.n, pairs))
            for i in range(self.n):
                if key == "flip" and i == self.n - 1:
                    # partner of x is x + h, whose weight is that of its mirror h - 1 - x
                    d = L[::-1][:pairs] - L[:pairs]
                else:
                    Lr = L.reshape(-1, 2, 1 << i)
                    d = (Lr[:, 1, :] - Lr[:, 0, :]).ravel()
                rh[i] = np.sqrt(expit(d))
                rl[i] = np.sqrt(expit(-d))
            self._coef[key] = (rl, rh)
        return self._coef[key]

    def _rows(self, sector: str):
        """Random scan's rows: the diagonal (1/n) sum_i a_i(x) and the off-diagonals
        sqrt(a_lo a_hi) / n of each site's pairs (one coefficient per pair, (n, pairs))."""
        key = ("rows", "all" if sector == "all" else "flip")
        if key not in self._coef:
            rl, rh = self._coefficients(sector)
            w = 1.0 / self.n
            off = (rl * rh) * w
            dim = self.dim(sector)
            diag = np.zeros(dim)
            for i in range(self.n):
                if sector != "all" and i == self.n - 1:
                    diag[: dim // 2] += rl[i] ** 2
                    diag[dim // 2 :] += (rh[i] ** 2)[::-1]
                else:
                    d = diag.reshape(-1, 2, 1 << i)
                    d[:, 0, :] += rl[i].reshape(-1, 1 << i) ** 2
                    d[:, 1, :] += rh[i].reshape(-1, 1 << i) ** 2
            diag *= w
            self._coef[key] = (diag, off)
            if self._single_only:  # the projections' coefficients are not needed again
                self._coef.pop("all" if sector == "all" else "flip")
        return self._coef[key]

    def _site_in_place(self, v, sector, i, rl, rh):
        if sector != "all" and i == self.n - 1:
            _project_flip(v, rl[i], rh[i], 1.0 if sector == "even" else -1.0)
        else:
            _project_site(v, rl[i], rh[i], i)

    def _one_step(self, v: np.ndarray, sector: str, transpose: bool) -> np.ndarray:
        if self._random_scan:  # (1/n) sum_i A_i: symmetric, its rows in one pass
            diag, off = self._rows(sector)
            out = np.empty_like(v)
            sig = {"all": 0.0, "even": 1.0, "odd": -1.0}[sector]
            _random_scan_rows(v, out, diag, off, self.n - (sector != "all"), sig)
            return out
        rl, rh = self._coefficients(sector)
        if self._single:  # a sum of single-site updates with other weights
            out = np.zeros_like(v)
            for w, (i,) in self._schedule:
                if sector != "all" and i == self.n - 1:
                    sig = 1.0 if sector == "even" else -1.0
                    _accumulate_flip(v, out, rl[i], rh[i], sig, w)
                else:
                    _accumulate_site(v, out, rl[i], rh[i], i, w)
            return out
        out = None
        for w, sites in self._schedule:
            g = v.copy()
            # A v = A_1 (A_2 (... A_L v)): the last update acts first; A^T reverses the order
            for i in sites if transpose else sites[::-1]:
                self._site_in_place(g, sector, i, rl, rh)
            if out is None:
                out = g if w == 1.0 else w * g
            else:
                out += w * g
        return out

    def apply(self, v: np.ndarray, sector: str, transpose: bool = False) -> np.ndarray:
        """A**power v (or its transpose) for a sector vector v, (dim,) or (dim, m); not deflated."""
        v = np.asarray(v, dtype=np.float64)
        if v.ndim == 2:
            return np.column_stack(
                [self.apply(v[:, j], sector, transpose) for j in range(v.shape[1])]
            ).reshape(v.shape)
        v = np.ascontiguousarray(v)
        for _ in range(self.power):
            v = self._one_step(v, sector, transpose)
        return v

    def _deflated(self, sector, v0, counter):
        dim = self.dim(sector)

        def matvec(v):
            counter[0] += 1
            out = self.apply(np.ravel(v), sector)
            if v0 is not None:
                out -= v0 * (v0 @ np.ravel(v))
            return out

        return spla.LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)

    # -- Krylov solvers -------------------------------------------------------------------------
    def top_eigenvalues(self, sector: str, v0: np.ndarray | None, k: int = 1) -> np.ndarray:
        """The k eigenvalues of largest modulus of the deflated sector operator A'**power."""
        dim = self.dim(sector)
        counter = [0]
        op = self._deflated(sector, v0, counter)
        t0 = time.perf_counter()
        k_req = max(int(k), 1 if self.reversible else 2)  # a complex pair whole
        ncv = min(dim - 1, max(NCV, 2 * k_req + 1))
        if k_req >= ncv:
            raise ValueError(f"k = {k} eigenvalues of a {dim}-state sector: use backend='dense'")
        rng = np.random.default_rng(12345)  # a fixed start vector: reproducible counts
        start = rng.standard_normal(dim)
        if v0 is not None:
            start -= v0 * (v0 @ start)
        kw = dict(k=k_req, which="LM", ncv=ncv, tol=self.eig_tol, v0=start, maxiter=MAX_MATVECS)
        try:
            with blas_threads(1):
                if self.reversible:
                    lam = spla.eigsh(op, return_eigenvectors=False, **kw)
                else:
                    lam = spla.eigs(op, return_eigenvectors=False, **kw)
        except spla.ArpackNoConvergence as e:  # pragma: no cover (needs a pathological model)
            raise KrylovError(
                f"ARPACK did not converge for the {sector} sector after {counter[0]} operator "
                f"applications (tol {self.eig_tol:g}): {e}"
            ) from e
        self.log.append(
            {
                "what": "eigenvalues",
                "sector": sector,
                "solver": "eigsh" if self.reversible else "eigs",
                "matvecs": counter[0],
                "seconds": time.perf_counter() - t0,
            }
        )
        return lam[np.argsort(-np.abs(lam), kind="stable")][: int(k)]

    def solve(self, sector: str, v0: np.ndarray | None, u: np.ndarray) -> np.ndarray:
        """(I - A'**power)^{-1} u for centred sector vector(s) u, (dim,) or (dim, m)."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 2:
            return np.column_stack(
                [self.solve(sector, v0, u[:, j]) for j in range(u.shape[1])]
            ).reshape(u.shape)
        dim = self.dim(sector)
        bnorm = float(np.linalg.norm(u))
        if bnorm == 0.0:
            return np.zeros(dim)
        counter = [0]
        A = self._deflated(sector, v0, counter)
        M = spla.LinearOperator((dim, dim), matvec=lambda v: v - A.matvec(v), dtype=np.float64)
        iters = [0]

        def callback(_):
            iters[0] += 1

        t0 = time.perf_counter()
        g = None
        with blas_threads(1):
            # The solver's recursive residual drifts from the true one when I - A' is
            # ill-conditioned (slow modes): restart from the solution (iterative refinement) until
            # the true residual meets the tolerance.
            # Stop too when a restart no longer halves it: the floor that rounding in A g sets
            # (~ eps ||g|| with ||g|| up to ||u|| / gap), judged by the backward error below.
            res = np.inf
            for attempt in range(REFINEMENTS + 1):
                restarts = attempt
                g, _, solver = self._krylov_solve(M, u, callback, g)
                last, res = res, float(np.linalg.norm(u - M.matvec(g))) / bnorm
                if res <= self.rtol or res > 0.5 * last:
                    break
        # normwise backward error of g for M = I - A' (||M|| <= 2): the relative perturbation of
        # M and u that g solves exactly
        backward = res * bnorm / (bnorm + 2.0 * float(np.linalg.norm(g)))
        self.log.append(
            {
                "what": "solve",
                "sector": sector,
                "solver": solver,
                "iterations": iters[0],
                "restarts": restarts,
                "matvecs": counter[0],
                "residual": res,
                "backward_error": backward,
                "seconds": time.perf_counter() - t0,
            }
        )
        if backward > self.rtol:
            raise KrylovError(
                f"{solver} did not reach backward error {self.rtol:g} in the {sector} sector "
                f"({counter[0]} operator applications, relative residual {res:.3g}, backward "
                f"error {backward:.3g})"
            )
        return g

    def _krylov_solve(self, M, u, callback, x0):
        if self.reversible:  # I - A' symmetric positive definite (eigenvalues 1 - lambda > 0)
            g, info = spla.cg(
                M, u, x0=x0, rtol=self.rtol, atol=0.0, maxiter=MAX_MATVECS, callback=callback
            )
            return g, info, "cg"
        # BiCGSTAB first: on slow modes restarted GMRES stagnates (n = 16, odd gap 8e-6: 3450
        # operator applications for GMRES(40), 75 for BiCGSTAB; on fast ones GMRES needs ~0.7x
        # BiCGSTAB's). On a breakdown or no convergence, GMRES(40) goes on from where it got.
        g, info = spla.bicgstab(
            M, u, x0=x0, rtol=self.rtol, atol=0.0, maxiter=MAX_MATVECS // 4, callback=callback
        )
        if info == 0 and np.all(np.isfinite(g)):
            return g, info, "bicgstab"
        g, info = spla.gmres(
            M,
            u,
            x0=g if np.all(np.isfinite(g)) else x0,
            rtol=self.rtol,
            atol=0.0,
            restart=min(GMRES_RESTART, len(u)),
            maxiter=MAX_MATVECS // GMRES_RESTART,
            callback=callback,
            callback_type="pr_norm",
        )
        return g, info, "bicgstab+gmres"

    def stationarity_residual(self, sector: str, v0: np.ndarray) -> float:
        """max |A^T v0 - v0| (zero when p is stationary): the matrix-free check of p P = p."""
        return float(np.abs(self.apply(v0, sector, transpose=True) - v0).max())


def check_memory(n: int, flip_symmetric: bool, max_memory: int | None = None) -> None:
    """Raise MemoryError, with the estimate, when the matrix-free path would not fit."""
    need = estimate_memory(n, flip_symmetric)
    avail = _available_memory() if max_memory is None else int(max_memory)
    if need > avail:
        raise MemoryError(
            f"exact spectra of n = {n} spins need about {need / 2**30:.2f} GiB "
            f"(2**{n} states, float64 vectors: see matfree.estimate_memory); "
            f"{avail / 2**30:.2f} GiB available"
        )
