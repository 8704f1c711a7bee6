"""Parallel-tempering diagnostics: swap acceptance per rung, round trips, the specific-heat profile
along the ladder, starving rungs, and a ladder that evens out the acceptance.

Sample layout (the PT sampler's convention): ``Samples.spins`` is (C * K, draws, n) with slot
c * K + k = chain c at temperature k; ``info`` holds ``betas`` (K), ``swap_acceptance`` and
``swap_attempts`` (K - 1, rung k = between temperatures k and k + 1), ``walker_index`` (C * K,
draws; which walker 0..K-1 of its chain sat at temperature slot k), ``energies`` (C * K, draws;
E(s) without beta) and ``round_trips`` (per chain).

A swap of configurations x (at beta_a) and y (at beta_b) is accepted with probability
min(1, exp((beta_a - beta_b)(E(x) - E(y)))). For Gaussian energy distributions the acceptance of
neighbours beta, beta + d is about erfc(d sigma_E / 2), sigma_E^2 = Var(E) = C(beta) / beta^2, so
the ladder that makes every rung equally easy is uniform in the thermodynamic length
l(beta) = integral sigma_E d beta; :func:`adapt_ladder` builds it from the specific heat (or from
the measured acceptances, l_k = 2 erfcinv(A_k) per rung).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import erfcinv

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.autocorr import AutocorrWarning, estimate_tau
from pbitsim.diagnostics.observables import energies as _energies
from pbitsim.samples import Samples

__all__ = [
    "PTProfile",
    "RoundTrips",
    "is_pt",
    "pt_betas",
    "swap_acceptance",
    "swap_acceptance_from_energies",
    "round_trips",
    "specific_heat",
    "adapt_ladder",
    "starving_rungs",
    "pt_profile",
    "exact_swap_acceptance",
    "exact_specific_heat",
]


def is_pt(samples: Samples) -> bool:
    """Whether the samples come from a parallel-tempering run (K > 1 betas in info)."""
    b = samples.info.get("betas")
    return b is not None and np.size(b) > 1 and samples.replicas % np.size(b) == 0


def pt_betas(samples: Samples) -> np.ndarray:
    """The ladder (K,) of a PT run."""
    if not is_pt(samples):
        raise ValueError(
            "these samples are not from a parallel-tempering run (no info['betas'] "
            "with more than one beta dividing the replica count)"
        )
    return np.asarray(samples.info["betas"], dtype=np.float64)


def _by_chain(x: np.ndarray, K: int) -> np.ndarray:
    """(C * K, T, ...) -> (C, K, T, ...)."""
    x = np.asarray(x)
    return x.reshape((x.shape[0] // K, K) + x.shape[1:])


def swap_acceptance_from_energies(energies, betas) -> tuple[np.ndarray, np.ndarray]:
    """Mean Metropolis swap probability of each rung, evaluated on the recorded states.

    A Rao-Blackwellised estimate of the swap acceptance (it uses every draw, not only the swaps
    attempted there): mean over chains and draws of min(1, exp((b_k - b_{k+1})(E_k - E_{k+1}))).

    Parameters
    ----------
    energies : array_like, (C * K, T)
    betas : array_like, (K,)

    Returns
    -------
    (acceptance, error) : two (K - 1,) arrays; the error uses each rung's tau_int.
    """
    b = np.asarray(betas, dtype=np.float64)
    E = _by_chain(np.asarray(energies, dtype=np.float64), len(b))  # (C, K, T)
    x = (b[:-1] - b[1:])[None, :, None] * (E[:, :-1] - E[:, 1:])
    a = np.exp(np.minimum(x, 0.0))  # (C, K-1, T)
    acc = a.mean(axis=(0, 2))
    err = np.empty_like(acc)
    for k in range(len(acc)):
        err[k] = _mean_error(a[:, k])
    return acc, err


def _mean_error(series: np.ndarray) -> float:
    """Standard error of the mean of (C, T) series, inflated by tau_int (trusted or not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutocorrWarning)
        it = estimate_tau(series, quiet=True)
    tau = float(it.tau) if np.isfinite(it.tau) else 1.0
    return float(np.sqrt(it.variance * max(tau, 1.0) / series.size))


