"""``pbitsim train``: train an RBM on digits (or your MNIST IDX files) while watching Q."""

from __future__ import annotations

import click

from pbitsim.cli.checks import POSITIVE


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
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Hidden units (<= 20: exact log-likelihood every epoch; more: pseudo-likelihood).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--lr",
    type=POSITIVE,
    default=0.1,
    show_default=True,
    help="Initial learning rate (decays geometrically to --lr-final).",
)
@click.option("--lr-final", type=POSITIVE, default=0.005, show_default=True)
@click.option(
    "--chains",
    type=click.IntRange(min=1),
    default=None,
    help="Persistent chains (R of Q) [default: 64; a board: its 1 chain, Q then across steps].",
)
@click.option(
    "-k",
    "--steps",
    "k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Sampler steps per gradient step (M of Q(M)).",
)
@click.option(
    "--sampler",
    default="chromatic",
    show_default=True,
    help="Sampling method: any name `pbitsim sample --help` lists (chromatic, "
    "sequential, random-scan, async, hardware, board, ...).",
)
@click.option(
    "--port",
    default=None,
    help="With --sampler board: the board's pyserial URL (/dev/ttyUSB1, socket://HOST:PORT), "
    "or 'emulate' for an emulated board built for the RBM in this process.",
)
@click.option(
    "--design",
    default="default",
    show_default=True,
    help="With --sampler hardware or --port emulate: the hardware design preset.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--out",
    default="pbitsim-train",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for checkpoints, history.json and the PNG figures.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
def train(
    data_spec,
    hidden,
    epochs,
    batch_size,
    lr,
    lr_final,
    chains,
    k,
    sampler,
    port,
    design,
    seed,
    out,
    progress,
):
    """Train a restricted Boltzmann machine by persistent contrastive divergence with any pbitsim
    sampler, recording per epoch the log-likelihood, Q (gradient SNR, bias-corrected, with error
    bar) and tau_int of the gradient observables. Writes checkpoints, history.json, samples.png
    and curves.png to --out. If the weights diverge, training stops with one line and --out
    keeps the last good checkpoint."""
    from pbitsim.cli.checks import out_dir
    from pbitsim.learn import RBM, TrainConfig, TrainingDiverged
    from pbitsim.learn import train as run_training
    from pbitsim.sampling import available_memory, get_method, methods, watch_compilation

    if sampler not in methods():
        raise click.BadParameter(
            f"unknown sampler {sampler!r}; choose from {methods()}", param_hint="--sampler"
        )
    try:  # a plug-in's method is listed before it is imported: fail here, cleanly
        get_method(sampler)
    except (ImportError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--sampler") from None
    options, board = _sampler_options(sampler, port, design)
    if chains is None:
        chains = 1 if board else 64
    data = load_data(data_spec)
    # the weights, their gradients and copies, and one data batch of statistics: refuse a size
    # that cannot fit before allocating it
    need = 8 * 8 * data.shape[1] * hidden + 8 * (chains + batch_size) * (data.shape[1] + hidden)
    free = available_memory()
    if free is not None and need > 0.5 * free:
        raise click.BadParameter(
            f"an RBM of {data.shape[1]} x {hidden} units with {chains} chains needs about "
            f"{need / 2**30:.3g} GiB, more than the {free / 2**30:.3g} GiB available",
            param_hint="--hidden/--chains",
        )
    out = out_dir(out, "--out")
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

    def say():
        click.echo("compiling sampling kernels (first run only) ...", err=True)

    # one runner of `sampler` holds the persistent chains for the whole run
    import contextlib

    with contextlib.ExitStack() as stack:
        if port == "emulate":
            from pbitsim.cli._plugins import start_emulator

            options["port"] = start_emulator(stack, model.to_couplings(), options.pop("design"))
            click.echo(f"emulated board on {options['port']}")
        try:
            with watch_compilation(say):
                history = run_training(
                    model,
                    data,
                    sampler,
                    config,
                    checkpoint_dir=out,
                    progress=progress,
                    callback=report,
                    sampler_options=options,
                )
        except TrainingDiverged as e:
            raise click.ClickException(str(e)) from None
        except (ConnectionError, TimeoutError, ValueError) as e:
            if not board:
                raise
            raise click.ClickException(f"board: {e}") from None
    from pbitsim.plots import plot_training

    # A board holds one chain: the figure's 32 samples from noise come from the exact sampler.
    paths = plot_training(model, history, out, seed=seed, sampler="chromatic" if board else sampler)
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def _sampler_options(sampler: str, port, design: str) -> tuple[dict, bool]:
    """(runner options, whether the sampler is a board) from --port and --design."""
    board = sampler == "board"
    if port is not None and not board:
        raise click.BadParameter("--port applies to --sampler board only", param_hint="--port")
    if board and port is None:
        raise click.BadParameter(
            "--sampler board needs --port URL (a board's serial port, socket://HOST:PORT of "
            "`pbitsim emulate`, or 'emulate')",
            param_hint="--port",
        )
    options: dict = {}
    if sampler == "hardware" or port == "emulate":
        from pbitsim.board.design import HardwareDesign

        try:
            options["design"] = HardwareDesign.from_name(design)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--design") from None
    elif design != "default":
        raise click.BadParameter(
            "--design applies to --sampler hardware and --port emulate (a board reports its own)",
            param_hint="--design",
        )
    if board and port != "emulate":
        options["port"] = port
    return options, board


def load_data(spec: str):
    """The training data named by ``--data``; every problem is one line (exit 2 for a bad spec,
    1 for a file that cannot be read)."""
    from pbitsim import datasets

    if spec == "digits":
        return datasets.digits()[0]
    if spec.startswith("digits:"):
        try:
            classes = tuple(int(x) for x in spec.split(":", 1)[1].split(","))
        except ValueError:
            raise click.BadParameter(f"bad class list in {spec!r}", param_hint="--data") from None
        try:
            return datasets.digits(classes)[0]
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--data") from None
    if spec.startswith("idx:"):
        paths = [x for x in spec.split(":", 1)[1].split(",") if x]
        if not 1 <= len(paths) <= 2:
            raise click.BadParameter(
                f"{spec!r}: use 'idx:IMAGES' or 'idx:IMAGES,LABELS'", param_hint="--data"
            )
        import struct
        import zlib

        try:
            return datasets.load_mnist_idx(*paths)[0]
        except (OSError, ValueError, EOFError, struct.error, zlib.error) as e:
            # struct.error: a header cut short; zlib.error: a damaged .gz
            raise click.ClickException(f"{', '.join(paths)}: {e}") from None
    raise click.BadParameter(
        f"{spec!r}: use 'digits', 'digits:0,1' or 'idx:IMAGES[,LABELS]'", param_hint="--data"
    )
