"""Argument checks shared by the subcommands, done before any work starts.

Every bad value becomes one line naming the option, and no traceback. The exit status follows
click: 2 for a bad argument value (:class:`click.BadParameter`, :class:`click.UsageError`), 1 for
a bad file or bad data (:class:`click.ClickException`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import click

__all__ = [
    "PositiveFloat",
    "POSITIVE",
    "out_file",
    "out_dir",
    "image_formats",
]


class PositiveFloat(click.ParamType):
    """A finite number > 0 (click's FloatRange lets ``inf`` and ``nan`` through)."""

    name = "number>0"

    def convert(self, value, param, ctx):
        if isinstance(value, float | int) and not isinstance(value, bool):
            x = float(value)
        else:
            try:
                x = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x) or x <= 0:
            self.fail(f"{value!r} must be a finite number > 0", param, ctx)
        return x


POSITIVE = PositiveFloat()


def image_formats() -> list[str]:
    """File suffixes matplotlib can write (without importing pyplot)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def out_file(path, option: str, image: bool = False) -> Path:
    """Check an output file before the work: its folder exists and is writable, it is not a
    folder itself, and (``image``) matplotlib can write its suffix."""
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise click.BadParameter(f"{p} is a folder; give a file name", param_hint=option)
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {folder} does not exist", param_hint=option)
    if not os.access(folder, os.W_OK):
        raise click.BadParameter(f"the folder {folder} is not writable", param_hint=option)
    if image:
        suffix = p.suffix.lower().lstrip(".")
        formats = image_formats()
        if suffix not in formats:
            raise click.BadParameter(
                f"cannot write a {suffix or 'suffix-less'} image; use one of "
                f"{', '.join('.' + f for f in formats)}",
                param_hint=option,
            )
    return p


def out_dir(path, option: str) -> Path:
    """Create an output folder (with its parents) before the work, or refuse in one line."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise click.BadParameter(f"{p} exists and is not a folder", param_hint=option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.BadParameter(f"cannot create {p}: {e.strerror}", param_hint=option) from None
    if not os.access(p, os.W_OK):
        raise click.BadParameter(f"the folder {p} is not writable", param_hint=option)
    return p
