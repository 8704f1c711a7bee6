"""Reversibility against decorrelation: the forward/backward sweep mixture from q = 1/2 to 1.

An acceleration argument wants a *reversible* sampler and many decorrelated gradient samples per
unit of work. The one-parameter family ``"sweep-mixture"`` (pbitsim.diagnostics.kernels; the
sampler ``method="sweep-mixture"``) sweeps forward with probability q, else backward: q = 1/2 is
reversible, q = 1 (or 0) is the plain sequential sweep. Beside it: the symmetric sweep (forward
then backward, 2n - 1 updates, reversible) and random scan (reversible).

Metric (fixed before the run): decorrelated gradient samples per spin update,

    ESS/update = (sum_k Var_p(f_k)) / (sum_k Var_p(f_k) tau_int(f_k)) / (updates per step),

over the gradient observables f_k (s_i s_j on the model's edges, and s_i), the quantity that
multiplies the work in Q: Q(M updates) ~ ||g||^2 M ESS/update / sum_k Var_p(f_k). Also the
median over observables of 1 / (tau_int u). Non-reversibility: ||A - A^T||_F / ||A||_F with
A = D^{1/2} P D^{-1/2}.

* Exact (2^n states): a fully visible Boltzmann machine on the 3 x 3 centre crop of the digits
  (n = 9), trained to maximum likelihood (exact gradient, Adam, 300 steps), and a planted-mode RBM
  (6 + 3, strength 1.5, no fields; section 2's model) whose slow mode switches between patterns.
  q = 0, 0.1, ..., 1. The exact values are checked against the sampler (16 replicas x 20000 steps,
  pbitsim's estimate_tau).
* Sampled: the digits RBM of section 6 (64 + 16, trained by pbitsim.learn.train: PCD-5 with the
  chromatic sampler, 15 epochs), q = 0, 0.1, ..., 1 plus the symmetric sweep, random scan and the
  chromatic sampler, 16 replicas x 10000 steps after 500 of burn-in, on 64 fixed random v_i h_j
  pairs and 32 fields (16 visible, all 16 hidden).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pbitsim.blas import blas_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402
from pt_ladder import trained_rbm  # noqa: E402
from regulariser_dose import Adam, crop_digits, log_likelihood  # noqa: E402

from pbitsim import models  # noqa: E402
from pbitsim.couplings import Couplings  # noqa: E402
from pbitsim.diagnostics.autocorr import estimate_tau  # noqa: E402
from pbitsim.diagnostics.kernels import (  # noqa: E402
    exact_chain,
    non_reversibility,
    transition_matrix,
    updates_per_step,
)
from pbitsim.diagnostics.observables import pair_list  # noqa: E402
from pbitsim.diagnostics.q import data_moments, gradient_observables  # noqa: E402

NAME = "reversibility"

FULL = {
    "crop": (3, 3, 3),
    "ml_steps": 300,
    "planted": (6, 3),
    "q_exact": [round(0.1 * k, 1) for k in range(11)],
    "check_replicas": 16,
    "check_steps": 20000,
    "rbm": {"hidden": 16, "epochs": 15, "classes": None},
    "q_sampled": [round(0.1 * k, 1) for k in range(11)],
    "replicas": 16,
    "steps": 10000,
    "burn_in": 500,
    "pairs": 64,
}
QUICK = {
    "crop": (3, 3, 2),
    "ml_steps": 60,
    "planted": (3, 2),
    "q_exact": [0.0, 0.25, 0.5, 0.75, 1.0],
    "check_replicas": 8,
    "check_steps": 1000,
    "rbm": {"hidden": 8, "epochs": 2, "classes": (0, 1)},
    "q_sampled": [0.0, 0.5, 1.0],
    "replicas": 8,
    "steps": 1000,
    "burn_in": 200,
    "pairs": 16,
}


def ml_fvbm(r0, c0, size, steps, seed) -> Couplings:
    """The maximum-likelihood FVBM on a digits crop (exact gradient, Adam)."""
    X = crop_digits(r0, c0, size)
    n = X.shape[1]
    pairs = pair_list("all", n)
    topo = Couplings.from_edges(n, [(int(i), int(j), 0.0) for i, j in pairs], h=np.zeros(n))
    target = data_moments(X, pairs, fields=True)
    F = gradient_observables(exact_chain(topo).states, pairs, True)
    rng = np.random.default_rng(seed)
    h0 = np.arctanh(np.clip(X.mean(axis=0), -0.98, 0.98))
    theta = np.concatenate([rng.normal(0.0, 0.01, len(pairs)), h0])
    opt = Adam(0.05)
    for _ in range(steps):
        a = F @ theta
        p = np.exp(a - a.max())
        p /= p.sum()
        theta = opt.step(theta, -(target - p @ F))
    ll = log_likelihood(theta, target, F)
    from pbitsim.diagnostics.derivatives import with_parameters

    return with_parameters(topo, theta), ll


def ess_exact(c, kernel, q=None):
    """Exact (ESS/update, median 1/(tau u), tau per observable, non-reversibility)."""
    ch = exact_chain(c, kernel, q=q)
    F = gradient_observables(ch.states, pair_list(c), fields=True)
    var, tau = ch.variance(F), ch.tau_int(F)
    u = updates_per_step(kernel, c.n)
    P = ch.P if kernel != "random-scan" else transition_matrix(c, kernel, sparse=True)
    return {
        "ess_per_update": float(var.sum() / (var * tau).sum() / u),
        "median_inv_tau_per_update": float(np.median(1.0 / (tau * u))),
        "tau_max": float(tau.max()),
        "non_reversibility": non_reversibility(P, ch.p),
        "updates_per_step": u,
        "_tau": tau,
        "_var": var,
    }


def sampled_taus(c, method, obs_fn, replicas, steps, burn_in, seed, **kw):
    """(tau, tau_err, Var, converged) of the observables on a sampler run."""
    s = cm.sample(c, steps, method=method, replicas=replicas, burn_in=burn_in, seed=seed, **kw)
    obs = obs_fn(s.spins)
    it = estimate_tau(obs, quiet=True)
    var = obs.reshape(-1, obs.shape[-1]).var(axis=0)
    one = np.atleast_1d
    return one(it.tau), one(it.tau_err), var, one(it.converged)


def ess_sampled(tau, tau_err, var, u) -> tuple[float, float]:
    """ESS/update = sum Var / sum Var tau / u, and its error with the tau errors taken as fully
    correlated (added linearly: conservative)."""
    total = float((var * tau).sum())
    ess = float(var.sum()) / total / u
    return ess, ess * float((var * tau_err).sum()) / total


def part_exact(cfg, seed):
    r0, c0, size = cfg["crop"]
    fvbm, ll = ml_fvbm(r0, c0, size, cfg["ml_steps"], seed)
    nv, nh = cfg["planted"]
    planted = models.planted(nv, nh, patterns=2, strength=1.5, seed=seed)
    rows = []
    for label, c in (
        (f"FVBM {size}x{size} digits (ML)", fvbm),
        (f"planted RBM {nv}+{nh}", planted),
    ):
        runs = [("sweep-mixture", q, {"q": q}) for q in cfg["q_exact"]]
        runs += [("symmetric", np.nan, {}), ("random-scan", np.nan, {})]
        for kernel, q, kw in runs:
            ex = ess_exact(c, kernel, kw.get("q"))
            rows.append(
                {"model": label, "kernel": kernel, "q": q, **_check(c, kernel, ex, kw, cfg, seed)}
            )
    return rows, {"fvbm_log_likelihood": ll}


def _check(c, kernel, ex, kw, cfg, seed) -> dict:
    """The exact row, and the same ESS/update measured on the sampler."""
    pairs = pair_list(c)
    tau, tau_err, var, conv = sampled_taus(
        c,
        kernel,
        lambda spins: gradient_observables(spins, pairs, True),
        cfg["check_replicas"],
        cfg["check_steps"],
        200,
        seed + 7,
        **kw,
    )
    u = c.n if kernel == "random-scan" else ex["updates_per_step"]  # a sampler step: n updates
    ess, err = ess_sampled(tau, tau_err, var, u)
    return {
        **{k: v for k, v in ex.items() if not k.startswith("_")},
        "ess_per_update_sampled": ess,
        "ess_sampled_err": err,
        "tau_converged": f"{int(conv.sum())}/{conv.size}",
    }


def part_sampled(cfg, seed):
    r = cfg["rbm"]
    model, history = trained_rbm(r["hidden"], r["epochs"], seed, r["classes"])
    c = model.to_couplings()
    nv, nh = model.n_visible, model.n_hidden
    rng = np.random.default_rng(seed)
    pick = rng.choice(nv * nh, size=min(cfg["pairs"], nv * nh), replace=False)
    i, j = np.divmod(pick, nh)
    pairs = np.column_stack([i, nv + j])
    vis = np.sort(rng.choice(nv, size=min(nh, nv), replace=False))
    units = np.concatenate([vis, nv + np.arange(nh)])

    def obs(spins):
        return np.concatenate(
            [gradient_observables(spins, pairs), np.asarray(spins[..., units], np.float64)], -1
        )

    runs = [("sweep-mixture", q, {"q": q}) for q in cfg["q_sampled"]]
    runs += [("symmetric", np.nan, {}), ("random-scan", np.nan, {}), ("chromatic", np.nan, {})]
    rows = []
    for method, q, kw in runs:
        tau, tau_err, var, conv = sampled_taus(
            c, method, obs, cfg["replicas"], cfg["steps"], cfg["burn_in"], seed + 3, **kw
        )
        u = {"symmetric": 2 * c.n - 1}.get(method, c.n)  # sampler steps: n updates but symmetric
        ess, err = ess_sampled(tau, tau_err, var, u)
        rows.append(
            {
                "model": f"digits RBM {nv}+{nh}",
                "kernel": method,
                "q": q,
                "ess_per_update": ess,
                "ess_err": err,
                "median_inv_tau_per_update": float(np.nanmedian(1.0 / (tau * u))),
                "tau_median": float(np.nanmedian(tau)),
                "tau_max": float(np.nanmax(tau)),
                "updates_per_step": u,
                "tau_converged": f"{int(conv.sum())}/{conv.size}",
            }
        )
    info = {
        "rbm_log_likelihood_first": history[0].log_likelihood,
        "rbm_log_likelihood_last": history[-1].log_likelihood,
        "rbm_max_abs_W": float(np.abs(model.W).max()),
    }
    return rows, info


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    # scipy.linalg loads its own BLAS after _common limited the threads: limit it too (many
    # small solves, which threads on a shared 2-core machine only slow down)
    blas_threads(1)
    out = cm.outdir(args, NAME)
    t0 = time.time()
    cfg = QUICK if args.quick else FULL
    exact_rows, info = part_exact(cfg, args.seed)
    cm.table(
        exact_rows,
        out / "exact",
        "exact: decorrelated gradient samples per spin update (ESS/update) and non-reversibility",
    )
    sampled_rows, info2 = part_sampled(cfg, args.seed)
    info.update(info2)
    cm.table(sampled_rows, out / "sampled", "sampled on the digits RBM (tau in the method's steps)")
    summary = {"info": info}
    for label in dict.fromkeys(r["model"] for r in exact_rows + sampled_rows):
        rs = [r for r in exact_rows + sampled_rows if r["model"] == label]
        mix = {r["q"]: r["ess_per_update"] for r in rs if r["kernel"] == "sweep-mixture"}
        ref = {r["kernel"]: r["ess_per_update"] for r in rs if r["kernel"] != "sweep-mixture"}
        summary[label] = {
            "ess_q_half": mix.get(0.5),
            "ess_q_one": mix.get(1.0),
            "ess_q_zero": mix.get(0.0),
            "forward_over_reversible_mixture": mix.get(1.0) / mix.get(0.5),
            **{f"ess_{k}": v for k, v in ref.items()},
        }
    summary["runtime_s"] = time.time() - t0
    cm.write_json(summary, out / "summary.json")
    _figure(exact_rows, sampled_rows, out / f"{NAME}.png")
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"exact": exact_rows, "sampled": sampled_rows, "summary": summary}


def _figure(exact_rows, sampled_rows, path):
    plt = cm.pyplot()
    labels = list(dict.fromkeys(r["model"] for r in exact_rows + sampled_rows))
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(5.0 * (len(labels) + 1), 4.4))
    for a, label in zip(axes, labels):
        rs = [r for r in exact_rows + sampled_rows if r["model"] == label]
        mix = [r for r in rs if r["kernel"] == "sweep-mixture"]
        q = [r["q"] for r in mix]
        err = [r.get("ess_err", 0.0) for r in mix]
        a.errorbar(q, [r["ess_per_update"] for r in mix], err, fmt="o-", label="sweep mixture")
        if "ess_per_update_sampled" in mix[0]:
            a.errorbar(
                q,
                [r["ess_per_update_sampled"] for r in mix],
                [r["ess_sampled_err"] for r in mix],
                fmt="kx",
                label="(sampled check)",
            )
        for r, ls in zip([r for r in rs if r["kernel"] != "sweep-mixture"], ("--", ":", "-.")):
            a.axhline(r["ess_per_update"], ls=ls, color="gray", label=r["kernel"])
        a.set(xlabel="q (probability of a forward sweep)", ylabel="ESS of the gradient / update")
        a.set_title(label + (" (exact)" if "non_reversibility" in mix[0] else " (sampled)"))
        if "non_reversibility" in mix[0]:
            b = a.twinx()
            b.plot(q, [r["non_reversibility"] for r in mix], "r.-", alpha=0.5)
            b.set_ylabel("||A - A^T|| / ||A||", color="r")
        a.legend(fontsize=7)
    # the trade-off on one axis: A_q - A_q^T = (2q - 1)(A_F - A_F^T)
    a = axes[-1]
    for k, label in enumerate(labels):
        mix = [r for r in exact_rows + sampled_rows if r["model"] == label]
        half = next(
            r["ess_per_update"] for r in mix if r["kernel"] == "sweep-mixture" and r["q"] == 0.5
        )
        ref = {
            r["kernel"]: r["ess_per_update"] / half for r in mix if r["kernel"] != "sweep-mixture"
        }
        pts = sorted(
            (abs(2 * r["q"] - 1), r["ess_per_update"] / half)
            for r in mix
            if r["kernel"] == "sweep-mixture"
        )
        a.plot(*zip(*pts), "o-", color=f"C{k}", label=label)
        if "symmetric" in ref:
            a.plot([0], [ref["symmetric"]], "s", color=f"C{k}", mfc="none")
    a.plot([], [], "ks", mfc="none", label="symmetric sweep (reversible)")
    a.axhline(1.0, color="gray", lw=0.6)
    a.set(
        xlabel="|2q - 1|  (non-reversibility, in units of the sweep's)",
        ylabel="ESS/update relative to q = 1/2",
        title="decorrelation against reversibility",
    )
    a.legend(fontsize=7)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
