"""Derivatives of the exact gradient-noise diagnostics with respect to the couplings J and fields h.

For a small model (exact 2**n state space) and any exact kernel of
:mod:`pbitsim.diagnostics.kernels`, :class:`ExactDerivatives` returns values *and* gradients of

* the asymptotic variance sigma^2_f = Var_p(f) tau_int(f) = <f~, (2Z - I) f~>_p, with
  Z = (I - P + 1 p^T)^{-1} and f~ = f - E_p f, through the resolvent: one linear solve per
  observable (two for a non-reversible kernel), no eigenvectors, so degenerate eigenvalues cannot
  hurt. p, the centring and Var_p depend on (J, h) too, and are differentiated;
* tau_int(f) = sigma^2_f / Var_p(f), and Q(M) = M ||g||^2 / sum_k sigma^2_k, the large-M form of
  the gradient SNR (``predicted_q(...)["exact_tau"]``; exact Q(M) differs by O(tau / M));
* the K-mode predictor sigma^2_K(f) = Var_p(f) + <u, 2A'(I - A')^{-1} Pi u> (``predict_tau`` times
  Var_p), through the spectral projector Pi onto the kept clusters (never single eigenvectors),
  and Q_K(M) built from it.

Parameters are the model's edges (``pair_list(couplings)`` order, i < j) then its n fields, at fixed
beta; a :class:`Gradient` holds ``value`` and ``grad`` (``value.shape + (parameters,)``).

**Resolvent derivative.** With g = Z f~ and y = Z^T (p o f~) (y = p o g when P is reversible),
Z 1 = 1, p^T Z = p^T and p^T f~ = 0 remove every term in dZ that involves dp except one:

    d sigma^2 = dp . (2 f~ g - f~^2) + 2 y^T dP g,    dp = beta p o (phi - <phi>_p),

phi the parameter's feature (s_a s_b for J_ab, s_a for h_a). P is a weighted sum of products of
single-site updates K_i (:func:`~pbitsim.diagnostics.kernels.kernel_schedule`), so
y^T dP g = sum_t w_t sum_l (K_{s_1} ... K_{s_{l-1}})^T y . dK_{s_l} (K_{s_{l+1}} ... g), with
(dK_i v)(x) = dq_i(x) (v(x | bit i) - v(x & ~bit i)), q_i = (1 + tanh(beta I_i)) / 2: O(L 2**n)
per observable for a step of L updates. The solves use A' = D^{1/2} P D^{-1/2} - sqrt(p) sqrt(p)^T
in each flip-symmetry sector (:class:`~pbitsim.diagnostics.ExactChain`), so an even observable never
meets a flip-odd eigenvalue 1 - 1e-15.

**Predictor derivative.** The K-mode predictor keeps, per sector, the clusters of the K slowest
eigenvalues and counts the rest of the variance as uncorrelated. With h1(z) = 2z / (1 - z) it is
Var_p(f) + <u, h1(A') Pi u>, u = sqrt(p) f~, where Pi is the spectral projector onto the kept
invariant subspace. In the ordered Schur basis A' = V diag(T11, T22) V^{-1},
V = Q [[I, X], [0, I]] (T11 X - X T22 = -T12), and

    d(h1(A') Pi) = 2 R dA' R Pi + h1(A') dPi,   R = (I - A')^{-1},
    dPi = V [[0, Z12], [Z21, 0]] V^{-1},   T11 Z12 - Z12 T22 = E12,  T22 Z21 - Z21 T11 = -E21,

E = V^{-1} dA' V. Only Sylvester equations *across* the truncation boundary appear: the
derivative is finite exactly when the kept and discarded eigenvalues are separated, and it does
not care how degenerate the eigenvalues on either side are. The adjoint Sylvester equations give
one matrix G with d(value) = <G, dA'>_F for all parameters at once. When the boundary falls
inside a (near-)degenerate cluster (K raised by :meth:`ExactChain.mode_expansion`, or moduli closer
than ``gap_tol``) the predictor jumps under an arbitrarily small perturbation: it has no
derivative there and :class:`NotDifferentiableError` says so. At a flip-symmetric model (h = 0)
the predictor keeps K modes *per sector*; a field mixes the sectors, so the predictor is not
continuous in h there and only ``wrt="J"`` is answered.

Times are in the kernel's own steps (see :mod:`pbitsim.diagnostics.kernels`); dense linear
algebra limits the predictor (and the sweep kernels) to n <= 12.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg.lapack import ztrsyl

from pbitsim.couplings import Couplings
from pbitsim.diagnostics import _modes
from pbitsim.diagnostics.kernels import _apply_left, _p_up, exact_chain, kernel_schedule
from pbitsim.diagnostics.observables import pair_list
from pbitsim.diagnostics.q import data_moments, gradient_observables

__all__ = [
    "NotDifferentiableError",
    "Gradient",
    "ExactDerivatives",
    "parameter_vector",
    "with_parameters",
]

#: Default relative modulus gap below which the truncation boundary counts as splitting a cluster.
GAP_TOL = 1e-6
#: A kept eigenvalue this close to 1 means the chain does not mix within double precision.
NO_MIXING_TOL = 1e-12


class NotDifferentiableError(ValueError):
    """The quantity has no derivative at this model (the message says why)."""


@dataclass(frozen=True)
class Gradient:
    """A value and its gradient with respect to the model's parameters.

    Attributes
    ----------
    value : float or np.ndarray
        Scalar, or one entry per observable.
    grad : np.ndarray
        ``np.shape(value) + (parameters,)``: d value / d J_e for the edges, then d / d h_i when
        ``fields``.
    edges : np.ndarray
        (E, 2) the model's edges (i < j), in gradient order.
    fields : bool
        Whether the last n columns are the fields' derivatives.
    """

    value: float | np.ndarray
    grad: np.ndarray
    edges: np.ndarray
    fields: bool = True

    @property
    def d_J(self) -> np.ndarray:
        """d value / d J_e, (..., E)."""
        return self.grad[..., : len(self.edges)]

    @property
    def d_h(self) -> np.ndarray:
        """d value / d h_i, (..., n)."""
        if not self.fields:
            raise ValueError("this gradient was taken with respect to J only")
        return self.grad[..., len(self.edges) :]

    def d_J_matrix(self, n: int) -> np.ndarray:
        """d value / d J_ij as a symmetric (..., n, n) matrix (zero off the edges)."""
        out = np.zeros(np.shape(self.value) + (n, n))
        i, j = self.edges.T
        out[..., i, j] = self.d_J
        out[..., j, i] = self.d_J
        return out


def parameter_vector(c: Couplings) -> np.ndarray:
    """(J_e for the edges, then h): the point the gradients refer to."""
    return np.concatenate([c.edges()[2], c.h])


def with_parameters(c: Couplings, theta) -> Couplings:
    """``c`` with edge weights and fields from ``theta`` (:func:`parameter_vector` layout), same
    topology, colouring and beta (the finite-difference and training helper)."""
    theta = np.asarray(theta, dtype=np.float64)
    i, j, _ = c.edges()
    E = len(i)
    if theta.shape != (E + c.n,):
        raise ValueError(
            f"theta must have shape ({E + c.n},) (edges, then fields), not {theta.shape}"
        )
    rows = np.repeat(np.arange(c.n), c.degrees)
    lo, hi = np.minimum(rows, c.indices), np.maximum(rows, c.indices)
    edge_of = np.searchsorted(i * c.n + j, lo * c.n + hi)
    return c.replace(data=theta[:E][edge_of], h=theta[E:].copy())


def _wrt(wrt) -> bool:
    """Whether the fields are included ("all" or ("J", "h")), or J only ("J")."""
    w = {wrt} if isinstance(wrt, str) else set(wrt)
    if w in ({"all"}, {"J", "h"}):
        return True
    if w == {"J"}:
        return False
    raise ValueError(f"wrt must be 'all', 'J' or ('J', 'h'), not {wrt!r}")


class ExactDerivatives:
    """Exact diagnostics of one kernel on a small model, with their gradients in (J, h).

    Parameters
    ----------
    couplings : Couplings
        The model (n <= 12 for the sweep kernels and the predictor; random-scan sigma^2 up to 16).
    kernel : str
        Any of :data:`~pbitsim.diagnostics.kernels.KERNELS`.
    q : float, optional
        Forward-sweep probability of ``"sweep-mixture"``.
    order : sequence of int, optional
        Sweep order of the sequential, symmetric and mixture kernels.
    beta : float, optional
        Inverse temperature (default: the model's); gradients are at fixed beta.

    Attributes
    ----------
    chain : ExactChain
        The exact chain (:func:`~pbitsim.diagnostics.kernels.exact_chain`).
    edges : np.ndarray
        (E, 2), the gradient's edge order.
    """

    def __init__(
        self,
        couplings: Couplings,
        kernel: str = "random-scan",
        *,
        q: float | None = None,
        order: Sequence[int] | None = None,
        beta: float | None = None,
    ) -> None:
        self.couplings = couplings
        self.kernel = kernel
        self.chain = exact_chain(couplings, kernel, q=q, beta=beta, order=order)
        self.beta = self.chain.beta
        self.schedule = kernel_schedule(couplings, kernel, order, q)
        self.n = couplings.n
        self.N = 1 << self.n
        self.edges = pair_list(couplings)
        self._pu = _p_up(couplings, self.beta)
        # dq_i / dI_i = beta (1 - tanh^2) / 2 = 2 beta q (1 - q)
        self._dq = 2.0 * self.beta * self._pu * (1.0 - self._pu)
        s = self.chain.states.astype(np.float64)
        self._s = s
        p = self.chain.p
        self._sqrtp = np.sqrt(p)
        phi = np.concatenate([s[:, self.edges[:, 0]] * s[:, self.edges[:, 1]], s], axis=1)
        self._phic = phi - p @ phi  # d log p / d theta = beta * phic
        self._lu_t: dict = {}
        self._dec: dict = {}
        #: use the general (Schur) predictor path for reversible kernels too (a test hook)
        self._force_schur = False

    # -- helpers ---------------------------------------------------------------------------------
    def _obs(self, f) -> tuple[np.ndarray, bool]:
        if callable(f):
            f = f(self.chain.states)
        F = np.asarray(f, dtype=np.float64)
        if F.shape[0] != self.N or F.ndim > 2:
            raise ValueError(
                f"observable values must have shape ({self.N},) or ({self.N}, m), not {F.shape}"
            )
        return (F[:, None], True) if F.ndim == 1 else (F, False)

    def _out(self, value, grad, single: bool, fields: bool) -> Gradient:
        if not fields:
            grad = grad[..., : len(self.edges)]
        if single:
            value, grad = float(np.asarray(value).reshape(-1)[0]), grad.reshape(grad.shape[-1])
        return Gradient(value, grad, self.edges, fields)

    def _from_p(self, v: np.ndarray) -> np.ndarray:
        """sum_x dp(x) v(x, k) for every parameter: beta phic^T (p o v), shape (k, P)."""
        return self.beta * (self._phic.T @ (self.chain.p[:, None] * v)).T

    def _from_logp(self, v: np.ndarray) -> np.ndarray:
        """sum_x dlog p(x) v(x): beta phic^T v, shape (P,)."""
        return self.beta * (self._phic.T @ v)

    def _params(self, C: np.ndarray) -> np.ndarray:
        """Per-site coefficients C (N, n[, r]) of dI_i -> gradient (P[, r])."""
        a, b = self.edges[:, 0], self.edges[:, 1]
        if C.ndim == 2:
            M = self._s.T @ C  # M[j, i] = sum_x s_j(x) C(x, i)
            return np.concatenate([M[b, a] + M[a, b], C.sum(axis=0)])
        M = np.einsum("xj,xir->jir", self._s, C)
        return np.concatenate([M[b, a] + M[a, b], C.sum(axis=0)]).T

    def _pair(self, left: np.ndarray, right: np.ndarray, per_column: bool) -> np.ndarray:
        """d/dtheta of sum_k left_k^T P right_k: (P,), or (r, P) one row per column k."""
        N, n = self.N, self.n
        x = np.arange(N)
        r = left.shape[1]
        C = np.zeros((N, n, r)) if per_column else np.zeros((N, n))
        for w, sites in self.schedule:
            L = len(sites)
            suffix = [None] * L  # K_{s_{l+1}} ... K_{s_L} right
            b = right
            for l in range(L - 1, -1, -1):
                suffix[l] = b
                if l:
                    b = _apply_left(b, self._pu[:, sites[l]], int(sites[l]))
            a = left  # (K_{s_1} ... K_{s_{l-1}})^T left
            for l, i in enumerate(sites):
                i = int(i)
                bit = 1 << i
                bl = suffix[l]
                diff = bl[x | bit] - bl[x & ~bit]
                coef = w * self._dq[:, i]
                if per_column:
                    C[:, i, :] += coef[:, None] * a * diff
                else:
                    C[:, i] += coef * np.einsum("xk,xk->x", a, diff)
                suffix[l] = None
                if l < L - 1:  # K_i^T a: (K_i^T a)(y) = q_i(y)-or-(1 - q_i(y)) (a(y) + a(y^bit))
                    up = (x & bit) != 0
                    wt = np.where(up, self._pu[:, i], 1.0 - self._pu[:, i])
                    a = wt[:, None] * (a + a[x ^ bit])
        return self._params(C)

    def _solves(self, U: np.ndarray, transpose: bool) -> np.ndarray:
        """(I - A')^{-1} U (or its transpose) sector by sector, in full coordinates."""
        ch = self.chain
        out = np.zeros_like(U)
        for s in ch.sectors:
            us = ch._coords(U, s)
            if not np.any(us):
                continue
            if not transpose or ch.reversible:
                ws = ch._solve_z(s, us)
            else:
                if s not in self._lu_t:
                    dim = ch._sector(s)["dim"]
                    self._lu_t[s] = sla.lu_factor(np.eye(dim) - ch._dense(s))
                ws = sla.lu_solve(self._lu_t[s], us, trans=1)
            out += ch._from_coords(ws, s)
        return out

    def _centre(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Fb = F - self.chain.p @ F
        return Fb, self._sqrtp[:, None] * Fb

    # -- variance and the resolvent --------------------------------------------------------------
    def variance(self, f, wrt="all") -> Gradient:
        """Var_p(f) and its gradient."""
        fields = _wrt(wrt)
        F, single = self._obs(f)
        Fb, U = self._centre(F)
        return self._out((U * U).sum(axis=0), self._from_p(Fb * Fb), single, fields)

    def _sigma2_parts(self, F):
        Fb, U = self._centre(F)
        Wv = self._solves(U, transpose=False)  # sqrt(p) o g
        Zv = Wv if self.chain.reversible else self._solves(U, transpose=True)  # y / sqrt(p)
        g = Wv / self._sqrtp[:, None]
        y = Zv * self._sqrtp[:, None]
        var = (U * U).sum(axis=0)
        sig2 = 2.0 * (U * Wv).sum(axis=0) - var
        return Fb, g, y, var, sig2

    def asymptotic_variance(self, f, wrt="all") -> Gradient:
        """sigma^2_f = Var_p(f) tau_int(f) = lim M Var(time average of M steps), and its gradient.

        ``f``: values on the states, (N,) or (N, m), or a callable of the states.
        """
        fields = _wrt(wrt)
        F, single = self._obs(f)
        Fb, g, y, _, sig2 = self._sigma2_parts(F)
        grad = self._from_p(2.0 * Fb * g - Fb * Fb) + 2.0 * self._pair(y, g, per_column=True)
        return self._out(sig2, grad, single, fields)

    def tau_int(self, f, wrt="all") -> Gradient:
        """tau_int(f) = sigma^2_f / Var_p(f) (kernel steps) and its gradient."""
        fields = _wrt(wrt)
        F, single = self._obs(f)
        Fb, g, y, var, sig2 = self._sigma2_parts(F)
        dsig = self._from_p(2.0 * Fb * g - Fb * Fb) + 2.0 * self._pair(y, g, per_column=True)
        dvar = self._from_p(Fb * Fb)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = sig2 / var
            grad = (dsig - tau[:, None] * dvar) / var[:, None]
        return self._out(tau, grad, single, fields)

    def _noise_exact(self, F) -> tuple[float, np.ndarray]:
        """sum_k sigma^2_k and its gradient (one summed pass)."""
        Fb, g, y, _, sig2 = self._sigma2_parts(F)
        grad = self._from_p(2.0 * Fb * g - Fb * Fb).sum(axis=0) + 2.0 * self._pair(
            y, g, per_column=False
        )
        return float(sig2.sum()), grad

    # -- the K-mode predictor --------------------------------------------------------------------
    def _kept(self, s: str, K: int, gap_tol: float):
        """Sector s's decomposition and the number d of kept (slow) modes, after checking that the
        truncation boundary is a gap."""
        dec = self._decomposition(s, K)
        if not dec.complete:
            raise NotImplementedError("the predictor's derivative needs a dense spectrum")
        dim = len(dec.lam)
        K = min(int(K), dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _modes.DegenerateEigenvalueWarning)
            sub = _modes.slow_subspace(dec, K, label=f"{s} sector: ")
        d = sub.d
        mods = np.abs(dec.lam)
        label = f"{s} sector" if s != "all" else "the spectrum"
        if d != K and not _one_conjugate_pair(dec.lam, K, d):
            rt, at = _modes._tolerances(dec.reversible, _modes.DEGENERATE_RTOL)
            bounds = _modes.cluster_bounds(dec.lam, rt, at)
            lower = int(bounds[np.searchsorted(bounds, K, side="right") - 1])
            raise NotDifferentiableError(
                f"K = {K} splits a cluster of (near-)degenerate eigenvalues in {label} "
                f"(|lambda| = {mods[K - 1]:.10g} and {mods[K]:.10g}; the predictor keeps the whole "
                f"cluster, {d} modes): a perturbation that splits the cluster moves part of it "
                f"out of the kept set, so the predictor jumps and has no derivative; choose K at a "
                f"cluster boundary ({lower} or {d})"
            )
        if d and np.min(np.abs(1.0 - dec.lam[:d])) < NO_MIXING_TOL:
            lam1 = dec.lam[np.argmin(np.abs(1.0 - dec.lam[:d]))]
            raise NotDifferentiableError(
                f"{label} has the eigenvalue {lam1:.16g}, 1 within rounding: the chain does not "
                f"mix in double precision (tau_int is infinite), so the predictor has no finite "
                f"value or derivative"
            )
        if d < dim and mods[d - 1] - mods[d] <= gap_tol * mods[d - 1]:
            raise NotDifferentiableError(
                f"the truncation after K = {K} modes in {label} falls between |lambda| = "
                f"{mods[d - 1]:.12g} and {mods[d]:.12g}, closer than gap_tol = {gap_tol:g} "
                f"(relative): near-degenerate eigenvalues are split, so the predictor is not "
                f"differentiable there (its derivative would scale like 1 / gap); choose K at a gap"
            )
        return dec, d

    def _decomposition(self, s: str, K: int) -> _modes.Decomposition:
        """The sector's spectral decomposition: ExactChain's, except that a reversible sector is
        diagonalised with numpy's ``eigh`` (LAPACK syevd through numpy), which on the
        rank-deficient sweep kernels here (hundreds of eigenvalues at 0) is up to 50x faster
        than the scipy driver ExactChain uses; eigenvalues agree to rounding."""
        ch = self.chain
        if not ch.reversible or ch._sector(s)["A"] is None:
            return ch._decomposition(s, K)
        if s not in self._dec:
            A = ch._dense(s)
            lam, U = np.linalg.eigh(0.5 * (A + A.T))
            order = np.argsort(-np.abs(lam), kind="stable")
            self._dec[s] = _modes.Decomposition(lam[order], U[:, order], None)
        return self._dec[s]

    def _schur_parts(self, dec, d: int):
        """(T, V, Vinv): ordered Schur form, kept block first, block-diagonalised by
        V = Q [[I, X], [0, I]] (T11 X - X T22 = -T12)."""
        dim = len(dec.lam)
        mods = np.abs(dec.lam)
        if dec.reversible:
            Q = dec.vectors.astype(np.complex128)
            T = np.diag(dec.lam.astype(np.complex128))
            X = np.zeros((d, dim - d), complex)
        else:
            T0, Q0 = dec.schur
            thr = -np.inf if d == dim else 0.5 * (mods[d - 1] + mods[d])
            T, Q, m = _modes._reorder(T0, Q0, np.abs(np.diag(T0)) > thr)
            if m != d:
                raise np.linalg.LinAlgError(f"Schur reordering selected {m} eigenvalues, not {d}")
            X = _sylvester(T[:d, :d], T[d:, d:], -T[:d, d:])
        V = Q.copy()
        V[:, d:] = Q[:, :d] @ X + Q[:, d:]
        Vinv = Q.conj().T.copy()
        Vinv[:d] = Q[:, :d].conj().T - X @ Q[:, d:].conj().T
        return T, V, Vinv

    def _predictor_sector(self, s: str, us: np.ndarray, K: int, gap_tol: float, summed: bool):
        """Value(s) of <u, h1(A') Pi u> in sector s, the matrix G (or one per observable) with
        d value = <G, dA'_s>_F, and d value / d u."""
        dec, d = self._kept(s, K, gap_tol)
        weights = [us @ us.T] if summed else [np.outer(u, u) for u in us.T]
        if dec.reversible and not self._force_schur:
            return self._predictor_symmetric(dec, d, us, weights)
        A = self.chain._dense(s)
        dim = A.shape[0]
        T, V, Vinv = self._schur_parts(dec, d)
        T11, T22 = T[:d, :d], T[d:, d:]
        h11 = _h1(T11)
        h22 = _h1(T22)
        inv11 = sla.solve_triangular(np.eye(d) - T11, np.eye(d)) if d else np.zeros((0, 0))
        H = np.real(V[:, :d] @ h11 @ Vinv[:d])
        lu = sla.lu_factor(np.eye(dim) - A)
        values, Gs = [], []
        for W in weights:
            values.append(float(np.sum(W * H)))
            # 2 R dA R Pi:  G1 = 2 (R Pi W^T R)^T,  R Pi = V1 (I - T11)^{-1} L1
            WtR = sla.lu_solve(lu, W, trans=1).T
            G = 2.0 * np.real(V[:, :d] @ (inv11 @ (Vinv[:d] @ WtR))).T
            if d < dim:
                B = Vinv @ (W.T @ V)
                om12 = B[:d, d:] @ h22
                om21 = B[d:, :d] @ h11
                Xa = _sylvester(T22, T11, -om21)  # = Y1^T
                Xb = _sylvester(T11, T22, -om12)  # = Y2^T
                G += np.real(Vinv[:d].T @ Xa.T @ V[:, d:].T - Vinv[d:].T @ Xb.T @ V[:, :d].T)
            Gs.append(G)
        dU = (H + H.T) @ us
        return np.array(values), Gs, dU

    @staticmethod
    def _predictor_symmetric(dec, d: int, us: np.ndarray, weights: list):
        """The reversible case in the orthonormal eigenbasis A' = U diag(lam) U^T: with
        h(lam) = h1(lam) on the kept modes and 0 on the rest, d <W, h(A')> = <U (Gamma o U^T W U)
        U^T, dA'> (Daleckii-Krein), Gamma the divided differences of h. Inside the kept block
        they are 2 / ((1 - lam_i)(1 - lam_j)) in closed form, so degenerate eigenvalues on either
        side never meet a division; across the boundary they divide by lam_i - lam_j, bounded
        by the gap."""
        lam, U = dec.lam, dec.vectors
        dim = len(lam)
        kept = np.arange(dim) < d
        h = np.where(kept, 2.0 * lam / (1.0 - lam), 0.0)
        r = 1.0 / (1.0 - lam)
        gamma = np.zeros((dim, dim))
        gamma[:d, :d] = 2.0 * np.outer(r[:d], r[:d])
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (h[:d, None] - h[None, d:]) / (lam[:d, None] - lam[None, d:])
        gamma[:d, d:] = cross
        gamma[d:, :d] = cross.T
        H = (U * h) @ U.T
        values, Gs = [], []
        for W in weights:
            Wt = U.T @ W @ U
            values.append(float(np.sum(h * np.diag(Wt))))
            Gs.append(U @ (gamma * Wt) @ U.T)
        return np.array(values), Gs, 2.0 * H @ us

    def _predictor(self, F, K: int, gap_tol: float, summed: bool, fields: bool):
        """Per observable (or summed): sigma^2_K and its gradient."""
        ch = self.chain
        if fields and ch.flip_symmetric:
            raise NotDifferentiableError(
                "the model is flip-symmetric (h = 0): the predictor keeps K modes per symmetry "
                "sector, and any field mixes the sectors, so it is not continuous in h here; ask "
                "for wrt='J' (derivatives in J keep the symmetry)"
            )
        Fb, U = self._centre(F)
        var = (U * U).sum(axis=0)
        m = U.shape[1]
        nval = 1 if summed else m
        value = np.full(nval, float(var.sum())) if summed else var.copy()
        Gfull = [np.zeros((self.N, self.N)) for _ in range(nval)]
        dU = np.zeros_like(U)
        for s in ch.sectors:
            us = ch._coords(U, s)
            sector_var = np.sum(us * us, axis=0)
            if not np.any(sector_var > 1e-28 * np.maximum(var, 1e-300)):
                continue  # no component here (as in ExactChain.mode_expansion)
            vals, Gs, dUs = self._predictor_sector(s, us, K, gap_tol, summed)
            value += vals
            for k, G in enumerate(Gs):
                Gfull[k] += ch._from_coords(ch._from_coords(G, s).T, s).T
            dU += ch._from_coords(dUs, s)
        grads = [self._grad_from_A(G) for G in Gfull]
        # u_k = sqrt(p) o f~_k: d u_k = dlogp u_k / 2 - sqrt(p) d<f_k>
        coef_u = 0.5 * dU * U  # (N, m): multiplies dlogp
        along = (dU * self._sqrtp[:, None]).sum(axis=0)  # a_k . sqrt(p)
        gu = self._from_logp(coef_u).T - along[:, None] * self._from_p(Fb)  # (m, P)
        dvar = self._from_p(Fb * Fb)  # (m, P)
        if summed:
            grad = (grads[0] + gu.sum(axis=0) + dvar.sum(axis=0))[None]
        else:
            grad = np.stack(grads) + gu + dvar
        return value, grad

    def _grad_from_A(self, G: np.ndarray) -> np.ndarray:
        """Gradient of a function of A' = D^{1/2} P D^{-1/2} - sqrt(p) sqrt(p)^T whose derivative
        is <G, dA'>_F."""
        A0 = self.chain._A
        r = self._sqrtp
        GA = A0.multiply(G).toarray() if sp.issparse(A0) else G * A0
        sym = (G + G.T) @ r
        v = 0.5 * GA.sum(axis=1) - 0.5 * GA.sum(axis=0) - 0.5 * r * sym
        with np.errstate(over="ignore", invalid="ignore"):
            Gt = G * r[:, None] / r[None, :]  # <G, D^1/2 dP D^-1/2> = <Gt, dP>
        return self._from_logp(v) + self._pair(np.eye(self.N), Gt.T, per_column=False)

    def predicted_variance(
        self, f, K: int = 10, *, wrt="all", gap_tol: float = GAP_TOL
    ) -> Gradient:
        """sigma^2_K(f) = Var_p(f) tau_K(f), the K-mode predictor's asymptotic variance, and its
        gradient (``ExactChain.predict_tau(f, K) * Var_p(f)``).

        Raises
        ------
        NotDifferentiableError
            K falls inside a (near-)degenerate cluster, or ``wrt`` includes the fields at a
            flip-symmetric model (see the module docstring).
        """
        fields = _wrt(wrt)
        F, single = self._obs(f)
        value, grad = self._predictor(F, K, gap_tol, summed=False, fields=fields)
        return self._out(value, grad, single, fields)

    def predicted_tau(self, f, K: int = 10, *, wrt="all", gap_tol: float = GAP_TOL) -> Gradient:
        """tau_K(f), the K-mode predictor of tau_int (``ExactChain.predict_tau``), and its
        gradient."""
        fields = _wrt(wrt)
        F, single = self._obs(f)
        value, grad = self._predictor(F, K, gap_tol, summed=False, fields=fields)
        Fb, U = self._centre(F)
        var = (U * U).sum(axis=0)
        dvar = self._from_p(Fb * Fb)
        tau = value / var
        return self._out(tau, (grad - tau[:, None] * dvar) / var[:, None], single, fields)

    # -- Q ---------------------------------------------------------------------------------------
    def q(
        self,
        data,
        M: int,
        *,
        pairs=None,
        fields: bool = False,
        K: int | None = None,
        wrt="all",
        gap_tol: float = GAP_TOL,
    ) -> Gradient:
        """Large-M Q(M) = M ||g||^2 / sum_k sigma^2_k and its gradient.

        Parameters
        ----------
        data : array_like
            Data spins (N_D, n), or the target moments (m,) in gradient order.
        M : int
            Steps of the kernel averaged per gradient estimate.
        pairs : array_like, optional
            Gradient pairs (default: the model's edges); ``fields`` adds the s_i components.
        K : int, optional
            None: exact sigma^2 (resolvent). An int: the K-mode predictor's sigma^2_K.
        """
        with_h = _wrt(wrt)
        M = int(M)
        if M < 1:
            raise ValueError(f"M must be >= 1, not {M}")
        pairs = pair_list(self.couplings if pairs is None else pairs, n=self.n)
        F = gradient_observables(self.chain.states, pairs, fields)
        target = _target(data, pairs, fields, self.n, F.shape[1])
        p = self.chain.p
        gvec = target - p @ F
        Fb = F - p @ F
        norm2 = float(gvec @ gvec)
        dnorm2 = -2.0 * self._from_p(Fb @ gvec[:, None])[0]
        if K is None:
            noise, dnoise = self._noise_exact(F)
        else:
            val, grad = self._predictor(F, K, gap_tol, summed=True, fields=with_h)
            noise, dnoise = float(val[0]), grad[0]
        q = M * norm2 / noise
        grad = q * (dnorm2 / norm2 - dnoise / noise)
        return self._out(np.array([q]), grad[None], True, with_h)


def _one_conjugate_pair(lam: np.ndarray, K: int, d: int) -> bool:
    """K was raised to d only to keep a complex-conjugate pair together (a real kernel keeps
    conjugates together under any real perturbation, so that cut does not move)."""
    if d != K + 1:
        return False
    a, b = lam[K - 1], lam[K]
    scale = max(abs(a), 1e-300)
    return abs(a.imag) > 1e-7 * scale and abs(b - np.conj(a)) <= 1e-7 * scale


def _h1(T: np.ndarray) -> np.ndarray:
    """2 T (I - T)^{-1} for a triangular T."""
    d = T.shape[0]
    if d == 0:
        return T.copy()
    return 2.0 * sla.solve_triangular(np.eye(d) - T, T)


def _sylvester(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    """X with A X - X B = C for upper-triangular complex A, B (LAPACK trsyl)."""
    if A.shape[0] == 0 or B.shape[0] == 0:
        return np.zeros((A.shape[0], B.shape[0]), complex)
    X, scale, info = ztrsyl(
        np.asarray(A, complex), np.asarray(B, complex), np.asarray(C, complex), isgn=-1
    )
    if info < 0:
        raise np.linalg.LinAlgError(f"Sylvester solve failed (LAPACK ztrsyl info={info})")
    return X / scale


def _target(data, pairs, fields, n, m) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim == 1:
        if data.shape != (m,):
            raise ValueError(f"target moments must have length {m}, not {data.shape[0]}")
        return data.astype(np.float64)
    if data.ndim != 2 or data.shape[1] != n:
        raise ValueError(f"data must be (N_D, {n}) spins or ({m},) moments, not {data.shape}")
    return data_moments(data, pairs, fields)
