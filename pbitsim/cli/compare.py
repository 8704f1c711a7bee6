"""``pbitsim compare A [B] [--model MODEL]``: are two sample sets (or samples and the exact
distribution) the same distribution? Exit status 0: consistent, 1: inconsistent, 2: bad input."""

from __future__ import annotations

import click


class _BadInput(click.ClickException):
    """One clear line, exit status 2 (1 means "inconsistent")."""

    exit_code = 2


def _load(path: str, which: str):
    import pbitsim

    try:
        return pbitsim.load_samples(path)
    except (OSError, ValueError, KeyError) as e:
        raise _BadInput(f"{which} ({path}): {e}") from None


def _model(spec: str):
    from pbitsim.cli.sample import resolve_model

    try:
        return resolve_model(spec)
    except click.ClickException as e:
        raise _BadInput(f"--model: {e.format_message()}") from None


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="[B]", required=False)
@click.option(
    "--model",
    default=None,
    help="The model (.pbit file or built-in spec): its edges, beta_eff and exact distributions. "
    "Required without B (A is then compared with the exact distribution).",
)
@click.option(
    "--reference",
    type=click.Choice(["auto", "boltzmann", "quantized"]),
    default="auto",
    show_default=True,
    help="Without B: the exact distribution. 'quantized': the hardware design's quantised chain "
    "(hardware/board samples, n <= 12); auto picks it for them, else Boltzmann.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Level of the verdict (split between the moment tests and the joint test).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="compare-report.html",
    show_default=True,
    help="HTML report; its PNG plots are written beside it.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Compare samples whose couplings fingerprints differ (another model, another beta).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the MMD test.")
def compare(a, b, model, reference, alpha, out, allow_mismatch, seed) -> None:
    """Compare sample set A (PATH.npy + PATH.json) with sample set B, or with the model's exact
    distribution: means and edge correlations with tau-corrected error bars and Holm-corrected
    z-scores, beta_eff, a test of the joint distribution, KL to the exact distribution (small n),
    tau_int and Q side by side. Prints the verdict and writes an HTML report.

    Exit status: 0 consistent, 1 inconsistent, 2 bad input."""
    import warnings

    from pbitsim.diagnostics.compare import CompareMismatchError
    from pbitsim.diagnostics.compare import compare as run

    sa = _load(a, "A")
    sb = _load(b, "B") if b else None
    c = _model(model) if model else None
    if sb is None and c is None:
        raise _BadInput("give a second sample set B, or --model to compare A with the exact model")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = run(
                sa,
                sb,
                model=c,
                reference=reference,
                alpha=alpha,
                allow_mismatch=allow_mismatch,
                seed=seed,
                names=(a, b),
            )
    except CompareMismatchError as e:
        raise _BadInput(e.message("--allow-mismatch")) from None
    except (ValueError, TypeError) as e:
        raise _BadInput(str(e)) from None
    for w in caught:  # an accepted fingerprint mismatch, a clipped weight
        if not issubclass(w.category, RuntimeWarning):
            click.echo(f"warning: {w.message}", err=True)
    click.echo(res.text())
    path = res.write_report(out)
    click.echo(f"report written to {path}")
    if not res.consistent:
        raise SystemExit(1)
