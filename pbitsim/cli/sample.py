"""``pbitsim sample MODEL``: draw samples with any method and stream them to disk."""

from __future__ import annotations

import time
from pathlib import Path

import click


def resolve_model(model: str):
    """A .pbit file, or a built-in model spec such as ``lattice:16x16,beta=0.44``."""
    from pbitsim import models
    from pbitsim.cli import load_model

    if Path(model).exists():
        return load_model(model)
    if ":" not in model:
        raise click.BadParameter(
            f"{model!r} is neither an existing .pbit file nor a model spec; "
            f"try e.g. {', '.join(ex for _, _, ex in models.SPECS.values())}",
            param_hint="MODEL",
        )
    try:
        return models.from_spec(model)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="MODEL") from None


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of numbers", param_hint=name
        ) from None


@click.command()
@click.argument("model")
@click.option(
    "--sweeps",
    type=int,
    required=True,
    help="Steps after burn-in (in the method's unit); a multiple of --thin.",
)
@click.option(
    "--method",
    default="chromatic",
    show_default=True,
    help="chromatic, sequential, random-scan, async, hardware (any registered method).",
)
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    help="Independent chains (parallel tempering: chains of len(--betas) rungs).",
)
@click.option("--burn-in", default=0, show_default=True, help="Steps discarded first.")
@click.option("--thin", default=1, show_default=True, help="Record every thin-th step.")
@click.option("--seed", type=int, default=None, help="Seed (default: fresh, recorded).")
@click.option("--beta", type=float, default=None, help="Sample at this beta, not the model's.")
@click.option(
    "--betas", default=None, metavar="B0,B1,...", help="Parallel tempering ladder (exact methods)."
)
@click.option("--swap-every", type=int, default=None, help="Steps between PT swap attempts.")
@click.option(
    "--anneal",
    default=None,
    metavar="START,STOP",
    help="Anneal beta linearly from START to STOP over the run (exact methods).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write OUT.npy (spins), OUT.energies.npy ... and OUT.json (metadata).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a tty for long runs)."
)
def sample(
    model,
    sweeps,
    method,
    replicas,
    burn_in,
    thin,
    seed,
    beta,
    betas,
    swap_every,
    anneal,
    out,
    progress,
):
    """Sample MODEL (a .pbit file or a built-in spec such as lattice:16x16,beta=0.44, sk:64,
    glass:12,field=0.3 or rbm:6x4) and print a summary; with --out, stream the samples to disk
    (reload them with pbitsim.load_samples)."""
    import numpy as np

    import pbitsim
    from pbitsim.couplings import CouplingsError

    c = resolve_model(model)
    options = {}
    if betas is not None:
        options["betas"] = _floats(betas, "--betas")
    if swap_every is not None:
        options["swap_every"] = swap_every
    if anneal is not None:
        options["anneal"] = _floats(anneal, "--anneal")
    t0 = time.perf_counter()
    try:
        s = pbitsim.sample(
            c,
            sweeps,
            method=method,
            replicas=replicas,
            burn_in=burn_in,
            thin=thin,
            seed=seed,
            out=out,
            progress=progress,
            beta=beta,
            **options,
        )
    except (ValueError, CouplingsError) as e:
        raise click.ClickException(str(e)) from None
    seconds = time.perf_counter() - t0
    rows = s.spins.shape[0]
    updates = rows * c.n * (burn_in + sweeps)
    click.echo(f"model      {c!r}")
    click.echo(f"method     {method} ({s.settings['step_unit']}), seed {s.seed}")
    click.echo(f"samples    {rows} rows x {s.draws} draws x {c.n} spins")
    click.echo(
        f"time       {seconds:.2f} s ({updates / seconds / 1e9:.3f} spin updates/ns, "
        f"compilation included)"
    )
    if "energies" in s.info:
        e = np.asarray(s.info["energies"]).mean(axis=1) / c.n
        click.echo(
            f"E/n        mean over draws per row: {np.array2string(e[:8], precision=4)}"
            + (" ..." if rows > 8 else "")
        )
    m = np.abs(np.asarray(s.spins, dtype=np.float64).mean(axis=2)).mean(axis=1)
    click.echo(
        f"|m|        mean per row: {np.array2string(m[:8], precision=4)}"
        + (" ..." if rows > 8 else "")
    )
    for key in ("swap_acceptance", "round_trips"):
        if key in s.info:
            click.echo(f"{key:<10} {s.info[key]}")
    if out is not None:
        click.echo(f"written    {Path(out).with_suffix('')}.npy / .json")
