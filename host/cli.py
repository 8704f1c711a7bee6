"""``pbitsim emulate``: serve an emulated board on a local socket or a pseudo-terminal."""

from __future__ import annotations

import re

import click

__all__ = ["emulate"]


@click.command(
    help="Serve an emulated board (the bit-exact cycle model behind the board's "
    "command engine) on a local socket or a pseudo-terminal, until Ctrl-C."
)
@click.argument("model")
@click.option(
    "--port",
    "url",
    default="socket://127.0.0.1:0",
    show_default=True,
    help="socket://HOST:PORT to listen on (PORT 0: any free port). Only local addresses.",
)
@click.option("--pty", is_flag=True, help="Serve on a pseudo-terminal instead; prints its path.")
@click.option(
    "--design",
    default="default",
    show_default=True,
    help="Hardware design preset the emulated board is built with (default, published).",
)
@click.option("--max-frame", default=1024, show_default=True, type=click.IntRange(64, 65535))
@click.option("--buffer-frames", default=16, show_default=True, type=click.IntRange(1, 32767))
@click.option(
    "--faults",
    default="",
    help="Faults to inject, KIND=TYPE#N[:SECONDS],...: corrupt, corrupt-in, drop, repeat, "
    "stall, reset, disconnect at the N-th frame of TYPE (e.g. drop=SAMPLES#3).",
)
def emulate(model, url, pty, design, max_frame, buffer_frames, faults):
    from pbitsim.board.design import HardwareDesign
    from pbitsim.cli import load_model

    from .emulator import Emulator, parse_faults

    couplings = _model(model, load_model)
    try:
        hw = HardwareDesign.from_name(design)
        hw.check(couplings)
        fault_list = parse_faults(faults)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    emu = Emulator(
        couplings, hw, max_frame=max_frame, buffer_frames=buffer_frames, faults=fault_list
    )
    say = click.echo

    def ready(where):
        say(
            f"emulated board ({design} design, n = {couplings.n}, topology "
            f"{couplings.topology_fingerprint[:16]}) on {where}"
        )
        say(f"sample from it: pbitsim.sample(model, sweeps, method='board', port='{where}')")

    try:
        if pty:
            emu.serve_pty(ready)
        else:
            m = re.fullmatch(r"socket://([^:/]+):(\d+)", url)
            if not m:
                raise click.BadParameter(f"--port must be socket://HOST:PORT, not {url!r}")
            if m.group(1) not in ("127.0.0.1", "localhost", "::1"):
                raise click.BadParameter("the emulator listens on a local address only")
            emu.serve_socket(m.group(1), int(m.group(2)), ready)
    except KeyboardInterrupt:
        say("emulator stopped")
    except OSError as e:
        raise click.ClickException(f"cannot serve on {url}: {e}") from None


def _model(spec: str, load_model):
    """A .pbit file or a built-in model spec."""
    if spec.endswith(".pbit"):
        return load_model(spec)
    from pbitsim import models

    try:
        return models.from_spec(spec)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
