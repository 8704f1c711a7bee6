"""``pbitsim sweep GRID.toml``: run a grid of runs on Dask (registered as a plug-in command)."""

from __future__ import annotations

import click


@click.command()
@click.argument("grid_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="A running Dask scheduler (default: an embedded LocalCluster on this machine).",
)
@click.option("--workers", type=int, default=None, help="Worker processes of the embedded cluster.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (default ./sweep-NAME); rerunning into it resumes.",
)
@click.option("--rerun", is_flag=True, help="Run finished cells again too.")
@click.option("--quick", is_flag=True, help="Apply the grid file's [quick] overrides.")
@click.option(
    "--resources",
    default=None,
    metavar="NAME=N,...",
    help="Dask resources of the embedded workers, e.g. board=1 (with --workers 1).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep(grid_file, scheduler, workers, out, rerun, quick, resources, progress):
    """Run every cell of GRID_FILE (models x methods x betas x seeds ...) and write one Parquet row
    per cell, the combined table OUT/results.parquet and the plot OUT/summary.png."""
    from pbitsim.sweep import GridError, load_grid, run
    from pbitsim.sweep.runner import require_distributed

    try:
        require_distributed()
        from pbitsim.sweep.store import require_pyarrow

        require_pyarrow()
    except ImportError as e:
        raise click.ClickException(str(e)) from None
    if workers is not None and workers < 1:
        raise click.BadParameter("must be >= 1", param_hint="--workers")
    try:
        grid = load_grid(grid_file, quick=quick)
        res = run(
            grid,
            scheduler,
            out=out,
            workers=workers,
            rerun=rerun,
            resources=_resources(resources),
            progress=progress,
        )
    except GridError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; rerun the same command to resume") from None
    except (ValueError, OSError) as e:  # e.g. bad resources, an unreachable scheduler
        raise click.ClickException(f"{type(e).__name__}: {e}") from None
    if not progress:  # run() printed the summary itself otherwise
        s = res.summary
        click.echo(f"{s['cells']} cells: {s['ok']} ok, {s['error']} failed -> {res.table_path}")
    if res.failed:
        raise SystemExit(1)


def _resources(text: str | None) -> dict | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{part!r} is not NAME=NUMBER", param_hint="--resources"
            ) from None
        if not eq or not name.strip():
            raise click.BadParameter(f"{part!r} is not NAME=NUMBER", param_hint="--resources")
    return out
