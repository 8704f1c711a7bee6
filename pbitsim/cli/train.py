"""``pbitsim train``: train an RBM on digits (or your MNIST IDX files) while watching Q."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--data",
    "data_spec",
    default="digits",
    help="'digits' (scikit-learn's 8x8 digits, binarised; no download), "
    "'digits:0,1' for some classes, or 'idx:IMAGES[,LABELS]' for MNIST IDX files.",
)
@click.option(
    "--hidden",
    default=16,
    show_default=True,
    help="Hidden units (<= 20: exact log-likelihood every epoch; more: pseudo-likelihood).",
)
@click.option("--epochs", default=15, show_default=True)
@click.option("--batch-size", default=100, show_default=True)
@click.option(
    "--lr",
    default=0.1,
    show_default=True,
    help="Initial learning rate (decays geometrically to --lr-final).",
)
@click.option("--lr-final", default=0.005, show_default=True)
@click.option("--chains", default=64, show_default=True, help="Persistent chains (R of Q).")
@click.option(
    "-k",
    "--steps",
    "k",
    default=5,
    show_default=True,
    help="Sampler steps per gradient step (M of Q(M)).",
)
@click.option(
    "--sampler",
    default="chromatic",
    show_default=True,
    help="Sampling method: any name `pbitsim sample --help` lists (chromatic, "
    "sequential, random-scan, async, hardware).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--out",
    default="pbitsim-train",
    show_default=True,
    type=click.Path(),
    help="Directory for checkpoints, history.json and the PNG figures.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
def train(
    data_spec, hidden, epochs, batch_size, lr, lr_final, chains, k, sampler, seed, out, progress
):
    """Train a restricted Boltzmann machine by persistent contrastive divergence with any pbitsim
    sampler, recording per epoch the log-likelihood, Q (gradient SNR, bias-corrected, with error
    bar) and tau_int of the gradient observables. Writes checkpoints, history.json, samples.png
    and curves.png to --out."""
    from pbitsim.learn import RBM, TrainConfig
    from pbitsim.learn import train as run_training
    from pbitsim.sampling import get_method, methods

    if sampler not in methods():
        raise click.BadParameter(
            f"unknown sampler {sampler!r}; choose from {methods()}", param_hint="--sampler"
        )
    try:  # a plug-in's method is listed before it is imported: fail here, cleanly
        get_method(sampler)
    except (ImportError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--sampler") from None
    data = load_data(data_spec)
    model = RBM.init(data.shape[1], hidden, seed=seed, data=data)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_final=lr_final,
        chains=chains,
        k=k,
        seed=seed,
    )
    out = Path(out)
    click.echo(
        f"training RBM {data.shape[1]}x{hidden} on {len(data)} examples with the "
        f"{sampler!r} sampler; writing to {out}/"
    )
    click.echo(
        f"{'epoch':>5} {'log-lik':>9} {'Q':>10} {'+-':>9} {'naive Q':>10} "
        f"{'tau(vh)':>8} {'tau(m)':>8}"
    )

    def report(rec, _model):
        click.echo(
            f"{rec.epoch:>5} {rec.log_likelihood:>9.3f} {rec.q:>10.4g} {rec.q_err:>9.2g} "
            f"{rec.q_naive:>10.4g} {rec.tau_int:>8.2f} {rec.tau_int_magnetisation:>8.2f}"
        )

    # one runner of `sampler` holds the persistent chains for the whole run
    history = run_training(
        model,
        data,
        sampler,
        config,
        checkpoint_dir=out,
        progress=progress,
        callback=report,
    )
    from pbitsim.plots import plot_training

    paths = plot_training(model, history, out, seed=seed, sampler=sampler)
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def load_data(spec: str):
    from pbitsim import datasets

    if spec == "digits":
        return datasets.digits()[0]
    if spec.startswith("digits:"):
        try:
            classes = tuple(int(x) for x in spec.split(":", 1)[1].split(","))
        except ValueError:
            raise click.BadParameter(f"bad class list in {spec!r}", param_hint="--data") from None
        return datasets.digits(classes)[0]
    if spec.startswith("idx:"):
        paths = spec.split(":", 1)[1].split(",")
        return datasets.load_mnist_idx(*paths[:2])[0]
    raise click.BadParameter(
        f"{spec!r}: use 'digits', 'digits:0,1' or 'idx:IMAGES[,LABELS]'", param_hint="--data"
    )
