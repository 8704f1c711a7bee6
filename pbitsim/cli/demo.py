"""``pbitsim demo``: sample a small model and check it against exact enumeration."""

from __future__ import annotations

import time

import click

#: a 12-spin frustrated spin glass (Gaussian couplings on half the pairs) with random fields
DEMO_SPEC = "glass:12,p=0.5,field=0.5,seed=1,beta=0.7"


@click.command()
@click.option(
    "--out",
    default="pbitsim-demo.png",
    show_default=True,
    type=click.Path(),
    help="PNG of sampled vs exact state probabilities.",
)
@click.option("--sweeps", default=20000, show_default=True, help="Chromatic steps per chain.")
@click.option("--replicas", default=16, show_default=True, help="Independent chains.")
@click.option("--thin", default=4, show_default=True, help="Record every thin-th step.")
@click.option("--seed", default=0, show_default=True)
def demo(out, sweeps, replicas, thin, seed):
    """Sample a 12-spin frustrated spin glass with fields using the chromatic p-bit sampler and
    compare with exact enumeration: <s_i>, the strongest <s_i s_j>, the KL divergence of the
    sampled state histogram against its expected finite-sample size, and a PNG of sampled vs
    exact state probabilities. Exits with status 1 if a moment is off by more than 5 standard
    errors."""
    import numpy as np

    import pbitsim
    from pbitsim import exact, models
    from pbitsim.plots import _plt

    c = models.from_spec(DEMO_SPEC)
    sweeps -= sweeps % thin
    t0 = time.perf_counter()
    s = pbitsim.sample(
        c, sweeps, method="chromatic", replicas=replicas, burn_in=100, thin=thin, seed=seed
    )
    seconds = time.perf_counter() - t0
    spins = s.spins.astype(np.float64)
    n_draws = spins.shape[0] * spins.shape[1]
    click.echo(f"model    {DEMO_SPEC}: {c.n} spins, {c.n_edges} couplings, {c.n_colors} colours")
    click.echo(
        f"sampled  {replicas} chains x {sweeps} chromatic steps, every {thin}th kept "
        f"({n_draws} draws, seed {seed}) in {seconds:.2f} s"
    )

    m_exact, C_exact = exact.exact_moments(c)
    # Standard errors from the spread of the independent chains' means (batch means).
    m_rep = spins.mean(axis=1)
    m_s, m_se = m_rep.mean(axis=0), m_rep.std(axis=0, ddof=1) / np.sqrt(replicas)
    i_e, j_e, w_e = c.edges()
    top = np.argsort(-np.abs(w_e))[:6]
    pairs = list(zip(i_e[top].tolist(), j_e[top].tolist()))
    c_rep = np.stack([(spins[:, :, i] * spins[:, :, j]).mean(axis=1) for i, j in pairs], 1)
    c_s, c_se = c_rep.mean(axis=0), c_rep.std(axis=0, ddof=1) / np.sqrt(replicas)
    c_exact = np.array([C_exact[i, j] for i, j in pairs])

    click.echo(f"\n{'moment':>12} {'sampled':>9} {'exact':>9} {'error':>9} {'SE':>8}")
    for i in range(c.n):
        click.echo(
            f"{f'<s{i}>':>12} {m_s[i]:9.4f} {m_exact[i]:9.4f} "
            f"{m_s[i] - m_exact[i]:9.4f} {m_se[i]:8.4f}"
        )
    for (i, j), a, b, se in zip(pairs, c_s, c_exact, c_se):
        click.echo(f"{f'<s{i} s{j}>':>12} {a:9.4f} {b:9.4f} {a - b:9.4f} {se:8.4f}")
    z = np.abs(np.r_[m_s - m_exact, c_s - c_exact]) / np.r_[m_se, c_se]

    p = exact.boltzmann(c)
    p_s = exact.empirical_distribution(s.spins, c.n)
    kl = exact.kl_divergence(p_s, p)
    # What an exact sampler drawing the same number of independent states would show.
    rng = np.random.default_rng(seed)
    kl_iid = [exact.kl_divergence(rng.multinomial(n_draws, p) / n_draws, p) for _ in range(20)]
    click.echo(
        f"\nKL(sampled || exact) = {kl:.5f} nats; {n_draws} independent exact draws give "
        f"{np.mean(kl_iid):.5f} +- {np.std(kl_iid):.5f} (correlated draws give more)"
    )
    ok = bool(np.all(z < 5))
    click.echo(
        f"largest |error| / SE = {z.max():.2f}: "
        + ("OK, every moment within 5 SE" if ok else "MISMATCH")
    )

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    seen = p_s > 0
    ax.loglog(p[seen], p_s[seen], ".", ms=3, alpha=0.6, label="states seen")
    lo = max(p[seen].min(), 0.5 / n_draws)
    ax.plot([lo, 1], [lo, 1], "k-", lw=0.8, label="sampled = exact")
    ax.set_xlabel("exact probability")
    ax.set_ylabel("sampled frequency")
    ax.set_title(
        f"chromatic p-bit sampler, {c.n}-spin glass\nKL = {kl:.4f} nats "
        f"(independent exact draws: {np.mean(kl_iid):.4f})",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    click.echo(f"wrote    {out}")
    if not ok:
        raise SystemExit(1)
