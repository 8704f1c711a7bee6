"""Parallel tempering on a trained digits RBM: a uniform ladder starves, an adapted one does not.

An RBM (64 visible + 16 hidden) is trained for a few epochs by PCD-5 (learning rate 0.1 decaying
to 0.005) on the binarised 8 x 8 digits (pbitsim.learn.train with the chromatic sampler), then
sampled by parallel tempering
(``pbitsim.sample(..., method="chromatic", betas=ladder)``) on a ladder uniform in beta between
``--beta-min`` and 1. The specific heat C(beta) = beta^2 Var(E) along that ladder is uneven and,
more to the point, the energy spread sigma_E = sqrt(C) / beta that sets the swap acceptance
(about erfc(d beta sigma_E / 2)) is largest at the hot end, so no uniform step suits every rung:
the hot rungs starve while the cold ones accept far more than needed.

``pbitsim.diagnostics.pt.adapt_ladder`` places the rungs uniformly in the thermodynamic length
(first from the measured specific heat, then from the measured acceptances), keeping the number of
rungs and the end points. The script prints acceptance, C(beta) and round trips per rung before
and after. Times are in chromatic steps; acceptance errors are binomial from the swap counts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import datasets  # noqa: E402
from pbitsim.diagnostics.pt import adapt_ladder, pt_profile  # noqa: E402
from pbitsim.learn import RBM, TrainConfig, train  # noqa: E402

NAME = "pt_ladder"


def trained_rbm(n_hidden: int, epochs: int, seed: int, classes=None):
    """A digits RBM trained by PCD-5 with the chromatic sampler; (model, history)."""
    X, _ = datasets.digits(classes)
    model = RBM.init(X.shape[1], n_hidden, seed=seed, data=X)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=50,
        lr=0.1,
        lr_final=0.005,
        chains=64,
        k=5,
        seed=seed,
        log_likelihood="exact",
        measure_tau_steps=0,
    )
    history = train(model, X, "chromatic", cfg, progress=False)
    return model, history


def pt_run(c, ladder, sweeps: int, chains: int, seed: int):
    s = cm.sample(
        c, sweeps, method="chromatic", replicas=chains, betas=ladder, burn_in=sweeps // 4, seed=seed
    )
    return pt_profile(s)


def rung_rows(label: str, prof) -> list[dict]:
    K = len(prof.betas)
    trips = prof.round_trips.total if prof.round_trips is not None else 0
    return [
        {
            "ladder": label,
            "rung": k,
            "beta": prof.betas[k],
            "C(beta)": prof.specific_heat[k],
            "C_err": prof.specific_heat_err[k],
            "sigma_E": np.sqrt(max(prof.specific_heat[k], 0.0)) / prof.betas[k],
            "acc(k,k+1)": prof.acceptance[k] if k < K - 1 else np.nan,
            "acc_err": prof.acceptance_err[k] if k < K - 1 else np.nan,
            "starving": bool(k in prof.starving),
            "round_trips_total": trips,
        }
        for k in range(K)
    ]


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    out = cm.outdir(args, NAME)
    t0 = time.time()
    if args.quick:
        hidden, epochs, sweeps, chains, rounds, classes = 8, 3, 1500, 2, 2, (0, 1)
    else:
        hidden, epochs, sweeps, chains, rounds, classes = (
            args.hidden,
            args.epochs,
            args.sweeps,
            args.chains,
            args.rounds,
            None,
        )
    model, history = trained_rbm(hidden, epochs, args.seed, classes)
    t_train = time.time() - t0
    print(
        f"trained RBM 64+{hidden} on digits{'' if classes is None else f' {classes}'} for "
        f"{epochs} epochs ({t_train:.1f} s): exact log-likelihood "
        f"{history[0].log_likelihood:.3f} -> {history[-1].log_likelihood:.3f} nats/image, "
        f"max |W| {np.abs(model.W).max():.3f}"
    )
    c = model.to_couplings()

    uniform = np.linspace(args.beta_min, 1.0, args.rungs)
    before = pt_run(c, uniform, sweeps, chains, args.seed)
    # adapt: from the specific heat first, then from the measured acceptances
    ladder = adapt_ladder(uniform, specific_heat=before.specific_heat)
    prof = before
    for r in range(rounds):
        prof = pt_run(c, ladder, sweeps, chains, args.seed + 1 + r)
        if r < rounds - 1:
            ladder = adapt_ladder(ladder, acceptance=prof.acceptance)
    after = prof

    rows = rung_rows("uniform", before) + rung_rows("adapted", after)
    cm.table(
        rows,
        out / NAME,
        f"PT on the trained RBM, {len(uniform)} rungs, {chains} chains x {sweeps} chromatic "
        f"steps per run; acc(k,k+1) between rung k and k+1",
    )

    def spread(p):
        return float(p.acceptance.max() / max(p.acceptance.min(), 1e-12))

    summary = {
        "hidden": hidden,
        "epochs": epochs,
        "log_likelihood_first": history[0].log_likelihood,
        "log_likelihood_last": history[-1].log_likelihood,
        "uniform_ladder": uniform,
        "adapted_ladder": after.betas,
        "uniform_min_acceptance": float(before.acceptance.min()),
        "uniform_max_acceptance": float(before.acceptance.max()),
        "uniform_starving": before.starving.tolist(),
        "uniform_round_trips": before.round_trips.total,
        "adapted_min_acceptance": float(after.acceptance.min()),
        "adapted_max_acceptance": float(after.acceptance.max()),
        "adapted_starving": after.starving.tolist(),
        "adapted_round_trips": after.round_trips.total,
        "uniform_acc_spread": spread(before),
        "adapted_acc_spread": spread(after),
        "C_range_uniform": [float(before.specific_heat.min()), float(before.specific_heat.max())],
        "runtime_s": 0.0,
    }
    print(
        f"\nuniform ladder: acceptance {summary['uniform_min_acceptance']:.3f} .. "
        f"{summary['uniform_max_acceptance']:.3f} (starving rungs {summary['uniform_starving']}), "
        f"{summary['uniform_round_trips']} round trips; C(beta) "
        f"{summary['C_range_uniform'][0]:.3g} .. {summary['C_range_uniform'][1]:.3g}"
    )
    print(
        f"adapted ladder: acceptance {summary['adapted_min_acceptance']:.3f} .. "
        f"{summary['adapted_max_acceptance']:.3f} (starving rungs {summary['adapted_starving']}), "
        f"{summary['adapted_round_trips']} round trips"
    )
    print("adapted ladder: " + np.array2string(after.betas, precision=4, separator=", "))
    summary["runtime_s"] = time.time() - t0
    cm.write_json(summary, out / "summary.json")
    _figure(before, after, out / f"{NAME}.png")
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "summary": summary}


def _figure(before, after, path):
    plt = cm.pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for prof, label, m in ((before, "uniform", "o"), (after, "adapted", "s")):
        b = prof.betas
        mid = 0.5 * (b[1:] + b[:-1])
        trips = prof.round_trips.total
        ax[0].errorbar(
            b, prof.specific_heat, prof.specific_heat_err, fmt=m + "-", capsize=2, label=label
        )
        ax[1].plot(b, np.sqrt(np.maximum(prof.specific_heat, 0)) / b, m + "-", label=label)
        ax[2].errorbar(
            mid,
            prof.acceptance,
            prof.acceptance_err,
            fmt=m + "-",
            capsize=3,
            label=f"{label} ({trips} round trips)",
        )
        for x in b:
            ax[2].axvline(x, color="C0" if label == "uniform" else "C1", lw=0.4, alpha=0.5)
    ax[0].set(
        xlabel="beta", ylabel="C(beta) = beta^2 Var(E)", title="specific heat along the ladder"
    )
    ax[1].set(
        xlabel="beta",
        ylabel="sigma_E = sqrt(C) / beta",
        title="energy spread (sets the acceptance)",
    )
    ax[2].axhline(0.1, color="gray", lw=0.8, ls="--")
    ax[2].set(
        yscale="log",
        xlabel="beta (rung midpoint)",
        ylabel="swap acceptance",
        title="acceptance per rung",
    )
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    p.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    p.add_argument("--epochs", type=int, default=15, help="PCD training epochs (default 15)")
    p.add_argument("--rungs", type=int, default=6, help="rungs in the ladder (default 6)")
    p.add_argument("--beta-min", type=float, default=0.05, help="hot end of the ladder")
    p.add_argument("--sweeps", type=int, default=4000, help="chromatic steps per PT run")
    p.add_argument("--chains", type=int, default=4, help="independent PT chains")
    p.add_argument("--rounds", type=int, default=3, help="PT runs on adapted ladders")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
