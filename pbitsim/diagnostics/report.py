"""One-call diagnosis of a sample set (what ``pbitsim diagnose`` prints and plots).

:func:`diagnose` measures tau_int / ESS of the chosen observables, Q (with data) or the gradient
noise (without), and the PT profile for parallel-tempering runs; :meth:`Diagnosis.text` renders the
table and :meth:`Diagnosis.plot` writes a PNG (matplotlib, Agg backend).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.autocorr import AutocorrWarning, IntegratedTime, estimate_tau
from pbitsim.diagnostics.observables import (
    edge_mean,
    energies,
    magnetisation,
    pair_list,
    pair_products,
)
from pbitsim.diagnostics.pt import PTProfile, is_pt, pt_profile
from pbitsim.diagnostics.q import (
    QEstimate,
    gradient_estimates,
    jackknife_groups,
    q_from_estimates,
)
from pbitsim.samples import Samples, check_fingerprint

__all__ = ["OBSERVABLES", "Diagnosis", "diagnose"]

#: Observables :func:`diagnose` knows: energy, magnetisation, mean s_i s_j over the edges, and every
#: edge's s_i s_j separately (summarised by the slowest).
OBSERVABLES = ("energy", "magnetisation", "edges", "pairs")

#: Without a model, "edges" falls back to all pairs; beyond this many spins that is too many.
MAX_ALL_PAIRS_N = 64


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`."""

    samples_repr: str
    rung: int | None
    beta: float | None
    thin: int
    taus: dict = field(default_factory=dict)  # name -> IntegratedTime
    q: QEstimate | None = None
    noise: float | None = None
    noise_steps: int | None = None
    pt: PTProfile | None = None
    notes: list = field(default_factory=list)

    def rows(self) -> list[tuple[str, ...]]:
        """(observable, tau_int, +-, ESS, window, trusted) rows; tau in draws."""
        out = []
        for name, it in self.taus.items():
            tau = np.atleast_1d(it.tau)
            if tau.size > 1:  # several observables: report the slowest one
                k = int(np.nanargmax(tau)) if np.any(np.isfinite(tau)) else 0
                label = f"{name} (slowest of {tau.size}: #{k})"
                vals = [
                    np.atleast_1d(x)[k]
                    for x in (it.tau, it.tau_err, it.ess, it.window, it.converged)
                ]
            else:
                label = name
                vals = [
                    np.atleast_1d(x)[0]
                    for x in (it.tau, it.tau_err, it.ess, it.window, it.converged)
                ]
            t, e, ess, w, ok = vals
            out.append(
                (
                    label,
                    f"{t:.4g}",
                    f"{e:.2g}",
                    f"{ess:.4g}",
                    f"{int(w)}",
                    "yes" if ok else "NO (see notes)",
                )
            )
        return out

    def text(self) -> str:
        lines = [self.samples_repr]
        if self.rung is not None:
            lines.append(f"autocorrelation at PT rung {self.rung} (beta = {self.beta:g})")
        # docs/diagnostics.md "Time units": a draw is `thin` sampler steps
        unit = "draws" + (f" (x thin {self.thin} = sampler steps)" if self.thin > 1 else "")
        lines.append(
            f"{'observable':<34} {'tau_int':>9} {'+-':>8} {'ESS':>10} {'window':>7}"
            f"  trusted     [tau in {unit}]"
        )
        for r in self.rows():
            lines.append(f"{r[0]:<34} {r[1]:>9} {r[2]:>8} {r[3]:>10} {r[4]:>7}  {r[5]}")
        if self.q is not None:
            lines.append(str(self.q))
        elif self.noise is not None:
            lines.append(
                f"gradient noise S^2 = {self.noise:.4g} (summed variance of the {self.noise_steps}-"
                f"draw average of the gradient observables); Q = ||g||^2 / S^2 for a gradient of "
                f"norm ||g|| (pass --data for Q)"
            )
        if self.pt is not None:
            lines.append("parallel tempering:")
            lines.append(self.pt.summary())
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self, path) -> Path:
        """Write the PNG report: autocorrelation curves, and the PT acceptance / C(beta) profile."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        ncols = 3 if self.pt is not None else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=False)
        ax = axes[0, 0]
        for name, it in self.taus.items():
            acf = (
                it.acf
                if it.acf.ndim == 1
                else it.acf[:, int(np.nanargmax(np.where(np.isfinite(it.tau), it.tau, -np.inf)))]
            )
            w = int(np.max(it.window))
            lag = np.arange(min(len(acf), max(4 * w, 20)))
            (line,) = ax.plot(lag, acf[lag], label=f"{name} (tau {np.nanmax(it.tau):.3g})")
            ax.axvline(w, color=line.get_color(), ls=":", lw=0.8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="lag (draws)", ylabel="autocorrelation", title="rho(t), window dotted")
        ax.legend(fontsize=8)
        if self.pt is not None:
            pt = self.pt
            mid = 0.5 * (pt.betas[1:] + pt.betas[:-1])
            axes[0, 1].errorbar(mid, pt.acceptance, yerr=pt.acceptance_err, fmt="o-")
            axes[0, 1].axhline(pt.threshold, color="r", ls="--", lw=0.8, label="starving below")
            axes[0, 1].set(
                xlabel="beta (rung midpoint)",
                ylabel="swap acceptance",
                ylim=(0, 1.05),
                title="acceptance per rung",
            )
            axes[0, 1].legend(fontsize=8)
            if pt.specific_heat is not None:
                axes[0, 2].errorbar(
                    pt.betas, pt.specific_heat, yerr=pt.specific_heat_err, fmt="o-", label="ladder"
                )
                if pt.suggested_betas is not None:
                    for b in pt.suggested_betas:
                        axes[0, 2].axvline(b, color="g", lw=0.6, alpha=0.6)
                axes[0, 2].set(
                    xlabel="beta",
                    ylabel="C(beta) = beta^2 Var(E)",
                    title="specific heat (green: suggested ladder)",
                )
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _tau(series, name, notes, c, tol) -> IntegratedTime:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AutocorrWarning)
        it = estimate_tau(series, c=c, tol=tol, quiet=True)
    if caught or not np.all(it.converged):
        notes.append(untrusted_note(name, it, tol))
    return it


def untrusted_note(name: str, it: IntegratedTime, tol: float) -> str:
    """The report's note for an observable whose tau is not trusted (in memory and streamed)."""
    why = "; ".join(it.reasons) or f"chain shorter than {tol:g} tau_int"
    return f"{name}: do not trust its tau ({why})"


