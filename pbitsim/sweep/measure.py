"""What one cell measures: the diagnostics of its samples, and exact values where they fit.

Runs on a worker. Every time and gap here is in **draws** (one draw = ``thin`` steps of the
method; a random-scan step is n single-site updates), so sampled and exact numbers compare
directly: the exact chain of a draw is the method's kernel raised to ``thin`` (times n for
random scan), built from :class:`~pbitsim.diagnostics.ExactChain`.

Columns (``None`` where a diagnostic was not asked for or did not fit; ``skipped`` says why):

* ``tau``: ``tau_energy``, ``tau_energy_err``, ``ess_energy``, ``tau_energy_ok`` (chain longer
  than 50 tau), the same for the magnetisation (``tau_m``...).
* ``q``: the measured Q-hat of the gradient for the teacher's moments, ``q``, ``q_err``
  (jackknife), ``q_naive``, ``q_estimates`` (independent estimates = replicas), ``q_steps`` (M,
  draws per estimate), ``q_components``.
* ``exact`` (n <= exact.max_n, methods with an exact kernel: sequential, random-scan,
  chromatic, without tempering or annealing): ``gap``, ``gap_even``, ``gap_odd``,
  ``relevant_gap``, ``tau_energy_exact``, ``tau_m_exact``, ``tau_grad_exact`` and
  ``tau_grad_multi_mode`` (variance-weighted over the gradient observables), ``tau_single_gap``,
  and with data ``q_exact`` (exact Q(M)), ``q_multi_mode`` and ``q_single_gap`` (the large-M
  predictions, :func:`pbitsim.diagnostics.q.predicted_q`).
* ``kl``: ``kl``, ``kl_err`` (jackknife over replicas): KL(empirical || Boltzmann), plug-in.
* tracking (with ``tracking.factor``): ``multi_mode_ratio`` = q_multi_mode / q and
  ``single_gap_ratio``, ``exact_ratio`` = q_exact / q, and ``*_tracks``: the ratio lies within
  [1/factor, factor] (False when Q-hat <= 0: no measured signal to track).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.samples import Samples

__all__ = ["diagnose", "draw_chain", "teacher_target", "EXACT_METHODS"]

#: methods whose kernel ExactChain builds (plain runs: no tempering, no annealing)
EXACT_METHODS = ("sequential", "random-scan", "chromatic")
#: options that make a run something other than the plain kernel at one beta
_NOT_PLAIN = ("betas", "beta_schedule", "anneal")
#: per-replica histograms for the KL jackknife are kept below this many numbers
_JACKKNIFE_CELLS = 1 << 24


def draw_chain(c: Couplings, method: str, thin: int = 1):
    """The exact chain of one draw of ``method``: its kernel to the power ``thin`` (random scan:
    ``thin * n`` single-site updates, since one of its steps is n updates)."""
    from pbitsim.diagnostics import ExactChain

    steps = thin * (c.n if method == "random-scan" else 1)
    if steps == 1:
        return ExactChain(c, method)
    base = ExactChain(c, method, check=False)
    P = base.P
    if hasattr(P, "toarray"):  # sparse random-scan kernel: cheap products with a dense matrix
        D = P.toarray()
        for _ in range(steps - 1):
            D = np.asarray(P @ D)
    else:
        D = np.linalg.matrix_power(P, steps)
    return ExactChain.from_matrix(D, base.p, flip_symmetric=base.flip_symmetric)


def teacher_target(c: Couplings, data: dict, pairs: np.ndarray) -> np.ndarray:
    """The data term of the gradient: the teacher's exact <s_i s_j> over ``pairs`` (then <s_i>
    when ``data["fields"]``).

    ``data["teacher"]`` is ``"beta"`` (the model at ``factor`` * beta) or ``"perturb"`` (J_ij +
    sigma N(0, 1) on every edge, and h_i + sigma N(0, 1) when fields are fitted; ``seed``).
    """
    from pbitsim.exact import exact_moments

    if data["teacher"] == "beta":
        m, C = exact_moments(c, data["factor"] * c.beta)
    else:
        rng = np.random.default_rng(data["seed"])
        noise = np.triu(rng.normal(size=(c.n, c.n)), 1)
        noise = noise + noise.T
        row = np.repeat(np.arange(c.n), c.degrees)
        J = c.data + data["sigma"] * noise[row, c.indices]
        h = c.h + (data["sigma"] * rng.normal(size=c.n) if data["fields"] else 0.0)
        m, C = exact_moments(c.replace(data=J, h=h))
    target = C[pairs[:, 0], pairs[:, 1]]
    return np.concatenate([target, m]) if data["fields"] else target


def _diagnosed(samples: Samples, c: Couplings, options: dict):
    """(samples, couplings) the diagnostics read: parallel tempering is diagnosed on its
    coldest rung (largest beta), at that beta."""
    betas = samples.info.get("betas")
    if betas is None or len(betas) < 2:
        return samples, c, False
    K = len(betas)
    k = int(np.argmax(betas))
    rows = np.arange(samples.spins.shape[0] // K) * K + k
    info = {
        key: np.asarray(v)[rows]
        for key, v in samples.info.items()
        if isinstance(v, np.ndarray) and v.ndim >= 2 and v.shape[0] == samples.spins.shape[0]
    }
    sub = replace(samples, spins=np.asarray(samples.spins)[rows], info=info)
    return sub, c.with_beta(float(betas[k])), True


def diagnose(samples: Samples, c: Couplings, params: dict, settings: dict) -> dict:
    """The diagnostics columns of one cell (see the module docstring)."""
    from pbitsim.diagnostics import AutocorrWarning, DegenerateEigenvalueWarning
    from pbitsim.sweep.grid import ENUMERATION_MAX_N

    want = set(settings["diagnostics"])
    out: dict = {}
    skipped: list[str] = []
    options = params.get("options") or {}
    s, model, tempered = _diagnosed(samples, c, options)
    out["diagnosed_beta"] = float(model.beta)
    n = model.n
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AutocorrWarning)
        warnings.simplefilter("always", DegenerateEigenvalueWarning)
        if "tau" in want:
            out.update(_tau(s, model))
        pairs = target = None
        if want & {"q", "exact"}:
            from pbitsim.diagnostics.observables import pair_list

            pairs = pair_list(model)
            if n > ENUMERATION_MAX_N:
                skipped.append(f"teacher moments: n = {n} > {ENUMERATION_MAX_N}")
            elif len(pairs) == 0 and not settings["data"]["fields"]:
                skipped.append("q: the model has no couplings (no gradient components)")
            else:
                target = teacher_target(model, settings["data"], pairs)
        if "q" in want and target is not None:
            out.update(_q(s, model, target, pairs, settings["data"]["fields"], tempered))
        if "exact" in want:
            why = _no_exact(model, params, settings)
            if why:
                skipped.append(f"exact: {why}")
            else:
                out.update(_exact(model, params, settings, target, pairs, s.draws))
        if "kl" in want:
            if n > ENUMERATION_MAX_N:
                skipped.append(f"kl: n = {n} > {ENUMERATION_MAX_N}")
            else:
                out.update(_kl(s, model))
    factor = settings["tracking"].get("factor")
    if factor is not None:
        out.update(_tracking(out, float(factor)))
    counts = Counter(type(w.message).__name__ for w in caught)
    out["warnings"] = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or None
    out["skipped"] = "; ".join(skipped) or None
    return out


def _no_exact(c: Couplings, params: dict, settings: dict) -> str | None:
    max_n = int(settings["exact"]["max_n"])
    if params["method"] not in EXACT_METHODS:
        return f"no exact kernel for method {params['method']!r}"
    plain = [k for k in _NOT_PLAIN if k in (params.get("options") or {})]
    if plain:
        return f"option(s) {plain}: not a plain kernel"
    if c.n > max_n:
        return f"n = {c.n} > exact.max_n = {max_n} (dense spectra)"
    return None


def _tau(s: Samples, c: Couplings) -> dict:
    from pbitsim.diagnostics import estimate_tau
    from pbitsim.diagnostics.observables import energies, magnetisation

    out = {}
    if s.draws < 2:
        return out
    e = energies(s) if "energies" in s.info else energies(s, c)
    series = {"energy": e, "m": magnetisation(s.spins)}
    for name, x in series.items():
        if np.ptp(x) == 0:
            out.update({f"tau_{name}": None, f"tau_{name}_ok": False})
            continue
        r = estimate_tau(x, quiet=True)
        out.update(
            {
                f"tau_{name}": float(r.tau),
                f"tau_{name}_err": float(r.tau_err),
                f"ess_{name}": float(r.ess),
                f"tau_{name}_ok": bool(r.converged),
            }
        )
    return out


def _q(s, c, target, pairs, fields, tempered) -> dict:
    from pbitsim.diagnostics import q_from_samples

    # The fingerprint guard holds for plain runs; a tempered run's coldest rung is checked by
    # construction (its rows were chosen by the run's own ladder).
    q = q_from_samples(s, target, pairs=pairs, fields=fields, couplings=None if tempered else c)
    return {
        "q": q.q,
        "q_err": q.q_err,
        "q_naive": q.q_naive,
        "q_estimates": q.replicas,
        "q_steps": q.steps,
        "q_components": q.components,
    }


def _exact(c, params, settings, target, pairs, draws) -> dict:
    from pbitsim.diagnostics.q import gradient_observables, predicted_q

    K = int(settings["exact"]["modes"])
    fields = settings["data"]["fields"]
    chain = draw_chain(c, params["method"], params["thin"])
    out: dict = {"gap": chain.spectral_gap()}
    if chain.flip_symmetric:
        g = chain.sector_gaps()
        out.update(gap_even=g["even"], gap_odd=g["odd"])
    states = chain.states
    out["tau_energy_exact"] = float(chain.tau_int(c.energy(states)))
    out["tau_m_exact"] = float(chain.tau_int(states.mean(axis=1, dtype=np.float64)))
    out["tau_single_gap"] = float(chain.single_gap_tau())
    if len(pairs) or fields:
        F = gradient_observables(states, pairs, fields)
        me = chain.mode_expansion(F, K)
        var = np.atleast_1d(me.variance)
        w = var / var.sum() if var.sum() > 0 else var
        out["relevant_gap"] = float(np.nanmin(np.atleast_1d(me.relevant_gap)))
        out["tau_grad_exact"] = float(w @ np.atleast_1d(me.tau_exact))
        out["tau_grad_multi_mode"] = float(w @ np.atleast_1d(me.tau_multi_mode))
    if target is not None:
        pred = predicted_q(chain, target, draws, pairs=pairs, fields=fields, K=K)
        out.update(
            q_exact=float(pred["exact"]),
            q_multi_mode=float(pred["multi_mode"]),
            q_single_gap=float(pred["single_gap"]),
        )
    return out


def _kl(s: Samples, c: Couplings) -> dict:
    from pbitsim.exact import boltzmann, state_index

    p = boltzmann(c)
    R, n = s.spins.shape[0], c.n
    idx = np.stack([state_index(np.asarray(s.spins[r])) for r in range(R)])
    total = np.bincount(idx.ravel(), minlength=1 << n).astype(np.float64)

    def kl(counts):
        q = counts / counts.sum()
        m = q > 0
        return float(np.sum(q[m] * np.log(q[m] / p[m])))

    out = {"kl": kl(total), "kl_err": None}
    if R >= 3 and R * (1 << n) <= _JACKKNIFE_CELLS:
        loo = np.array([kl(total - np.bincount(idx[r], minlength=1 << n)) for r in range(R)])
        out["kl_err"] = float(np.sqrt((R - 1) / R * np.sum((loo - loo.mean()) ** 2)))
    return out


def _tracking(out: dict, factor: float) -> dict:
    q = out.get("q")
    res = {}
    for name, key in (
        ("multi_mode", "q_multi_mode"),
        ("single_gap", "q_single_gap"),
        ("exact", "q_exact"),
    ):
        pred = out.get(key)
        if q is None or pred is None:
            res[f"{name}_ratio"], res[f"{name}_tracks"] = None, None
            continue
        ratio = pred / q if q > 0 else float("nan")
        res[f"{name}_ratio"] = float(ratio)
        res[f"{name}_tracks"] = bool(q > 0 and 1 / factor <= ratio <= factor)
    return res
