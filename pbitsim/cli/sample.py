"""``pbitsim sample MODEL``: draw samples with any method and stream them to disk."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pbitsim.cli.checks import POSITIVE, out_file
from pbitsim.cli.make import resolve_model

__all__ = ["sample", "resolve_model", "run_sample"]


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of numbers", param_hint=name
        ) from None
    if not all(0 < v < float("inf") for v in values):
        raise click.BadParameter(f"{text!r}: every beta must be finite and > 0", param_hint=name)
    return values


def run_sample(c, sweeps: int, *, label: str = "", **kwargs):
    """``pbitsim.sample`` for a subcommand: says "compiling sampling kernels (first run only)"
    on stderr while Numba compiles, and turns argument errors into one line.

    Returns (samples, sampling seconds, compile seconds).
    """
    import pbitsim
    from pbitsim.fixedpoint import FixedPointOverflowError
    from pbitsim.sampling import RunTooLargeError, watch_compilation

    def say():
        click.echo("compiling sampling kernels (first run only) ...", err=True)

    t0 = time.perf_counter()
    try:
        with watch_compilation(say) as compiled:
            s = pbitsim.sample(c, sweeps, **kwargs)
    except RunTooLargeError as e:
        raise click.UsageError(str(e)) from None
    except FixedPointOverflowError as e:  # the model does not fit the hardware's numbers
        raise click.ClickException(str(e)) from None
    except (ValueError, TypeError, ImportError) as e:  # an argument the sampler refuses
        raise click.UsageError(f"{label}{e}") from None
    except OSError as e:  # a full disk, a board's link lost: what was streamed stays, noted
        raise click.ClickException(f"{label}{e}") from None
    total = time.perf_counter() - t0
    return s, max(0.0, total - compiled.seconds), compiled.seconds


def timing(seconds: float, compile_seconds: float) -> str:
    """'1.23 s' or '1.23 s (+ 21.4 s compiling sampling kernels, first run only)'."""
    text = f"{seconds:.2f} s"
    if compile_seconds > 0:
        text += f" (+ {compile_seconds:.1f} s compiling sampling kernels, first run only)"
    return text


@click.command()
@click.argument("model")
@click.option(
    "--sweeps",
    type=click.IntRange(min=1),
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
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Independent chains (parallel tempering: chains of len(--betas) rungs).",
)
@click.option(
    "--burn-in",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Steps discarded first.",
)
@click.option(
    "--thin",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Record every thin-th step.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed (default: fresh, recorded).",
)
@click.option("--beta", type=POSITIVE, default=None, help="Sample at this beta, not the model's.")
@click.option(
    "--betas", default=None, metavar="B0,B1,...", help="Parallel tempering ladder (exact methods)."
)
@click.option(
    "--swap-every", type=click.IntRange(min=1), default=None, help="Steps between PT swap attempts."
)
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
    help="Write OUT.npy (spins), OUT.energies.npy ... and OUT.json (metadata) as the run goes; "
    "an interrupted run leaves what it drew, marked complete: false.",
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
    """Sample MODEL (a .pbit file, another model file `pbitsim make` reads, or a built-in spec
    such as lattice:16x16,beta=0.44, sk:64, glass:12,field=0.3 or rbm:6x4) and print a summary;
    with --out, stream the samples to disk (reload them with pbitsim.load_samples)."""
    import numpy as np

    from pbitsim.sampling import get_method

    if sweeps % thin:
        raise click.BadParameter(
            f"{sweeps} is not a multiple of thin ({thin})", param_hint="--sweeps"
        )
    try:
        get_method(method)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--method") from None
    except (ImportError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--method") from None
    if out is not None:
        out_file(out, "--out")
    options = {}
    if betas is not None:
        options["betas"] = _floats(betas, "--betas")
    if swap_every is not None:
        options["swap_every"] = swap_every
    if anneal is not None:
        options["anneal"] = _floats(anneal, "--anneal")
        if len(options["anneal"]) != 2:
            raise click.BadParameter(f"{anneal!r} is not START,STOP", param_hint="--anneal")
    c = resolve_model(model)
    s, seconds, compiled = run_sample(
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
    rows = s.spins.shape[0]
    updates = rows * c.n * (burn_in + sweeps)
    click.echo(f"model      {c!r}")
    click.echo(f"method     {method} ({s.settings['step_unit']}), seed {s.seed}")
    click.echo(f"samples    {rows} rows x {s.draws} draws x {c.n} spins")
    rate = updates / seconds / 1e9 if seconds > 0 else float("inf")
    click.echo(f"time       {timing(seconds, compiled)}: {rate:.3g} spin updates/ns")
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
    if "swap_acceptance" in s.info:
        click.echo(f"{'swap_acceptance':<10} {s.info['swap_acceptance']}")
    if "walker_index" in s.info and "betas" in s.info:
        # counted from the recorded draws exactly as `pbitsim diagnose` counts them
        from pbitsim.diagnostics.pt import round_trips

        trips = round_trips(s.info["walker_index"], len(s.info["betas"]))
        click.echo(f"round trips {trips.per_chain.tolist()} per chain (in the recorded draws)")
    if out is not None:
        click.echo(f"written    {Path(out).with_suffix('')}.npy / .json")
