"""The ``pbitsim`` command-line program.

Each subcommand lives in its own module of this package and is imported only when it is run, so
``pbitsim --help`` stays fast and a subcommand's heavy imports (Numba kernels, matplotlib, amaranth)
are paid only by that subcommand. To add one, write ``pbitsim/cli/NAME.py`` defining a click command
and list it in ``SUBCOMMANDS``.

Other distributions add subcommands through the entry-point group ``pbitsim.commands`` (``name =
module:command``, a click command). They too are imported only when run: ``pbitsim --help`` lists
them with their entry point, without importing them. A built-in name wins over a plug-in's.
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
    "make": (
        "pbitsim.cli.make",
        "make",
        "Write a .pbit file from a built-in spec, a matrix, an edge list, a BQM or a graph.",
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
    "compare": (
        "pbitsim.cli.compare",
        "compare",
        "Compare two sample sets, or samples and the exact distribution; verdict, HTML report.",
    ),
}


#: entry-point group through which other distributions add subcommands
COMMANDS_GROUP = "pbitsim.commands"


def plugin_commands() -> dict:
    """Entry points of group ``pbitsim.commands`` by name (not loaded), built-in names left out."""
    from importlib.metadata import entry_points

    found: dict = {}
    for ep in entry_points(group=COMMANDS_GROUP):
        if ep.name not in SUBCOMMANDS:
            found.setdefault(ep.name, ep)
    return found


def _load_plugin(name: str, ep) -> click.Command:
    try:
        obj = ep.load()
    except Exception as e:
        raise click.ClickException(
            f"command {name!r} (entry point {ep.value!r} of group {COMMANDS_GROUP!r}) could not "
            f"be loaded: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(obj, click.Command):
        raise click.ClickException(
            f"command {name!r}: entry point {ep.value!r} of group {COMMANDS_GROUP!r} is "
            f"{obj!r}, not a click command"
        )
    return obj


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(SUBCOMMANDS) | set(plugin_commands()))

    def get_command(self, ctx, name):
        if name in SUBCOMMANDS:
            module, attr, _ = SUBCOMMANDS[name]
            return getattr(importlib.import_module(module), attr)
        ep = plugin_commands().get(name)
        return None if ep is None else _load_plugin(name, ep)

    def format_commands(self, ctx, formatter):
        # Plug-ins are described by their entry point, not imported: --help stays fast and
        # works even when a plug-in's dependencies are missing.
        plugins = plugin_commands()
        rows = [
            (name, SUBCOMMANDS[name][2] if name in SUBCOMMANDS else _plugin_help(plugins[name]))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _plugin_help(ep) -> str:
    dist = getattr(ep, "dist", None)
    source = f"from {dist.name}" if dist is not None else "plug-in"
    return f"({source}: {ep.value}; see its --help)"


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
