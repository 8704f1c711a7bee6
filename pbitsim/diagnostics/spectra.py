"""Exact spectral analysis of a p-bit kernel on a small model: gaps, tau_int, the mode expansion.

Everything is computed on A = D^{1/2} P D^{-1/2} (D = diag p), which has the same spectrum as P and
is symmetric for a reversible kernel; a function f corresponds to the vector u = sqrt(p) (f - E f),
and <f, g>_p = u . v. The stationary eigenvalue is deflated (A' = A - sqrt(p) sqrt(p)^T moves it to
0), so the exact stationary vector is removed, not an eigenvector computed from a cluster that may
also hold an eigenvalue within 1e-16 of 1.

With h = 0 the kernel commutes with the global spin flip F; the even (f o F = f) and odd
(f o F = -f) functions are invariant subspaces and :class:`ExactChain` works in each separately
(half the size, and an even observable never touches an odd mode, so a slow odd mode cannot
poison it numerically). A general observable splits as f = f_even + f_odd with no cross terms:
Var and tau_int Var add over the sectors.

Times are in the kernel's own steps (see :mod:`pbitsim.diagnostics.kernels`), or in sampler
steps with ``steps="sampler"``.

Two backends compute the same quantities: "dense" forms P (dense; sparse for random scan) and
factorises; "krylov" (:mod:`pbitsim.diagnostics.matfree`, the default above 2**12 states) applies
A' one update at a time and gets gaps from ARPACK and tau_int from CG / BiCGSTAB solves with
the fundamental matrix, so memory stays O(2**n) vectors (n = 20: 0.4-0.7 GB).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pbitsim.couplings import Couplings
from pbitsim.diagnostics import _modes
from pbitsim.diagnostics._modes import DegenerateEigenvalueWarning
from pbitsim.diagnostics.kernels import (
    DENSE_LIMIT,
    MAX_KRYLOV_N,
    MAX_SPECTRA_N,
    _check,
    _check_q,
    kernel_reversible,
    kernel_schedule,
    sampler_step_power,
    transition_matrix,
    transition_operator,
)
from pbitsim.exact import all_states

__all__ = [
    "ExactChain",
    "ModeCluster",
    "ModeExpansion",
    "DegenerateEigenvalueWarning",
    "stationarity_residual",
]

#: Above this sector size the gap comes from an iterative (ARPACK) solver, not a full eigensolve.
ITERATIVE_GAP_DIM = 1024
#: ``backend="auto"`` goes matrix-free (:mod:`pbitsim.diagnostics.matfree`) above this many
#: states (n > 12): sparse LU of random scan took 104 s and 1.25 GB at n = 14, the Krylov path
#: about a second.
KRYLOV_ABOVE = 1 << 12
BACKENDS = ("auto", "dense", "krylov")


def stationarity_residual(P, p: np.ndarray) -> float:
    """max_y |(p P)(y) - p(y)|: zero (to rounding) when p is stationary for P."""
    p = np.asarray(p, dtype=np.float64)
    pP = P.T @ p if sp.issparse(P) else p @ P
    return float(np.abs(np.asarray(pP).ravel() - p).max())


@dataclass(frozen=True)
class ModeCluster:
    """One eigenvalue cluster of the mode expansion (a single mode unless degenerate).

    Attributes
    ----------
    sector : str
        "all", "even" or "odd".
    eigenvalues : np.ndarray
        The cluster's eigenvalues (equal moduli within the tolerance).
    weight : np.ndarray
        Fraction of Var(f) in the cluster, <f, Pi f>_p / Var(f) (c_k^2 / sum c^2 when reversible).
    tau_term : np.ndarray
        Its contribution to tau_int, <f, (I + P)(I - P)^{-1} Pi f>_p / Var(f).
    degenerate : bool
        The cluster holds coinciding eigenvalues: its eigenvectors are not unique and only the
        cluster (its spectral projector Pi) is meaningful.
    """

    sector: str
    eigenvalues: np.ndarray
    weight: np.ndarray
    tau_term: np.ndarray
    degenerate: bool

    @property
    def modulus(self) -> float:
        return float(np.abs(self.eigenvalues).max())


@dataclass(frozen=True)
class ModeExpansion:
    """Mode expansion of observables over the slowest modes (:meth:`ExactChain.mode_expansion`).

    Array fields have one entry per observable (0-d for a single observable).

    Attributes
    ----------
    clusters : list of ModeCluster
        The K slowest modes of each sector (clusters never split), slowest first per sector.
    variance : np.ndarray
        Var_p(f).
    tau_exact : np.ndarray
        Exact tau_int from the fundamental matrix.
    tau_multi_mode : np.ndarray
        Observable-projected multi-mode predictor: the kept clusters with their weights and
        (1 + lambda)/(1 - lambda) factors, the rest of the variance counted as uncorrelated
        (tau 1). Equals tau_exact when every mode is kept.
    tau_single_gap : float
        (1 + lambda_*)/(1 - lambda_*), lambda_* = 1 - (global spectral gap): the same for every
        observable.
    relevant_gap : np.ndarray
        1 - |lambda| of the slowest kept cluster with weight > ``weight_tol`` (the gap the
        observable actually sees; NaN if no kept cluster has weight).
    modes_used : dict
        Number of eigenvalues kept per sector (>= K when a cluster had to be kept whole).
    """

    clusters: list
    variance: np.ndarray
    tau_exact: np.ndarray
    tau_multi_mode: np.ndarray
    tau_single_gap: float
    relevant_gap: np.ndarray
    modes_used: dict = field(default_factory=dict)


class ExactChain:
    """A kernel's exact transition matrix on a small model, and what follows from it.

    Parameters
    ----------
    couplings : Couplings
        The model. Dense backend: n <= 16 (sweep kernels n <= 12 for anything but the gap);
        matrix-free: as far as memory goes (:func:`pbitsim.diagnostics.matfree.estimate_memory`;
        n = 20 takes 0.4-0.7 GB).
    kernel : {"random-scan", "sequential", "chromatic", "symmetric", "sweep-mixture"}
        See :mod:`pbitsim.diagnostics.kernels`; the last two need ``backend="krylov"`` here
        (their dense chains come from :func:`~pbitsim.diagnostics.kernels.exact_chain`).
    beta : float, optional
        Inverse temperature (default: the model's).
    order : sequence of int, optional
        Site order of the sequential, symmetric and mixture sweeps.
    check : bool
        Verify p P = p (and detailed balance / flip symmetry where claimed); raise ValueError
        if not.
    backend : {"auto", "dense", "krylov"}
        "dense": the transition matrix (dense, or sparse for random scan) and direct
        factorisations. "krylov": never a 2**n x 2**n matrix; the step is applied as its site
        or colour-class updates in turn and gaps and tau_int come from ARPACK, CG and BiCGSTAB
        (:mod:`pbitsim.diagnostics.matfree`; full spectra and non-reversible mode expansions
        are then not available). "auto": krylov above :data:`KRYLOV_ABOVE` states (n > 12).
    steps : {"kernel", "sampler"} or int
        The unit of one step of the chain: the exact kernel's step (default), the sampler's
        (random scan: n single-site updates, P**n; :func:`~pbitsim.diagnostics.kernels.
        sampler_step_power`), or k kernel steps (P**k: a draw thinned by k sampler steps is
        ``k * sampler_step_power(kernel, n)``). Gaps, tau_int and M are counted in that unit.
    q : float, optional
        Probability of a forward sweep (``"sweep-mixture"`` only).
    eig_tol, rtol : float, optional
        Matrix-free tolerances: ARPACK's relative tolerance on the slowest eigenvalues (default
        1e-12) and the relative residual of the fundamental-matrix solves (default 1e-11).
    max_memory : int, optional
        Bytes the matrix-free path may use (default: the machine's available memory); a larger
        estimate raises MemoryError before anything is allocated.

    Attributes
    ----------
    P : np.ndarray or scipy.sparse.csr_matrix or None
        The transition matrix (None when only an operator is kept, large sweep kernels).
    p : np.ndarray
        Stationary (Boltzmann) distribution over the 2**n states.
    reversible : bool
    flip_symmetric : bool
        h = 0: work in the even and odd sectors.
    backend : str
        "dense" or "krylov" (what "auto" chose).
    power : int
        Exact-kernel steps in one step of this chain (1 unless ``steps`` says otherwise).
    krylov_log : list of dict
        Matrix-free path: one entry per eigensolve or linear solve (sector, solver, operator
        applications, iterations, restarts, residual, backward error, seconds); empty for the
        dense backend.
    """

    def __init__(
        self,
        couplings: Couplings,
        kernel: str = "random-scan",
        *,
        beta: float | None = None,
        order: Sequence[int] | None = None,
        check: bool = True,
        backend: str = "auto",
        steps: str | int = "kernel",
        q: float | None = None,
        eig_tol: float | None = None,
        rtol: float | None = None,
        max_memory: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if isinstance(steps, bool) or not (
            steps in ("kernel", "sampler") or (isinstance(steps, int | np.integer) and steps >= 1)
        ):
            raise ValueError(f"steps must be 'kernel', 'sampler' or an int >= 1, not {steps!r}")
        if backend == "auto":
            _check(couplings, kernel, max_n=MAX_KRYLOV_N)
            backend = "krylov" if (1 << couplings.n) > KRYLOV_ABOVE else "dense"
        if backend == "krylov" and couplings.n < 2:
            backend = "dense"  # nothing to iterate on
        _check(couplings, kernel, max_n=MAX_KRYLOV_N if backend == "krylov" else MAX_SPECTRA_N)
        q = _check_q(kernel, q)
        self.couplings = couplings
        self.kernel = kernel
        self.backend = backend
        self.steps = steps
        self.beta = couplings.beta if beta is None else float(beta)
        n = couplings.n
        N = 1 << n
        # exact-kernel steps per step of this chain (sampler steps: docs/diagnostics.md)
        if steps == "sampler":
            self.power = sampler_step_power(kernel, n)
        else:
            self.power = 1 if steps == "kernel" else int(steps)
        reversible = kernel_reversible(kernel, q) or n == 1
        flip = not np.any(couplings.h)
        self._operator = None
        self._krylov = None
        if backend == "krylov":
            from pbitsim.diagnostics import matfree

            matfree.check_memory(n, flip, max_memory)
            logp = matfree.log_weights(couplings, self.beta)
            self._krylov = matfree.MatrixFreeKernel(
                couplings,
                kernel_schedule(couplings, kernel, order, q),
                logp,
                flip_symmetric=flip,
                reversible=reversible,
                power=self.power,
                eig_tol=matfree.EIG_TOL if eig_tol is None else eig_tol,
                rtol=matfree.SOLVE_RTOL if rtol is None else rtol,
            )
            self._setup(None, logp, flip=flip, reversible=reversible, check=check)
            return
        if kernel in ("symmetric", "sweep-mixture"):
            raise ValueError(
                f"the dense {kernel} chain is built by kernels.exact_chain (or use "
                f"backend='krylov')"
            )
        logp = -self.beta * couplings.energy(all_states(n))
        logp -= logp.max()
        logp -= np.log(np.exp(logp).sum())
        if kernel == "random-scan":
            P = transition_matrix(couplings, kernel, beta=self.beta, sparse=True)
        elif N <= DENSE_LIMIT:
            P = transition_matrix(couplings, kernel, beta=self.beta, order=order, sparse=False)
        else:
            P = None
            self._operator = transition_operator(couplings, kernel, beta=self.beta, order=order)
        if self.power > 1:
            if P is None or N > DENSE_LIMIT:
                raise NotImplementedError(
                    f"sampler steps of a {N}-state chain: use backend='krylov'"
                )
            D = P.toarray() if sp.issparse(P) else P
            P = np.linalg.matrix_power(D, self.power)
        self._setup(P, logp, flip=flip, reversible=reversible, check=check)

    @classmethod
    def from_matrix(
        cls, P, p=None, *, flip_symmetric: bool = False, check: bool = True
    ) -> ExactChain:
        """Any finite chain: a row-stochastic P (dense or sparse) and its stationary p.

        ``p`` is computed (left eigenvector for eigenvalue 1) when omitted. ``flip_symmetric``
        declares that state x and state N-1-x are mirror images (N a power of two), as for spins.
        """
        self = cls.__new__(cls)
        self.couplings = None
        self.kernel = "matrix"
        self.beta = None
        self.backend, self.steps, self.power = "dense", "kernel", 1
        self._operator = None
        self._krylov = None
        P = P.tocsr() if sp.issparse(P) else np.asarray(P, dtype=np.float64)
        N = P.shape[0]
        if P.shape != (N, N):
            raise ValueError(f"P must be square, not {P.shape}")
        if p is None:
            dense = P.toarray() if sp.issparse(P) else P
            w, v = sla.eig(dense.T)
            p = np.abs(np.real(v[:, np.argmin(np.abs(w - 1.0))]))
        p = np.asarray(p, dtype=np.float64)
        if np.any(p <= 0):
            raise ValueError("the stationary distribution must be positive (irreducible chain)")
        p = p / p.sum()
        self._setup(P, np.log(p), flip=flip_symmetric, reversible=None, check=check)
        return self

    # -- construction ---------------------------------------------------------------------------
    def _setup(self, P, logp, flip: bool, reversible: bool | None, check: bool) -> None:
        self.P = P
        self._logp = logp
        self.p = np.exp(logp)
        self._sqrtp = np.exp(0.5 * logp)
        self.N = len(logp)
        self.n = int(round(np.log2(self.N))) if self.N & (self.N - 1) == 0 else None
        if flip and (self.n is None):
            raise ValueError("flip symmetry needs 2**n states")
        self.flip_symmetric = bool(flip)
        if P is not None:
            # A = D^1/2 P D^-1/2 from log p, so states with p ~ 1e-300 do not overflow.
            if sp.issparse(P):
                coo = P.tocoo()
                data = coo.data * np.exp(0.5 * (logp[coo.row] - logp[coo.col]))
                self._A = sp.csr_matrix((data, (coo.row, coo.col)), shape=P.shape)
            else:
                with np.errstate(over="ignore"):
                    scale = np.exp(0.5 * (logp[:, None] - logp[None, :]))
                self._A = np.where(P > 0, P * scale, 0.0)
        else:
            self._A = None
        if reversible is None:
            reversible = self._asymmetry() <= 1e-12
        self.reversible = bool(reversible)
        self._cache: dict = {}
        if check:
            self._self_check()

    @property
    def krylov_log(self) -> list:
        return [] if self._krylov is None else self._krylov.log

    def _asymmetry(self) -> float:
        A = self._A
        d = A - A.T
        return float(abs(d).max()) if sp.issparse(d) else float(np.abs(d).max())

    def _self_check(self) -> None:
        if self._krylov is not None:
            # A^T sqrt(p) = sqrt(p) in each sector with a stationary vector: p P = p (flip
            # symmetry holds by construction: the sectors are only used when h = 0)
            for s in self.sectors:
                v0 = self._sector(s)["v0"]
                if v0 is not None:
                    res = self._krylov.stationarity_residual(s, v0)
                    if res > 1e-10:
                        raise ValueError(
                            f"p P != p in the {s} sector (max residual {res:.3g} of sqrt(p))"
                        )
            return
        if self.P is not None:
            res = stationarity_residual(self.P, self.p)
        else:
            res = float(np.abs(self._operator.rmatvec(self.p) - self.p).max())
        if res > 1e-10:
            raise ValueError(f"p P != p (max residual {res:.3g}): p is not stationary for P")
        if self.reversible and self._A is not None and self._asymmetry() > 1e-10:
            raise ValueError("the kernel is not reversible (detailed balance fails)")
        if self.flip_symmetric and self.P is not None:
            rev = np.arange(self.N)[::-1]
            P = self.P
            Pf = P[rev][:, rev]
            d = abs(P - Pf).max() if sp.issparse(P) else np.abs(P - Pf).max()
            if d > 1e-12:
                raise ValueError(f"P does not commute with the global flip (max diff {d:.3g})")

    # -- observables ----------------------------------------------------------------------------
    @cached_property
    def states(self) -> np.ndarray:
        """All 2**n states as int8 (+-1), index order."""
        if self.n is None:
            raise ValueError("this chain is not over spin states")
        return all_states(self.n)

    def pair_values(self, pairs=None) -> np.ndarray:
        """s_i s_j on every state, one column per pair (default: the model's edges), (N, m)."""
        from pbitsim.diagnostics.observables import pair_list

        pairs = pair_list(self.couplings if pairs is None else pairs, n=self.n)
        s = self.states.astype(np.float64)
        return s[:, pairs[:, 0]] * s[:, pairs[:, 1]]

    def magnetisation_values(self) -> np.ndarray:
        """(1/n) sum_i s_i on every state, (N,)."""
        return self.states.mean(axis=1, dtype=np.float64)

    def energy_values(self) -> np.ndarray:
        """E(s) on every state (without beta), (N,)."""
        return self.couplings.energy(self.states)

    def _values(self, f) -> tuple[np.ndarray, bool]:
        if callable(f):
            f = f(self.states)
        f = np.asarray(f, dtype=np.float64)
        if f.shape[0] != self.N or f.ndim > 2:
            raise ValueError(
                f"observable values must have shape ({self.N},) or ({self.N}, m), not {f.shape}"
            )
        return (f[:, None], True) if f.ndim == 1 else (f, False)

    def _centred(self, f) -> tuple[np.ndarray, bool]:
        F, single = self._values(f)
        u = self._sqrtp[:, None] * (F - self.p @ F)
        return u, single

    # -- sectors --------------------------------------------------------------------------------
    @property
    def sectors(self) -> tuple[str, ...]:
        """The invariant subspaces worked in: ("even", "odd") under flip symmetry, else ("all",)."""
        return ("even", "odd") if self.flip_symmetric else ("all",)

    def _coords(self, u: np.ndarray, s: str) -> np.ndarray:
        if s == "all":
            return u
        h = self.N // 2
        partner = u[self.N - 1 - np.arange(h)]
        sign = 1.0 if s == "even" else -1.0
        return (u[:h] + sign * partner) / np.sqrt(2.0)

    def _sector(self, s: str) -> dict:
        key = ("sector", s)
        if key in self._cache:
            return self._cache[key]
        if s not in ("all", "even", "odd") or (s != "all" and not self.flip_symmetric):
            raise ValueError(f"sector must be one of {self.sectors + ('all',)}, not {s!r}")
        A = self._A
        v0 = self._coords(self._sqrtp[:, None], s)[:, 0] if s != "odd" else None
        if A is None:
            out = {"A": None, "v0": v0, "dim": self.N if s == "all" else self.N // 2}
        elif s == "all":
            out = {"A": A, "v0": v0, "dim": self.N}
        else:
            h = self.N // 2
            top = A[:h]
            As = top[:, :h] + (1 if s == "even" else -1) * top[:, self.N - 1 - np.arange(h)]
            out = {"A": sp.csr_matrix(As) if sp.issparse(A) else As, "v0": v0, "dim": h}
        self._cache[key] = out
        return out

    def _matvec(self, s: str, v: np.ndarray) -> np.ndarray:
        """A'_s v (deflated)."""
        sec = self._sector(s)
        if self._krylov is not None:
            out = self._krylov.apply(v, s)
        elif sec["A"] is not None:
            out = sec["A"] @ v
        else:  # operator only: A v = sqrt(p) * P (v / sqrt(p)) in full coordinates
            full = self._from_coords(v, s)
            out = self._coords(
                self._sqrtp[:, None] * self._operator.matmat(full / self._sqrtp[:, None]), s
            ).reshape(v.shape)
        if sec["v0"] is not None:
            out = (
                out - np.outer(sec["v0"], sec["v0"] @ v)
                if v.ndim == 2
                else out - sec["v0"] * (sec["v0"] @ v)
            )
        return out

    def _from_coords(self, v: np.ndarray, s: str) -> np.ndarray:
        v = v.reshape(v.shape[0], -1)
        if s == "all":
            return v
        h = self.N // 2
        out = np.empty((self.N, v.shape[1]))
        out[:h] = v / np.sqrt(2.0)
        out[self.N - 1 - np.arange(h)] = (1 if s == "even" else -1) * v / np.sqrt(2.0)
        return out

    def _dense(self, s: str) -> np.ndarray:
        key = ("dense", s)
        if key not in self._cache:
            sec = self._sector(s)
            if sec["A"] is None or sec["dim"] > DENSE_LIMIT:
                raise NotImplementedError(
                    f"the {s} sector has {sec['dim']} states; dense spectral work is limited to "
                    f"{DENSE_LIMIT} (use a smaller model, or random-scan for up to 16 spins)"
                )
            A = sec["A"].toarray() if sp.issparse(sec["A"]) else np.array(sec["A"])
            if sec["v0"] is not None:
                A -= np.outer(sec["v0"], sec["v0"])
            self._cache[key] = A
        return self._cache[key]

    def _decomposition(self, s: str, K: int | None = None) -> _modes.Decomposition:
        key = ("dec", s)
        if key in self._cache:
            return self._cache[key]
        dim = self._sector(s)["dim"]
        if dim <= DENSE_LIMIT and self._sector(s)["A"] is not None:
            dec = _modes.decompose(self._dense(s), self.reversible)
            self._cache[key] = dec
            return dec
        if not self.reversible:
            raise NotImplementedError(
                f"mode expansion of a non-reversible kernel needs the full Schur form; the {s} "
                f"sector has {dim} > {DENSE_LIMIT} states (gaps and tau_int work matrix-free)"
            )
        k = min(dim - 1, (K or 10) + 8)
        key = ("dec-iterative", s, k)
        if key not in self._cache:
            op = spla.LinearOperator(
                (dim, dim), matvec=lambda v: self._matvec(s, v), dtype=np.float64
            )
            tol = 0 if self._krylov is None else self._krylov.eig_tol
            lam, U = spla.eigsh(op, k=k, which="LM", tol=tol)
            order = np.argsort(-np.abs(lam), kind="stable")
            self._cache[key] = _modes.Decomposition(lam[order], U[:, order], None, complete=False)
        return self._cache[key]

    # -- spectrum -------------------------------------------------------------------------------
    def _top_moduli(self, s: str, k: int = 1) -> np.ndarray:
        """The k largest |lambda| of the deflated sector matrix."""
        key = ("dec", s)
        dim = self._sector(s)["dim"]
        if self._krylov is not None and key not in self._cache:
            kk = ("top", s, k)
            if kk not in self._cache:
                self._cache[kk] = np.abs(self._krylov.top_eigenvalues(s, self._sector(s)["v0"], k))
            return self._cache[kk]
        if key in self._cache or (dim <= ITERATIVE_GAP_DIM and self._sector(s)["A"] is not None):
            return np.abs(self._decomposition(s).lam[:k])
        if dim - 2 < k:
            return np.abs(self._decomposition(s).lam[:k])
        op = spla.LinearOperator((dim, dim), matvec=lambda v: self._matvec(s, v), dtype=np.float64)
        if self.reversible:
            lam = spla.eigsh(op, k=k, which="LM", return_eigenvectors=False)
        else:
            lam = spla.eigs(op, k=k, which="LM", return_eigenvectors=False)
        return np.sort(np.abs(lam))[::-1]

    def eigenvalues(self, sector: str = "all") -> np.ndarray:
        """The sector's full spectrum, sorted by modulus (stationary 1 first where it lives).

        Real for a reversible kernel, complex otherwise.
        """
        parts = []
        for s in self._expand(sector):
            dec = self._decomposition(s)
            if not dec.complete:
                raise NotImplementedError(
                    f"the full spectrum of the {s} sector ({self._sector(s)['dim']} states) is "
                    f"not computed matrix-free; use spectral_gap or mode_expansion"
                )
            lam = dec.lam
            if self._sector(s)["v0"] is not None:  # undo the deflation: one 0 back to 1
                drop = int(np.argmin(np.abs(lam)))
                lam = np.concatenate([[1.0], np.delete(lam, drop)])
            parts.append(lam)
        lam = np.concatenate(parts)
        return lam[np.argsort(-np.abs(lam), kind="stable")]

    def _expand(self, sector: str) -> tuple[str, ...]:
        if sector == "all" and self.flip_symmetric:
            return ("even", "odd")
        self._sector(sector)  # validates the name
        return (sector,)

    def spectral_gap(self, sector: str = "all") -> float:
        """1 - max |lambda| over the sector's non-stationary eigenvalues."""
        return float(1.0 - max(self._top_moduli(s)[0] for s in self._expand(sector)))

    def relaxation_time(self, sector: str = "all") -> float:
        """1 / spectral gap, in kernel steps."""
        return 1.0 / self.spectral_gap(sector)

    def sector_gaps(self) -> dict[str, float]:
        """{"even": gap_even, "odd": gap_odd} (flip-symmetric models only)."""
        if not self.flip_symmetric:
            raise ValueError("sector gaps need a flip-symmetric model (h = 0)")
        return {s: self.spectral_gap(s) for s in ("even", "odd")}

    def single_gap_tau(self) -> float:
        """(1 + lambda_*)/(1 - lambda_*) with lambda_* = 1 - spectral_gap(): the single-gap
        predictor of tau_int, the same for every observable."""
        lam = 1.0 - self.spectral_gap()
        with np.errstate(divide="ignore"):
            return float((1.0 + lam) / (1.0 - lam))

    # -- exact autocorrelation ------------------------------------------------------------------
    def fundamental_matrix(self) -> np.ndarray:
        """Z = (I - P + 1 p^T)^{-1} (dense; N <= DENSE_LIMIT)."""
        if self.P is None or self.N > DENSE_LIMIT:
            raise NotImplementedError(f"a dense fundamental matrix needs N <= {DENSE_LIMIT}")
        P = self.P.toarray() if sp.issparse(self.P) else self.P
        return np.linalg.inv(np.eye(self.N) - P + np.outer(np.ones(self.N), self.p))

    def _solve_z(self, s: str, u: np.ndarray) -> np.ndarray:
        """(I - A'_s)^{-1} u: the A-picture fundamental matrix applied to centred u."""
        sec = self._sector(s)
        key = ("z", s)
        if self._krylov is not None:
            return self._krylov.solve(s, sec["v0"], u)
        if sec["A"] is None:
            raise NotImplementedError("exact tau of a large sweep kernel is not implemented")
        if sec["dim"] <= DENSE_LIMIT:
            if key not in self._cache:
                self._cache[key] = sla.lu_factor(np.eye(sec["dim"]) - self._dense(s))
            return sla.lu_solve(self._cache[key], u)
        if key not in self._cache:
            # Sparse: border I - A with the deflation vector instead of adding a dense rank one
            # ([I - A, v0; v0^T, 0][g; mu] = [u; 0] gives mu = 0 and g = (I - A')^{-1} u).
            dim = sec["dim"]
            M = sp.identity(dim, format="csc") - sp.csc_matrix(sec["A"])
            if sec["v0"] is not None:
                v0 = sp.csc_matrix(sec["v0"][:, None])
                M = sp.bmat([[M, v0], [v0.T, None]], format="csc")
            self._cache[key] = spla.splu(M)
        lu = self._cache[key]
        rhs = u if sec["v0"] is None else np.vstack([u, np.zeros((1, u.shape[1]))])
        return lu.solve(rhs)[: sec["dim"]]

    def _per_sector(self, f):
        u, single = self._centred(f)
        return [(s, self._coords(u, s)) for s in self.sectors], single, (u * u).sum(axis=0)

    def tau_int(self, f) -> float | np.ndarray:
        """Exact tau_int of observable(s) f from the fundamental matrix.

        tau = (2 <f~, Z f~>_p - Var f) / Var f with f~ = f - E f, since sum_{t>=0} C(t) =
        <f~, Z f~>_p. ``f``: values on the states, (N,) or (N, m), or a callable of the states.
        """
        parts, single, var = self._per_sector(f)
        total = np.zeros_like(var)
        for s, us in parts:
            # a sector component at rounding level (an even f's odd part, ~1e-14 of f from the
            # rounding of log p) has nothing to solve: below 1e-20 of Var f it changes tau by
            # less than 1e-20 tau_sector / tau
            keep = np.sum(us * us, axis=0) > 1e-20 * var
            if np.any(keep):
                total[keep] += np.sum(us[:, keep] * self._solve_z(s, us[:, keep]), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = (2.0 * total - var) / var
        return float(tau[0]) if single else tau

    def variance(self, f) -> float | np.ndarray:
        """Var_p(f)."""
        u, single = self._centred(f)
        v = (u * u).sum(axis=0)
        return float(v[0]) if single else v

    def autocovariance(self, f, tmax: int) -> np.ndarray:
        """Exact C(t) = <f~, P^t f~>_p for t = 0..tmax, shape (tmax + 1,) or (tmax + 1, m)."""
        parts, single, var = self._per_sector(f)
        out = np.zeros((int(tmax) + 1, var.size))
        for s, us in parts:
            v = us
            for t in range(int(tmax) + 1):
                out[t] += np.sum(us * v, axis=0)
                v = self._matvec(s, v)
        return out[:, 0] if single else out

    def time_average_variance(self, f, M: int) -> float | np.ndarray:
        """Exact Var of (1/M) sum_{t=1}^{M} f(X_t) for a chain started in stationarity.

        Uses sum_{t=0}^{M-1} (M - t) Q^t = M Z - Q (I - Q^M) Z^2 (Q = P - 1 p^T, Z = (I - Q)^{-1})
        in each sector, so the cost does not grow with M except for applying Q^{M+1}.
        """
        M = int(M)
        if M < 1:
            raise ValueError(f"M must be >= 1, not {M}")
        parts, single, var = self._per_sector(f)
        total = np.zeros_like(var)
        for s, us in parts:
            if not np.any(us):
                continue
            w1 = self._solve_z(s, us)
            w2 = self._solve_z(s, w1)
            tail = self._power_apply(s, w2, M + 1)
            su = M * w1 - self._matvec(s, w2) + tail
            total += 2.0 * np.sum(us * su, axis=0) - M * np.sum(us * us, axis=0)
        out = total / M**2
        return float(out[0]) if single else out

    def _power_apply(self, s: str, w: np.ndarray, k: int) -> np.ndarray:
        """A'^k w; stops early once the iterate has decayed below rounding."""
        stop = 1e-17 * max(float(np.abs(w).max()), 1e-300)
        if k > 4096 and self._sector(s)["dim"] <= 512 and self._sector(s)["A"] is not None:
            return np.linalg.matrix_power(self._dense(s), k) @ w
        v = w
        for _ in range(k):
            v = self._matvec(s, v)
            if float(np.abs(v).max()) < stop:
                return np.zeros_like(w)
        return v

    # -- mode expansion -------------------------------------------------------------------------
    def mode_expansion(self, f, K: int = 10, weight_tol: float = 1e-10) -> ModeExpansion:
        """Expand observable(s) over the K slowest modes of each sector.

        Parameters
        ----------
        f : array_like or callable
            Observable values on the states, (N,) or (N, m), or a callable of the states.
        K : int
            Modes kept per sector; raised to the end of a degenerate cluster (with a
            :class:`DegenerateEigenvalueWarning`: a cluster's eigenvectors are not unique, so only
            the cluster's spectral projector is used).
        weight_tol : float
            Clusters with a smaller weight fraction do not count for ``relevant_gap``.

        Returns
        -------
        ModeExpansion
        """
        parts, single, var = self._per_sector(f)
        clusters: list[ModeCluster] = []
        kept = np.zeros_like(var)
        modes_used = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for s, us in parts:
                sector_var = np.sum(us * us, axis=0)
                if not np.any(sector_var > 1e-28 * np.maximum(var, 1e-300)):
                    continue  # the observable has no component in this sector
                dec = self._decomposition(s, K)
                sub = _modes.slow_subspace(dec, K, label=f"{s} sector: ")
                modes_used[s] = sub.d
                a = us.T @ sub.basis  # (m, d)
                b = sub.left @ us  # (d, m)
                G = _modes.g_matrix(sub.T)
                sector_kept = np.zeros_like(var)
                for (lo, hi), proj, deg in zip(
                    zip(sub.bounds[:-1], sub.bounds[1:]), sub.projectors, sub.degenerate
                ):
                    w = np.real(np.einsum("md,de,em->m", a, proj, b))
                    t = np.real(np.einsum("md,de,em->m", a, proj @ G, b))
                    t = np.where(w == 0, 0.0, t)
                    sector_kept += w
                    clusters.append(ModeCluster(s, sub.lam[lo:hi], w / var, t / var, deg))
                    kept += t
                kept += sector_var - sector_kept  # the rest of the sector: fast, tau ~ 1
            tau_mm = kept / var
        degenerate = [c for c in clusters if c.degenerate]
        if degenerate:
            desc = ", ".join(
                f"{c.sector}: lambda~{c.eigenvalues[0]:.6g} (x{len(c.eigenvalues)})"
                for c in degenerate[:4]
            )
            warnings.warn(
                f"degenerate eigenvalues among the slowest modes ({desc}); their eigenvectors "
                f"are not unique, so weights are reported per cluster (spectral projector onto "
                f"the invariant subspace)",
                DegenerateEigenvalueWarning,
                stacklevel=2,
            )
        relevant = np.full(var.shape, np.nan)
        for c in sorted(clusters, key=lambda c: c.modulus):
            relevant = np.where(np.abs(c.weight) > weight_tol, 1.0 - c.modulus, relevant)
        exact = np.atleast_1d(self.tau_int(self._values(f)[0]))

        def out(x):
            return x[0] if single else x

        return ModeExpansion(
            clusters=[
                ModeCluster(c.sector, c.eigenvalues, out(c.weight), out(c.tau_term), c.degenerate)
                for c in clusters
            ],
            variance=out(var),
            tau_exact=out(exact),
            tau_multi_mode=out(tau_mm),
            tau_single_gap=self.single_gap_tau(),
            relevant_gap=out(relevant),
            modes_used=modes_used,
        )

    def predict_tau(self, f, K: int = 10) -> float | np.ndarray:
        """The observable-projected multi-mode predictor of tau_int (see :meth:`mode_expansion`)."""
        res = self.mode_expansion(f, K).tau_multi_mode
        return float(res) if np.ndim(res) == 0 else res

    def __repr__(self) -> str:
        return (
            f"ExactChain(kernel={self.kernel!r}, states={self.N}, "
            f"reversible={self.reversible}, sectors={self.sectors})"
        )
