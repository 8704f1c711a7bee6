"""Statistical tools of :mod:`pbitsim.diagnostics.compare`: Holm's correction, the histogram
G-test, the MMD permutation test and the effective-beta fit (maximum likelihood by exact
enumeration, or pseudo-likelihood). See ``docs/diagnostics.md``, "Comparing two sample sets".
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.autocorr import AutocorrWarning, estimate_tau
from pbitsim.exact import all_states

__all__ = [
    "MIN_EXPECTED",
    "EXACT_MAX_N",
    "holm",
    "two_sided_p",
    "g_test",
    "mmd_test",
    "effective_beta",
    "energy_levels",
    "beta_for_mean_energy",
]

#: Minimum expected count of a histogram bin of the G-test (rarer states are pooled).
MIN_EXPECTED = 5.0
#: Largest model whose energy levels are enumerated for the beta MLE.
EXACT_MAX_N = 16
#: Float64 values handled at a time by the pseudo-likelihood passes.
_BLOCK_VALUES = 1 << 23


def holm(pvalues, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down procedure.

    Returns
    -------
    (reject, adjusted) : (np.ndarray of bool, np.ndarray)
        ``adjusted[k] = max_{j <= rank(k)} min(1, (K - j) p_(j))`` (0-based ranks); reject where
        ``adjusted <= alpha``. Controls the family-wise error rate at alpha under any dependence.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    K = p.size
    if K == 0:
        return np.zeros(0, bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((K - np.arange(K)) * p[order]))
    adj = np.empty(K)
    adj[order] = adj_sorted
    return adj <= alpha, adj


def two_sided_p(z, dof=None) -> np.ndarray:
    """Two-sided p-values of z-scores: Student t with ``dof`` degrees of freedom (the error bar
    is itself estimated), or standard normal where ``dof`` is None or infinite."""
    from scipy.stats import t

    z = np.abs(np.asarray(z, dtype=np.float64))
    if dof is None:
        dof = np.inf
    return 2.0 * t.sf(z, np.asarray(dof, dtype=np.float64))


def _pool_bins(key: np.ndarray, expected_small: np.ndarray, min_expected: float) -> np.ndarray:
    """Bin id of each cell: cells sorted by ``key`` (descending) are grouped greedily until the
    group's smallest expected count reaches ``min_expected``; a short tail joins the last group."""
    order = np.argsort(-key, kind="stable")
    bins = np.empty(len(key), dtype=np.int64)
    b, acc = 0, 0.0
    for pos, cell in enumerate(order):
        bins[cell] = b
        acc += expected_small[cell]
        if acc >= min_expected and pos < len(order) - 1:
            b, acc = b + 1, 0.0
    if acc < min_expected and b > 0:  # the tail is too small on its own
        bins[bins == b] = b - 1
    return bins


