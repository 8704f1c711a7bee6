"""``pbitsim diagnose SAMPLES``."""

from __future__ import annotations

import click

from pbitsim.cli.checks import out_file

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


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(ctx, param, value: str) -> int:
    """A byte count: a number with an optional K, M, G or T suffix (binary; "B"/"iB" allowed)."""
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in "KMGT" else ""
    try:
        number = float(text[: len(text) - len(unit)])
    except ValueError:
        number = -1.0
    size = int(number * _UNITS[unit])
    if number <= 0 or size < 1 << 20:
        raise click.BadParameter(
            f"{value!r}: give a size of at least 1M, e.g. 256M or 2G", param_hint="--memory"
        )
    return size


@click.command()
@click.argument("samples", type=click.Path(exists=False))
@click.option(
    "--model",
    default=None,
    help="The model the samples were drawn from: a .pbit file, another model file `pbitsim make` "
    "reads, or a built-in spec (energies, edges; fingerprint checked).",
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
    type=click.IntRange(min=1),
    default=None,
    help="Draws per gradient estimate (default: a whole replica).",
)
@click.option(
    "--rung",
    type=click.IntRange(min=0),
    default=None,
    help="PT runs: temperature slot to analyse (default: the model's beta, else the largest).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a PNG report (autocorrelation curves, PT profile) to this path.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Accept samples whose couplings fingerprint differs from the model's.",
)
@click.option(
    "--memory",
    default="512M",
    show_default=True,
    callback=_size,
    help="Memory budget for the diagnostics' working arrays (e.g. 256M, 2G; the process adds "
    "~150M of its own). Samples whose analysis in memory would need more are streamed: read in "
    "chunks from the memory-mapped .npy in two passes, with the same estimates (the "
    "autocovariance up to --max-lag).",
)
@click.option(
    "--max-lag",
    type=click.IntRange(min=1),
    default=None,
    help="Stream the samples (whatever --memory) with this last lag of the autocovariance "
    "(streaming's default: min(draws - 1, 65536), lowered to fit --memory). A window that needs "
    "more lags is reported untrusted, with the reason, never cut.",
)
def diagnose(
    samples, model, observables, data, batch, rung, out, allow_mismatch, memory, max_lag
) -> None:
    """Diagnose SAMPLES (PATH.npy + PATH.json from pbitsim.sample or a board): tau_int and ESS
    of energy, magnetisation and edge correlations, Q (with --data), and for parallel tempering
    the acceptance / specific-heat profile, round trips and starving rungs. Draws that do not
    fit the --memory budget are streamed from disk in bounded memory."""
    import warnings

    import pbitsim
    from pbitsim.cli.make import resolve_model
    from pbitsim.diagnostics.report import diagnose as run
    from pbitsim.samples import FingerprintMismatchError

    if out:
        out_file(out, "--out", image=True)
    c = resolve_model(model, "--model") if model else None
    try:
        # values are checked while streaming, or here when the samples are read in memory
        s = pbitsim.load_samples(samples, check=False)
    except (OSError, ValueError) as e:  # SamplesFileError names the file and the problem
        raise click.ClickException(str(e)) from None
    stream = max_lag is not None or _needs_streaming(s, c, observables, memory)
    if not stream:  # read in memory: check every spin first (streaming checks them as it reads)
        try:
            s = pbitsim.load_samples(samples)
        except (OSError, ValueError) as e:
            raise click.ClickException(str(e)) from None
    if s.replicas * s.draws < 2:
        raise click.ClickException(
            f"{samples}: {s.replicas} rows x {s.draws} draws: too few draws to diagnose"
        )
    if not s.complete:
        click.echo(
            f"warning: the run was interrupted: {s.draws} of {s.settings.get('draws', '?')} "
            f"draws were written; diagnosing those",
            err=True,
        )
    if c is not None and c.n != s.n:
        raise click.BadParameter(
            f"the model has {c.n} spins but the samples have {s.n}", param_hint="--model"
        )
    if rung is not None:
        from pbitsim.diagnostics.pt import is_pt, pt_betas

        if not is_pt(s):
            raise click.BadParameter(
                "applies to parallel-tempering runs only; these samples have one beta",
                param_hint="--rung",
            )
        if rung >= len(pt_betas(s)):
            raise click.BadParameter(
                f"{rung} is not a rung of this {len(pt_betas(s))}-rung ladder (0.."
                f"{len(pt_betas(s)) - 1})",
                param_hint="--rung",
            )
    d = _read_data(data, s.n) if data else None
    if batch is not None and batch > s.draws:
        raise click.BadParameter(
            f"{batch} is more than the {s.draws} draws per row", param_hint="--batch"
        )
    kw = dict(observables=observables, data=d, batch=batch, rung=rung)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if stream:
                from pbitsim.diagnostics.streaming import diagnose_streaming

                res = diagnose_streaming(
                    s,
                    c,
                    allow_mismatch=allow_mismatch,
                    memory=memory,
                    max_lag=max_lag,
                    check=True,
                    **kw,
                )
            else:
                res = run(s, c, allow_mismatch=allow_mismatch, **kw)
    except FingerprintMismatchError as e:
        raise click.ClickException(e.message("--allow-mismatch")) from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for w in caught:  # e.g. an accepted fingerprint mismatch, degenerate eigenvalues
        click.echo(f"warning: {w.message}", err=True)
    click.echo(res.text())
    if out:
        path = res.plot(out)
        click.echo(f"report written to {path}")


def _needs_streaming(s, couplings, observables, memory: int) -> bool:
    """Whether the in-memory analysis of ``s`` would exceed the budget."""
    from pbitsim.diagnostics.streaming import in_memory_bytes

    if couplings is not None:
        n_pairs = couplings.edges()[0].size
    else:
        n_pairs = s.n * (s.n - 1) // 2
    return in_memory_bytes(s, n_pairs, observables) > memory


def _read_data(path: str, n: int):
    """Data spins for Q: a .npy of shape (N, n) holding +1/-1."""
    import numpy as np

    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise click.ClickException(f"{path}: not a readable .npy array ({e})") from None
    if d.ndim != 2 or d.shape[1] != n or len(d) < 2:
        raise click.ClickException(
            f"{path}: data must have shape (N >= 2, {n}) to match the samples, not {d.shape}"
        )
    if d.dtype.kind not in "biuf" or not np.all((d == 1) | (d == -1)):
        raise click.ClickException(f"{path}: data must hold +1/-1 spins")
    return d.astype(np.int8)
