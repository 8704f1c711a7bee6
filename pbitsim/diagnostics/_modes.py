"""Linear algebra behind the mode expansion: invariant subspaces of the slowest eigenvalue clusters.

Works on the deflated matrix A' = D^{1/2} P D^{-1/2} - sqrt(p) sqrt(p)^T (D = diag p) of one
symmetry sector (the stationary eigenvalue 1 moved to 0). For a centred observable u (in the
A-picture, u = sqrt(p) (f - E f)) and a set S of eigenvalue clusters with spectral projector Pi_S
(commuting with A'):

    weight_S = <u, Pi_S u>,     tau_term_S = <u, (I + A')(I - A')^{-1} Pi_S u>,

so that Var(f) = sum over all clusters of weight_S and tau_int Var(f) = sum of tau_term_S. For a
reversible kernel A' is symmetric and Pi_S = U_S U_S^T (orthonormal eigenvectors): weight_S is
sum c_k^2 and tau_term_S is sum c_k^2 (1 + lambda_k) / (1 - lambda_k). For a non-reversible kernel
(sweeps), individual eigenvectors may be ill-conditioned or missing (Jordan blocks), so we never
use them: an ordered complex Schur form A' = Q T Q^H is reordered (LAPACK trsen) so the selected
clusters come first, and the Sylvester equation T11 X - X T22 = -T12 (LAPACK trsyl) gives the
spectral projector Pi_S = Q1 (Q1^H - X Q2^H) = Q1 L1. Then (I + A')(I - A')^{-1} Pi_S = Q1 G L1
with G = (I + T11)(I - T11)^{-1}, exact even for a defective T11. Degenerate clusters are never
split: a cut is only placed between eigenvalue moduli that differ by more than the tolerance, and
a cut whose Sylvester solution is too large (an ill-conditioned projector) is removed, merging the
clusters on both sides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.linalg.lapack import ztrsen, ztrsyl

__all__ = ["DegenerateEigenvalueWarning", "Decomposition", "SlowSubspace"]

#: Eigenvalues closer than this (relative to their modulus) are treated as one degenerate cluster.
DEGENERATE_RTOL = 1e-10
#: Non-reversible (non-normal) kernels: rounding splits a double eigenvalue by ~sqrt(eps).
NONNORMAL_RTOL = 1e-7
#: Absolute tolerance for eigenvalues near 0 (rounding of a norm-1 matrix).
ABS_TOL = 1e-13
#: A projector whose Sylvester solution is larger than this is too ill-conditioned to trust.
MAX_SYLVESTER_NORM = 1e6


class DegenerateEigenvalueWarning(UserWarning):
    """Degenerate or ill-separated eigenvalues: per-mode results refer to a whole cluster."""


@dataclass
class Decomposition:
    """Full spectral data of one sector's deflated matrix (dense).

    ``lam`` sorted by modulus, descending. Reversible: ``vectors`` orthonormal eigenvectors in that
    order, ``schur`` None. Non-reversible: ``schur`` = (T, Q) complex Schur form (unordered).
    """

    lam: np.ndarray
    vectors: np.ndarray | None
    schur: tuple[np.ndarray, np.ndarray] | None
    complete: bool = True  # False when only the slowest few were computed (iterative solver)

    @property
    def reversible(self) -> bool:
        return self.schur is None


def decompose(A: np.ndarray, reversible: bool) -> Decomposition:
    """Eigen- (reversible) or Schur (non-reversible) decomposition of a dense sector matrix."""
    if reversible:
        lam, U = sla.eigh(0.5 * (A + A.T))
        order = np.argsort(-np.abs(lam), kind="stable")
        return Decomposition(lam[order], U[:, order], None)
    T, Q = sla.schur(np.asarray(A, dtype=np.complex128), output="complex")
    lam = np.diag(T)
    return Decomposition(lam[np.argsort(-np.abs(lam), kind="stable")], None, (T, Q))


def _tolerances(reversible: bool, rtol: float) -> tuple[float, float]:
    """(relative, absolute) tolerance under which eigenvalues count as one cluster.

    A non-normal matrix (a sweep kernel) splits a double eigenvalue by up to ~sqrt(eps) under
    rounding, so coinciding eigenvalues are only recognised with a looser relative tolerance. The
    absolute part covers eigenvalues at 0 (rounding of a norm-1 matrix).
    """
    return (rtol if reversible else max(rtol, NONNORMAL_RTOL)), ABS_TOL


def cluster_bounds(lam: np.ndarray, rtol: float = DEGENERATE_RTOL, atol: float = ABS_TOL):
    """Start indices of modulus clusters in ``lam`` (sorted by modulus), plus len(lam) at the end.

    Consecutive moduli closer than rtol * modulus + atol share a cluster (complex-conjugate pairs
    always do, having equal moduli).
    """
    mods = np.abs(lam)
    gaps = mods[:-1] - mods[1:]
    cut = gaps > rtol * mods[:-1] + atol
    return np.concatenate([[0], np.flatnonzero(cut) + 1, [len(lam)]])


def is_degenerate(vals: np.ndarray, rtol: float = DEGENERATE_RTOL, atol: float = ABS_TOL):
    """Whether two of ``vals`` coincide in the complex plane (not just in modulus)."""
    if len(vals) < 2:
        return False
    d = np.abs(vals[:, None] - vals[None, :])
    scale = np.maximum(np.abs(vals)[:, None], np.abs(vals)[None, :])
    np.fill_diagonal(d, np.inf)
    return bool(np.any(d <= rtol * scale + atol))


def _reorder(T, Q, select):
    ts, qs, _, m, _, _, info = ztrsen(np.asarray(select, dtype=np.int32), T, Q, job="N")
    if info != 0:
        raise np.linalg.LinAlgError(f"Schur reordering failed (LAPACK ztrsen info={info})")
    return ts, qs, int(m)


def _split_projector(T, Q, d):
    """(Q1, L1, |X|max) for the leading d x d block of an ordered Schur form (T, Q); the spectral
    projector onto the leading invariant subspace is Q1 @ L1."""
    Q1 = Q[:, :d]
    if d == T.shape[0]:
        return Q1, Q1.conj().T, 0.0
    X, scale, info = ztrsyl(T[:d, :d], T[d:, d:], -T[:d, d:], isgn=-1)
    if info < 0:
        raise np.linalg.LinAlgError(f"Sylvester solve failed (LAPACK ztrsyl info={info})")
    X = X / scale
    norm = float(np.abs(X).max()) if X.size else 0.0
    return Q1, Q1.conj().T - X @ Q[:, d:].conj().T, norm


def _leading_projector(T, Q, mods_sorted, d):
    """Projector data for the d slowest (by modulus) eigenvalues of the Schur form (T, Q)."""
    n = T.shape[0]
    thr = -np.inf if d == n else 0.5 * (mods_sorted[d - 1] + mods_sorted[d])
    ts, qs, m = _reorder(T, Q, np.abs(np.diag(T)) > thr)
    if m != d:
        raise np.linalg.LinAlgError(f"Schur reordering selected {m} eigenvalues, expected {d}")
    return ts, qs, _split_projector(ts, qs, d)


@dataclass
class SlowSubspace:
    """The invariant subspace of the slowest clusters of one sector.

    Attributes
    ----------
    lam : np.ndarray
        Its eigenvalues, by modulus descending, grouped into clusters by ``bounds``.
    basis : np.ndarray
        N x d (Q1: orthonormal basis of the subspace; eigenvectors when reversible).
    left : np.ndarray
        d x N (L1) with spectral projector basis @ left.
    T : np.ndarray
        d x d restriction of A' in that basis (triangular; diagonal when reversible).
    bounds : np.ndarray
        Cluster start indices into lam (+ d at the end).
    projectors : list of np.ndarray
        d x d spectral projector of each cluster within the subspace (they sum to I).
    degenerate : list of bool
        Per cluster: coinciding eigenvalues, or clusters merged because the projector between
        them was too ill-conditioned.
    """

    lam: np.ndarray
    basis: np.ndarray
    left: np.ndarray
    T: np.ndarray
    bounds: np.ndarray
    projectors: list
    degenerate: list

    @property
    def d(self) -> int:
        return self.basis.shape[1]


def _warn_merge(label, a, b, xnorm):
    warnings.warn(
        f"{label}eigenvalues |lambda| = {a:.8g} and {b:.8g} are too close for a "
        f"well-conditioned spectral projector between them (Sylvester norm {xnorm:.3g}; a "
        f"near-defective pair?); treating them as one cluster",
        DegenerateEigenvalueWarning,
        stacklevel=4,
    )


def slow_subspace(
    dec: Decomposition, K: int, rtol: float = DEGENERATE_RTOL, label: str = ""
) -> SlowSubspace:
    """The invariant subspace of at least the K slowest modes, never splitting a cluster."""
    lam = dec.lam
    n = len(lam)
    K = max(0, min(int(K), n))
    rt, at = _tolerances(dec.reversible, rtol)
    bounds = cluster_bounds(lam, rt, at)
    if not dec.complete:
        # Only the slowest few were computed: the last one may sit inside a cluster.
        bounds = bounds[:-1]
        if bounds[-1] < K:
            warnings.warn(
                f"{label}no cluster boundary among the {n} computed slowest eigenvalues at or "
                f"after mode {K}; using all {n} (the last cluster may be incomplete)",
                DegenerateEigenvalueWarning,
                stacklevel=3,
            )
            bounds = np.append(bounds, n)
    mods = np.abs(lam)
    merged = set()  # cluster starts that absorbed a following cluster
    if dec.reversible:
        d = int(bounds[np.searchsorted(bounds, K)])  # first cluster boundary >= K
        basis = dec.vectors[:, :d]
        bounds = bounds[bounds <= d]
        projectors = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            m = np.zeros(d)
            m[a:b] = 1.0
            projectors.append(np.diag(m))
        sub = SlowSubspace(lam[:d], basis, basis.T, np.diag(lam[:d]), bounds, projectors, [])
    else:
        T, Q = dec.schur
        while True:
            d = int(bounds[np.searchsorted(bounds, K)])
            ts, qs, (q1, l1, xnorm) = _leading_projector(T, Q, mods, d)
            if np.isfinite(xnorm) and xnorm <= MAX_SYLVESTER_NORM:
                break
            # The cut separates eigenvalues too close for a stable projector: merge and retry.
            _warn_merge(label, mods[d - 1], mods[d], xnorm)
            merged.add(int(bounds[np.searchsorted(bounds, d) - 1]))
            bounds = bounds[bounds != d]
        T11 = ts[:d, :d]
        bounds = list(bounds[bounds <= d])
        # Cumulative projectors C_b onto the clusters before each internal boundary b, from the
        # small Schur form T11; an ill-conditioned boundary is dropped (clusters merged).
        cumulative = {0: np.zeros((d, d), complex), d: np.eye(d, dtype=complex)}
        eye = np.eye(d, dtype=complex)
        for b in list(bounds[1:-1]):
            t2, q2, (p1, pl, xn) = _leading_projector(T11, eye, mods[:d], b)
            if np.isfinite(xn) and xn <= MAX_SYLVESTER_NORM:
                cumulative[b] = p1 @ pl
            else:
                _warn_merge(label, mods[b - 1], mods[b], xn)
                prev = bounds[bounds.index(b) - 1]
                merged.add(int(prev))
                bounds.remove(b)
        bounds = np.asarray(bounds)
        projectors = [cumulative[b] - cumulative[a] for a, b in zip(bounds[:-1], bounds[1:])]
        sub = SlowSubspace(lam[:d], q1, l1, T11, bounds, projectors, [])
    sub.degenerate = [
        is_degenerate(lam[a:b], rt, at) or int(a) in merged
        for a, b in zip(sub.bounds[:-1], sub.bounds[1:])
    ]
    return sub


def g_matrix(T: np.ndarray) -> np.ndarray:
    """(I + T)(I - T)^{-1} for the small restriction T (diagonal or triangular)."""
    d = T.shape[0]
    eye = np.eye(d, dtype=T.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not np.any(np.triu(T, 1)):
            t = np.diag(T)
            return np.diag((1.0 + t) / (1.0 - t))
        return sla.solve_triangular(eye - T, eye + T)