def g_test(
    counts_a: np.ndarray, counts_b: np.ndarray | None = None, p_ref: np.ndarray | None = None
) -> tuple[float, int, int, float]:
    """Histogram G-test, two-sample (``counts_b``) or goodness of fit (``p_ref``).

    Cells (states) are pooled so that every bin expects at least :data:`MIN_EXPECTED` counts
    (per side for two samples; pooling depends only on the pooled counts or on p_ref, never on
    the labels), then G = 2 sum O ln(O / E) is referred to chi^2 with bins - 1 degrees of
    freedom. A draw in a state of exact probability 0 gives G = inf.

    Returns
    -------
    (G, dof, bins, p_value)
    """
    from scipy.stats import chi2

    ca = np.asarray(counts_a, dtype=np.float64)
    Na = ca.sum()
    if counts_b is not None:
        cb = np.asarray(counts_b, dtype=np.float64)
        Nb = cb.sum()
        pooled = ca + cb
        seen = pooled > 0
        pooled, ca, cb = pooled[seen], ca[seen], cb[seen]
        frac = min(Na, Nb) / (Na + Nb)
        bins = _pool_bins(pooled, pooled * frac, MIN_EXPECTED)
        k = int(bins.max()) + 1 if bins.size else 0
        oa = np.bincount(bins, ca, k)
        ob = np.bincount(bins, cb, k)
        tot = oa + ob
        ea, eb = tot * Na / (Na + Nb), tot * Nb / (Na + Nb)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = 2.0 * (
                np.sum(np.where(oa > 0, oa * np.log(oa / ea), 0.0))
                + np.sum(np.where(ob > 0, ob * np.log(ob / eb), 0.0))
            )
            # Williams' correction for a 2 x k table (G is liberal for small counts)
            Nt = Na + Nb
            williams = 1.0 + (Nt * (1 / Na + 1 / Nb) - 1) * (Nt * np.sum(1.0 / tot) - 1) / (
                6.0 * Nt * max(k - 1, 1)
            )
    else:
        p = np.asarray(p_ref, dtype=np.float64)
        if np.any((p <= 0) & (ca > 0)):
            return math.inf, 0, 0, 0.0
        live = p > 0
        p, ca = p[live], ca[live]
        bins = _pool_bins(p, Na * p, MIN_EXPECTED)
        k = int(bins.max()) + 1 if bins.size else 0
        oa = np.bincount(bins, ca, k)
        ea = Na * np.bincount(bins, p, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = 2.0 * np.sum(np.where(oa > 0, oa * np.log(oa / ea), 0.0))
        williams = 1.0 + (k + 1) / (6.0 * Na)  # Williams' correction, goodness of fit
    dof = k - 1
    if dof < 1:
        return 0.0, 0, k, 1.0
    g = max(float(g), 0.0) / williams
    return g, dof, k, float(chi2.sf(g, dof))


def mmd_test(
    x: np.ndarray, y: np.ndarray, permutations: int = 500, rng=None
) -> tuple[float, float, float]:
    """Two-sample permutation test with the MMD of the kernel k(s, t) = exp(-d_H(s, t) / l).

    d_H is the Hamming distance, l the median pooled distance (the median heuristic). The
    statistic is the biased MMD^2 = w^T K w (w = 1/N_a on x, -1/N_b on y); its permutation
    distribution reuses K, so P permutations cost one (P x N) @ (N x N) product.

    Returns
    -------
    (mmd2, p_value, bandwidth)
    """
    rng = np.random.default_rng(rng)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    na, nb = len(x), len(y)
    z = np.concatenate([x, y])
    n = z.shape[1]
    d = 0.5 * (n - z @ z.T)
    iu = np.triu_indices(len(z), 1)
    scale = float(np.median(d[iu])) if len(iu[0]) else 1.0
    scale = scale if scale > 0 else 1.0
    K = np.exp(-d / scale)
    w = np.concatenate([np.full(na, 1.0 / na), np.full(nb, -1.0 / nb)])
    stat = float(w @ K @ w)
    W = rng.permuted(np.tile(w, (int(permutations), 1)), axis=1)  # one permutation a row
    perm = np.einsum("pi,pi->p", W, W @ K)  # K is symmetric: row p is w_p^T K w_p
    p = (1.0 + np.sum(perm >= stat * (1 - 1e-12))) / (1.0 + len(perm))
    return stat, float(p), scale


def energy_levels(model: Couplings) -> tuple[np.ndarray, np.ndarray]:
    """Distinct energies of the 2**n states and how many states have each."""
    e = model.energy(all_states(model.n))
    levels, counts = np.unique(np.round(e, 10), return_counts=True)
    return levels, counts.astype(np.float64)


def _energy_moments(levels, counts, beta) -> tuple[float, float]:
    logw = np.log(counts) - beta * levels
    logw -= logw.max()
    w = np.exp(logw)
    w /= w.sum()
    mean = float(w @ levels)
    return mean, float(w @ (levels - mean) ** 2)


def beta_for_mean_energy(levels, counts, target: float, beta0: float) -> float:
    """The beta with <E>_beta = target (<E> decreases with beta); +-inf outside the range."""
    from scipy.optimize import brentq

    lo_e, hi_e = float(levels[0]), float(levels[-1])
    span = max(hi_e - lo_e, 1e-300)
    if target <= lo_e + 1e-12 * span:
        return math.inf
    if target >= hi_e - 1e-12 * span:
        return -math.inf

    def g(b):
        return _energy_moments(levels, counts, b)[0] - target

    lo, hi = -max(1.0, 2 * abs(beta0)), max(1.0, 2 * abs(beta0))
    while g(hi) > 0 and hi < 1e8:
        hi *= 2
    while g(lo) < 0 and lo > -1e8:
        lo *= 2
    return float(brentq(g, lo, hi, xtol=1e-14, rtol=1e-12))


def _tau_of(series) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutocorrWarning)
        t = float(estimate_tau(series, quiet=True).tau)
    return t if np.isfinite(t) and t > 0 else 1.0


