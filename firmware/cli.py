"""``pbitsim build`` and ``pbitsim flash`` (registered through the ``pbitsim.commands`` entry
points; the core CLI never names this package)."""

from __future__ import annotations

import re
from pathlib import Path

import click

__all__ = ["build", "flash"]

_BOARDS = ("icebreaker", "ulx3s")


def _stem(model: str) -> str:
    """Output-file stem of a model argument: a file's stem, or the spec made filename-safe."""
    path = Path(model)
    if path.is_file():
        return path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-") or "model"


@click.command(
    help="Build a board's firmware for MODEL's topology (a .pbit file or any model argument of "
    "pbitsim make): bitstream through the yowasp tools, a resource and timing summary, and a "
    "JSON build report beside the bitstream. Before anything is synthesised, a cost model "
    "calibrated on real builds estimates the resources; without --lanes the largest lane "
    "count that fits is built, and a model too large for the board is refused with advice."
)
@click.argument("model")
@click.option("--board", type=click.Choice(_BOARDS), required=True, help="Target board.")
@click.option(
    "--lanes",
    type=click.IntRange(min=1),
    default=None,
    help="P-bit datapaths (PbitEngine lanes); default: the most that fit.",
)
@click.option(
    "--out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for NAME-BOARD.bin/.bit, NAME-BOARD.json and the build folder.",
)
@click.option(
    "--design",
    default="default",
    show_default=True,
    type=click.Choice(["default", "published"]),
    help="Hardware design preset (widths, generator).",
)
@click.option("--seed", default=1, show_default=True, type=int, help="nextpnr placement seed.")
@click.option(
    "--force",
    is_flag=True,
    help="Build --lanes even if the cost model says it does not fit (synthesis still checks).",
)
def build(model, board, lanes, out, design, seed, force):
    from pbitsim.cli.make import resolve_model

    couplings = resolve_model(model)
    try:
        from pbitsim.board.design import HardwareDesign

        from .build import DoesNotFit, ToolError, build_firmware
    except ImportError as e:
        raise click.ClickException(
            f"building needs the FPGA extras ({e.name or e}): pip install 'pbitsim[hdl,fpga]'"
        ) from None
    hw = HardwareDesign.from_name(design)
    try:
        hw.check(couplings)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="MODEL") from None
    Path(out).mkdir(parents=True, exist_ok=True)
    try:
        report = build_firmware(
            couplings, board, design=hw, lanes=lanes, out=out, name=_stem(model), seed=seed,
            force=force, say=click.echo,
        )  # fmt: skip
    except DoesNotFit as e:
        raise click.ClickException(str(e)) from None
    except ToolError as e:
        raise click.ClickException(str(e)) from None
    except ImportError as e:
        raise click.ClickException(f"{e}") from None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if not report["timing_met"]:
        raise click.ClickException(
            f"timing not met: nextpnr's Fmax {report['fmax_mhz']:.1f} MHz is below the "
            f"{report['clock_hz'] / 1e6:g} MHz clock, so the bitstream may not work; build "
            f"fewer lanes (--lanes) or try another --seed"
        )


@click.command(
    help="Load BITSTREAM (from pbitsim build) onto a board attached by USB, through "
    "openFPGALoader: into SRAM (lost at power-off) by default, into the configuration flash "
    "with --persist."
)
@click.argument("bitstream", type=click.Path(dir_okay=False))
@click.option("--board", type=click.Choice(_BOARDS), required=True, help="Target board.")
@click.option(
    "--persist", is_flag=True, help="Write the configuration flash (the board boots into it)."
)
def flash(bitstream, board, persist):
    from .flash import FlashError
    from .flash import flash as do_flash

    try:
        out = do_flash(board, bitstream, persist=persist)
    except FlashError as e:
        raise click.ClickException(str(e)) from None
    where = "flash" if persist else "SRAM"
    lines = [ln for ln in out.splitlines() if ln.strip()]
    click.echo(f"{Path(bitstream).name} loaded into the {board}'s {where}")
    if lines:
        click.echo(lines[-1])
