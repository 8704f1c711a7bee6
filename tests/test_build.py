"""firmware/tops.py, build.py, synth.py and ``pbitsim build``: board top levels, the build plan
and its steps, the tools' reports, and one real iCEBreaker build end to end (the yowasp flow
that CI must keep working)."""

import json
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("amaranth")
pytest.importorskip("amaranth_boards")
from pbitsim.firmware import build as B  # noqa: E402
from pbitsim.firmware import costmodel  # noqa: E402
from pbitsim.firmware import synth as S  # noqa: E402
from pbitsim.firmware.tops import (  # noqa: E402
    BAUD,
    BOARDS,
    ICEBreakerTop,
    board_spec,
    ecp5_pll,
)

from pbitsim import models  # noqa: E402
from pbitsim.board.design import HardwareDesign  # noqa: E402
from pbitsim.board.regmap import BoardWords  # noqa: E402
from pbitsim.cli import main  # noqa: E402

# -- boards and clocks ----------------------------------------------------------------------------


def test_board_specs():
    ice, ulx = board_spec("icebreaker"), board_spec("ulx3s")
    assert (ice.divisor, ulx.divisor) == (4, 10)
    for spec in (ice, ulx):
        assert spec.clock_hz == spec.divisor * spec.baud == spec.divisor * BAUD
    with pytest.raises(ValueError, match="unknown board 'arty'.*icebreaker, ulx3s"):
        board_spec("arty")


@pytest.mark.parametrize("f_out", [15e6, 30e6, 45e6, 60e6, 75e6])
def test_ecp5_pll_is_exact_and_within_limits(f_out):
    p = ecp5_pll(25_000_000, int(f_out))
    assert p.f_in * p.clkfb_div == p.f_out * p.clki_div  # exact, no rounding
    assert 3.125e6 <= p.f_pfd <= 400e6
    assert 400e6 <= p.f_vco <= 800e6
    assert 1 <= p.clki_div <= 128 and 1 <= p.clkfb_div <= 80 and 1 <= p.clkop_div <= 128


@pytest.mark.parametrize("f_out", [24e6, 48e6, 36e6])
def test_ecp5_pll_refuses_what_it_cannot_make_exactly(f_out):
    # 25 MHz * FB / CLKI = 24 or 48 MHz needs CLKI = 25: a 1 MHz phase detector, below 3.125
    with pytest.raises(ValueError, match="cannot make exactly"):
        ecp5_pll(25_000_000, int(f_out))


def test_top_needs_the_board_divisor():
    from pbitsim.firmware.board import SerialBoard

    with pytest.raises(ValueError, match="divisor 4"):
        ICEBreakerTop(SerialBoard(models.ring(4, J=0.5), divisor=5))


# -- the build plan ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plans():
    c = models.ring(6, J=0.5, h=0.1, beta=1.0)
    return {
        board: B.prepare_plan(board, c, HardwareDesign.default(), lanes=1)[0].files
        for board in BOARDS
    }


def test_icebreaker_plan_pins(plans):
    files = plans["icebreaker"]
    pcf = files["top.pcf"]
    pins = dict(re.findall(r"^set_io (\S+) (\S+)$", pcf, flags=re.M))
    assert pins["uart_0__rx__io"] == "6" and pins["uart_0__tx__io"] == "9"  # FT2232H channel B
    assert pins["led_g_0__io"] == "37" and pins["led_r_0__io"] == "11"  # main board LEDs
    assert {"led_g_1__io", "led_g_2__io", "led_g_3__io", "led_r_1__io"} <= set(pins)
    assert "set_frequency clk12_0__io 12.0" in pcf  # no PLL: 12 MHz / 4 = 3 Mbaud
    assert "synth_ice40 -dsp -spram -top top" in files["top.ys"]


