"""Training toward trainability: the multi-mode Q predictor as a regulariser, over a dose ladder.

A fully visible Boltzmann machine on a 3 x 3 crop of the binarised 8 x 8 digits (rows and
columns 3..5, the centre; n = 9 spins, all 36 couplings and 9 fields, beta = 1) is trained by
full-batch gradient descent (Adam, learning rate 0.05, 200 steps, from small random couplings
and the independent-spin fields) on

    loss = -log-likelihood - alpha * log Q_pred(M),

with Q_pred(M) = M ||g||^2 / sum_k sigma^2_K(f_k): the observable-projected multi-mode predictor
(K = 4 slowest clusters; pbitsim.diagnostics.derivatives) of the gradient's squared SNR, for the
gradient's own observables (s_i s_j for the 36 pairs, s_i for the 9 fields), g the exact
log-likelihood gradient, M = 20 steps of the **symmetric sweep** kernel (forward then backward,
17 updates; reversible, and the pbitsim sampler ``method="symmetric"`` runs exactly this kernel).
Every quantity and gradient is exact (2^9 states). A step where the predictor is not
differentiable (its truncation boundary inside a near-degenerate cluster, or a kept eigenvalue 1
within rounding: a chain that no longer mixes in double precision) uses the likelihood gradient
alone and is counted.

Dose ladder alpha = 0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, every dose from the same
start. Metrics of each dose's final model, fixed before the run:

* the penalised diagnostic Q_pred(M) and the exact large-M Q(M) (resolvent, every mode);
* exact Q(M) at M = 20 (ExactChain) and Q-hat measured on the pbitsim sampler
  (``method="symmetric"``, 64 replicas, each one estimate: the time average of M = 20 sweeps
  after 500 sweeps of burn-in; bias-corrected, jackknife error);
* tau_int of the gradient observables, exact (median and max) and measured on the sampler
  (16 replicas x 5000 sweeps, pbitsim's estimate_tau), in symmetric sweeps;
* the exact log-likelihood (nats/image) and its gain over the independent-spin model; learning
  has collapsed at a dose whose gain is below 10% of the alpha = 0 gain;
* ||g||, the exact gradient norm at the end (zero at the maximum-likelihood model).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pbitsim.blas import blas_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as cm  # noqa: E402

from pbitsim import datasets  # noqa: E402
from pbitsim.couplings import Couplings  # noqa: E402
from pbitsim.diagnostics.autocorr import estimate_tau  # noqa: E402
from pbitsim.diagnostics.derivatives import (  # noqa: E402
    ExactDerivatives,
    NotDifferentiableError,
    with_parameters,
)
from pbitsim.diagnostics.kernels import exact_chain  # noqa: E402
from pbitsim.diagnostics.observables import pair_list  # noqa: E402
from pbitsim.diagnostics.q import (  # noqa: E402
    data_moments,
    exact_q,
    gradient_observables,
    q_from_samples,
)

NAME = "regulariser_dose"
KERNEL = "symmetric"

FULL = {
    "crop": (3, 3, 3),  # (first row, first column, size)
    "doses": [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    "steps": 200,
    "lr": 0.05,
    "K": 4,
    "M": 20,
    "q_replicas": 64,
    "burn_in": 500,
    "tau_replicas": 16,
    "tau_sweeps": 5000,
}
QUICK = {
    "crop": (3, 3, 2),
    "doses": [0.0, 0.01, 0.1, 1.0, 3.0, 10.0],
    "steps": 40,
    "lr": 0.05,
    "K": 2,
    "M": 20,
    "q_replicas": 64,
    "burn_in": 200,
    "tau_replicas": 8,
    "tau_sweeps": 2000,
}


def crop_digits(r0: int, c0: int, size: int) -> np.ndarray:
    X, _ = datasets.digits()
    return X.reshape(-1, 8, 8)[:, r0 : r0 + size, c0 : c0 + size].reshape(len(X), -1)


def log_likelihood(theta: np.ndarray, target: np.ndarray, F: np.ndarray) -> float:
    """Mean log p(data) = theta . <phi>_D - log Z of the family p ~ exp(theta . phi)."""
    a = F @ theta
    top = a.max()
    return float(theta @ target - top - np.log(np.exp(a - top).sum()))


class Adam:
    def __init__(self, lr: float):
        self.lr, self.t, self.m, self.v = lr, 0, 0.0, 0.0

    def step(self, theta, grad):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad**2
        mh = self.m / (1 - 0.9**self.t)
        vh = self.v / (1 - 0.999**self.t)
        return theta - self.lr * mh / (np.sqrt(vh) + 1e-8)


def train(topo, theta0, target, F, alpha, cfg):
    """Adam on -LL - alpha log Q_pred; returns (theta, curve rows, non-differentiable steps)."""
    theta, opt, curve, nd = theta0.copy(), Adam(cfg["lr"]), [], 0
    pairs = pair_list("all", topo.n)
    for step in range(cfg["steps"] + 1):
        c = with_parameters(topo, theta)
        D = ExactDerivatives(c, KERNEL)
        grad = -(target - D.chain.p @ F)  # d(-LL)/dtheta at beta = 1
        try:
            qp = D.q(target, cfg["M"], pairs=pairs, fields=True, K=cfg["K"])
            log_q = float(np.log10(qp.value))
            if alpha > 0:
                grad = grad - alpha * qp.grad / qp.value
        except NotDifferentiableError:
            log_q = np.nan
            nd += alpha > 0
        if step % 5 == 0 or step == cfg["steps"]:
            curve.append(
                {
                    "alpha": alpha,
                    "step": step,
                    "log_likelihood": log_likelihood(theta, target, F),
                    "log10_q_pred": log_q,
                }
            )
        if not np.all(np.isfinite(grad)):
            raise FloatingPointError(f"non-finite loss gradient at step {step} (alpha {alpha})")
        if step < cfg["steps"]:
            theta = opt.step(theta, grad)
    return theta, curve, nd


def measure(c, target, cfg, seed):
    """Exact and sampled Q(M) and tau_int of the final model."""
    pairs = pair_list("all", c.n)
    D = ExactDerivatives(c, KERNEL)
    try:
        q_pred = D.q(target, cfg["M"], pairs=pairs, fields=True, K=cfg["K"]).value
    except NotDifferentiableError:  # the value exists, only its derivative does not
        from pbitsim.diagnostics.q import predicted_q

        q_pred = predicted_q(D.chain, target, cfg["M"], pairs=pairs, fields=True, K=cfg["K"])[
            "multi_mode"
        ]
    q_asym = D.q(target, cfg["M"], pairs=pairs, fields=True).value
    chain = exact_chain(c, KERNEL)
    Fobs = gradient_observables(chain.states, pairs, True)
    tau_exact = D.tau_int(Fobs).value
    q_m = exact_q(chain, target, cfg["M"], pairs=pairs, fields=True)
    g = target - chain.p @ Fobs
    s = cm.sample(
        c, cfg["M"], method=KERNEL, replicas=cfg["q_replicas"], burn_in=cfg["burn_in"], seed=seed
    )
    qh = q_from_samples(s, target, pairs=pairs, fields=True, couplings=c)
    t = cm.sample(
        c,
        cfg["tau_sweeps"],
        method=KERNEL,
        replicas=cfg["tau_replicas"],
        burn_in=cfg["burn_in"],
        seed=seed + 1,
    )
    it = estimate_tau(gradient_observables(t.spins, pairs, True), quiet=True)
    tau_s = np.atleast_1d(it.tau)
    return {
        "q_pred": float(q_pred),
        "q_exact_large_m": float(q_asym),
        "q_exact_M": float(q_m),
        "q_sampled": qh.q,
        "q_sampled_err": qh.q_err,
        "tau_exact_median": float(np.median(tau_exact)),
        "tau_exact_max": float(np.max(tau_exact)),
        "tau_sampled_median": float(np.nanmedian(tau_s)),
        "tau_sampled_max": float(np.nanmax(tau_s)),
        "tau_converged": int(np.sum(np.atleast_1d(it.converged))),
        "grad_norm": float(np.linalg.norm(g)),
        "gap": chain.spectral_gap(),
        # beyond |beta I| = 7.9 the sampler's float32 p-bit decision is saturated (P = 0 or 1 up
        # to its 2**-24 grid): exact probabilities below ~1e-7 are not reproduced
        "max_abs_field": float(np.abs(c.local_fields(chain.states)).max()),
    }


def main(argv=None) -> dict:
    args = _args(argv)
    cm.quiet_warnings()
    # scipy.linalg loads its own BLAS after _common limited the threads: limit it too (many
    # small solves, which threads on a shared 2-core machine only slow down)
    blas_threads(1)
    out = cm.outdir(args, NAME)
    t0 = time.time()
    cfg = QUICK if args.quick else FULL
    r0, c0, size = cfg["crop"]
    X = crop_digits(r0, c0, size)
    n = X.shape[1]
    pairs = pair_list("all", n)
    topo = Couplings.from_edges(n, [(int(i), int(j), 0.0) for i, j in pairs], h=np.zeros(n))
    target = data_moments(X, pairs, fields=True)  # parameter order: the pairs, then the fields
    F = gradient_observables(exact_chain(topo).states, pairs, True)
    rng = np.random.default_rng(args.seed)
    h0 = np.arctanh(np.clip(X.mean(axis=0), -0.98, 0.98))
    theta0 = np.concatenate([rng.normal(0.0, 0.01, len(pairs)), h0])
    ll_indep = log_likelihood(np.concatenate([np.zeros(len(pairs)), h0]), target, F)
    print(
        f"FVBM on the {size}x{size} digits crop (rows/cols {r0}..{r0 + size - 1}), n = {n}, "
        f"{len(X)} images; kernel {KERNEL}, M = {cfg['M']}, K = {cfg['K']}; independent-spin "
        f"log-likelihood {ll_indep:.4f} nats/image"
    )
    rows, curves = [], []
    for alpha in cfg["doses"]:
        ts = time.time()
        theta, curve, nd = train(topo, theta0, target, F, alpha, cfg)
        c = with_parameters(topo, theta)
        ll = log_likelihood(theta, target, F)
        m = measure(c, target, cfg, args.seed + 10)
        rows.append(
            {
                "alpha": alpha,
                "log_likelihood": ll,
                "ll_gain": ll - ll_indep,
                "log10_q_pred": float(np.log10(m["q_pred"])),
                "log10_q_exact": float(np.log10(m["q_exact_large_m"])),
                **m,
                "max_abs_J": float(np.abs(theta[: len(pairs)]).max()),
                "nondiff_steps": nd,
                "seconds": time.time() - ts,
            }
        )
        curves += curve
        r = rows[-1]
        print(
            f"alpha {alpha:g}: LL {ll:.4f} (gain {r['ll_gain']:.4f}), Q_pred {r['q_pred']:.4g}, "
            f"Q exact {r['q_exact_M']:.4g}, sampled {r['q_sampled']:.4g} +- "
            f"{r['q_sampled_err']:.2g}, tau median {r['tau_exact_median']:.3g} "
            f"({r['seconds']:.0f} s)"
        )
    base = rows[0]["ll_gain"]
    for r in rows:
        r["ll_gain_fraction"] = r["ll_gain"] / base
        r["collapsed"] = bool(r["ll_gain"] < 0.1 * base)
    cm.table(
        [{k: v for k, v in r.items() if k not in ("seconds",)} for r in rows],
        out / NAME,
        f"dose ladder: loss = -LL - alpha log Q_pred(M = {cfg['M']}), {KERNEL} kernel, "
        f"K = {cfg['K']} (times in symmetric sweeps)",
    )
    cm.table(curves, out / "training_curves")
    collapsed = [r["alpha"] for r in rows if r["collapsed"]]
    summary = {
        "n": n,
        "kernel": KERNEL,
        "config": cfg,
        "ll_independent": ll_indep,
        "ll_gain_alpha0": base,
        "first_collapsed_alpha": collapsed[0] if collapsed else None,
        "q_pred_alpha0": rows[0]["q_pred"],
        "q_pred_max_dose": rows[-1]["q_pred"],
        "q_exact_alpha0": rows[0]["q_exact_M"],
        "q_exact_max_dose": rows[-1]["q_exact_M"],
        "runtime_s": time.time() - t0,
    }
    cm.write_json({"summary": summary, "rows": rows}, out / "summary.json")
    _figure(rows, curves, out / f"{NAME}.png", cfg)
    print(f"runtime {summary['runtime_s']:.1f} s")
    return {"rows": rows, "curves": curves, "summary": summary}


def _figure(rows, curves, path, cfg):
    plt = cm.pyplot()
    fig, ax = plt.subplots(2, 2, figsize=(12, 8.5))
    alphas = np.array([r["alpha"] for r in rows])
    tiny = alphas[alphas > 0].min() / 10
    x = np.where(alphas > 0, alphas, tiny)  # alpha = 0 drawn one decade left of the first dose

    a = ax[0, 0]
    a.plot(x, [r["q_pred"] for r in rows], "o-", label="Q_pred (penalised: multi-mode)")
    a.plot(x, [r["q_exact_M"] for r in rows], "s--", label="Q(M) exact")
    a.errorbar(
        x,
        [r["q_sampled"] for r in rows],
        [r["q_sampled_err"] for r in rows],
        fmt="k^",
        capsize=3,
        label="Q-hat on the sampler",
    )
    a.set(xscale="log", yscale="log", xlabel="dose alpha (0 at the far left)", ylabel="Q(M)")
    a.set_title(f"the diagnostic (M = {cfg['M']} {KERNEL} sweeps)")
    a.legend(fontsize=8)

    a = ax[0, 1]
    a.plot(x, [r["ll_gain"] for r in rows], "o-")
    a.axhline(0.1 * rows[0]["ll_gain"], color="gray", ls=":", label="10% of the alpha = 0 gain")
    a.set(
        xscale="log",
        xlabel="dose alpha",
        ylabel="log-likelihood gain over independent spins (nats/image)",
        title="what the model learnt",
    )
    a.legend(fontsize=8)

    a = ax[1, 0]
    for i, r in enumerate(rows):
        cur = [c for c in curves if c["alpha"] == r["alpha"]]
        a.plot(
            [c["step"] for c in cur],
            [c["log10_q_pred"] for c in cur],
            color=plt.cm.viridis(i / max(len(rows) - 1, 1)),
            label=f"alpha {r['alpha']:g}",
        )
    a.set(
        xlabel="training step", ylabel="log10 Q_pred", title="the penalised diagnostic in training"
    )
    a.legend(fontsize=7, ncol=2)

    a = ax[1, 1]
    a.plot(x, [r["tau_exact_median"] for r in rows], "o-", label="tau_int exact (median)")
    a.plot(x, [r["tau_exact_max"] for r in rows], "s--", label="tau_int exact (max)")
    a.plot(x, [r["tau_sampled_median"] for r in rows], "k^", label="tau_int sampled (median)")
    a.set(xscale="log", yscale="log", xlabel="dose alpha", ylabel="symmetric sweeps")
    a.set_title("autocorrelation of the gradient observables")
    a.legend(fontsize=8)
    fig.tight_layout()
    cm.save(fig, path)


def _args(argv):
    p = cm.parser(__doc__, NAME)
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
