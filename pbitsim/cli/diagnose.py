"""``pbitsim diagnose SAMPLES``."""

from __future__ import annotations

import click

from pbitsim.cli import load_model

_OBSERVABLES = ("energy", "magnetisation", "edges", "pairs")


def _observables(ctx, param, value: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in value.split(",") if x.strip())
    bad = [x for x in names if x not in _OBSERVABLES]
    if bad or not names:
        raise click.BadParameter(
            f"{', '.join(bad) or 'none given'}: choose from "
            f"{', '.join(_OBSERVABLES)} (comma-separated)"
        )
    return names


@click.command()
@click.argument("samples", type=click.Path(exists=False))
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False),
    help="The .pbit model the samples were drawn from (energies, edges; fingerprint checked).",
)
@click.option(
    "--observables",
    default="energy,magnetisation,edges",
    show_default=True,
    callback=_observables,
    help="Comma-separated: energy, magnetisation, edges (mean s_i s_j over edges), "
    "pairs (every edge's s_i s_j).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="Data spins (.npy, (N, n) of +-1) for the gradient SNR Q.",
)
@click.option(
    "--batch",
    type=int,
    default=None,
    help="Draws per gradient estimate (default: a whole replica).",
)
@click.option(
    "--rung",
    type=int,
    default=None,
    help="PT runs: temperature slot to analyse (default: the model's beta, else the largest).",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Write a PNG report (autocorrelation curves, PT profile) to this path.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Accept samples whose couplings fingerprint differs from the model's.",
)
def diagnose(samples, model, observables, data, batch, rung, out, allow_mismatch) -> None:
    """Diagnose SAMPLES (PATH.npy + PATH.json from pbitsim.sample or a board): tau_int and ESS
    of energy, magnetisation and edge correlations, Q (with --data), and for parallel tempering
    the acceptance / specific-heat profile, round trips and starving rungs."""
    import warnings

    import numpy as np

    import pbitsim
    from pbitsim.diagnostics.report import diagnose as run

    try:
        s = pbitsim.load_samples(samples)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    c = load_model(model) if model else None
    d = None
    if data:
        try:
            d = np.load(data)
        except (OSError, ValueError) as e:
            raise click.ClickException(f"{data}: {e}") from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = run(
                s,
                c,
                observables=observables,
                data=d,
                batch=batch,
                rung=rung,
                allow_mismatch=allow_mismatch,
            )
    except ValueError as e:  # includes FingerprintMismatchError
        raise click.ClickException(str(e)) from None
    for w in caught:  # e.g. an accepted fingerprint mismatch, degenerate eigenvalues
        click.echo(f"warning: {w.message}", err=True)
    click.echo(res.text())
    if out:
        path = res.plot(out)
        click.echo(f"report written to {path}")
