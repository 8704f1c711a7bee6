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

The same questions for the cycle-level hardware designs (``method="hardware"``, the cycle model
that the RTL matches bit for bit; ``docs/hardware-model.md`` section 5.2), side by side with the
float-level sampler in a second table (``async_bias_cycle``) and in the figure:

* ``"async-random"`` (the twin of mode ``"poisson"``) vs p at read latency L = 0, and vs L at fixed
  p; each p-bit acts with probability p = ENABLE / 2**16 per cycle, from a second generator;
* ``"async-periodic"`` (the twin of mode ``"periodic"``, no jitter) vs the spread of the periods
  (T_i uniform integers in [T - s, T + s], random phases) and vs L; the float sampler runs the same
  periods with jitter 0;
* the chromatic design (L = 0): Gibbs sampling with the hardware's numbers, whose KL to the model
  is the bias the quantisation sets.

All are measured against the real-valued model's Boltzmann distribution, like the float sampler,
so the hardware rows include what the fixed-point numbers cost. ``KL_exact`` of an async-random
row with L = 0 is the exact stationary bias of the *quantised* chain with ideal generators
(:mod:`pbitsim.async_design`), and ``KL_floor`` the p -> 0 limit of that chain: the floor the
quantisation sets, which no enable probability removes. The summary gives the designer's answer
:func:`pbitsim.async_design.max_enable_probability`: the largest p keeping the exact KL to the
quantised model's Boltzmann distribution below 1e-3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import async_design, exact, models  # noqa: E402
from pbitsim.diagnostics.compare import compare  # noqa: E402

#: Mean period (cycles / ticks) of the periodic designs, and the spreads of the period sweep.
PERIOD = 8
SPREADS = (0, 2, 4)

NAME = "async_bias"


def test_models(seed: int) -> dict:
    return {
        "ferromagnet": models.ferromagnet(6, J=1.0, beta=0.25),
        "spin-glass": models.spin_glass(6, p=0.7, seed=seed + 1, field=0.3, beta=0.8),
    }


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
        # d = 10: its bias (0.02 in the full run) stands ~5 sd above 16,000 draws' floor
        ps, delays, sweeps, R = [1.0, 0.05], [0, 10], 2000, 8
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
            pi = async_design.stationary_distribution(exact.async_tick_kernel(c, p))
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
    cycle_rows = _cycle_level(args, ps, sweeps, R, burn)
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
    cm.table(
        cycle_rows,
        out / f"{NAME}_cycle",
        "cycle-level designs (method='hardware') beside the float sampler, vs the model's "
        "Boltzmann; KL_exact: exact quantised async-random chain (L = 0); KL_floor: its p -> 0 "
        "limit",
    )
    for name, c in test_models(args.seed).items():
        mine = [r for r in cycle_rows if r["model"] == name]
        hw = {
            (r["p"], r["L"]): r
            for r in mine
            if r["sampler"] == "hardware" and r["schedule"] == "async-random"
        }
        hi, lo = hw[(1.0, 0)], hw[(min(ps), 0)]
        choice = async_design.max_enable_probability(c, 1e-3)
        summary[name].update(
            {
                "hw_KL_p1": hi["KL"],
                "hw_KL_p1_err": hi["KL_err"],
                f"hw_KL_p{min(ps):g}": lo["KL"],
                f"hw_KL_p{min(ps):g}_err": lo["KL_err"],
                "hw_KL_floor_exact": hi["KL_floor"],
                "hw_p_max_for_KL_1e-3": choice.p,
                "hw_enable_for_KL_1e-3": choice.threshold,
            }
        )
        print(
            f"{name} (cycle level): KL at p=1 {hi['KL']:.4g} +- {hi['KL_err']:.2g} (exact "
            f"{hi['KL_exact']:.3g}), at p={min(ps):g} {lo['KL']:.4g} +- {lo['KL_err']:.2g}; "
            f"quantisation floor {hi['KL_floor']:.3g}; largest p with exact KL to the quantised "
            f"model <= 1e-3: {choice.p:.4g} (ENABLE = {choice.threshold})"
        )
    summary["runtime_s"] = time.time() - t0
    cm.write_json(summary, out / "summary.json")
    _figure(rows, cycle_rows, args, out / f"{NAME}.png")
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "cycle_rows": cycle_rows, "summary": summary}


