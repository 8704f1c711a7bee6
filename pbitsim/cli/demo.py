"""``pbitsim demo``: the whole loop on a small model, no board needed.

1. the chromatic p-bit simulator against exact enumeration;
2. an emulated board (the board's own command engine with the bit-exact cycle model, over a local
   socket) — or a real board with ``--port URL`` — loaded through the host client;
3. the board's samples compared with the hardware-faithful simulator's (the same design and
   seed: identical) and with the exact distribution of the quantised model
   (:mod:`pbitsim.diagnostics.compare`), with a verdict and an HTML report.
"""

from __future__ import annotations

import click

#: a 12-spin frustrated spin glass (Gaussian couplings on half the pairs) with random fields
DEMO_SPEC = "glass:12,p=0.5,field=0.5,seed=1,beta=0.7"


@click.command()
@click.option(
    "--out",
    default="pbitsim-demo.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="PNG of sampled vs exact state probabilities.",
)
@click.option(
    "--sweeps",
    type=click.IntRange(min=1),
    default=20000,
    show_default=True,
    help="Chromatic steps per chain (rounded down to a multiple of --thin).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=2),
    default=16,
    show_default=True,
    help="Independent chains (at least 2: the error bars come from their spread).",
)
@click.option(
    "--thin",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Record every thin-th step.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--port",
    default=None,
    help="A real board's pyserial URL (/dev/ttyUSB1, socket://HOST:PORT) built for the demo "
    "model's topology (`pbitsim make` writes it); default: an emulated board on a local socket.",
)
@click.option(
    "--board-sweeps",
    type=click.IntRange(min=0),
    default=20000,
    show_default=True,
    help="Colour periods drawn from the board (0 skips the board part).",
)
@click.option(
    "--report",
    default="pbitsim-demo.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML report of the comparisons (PNG plots beside it).",
)
def demo(out, sweeps, replicas, thin, seed, port, board_sweeps, report):
    """The whole loop on a 12-spin frustrated spin glass with fields: the chromatic p-bit
    sampler against exact enumeration (<s_i>, the strongest <s_i s_j>, KL, a PNG of sampled vs
    exact state probabilities); then an emulated board (or --port: a real one) loaded through the
    host, its samples compared with the hardware-faithful simulator's and with the quantised
    model's exact distribution; verdicts and an HTML report. Exits with status 1 if a moment is
    off by more than 5 standard errors or a comparison is inconsistent."""
    import numpy as np

    from pbitsim import exact, models
    from pbitsim.cli.checks import out_file
    from pbitsim.cli.sample import run_sample, timing
    from pbitsim.plots import _plt

    out_file(out, "--out", image=True)
    out_file(report, "--report")
    if sweeps < thin:
        raise click.BadParameter(
            f"{sweeps} is fewer than one draw every --thin {thin} steps", param_hint="--sweeps"
        )
    c = models.from_spec(DEMO_SPEC)
    sweeps -= sweeps % thin
    s, seconds, compiled = run_sample(
        c, sweeps, method="chromatic", replicas=replicas, burn_in=100, thin=thin, seed=seed
    )
    spins = s.spins
    n_draws = spins.shape[0] * spins.shape[1]
    click.echo(f"model    {DEMO_SPEC}: {c.n} spins, {c.n_edges} couplings, {c.n_colors} colours")
    click.echo(
        f"sampled  {replicas} chains x {sweeps} chromatic steps, every {thin}th kept "
        f"({n_draws} draws, seed {seed}) in {timing(seconds, compiled)}"
    )

    m_exact, C_exact = exact.exact_moments(c)
    # Standard errors from the spread of the independent chains' means (batch means).
    m_rep = spins.mean(axis=1, dtype=np.float64)
    m_s, m_se = m_rep.mean(axis=0), m_rep.std(axis=0, ddof=1) / np.sqrt(replicas)
    i_e, j_e, w_e = c.edges()
    top = np.argsort(-np.abs(w_e))[:6]
    pairs = list(zip(i_e[top].tolist(), j_e[top].tolist()))
    c_rep = np.stack(
        [(spins[:, :, i] * spins[:, :, j]).mean(axis=1, dtype=np.float64) for i, j in pairs], 1
    )
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
    lo = max(p[seen].min(), 0.5 / n_draws)
    # Where the frequencies of N independent exact draws fall (+-2 binomial standard deviations
    # around p): points inside the band are within sampling noise of the exact probability.
    grid = np.geomspace(lo, 1, 200)
    half = 2 * np.sqrt(grid * (1 - grid) / n_draws)
    ax.fill_between(
        grid,
        np.maximum(grid - half, lo / 2),
        grid + half,
        color="tab:blue",
        alpha=0.15,
        lw=0,
        label=f"+-2 sd of {n_draws} independent draws",
    )
    ax.loglog(p[seen], p_s[seen], ".", ms=3, alpha=0.6, label="states seen")
    ax.plot([lo, 1], [lo, 1], "k-", lw=0.8, label="sampled = exact")
    ax.set_ylim(lo / 2, 1)
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
    if board_sweeps:
        ok &= _board_loop(c, board_sweeps, thin, seed, port, report)
    if not ok:
        raise SystemExit(1)


def _board_loop(c, sweeps: int, thin: int, seed: int, port, report) -> bool:
    """Board (emulated or real) -> compare with the simulator and the exact distribution."""
    import contextlib

    import numpy as np

    from pbitsim.board.design import HardwareDesign
    from pbitsim.cli.sample import run_sample, timing
    from pbitsim.diagnostics.compare import compare, write_report

    sweeps -= sweeps % thin
    with contextlib.ExitStack() as stack:
        if port is None:
            from pbitsim.cli._plugins import start_emulator

            url = start_emulator(stack, c, HardwareDesign.default())
            where = f"emulated board on {url}"
        else:
            url, where = port, f"board on {port}"
        board, seconds, compiled = run_sample(
            c, sweeps, method="board", port=url, burn_in=100, thin=thin, seed=seed,
            label="board: ",
        )  # fmt: skip
    design = board.settings["runner"]["design"]
    sim, _, _ = run_sample(c, sweeps, method="hardware", design=design, burn_in=100, thin=thin,
                           seed=seed)  # fmt: skip
    click.echo(
        f"\nboard    {where}: loaded, LOAD-DIGEST matches the host's; {sweeps} colour periods, "
        f"every {thin}th kept, in {timing(seconds, compiled)}"
    )
    same = np.array_equal(board.spins, sim.spins)
    click.echo(
        "         "
        + ("bit-identical to" if same else "DIFFERENT from")
        + " the hardware-faithful simulator with the same design and seed"
    )
    vs_sim = compare(board, sim, model=c, names=("board", "simulator"))
    vs_exact = compare(board, model=c, names=("board", None))
    for label, r in (("board vs simulator", vs_sim), ("board vs exact", vs_exact)):
        click.echo(f"{label}: " + r.verdict().removeprefix("verdict: "))
    path = write_report([vs_sim, vs_exact], report)
    click.echo(f"wrote    {path} (the comparisons, with plots)")
    return same and vs_sim.consistent and vs_exact.consistent