def swap_acceptance(
    samples: Samples, *, recompute: bool = False
) -> tuple[np.ndarray, np.ndarray, str]:
    """Swap acceptance per rung with a standard error, and where it came from.

    From ``info["swap_acceptance"]`` (binomial error from ``swap_attempts``) unless ``recompute``
    or absent; else from the recorded energies (:func:`swap_acceptance_from_energies`).

    Returns
    -------
    (acceptance, error, source) with source "info" or "energies".
    """
    betas = pt_betas(samples)
    info = samples.info
    if not recompute and "swap_acceptance" in info:
        acc = np.asarray(info["swap_acceptance"], dtype=np.float64)
        att = np.asarray(info.get("swap_attempts", np.full(len(acc), np.nan)), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.sqrt(acc * (1.0 - acc) / att)
        return acc, err, "info"
    if "energies" not in info:
        raise ValueError("no info['swap_acceptance'] and no info['energies'] to recompute it")
    acc, err = swap_acceptance_from_energies(info["energies"], betas)
    return acc, err, "energies"


@dataclass(frozen=True)
class RoundTrips:
    """Round trips of PT walkers between the two ends of the ladder (:func:`round_trips`).

    Attributes
    ----------
    per_chain : np.ndarray of int
        Completed round trips (end -> other end -> back) summed over each chain's walkers.
    times : np.ndarray
        Every completed round-trip time, in draws.
    flow : np.ndarray
        f(k): fraction of walkers at rung k whose last visited end was rung 0 (NaN where no
        labelled walker was seen); a well-tuned ladder has f falling linearly from 1 to 0.
    """

    per_chain: np.ndarray
    times: np.ndarray
    flow: np.ndarray

    @property
    def total(self) -> int:
        return int(self.per_chain.sum())

    @property
    def mean_time(self) -> float:
        return float(self.times.mean()) if len(self.times) else float("inf")


def round_trips(walker_index, K: int) -> RoundTrips:
    """Round trips from ``walker_index`` (C * K, T): which walker held temperature slot k.

    A walker's ends-sequence is the list of ladder ends (rung 0 or K - 1) it visits, repeats
    removed; every two consecutive legs (0 -> K-1 -> 0 or K-1 -> 0 -> K-1) complete a round trip,
    timed from the first arrival to the return.
    """
    w = _by_chain(np.asarray(walker_index, dtype=np.int64), K)  # (C, K, T)
    C, _, T = w.shape
    per_chain = np.zeros(C, dtype=np.int64)
    times: list[int] = []
    up = np.zeros(K)
    seen = np.zeros(K)
    for c in range(C):
        # rung[walker, t]: invert the slot -> walker map at every draw.
        rung = np.empty((K, T), dtype=np.int64)
        rung[w[c], np.arange(T)[None, :]] = np.arange(K)[:, None]
        for walker in range(K):
            r = rung[walker]
            at_end = np.flatnonzero((r == 0) | (r == K - 1))
            label = np.full(T, -1)
            if len(at_end):
                # The label (last end visited) at each draw, forward-filled.
                ends = r[at_end]
                change = np.concatenate([[True], ends[1:] != ends[:-1]])
                arrivals = at_end[change]
                idx = np.searchsorted(at_end, np.arange(T), side="right") - 1
                valid = idx >= 0
                label[valid] = (r[at_end][idx[valid]] == 0).astype(int)
                n_legs = len(arrivals) - 1
                per_chain[c] += n_legs // 2
                times.extend((arrivals[2:] - arrivals[:-2]).tolist())
            lab = label >= 0
            np.add.at(seen, r[lab], 1)
            np.add.at(up, r[lab], label[lab])
    with np.errstate(invalid="ignore"):
        flow = up / seen
    return RoundTrips(per_chain, np.asarray(times, dtype=np.float64), flow)


def specific_heat(
    samples: Samples,
    couplings: Couplings | None = None,
    *,
    allow_mismatch: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """C(beta_k) = beta_k^2 Var(E) at each rung, with standard errors.

    Energies from ``info["energies"]``, or computed from the spins with ``couplings`` (fingerprint
    checked). The error of Var(E) is that of the mean of (E - <E>)^2, inflated by its tau_int.
    """
    betas = pt_betas(samples)
    E = _by_chain(_energies(samples, couplings, allow_mismatch=allow_mismatch), len(betas))
    cv = np.empty(len(betas))
    err = np.empty(len(betas))
    for k, b in enumerate(betas):
        e = E[:, k]
        d2 = (e - e.mean()) ** 2
        cv[k] = b**2 * d2.mean()
        err[k] = b**2 * _mean_error(d2)
    return cv, err


def _length_from_cv(betas: np.ndarray, cv: np.ndarray) -> np.ndarray:
    sigma = np.sqrt(np.maximum(cv, 0.0)) / betas  # sigma_E(beta)
    return 0.5 * (sigma[1:] + sigma[:-1]) * np.abs(np.diff(betas))


def _length_from_acceptance(acc: np.ndarray) -> np.ndarray:
    return 2.0 * erfcinv(np.clip(acc, 1e-6, 1.0 - 1e-9))


def adapt_ladder(
    betas,
    *,
    specific_heat=None,
    acceptance=None,
    n_rungs: int | None = None,
    target_acceptance: float | None = None,
) -> np.ndarray:
    """A new ladder with (approximately) the same swap acceptance on every rung.

    Places the betas uniformly in the thermodynamic length l(beta) = integral sigma_E d beta,
    measured per rung from ``specific_heat`` (C at each beta: sigma_E = sqrt(C) / beta, trapezoid
    rule) or from the measured ``acceptance`` (K - 1 values: l_k = 2 erfcinv(A_k), the Gaussian
    relation A = erfc(d sigma_E / 2)); l is interpolated linearly in beta between the old rungs.
    The end points are kept. Iterate (sample, measure, adapt) to converge.

    Parameters
    ----------
    betas : array_like, (K,)
        Current ladder (monotone).
    specific_heat, acceptance : array_like
        One of the two.
    n_rungs : int, optional
        Rungs in the new ladder (default K, or as needed for ``target_acceptance``).
    target_acceptance : float, optional
        Choose the number of rungs so every rung reaches about this acceptance.

    Returns
    -------
    np.ndarray
        The new ladder, same direction as ``betas``.
    """
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or len(b) < 2 or not (np.all(np.diff(b) > 0) or np.all(np.diff(b) < 0)):
        raise ValueError(f"betas must be a strictly monotone ladder of >= 2 values, not {b}")
    if (specific_heat is None) == (acceptance is None):
        raise ValueError("give exactly one of specific_heat= and acceptance=")
    if specific_heat is not None:
        cv = np.asarray(specific_heat, dtype=np.float64)
        if cv.shape != b.shape:
            raise ValueError(f"specific_heat must have shape {b.shape}, not {cv.shape}")
        seg = _length_from_cv(b, cv)
    else:
        acc = np.asarray(acceptance, dtype=np.float64)
        if acc.shape != (len(b) - 1,):
            raise ValueError(f"acceptance must have shape ({len(b) - 1},), not {acc.shape}")
        seg = _length_from_acceptance(acc)
    seg = np.maximum(seg, 1e-12 * max(seg.max(), 1e-300))  # keep l strictly increasing
    ell = np.concatenate([[0.0], np.cumsum(seg)])
    if target_acceptance is not None:
        step = float(_length_from_acceptance(np.array([target_acceptance]))[0])
        K = int(np.ceil(ell[-1] / step)) + 1
    else:
        K = len(b) if n_rungs is None else int(n_rungs)
    if K < 2:
        raise ValueError(f"a ladder needs at least 2 rungs, not {K}")
    new = np.interp(np.linspace(0.0, ell[-1], K), ell, b)
    new[0], new[-1] = b[0], b[-1]
    return new


def starving_rungs(acceptance, threshold: float = 0.1) -> np.ndarray:
    """Indices k of the rungs (between temperatures k and k + 1) with acceptance < threshold."""
    return np.flatnonzero(np.asarray(acceptance, dtype=np.float64) < threshold)


@dataclass
class PTProfile:
    """Everything :func:`pt_profile` measures on a PT run."""

    betas: np.ndarray
    acceptance: np.ndarray
    acceptance_err: np.ndarray
    acceptance_source: str
    specific_heat: np.ndarray | None
    specific_heat_err: np.ndarray | None
    round_trips: RoundTrips | None
    threshold: float
    starving: np.ndarray
    suggested_betas: np.ndarray | None
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No starving rung and at least one round trip (when walkers were recorded)."""
        trips_ok = self.round_trips is None or self.round_trips.total > 0
        return len(self.starving) == 0 and trips_ok

    def rows(self) -> list[tuple[str, ...]]:
        """Table rows: rung, beta, acceptance, C(beta)."""
        out = []
        for k, b in enumerate(self.betas):
            acc = (
                f"{self.acceptance[k]:.4f} +- {self.acceptance_err[k]:.2g}"
                if k < len(self.acceptance)
                else ""
            )
            if k in self.starving:
                acc += "  STARVING"
            cv = (
                ""
                if self.specific_heat is None
                else f"{self.specific_heat[k]:.4g} +- {self.specific_heat_err[k]:.2g}"
            )
            out.append((str(k), f"{b:.5g}", acc, cv))
        return out

    def summary(self) -> str:
        lines = [f"{'rung':>4}  {'beta':>10}  {'swap acc. (k,k+1)':<28}  C(beta)"]
        lines += [f"{r:>4}  {b:>10}  {a:<28}  {c}" for r, b, a, c in self.rows()]
        if self.round_trips is not None:
            rt = self.round_trips
            lines.append(
                f"round trips: {rt.total} (per chain {rt.per_chain.tolist()}), mean "
                f"time {rt.mean_time:.4g} draws"
            )
        if len(self.starving):
            lines.append(
                f"starving rungs (acceptance < {self.threshold:g}): {self.starving.tolist()}"
            )
        if self.suggested_betas is not None:
            lines.append(
                "suggested ladder: "
                + np.array2string(self.suggested_betas, precision=4, separator=", ")
            )
        lines += self.notes
        return "\n".join(lines)


def pt_profile(
    samples: Samples,
    couplings: Couplings | None = None,
    *,
    threshold: float = 0.1,
    recompute: bool = False,
    allow_mismatch: bool = False,
) -> PTProfile:
    """Acceptance, specific heat, round trips, starving rungs and a suggested ladder of a PT run.

    ``couplings`` (fingerprint checked) is only needed when the run recorded no energies.
    """
    betas = pt_betas(samples)
    K = len(betas)
    notes = []
    acc, acc_err, source = swap_acceptance(samples, recompute=recompute)
    cv = cv_err = None
    if "energies" in samples.info or couplings is not None:
        cv, cv_err = specific_heat(samples, couplings, allow_mismatch=allow_mismatch)
    rt = None
    if "walker_index" in samples.info:
        rt = round_trips(samples.info["walker_index"], K)
        if rt.total == 0:
            notes.append("no walker completed a round trip: the ladder does not mix")
    starving = starving_rungs(acc, threshold)
    if cv is not None:
        suggested = adapt_ladder(betas, specific_heat=cv)
    else:
        suggested = adapt_ladder(betas, acceptance=acc)
    return PTProfile(
        betas, acc, acc_err, source, cv, cv_err, rt, threshold, starving, suggested, notes
    )


def _energy_levels(c: Couplings):
    from pbitsim.exact import all_states

    E = c.energy(all_states(c.n))
    levels, inverse = np.unique(np.round(E, 10), return_inverse=True)
    return levels, inverse, E


def _level_probs(levels, inverse, E, beta):
    logw = -beta * E
    w = np.exp(logw - logw.max())
    return np.bincount(inverse, weights=w / w.sum(), minlength=len(levels))


def exact_swap_acceptance(c: Couplings, betas) -> np.ndarray:
    """Exact mean swap acceptance of each rung for independent Boltzmann states (small n).

    A_k = sum_{a,b} p_k(a) p_{k+1}(b) min(1, exp(d (E_a - E_b))), d = beta_k - beta_{k+1}, over
    energy levels. With x = d E sorted, pairs with x_b <= x_a accept with 1 (a cumulative sum) and
    the rest with exp(x_a - x_b), summed by a backward recursion whose exponents are all <= 0, so
    the cost is O(L log L) in the number of levels L and nothing overflows.
    """
    b = np.asarray(betas, dtype=np.float64)
    levels, inverse, E = _energy_levels(c)
    probs = [_level_probs(levels, inverse, E, x) for x in b]
    out = np.empty(len(b) - 1)
    for k in range(len(b) - 1):
        d = b[k] - b[k + 1]
        if d == 0:
            out[k] = 1.0
            continue
        x = d * levels
        order = np.argsort(x)
        xs, p, q = x[order], probs[k][order], probs[k + 1][order]
        below = np.cumsum(q)  # sum of q(b) with x_b <= x_a (levels are distinct)
        above = np.zeros_like(xs)  # sum of q(b) exp(x_a - x_b) with x_b > x_a
        decay = np.exp(xs[:-1] - xs[1:])
        acc = 0.0
        for i in range(len(xs) - 2, -1, -1):
            acc = decay[i] * (q[i + 1] + acc)
            above[i] = acc
        out[k] = p @ (below + above)
    return out


def exact_specific_heat(c: Couplings, betas) -> np.ndarray:
    """Exact C(beta) = beta^2 Var_beta(E) at each beta (small n)."""
    b = np.asarray(betas, dtype=np.float64)
    levels, inverse, E = _energy_levels(c)
    out = np.empty(len(b))
    for k, x in enumerate(b):
        q = _level_probs(levels, inverse, E, x)
        m = q @ levels
        out[k] = x**2 * (q @ (levels - m) ** 2)
    return out
