"""Asynchronous, un-coloured p-bit updates bias the samples; the bias vanishes as p -> 0.

``pbitsim.sample(..., method="async", mode="poisson", p=p, delay=d)``: every tick each p-bit fires
with probability p and reads its neighbours as they were d ticks earlier; p-bits that fire in the
same tick update in parallel from the same old state. Coupled p-bits updated together is what
biases the distribution (p = 1 is synchronous Little dynamics); with p -> 0 at most one p-bit
fires per tick and the dynamics become exact random-scan Gibbs sampling. A stale read (d > 0)
biases it too.

For a small ferromagnet and a small spin glass (n = 6: every state enumerated) the script measures,
against exact enumeration of the Boltzmann distribution,

* KL(empirical || Boltzmann) in nats (the plug-in estimate, which has a finite-sample floor of about
  (number of states - 1) / (2 N_eff); the ``random-scan`` row is exact Gibbs sampling with the same
  number of draws: the floor to compare against);
* the moment error sqrt(sum_{i<j} (<s_i s_j> - exact)^2 + sum_i (<s_i> - exact)^2);

with jackknife error bars over independent replicas (both from
:func:`pbitsim.diagnostics.compare.compare`, which also gives the verdict column ``consistent``:
the samples pass its tests against Boltzmann at alpha = 0.05), as a function of p (delay 0) and of
the delay (at fixed p). For delay 0 the async chain is a Markov chain on the 2^n states whose tick
kernel is known in closed form (each p-bit independently keeps its value with probability 1 - p
or is resampled from its conditional given the old state), so the exact asymptotic bias
KL(stationary || Boltzmann) is printed as well (column ``KL_exact_async``). Time is in async steps
(round(1/p) ticks: each p-bit fires about once per step).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg as sla

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import exact, models  # noqa: E402
from pbitsim.diagnostics.compare import compare  # noqa: E402

NAME = "async_bias"


def test_models(seed: int) -> dict:
    return {
        "ferromagnet": models.ferromagnet(6, J=1.0, beta=0.25),
        "spin-glass": models.spin_glass(6, p=0.7, seed=seed + 1, field=0.3, beta=0.8),
    }


def async_tick_kernel(c, p: float) -> np.ndarray:
    """Exact one-tick transition matrix of the poisson async dynamics with delay 0.

    T[x, y] = prod_i [(1 - p) 1{y_i = x_i} + p P(s_i = y_i | x)]: every p-bit independently holds
    or is resampled from its heat-bath conditional given the *old* state x.
    """
    S = exact.all_states(c.n).astype(np.float64)  # (N, n)
    field = S @ c.to_scipy().toarray() + c.h  # (N, n): I_i(x), J symmetric
    up = 0.5 * (1.0 + np.tanh(c.beta * field))  # P(s_i = +1 | x)
    T = np.ones((len(S), len(S)))
    for i in range(c.n):
        yi = S[:, i][None, :]  # target value of spin i
        xi = S[:, i][:, None]
        cond = np.where(yi > 0, up[:, i][:, None], 1.0 - up[:, i][:, None])
        T *= (1.0 - p) * (xi == yi) + p * cond
    return T


def stationary(T: np.ndarray) -> np.ndarray:
    w, v = sla.eig(T.T)
    pi = np.abs(np.real(v[:, np.argmin(np.abs(w - 1.0))]))
    return pi / pi.sum()


def measure(samples, c) -> dict:
    """KL and moment error against Boltzmann, with jackknife (leave-one-replica-out) standard
    errors, and the verdict at alpha = 0.05: :func:`pbitsim.diagnostics.compare.compare`, the one
    place for sample-vs-exact statistics (moments over all pairs i < j, as the moment error is
    defined above)."""
    r = compare(samples, model=c, reference="boltzmann", pairs="all")
    fit = r.a.exact["boltzmann"]
    return {
        "KL": fit.kl,
        "KL_err": fit.kl_err,
        "moment_err": fit.distance,
        "moment_err_se": fit.distance_err,
        "consistent": r.consistent,
    }


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    if args.quick:
        ps, delays, sweeps, R = [1.0, 0.05], [0, 4], 2000, 8
    else:
        ps, delays, sweeps, R = (
            [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01],
            [0, 1, 2, 5, 10, 20],
            20000,
            16,
        )
    burn = 200
    rows = []
    for name, c in test_models(args.seed).items():
        N = R * sweeps
        base = cm.sample(c, sweeps, method="random-scan", replicas=R, burn_in=burn, seed=args.seed)
        rows.append(
            {
                "model": name,
                "sampler": "random-scan",
                "p": 0.0,
                "delay": 0,
                "draws": N,
                "KL_exact_async": 0.0,
                **measure(base, c),
            }
        )
        for p in ps:
            pi = stationary(async_tick_kernel(c, p))
            kl_exact = exact.kl_divergence(pi, exact.boltzmann(c))
            s = cm.sample(
                c,
                sweeps,
                method="async",
                mode="poisson",
                p=p,
                delay=0,
                replicas=R,
                burn_in=burn,
                seed=args.seed,
            )
            rows.append(
                {
                    "model": name,
                    "sampler": "async",
                    "p": p,
                    "delay": 0,
                    "draws": N,
                    "KL_exact_async": kl_exact,
                    **measure(s, c),
                }
            )
        for d in delays:
            if d == 0 and args.p_delay in ps:
                continue
            s = cm.sample(
                c,
                sweeps,
                method="async",
                mode="poisson",
                p=args.p_delay,
                delay=d,
                replicas=R,
                burn_in=burn,
                seed=args.seed,
            )
            rows.append(
                {
                    "model": name,
                    "sampler": "async",
                    "p": args.p_delay,
                    "delay": d,
                    "draws": N,
                    "KL_exact_async": np.nan,
                    **measure(s, c),
                }
            )
    rows.sort(key=lambda r: (r["model"], r["delay"], -r["p"]))
    cm.table(
        rows,
        out / NAME,
        "async (poisson) vs exact enumeration; errors: jackknife over "
        "replicas; KL_exact_async: exact stationary bias (delay 0)",
    )
    summary = {}
    for name in test_models(args.seed):
        by = {(r["p"], r["delay"]): r for r in rows if r["model"] == name}
        hi, lo = by[(1.0, 0)], by[(min(ps), 0)]
        z = (hi["KL"] - lo["KL"]) / np.hypot(hi["KL_err"], lo["KL_err"])
        summary[name] = {
            "KL_p1": hi["KL"],
            "KL_p1_err": hi["KL_err"],
            f"KL_p{min(ps):g}": lo["KL"],
            f"KL_p{min(ps):g}_err": lo["KL_err"],
            "KL_gibbs_floor": by[(0.0, 0)]["KL"],
            "separation_sigma": z,
            "KL_exact_async_p1": hi["KL_exact_async"],
            f"KL_exact_async_p{min(ps):g}": lo["KL_exact_async"],
        }
        print(
            f"{name}: KL at p=1 {hi['KL']:.4g} +- {hi['KL_err']:.2g}, at p={min(ps):g} "
            f"{lo['KL']:.4g} +- {lo['KL_err']:.2g} ({z:.1f} sigma apart); exact Gibbs with the "
            f"same draws {by[(0.0, 0)]['KL']:.4g}; exact async bias "
            f"{hi['KL_exact_async']:.3g} -> {lo['KL_exact_async']:.3g}"
        )
    summary["runtime_s"] = time.time() - t0
    cm.write_json(summary, out / "summary.json")
    _figure(rows, args, out / f"{NAME}.png")
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "summary": summary}


def _figure(rows, args, path):
    plt = cm.pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for k, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        col = f"C{k}"
        mine = [r for r in rows if r["model"] == name]
        pr = sorted(
            (r for r in mine if r["delay"] == 0 and r["sampler"] == "async"), key=lambda r: r["p"]
        )
        floor = next(r for r in mine if r["sampler"] == "random-scan")
        p = [r["p"] for r in pr]
        ax[0].errorbar(
            p,
            [r["KL"] for r in pr],
            yerr=[r["KL_err"] for r in pr],
            fmt="o-",
            color=col,
            capsize=3,
            label=f"{name}: sampled",
        )
        ax[0].plot(
            p,
            [r["KL_exact_async"] for r in pr],
            "--",
            color=col,
            label=f"{name}: exact async stationary",
        )
        ax[0].axhspan(
            floor["KL"] - floor["KL_err"], floor["KL"] + floor["KL_err"], color=col, alpha=0.15
        )
        ax[0].axhline(floor["KL"], color=col, lw=0.8, ls=":")
        ax[1].errorbar(
            p,
            [r["moment_err"] for r in pr],
            yerr=[r["moment_err_se"] for r in pr],
            fmt="o-",
            color=col,
            capsize=3,
            label=name,
        )
        ax[1].axhline(floor["moment_err"], color=col, lw=0.8, ls=":")
        dr = sorted((r for r in mine if r["p"] == args.p_delay), key=lambda r: r["delay"])
        ax[2].errorbar(
            [r["delay"] for r in dr],
            [r["KL"] for r in dr],
            yerr=[r["KL_err"] for r in dr],
            fmt="o-",
            color=col,
            capsize=3,
            label=name,
        )
        ax[2].axhline(floor["KL"], color=col, lw=0.8, ls=":")
    ax[0].set(
        xscale="log",
        yscale="log",
        xlabel="firing probability p per tick",
        ylabel="KL(empirical || Boltzmann) [nats]",
        title="bias vs p (delay 0); dotted: exact Gibbs, same draws",
    )
    ax[1].set(
        xscale="log",
        yscale="log",
        xlabel="firing probability p per tick",
        ylabel="moment error",
        title="first and second moments vs exact",
    )
    ax[2].set(
        yscale="log",
        xlabel="delay d (ticks)",
        ylabel="KL [nats]",
        title=f"bias vs stale reads (p = {args.p_delay:g})",
    )
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument(
        "--p-delay",
        type=float,
        default=0.05,
        help="firing probability for the delay sweep (default 0.05)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