def _periods(n: int, spread: int, seed: int) -> np.ndarray:
    """Integer periods uniform on [PERIOD - spread, PERIOD + spread] (fixed per seed)."""
    rng = np.random.default_rng(seed + 1000 * spread)
    return rng.integers(PERIOD - spread, PERIOD + spread + 1, n)


def _cycle_level(args, ps, sweeps: int, R: int, burn: int) -> list[dict]:
    """Rows of the cycle-level designs (and the float-periodic twins) for every test model."""
    rows = []
    for name, c in test_models(args.seed).items():
        rows += _cycle_rows(name, c, args, ps, sweeps, R, burn)
    return rows


def _cycle_rows(name, c, args, ps, sweeps: int, R: int, burn: int) -> list[dict]:
    latencies = (0, 2) if args.quick else (0, 1, 2)
    spreads = (0, 4) if args.quick else SPREADS
    floor = async_design.kl_floor(c, reference="model")

    def row(sampler, kind, label, kl_exact=np.nan, **sample_kw):
        """One sampled row: ``kind`` is the schedule or mode; ``label`` the p, L and T_spread
        of the row (NaN where not used)."""
        s = cm.sample(c, sweeps, replicas=R, burn_in=burn, seed=args.seed, **sample_kw)
        return {
            "model": name,
            "sampler": sampler,
            "schedule": kind,
            "p": label.get("p", np.nan),
            "L": label.get("L", 0),
            "T_spread": label.get("T_spread", np.nan),
            "draws": R * sweeps,
            "KL_exact": kl_exact,
            "KL_floor": floor if kind == "async-random" else np.nan,
            **measure(s, c),
        }

    def random(p, L=0, kl_exact=np.nan):
        return row(
            "hardware",
            "async-random",
            {"p": p, "L": L},
            kl_exact,
            method="hardware",
            schedule="async-random",
            read_latency=L,
            p=p,
        )

    rows = [row("hardware", "chromatic", {}, method="hardware")]
    for p in ps:
        rows.append(random(p, kl_exact=async_design.async_random_kl(c, p, reference="model")))
    for L in latencies:
        if L > 0 or args.p_delay not in ps:
            rows.append(random(args.p_delay, L))
    for spread in spreads:
        T = _periods(c.n, spread, args.seed)
        for L in latencies if spread == spreads[-1] else (0,):
            rows.append(
                row(
                    "hardware",
                    "async-periodic",
                    {"L": L, "T_spread": spread},
                    method="hardware",
                    schedule="async-periodic",
                    read_latency=L,
                    period=T,
                )
            )
        rows.append(
            row(
                "async (float)",
                "periodic",
                {"T_spread": spread},
                method="async",
                mode="periodic",
                period=T.astype(float),
                jitter=0.0,
            )
        )
    return rows


