"""Sample-vs-sample and sample-vs-exact statistics: the one place pbitsim compares distributions.

:func:`compare` takes two :class:`~pbitsim.samples.Samples` (simulator vs board, two seeds, two
methods), or one Samples and a model whose exact distribution is enumerated, and returns a
:class:`Comparison`:

* per-spin means <s_i> and per-pair correlations <s_i s_j> (the model's edges by default) side by
  side, each with a standard error sqrt(Var(f) tau_int / N) corrected for autocorrelation, and a
  z-score. The z-tests are corrected for multiple testing with **Holm**'s step-down procedure: it
  controls the family-wise error rate under *any* dependence between the statistics (<s_i> and
  <s_i s_j> are strongly dependent), and "is anything different?" is a family-wise question;
  Benjamini-Hochberg controls the false discovery rate instead, and only under independence or
  positive dependence;
* an effective inverse temperature beta_eff, the beta that best explains each sample set under the
  model (maximum likelihood in the family p_beta ∝ exp(-beta E) for n <= 16, pseudo-likelihood
  beyond), with a tau-corrected error bar, tested like a moment;
* a test on the joint distribution: a histogram G-test (n <= 12, and against an exact
  distribution) or an MMD permutation test with a Hamming kernel (two sample sets, larger n).
  MCMC draws are not independent, so each sample set is thinned by ceil(2 tau_max) first;
* against an exact distribution (n small): the plug-in KL(empirical || exact) and the moment
  distance with jackknife error bars, next to the KL an exact sampler would show;
* tau_int (energy, magnetisation, the slowest moment) and Q of each side's moment estimates
  across replicas (:mod:`pbitsim.diagnostics.q`; the other side's moments are the target) side by
  side;
* a verdict: consistent or not at level alpha (alpha/2 for the moment family, alpha/2 for the
  joint test: a Bonferroni split, so the verdict as a whole has family-wise level alpha), naming
  the statistics that differ.

Exact references: the Boltzmann distribution of the model and, for hardware-model or board samples
(their ``settings["runner"]["design"]`` records the design and its fixed-point spec), the exact
stationary distribution of the *quantised* chain (:func:`quantized_stationary`, n <= 12).
Diagnostics never import the board package or the simulators: the design comes from the samples.

The math and its assumptions: ``docs/diagnostics.md``, "Comparing two sample sets".
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.diagnostics._compare_stats import (
    EXACT_MAX_N,
    MIN_EXPECTED,
    beta_for_mean_energy,
    effective_beta,
    energy_levels,
    g_test,
    holm,
    mmd_test,
    two_sided_p,
)
from pbitsim.diagnostics._quantized_chain import (
    QUANTIZED_MAX_N,
    design_fixed_point,
    quantized_p_up,
    quantized_stationary,
    sample_design,
)
from pbitsim.diagnostics.autocorr import AutocorrWarning, estimate_tau
from pbitsim.diagnostics.observables import energies, magnetisation, pair_list, pair_products
from pbitsim.diagnostics.pt import is_pt
from pbitsim.diagnostics.q import QEstimate, gradient_estimates, q_from_estimates
from pbitsim.exact import all_states, boltzmann, state_index
from pbitsim.samples import FingerprintMismatchError, Samples

__all__ = [
    "REFERENCES",
    "CompareMismatchError",
    "Comparison",
    "Statistic",
    "SampleSummary",
    "SeriesTau",
    "ReferenceFit",
    "JointTest",
    "compare",
    "write_report",
    "holm",
    "g_test",
    "mmd_test",
    "effective_beta",
    "quantized_p_up",
    "quantized_stationary",
    "sample_design",
]

#: Exact references :func:`compare` knows ("auto": quantised for hardware samples, else Boltzmann).
REFERENCES = ("auto", "boltzmann", "quantized")
REFERENCE_NAMES = {
    "boltzmann": "Boltzmann distribution",
    "quantized": "quantised-chain distribution",
}
#: Up to this n the joint test of two sample sets is a histogram G-test; above, an MMD test.
G_TEST_MAX_N = 12
#: Without a model all pairs i < j are compared up to this n (64: 2016 pairs); above, means only.
MAX_ALL_PAIRS_N = 64
#: Thinned draws per sample set that enter the MMD test (a random subset above that).
MMD_MAX_DRAWS = 1000
#: Float64 values per block when moment time series are built (bounds memory for large n).
_BLOCK_VALUES = 1 << 23


@dataclass(frozen=True)
class Statistic:
    """One tested statistic (a mean, a correlation or beta_eff) of both sides.

    Attributes
    ----------
    name : str
        ``"<s3>"``, ``"<s1 s4>"`` or ``"beta_eff"``.
    kind : {"mean", "correlation", "beta"}
    a, a_err : float
        Sample set A's value and its standard error (tau-corrected).
    b, b_err : float
        B's value and error, or the exact reference value (error 0).
    z : float
        (a - b) / standard error of the difference (with the pooled variance of a +-1 variable
        under the null hypothesis for the moments).
    dof : float
        Degrees of freedom of the error bar: N / (2 W + 1) per side (W the Sokal window; the
        Madras-Sokal variance of tau_int), combined by Welch-Satterthwaite; inf against exact
        values with no error.
    p : float
        Two-sided Student-t p-value of z with ``dof`` degrees of freedom.
    p_holm : float
        Holm-adjusted p-value within the moment family.
    differs : bool
        ``p_holm <= alpha_moments``.
    """

    name: str
    kind: str
    a: float
    a_err: float
    b: float
    b_err: float
    z: float
    dof: float
    p: float
    p_holm: float
    differs: bool


@dataclass(frozen=True)
class SeriesTau:
    """tau_int of one time series of a sample set (in draws), with its truncated rho(t)."""

    name: str
    tau: float
    tau_err: float
    ess: float
    window: int
    trusted: bool
    acf: np.ndarray


@dataclass(frozen=True)
class ReferenceFit:
    """How far a sample set is from an exact distribution (jackknife errors over replicas, or
    over 8 blocks of each chain when there are fewer than 4 replicas).

    Attributes
    ----------
    reference : {"boltzmann", "quantized"}
    kl, kl_err : float
        Plug-in KL(empirical || exact) in nats over all draws, and its jackknife error.
    kl_iid : float
        Mean plug-in KL of as many independent exact draws as A has draws: the finite-sample
        floor that no sampler goes below on average.
    kl_expected : float
        The same for ``n_eff`` independent draws: about what an exact MCMC sampler with this
        tau_max shows (its draws are correlated, so its KL lies between the two).
    n_eff : float
        Draws / tau_max.
    distance, distance_err : float
        sqrt(sum_k (moment_k - exact_k)^2) over the compared means and correlations.
    """

    reference: str
    kl: float
    kl_err: float
    kl_iid: float
    kl_expected: float
    n_eff: float
    distance: float
    distance_err: float


@dataclass
class SampleSummary:
    """What :func:`compare` measured on one sample set.

    Attributes
    ----------
    label, source : str
        "A" / "B" and where the samples came from (a path, or their repr).
    method, fingerprint : str
    replicas, draws, n, thin : int
        ``draws`` per replica; ``thin`` as recorded in the settings (tau is in draws).
    means : np.ndarray
        The compared moments: n means, then one correlation per pair.
    tau : np.ndarray
        tau_int of each moment (the sample set's largest where a moment never changes).
    tau_trusted : np.ndarray of bool
        The chain is at least 50 tau long for that moment.
    dof : np.ndarray
        Degrees of freedom of each moment's error bar, N / (2 W + 1) (W its Sokal window).
    series : dict
        :class:`SeriesTau` of "energy" (with a model), "magnetisation" and "slowest moment"
        (its ``name`` says which).
    beta_eff, beta_eff_err : float or None
    beta_method : str or None
        "mle" (exact enumeration) or "pseudo-likelihood".
    q : QEstimate or None
        Q of this set's moment estimates with the other side's moments as the target.
    exact : dict
        reference name -> :class:`ReferenceFit`, for every exact distribution that applies.
    joint_thin : int
        Thinning applied before the joint test, ceil(2 tau_max).
    design : dict or None
        The hardware design recorded in the settings.
    """

    label: str
    source: str
    method: str
    fingerprint: str
    replicas: int
    draws: int
    n: int
    thin: int
    means: np.ndarray
    tau: np.ndarray
    tau_trusted: np.ndarray
    dof: np.ndarray
    series: dict = field(default_factory=dict)
    beta_eff: float | None = None
    beta_eff_err: float | None = None
    beta_method: str | None = None
    q: QEstimate | None = None
    exact: dict = field(default_factory=dict)
    joint_thin: int = 1
    design: dict | None = None

    @property
    def n_draws(self) -> int:
        return self.replicas * self.draws

    @property
    def tau_max(self) -> float:
        taus = [s.tau for s in self.series.values() if np.isfinite(s.tau)]
        taus += [float(np.nanmax(self.tau))] if np.any(np.isfinite(self.tau)) else []
        return max(taus, default=1.0)


@dataclass(frozen=True)
class JointTest:
    """The two-sample test on the joint distribution.

    Attributes
    ----------
    name : {"G-test", "MMD"}
    statistic : float
        G, or the (biased) MMD^2.
    p_value : float
    dof : int or None
        Degrees of freedom of the G-test (bins - 1).
    bins : int or None
        Histogram bins after pooling states with expected counts below 5.
    draws : tuple of int
        Thinned draws of each side used (the exact side: None).
    detail : str
    """

    name: str
    statistic: float
    p_value: float
    dof: int | None
    bins: int | None
    draws: tuple
    detail: str


@dataclass
class Comparison:
    """Result of :func:`compare`; :meth:`verdict` is the one-line answer.

    Attributes
    ----------
    a, b : SampleSummary
        The sample sets (``b`` is None against an exact distribution).
    reference : {"samples", "boltzmann", "quantized"}
        What A was tested against.
    reference_description : str
    alpha : float
        Level of the whole verdict (alpha / 2 for the moment family and for the joint test when
        both are run).
    statistics : list of Statistic
        Means, correlations, then beta_eff (with a model).
    joint : JointTest or None
    pairs : np.ndarray
        (m, 2) pairs of the correlations.
    notes : list of str
    """

    a: SampleSummary
    b: SampleSummary | None
    reference: str
    reference_description: str
    alpha: float
    statistics: list
    joint: JointTest | None
    pairs: np.ndarray
    notes: list = field(default_factory=list)
    plot_data: dict = field(default_factory=dict, repr=False)

    @property
    def alpha_moments(self) -> float:
        return self.alpha / 2 if self.joint is not None else self.alpha

    @property
    def alpha_joint(self) -> float:
        return self.alpha / 2

    @property
    def differing(self) -> list[str]:
        """Names of the statistics that differ (by |z|), then "joint distribution" if so."""
        out = [s.name for s in sorted(self.statistics, key=lambda s: -abs(s.z)) if s.differs]
        if self.joint is not None and self.joint.p_value <= self.alpha_joint:
            out.append(f"joint distribution ({self.joint.name})")
        return out

    @property
    def consistent(self) -> bool:
        return not self.differing

    def verdict(self) -> str:
        """``consistent at alpha = ...`` or ``INCONSISTENT at alpha = ...: what differs``."""
        other = "B" if self.b is not None else f"the exact {REFERENCE_NAMES[self.reference]}"
        tests = f"{len(self.statistics)} statistics, Holm at {self.alpha_moments:g}"
        if self.joint is not None:
            tests += f"; joint {self.joint.name} at {self.alpha_joint:g}"
        if self.consistent:
            return f"verdict: A is consistent with {other} at alpha = {self.alpha:g} ({tests})"
        by_name = {s.name: s for s in self.statistics}
        parts = []
        for name in self.differing[:8]:
            s = by_name.get(name)
            if s is None:
                parts.append(f"{name} p = {self.joint.p_value:.2g}")  # the joint test
            else:
                parts.append(f"{name} {s.a:.4g} vs {s.b:.4g} (z = {s.z:+.1f})")
        more = len(self.differing) - len(parts)
        return (
            f"verdict: A is INCONSISTENT with {other} at alpha = {self.alpha:g} ({tests}): "
            + "; ".join(parts)
            + (f"; and {more} more" if more > 0 else "")
        )

    def text(self, top: int = 12) -> str:
        """A plain-text report: inputs, tau_int / Q / beta_eff / KL side by side, the joint test,
        the statistics with the largest |z|, notes and the verdict."""
        from pbitsim.diagnostics._compare_report import text_report

        return text_report(self, top=top)

    def write_report(self, path) -> Path:
        """Write an HTML report with PNG plots (see :func:`write_report`); returns its path."""
        return write_report([self], path)


def write_report(comparisons, path) -> Path:
    """Write one HTML page (``path`` with suffix .html) for one or more comparisons, with PNG
    plots beside it (moments with error bars, z-scores, autocorrelation curves, state
    probabilities); returns the HTML path."""
    from pbitsim.diagnostics._compare_report import html_report

    if isinstance(comparisons, Comparison):
        comparisons = [comparisons]
    return html_report(list(comparisons), path)


# --------------------------------------------------------------------------------------------
# Measuring one sample set.
# --------------------------------------------------------------------------------------------


def _view(samples: Samples, label: str, notes: list) -> np.ndarray:
    """The single-temperature spins (R, T, n) to compare; PT runs: the rung at the model's beta."""
    if not isinstance(samples, Samples):
        raise TypeError(f"{label} must be Samples, not {type(samples).__name__}")
    if samples.draws < 2 or samples.n < 1:
        raise ValueError(
            f"{label} holds {samples.draws} draw(s) per replica of n = {samples.n} spins: too few "
            f"to compare"
        )
    if is_pt(samples):
        betas = np.asarray(samples.info["betas"], dtype=np.float64)
        target = float(samples.settings.get("beta", betas.max()))
        k = int(np.argmin(np.abs(betas - target)))
        K = len(betas)
        notes.append(f"{label}: parallel tempering; its rung {k} (beta = {betas[k]:g}) is compared")
        if not np.isclose(betas[k], target):
            notes.append(f"{label}: no rung at the model's beta {target:g}; the nearest is used")
        return np.asarray(samples.spins[np.arange(samples.replicas // K) * K + k])
    return samples.spins


def _names(n: int, pairs: np.ndarray) -> list[str]:
    return [f"<s{i}>" for i in range(n)] + [f"<s{i} s{j}>" for i, j in pairs.tolist()]


def _groups(R: int, T: int) -> np.ndarray:
    """Jackknife group of every draw, (R, T): the replicas when there are at least 4, else 8
    consecutive blocks of each chain. Group ids never decrease in draw order."""
    if R >= 4:
        return np.repeat(np.arange(R), T).reshape(R, T)
    nb = min(8, T)
    return (np.arange(R)[:, None] * nb + (np.arange(T)[None, :] * nb) // T).astype(np.int64)


def _series(name: str, x) -> SeriesTau:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutocorrWarning)
        it = estimate_tau(x, quiet=True)
    w = int(it.window)
    lags = min(len(it.acf), max(4 * w, 20))
    return SeriesTau(
        name,
        float(it.tau),
        float(it.tau_err),
        float(it.ess),
        w,
        bool(it.converged),
        np.asarray(it.acf[:lags], dtype=np.float64),
    )


@dataclass
class _Measured:
    """A side's summary plus what later steps need: its spins, energies and per-group sums."""

    summary: SampleSummary
    spins: np.ndarray
    energy: np.ndarray | None
    groups: np.ndarray  # (R, T) jackknife group of each draw
    group_sums: np.ndarray  # (G, k) sums of the moments per group
    group_sizes: np.ndarray  # (G,)


def _measure(samples: Samples, spins, label: str, source: str, pairs, model) -> _Measured:
    """Means, tau_int and per-group sums of every moment (in blocks of observables, so n = 64
    with all pairs fits in memory), and tau of energy and magnetisation."""
    R, T, n = spins.shape
    k = n + len(pairs)
    groups = _groups(R, T)
    flat_groups = groups.ravel()
    starts = np.flatnonzero(np.r_[True, flat_groups[1:] != flat_groups[:-1]])
    means, tau, dof = np.empty(k), np.empty(k), np.empty(k)
    trusted = np.empty(k, dtype=bool)
    sums = np.empty((len(starts), k))
    width = max(1, _BLOCK_VALUES // (R * T))
    slowest = (-np.inf, 0, None)
    for a in range(0, k, width):
        cols = np.arange(a, min(k, a + width))
        x = np.empty((R, T, len(cols)))
        spin_cols = cols[cols < n]
        x[:, :, : len(spin_cols)] = np.asarray(spins[:, :, spin_cols], dtype=np.float64)
        if len(spin_cols) < len(cols):
            x[:, :, len(spin_cols) :] = pair_products(spins, pairs[cols[len(spin_cols) :] - n])
        means[cols] = x.mean(axis=(0, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AutocorrWarning)
            it = estimate_tau(x, quiet=True)
        tau[cols], trusted[cols] = it.tau, it.converged
        dof[cols] = R * T / (2.0 * it.window + 1.0)
        sums[:, cols] = np.add.reduceat(x.reshape(R * T, -1), starts, axis=0)
        t = np.where(np.isfinite(it.tau), it.tau, -np.inf)
        j = int(np.argmax(t))
        if t[j] > slowest[0]:
            slowest = (t[j], int(cols[j]), x[:, :, j].copy())
    # A moment that never changes has no tau: give it the set's largest one (conservative).
    finite = np.isfinite(tau)
    tau[~finite] = float(tau[finite].max()) if finite.any() else 1.0
    series = {}
    energy = None
    if model is not None:
        view = Samples(spins, samples.fingerprint, samples.topology_fingerprint, samples.method)
        with warnings.catch_warnings():  # an accepted mismatch was already warned about once
            warnings.filterwarnings("ignore", message="samples' couplings fingerprint differs")
            energy = energies(view, model, allow_mismatch=True)
        series["energy"] = _series("energy", energy)
    series["magnetisation"] = _series("magnetisation", magnetisation(spins))
    if slowest[2] is not None:
        name = f"slowest moment {_names(n, pairs)[slowest[1]]}"
        series["slowest moment"] = _series(name, slowest[2])
    summary = SampleSummary(
        label=label,
        source=source,
        method=samples.method,
        fingerprint=samples.fingerprint,
        replicas=R,
        draws=T,
        n=n,
        thin=int(samples.settings.get("thin", 1) or 1),
        means=means,
        tau=tau,
        tau_trusted=trusted,
        dof=dof,
        series=series,
        design=sample_design(samples),
    )
    summary.joint_thin = max(1, math.ceil(2.0 * summary.tau_max))
    sizes = np.diff(np.r_[starts, R * T]).astype(np.float64)
    return _Measured(summary, spins, energy, groups, sums, sizes)


# --------------------------------------------------------------------------------------------
# Exact references.
# --------------------------------------------------------------------------------------------


@dataclass
class _Reference:
    name: str
    description: str
    p: np.ndarray
    moments: np.ndarray
    beta_eff: float


def _reference(name: str, model: Couplings, pairs, design: dict | None, levels) -> _Reference:
    S = all_states(model.n).astype(np.float64)
    if name == "boltzmann":
        p = boltzmann(model)
        desc = f"Boltzmann distribution of the model (beta = {model.beta:g})"
        beta_eff = float(model.beta)  # the MLE's population value is the model's own beta
    else:
        spec = design_fixed_point(design)
        p = quantized_stationary(model, spec)
        desc = (
            f"stationary distribution of the quantised chain ({spec.format_name} codes, "
            f"{spec.input_bits}-bit input, {spec.rng_bits}-bit ideal random numbers, chromatic "
            f"sweep; beta = {model.beta:g})"
        )
        e_ref = float(p @ model.energy(all_states(model.n)))
        beta_eff = beta_for_mean_energy(*levels, e_ref, model.beta)
    moments = np.concatenate([p @ S, p @ (S[:, pairs[:, 0]] * S[:, pairs[:, 1]])])
    return _Reference(name, desc, p, moments, beta_eff)


def _references(sides, model, pairs, n: int, strict: bool) -> list[dict]:
    """Per side: {"boltzmann": ..., "quantized": ... (of its own design), "error": why none}."""
    out: list[dict] = [{} for _ in sides]
    if model is None or n > EXACT_MAX_N:
        return out
    levels = energy_levels(model)
    boltz = _reference("boltzmann", model, pairs, None, levels)
    cache: dict = {}
    for k, (side, m) in enumerate(zip(out, sides)):
        side["boltzmann"] = boltz
        design = m.summary.design
        if design is None:
            continue
        key = json.dumps(design, sort_keys=True)
        if key not in cache:
            try:
                if n > QUANTIZED_MAX_N:
                    raise ValueError(
                        f"the exact quantised chain needs n <= {QUANTIZED_MAX_N}; the model has "
                        f"n = {n}"
                    )
                cache[key] = _reference("quantized", model, pairs, design, levels)
            except ValueError as e:
                if strict and k == 0:
                    raise
                cache[key] = e
        if isinstance(cache[key], Exception):
            side["error"] = str(cache[key])
        else:
            side["quantized"] = cache[key]
    return out


def _fit_reference(meas: _Measured, ref: _Reference, seed: int) -> ReferenceFit:
    """KL and moment distance to an exact distribution, jackknifed over the groups."""
    s = meas.summary
    N = 1 << s.n
    idx = np.stack([state_index(np.asarray(meas.spins[r])) for r in range(s.replicas)])
    G = len(meas.group_sizes)
    counts = np.bincount((meas.groups * N + idx).ravel(), minlength=G * N).reshape(G, N)
    total = counts.sum(axis=0).astype(np.float64)

    def kl(c):
        q = c / c.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(q > 0, q * np.log(q / ref.p), 0.0).sum(axis=-1)

    def dist(sums, sizes):
        return np.sqrt(((sums / sizes[..., None] - ref.moments) ** 2).sum(axis=-1))

    def jack(x):
        return float(np.sqrt((G - 1) / G * np.sum((x - x.mean()) ** 2))) if G > 1 else math.nan

    size = meas.group_sizes.sum()
    s_tot = meas.group_sums.sum(axis=0)
    loo_kl = kl(total[None, :] - counts)
    loo_d = dist(s_tot[None, :] - meas.group_sums, size - meas.group_sizes)
    rng = np.random.default_rng(seed)
    n_eff = s.n_draws / s.tau_max

    def floor(draws: float) -> float:
        m = max(1, int(round(draws)))
        return float(np.mean([kl(rng.multinomial(m, ref.p).astype(np.float64)) for _ in range(20)]))

    return ReferenceFit(
        reference=ref.name,
        kl=float(kl(total)),
        kl_err=jack(loo_kl),
        kl_iid=floor(s.n_draws),
        kl_expected=floor(n_eff),
        n_eff=n_eff,
        distance=float(dist(s_tot, np.array(size))),
        distance_err=jack(loo_d),
    )


# --------------------------------------------------------------------------------------------
# Checks.
# --------------------------------------------------------------------------------------------


class CompareMismatchError(FingerprintMismatchError):
    """The two sample sets, or a sample set and the model, come from different couplings.

    Attributes
    ----------
    label : str
        "A", "B" or "A and B".
    sampled, model : str
        The two fingerprints (the second is B's when two sample sets differ).
    same_graph : bool
    """

    def __init__(self, label: str, sampled: str, model: str, same_graph: bool, pair: bool):
        self.label, self.sampled, self.model = label, sampled, model
        self.same_graph, self.pair = same_graph, pair
        ValueError.__init__(self, self.message("allow_mismatch=True (CLI: --allow-mismatch)"))

    def __reduce__(self):
        return type(self), (self.label, self.sampled, self.model, self.same_graph, self.pair)

    def message(self, override: str) -> str:
        """The explanation, ending with how to accept the mismatch (``override``: the keyword,
        or the command-line flag)."""
        why = (
            "same graph, different values: other weights or another beta"
            if self.same_graph
            else "a different graph"
        )
        what = (
            f"A was drawn from couplings {self.sampled[:16]} but B from {self.model[:16]}"
            if self.pair
            else f"{self.label} was drawn from couplings {self.sampled[:16]} but the model is "
            f"{self.model[:16]}"
        )
        return f"{what} ({why}); pass {override} to compare them anyway"


def _check_pair(a: Samples, b: Samples, allow_mismatch: bool) -> None:
    if a.n != b.n:
        raise ValueError(
            f"A has n = {a.n} spins but B has n = {b.n}: samples of different models cannot be "
            f"compared"
        )
    if a.fingerprint == b.fingerprint:
        return
    same = a.topology_fingerprint == b.topology_fingerprint
    if not allow_mismatch:
        raise CompareMismatchError("A and B", a.fingerprint, b.fingerprint, same, pair=True)
    warnings.warn(
        "A and B were drawn from different couplings; compared anyway (override accepted)",
        stacklevel=3,
    )


def _check_model(samples: Samples, model: Couplings, label: str, allow_mismatch: bool) -> None:
    if samples.n != model.n:
        raise ValueError(f"{label} has n = {samples.n} spins but the model has n = {model.n}")
    if samples.fingerprint == model.fingerprint:
        return
    if not allow_mismatch:
        same = samples.topology_fingerprint == model.topology_fingerprint
        raise CompareMismatchError(label, samples.fingerprint, model.fingerprint, same, pair=False)
    warnings.warn(
        f"{label} was drawn from other couplings than the model; compared anyway (override "
        f"accepted)",
        stacklevel=3,
    )


def _choose_pairs(pairs, model: Couplings | None, n: int, notes: list) -> np.ndarray:
    if pairs is not None:
        return pair_list(None if isinstance(pairs, str) else pairs, n=n)
    if model is not None:
        return pair_list(model)
    if n <= MAX_ALL_PAIRS_N:
        notes.append("no model given: the correlations of all pairs i < j are compared")
        return pair_list(None, n=n)
    notes.append(
        f"no model given and n = {n} > {MAX_ALL_PAIRS_N}: only the means are compared (pass the "
        f"model for its edges)"
    )
    return np.zeros((0, 2), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# compare().
# --------------------------------------------------------------------------------------------


def compare(
    a: Samples,
    b: Samples | None = None,
    *,
    model: Couplings | None = None,
    reference: str = "auto",
    pairs=None,
    alpha: float = 0.05,
    joint: str = "auto",
    permutations: int = 500,
    allow_mismatch: bool = False,
    seed: int = 0,
    names: tuple = (None, None),
) -> Comparison:
    """Compare sample set A with sample set B, or with the model's exact distribution.

    Parameters
    ----------
    a : Samples
    b : Samples, optional
        The other sample set; without it A is compared with the exact distribution of ``model``.
    model : Couplings, optional
        The model (required without ``b``): its edges are the compared pairs, its energy gives
        beta_eff, and it defines the exact distributions. The samples' fingerprints must match it.
    reference : {"auto", "boltzmann", "quantized"}
        Without ``b``: the exact distribution A is tested against. ``"quantized"`` is the
        quantised hardware chain of the design A's settings record (hardware or board samples,
        n <= 12); ``"auto"`` takes it when it applies and Boltzmann otherwise. With ``b``, each
        side's KL to every exact distribution that applies is reported.
    pairs : array_like or "all", optional
        (m, 2) pairs whose correlations are compared (default: the model's edges; without a
        model all pairs up to n = 64, else none).
    alpha : float
        Level of the verdict, 0 < alpha < 1.
    joint : {"auto", "g-test", "mmd", "none"}
        The joint-distribution test (auto: the G-test for n <= 12 or against an exact
        distribution, MMD otherwise).
    permutations : int
        Permutations of the MMD test.
    allow_mismatch : bool
        Compare samples whose couplings fingerprints differ (from each other or from the model),
        e.g. samples at another beta. Different n is always refused.
    seed : int
        Seeds the MMD's subsampling and permutations and the simulated KL floors.
    names : (str, str)
        How A and B are named in reports (default: their repr).

    Returns
    -------
    Comparison

    Raises
    ------
    TypeError
        ``a`` or ``b`` is not Samples, or ``model`` not Couplings.
    ValueError
        Different n; bad arguments; an exact reference that does not apply (n too large, no
        recorded design, a design the exact chain does not model).
    CompareMismatchError
        Fingerprints differ and ``allow_mismatch`` is False (the message names both); a
        :class:`~pbitsim.samples.FingerprintMismatchError`.
    """
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, not {reference!r}")
    if joint not in ("auto", "g-test", "mmd", "none"):
        raise ValueError(f"joint must be 'auto', 'g-test', 'mmd' or 'none', not {joint!r}")
    if model is not None and not isinstance(model, Couplings):
        raise TypeError(f"model must be Couplings, not {type(model).__name__}")
    if b is None and model is None:
        raise ValueError("comparing with an exact distribution needs the model (model=...)")
    notes: list[str] = []
    spins_a = _view(a, "A", notes)
    spins_b = None if b is None else _view(b, "B", notes)
    if b is not None:
        _check_pair(a, b, allow_mismatch)
    if model is not None:
        for s, label in ((a, "A"), (b, "B")):
            if s is not None:
                _check_model(s, model, label, allow_mismatch)
    for s, label in ((a, "A"), (b, "B")):
        if s is not None and not getattr(s, "complete", True):
            notes.append(f"{label} is an interrupted run: its {s.draws} draws are compared")
    n = a.n
    pairs = _choose_pairs(pairs, model, n, notes)
    sides = [_measure(a, spins_a, "A", names[0] or repr(a), pairs, model)]
    if b is not None:
        sides.append(_measure(b, spins_b, "B", names[1] or repr(b), pairs, model))

    refs = _references(sides, model, pairs, n, strict=b is None and reference == "quantized")
    for m, side_refs in zip(sides, refs):
        if "error" in side_refs:
            notes.append(f"{m.summary.label}: no quantised reference: {side_refs.pop('error')}")
    ref = None if b is not None else _reference_for_a(sides[0], refs[0], reference, n, notes)
    for k, (m, side_refs) in enumerate(zip(sides, refs)):
        for name, r in side_refs.items():
            m.summary.exact[name] = _fit_reference(m, r, seed + k)
    if model is not None:
        for m in sides:
            beta, err, how = effective_beta(m.spins, model, energies_=m.energy)
            m.summary.beta_eff, m.summary.beta_eff_err, m.summary.beta_method = beta, err, how
            if how == "pseudo-likelihood" and m is sides[0]:
                notes.append(f"beta_eff by pseudo-likelihood (n > {EXACT_MAX_N})")

    if joint == "auto":
        joint = "g-test" if (b is None or n <= G_TEST_MAX_N) else "mmd"
    jt = None if joint == "none" else _joint_test(joint, sides, ref, permutations, seed, notes)
    rows = _moment_rows(sides, ref, pairs) + _beta_rows(sides, ref, notes)
    alpha_m = alpha / 2 if jt is not None else alpha
    z = np.array([r[6] for r in rows], dtype=np.float64)
    p = two_sided_p(z, np.array([r[7] for r in rows], dtype=np.float64))
    reject, adjusted = holm(p, alpha_m)
    statistics = [
        Statistic(
            *r[:2], *(float(x) for x in r[2:]), float(p[k]), float(adjusted[k]), bool(reject[k])
        )
        for k, r in enumerate(rows)
    ]

    # Q of each side's moment estimates, with the other side's moments as the target
    targets = [ref.moments] if b is None else [sides[1].summary.means, sides[0].summary.means]
    for m, target, s in zip(sides, targets, (a, b)):
        m.summary.q = _q(s, m.spins, target, pairs, n)
    for m in sides:
        bad = int((~m.summary.tau_trusted).sum())
        if bad:
            notes.append(
                f"{m.summary.label}: {bad} of {m.summary.tau_trusted.size} moments have no "
                f"trusted tau_int (chain shorter than 50 tau_int, or the moment never changes): "
                f"their error bars may be too small"
            )
    plot_data = {"p_ref": None if ref is None else ref.p}
    if n <= G_TEST_MAX_N:
        plot_data["hist"] = [_histogram(m.spins, n) for m in sides]
    return Comparison(
        a=sides[0].summary,
        b=sides[1].summary if b is not None else None,
        reference="samples" if ref is None else ref.name,
        reference_description="sample set B" if ref is None else ref.description,
        alpha=float(alpha),
        statistics=statistics,
        joint=jt,
        pairs=pairs,
        notes=notes,
        plot_data=plot_data,
    )


def _reference_for_a(ma: _Measured, refs: dict, reference: str, n: int, notes) -> _Reference:
    want = reference
    if want == "auto":
        want = "quantized" if "quantized" in refs else "boltzmann"
        if want == "boltzmann" and ma.summary.design is not None:
            notes.append("A records a hardware design but is tested against Boltzmann")
    if want == "quantized" and ma.summary.design is None:
        raise ValueError(
            f"reference='quantized' needs hardware samples whose settings record the design "
            f"(method {ma.summary.method!r} records none)"
        )
    if want not in refs:
        limit = EXACT_MAX_N if want == "boltzmann" else QUANTIZED_MAX_N
        raise ValueError(
            f"the exact {REFERENCE_NAMES[want]} needs n <= {limit}; the model has n = {n}: "
            f"compare with another sample set instead"
        )
    return refs[want]


def _se(s: SampleSummary) -> np.ndarray:
    """Standard error of each moment of one side: sqrt((1 - m^2) tau / N) (a +-1 variable)."""
    return np.sqrt(np.clip(1.0 - s.means**2, 0.0, None) * s.tau / s.n_draws)


def _welch(va, na, vb=None, nb=None):
    """Welch-Satterthwaite degrees of freedom of va + vb (each variance with its own dof)."""
    if vb is None:
        return na
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va**2 / na + vb**2 / nb
        return np.where(den > 0, (va + vb) ** 2 / den, np.inf)


def _moment_rows(sides, ref, pairs) -> list[tuple]:
    """(name, kind, a, a_err, b, b_err, z, dof) of every mean and correlation.

    The variance in z is that of a +-1 variable under the null hypothesis, 1 - m^2 with m the
    pooled mean (two samples) or the exact value."""
    sa = sides[0].summary
    if len(sides) == 2:
        sb = sides[1].summary
        pooled = (sa.means * sa.n_draws + sb.means * sb.n_draws) / (sa.n_draws + sb.n_draws)
        var = np.clip(1.0 - pooled**2, 0.0, None)
        va, vb = var * sa.tau / sa.n_draws, var * sb.tau / sb.n_draws
        se, dof = np.sqrt(va + vb), _welch(va, sa.dof, vb, sb.dof)
        other, other_err = sb.means, _se(sb)
    else:
        other = ref.moments
        se = np.sqrt(np.clip(1.0 - other**2, 0.0, None) * sa.tau / sa.n_draws)
        dof = sa.dof
        other_err = np.zeros_like(other)
    diff = sa.means - other
    with np.errstate(divide="ignore", invalid="ignore"):
        # a zero error bar (both sides constant) leaves only an exact match, z = 0, or a sure
        # difference
        z = np.where(se > 0, diff / se, np.where(diff != 0, np.inf * np.sign(diff), 0.0))
    names = _names(sa.n, pairs)
    kinds = ["mean"] * sa.n + ["correlation"] * len(pairs)
    err = _se(sa)
    return [
        (names[k], kinds[k], sa.means[k], err[k], other[k], other_err[k], z[k], dof[k])
        for k in range(len(names))
    ]


def _beta_rows(sides, ref, notes) -> list[tuple]:
    sa = sides[0].summary
    if sa.beta_eff is None:
        return []

    def dof(s):  # the error bar comes from the energy's tau_int (or the score's, about the same)
        return s.n_draws / (2.0 * s.series["energy"].window + 1.0)

    if len(sides) == 2:
        sb = sides[1].summary
        ob, oe = sb.beta_eff, sb.beta_eff_err
        nu = float(_welch(sa.beta_eff_err**2, dof(sa), oe**2, dof(sb)))
    else:
        ob, oe, nu = ref.beta_eff, 0.0, dof(sa)
    d, se = sa.beta_eff - ob, math.hypot(sa.beta_eff_err, oe)
    if not (np.isfinite(d) and np.isfinite(se)):
        notes.append("beta_eff is infinite on one side (every draw in a ground state?): not tested")
        z = 0.0
    else:
        z = d / se if se > 0 else 0.0
    return [("beta_eff", "beta", sa.beta_eff, sa.beta_eff_err, ob, oe, z, nu)]


def _q(samples: Samples, spins, target: np.ndarray, pairs, n: int) -> QEstimate | None:
    """Q of the moment estimates (one per replica, or 16 batches of each chain with fewer than
    8 replicas) with ``target`` as the "data" moments."""
    R, T = spins.shape[:2]
    batch = None if R >= 8 else max(1, T // 16)
    if R * (T // (T if batch is None else batch)) < 3:
        return None
    view = Samples(np.asarray(spins), samples.fingerprint, samples.topology_fingerprint, "view")
    goal = np.concatenate([target[n:], target[:n]])  # gradient order: pairs, then fields
    g = gradient_estimates(view, goal, pairs=pairs, fields=True, batch=batch)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant estimates: Q is NaN
        return q_from_estimates(g, steps=T if batch is None else batch)


def _histogram(spins, n: int) -> np.ndarray:
    idx = np.concatenate([state_index(np.asarray(spins[r])) for r in range(spins.shape[0])])
    c = np.bincount(idx, minlength=1 << n).astype(np.float64)
    return c / c.sum()


def _thinned(spins, k: int) -> np.ndarray:
    return np.asarray(spins[:, ::k]).reshape(-1, spins.shape[-1])


def _joint_test(kind: str, sides, ref, permutations: int, seed: int, notes) -> JointTest | None:
    sa = sides[0].summary
    n = sa.n
    xa = _thinned(sides[0].spins, sa.joint_thin)
    pooling = f"bins after pooling states expecting < {MIN_EXPECTED:g} draws"
    if len(sides) == 1:
        if kind == "mmd":
            raise ValueError("the MMD test compares two sample sets; use joint='g-test'")
        g, dof, bins, p = g_test(np.bincount(state_index(xa), minlength=1 << n), p_ref=ref.p)
        detail = f"A thinned by {sa.joint_thin} ({len(xa)} draws) vs exact; {bins} {pooling}"
        return JointTest("G-test", g, p, dof, bins, (len(xa), None), detail)
    sb = sides[1].summary
    xb = _thinned(sides[1].spins, sb.joint_thin)
    if min(len(xa), len(xb)) < 10:
        notes.append("joint test skipped: fewer than 10 draws left after thinning by 2 tau_int")
        return None
    if kind == "g-test":
        if n > EXACT_MAX_N:
            raise ValueError(
                f"the G-test histograms all 2**n states; n = {n} is too many: use joint='mmd'"
            )
        ca = np.bincount(state_index(xa), minlength=1 << n)
        cb = np.bincount(state_index(xb), minlength=1 << n)
        g, dof, bins, p = g_test(ca, cb)
        detail = (
            f"A thinned by {sa.joint_thin} ({len(xa)} draws), B by {sb.joint_thin} "
            f"({len(xb)}); {bins} {pooling}"
        )
        return JointTest("G-test", g, p, dof, bins, (len(xa), len(xb)), detail)
    rng = np.random.default_rng(seed)
    if len(xa) > MMD_MAX_DRAWS:
        xa = xa[rng.choice(len(xa), MMD_MAX_DRAWS, replace=False)]
    if len(xb) > MMD_MAX_DRAWS:
        xb = xb[rng.choice(len(xb), MMD_MAX_DRAWS, replace=False)]
    stat, p, scale = mmd_test(xa, xb, permutations, rng)
    detail = (
        f"kernel exp(-Hamming / {scale:g}), {permutations} permutations; A thinned by "
        f"{sa.joint_thin}, B by {sb.joint_thin}, at most {MMD_MAX_DRAWS} draws each"
    )
    return JointTest("MMD", stat, p, None, None, (len(xa), len(xb)), detail)