def test_ulx3s_plan_pll_and_pins(plans):
    files = plans["ulx3s"]
    lpf = files["top.lpf"]
    site = dict(re.findall(r'^LOCATE COMP "(\S+)" SITE "(\S+)";$', lpf, flags=re.M))
    assert site["uart_0__rx__io"] == "M1" and site["uart_0__tx__io"] == "L4"  # FT231X
    assert [site[f"led_{k}__io"] for k in range(4)] == ["B2", "C2", "C1", "D2"]
    assert "FREQUENCY PORT" in lpf and "30000000" in lpf  # the PLL output is constrained
    il = files["top.il"]
    assert "EHXPLLL" in il
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 6), ("CLKOP_DIV", 20)):
        assert re.search(rf"parameter \\{name} {value}\b", il), name


def test_plan_steps(plans):
    ice = S.plan_steps(plans["icebreaker"]["build_top.sh"])
    assert [v for v, _ in ice] == ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"]
    args = ice[1][1]
    assert args[args.index("--report") + 1] == "report.json"
    assert "--timing-allow-fail" in args and args[args.index("--seed") + 1] == "1"
    ulx = S.plan_steps(plans["ulx3s"]["build_top.sh"])
    # openFPGALoader is not a build step: amaranth-boards only lists it as a required tool
    assert [v for v, _ in ulx] == ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"]
    assert "--compress" in ulx[2][1]
    packed = B.pack_only_args(ice[1][1])
    assert packed[-1] == "--pack-only" and "--asc" not in packed
    assert packed[packed.index("--report") + 1] == "pack.json"
    assert packed[packed.index("--log") + 1] == "pack.tim"
    with pytest.raises(S.ToolError, match="no tool commands"):
        S.plan_steps("#!/bin/sh\nset -e\n")


def test_tool_paths_are_absolute(monkeypatch):
    for var in S.TOOLS:
        monkeypatch.delenv(var, raising=False)
    env = S.tool_env()
    for var, name in S.TOOLS.items():
        assert env[var].endswith(name) and env[var].startswith("/"), var
    monkeypatch.setenv("YOSYS", "/opt/yosys/bin/yosys")
    assert S.tool_path("YOSYS") == "/opt/yosys/bin/yosys"
    with pytest.raises(ValueError, match="unknown tool variable"):
        S.tool_path("VIVADO")


def test_missing_tool_is_one_clear_error(tmp_path):
    env = {"YOSYS": str(tmp_path / "no-yosys")}
    with pytest.raises(S.ToolError, match="no-yosys not found: pip install 'pbitsim\\[fpga\\]'"):
        S.run_step("YOSYS", ["-V"], tmp_path, tmp_path / "log", env)


YOSYS_STAT = """
2.50. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
     7006 wires
        9 ports
      105 cells
       76   $scopeinfo
        8   SB_IO
       20   SB_RAM40_4K
    11045 submodules
     1275   SB_CARRY
      202   SB_DFF
     2613   SB_DFFESR
     6691   SB_LUT4

=== design hierarchy ===

      105 top
     6691   SB_LUT4
"""