def _figure(rows, cycle_rows, args, path):
    plt = cm.pyplot()
    fig, axs = plt.subplots(2, 2, figsize=(13, 9))
    ax = axs.ravel()
    for k, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        col = f"C{k}"
        mine = [r for r in rows if r["model"] == name]
        hw = [r for r in cycle_rows if r["model"] == name]
        pr = sorted(
            (r for r in mine if r["delay"] == 0 and r["sampler"] == "async"), key=lambda r: r["p"]
        )
        hr = sorted(
            (r for r in hw if r["schedule"] == "async-random" and r["L"] == 0),
            key=lambda r: r["p"],
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
            label=f"{name}: float async, sampled",
        )
        ax[0].plot(p, [r["KL_exact_async"] for r in pr], "--", color=col, label="float, exact")
        ax[0].errorbar(
            [r["p"] for r in hr],
            [r["KL"] for r in hr],
            yerr=[r["KL_err"] for r in hr],
            fmt="s-",
            mfc="none",
            color=col,
            capsize=3,
            label=f"{name}: hardware async-random, sampled",
        )
        ax[0].plot(
            [r["p"] for r in hr],
            [r["KL_exact"] for r in hr],
            ":",
            color=col,
            label="hardware, exact (quantised chain)",
        )
        ax[0].axhline(hr[0]["KL_floor"], color=col, lw=0.8, ls="-.")
        ax[0].axhspan(
            floor["KL"] - floor["KL_err"], floor["KL"] + floor["KL_err"], color=col, alpha=0.15
        )
        ax[1].errorbar(
            p,
            [r["moment_err"] for r in pr],
            yerr=[r["moment_err_se"] for r in pr],
            fmt="o-",
            color=col,
            capsize=3,
            label=f"{name}: float",
        )
        ax[1].errorbar(
            [r["p"] for r in hr],
            [r["moment_err"] for r in hr],
            yerr=[r["moment_err_se"] for r in hr],
            fmt="s-",
            mfc="none",
            color=col,
            capsize=3,
            label=f"{name}: hardware",
        )
        ax[1].axhline(floor["moment_err"], color=col, lw=0.8, ls=":")
        dr = sorted((r for r in mine if r["p"] == args.p_delay), key=lambda r: r["delay"])
        lr = sorted(
            (r for r in hw if r["schedule"] == "async-random" and r["p"] == args.p_delay),
            key=lambda r: r["L"],
        )
        for series, key, fmt, what in ((dr, "delay", "o-", "float d"), (lr, "L", "s-", "hw L")):
            ax[2].errorbar(
                [r[key] for r in series],
                [r["KL"] for r in series],
                yerr=[r["KL_err"] for r in series],
                fmt=fmt,
                mfc="none" if what.startswith("hw") else None,
                color=col,
                capsize=3,
                label=f"{name}: {what}",
            )
        ax[2].axhline(floor["KL"], color=col, lw=0.8, ls=":")
        for sampler, sched, fmt in (
            ("hardware", "async-periodic", "s-"),
            ("async (float)", "periodic", "o--"),
        ):
            sr = sorted(
                (r for r in hw if r["schedule"] == sched and r["L"] == 0),
                key=lambda r: r["T_spread"],
            )
            ax[3].errorbar(
                [r["T_spread"] for r in sr],
                [r["KL"] for r in sr],
                yerr=[r["KL_err"] for r in sr],
                fmt=fmt,
                color=col,
                capsize=3,
                label=f"{name}: {sampler} (L = 0)",
            )
        late = [r for r in hw if r["schedule"] == "async-periodic" and r["L"] > 0]
        if late:
            ax[3].errorbar(
                [r["T_spread"] + 0.1 * r["L"] for r in late],
                [r["KL"] for r in late],
                yerr=[r["KL_err"] for r in late],
                fmt="^",
                color=col,
                capsize=3,
                label=f"{name}: hardware, L = " + ", ".join(str(r["L"]) for r in late),
            )
        chrom = next(r for r in hw if r["schedule"] == "chromatic")
        ax[3].axhline(chrom["KL"], color=col, lw=0.8, ls="-.")
    ax[0].set(
        xscale="log",
        yscale="log",
        xlabel="update probability p per tick / cycle",
        ylabel="KL(empirical || Boltzmann of the model) [nats]",
        title="bias vs p (no staleness); band: exact Gibbs, same draws; dash-dot: quantisation",
    )
    ax[1].set(
        xscale="log",
        yscale="log",
        xlabel="update probability p per tick / cycle",
        ylabel="moment error",
        title="first and second moments vs exact",
    )
    ax[2].set(
        yscale="log",
        xlabel="staleness: float delay d (ticks), hardware read latency L (cycles)",
        ylabel="KL [nats]",
        title=f"bias vs stale reads (p = {args.p_delay:g})",
    )
    ax[3].set(
        yscale="log",
        xlabel=f"period spread s (T_i uniform in [{PERIOD} - s, {PERIOD} + s], random phases)",
        ylabel="KL [nats]",
        title="periodic p-bits; dash-dot: chromatic hardware (quantisation only)",
    )
    for a in ax:
        a.legend(fontsize=6)
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
