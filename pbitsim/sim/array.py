"""The gateware p-bit array at its register port, in software: :class:`ArrayModel`.

Twin of ``PbitArray`` (``hdl/hardware.py``) seen from its bus: register writes and reads as
:mod:`pbitsim.board.regmap` defines them (storage in a :class:`~pbitsim.board.regmap.
RegisterFile`), and model cycles run by the Numba cycle model (:class:`~pbitsim.sim.hardware.
HardwareMachine`, one replica). It is the p-bit machine the board's command engine
(:class:`pbitsim.board.session.BoardSession`) drives in the emulator and in the firmware's tests.
"""

from __future__ import annotations

import numpy as np

from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import Region, Register, RegisterFile, status_word
from pbitsim.couplings import Couplings
from pbitsim.fixedpoint import QuantizedCouplings
from pbitsim.sim.hardware import HardwareMachine

__all__ = ["ArrayModel"]


class ArrayModel:
    """One array built for ``couplings``' topology and ``design``, driven through its port.

    After reset it holds what the gateware's reset values are when nothing is preloaded: J, bias
    and table 0, generator seeds (enable generators' too) from master seed 0, spins
    ``design.initial_spin``, ENABLE, PERIOD and PHASE 0, cycle 0. Every schedule is supported:
    ENABLE writes take effect from the next cycle, PERIOD at each p-bit's next counter reload,
    PHASE at the next restart (as in ``docs/hardware-model.md``).

    Parameters
    ----------
    couplings : Couplings
        The topology (graph and colouring) the array is built for; its values are not used.
    design : HardwareDesign

    Attributes
    ----------
    regs : RegisterFile
        The storage (identity words, J, bias, table; seeds and spins as last written).
    words : BoardWords
    """

    def __init__(self, couplings: Couplings, design: HardwareDesign) -> None:
        if not isinstance(couplings, Couplings):
            raise TypeError(f"couplings must be a Couplings, not {couplings!r}")
        self.couplings = couplings
        self.design = design
        self.regs = RegisterFile(couplings, design)
        self.words = self.regs.words
        self.amap = self.regs.amap
        img = self.regs.image
        kw: dict = {}
        if design.schedule == "async-random":
            kw = {"enable_seeds": img.enable_seeds[None, :], "enable": img.enable}
        elif design.schedule == "async-periodic":
            kw = {"period": img.period, "phase": img.phase}
        self._machine = HardwareMachine(
            self._quantized(), design, img.seeds[None, :], initial=img.spins, **kw
        )
        self._stale = False  # J/bias/table written since the machine last saw them

    def _quantized(self) -> QuantizedCouplings:
        img, c = self.regs.image, self.couplings
        zeros = np.zeros(len(img.j_codes))
        return QuantizedCouplings(
            spec=self.design.fixed_point,
            indptr=c.indptr,
            indices=c.indices,
            j_codes=img.j_codes.copy(),
            h_codes=img.h_codes,
            table=img.table.copy(),
            beta=1.0,
            j_error=zeros,
            h_error=np.zeros(c.n),
        )

    # -- the register port ---------------------------------------------------------------------
    @property
    def cycle(self) -> int:
        """Model cycles since the last restart."""
        return self._machine.cycle

    @property
    def spins(self) -> np.ndarray:
        """Current spins, int8 (n,)."""
        return self._machine.spins[0]

    def check(self, address: int, write: bool) -> None:
        """Raise :class:`~pbitsim.board.regmap.AddressError` if the port has nothing there."""
        self.regs.check(address, write)

    def write(self, address: int, data: int) -> None:
        """One register write. Spin and seed writes change one p-bit's live state only (a spin
        write also its delayed copies read with read latency L > 0, as if held)."""
        region, index = self.amap.split(address)
        img, m = self.regs.image, self._machine
        if region is Region.SPIN:
            # One p-bit's spin (and, with read latency L > 0, its delayed copies); the register
            # file's copy of the spins is refreshed first (live state).
            self.regs.write(address, data)
            i = self.amap.pbit_slot(index)[0]
            m.set_spin(i, int(img.spins[i]))
            return
        if region is Region.SEED:
            # The register file's copies of the generators are stale: refresh, write one word,
            # push.
            img.seeds[:] = m.generator_states[0]
            if img.enable_seeds is not None:
                img.enable_seeds[:] = m.enable_generator_states[0]
            self.regs.write(address, data)
            m.set_generator_states(img.seeds[None, :])
            if img.enable_seeds is not None:
                m.set_enable_generator_states(img.enable_seeds[None, :])
            return
        self.regs.write(address, data)
        if region is Region.REG and index == Register.ENABLE:
            m.set_enable(img.enable)
        elif region is Region.REG and data & 1:  # CONTROL restart
            m.restart()
        elif region is Region.TIMER:
            m.set_periods(img.period)
            m.set_phases(img.phase)
        elif region in (Region.J, Region.BIAS, Region.TABLE):
            self._stale = True

    def read(self, address: int) -> int:
        """One register read (identity words, STATUS, J, bias, table, spin words)."""
        region, _ = self.amap.split(address)
        if region is Region.SPIN:
            self.regs.image.spins[:] = self._machine.spins[0]
        self.regs.status = self.status()
        return self.regs.read(address)

    def status(self, running: bool = False) -> int:
        """The STATUS word: colour of the next cycle (0 for un-coloured schedules), warm-up
        done, running."""
        m = self._machine
        colour = self.cycle % m.n_colors if self.design.coloured else 0
        return status_word(colour, self.cycle >= m.warmup_cycles, running)

    def restart(self) -> None:
        """A CONTROL restart write."""
        self.write(self.amap.register(Register.CONTROL), 1)

    # -- running ------------------------------------------------------------------------------
    def run(self, cycles: int, record_every: int = 1) -> np.ndarray:
        """Run ``cycles`` model cycles; the spins after every ``record_every``-th, int8 (k, n)."""
        if self._stale:
            img = self.regs.image
            self._machine.set_codes(img.j_codes, img.h_codes, img.table)
            self._stale = False
        return self._machine.run(cycles, record_every)[0]