def effective_beta(
    spins, model: Couplings, *, method: str = "auto", energies_=None
) -> tuple[float, float, str]:
    """The beta that best explains the spins under the model's couplings, with an error bar.

    ``"mle"`` (auto for n <= 16): the maximum-likelihood beta of p_beta ∝ exp(-beta E), i.e. the
    beta whose exact <E>_beta equals the sample mean energy; error sqrt(Var(E) tau_E / N) /
    Var_beta(E) (the delta method). ``"pseudo-likelihood"``: maximises
    sum_draws sum_i log P_beta(s_i | rest) (Newton's method; works for any n); error from the
    sandwich formula with the per-draw score's tau_int.

    Parameters
    ----------
    spins : array_like
        (R, T, n) +-1 draws (R independent chains).
    model : Couplings
    method : {"auto", "mle", "pseudo-likelihood"}
    energies_ : array_like, optional
        E of each draw, (R, T), if already computed.

    Returns
    -------
    (beta, error, method)
    """
    s = np.asarray(spins)
    if s.ndim != 3 or s.shape[-1] != model.n:
        raise ValueError(f"spins must have shape (R, T, {model.n}), not {s.shape}")
    if method == "auto":
        method = "mle" if model.n <= EXACT_MAX_N else "pseudo-likelihood"
    N = s.shape[0] * s.shape[1]
    if method == "mle":
        if model.n > EXACT_MAX_N:
            raise ValueError(f"the exact beta MLE needs n <= {EXACT_MAX_N}")
        e = (
            np.asarray(energies_, dtype=np.float64)
            if energies_ is not None
            else model.energy(s.reshape(-1, model.n)).reshape(s.shape[:2])
        )
        levels, counts = energy_levels(model)
        beta = beta_for_mean_energy(levels, counts, float(e.mean()), model.beta)
        if not np.isfinite(beta):
            return beta, math.inf, method
        var_beta = _energy_moments(levels, counts, beta)[1]
        se_mean = math.sqrt(float(e.var()) * _tau_of(e) / N)
        return beta, (se_mean / var_beta if var_beta > 0 else math.inf), method
    if method != "pseudo-likelihood":
        raise ValueError(f"method must be 'auto', 'mle' or 'pseudo-likelihood', not {method!r}")
    return (*_pseudo_likelihood_beta(s, model), method)


def _pseudo_likelihood_beta(s: np.ndarray, model: Couplings) -> tuple[float, float]:
    R, T, n = s.shape
    chunk = max(1, _BLOCK_VALUES // max(1, n * T))

    def passes(beta, per_draw=False):
        score, hess = 0.0, 0.0
        u = np.empty((R, T)) if per_draw else None
        for r0 in range(0, R, chunk):
            x = np.asarray(s[r0 : r0 + chunk], dtype=np.float64)
            f = model.local_fields(x)
            t = np.tanh(beta * f)
            ud = np.sum(f * (x - t), axis=-1)
            score += float(ud.sum())
            hess -= float(np.sum(f**2 * (1.0 - t**2)))
            if per_draw:
                u[r0 : r0 + chunk] = ud
        return score, hess, u

    beta = float(model.beta)
    for _ in range(100):
        score, hess, _u = passes(beta)
        if hess >= 0:
            break
        step = -score / hess
        beta += step
        if abs(step) < 1e-12 * (1.0 + abs(beta)):
            break
    score, hess, u = passes(beta, per_draw=True)
    if hess >= 0:
        return beta, math.inf
    var_sum = float(u.var()) * _tau_of(u) * R * T
    return beta, math.sqrt(var_sum) / abs(hess)
