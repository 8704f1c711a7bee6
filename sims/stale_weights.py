"""Stale weights: a sampler silently built from older couplings reports a healthy PT run.

The model being trained, B, is an RBM (default 64 visible + 8 hidden, h = 0) whose weights carry
three strong planted modes (W = W0 + 1.0 * D, see planted_modes.py): a stand-in for a trained model
with a few deep modes. The sampler's kernels were built from stale weights A instead: either the
untrained initialisation (W0) or an older checkpoint (W0 + 0.3 * D). Same graph, other values.

For each stale A the script

1. tunes a parallel-tempering ladder on the sampler as deployed (``adapt_ladder`` from the measured
   acceptances, a few rounds): every rung accepts about equally often, walkers make many round
   trips: "PT mixes near-ideally";
2. hands those samples to the diagnostics together with the model B: ``pt_profile(samples, B)``
   and ``q_from_samples(samples, ..., couplings=B)`` refuse with FingerprintMismatchError;
3. shows what the diagnostics say without the guard (``allow_mismatch=True``): the acceptance and
   round trips recorded by the run are A's and look fine, and B's energies recomputed on A's
   states give a B-acceptance that is still far from B's real one;
4. runs PT on B itself with the same ladder: the real acceptance of the hot rung and the round
   trips collapse.

Times are chromatic steps; acceptance errors are binomial (from the swap counts).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402
from planted_modes import planted_rbm  # noqa: E402

from pbitsim import FingerprintMismatchError  # noqa: E402
from pbitsim.diagnostics.observables import energies  # noqa: E402
from pbitsim.diagnostics.pt import (  # noqa: E402
    adapt_ladder,
    pt_profile,
    swap_acceptance_from_energies,
)
from pbitsim.diagnostics.q import q_from_samples  # noqa: E402
from pbitsim.learn import RBM  # noqa: E402

NAME = "stale_weights"


def couplings(W: np.ndarray):
    nv, nh = W.shape
    return RBM(W, np.zeros(nv), np.zeros(nh)).to_couplings()


def run_pt(c, ladder, sweeps: int, chains: int, seed: int):
    return cm.sample(
        c, sweeps, method="chromatic", replicas=chains, betas=ladder, burn_in=sweeps // 4, seed=seed
    )


def tuned_ladder(c, K: int, rounds: int, sweeps: int, chains: int, seed: int) -> np.ndarray:
    """A ladder between beta 0.1 and 1 adapted (from measured acceptances) to the sampler ``c``."""
    ladder = np.geomspace(0.1, 1.0, K)
    for r in range(rounds):
        s = run_pt(c, ladder, sweeps, chains, seed + 100 + r)
        ladder = adapt_ladder(ladder, acceptance=np.asarray(s.info["swap_acceptance"], float))
    return ladder


def scenario(label, A, B, args, sweeps, chains) -> dict:
    ladder = tuned_ladder(A, args.rungs, args.rounds, sweeps, chains, args.seed)
    stale = run_pt(A, ladder, sweeps, chains, args.seed)

    # 1. what the deployed run reports about itself (no model given: nothing to check against)
    reported = pt_profile(stale)

    # 2. the guard: the run's samples combined with the model being trained
    refused = []
    for what, call in (
        ("pt_profile(samples, B)", lambda: pt_profile(stale, B)),
        (
            "q_from_samples(samples, target, couplings=B)",
            lambda: q_from_samples(stale, np.zeros(B.n_edges), couplings=B),
        ),
    ):
        try:
            call()
        except FingerprintMismatchError as err:
            refused.append((what, str(err)))

    # 3. without the guard: B's energies of A's states
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forced = pt_profile(stale, B, allow_mismatch=True)
        e_b_on_stale = energies(stale, B, allow_mismatch=True)
    acc_b_on_stale, _ = swap_acceptance_from_energies(e_b_on_stale, ladder)

    # 4. the truth: PT on B with the same ladder
    true = run_pt(B, ladder, sweeps, chains, args.seed)
    real = pt_profile(true)

    K = len(ladder)
    e_cold_stale = float(np.mean(e_b_on_stale.reshape(-1, K, e_b_on_stale.shape[1])[:, -1]))
    e_cold_true = float(
        np.mean(np.asarray(true.info["energies"]).reshape(-1, K, true.draws)[:, -1])
    )
    rows = []
    for k in range(K - 1):
        rows.append(
            {
                "stale": label,
                "rung": k,
                "beta_k": ladder[k],
                "beta_k+1": ladder[k + 1],
                "reported_acc (A, stale run)": reported.acceptance[k],
                "reported_err": reported.acceptance_err[k],
                "B_energies_on_stale_states": acc_b_on_stale[k],
                "real_acc (B)": real.acceptance[k],
                "real_err": real.acceptance_err[k],
            }
        )
    summary = {
        "stale": label,
        "ladder": ladder,
        "reported_min_acceptance": float(reported.acceptance.min()),
        "reported_round_trips": reported.round_trips.total,
        "forced_min_acceptance": float(forced.acceptance.min()),
        "B_on_stale_min_acceptance": float(acc_b_on_stale.min()),
        "real_min_acceptance": float(real.acceptance.min()),
        "real_min_acceptance_err": float(real.acceptance_err[np.argmin(real.acceptance)]),
        "real_round_trips": real.round_trips.total,
        "real_starving_rungs": real.starving.tolist(),
        "mean_E_B_at_beta1_stale": e_cold_stale,
        "mean_E_B_at_beta1_true": e_cold_true,
        "guard_refused": [w for w, _ in refused],
        "guard_message": refused[0][1] if refused else "",
    }
    return {"rows": rows, "summary": summary}


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    if args.quick:
        nv, nh, sweeps, chains = 24, 4, 1500, 2
    else:
        nv, nh, sweeps, chains = args.nv, args.nh, args.sweeps, args.chains
    W0, D = planted_rbm(nv, nh, 3, args.seed, 0.01)
    B = couplings(W0 + args.strength * D)
    stale = {"untrained (W0)": couplings(W0), "older (W0 + 0.3 D)": couplings(W0 + 0.3 * D)}
    if args.quick:
        stale = {"untrained (W0)": stale["untrained (W0)"]}
    rows, summaries = [], []
    for label, A in stale.items():
        res = scenario(label, A, B, args, sweeps, chains)
        rows += res["rows"]
        summaries.append(res["summary"])
    cm.table(
        rows,
        out / NAME,
        f"RBM {nv}+{nh}, B = W0 + {args.strength:g} D; PT, {chains} chains x {sweeps} steps, "
        "ladder tuned on the stale sampler",
    )
    for s in summaries:
        print(
            f"\nstale = {s['stale']}: the run reports min acceptance "
            f"{s['reported_min_acceptance']:.3f} and {s['reported_round_trips']} round trips; "
            f"real (PT on B, same ladder): min acceptance {s['real_min_acceptance']:.4f} +- "
            f"{s['real_min_acceptance_err']:.1g}, {s['real_round_trips']} round trips, starving "
            f"rungs {s['real_starving_rungs']}; B's energies on the stale states give "
            f"{s['B_on_stale_min_acceptance']:.3f}; mean E_B at beta=1: stale "
            f"{s['mean_E_B_at_beta1_stale']:.4g} vs true {s['mean_E_B_at_beta1_true']:.4g}"
        )
        print(f"  guard refused: {', '.join(s['guard_refused'])}")
        print(f"  FingerprintMismatchError: {s['guard_message']}")
    result = {"summaries": summaries, "runtime_s": time.time() - t0}
    cm.write_json(result, out / "summary.json")
    _figure(rows, summaries, out / f"{NAME}.png")
    print(f"runtime {result['runtime_s']:.1f} s")
    return {"rows": rows, "summaries": summaries}


def _figure(rows, summaries, path):
    plt = cm.pyplot()
    fig, axes = plt.subplots(1, len(summaries), figsize=(6 * len(summaries), 4.2), squeeze=False)
    for ax, s in zip(axes[0], summaries):
        mine = [r for r in rows if r["stale"] == s["stale"]]
        k = np.array([r["rung"] for r in mine])
        ax.errorbar(
            k - 0.1,
            [r["reported_acc (A, stale run)"] for r in mine],
            [r["reported_err"] for r in mine],
            fmt="o-",
            capsize=3,
            label=f"reported by the stale run ({s['reported_round_trips']} round trips)",
        )
        ax.plot(
            k,
            [r["B_energies_on_stale_states"] for r in mine],
            "x:",
            label="B's energies on the stale states (no guard)",
        )
        ax.errorbar(
            k + 0.1,
            [r["real_acc (B)"] for r in mine],
            [r["real_err"] for r in mine],
            fmt="s-",
            capsize=3,
            label=f"real: PT on B ({s['real_round_trips']} round trips)",
        )
        ax.axhline(0.1, color="gray", lw=0.8, ls="--")
        ax.set(
            yscale="log",
            xlabel="rung k (between beta_k and beta_k+1)",
            ylabel="swap acceptance",
            title=f"stale sampler: {s['stale']}",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument("--nv", type=int, default=64, help="visible units (default 64)")
    p.add_argument("--nh", type=int, default=8, help="hidden units (default 8)")
    p.add_argument("--strength", type=float, default=1.0, help="planted strength of B")
    p.add_argument("--rungs", type=int, default=6, help="PT rungs (default 6)")
    p.add_argument("--rounds", type=int, default=4, help="ladder adaptation rounds on A")
    p.add_argument("--sweeps", type=int, default=4000, help="chromatic steps per PT run")
    p.add_argument("--chains", type=int, default=4, help="independent PT chains")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
