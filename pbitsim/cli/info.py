"""``pbitsim info FILE``."""

from __future__ import annotations

import click
import numpy as np


def describe(c, spec=None) -> list[tuple[str, str]]:
    """Rows of (label, value) describing a model; shared by ``info`` and reports."""
    from pbitsim.fixedpoint import FixedPointOverflowError, FixedPointSpec

    deg = c.degrees
    sizes = np.bincount(c.coloring, minlength=c.n_colors) if c.n else np.zeros(0, int)
    rows = [
        ("spins", f"{c.n}"),
        ("edges", f"{c.n_edges}"),
        (
            "degree min/mean/max",
            f"{deg.min() if c.n else 0} / {deg.mean() if c.n else 0:.2f} / "
            f"{deg.max() if c.n else 0}",
        ),
        ("beta", f"{c.beta:g}"),
        ("|J| max", f"{np.abs(c.data).max() if c.nnz else 0:g}"),
        ("|h| max", f"{np.abs(c.h).max() if c.n else 0:g}"),
        ("colours", f"{c.n_colors} (sizes {', '.join(map(str, sizes.tolist()))})"),
        ("fingerprint", c.fingerprint),
        ("topology fingerprint", c.topology_fingerprint),
        ("values fingerprint", c.values_fingerprint),
    ]
    spec = spec or c.fixed_point or FixedPointSpec.default()
    origin = "given" if spec is not c.fixed_point else "the model's"
    if c.fixed_point is None and spec == FixedPointSpec.default():
        origin = "default"
    label = f"fixed point ({spec.format_name}, {origin} spec)"
    try:
        rep = c.quantized(spec).report()
        rows.append(
            (
                label,
                f"max |err(beta J)| {rep['max_abs_error_beta_J']:.4g}, "
                f"rms {rep['rms_error_beta_J']:.4g}, max |err(beta h)| "
                f"{rep['max_abs_error_beta_h']:.4g}, input saturates: "
                f"{rep['input_saturates']}",
            )
        )
    except FixedPointOverflowError as e:
        rows.append((label, f"DOES NOT FIT: {e}"))
    return rows


@click.command()
@click.argument("model")
@click.option(
    "--published",
    is_flag=True,
    help="Report quantisation for the published 6-bit s4.1 design instead.",
)
def info(model: str, published: bool) -> None:
    """Describe MODEL (a .pbit file, another model file `pbitsim make` reads, or a built-in spec
    such as lattice:16x16): size, degree statistics, colouring, fingerprints and the
    quantisation error of its fixed-point view."""
    from pbitsim.cli.make import resolve_model
    from pbitsim.fixedpoint import FixedPointSpec

    c = resolve_model(model)
    spec = FixedPointSpec.published() if published else None
    rows = describe(c, spec)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
