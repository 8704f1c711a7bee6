"""Plug-ins the core CLI starts by entry point, never by name (core never names the host package):
the board emulator (group ``pbitsim.emulators``)."""

from __future__ import annotations

import click


def start_emulator(stack, couplings, design) -> str:
    """Start an emulated board for ``couplings``' topology and ``design`` on a local socket,
    stopped when ``stack`` (a contextlib.ExitStack) closes; returns its pyserial URL."""
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="pbitsim.emulators") if e.name == "board"]
    if not found:
        raise click.ClickException("no board emulator installed: pip install 'pbitsim[host]'")
    try:
        emulator = found[0].load()
    except ImportError as e:
        raise click.ClickException(f"the board emulator cannot load: {e}") from None
    return stack.enter_context(emulator(couplings, design)).start()
