"""Under spin-flip symmetry the slowest sampling mode is invisible to the gradient.

With h = 0 every p-bit kernel commutes with the global flip, so its spectrum splits into a
flip-even and a flip-odd sector. Below the ordering temperature the slowest mode is odd (the whole
magnetisation tunnelling between +m and -m); the gradient observables s_i s_j are even and never
see it. A single-gap prediction of Q (or of tau_int of s_i s_j) uses that odd gap anyway and is off
by a factor that grows exponentially with beta; the observable-projected multi-mode predictor
(the K slowest modes of each sector with the observables' actual overlaps) is not.

Everything here is exact (pbitsim.diagnostics.ExactChain: the full 2^n-state transition matrix);
no sampling noise, no burn-in. Q(M) is for learning "the same model at 1.25 beta" (data moments =
exact <s_i s_j> at 1.25 beta); the single-gap / exact ratio does not depend on the data.

Part 1 (beta sweep, random-scan kernel): even vs odd gap, tau_int of s_i s_j (exact, multi-mode,
single gap), tau_int of the magnetisation, and the factor Q_exact / Q_single-gap.
Part 2 (cell grid: models x betas x kernels): in how many cells the multi-mode and the single-gap
prediction of Q(M) are within a factor 2 of the exact Q(M).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import exact, models  # noqa: E402
from pbitsim.diagnostics import ExactChain, exact_q  # noqa: E402
from pbitsim.diagnostics.observables import pair_list  # noqa: E402
from pbitsim.diagnostics.q import exact_gradient  # noqa: E402

NAME = "spin_flip_symmetry"
#: double precision cannot resolve an eigenvalue closer to 1 than this: a smaller gap is a bound
GAP_FLOOR = 1e-12


def build(name: str, n: int, seed: int):
    """(couplings at beta = 1, label) of the h = 0 test models."""
    if name == "ferromagnet":
        return models.ferromagnet(n), f"Curie-Weiss ferromagnet n={n}"
    if name == "ring":
        return models.ring(n), f"ferromagnetic ring n={n}"
    if name == "lattice":
        side = int(round(np.sqrt(n)))
        return models.lattice_2d(side), f"periodic {side}x{side} lattice"
    if name == "spin-glass":
        return (
            models.spin_glass(n, p=0.6, seed=seed),
            f"Gaussian spin glass n={n} (p=0.6, seed {seed})",
        )
    raise ValueError(name)


def beta_scale(c) -> float:
    """1 / max_i sum_j |J_ij|: betas are quoted as multiples of this (beta * max field)."""
    return 1.0 / float(np.abs(c.to_scipy()).sum(axis=1).max())


def analyse(c, kernel: str, M: int, K: int, extra_K=()) -> dict:
    """Gaps, tau_int of the pair observables and Q(M) predictions, all exact.

    ``extra_K``: further K values whose multi-mode Q prediction is returned as ``Q_mm_K<k>``.
    """
    ch = ExactChain(c, kernel)
    gaps = ch.sector_gaps()
    F = ch.pair_values()
    me = ch.mode_expansion(F, K)
    var = np.atleast_1d(me.variance)
    w = var / var.sum()  # tau weighted by variance: what sets the summed gradient noise
    # data: the same model at 1.25 beta (exact moments), so the gradient points to "colder"
    teacher = exact.exact_moments(c, 1.25 * ch.beta)[1]
    pairs = pair_list(c)
    target = teacher[pairs[:, 0], pairs[:, 1]]
    g = exact_gradient(ch, target)
    sig = float(g @ g) * M
    q_exact = exact_q(ch, target, M)
    q_mm = sig / float(np.sum(var * np.atleast_1d(me.tau_multi_mode)))
    q_single = sig / float(var.sum() * me.tau_single_gap)
    more = {}
    for k in extra_K:
        tk = np.atleast_1d(ch.mode_expansion(F, k).tau_multi_mode)
        more[f"Q_mm_K{k}"] = sig / float(np.sum(var * tk))
    return {
        "gap_even": gaps["even"],
        "gap_odd": gaps["odd"],
        "resolved": min(gaps.values()) > GAP_FLOOR,
        "relevant_gap": float(np.nanmin(me.relevant_gap)),
        "tau_pairs_exact": float(w @ np.atleast_1d(me.tau_exact)),
        "tau_pairs_multimode": float(w @ np.atleast_1d(me.tau_multi_mode)),
        "tau_single_gap": me.tau_single_gap,
        "tau_magnetisation": ch.tau_int(ch.magnetisation_values()),
        "Q_exact": q_exact,
        "Q_multimode": q_mm,
        "Q_single_gap": q_single,
        **more,
    }


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    n = 6 if args.quick else 8
    M = args.M
    if args.quick:
        sweep_models = ["ferromagnet", "spin-glass"]
        sweep_betas = np.array([0.5, 1.5, 4.0])
        grid_models = ["ferromagnet", "spin-glass"]
        grid_betas = [0.5, 4.0]
        kernels = ["random-scan"]
    else:
        sweep_models = ["ferromagnet", "spin-glass"]
        sweep_betas = np.geomspace(0.25, 8.0, 11)
        grid_models = ["ferromagnet", "ring", "lattice", "spin-glass"]
        grid_betas = [0.5, 1.0, 2.0, 4.0]
        kernels = ["random-scan", "sequential", "chromatic"]

    # -- part 1: beta sweep --------------------------------------------------------------------
    sweep = []
    for name in sweep_models:
        c1, label = build(name, n, args.seed)
        b0 = beta_scale(c1)
        for x in sweep_betas:
            r = analyse(c1.with_beta(x * b0), "random-scan", M, args.K)
            sweep.append(
                {
                    "model": name,
                    "beta_x_maxfield": float(x),
                    "beta": x * b0,
                    **r,
                    "single_gap_factor": r["Q_exact"] / r["Q_single_gap"],
                    "multimode_factor": r["Q_multimode"] / r["Q_exact"],
                }
            )
    cols = [
        "model",
        "beta_x_maxfield",
        "beta",
        "gap_even",
        "gap_odd",
        "resolved",
        "tau_pairs_exact",
        "tau_pairs_multimode",
        "tau_single_gap",
        "tau_magnetisation",
        "Q_exact",
        "Q_multimode",
        "Q_single_gap",
        "single_gap_factor",
        "multimode_factor",
    ]
    cm.table(
        [{k: r[k] for k in cols} for r in sweep],
        out / "beta_sweep",
        f"Part 1: random-scan kernel, n={n}, M={M} steps, K={args.K} modes per sector "
        f"(times in single-site updates; factor = Q_exact / Q_single-gap)",
    )

    # -- part 2: cell grid ----------------------------------------------------------------------
    grid = []
    for name in grid_models:
        c1, label = build(name, 9 if name == "lattice" and not args.quick else n, args.seed)
        b0 = beta_scale(c1)
        for x in grid_betas:
            for kernel in kernels:
                r = analyse(c1.with_beta(x * b0), kernel, M, args.K, extra_K=args.extra_K)
                mm = r["Q_multimode"] / r["Q_exact"]
                sg = r["Q_single_gap"] / r["Q_exact"]
                others = {f"mm_K{k}/exact": r[f"Q_mm_K{k}"] / r["Q_exact"] for k in args.extra_K}
                grid.append(
                    {
                        "model": name,
                        "beta_x_maxfield": float(x),
                        "kernel": kernel,
                        "gap_even": r["gap_even"],
                        "gap_odd": r["gap_odd"],
                        "Q_exact": r["Q_exact"],
                        "multimode/exact": mm,
                        "single_gap/exact": sg,
                        **others,
                        "multimode_within_2": bool(0.5 <= mm <= 2.0),
                        "single_gap_within_2": bool(0.5 <= sg <= 2.0),
                    }
                )
    cm.table(grid, out / "cell_grid", f"Part 2: Q(M={M}) predictions vs exact, K={args.K}")
    n_mm = sum(r["multimode_within_2"] for r in grid)
    n_sg = sum(r["single_gap_within_2"] for r in grid)
    print(
        f"\nmulti-mode predictor within a factor 2 of exact Q in {n_mm} of {len(grid)} cells; "
        f"single gap in {n_sg} of {len(grid)}"
    )

    per_k = {f"K={args.K}": n_mm}
    for k in args.extra_K:
        per_k[f"K={k}"] = sum(0.5 <= r[f"mm_K{k}/exact"] <= 2.0 for r in grid)
    print(
        "multi-mode cells within a factor 2, by K: "
        + ", ".join(f"{k}: {v}" for k, v in per_k.items())
    )
    summary = {
        "n": n,
        "M": M,
        "K": args.K,
        "cells": len(grid),
        "multimode_within_2": n_mm,
        "single_gap_within_2": n_sg,
        "multimode_within_2_by_K": per_k,
        "max_single_gap_factor_resolved": max(
            r["single_gap_factor"] for r in sweep if r["resolved"]
        ),
        "runtime_s": time.time() - t0,
    }
    cm.write_json(summary, out / "summary.json")
    _figure(sweep, grid, out / f"{NAME}.png", n, M, args.K)
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"sweep": sweep, "grid": grid, "summary": summary}


def _figure(sweep, grid, path, n, M, K):
    plt = cm.pyplot()
    fig, ax = plt.subplots(2, 2, figsize=(11, 8.5))
    colors = {"ferromagnet": "C0", "spin-glass": "C3", "ring": "C2", "lattice": "C1"}
    for name in dict.fromkeys(r["model"] for r in sweep):
        rows = [r for r in sweep if r["model"] == name]
        x = [r["beta_x_maxfield"] for r in rows]
        col = colors[name]
        ax[0, 0].semilogy(x, [r["gap_even"] for r in rows], "o-", color=col, label=f"{name} even")
        ax[0, 0].semilogy(x, [r["gap_odd"] for r in rows], "s--", color=col, label=f"{name} odd")
        ok = [r for r in rows if r["resolved"]]
        xo = [r["beta_x_maxfield"] for r in ok]
        ax[1, 0].loglog(xo, [r["single_gap_factor"] for r in ok], "o-", color=col, label=name)
        ax[1, 0].loglog(
            xo, [1 / r["multimode_factor"] for r in ok], "x:", color=col, label=f"{name} (mm)"
        )
    ax[0, 0].axhline(GAP_FLOOR, color="gray", lw=0.8)
    ax[0, 0].text(0.3, GAP_FLOOR * 3, "double-precision floor", fontsize=7, color="gray")
    ax[0, 0].set(xlabel="beta x max_i sum_j |J_ij|", ylabel="spectral gap (random-scan)")
    ax[0, 0].set_xscale("log")
    ax[0, 0].set_title(f"flip-even vs flip-odd gap (n={n})")
    ax[0, 0].legend(fontsize=7)
    ax[1, 0].set(
        xlabel="beta x max_i sum_j |J_ij|",
        ylabel="Q_exact / Q_predicted",
        title=f"how far the prediction of Q(M={M}) is off (resolved gaps only)",
    )
    ax[1, 0].axhspan(0.5, 2, color="green", alpha=0.1)
    ax[1, 0].legend(fontsize=7)

    rows = [r for r in sweep if r["model"] == "ferromagnet"]
    x = [r["beta_x_maxfield"] for r in rows]
    ax[0, 1].loglog(x, [r["tau_magnetisation"] for r in rows], "s-", label="magnetisation, exact")
    ax[0, 1].loglog(x, [r["tau_single_gap"] for r in rows], "k--", label="single-gap prediction")
    ax[0, 1].loglog(x, [r["tau_pairs_exact"] for r in rows], "o-", label="s_i s_j, exact")
    ax[0, 1].loglog(
        x, [r["tau_pairs_multimode"] for r in rows], "x:", ms=9, label=f"s_i s_j, multi-mode K={K}"
    )
    ax[0, 1].set(
        xlabel="beta x (n-1)",
        ylabel="tau_int (single-site updates)",
        title="ferromagnet: tau_int of the gradient observables",
    )
    ax[0, 1].legend(fontsize=7)

    kernels = list(dict.fromkeys(r["kernel"] for r in grid))
    marks = dict(zip(kernels, "o^sD"))
    for r in grid:
        m = marks[r["kernel"]]
        ax[1, 1].scatter(r["Q_exact"], r["multimode/exact"], marker=m, color="C0", s=25)
        ax[1, 1].scatter(r["Q_exact"], r["single_gap/exact"], marker=m, color="C3", s=25)
    ax[1, 1].set_xscale("log")
    ax[1, 1].set_yscale("log")
    ax[1, 1].axhspan(0.5, 2, color="green", alpha=0.1)
    n_mm = sum(r["multimode_within_2"] for r in grid)
    n_sg = sum(r["single_gap_within_2"] for r in grid)
    ax[1, 1].scatter([], [], color="C0", label=f"multi-mode: {n_mm}/{len(grid)} within x2")
    ax[1, 1].scatter([], [], color="C3", label=f"single gap: {n_sg}/{len(grid)} within x2")
    for k in kernels:
        ax[1, 1].scatter([], [], marker=marks[k], color="gray", label=k)
    ax[1, 1].set(xlabel="exact Q(M)", ylabel="Q_predicted / Q_exact", title="cell grid")
    ax[1, 1].legend(fontsize=7)
    from matplotlib.ticker import NullFormatter

    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        a.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument("--M", type=int, default=4000, help="kernel steps per gradient estimate")
    p.add_argument("--K", type=int, default=2, help="slowest modes kept per sector (multi-mode)")
    p.add_argument(
        "--extra-K",
        type=lambda x: [int(v) for v in x.split(",") if v],
        default=[1, 4],
        help="further K values counted in the cell grid (comma-separated, default 1,4)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
