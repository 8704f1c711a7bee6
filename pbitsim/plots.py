"""Figures shared by the CLI and sims/ (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(ax, images: np.ndarray, shape: tuple[int, int], cols: int = 8) -> None:
    """Tile +-1 vectors as binary images on one axis."""
    rows = int(np.ceil(len(images) / cols))
    h, w = shape
    canvas = np.full((rows * (h + 1), cols * (w + 1)), np.nan)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = img.reshape(h, w)
    ax.imshow(canvas, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()


def plot_training(
    model,
    history,
    out,
    seed: int = 0,
    sampler: str = "chromatic",
    n_samples: int = 32,
    steps: int = 200,
    sampler_options: dict | None = None,
) -> list[Path]:
    """Write ``samples.png`` (model samples after ``steps`` steps of method ``sampler`` from
    noise) and ``curves.png`` (log-likelihood, Q with error bars, tau_int per epoch) into
    ``out``."""
    from pbitsim.sampling import open_runner

    plt = _plt()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    state = rng.choice(np.array([-1, 1], np.int8), size=(n_samples, model.n))
    with open_runner(
        model.to_couplings(), sampler, n_samples, seed, **(sampler_options or {})
    ) as runner:
        runner.set_state(state)
        chain = runner.draw(steps, 1)
    v = model.visible(np.asarray(chain[:, -1]))
    side = int(round(np.sqrt(v.shape[1])))
    shape = (side, v.shape[1] // side)
    fig, ax = plt.subplots(figsize=(6, 3 * n_samples / 32 + 0.6))
    image_grid(ax, v, shape)
    ax.set_title(f"model samples ({sampler}, {steps} steps from noise)")
    p1 = out / "samples.png"
    fig.savefig(p1, dpi=100, bbox_inches="tight")
    plt.close(fig)

    ep = [r.epoch for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(ep, [r.log_likelihood for r in history], "o-")
    axes[0].set(
        xlabel="epoch",
        ylabel=f"log-likelihood ({history[0].likelihood_kind})" if history else "log-likelihood",
    )
    axes[1].errorbar(
        ep,
        [r.q for r in history],
        yerr=[r.q_err for r in history],
        fmt="o-",
        label="Q (bias-corrected)",
    )
    axes[1].plot(ep, [r.q_naive for r in history], "x--", label="naive")
    axes[1].set_yscale("symlog", linthresh=1e-2)
    axes[1].set(xlabel="epoch", ylabel="Q = |g|^2 / sum Var")
    axes[1].legend()
    axes[2].plot(ep, [r.tau_int for r in history], "o-", label="v_i h_j (median)")
    axes[2].plot(ep, [r.tau_int_magnetisation for r in history], "s--", label="magnetisation")
    axes[2].set(xlabel="epoch", ylabel="tau_int (steps)")
    axes[2].legend()
    fig.tight_layout()
    p2 = out / "curves.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return [p1, p2]
