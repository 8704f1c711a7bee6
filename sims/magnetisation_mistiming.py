"""Watching the magnetisation mistimes the gradient.

The magnetisation m = (1/n) sum_i s_i is the convenient scalar to watch in a sampler, but the
gradient of a Boltzmann machine is built from the pair observables s_i s_j. How many steps lie
between decorrelated gradient estimates is set by their integrated autocorrelation time, not by
m's. This script compares, over beta,

* tau_m: tau_int of the magnetisation;
* tau_grad: the variance-weighted tau_int of the gradient observables (s_i s_j over the model's
  edges), sum_k Var(f_k) tau_k / sum_k Var(f_k), which sets the summed gradient noise
  sum_k Var(g_hat_k) ~ sum_k Var(f_k) tau_k / M and so Q; and tau_max, the slowest pair;
* the mistiming factor tau_m / tau_grad (> 1: m asks for too many steps between estimates;
  < 1: m says "decorrelated" while the gradient estimates are still correlated, and Q measured
  from them is overestimated);

exactly (pbitsim.diagnostics.ExactChain, fundamental matrix) and from samples
(pbitsim.sample(..., method="chromatic"), Sokal-window estimates with error bars), all in chromatic
steps. The sampled estimates use Sokal's window with c = 10 (``--window-c``): m of the spin glass
in a field has most of its variance in fast modes and a little in a slow one, and the default
c = 5 window cuts that tail off (column tau_m_c5).

Models: a 2 x 5 ladder ferromagnet and a 10-spin spin glass (h = 0, where m's slow mode is
flip-odd and invisible to s_i s_j), the same spin glass in a random field (where m is faster than
the gradient), and, sampled only, a periodic 8 x 8 lattice approaching its critical point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import models  # noqa: E402
from pbitsim.diagnostics import ExactChain, estimate_tau  # noqa: E402
from pbitsim.diagnostics.observables import pair_list  # noqa: E402

NAME = "magnetisation_mistiming"


def exact_models(seed: int, quick: bool) -> dict:
    """name -> (couplings at beta 1, betas)."""
    out = {
        "ladder 2x5 (h=0)": (
            models.lattice_2d(2, 5, periodic=False),
            [0.3, 0.7] if quick else [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        ),
        "spin glass n=10 (h=0)": (
            models.spin_glass(10, p=0.4, seed=seed + 1),
            [0.5, 2.0] if quick else [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        ),
        "spin glass n=10, field 0.5": (
            models.spin_glass(10, p=0.4, seed=seed + 1, field=0.5),
            [0.5, 3.0] if quick else [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        ),
    }
    return out


def exact_taus(c) -> dict:
    ch = ExactChain(c, "chromatic")
    F = ch.pair_values()
    tau = np.atleast_1d(ch.tau_int(F))
    var = np.atleast_1d(ch.variance(F))
    return {
        "tau_m": ch.tau_int(ch.magnetisation_values()),
        "tau_grad": float(var @ tau / var.sum()),
        "tau_max": float(tau.max()),
    }


def sampled_taus(
    c, sweeps: int, replicas: int, seed: int, window_c: float, max_pairs: int = 48
) -> dict:
    """tau_m, tau_grad (variance-weighted) and tau_max from a chromatic run, with errors.

    Sokal's window factor is ``window_c``; tau_m is also estimated with the default c = 5, whose
    window cuts off slow modes that carry little of m's variance (``tau_m_c5``).
    """
    s = cm.sample(c, sweeps, method="chromatic", replicas=replicas, burn_in=1000, seed=seed)
    spins = np.asarray(s.spins, dtype=np.float64)
    pairs = pair_list(c)
    if len(pairs) > max_pairs:  # a fixed random subset keeps memory small on big lattices
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)]
    obs = spins[..., pairs[:, 0]] * spins[..., pairs[:, 1]]  # (R, T, k)
    m = spins.mean(axis=2)
    itm = estimate_tau(m, c=window_c, method="sokal", quiet=True)
    itp = estimate_tau(obs, c=window_c, method="sokal", quiet=True)
    tau_m_c5 = float(estimate_tau(m, method="sokal", quiet=True).tau)
    w = itp.variance / itp.variance.sum()
    tau_grad = float(w @ itp.tau)
    tau_grad_err = float(np.sqrt(np.sum((w * itp.tau_err) ** 2)))  # independent-error bound
    k = int(np.nanargmax(itp.tau))
    return {
        "tau_m_sampled": float(itm.tau),
        "tau_m_err": float(itm.tau_err),
        "tau_m_c5": tau_m_c5,
        "m_converged": bool(itm.converged),
        "tau_grad_sampled": tau_grad,
        "tau_grad_err": tau_grad_err,
        "tau_max_sampled": float(itp.tau[k]),
        "grad_converged": bool(np.all(itp.converged)),
    }


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    sweeps, R = (4000, 8) if args.quick else (args.sweeps, args.replicas)
    rows = []
    for name, (c1, betas) in exact_models(args.seed, args.quick).items():
        for b in betas:
            c = c1.with_beta(b)
            ex = exact_taus(c)
            sa = sampled_taus(c, sweeps, R, args.seed, args.window_c)
            f = ex["tau_m"] / ex["tau_grad"]
            fs = sa["tau_m_sampled"] / sa["tau_grad_sampled"]
            fs_err = fs * np.hypot(
                sa["tau_m_err"] / sa["tau_m_sampled"], sa["tau_grad_err"] / sa["tau_grad_sampled"]
            )
            rows.append(
                {
                    "model": name,
                    "beta": b,
                    "tau_m": ex["tau_m"],
                    "tau_grad": ex["tau_grad"],
                    "tau_max": ex["tau_max"],
                    "factor": f,
                    "tau_m_sampled": sa["tau_m_sampled"],
                    "tau_m_err": sa["tau_m_err"],
                    "tau_m_c5": sa["tau_m_c5"],
                    "tau_grad_sampled": sa["tau_grad_sampled"],
                    "tau_grad_err": sa["tau_grad_err"],
                    "factor_sampled": fs,
                    "factor_err": fs_err,
                    "converged": sa["m_converged"] and sa["grad_converged"],
                }
            )
    cm.table(
        rows,
        out / "exact_vs_sampled",
        f"tau_int in chromatic steps; exact vs sampled ({R} replicas x {sweeps} steps); "
        "factor = tau_m / tau_grad",
    )

    big = []
    if not args.quick:
        lat = models.lattice_2d(8, 8)
        for b in args.lattice_betas:
            sa = sampled_taus(
                lat.with_beta(b), args.sweeps, args.replicas, args.seed, args.window_c
            )
            big.append(
                {
                    "model": "periodic 8x8 lattice",
                    "beta": b,
                    "tau_m_sampled": sa["tau_m_sampled"],
                    "tau_m_err": sa["tau_m_err"],
                    "tau_grad_sampled": sa["tau_grad_sampled"],
                    "tau_grad_err": sa["tau_grad_err"],
                    "tau_max_sampled": sa["tau_max_sampled"],
                    "factor_sampled": sa["tau_m_sampled"] / sa["tau_grad_sampled"],
                    "converged": sa["m_converged"] and sa["grad_converged"],
                }
            )
        cm.table(big, out / "lattice_8x8", "periodic 8x8 lattice, sampled only (chromatic steps)")

    summary = {"runtime_s": 0.0}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        hi = max(mine, key=lambda r: abs(np.log(r["factor"])))
        summary[name] = {
            "beta": hi["beta"],
            "factor_exact": hi["factor"],
            "factor_sampled": hi["factor_sampled"],
            "factor_err": hi["factor_err"],
            "tau_m": hi["tau_m"],
            "tau_grad": hi["tau_grad"],
            "tau_max": hi["tau_max"],
        }
        print(
            f"{name}: largest mistiming at beta={hi['beta']:g}: tau_m {hi['tau_m']:.3g} vs "
            f"tau_grad {hi['tau_grad']:.3g} steps, factor {hi['factor']:.3g} exact, "
            f"{hi['factor_sampled']:.3g} +- {hi['factor_err']:.2g} sampled"
        )
    if big:
        hi = max(
            (r for r in big if r["converged"]), key=lambda r: r["factor_sampled"], default=None
        )
        if hi is not None:
            summary["periodic 8x8 lattice"] = hi
            print(
                f"periodic 8x8 lattice at beta={hi['beta']:g}: tau_m {hi['tau_m_sampled']:.3g} "
                f"+- {hi['tau_m_err']:.2g}, tau_grad {hi['tau_grad_sampled']:.3g} +- "
                f"{hi['tau_grad_err']:.2g}, factor {hi['factor_sampled']:.3g}"
            )
    summary["runtime_s"] = time.time() - t0
    cm.write_json(summary, out / "summary.json")
    _figure(rows, big, out / f"{NAME}.png")
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "lattice": big, "summary": summary}


def _figure(rows, big, path):
    plt = cm.pyplot()
    ncol = 3 if big else 2
    fig, ax = plt.subplots(1, ncol, figsize=(5.2 * ncol, 4.3))
    for k, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        col = f"C{k}"
        mine = [r for r in rows if r["model"] == name]
        b = [r["beta"] for r in mine]
        ax[0].semilogy(b, [r["tau_m"] for r in mine], "-", color=col, label=f"{name}: m")
        ax[0].semilogy(b, [r["tau_grad"] for r in mine], "--", color=col, label="  s_i s_j")
        ax[0].errorbar(
            b,
            [r["tau_m_sampled"] for r in mine],
            [r["tau_m_err"] for r in mine],
            fmt="o",
            color=col,
            ms=4,
            capsize=2,
        )
        ax[0].errorbar(
            b,
            [r["tau_grad_sampled"] for r in mine],
            [r["tau_grad_err"] for r in mine],
            fmt="s",
            mfc="none",
            color=col,
            ms=4,
            capsize=2,
        )
        ax[1].semilogy(b, [r["factor"] for r in mine], "-", color=col, label=name)
        ax[1].errorbar(
            b,
            [r["factor_sampled"] for r in mine],
            [r["factor_err"] for r in mine],
            fmt="o",
            color=col,
            ms=4,
            capsize=2,
        )
    ax[0].set(
        xlabel="beta", ylabel="tau_int (chromatic steps)", title="lines: exact; markers: sampled"
    )
    ax[0].legend(fontsize=7)
    ax[1].axhline(1.0, color="k", lw=0.8)
    ax[1].set(
        xlabel="beta",
        ylabel="tau_m / tau_grad",
        title="mistiming factor (>1: too slow, <1: too optimistic)",
    )
    ax[1].legend(fontsize=7)
    if big:
        b = [r["beta"] for r in big]
        ax[2].errorbar(
            b,
            [r["tau_m_sampled"] for r in big],
            [r["tau_m_err"] for r in big],
            fmt="o-",
            capsize=2,
            label="magnetisation",
        )
        ax[2].errorbar(
            b,
            [r["tau_grad_sampled"] for r in big],
            [r["tau_grad_err"] for r in big],
            fmt="s-",
            capsize=2,
            label="s_i s_j (variance-weighted)",
        )
        ax[2].plot(b, [r["tau_max_sampled"] for r in big], "^:", label="slowest s_i s_j")
        ax[2].axvline(0.4407, color="gray", lw=0.8, ls=":")
        ax[2].set(
            yscale="log",
            xlabel="beta",
            ylabel="tau_int (chromatic steps)",
            title="periodic 8x8 lattice (sampled; dotted: beta_c)",
        )
        ax[2].legend(fontsize=7)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument("--sweeps", type=int, default=20000, help="chromatic steps per replica")
    p.add_argument("--replicas", type=int, default=16, help="independent chains")
    p.add_argument(
        "--window-c",
        type=float,
        default=10.0,
        help="Sokal window factor c for the sampled tau (default 10; see tau_m_c5)",
    )
    p.add_argument(
        "--lattice-betas",
        type=lambda x: [float(v) for v in x.split(",")],
        default=[0.25, 0.3, 0.35, 0.38, 0.41, 0.44],
        help="betas of the sampled 8x8 lattice (comma-separated)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
