"""Planting a few strong modes in an RBM collapses the gap that the gradient actually sees.

A small RBM (default 6 visible + 3 hidden, h = 0, so all 2^9 states fit an exact spectrum) starts
from small random weights W0 and gets P planted modes of growing strength lambda:

    W = W0 + lambda * sum_k xi_k eta_k^T / sqrt(n_hidden),

xi_k random +-1 visible patterns (pairwise overlaps <= n_visible / 3) and eta_k random +-1 hidden
patterns (no two equal or opposite). For each lambda the exact transition matrix of the chromatic
(block-Gibbs: all visibles, then all hiddens) kernel is built and decomposed
(pbitsim.diagnostics.ExactChain), and the script reads off

* the global, flip-even and flip-odd spectral gaps;
* the observable-relevant gap: 1 - |lambda| of the slowest mode on which some gradient observable
  v_i h_j carries at least ``--weight-tol`` of its variance (ModeExpansion.relevant_gap);
* the exact tau_int of the v_i h_j (fundamental matrix) and the single-gap prediction.

Everything is exact: no sampling, so no burn-in or finite-sample artefact can fake the collapse.
Times are in chromatic steps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim.diagnostics import ExactChain  # noqa: E402
from pbitsim.learn import RBM  # noqa: E402
from pbitsim.models import planted_rbm  # noqa: E402 (sims/stale_weights.py imports it from here)

NAME = "planted_modes"


def analyse(W: np.ndarray, kernel: str, weight_tol: float, K: int) -> dict:
    nv, nh = W.shape
    model = RBM(W, np.zeros(nv), np.zeros(nh))
    ch = ExactChain(model.to_couplings(), kernel)
    gaps = ch.sector_gaps()
    F = ch.pair_values()  # the model's edges = every (v_i, h_j): the gradient observables
    me = ch.mode_expansion(F, K, weight_tol=weight_tol)
    rel = np.atleast_1d(me.relevant_gap)
    k = int(np.nanargmin(rel))
    # weight (fraction of variance) of observable k in the mode that sets its relevant gap
    w_rel = max(
        (
            float(np.atleast_1d(c.weight)[k])
            for c in me.clusters
            if np.isclose(1 - c.modulus, rel[k])
        ),
        default=np.nan,
    )
    tau = np.atleast_1d(me.tau_exact)
    slow = {}  # per sector: the slowest cluster's 1 - |lambda| and median weight over the v_i h_j
    for c in me.clusters:
        if c.sector not in slow:
            slow[c.sector] = (1 - c.modulus, float(np.median(np.atleast_1d(c.weight))))
    spectra = {s: np.abs(ch.eigenvalues(s))[1 if s == "even" else 0 :][:12] for s in ch.sectors}
    return {
        "gap": min(gaps.values()),
        "gap_even": gaps["even"],
        "gap_odd": gaps["odd"],
        "relevant_gap": float(rel[k]),
        "relevant_weight": w_rel,
        "slowest_even_weight": slow.get("even", (np.nan, np.nan))[1],
        "tau_vh_median": float(np.median(tau)),
        "tau_vh_max": float(tau.max()),
        "tau_single_gap": me.tau_single_gap,
        "tau_magnetisation": ch.tau_int(ch.magnetisation_values()),
        "_spectra": spectra,
    }


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    strengths = np.array([0.0, 2.0]) if args.quick else np.linspace(0.0, 2.0, 9)
    if args.quick:
        args.nv = 5  # 2^8 states: a second instead of ten
    W0, D = planted_rbm(args.nv, args.nh, args.patterns, args.seed, args.base_scale)
    rows, spectra = [], {}
    for lam in strengths:
        r = analyse(W0 + lam * D, args.kernel, args.weight_tol, args.K)
        spectra[float(lam)] = r.pop("_spectra")
        rows.append({"strength": float(lam), "max_abs_W": float(np.abs(W0 + lam * D).max()), **r})
    cm.table(
        rows,
        out / "planted_modes",
        f"RBM {args.nv}+{args.nh}, {args.patterns} planted modes, {args.kernel} kernel "
        f"(times in chromatic steps; relevant gap: weight >= {args.weight_tol:g})",
    )
    before, after = rows[0], rows[-1]
    summary = {
        "n_visible": args.nv,
        "n_hidden": args.nh,
        "patterns": args.patterns,
        "kernel": args.kernel,
        "relevant_gap_before": before["relevant_gap"],
        "relevant_gap_after": after["relevant_gap"],
        "collapse_factor": before["relevant_gap"] / after["relevant_gap"],
        "tau_vh_max_before": before["tau_vh_max"],
        "tau_vh_max_after": after["tau_vh_max"],
        "runtime_s": time.time() - t0,
    }
    print(
        f"\nobservable-relevant gap {before['relevant_gap']:.3g} -> {after['relevant_gap']:.3g} "
        f"(x{summary['collapse_factor']:.3g} smaller) from strength {before['strength']:g} to "
        f"{after['strength']:g}; max tau_int(v_i h_j) {before['tau_vh_max']:.3g} -> "
        f"{after['tau_vh_max']:.3g} chromatic steps"
    )
    cm.write_json({"summary": summary, "top_moduli": spectra}, out / "summary.json")
    _figure(rows, spectra, W0, D, out / f"{NAME}.png", args)
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "summary": summary}


def _figure(rows, spectra, W0, D, path, args):
    plt = cm.pyplot()
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    lam = [r["strength"] for r in rows]
    a = ax[0, 0]
    a.semilogy(lam, [r["gap_even"] for r in rows], "o-", label="flip-even gap")
    a.semilogy(lam, [r["gap_odd"] for r in rows], "s--", label="flip-odd gap")
    a.semilogy(lam, [r["relevant_gap"] for r in rows], "k*:", ms=10, label="observable-relevant")
    a.set(xlabel="planted strength lambda", ylabel="gap (per chromatic step)")
    a.set_title(f"RBM {args.nv}+{args.nh}, {args.patterns} planted modes ({args.kernel})")
    a.legend(fontsize=8)

    a = ax[0, 1]
    a.semilogy(lam, [r["tau_vh_max"] for r in rows], "o-", label="v_i h_j, exact (max)")
    a.semilogy(lam, [r["tau_vh_median"] for r in rows], "x-", label="v_i h_j, exact (median)")
    a.semilogy(lam, [r["tau_single_gap"] for r in rows], "k--", label="single-gap prediction")
    a.semilogy(lam, [r["tau_magnetisation"] for r in rows], "s:", label="magnetisation, exact")
    a.set(xlabel="planted strength lambda", ylabel="tau_int (chromatic steps)")
    a.legend(fontsize=8)

    a = ax[1, 0]
    a.plot(lam, [r["slowest_even_weight"] for r in rows], "o-", label="slowest even mode (median)")
    a.plot(
        lam,
        [r["relevant_weight"] for r in rows],
        "k*:",
        ms=9,
        label="the mode setting the relevant gap",
    )
    a.set(
        xlabel="planted strength lambda",
        ylabel="fraction of Var(v_i h_j)",
        ylim=(-0.02, 1.02),
        title="weight of the gradient observables on the slow mode",
    )
    a.legend(fontsize=8)

    a = ax[1, 1]
    Wa = W0 + max(spectra) * D
    vmax = np.abs(Wa).max()
    a.imshow(
        np.hstack([W0, np.full((W0.shape[0], 1), np.nan), Wa]), cmap="RdBu_r", vmin=-vmax, vmax=vmax
    )
    a.set(title=f"W before | after (lambda={max(spectra):g})", xlabel="hidden j")
    a.set_ylabel("visible i")
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument("--nv", type=int, default=6, help="visible units (default 6)")
    p.add_argument("--nh", type=int, default=3, help="hidden units (default 3)")
    p.add_argument("--patterns", type=int, default=2, help="planted modes P (default 2)")
    p.add_argument("--base-scale", type=float, default=0.1, help="std of the random W0")
    p.add_argument("--kernel", default="chromatic", choices=["chromatic", "sequential"])
    p.add_argument("--K", type=int, default=3, help="slowest modes expanded per sector")
    p.add_argument(
        "--weight-tol",
        type=float,
        default=1e-3,
        help="variance fraction a mode needs to count for the relevant gap (default 1e-3)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
