"""The ``pbitsim`` command-line program.

Each subcommand lives in its own module of this package and is imported only when it is run, so
``pbitsim --help`` stays fast and a subcommand's heavy imports (Numba kernels, matplotlib, amaranth)
are paid only by that subcommand. To add one, write ``pbitsim/cli/NAME.py`` defining a click command
and list it in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help shown by `pbitsim --help`)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "info": (
        "pbitsim.cli.info",
        "info",
        "Describe a coupling file: size, degrees, colours, fingerprints, quantisation error.",
    ),
    "demo": (
        "pbitsim.cli.demo",
        "demo",
        "Sample a small built-in model and check it against exact enumeration (no board needed).",
    ),
    "sample": (
        "pbitsim.cli.sample",
        "sample",
        "Sample a .pbit file or built-in model with any method; stream the samples to disk.",
    ),
    "train": (
        "pbitsim.cli.train",
        "train",
        "Train an RBM on digits with any sampler, watching Q, tau_int and the likelihood.",
    ),
    "diagnose": (
        "pbitsim.cli.diagnose",
        "diagnose",
        "Diagnose samples: tau_int/ESS, Q, parallel-tempering ladder health; PNG report.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="pbitsim")
def main() -> None:
    """pbitsim: simulate, build and diagnose p-bit Boltzmann samplers."""


def load_model(path: str):
    """Load a coupling file for a subcommand, turning format errors into a clean CLI error."""
    import pbitsim

    try:
        return pbitsim.load(path)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
