"""Q, the squared signal-to-noise ratio of a Boltzmann-machine gradient estimate.

For a fully visible Boltzmann machine with data D, the log-likelihood gradient has components
g_ij = <s_i s_j>_D - <s_i s_j>_p for the couplings (pairs i < j; by default the model's edges) and,
with ``fields=True``, g_i = <s_i>_D - <s_i>_p for the fields. One estimate g_hat replaces the model
term by the time average over M consecutive kernel steps of a chain started in stationarity, and

    Q(M) = ||g||^2 / sum_k Var(g_hat_k).

From R independent estimates (replicas, or batches of M draws), with g_bar their mean and
S^2 = sum_k s_k^2 the summed per-component sample variance (ddof = 1),
E ||g_bar||^2 = ||g||^2 + E S^2 / R, so the bias-corrected estimate is

    Q_hat = (||g_bar||^2 - S^2 / R) / S^2,

reported with a jackknife error bar; the naive ||g_bar||^2 / S^2 is biased up by about 1 / R, which
dominates when Q << 1 / R. The jackknife leaves out one estimate at a time when the estimates are
independent (replicas), and one *group* at a time when they are not: batches of one chain are
correlated over about tau_int draws, so :func:`q_from_samples` leaves out a whole replica (or a
block of consecutive batches) and the error bar does not shrink with the batch count alone. See
``docs/diagnostics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.observables import CHUNK, pair_list, pair_products
from pbitsim.samples import Samples, check_fingerprint

__all__ = [
    "QEstimate",
    "q_from_estimates",
    "gradient_observables",
    "data_moments",
    "gradient_estimates",
    "batch_sums",
    "jackknife_groups",
    "q_from_samples",
    "exact_gradient",
    "exact_q",
    "predicted_q",
]


@dataclass(frozen=True)
class QEstimate:
    """Q from R independent gradient estimates (:func:`q_from_estimates`).

    Attributes
    ----------
    q, q_err : float
        Bias-corrected Q_hat and its jackknife standard error.
    q_naive, q_naive_err : float
        ||g_bar||^2 / S^2 (biased up by ~1/R) and its jackknife error.
    signal : float
        ||g_bar||^2 - S^2 / R, unbiased for ||g||^2.
    noise : float
        S^2, unbiased for sum_k Var(g_hat_k).
    replicas : int
        R.
    components : int
        Number of gradient components.
    steps : int or None
        M, the draws averaged per estimate (when known).
    groups : int or None
        Number of jackknife groups when estimates were left out a group at a time (None: one
        estimate at a time).
    """

    q: float
    q_err: float
    q_naive: float
    q_naive_err: float
    signal: float
    noise: float
    replicas: int
    components: int
    steps: int | None = None
    groups: int | None = None

    def __str__(self) -> str:
        return (
            f"Q = {self.q:.4g} +- {self.q_err:.2g} (naive {self.q_naive:.4g}; R = "
            f"{self.replicas}, {self.components} components"
            + (f", M = {self.steps})" if self.steps else ")")
        )


def _q_parts(g: np.ndarray) -> tuple[float, float]:
    """(corrected, naive) Q from estimates g of shape (R, m)."""
    R = g.shape[0]
    s2 = g.var(axis=0, ddof=1).sum()
    norm2 = (g.mean(axis=0) ** 2).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (norm2 - s2 / R) / s2, norm2 / s2


def q_from_estimates(estimates, steps: int | None = None, groups=None) -> QEstimate:
    """Bias-corrected Q with a jackknife error bar from gradient estimates.

    Parameters
    ----------
    estimates : array_like, shape (R, m)
        R estimates of the m gradient components (R >= 3).
    steps : int, optional
        M, recorded in the result.
    groups : array_like of int, shape (R,), optional
        Group label of each estimate: the jackknife leaves out one group at a time (>= 3
        groups). Pass it when the estimates are not independent, e.g. the replica of each batch
        of a chain; without it every estimate is taken to be independent.

    Returns
    -------
    QEstimate
    """
    g = np.asarray(estimates, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"estimates must have shape (R, m), not {g.shape}")
    R, m = g.shape
    if R < 3:
        raise ValueError(f"need at least 3 independent estimates for an error bar, got {R}")
    q, qn = _q_parts(g)
    if groups is not None:
        return _grouped(g, q, qn, steps, groups)
    # Leave-one-out means and variances in closed form (O(R m) memory), from centred estimates.
    gbar = g.mean(axis=0)
    c = g - gbar
    mean_loo = gbar - c / (R - 1)
    var_loo = ((c**2).sum(axis=0) - c**2 * R / (R - 1)) / (R - 2)
    norm2_loo = (mean_loo**2).sum(axis=1)
    s2_loo = var_loo.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ql = (norm2_loo - s2_loo / (R - 1)) / s2_loo
        qnl = norm2_loo / s2_loo

    def jack(x):
        return float(np.sqrt((R - 1) / R * np.sum((x - x.mean()) ** 2)))

    norm2 = float((g.mean(axis=0) ** 2).sum())
    s2 = float(g.var(axis=0, ddof=1).sum())
    return QEstimate(
        float(q),
        jack(ql),
        float(qn),
        jack(qnl),
        norm2 - s2 / R,
        s2,
        R,
        m,
        None if steps is None else int(steps),
    )


def _grouped(g: np.ndarray, q: float, qn: float, steps, groups) -> QEstimate:
    """Delete-a-group jackknife (groups of any sizes, >= 2 estimates left each time)."""
    R, m = g.shape
    labels = np.asarray(groups)
    if labels.shape != (R,):
        raise ValueError(f"groups must have one label per estimate ({R}), not shape {labels.shape}")
    names, inverse = np.unique(labels, return_inverse=True)
    G = len(names)
    if G < 3:
        raise ValueError(f"need at least 3 jackknife groups for an error bar, got {G}")
    loo = np.empty((G, 2))
    for j in range(G):
        rest = g[inverse != j]
        if len(rest) < 2:
            raise ValueError("every jackknife group must leave at least 2 estimates")
        loo[j] = _q_parts(rest)
    err = np.sqrt((G - 1) / G * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    s2 = float(g.var(axis=0, ddof=1).sum())
    norm2 = float((g.mean(axis=0) ** 2).sum())
    return QEstimate(
        float(q),
        float(err[0]),
        float(qn),
        float(err[1]),
        norm2 - s2 / R,
        s2,
        R,
        m,
        None if steps is None else int(steps),
        G,
    )


def jackknife_groups(replicas: int, batches: int) -> np.ndarray:
    """Group labels for the (replicas * batches) estimates of :func:`gradient_estimates`.

    Batches of one chain are correlated (over ~ tau_int draws), so they must leave the jackknife
    together: whole replicas when there are at least 4, else 8 blocks of consecutive batches per
    replica (each block spans T / 8 draws; the error bar is right when that is >> tau_int).
    With one batch per replica every estimate is its own group.
    """
    r = np.repeat(np.arange(replicas), batches)
    if batches == 1 or replicas >= 4:
        return r
    per = min(8, batches)
    return r * per + (np.tile(np.arange(batches), replicas) * per) // batches


def gradient_observables(spins, pairs, fields: bool = False) -> np.ndarray:
    """The observables whose averages enter the gradient: s_i s_j per pair, then s_i if
    ``fields``; shape (..., m)."""
    prods = pair_products(spins, pairs)
    if not fields:
        return prods
    return np.concatenate([prods, np.asarray(spins, dtype=np.float64)], axis=-1)


def data_moments(data, pairs, fields: bool = False) -> np.ndarray:
    """<s_i s_j>_D (and <s_i>_D) of a data set of spins (N_D, n), in gradient order."""
    data = np.asarray(data)
    if data.ndim != 2 or not np.all(np.abs(data) == 1):
        raise ValueError("data must be an (N_D, n) array of +-1 spins")
    return gradient_observables(data, pairs, fields).mean(axis=0)


def _target(data, pairs, fields, n) -> np.ndarray:
    data = np.asarray(data)
    m = len(pairs) + (n if fields else 0)
    if data.ndim == 1:
        if data.shape != (m,):
            raise ValueError(f"target moments must have length {m}, not {data.shape[0]}")
        return data.astype(np.float64)
    if data.shape[-1] != n:
        raise ValueError(f"data has {data.shape[-1]} spins, the samples {n}")
    return data_moments(data, pairs, fields)


def gradient_estimates(
    samples: Samples,
    data,
    *,
    pairs=None,
    fields: bool = False,
    batch: int | None = None,
    couplings: Couplings | None = None,
    allow_mismatch: bool = False,
) -> np.ndarray:
    """Independent gradient estimates, (R * batches, m).

    Parameters
    ----------
    samples : Samples
        Model samples; each replica (or each batch of ``batch`` consecutive draws of a replica)
        gives one estimate, the data term minus the time average.
    data : array_like
        Data spins (N_D, n), or the target moments (m,) in gradient order.
    pairs : array_like, optional
        (m, 2) pairs; default: the model's edges if ``couplings`` is given, else all pairs.
    fields : bool
        Include the field components g_i.
    batch : int, optional
        Draws per estimate; default: a whole replica. Batches of one chain are only nearly
        independent (correlation ~ tau / batch), so prefer batch >> tau.
    couplings : Couplings, optional
        The model; the samples' fingerprint must match it unless ``allow_mismatch``.
    """
    if couplings is not None:
        check_fingerprint(samples, couplings, allow_mismatch)
    pairs = pair_list(couplings if pairs is None and couplings is not None else pairs, n=samples.n)
    target = _target(data, pairs, fields, samples.n)
    R, T = samples.replicas, samples.draws
    b = T if batch is None else int(batch)
    if not 1 <= b <= T:
        raise ValueError(f"batch must be in 1..{T} draws, not {batch}")
    nb = T // b
    out = np.empty((R, nb, len(target)))
    for r in range(R):  # one replica at a time: spins may be a large memmap
        chain = samples.spins[r]
        sums = batch_sums(lambda a, e, x=chain: x[a:e], nb, b, pairs, fields)
        out[r] = target - sums / b
    return out.reshape(R * nb, -1)


def batch_sums(read, batches: int, size: int, pairs, fields: bool = False, chunk: int = CHUNK):
    """Sums of the gradient observables over consecutive batches of one chain, a chunk at a time.

    Parameters
    ----------
    read : callable
        ``read(a, e)`` returns the spins of draws a..e-1, (e - a, n) (e.g. a slice of a memmap).
    batches, size : int
        Number of batches and draws per batch (draws past ``batches * size`` are not read).
    pairs, fields
        As for :func:`gradient_observables`.
    chunk : int
        Draws read at a time (memory is O(chunk * m) whatever the chain's length).

    Returns
    -------
    np.ndarray, shape (batches, m)
        The observables are +-1, so the float64 sums are exact integers and ``sums / size`` is
        the batch mean bit for bit however the chain is cut into chunks.
    """
    total = batches * size
    if total < 1:
        raise ValueError(f"need at least one batch of at least one draw, not {batches} x {size}")
    pairs = np.asarray(pairs)
    sums = None
    for a in range(0, total, chunk):
        e = min(a + chunk, total)
        spins = read(a, e)
        n = spins.shape[-1]
        if sums is None:
            sums = np.zeros((batches, len(pairs) + (n if fields else 0)))
        first = np.arange(a, e)
        starts = np.flatnonzero((first % size == 0) | (first == a))
        if size >= 64 and n * n <= max(4096, 16 * len(pairs)):
            # long batches of a small model: sum_t s_i s_j is (S^T S)_ij, one matrix product
            # per batch (the same exact integers, far fewer operations than the products)
            for lo, hi in zip(starts, np.append(starts[1:], e - a)):
                f = np.asarray(spins[lo:hi], dtype=np.float64)
                row = sums[(a + lo) // size]
                row[: len(pairs)] += (f.T @ f)[pairs[:, 0], pairs[:, 1]]
                if fields:
                    row[len(pairs) :] += f.sum(axis=0)
        else:
            obs = gradient_observables(spins, pairs, fields)
            sums[first[starts] // size] += np.add.reduceat(obs, starts, axis=0)
    return sums


def q_from_samples(
    samples: Samples,
    data,
    *,
    pairs=None,
    fields: bool = False,
    batch: int | None = None,
    couplings: Couplings | None = None,
    allow_mismatch: bool = False,
) -> QEstimate:
    """Q_hat (bias-corrected, jackknife error) from samples; see :func:`gradient_estimates`.

    With ``batch``, the jackknife leaves out correlated batches together
    (:func:`jackknife_groups`). M (the result's ``steps``) is counted in draws; for kernel steps
    see ``docs/diagnostics.md``, "Time units".
    """
    g = gradient_estimates(
        samples,
        data,
        pairs=pairs,
        fields=fields,
        batch=batch,
        couplings=couplings,
        allow_mismatch=allow_mismatch,
    )
    nb = len(g) // samples.replicas
    groups = jackknife_groups(samples.replicas, nb) if nb > 1 else None
    return q_from_estimates(g, steps=samples.draws if batch is None else batch, groups=groups)


def exact_gradient(chain, data, *, pairs=None, fields: bool = False) -> np.ndarray:
    """g = data term - exact model term, (m,), for an :class:`~pbitsim.diagnostics.ExactChain`."""
    pairs = pair_list(chain.couplings if pairs is None else pairs, n=chain.n)
    target = _target(data, pairs, fields, chain.n)
    return target - chain.p @ gradient_observables(chain.states, pairs, fields)


def exact_q(chain, data, M: int, *, pairs=None, fields: bool = False) -> float:
    """Exact Q(M) = ||g||^2 / sum_k Var(time average of M steps) from an ExactChain.

    M counts the chain's kernel steps (a sweep, a chromatic step, one random-scan update).
    """
    pairs = pair_list(chain.couplings if pairs is None else pairs, n=chain.n)
    g = exact_gradient(chain, data, pairs=pairs, fields=fields)
    var = chain.time_average_variance(gradient_observables(chain.states, pairs, fields), M)
    return float(g @ g / np.sum(var))


def predicted_q(
    chain, data, M: int, *, pairs=None, fields: bool = False, K: int = 10
) -> dict[str, float]:
    """Large-M predictions of Q(M) = ||g||^2 M / sum_k Var_p(f_k) tau_k, with tau_k from the
    multi-mode predictor (K slowest modes per sector), from the single gap, and exact.

    Returns
    -------
    dict
        {"multi_mode": ..., "single_gap": ..., "exact_tau": ..., "exact": exact_q(M)}.
    """
    pairs = pair_list(chain.couplings if pairs is None else pairs, n=chain.n)
    g = exact_gradient(chain, data, pairs=pairs, fields=fields)
    F = gradient_observables(chain.states, pairs, fields)
    me = chain.mode_expansion(F, K)
    sig = float(g @ g) * M
    return {
        "multi_mode": sig / float(np.sum(me.variance * me.tau_multi_mode)),
        "single_gap": sig / float(np.sum(me.variance) * me.tau_single_gap),
        "exact_tau": sig / float(np.sum(me.variance * me.tau_exact)),
        "exact": exact_q(chain, data, M, pairs=pairs, fields=fields),
    }
