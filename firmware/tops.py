"""Board top levels: the firmware (:class:`~.board.SerialBoard`) on an iCEBreaker or a ULX3S.

A top level adds what :class:`~.board.SerialBoard` leaves to the board: the clock (a PLL where
the baud rate needs one), the UART pins and the LEDs. The facts about each board that the build,
the cost model and ``pbitsim flash`` need are in :data:`BOARDS` (one place).

=============  ===================================  ======================================
board          clock                                serial link
=============  ===================================  ======================================
iCEBreaker     12 MHz oscillator, no PLL            FT2232H channel B, 3 Mbaud = 4 clocks
(iCE40UP5K)                                          per bit
ULX3S          25 MHz oscillator → EHXPLLL → 30 MHz FT231X (3 Mbaud at most), 10 clocks per
(ECP5-85F)     (an integer multiple of 3 Mbaud)     bit
=============  ===================================  ======================================

LEDs (:data:`LED_STATES`, ``docs/hardware.md`` "What the LEDs mean"): *idle* (no run), *loading*
(a WRITE was executed in the last ~0.1 s), *running* (a run in progress; blinking while the board
waits for the host's credit), *error* (an ERROR frame was sent in the last ~0.1 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = [
    "BoardSpec",
    "BOARDS",
    "BAUD",
    "LED_STATES",
    "board_spec",
    "Ecp5Pll",
    "ecp5_pll",
    "ICEBreakerTop",
    "ULX3STop",
    "make_top",
]

#: The serial link's baud rate on both boards: the FT231X's maximum (ULX3S); the iCEBreaker's
#: FT2232H would go higher, but 12 MHz / 4 is where its clock divides evenly without a PLL.
BAUD = 3_000_000

#: What the four LED outputs of :class:`~.board.SerialBoard` mean, in the order they are wired.
LED_STATES = ("idle", "loading", "running", "error")


@dataclass(frozen=True)
class BoardSpec:
    """What the build, the cost model and the flasher need to know about a board.

    Attributes
    ----------
    name : str
        ``pbitsim build --board`` name.
    part : str
        Cost-model and calibration key of the FPGA ("up5k", "ecp5-85f").
    family : {"ice40", "ecp5"}
    platform : str
        ``module:class`` of the amaranth-boards platform.
    input_clock_hz, clock_hz : int
        The board's oscillator and the firmware's clock (through a PLL when they differ).
    baud : int
    openfpgaloader_board : str
        ``openFPGALoader -b`` name.
    bitstream_suffix : str
        What the packer writes: ``.bin`` (iCE40) or ``.bit`` (ECP5).
    logic_cells, block_rams, sprams : int
        Resources of the part as nextpnr counts them (iCE40 logic cells = LUT4 + flip-flop;
        ECP5: LUT4s), 4 kbit (iCE40) or 18 kbit (ECP5 DP16KD) block RAMs, 256 kbit SPRAMs.
    nextpnr_cells : dict
        nextpnr's cell-type names of those resources (its report's ``utilization`` keys).
    logic_ceiling : float
        Largest share of the logic cells an estimate may take and still count as fitting: room
        for the router and the estimate's error (measured: see ``docs/hardware.md``).
    firmware : dict
        Options of :class:`~.board.SerialBoard` for this board. iCEBreaker: ``single_port`` (its
        buffers become SPRAMs) and the leanest protocol buffers (``max_frame`` 64,
        ``buffer_frames`` 2, a 16-byte receive FIFO: together 470 logic cells fewer than the
        defaults 256 / 8 / 64), without which the firmware alone fills the UP5K. ULX3S:
        dual-port block RAM, the defaults.
    synth_opts : str
        Options of Yosys' ``synth_ice40`` / ``synth_ecp5`` (``-spram``: let Yosys put large
        single-port memories in the UP5K's SPRAM).
    """

    name: str
    part: str
    family: str
    platform: str
    input_clock_hz: int
    clock_hz: int
    baud: int
    openfpgaloader_board: str
    bitstream_suffix: str
    logic_cells: int
    block_rams: int
    sprams: int
    nextpnr_cells: dict
    logic_ceiling: float
    firmware: dict
    synth_opts: str

    def overrides(self, seed: int = 1) -> dict:
        """Amaranth build-plan overrides: synthesis options, nextpnr's seed and JSON report
        (``--timing-allow-fail``: report the Fmax reached instead of failing below the clock)."""
        return {
            "synth_opts": self.synth_opts,
            "nextpnr_opts": f"--seed {int(seed)} --timing-allow-fail --report report.json",
        }

    @property
    def divisor(self) -> int:
        """UART clocks per bit: ``clock_hz / baud``, exact by construction."""
        return self.clock_hz // self.baud

    def load_platform(self):
        """An instance of the board's amaranth-boards platform (lazy import: extra ``[fpga]``)."""
        import importlib

        module, cls = self.platform.split(":")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ImportError(
                f"the {self.name} platform needs amaranth-boards: pip install 'pbitsim[fpga]'"
            ) from None
        return getattr(mod, cls)()