def test_yosys_cells_and_lower_bound():
    cells = S.yosys_cells(YOSYS_STAT)
    assert cells == {
        "SB_IO": 8,
        "SB_RAM40_4K": 20,
        "SB_CARRY": 1275,
        "SB_DFF": 202,
        "SB_DFFESR": 2613,
        "SB_LUT4": 6691,
    }
    need = B.synth_lower_bound(BOARDS["icebreaker"], cells)
    assert need == {"logic": 6691, "ffs": 2815, "bram": 20, "spram": 0}
    with pytest.raises(B.DoesNotFit, match="at least 6,691 logic cells.*before place and route"):
        B._check_synthesis(BOARDS["icebreaker"], need, "")
    ecp5 = B.synth_lower_bound(BOARDS["ulx3s"], {"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 7})
    assert ecp5["logic"] == 120 and ecp5["ffs"] == 7
    with pytest.raises(S.ToolError, match="no statistics"):
        S.yosys_cells("nothing here")


def test_nextpnr_report():
    rep = {
        "utilization": {
            "ICESTORM_LC": {"used": 3000, "available": 5280},
            "ICESTORM_RAM": {"used": 20, "available": 30},
        },
        "fmax": {"clk": {"achieved": 21.5, "constraint": 12.0}},
    }
    got = S.nextpnr_report(rep, BOARDS["icebreaker"].nextpnr_cells)
    assert got["utilisation"] == {
        "logic": {"used": 3000, "available": 5280},
        "bram": {"used": 20, "available": 30},
    }
    assert got["fmax_mhz"] == {"clk": 21.5}


# -- refusing before anything runs ----------------------------------------------------------------


def test_too_large_model_is_refused_before_synthesis(tmp_path, monkeypatch):
    def no_tools(*a, **k):
        raise AssertionError("a tool ran for a model the cost model refuses")

    monkeypatch.setattr(B, "run_step", no_tools)
    big = S.test_graph("triangular", 4096)
    with pytest.raises(B.DoesNotFit, match="do not fit the icebreaker.*What would fit"):
        B.build_firmware(big, "icebreaker", out=tmp_path, say=lambda s: None)
    assert not any(tmp_path.iterdir())
    big.save(tmp_path / "big.pbit")
    r = CliRunner().invoke(main, ["build", "--board", "icebreaker", str(tmp_path / "big.pbit")])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert re.search(r"Error: 4096 p-bits .* do not fit the icebreaker", r.output)
    assert "What would fit: " in r.output


def test_build_rejects_bad_arguments(tmp_path):
    c = models.ring(8, J=0.5)
    c.save(tmp_path / "r.pbit")
    model = str(tmp_path / "r.pbit")
    r = CliRunner().invoke(main, ["build", "--board", "icebreaker", "--lanes", "9", model])
    assert r.exit_code == 2 and "largest colour class has 4 p-bits" in r.output
    r = CliRunner().invoke(main, ["build", "--board", "zedboard", str(tmp_path / "r.pbit")])
    assert r.exit_code == 2 and "zedboard" in r.output
    r = CliRunner().invoke(main, ["build", "--board", "ulx3s", str(tmp_path / "missing.pbit")])
    assert r.exit_code == 2 and "Traceback" not in r.output


# -- the real flow ----------------------------------------------------------------------------


@pytest.mark.slow
def test_icebreaker_build_end_to_end(tmp_path):
    """The whole yowasp flow for an 8-p-bit model, as CI must keep it working: cost model,
    synthesis, packing, place and route, icepack; the report says what was built."""
    c = models.ring(8, J=0.5, h=0.1, beta=1.0)
    c.save(tmp_path / "ring8.pbit")
    out = tmp_path / "out"
    # The published design: with the default one (xorshift64) even 8 p-bits leave the UP5K
    # too full to route (docs/hardware.md, "The iCEBreaker with everything in").
    args = ["build", "--board", "icebreaker", "--design", "published", "--out", str(out)]
    r = CliRunner().invoke(main, [*args, str(tmp_path / "ring8.pbit")])
    assert r.exit_code == 0, r.output
    bitstream = out / "ring8-icebreaker.bin"
    assert bitstream.stat().st_size > 100_000  # an iCE40UP5K image is ~104 kB
    report = json.loads((out / "ring8-icebreaker.json").read_text())
    design = HardwareDesign.published()
    words = BoardWords.for_array(c, design)
    assert report["topology_fingerprint"] == c.topology_fingerprint
    assert int(report["design_words"]["topology"], 16) == words.topology
    assert int(report["design_words"]["format"], 16) == words.format
    assert report["baud"] == 3_000_000 and report["uart_divisor"] == 4
    assert report["timing_met"] and report["fmax_mhz"] >= 12.0
    logic = report["utilisation"]["logic"]
    assert 0 < logic["used"] <= logic["available"] == 5280
    assert report["packed"]["logic"]["used"] == logic["used"]  # packing predicted the cells
    # the lane count is the largest the cost model lets fit
    plan = costmodel.plan_lanes(BOARDS["icebreaker"], design, c)
    assert report["lanes"] == plan.lanes and plan.fits
    est = report["estimate"]
    assert abs(est["logic"] - logic["used"]) <= costmodel.LOGIC_TOLERANCE * logic["used"]
    assert "Fmax" in r.output and "logic cells" in r.output