def choose_rung(samples: Samples, couplings, rung, pt) -> tuple[int, float, np.ndarray]:
    """PT runs: the rung to analyse (``rung``, else the model's beta, else the largest beta),
    its beta, and the rows of ``samples`` that hold it."""
    betas = pt.betas
    if rung is not None:
        k = int(rung)
    elif couplings is not None and np.any(np.isclose(betas, couplings.beta)):
        k = int(np.argmin(np.abs(betas - couplings.beta)))
    else:
        k = int(np.argmax(betas))
    if not 0 <= k < len(betas):
        raise ValueError(f"rung must be in 0..{len(betas) - 1}, not {rung}")
    K = len(betas)
    return k, float(betas[k]), np.arange(samples.replicas // K) * K + k


def gradient_pairs(samples: Samples, couplings, observables, data, notes: list):
    """The pairs for 'edges' and Q: the model's edges, else all pairs i < j for small n (noted),
    else None."""
    if couplings is not None:
        return pair_list(couplings)
    if samples.n <= MAX_ALL_PAIRS_N:
        if "edges" in observables or "pairs" in observables or data is not None:
            notes.append("no model given: 'edges' and Q use all pairs i < j")
        return pair_list(None, n=samples.n)
    return None


def diagnose(
    samples: Samples,
    couplings: Couplings | None = None,
    *,
    observables=("energy", "magnetisation", "edges"),
    data=None,
    batch: int | None = None,
    rung: int | None = None,
    c: float = 5.0,
    tol: float = 50.0,
    allow_mismatch: bool = False,
) -> Diagnosis:
    """Autocorrelation, Q and (for PT runs) ladder health of ``samples``.

    Parameters
    ----------
    samples : Samples
    couplings : Couplings, optional
        The model (needed for energies without ``info["energies"]`` and for the edge list); its
        fingerprint must match the samples' unless ``allow_mismatch``.
    observables : sequence of str
        Any of :data:`OBSERVABLES`.
    data : array_like, optional
        Data spins (N_D, n) for Q; without, the gradient noise S^2 is reported.
    batch : int, optional
        Draws per gradient estimate (default: a whole replica, or draws // 16 with < 8 replicas).
    rung : int, optional
        PT runs: the temperature slot to analyse (default: the model's beta if given, else the
        largest beta).
    c, tol : float
        Sokal's window factor (used only by ``method="sokal"``) and the minimum chain length in
        tau (see :func:`estimate_tau`).
    """
    unknown = set(observables) - set(OBSERVABLES)
    if unknown:
        raise ValueError(f"unknown observables {sorted(unknown)}; choose from {OBSERVABLES}")
    if couplings is not None:
        check_fingerprint(samples, couplings, allow_mismatch)
    with warnings.catch_warnings():
        # checked (and, if accepted, warned about) once above
        warnings.filterwarnings("ignore", message="samples' couplings fingerprint differs")
        return _diagnose(samples, couplings, observables, data, batch, rung, c, tol)


def _diagnose(samples, couplings, observables, data, batch, rung, c, tol) -> Diagnosis:
    notes: list[str] = []
    thin = int(samples.settings.get("thin", 1) or 1)
    pt = None
    view = samples
    k = beta = None
    if is_pt(samples):
        pt = pt_profile(samples, couplings, allow_mismatch=True)
        k, beta, slots = choose_rung(samples, couplings, rung, pt)
        info = {}
        if "energies" in samples.info:
            info["energies"] = np.asarray(samples.info["energies"])[slots]
        view = Samples(
            np.asarray(samples.spins[slots]),
            samples.fingerprint,
            samples.topology_fingerprint,
            samples.method,
            samples.seed,
            samples.settings,
            info,
        )
    pairs = gradient_pairs(samples, couplings, observables, data, notes)
    diag = Diagnosis(repr(samples), k, beta, thin, pt=pt, notes=notes)
    spins = view.spins
    for name in observables:
        if name == "energy":
            if couplings is None and "energies" not in view.info:
                notes.append("energy skipped: no model and no recorded energies")
                continue
            diag.taus[name] = _tau(
                energies(view, couplings, allow_mismatch=True), name, notes, c, tol
            )
        elif name == "magnetisation":
            diag.taus[name] = _tau(magnetisation(spins), name, notes, c, tol)
        elif pairs is None:
            notes.append(f"{name} skipped: pass the model for its edges")
        elif name == "edges":
            diag.taus["edges <s_i s_j>"] = _tau(edge_mean(spins, pairs), name, notes, c, tol)
        elif name == "pairs":
            diag.taus["pairs s_i s_j"] = _tau(pair_products(spins, pairs), name, notes, c, tol)
    if pairs is not None and len(pairs):
        if batch is None and view.replicas < 8:
            batch = max(1, view.draws // 16)
            notes.append(f"few replicas: gradient estimates from batches of {batch} draws")
        nb = view.replicas * (view.draws // (view.draws if batch is None else batch))
        if nb >= 3:
            target = data if data is not None else np.zeros(len(pairs))
            g = gradient_estimates(view, target, pairs=pairs, batch=batch)
            if data is not None:
                per = view.draws // (view.draws if batch is None else batch)
                # batches of one chain are correlated: the jackknife leaves them out together
                groups = jackknife_groups(view.replicas, per) if per > 1 else None
                diag.q = q_from_estimates(
                    g, steps=view.draws if batch is None else batch, groups=groups
                )
            else:
                diag.noise = float(g.var(axis=0, ddof=1).sum())
                diag.noise_steps = view.draws if batch is None else batch
    return diag