BOARDS: dict[str, BoardSpec] = {
    "icebreaker": BoardSpec(
        name="icebreaker",
        part="up5k",
        family="ice40",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        input_clock_hz=12_000_000,
        clock_hz=12_000_000,
        baud=BAUD,
        openfpgaloader_board="ice40_generic",
        bitstream_suffix=".bin",
        logic_cells=5280,
        block_rams=30,
        sprams=4,
        nextpnr_cells={
            "logic": "ICESTORM_LC",
            "bram": "ICESTORM_RAM",
            "spram": "ICESTORM_SPRAM",
            "dsp": "ICESTORM_DSP",
        },
        logic_ceiling=0.96,
        firmware={"single_port": True, "max_frame": 64, "buffer_frames": 2, "rx_fifo": 16},
        synth_opts="-dsp -spram",
    ),
    "ulx3s": BoardSpec(
        name="ulx3s",
        part="ecp5-85f",
        family="ecp5",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        input_clock_hz=25_000_000,
        clock_hz=30_000_000,
        baud=BAUD,
        openfpgaloader_board="ulx3s",
        bitstream_suffix=".bit",
        logic_cells=83640,
        block_rams=208,
        sprams=0,
        nextpnr_cells={
            "logic": "TRELLIS_COMB",
            "bram": "DP16KD",
            "spram": None,
            "dsp": "MULT18X18D",
        },
        logic_ceiling=0.90,
        firmware={"single_port": False},
        synth_opts="",
    ),
}

for _b in BOARDS.values():  # the divisor must be exact: a rounded one drifts a whole bit in 10
    assert _b.clock_hz % _b.baud == 0 and _b.divisor >= 3, _b


def board_spec(name: str) -> BoardSpec:
    """The :class:`BoardSpec` called ``name``; ValueError naming the boards otherwise."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(sorted(BOARDS))}")
    return BOARDS[name]


# ------------------------------------------------------------------------------------------------
# ECP5 PLL
# ------------------------------------------------------------------------------------------------

#: EHXPLLL limits (Lattice TN1263, as nextpnr's ecppll uses them): phase-detector input
#: 3.125-400 MHz, VCO 400-800 MHz; dividers CLKI 1-128, CLKFB 1-80, CLKOP 1-128.
_PFD_HZ = (3_125_000, 400_000_000)
_VCO_HZ = (400_000_000, 800_000_000)


@dataclass(frozen=True)
class Ecp5Pll:
    """Dividers of an EHXPLLL with feedback from CLKOP: ``f_out = f_in * clkfb_div / clki_div``,
    ``f_vco = f_out * clkop_div``."""

    f_in: int
    f_out: int
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_pfd(self) -> Fraction:
        return Fraction(self.f_in, self.clki_div)

    @property
    def f_vco(self) -> int:
        return self.f_out * self.clkop_div


def ecp5_pll(f_in: int, f_out: int) -> Ecp5Pll:
    """The EHXPLLL dividers that make exactly ``f_out`` from ``f_in`` (both in Hz).

    Among exact solutions the one whose VCO is nearest 600 MHz (the middle of its range) is
    chosen, as ecppll does.

    Raises
    ------
    ValueError
        No divider setting gives ``f_out`` exactly within the PLL's limits.
    """
    best = None
    for clki in range(1, 129):
        if not _PFD_HZ[0] * clki <= f_in <= _PFD_HZ[1] * clki:
            continue
        fb = Fraction(f_out * clki, f_in)
        if fb.denominator != 1 or not 1 <= fb <= 80:
            continue
        for op in range(1, 129):
            vco = f_out * op
            if _VCO_HZ[0] <= vco <= _VCO_HZ[1]:
                key = abs(vco - 600_000_000)
                if best is None or key < best[0]:
                    best = (key, Ecp5Pll(f_in, f_out, clki, int(fb), op))
    if best is None:
        raise ValueError(
            f"an ECP5 PLL cannot make exactly {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz"
        )
    return best[1]


class _Ecp5PllDomain(Elaboratable):
    """Drives clock domain ``cd`` (defined by the top level) from an EHXPLLL, held in reset
    until the PLL locks."""

    def __init__(self, clk_in, cd: ClockDomain, pll: Ecp5Pll) -> None:
        self.clk_in, self.cd, self.pll = clk_in, cd, pll

    def elaborate(self, platform):
        m = Module()
        p, cd = self.pll, self.cd
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{p.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p.f_out / 1e6:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=(p.clkop_div - 1) // 2,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=self.clk_in,
            o_CLKOP=cd.clk,
            i_CLKFB=cd.clk,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_LOCK=locked,
        )
        m.submodules.reset = ResetSynchronizer(~locked, domain=cd.name)
        if platform is not None:
            platform.add_clock_constraint(cd.clk, p.f_out)
        return m


# ------------------------------------------------------------------------------------------------
# Top levels
# ------------------------------------------------------------------------------------------------


def _uart(m: Module, platform, board) -> None:
    """The board's UART pins to ``board.rx`` / ``board.tx`` (``rx`` is synchronised inside)."""
    uart = platform.request("uart", 0, dir="-")
    m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
    m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
    m.d.comb += [board.rx.eq(rx.i), tx.o.eq(board.tx)]


