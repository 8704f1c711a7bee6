"""firmware/flash.py and ``pbitsim flash``: the openFPGALoader command, and one clear line for
every failure, above all the one every machine here meets: no board attached."""

import json
import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

pytest.importorskip("amaranth")
from pbitsim.firmware import flash as F  # noqa: E402
from pbitsim.firmware.tops import BOARDS  # noqa: E402

from pbitsim.cli import main  # noqa: E402


def _cli(*args, env=None):
    """``pbitsim ARGS`` in a fresh interpreter, as a user runs it (tracebacks would show)."""
    code = "import sys; from pbitsim.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _bitstream(tmp_path, name="model-icebreaker.bin", board=None):
    path = tmp_path / name
    path.write_bytes(b"\xff\x00\x00\xff" + bytes(64))
    if board:
        path.with_suffix(".json").write_text(json.dumps({"board": board}))
    return path


def _one_error_line(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr + res.stdout
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_no_board_attached_is_one_clear_line(tmp_path, board):
    suffix = BOARDS[board].bitstream_suffix
    bit = _bitstream(tmp_path, f"model-{board}{suffix}")
    res = _cli("flash", "--board", board, str(bit))
    assert res.returncode == 1
    line = _one_error_line(res)
    # With libusb and libftdi installed (README's test command installs them) openFPGALoader
    # runs and finds no board; without them it cannot start: either way one line that says so.
    assert f"no {board} found" in line or "openFPGALoader cannot start" in line, line


def test_persist_flag_also_fails_cleanly_without_a_board(tmp_path):
    res = _cli("flash", "--board", "icebreaker", "--persist", str(_bitstream(tmp_path)))
    assert res.returncode == 1
    _one_error_line(res)


def test_flash_command():
    ice, ulx = BOARDS["icebreaker"], BOARDS["ulx3s"]
    cmd = F.flash_command(ice, "a.bin")
    assert cmd[1:] == ["-b", "ice40_generic", "-m", "a.bin"]
    assert cmd[0].endswith("openfpgaloader-cli") or cmd[0] == os.environ.get("OPENFPGALOADER")
    assert F.flash_command(ulx, "a.bit", persist=True)[1:] == ["-b", "ulx3s", "-f", "a.bit"]


def _fake_loader(tmp_path, rc=0, text="Done"):
    """An OPENFPGALOADER that records its arguments and answers like openFPGALoader."""
    log = tmp_path / "args.txt"
    script = tmp_path / "fake-openfpgaloader"
    script.write_text(f'#!/bin/sh\necho "$@" > {log}\necho "{text}"\nexit {rc}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_flash_runs_openfpgaloader(tmp_path, monkeypatch):
    script, log = _fake_loader(tmp_path)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    bit = _bitstream(tmp_path)
    r = CliRunner().invoke(main, ["flash", "--board", "icebreaker", str(bit)])
    assert r.exit_code == 0, r.output
    assert "SRAM" in r.output
    assert log.read_text().split() == ["-b", "ice40_generic", "-m", str(bit)]
    r = CliRunner().invoke(main, ["flash", "--board", "icebreaker", "--persist", str(bit)])
    assert r.exit_code == 0 and "flash" in r.output
    assert log.read_text().split()[2] == "-f"


def test_loader_failure_is_explained(tmp_path, monkeypatch):
    script, _ = _fake_loader(
        tmp_path, rc=1, text="unable to open ftdi device: -3 (device not found)"
    )
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    with pytest.raises(F.FlashError, match="no icebreaker found"):
        F.flash("icebreaker", _bitstream(tmp_path))


def test_wrong_files_refused_before_openfpgaloader(tmp_path, monkeypatch):
    script, log = _fake_loader(tmp_path)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    with pytest.raises(F.FlashError, match="does not exist"):
        F.flash("icebreaker", tmp_path / "missing.bin")
    with pytest.raises(F.FlashError, match=r"not a ulx3s bitstream.*\.bit"):
        F.flash("ulx3s", _bitstream(tmp_path))
    other = _bitstream(tmp_path, "x.bin", board="ulx3s")
    with pytest.raises(F.FlashError, match="built for the ulx3s"):
        F.flash("icebreaker", other)
    with pytest.raises(ValueError, match="unknown board"):
        F.flash("arty", _bitstream(tmp_path))
    assert not log.exists()


@pytest.mark.parametrize(
    "output, expected",
    [
        ("openFPGALoader: error while loading shared libraries: libusb-1.0.so.0: cannot open",
         "libusb-1.0.so.0 is missing"),
        ("Error: Failed to claim cable", "no ulx3s found"),
        ("LIBUSB_ERROR_ACCESS", "may not open it"),
        ("something odd\nreally odd happened\n", "exit 3): really odd happened"),
        ("", "exit 3): no output"),
    ],
)  # fmt: skip
def test_explain_failure(output, expected):
    assert expected in F.explain_failure(output, BOARDS["ulx3s"], 3)


def test_missing_openfpgaloader(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENFPGALOADER", str(tmp_path / "nowhere"))
    with pytest.raises(F.FlashError, match="not found"):
        F.flash("icebreaker", _bitstream(tmp_path))