def _led(m: Module, platform, name: str, number: int, state) -> None:
    """LED ``name`` ``number`` lit while ``state`` (the resource's inversion is the buffer's)."""
    buf = io.Buffer("o", platform.request(name, number, dir="-"))
    m.submodules[f"{name}_{number}"] = buf
    m.d.comb += buf.o.eq(state)


def _check_divisor(board, spec: BoardSpec) -> None:
    if getattr(board, "divisor", None) != spec.divisor:
        raise ValueError(
            f"the {spec.name} top runs at {spec.clock_hz / 1e6:g} MHz, so its UART needs "
            f"divisor {spec.divisor} for {spec.baud} baud, not {getattr(board, 'divisor', None)!r}"
        )


class ICEBreakerTop(Elaboratable):
    """The firmware on an iCEBreaker: 12 MHz clock as is (the platform's ``sync`` domain, with
    its power-on reset that waits out the iCE40's block-RAM start-up), UART on the FT2232H's
    second channel.

    LEDs: the main board's green LED is *running* (and, while idle, a short blink every 1.4 s:
    configured and alive), its red LED *error*; on the snap-off section (PMOD 2) green LEDs 1-3
    are *idle*, *loading*, *running* and the centre red LED is *error*.

    Parameters
    ----------
    board : SerialBoard
        Built with ``divisor=4``.
    """

    spec = BOARDS["icebreaker"]

    def __init__(self, board) -> None:
        _check_divisor(board, self.spec)
        self.board = board

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = b = self.board
        _uart(m, platform, b)
        platform.add_resources(platform.break_off_pmod)
        # Heartbeat: 2**24 clocks = 1.4 s at 12 MHz, lit for the first eighth of it.
        beat = Signal(24)
        m.d.sync += beat.eq(beat + 1)
        lit = {
            ("led_g", 0): b.led_running | (b.led_idle & (beat[-3:] == 0)),
            ("led_r", 0): b.led_error,
            ("led_g", 1): b.led_idle,
            ("led_g", 2): b.led_loading,
            ("led_g", 3): b.led_running,
            ("led_r", 1): b.led_error,
        }
        for (name, number), state in lit.items():
            _led(m, platform, name, number, state)
        return m


class ULX3STop(Elaboratable):
    """The firmware on a ULX3S (ECP5-85F): 25 MHz oscillator → PLL → ``spec.clock_hz``, UART on
    the FT231X, LEDs 0-3 = idle, loading, running, error.

    Parameters
    ----------
    board : SerialBoard
        Built with ``divisor = clock_hz / 3 Mbaud`` (10).
    """

    spec = BOARDS["ulx3s"]

    def __init__(self, board) -> None:
        _check_divisor(board, self.spec)
        self.board = board
        self.pll = ecp5_pll(self.spec.input_clock_hz, self.spec.clock_hz)

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.domains.sync = cd = ClockDomain("sync")
        m.submodules.clocks = _Ecp5PllDomain(clk25.i, cd, self.pll)
        m.submodules.board = b = self.board
        _uart(m, platform, b)
        for k, state in enumerate((b.led_idle, b.led_loading, b.led_running, b.led_error)):
            _led(m, platform, "led", k, state)
        return m


_TOPS = {"icebreaker": ICEBreakerTop, "ulx3s": ULX3STop}


def make_top(board_name: str, couplings, design, *, lanes: int | None, **firmware):
    """The top level of ``board_name`` around a :class:`~.board.SerialBoard` for ``couplings``.

    Parameters
    ----------
    board_name : {"icebreaker", "ulx3s"}
    couplings : Couplings
        The topology (values are loaded at run time).
    design : HardwareDesign
    lanes : int or None
        ``PbitEngine`` lanes; None builds the one-colour-per-clock ``PbitArray``.
    **firmware
        Passed to :class:`~.board.SerialBoard` (``max_frame``, ``buffer_frames``, ...).
    """
    from .board import SerialBoard

    spec = board_spec(board_name)
    board = SerialBoard(couplings, design, lanes=lanes, divisor=spec.divisor, **firmware)
    return _TOPS[board_name](board)
