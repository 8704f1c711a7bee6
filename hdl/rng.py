"""Per-p-bit random number generators in gateware.

Twins of :mod:`pbitsim.rng` (same names, same bits): :class:`Xorshift64` and :class:`Lfsr32Xnor`.
Each block holds one generator state; ``output`` is the number the p-bit compares at the next
clock edge (the state as it stands *before* that edge), and the state advances at every edge where
``en`` is high. The state is loaded 32 bits at a time through ``seed_data``/``seed_we`` (word 0 =
bits 0..31), which is how the array's register port writes seeds at run time.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pbitsim.rng import state_bits

__all__ = [
    "Xorshift64",
    "Lfsr32Xnor",
    "generator_for",
    "next_state",
    "xorshift64_next",
    "lfsr32_xnor_next",
]

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


def _check_rng_bits(rng_bits) -> int:
    if isinstance(rng_bits, bool) or not isinstance(rng_bits, int) or not 1 <= rng_bits <= 32:
        raise ValueError(f"rng_bits must be an int in 1..32, not {rng_bits!r}")
    return rng_bits


class _Generator(wiring.Component):
    """Common ports of a generator block (see the subclasses)."""

    state_bits: int = 0
    _stuck: int = 0

    def __init__(self, rng_bits: int, seed: int) -> None:
        self._rng_bits = _check_rng_bits(rng_bits)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {seed!r}")
        if not 0 <= seed < (1 << self.state_bits):
            raise ValueError(f"seed must be in 0..2**{self.state_bits}-1, not {seed:#x}")
        self._seed = seed
        super().__init__(
            {
                "en": In(1),
                "seed_data": In(32),
                "seed_we": In(self.state_bits // 32),
                "output": Out(rng_bits),
                "state": Out(self.state_bits),
            }
        )

    @property
    def rng_bits(self) -> int:
        return self._rng_bits

    @property
    def seed(self) -> int:
        """Reset value of the state register."""
        return self._seed

    def _next(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        state = Signal(self.state_bits, init=self._seed)
        m.d.comb += [
            self.state.eq(state),
            # The top rng_bits bits, exactly as pbitsim.rng defines the output.
            self.output.eq(state[self.state_bits - self._rng_bits :]),
        ]
        with m.If(self.seed_we.any()):
            # A seed write replaces whole 32-bit words; other words keep their bits.
            m.d.sync += state.eq(
                Cat(
                    *[
                        Mux(self.seed_we[w], self.seed_data, state[32 * w : 32 * w + 32])
                        for w in range(self.state_bits // 32)
                    ]
                )
            )
        with m.Elif(self.en):
            m.d.sync += state.eq(self._next(state))
        return m


class Xorshift64(_Generator):
    """Marsaglia's xorshift64 (13, 7, 17); twin of :class:`pbitsim.rng.Xorshift64`.

    Shifts and XORs only: 64 flip-flops and about 128 two-input XORs, no carry chain.

    Parameters
    ----------
    rng_bits : int
        Width of ``output`` (1..32): the top bits of the state.
    seed : int
        Reset value of the state (0 is the stuck state; :func:`pbitsim.rng.derive_seeds` never
        makes it). Default: a fixed non-zero constant, since seeds are normally loaded at run time.

    Attributes
    ----------
    en : In(1)
        Advance the state at this clock edge.
    seed_data : In(32), seed_we : In(2)
        Write ``seed_data`` into state word w (bits 32w..32w+31) where ``seed_we[w]`` is high; a
        write has priority over ``en``.
    output : Out(rng_bits)
        ``state >> (64 - rng_bits)``.
    state : Out(64)
    """

    state_bits = state_bits("xorshift64")

    def __init__(self, rng_bits: int = 16, seed: int = 0x9E3779B97F4A7C15) -> None:
        super().__init__(rng_bits, seed)

    def _next(self, x):
        return xorshift64_next(x)


class Lfsr32Xnor(_Generator):
    """The published 32-bit Fibonacci XNOR LFSR; twin of :class:`pbitsim.rng.Lfsr32Xnor`.

    Bits numbered 32..1 (bit 32 = MSB); each advance: ``fb = NOT(r32 ^ r22 ^ r2 ^ r1)``,
    ``r <- {r31..r1, fb}``. All ones is the stuck state; zero is an ordinary state.

    Parameters
    ----------
    rng_bits : int
        Width of ``output`` (1..32): the top bits of the register.
    seed : int
        Reset value of the register (default 1).

    Attributes
    ----------
    en, seed_data, output, state
        As for :class:`Xorshift64`, with one 32-bit seed word (``seed_we`` is 1 bit wide).
    """

    state_bits = state_bits("lfsr32-xnor")

    def __init__(self, rng_bits: int = 32, seed: int = 1) -> None:
        super().__init__(rng_bits, seed)

    def _next(self, r):
        return lfsr32_xnor_next(r)


def xorshift64_next(x):
    """Next xorshift64 (13, 7, 17) state of the 64-bit value ``x`` (combinational)."""
    x1 = x ^ (x << 13)[:64]
    x2 = x1 ^ (x1 >> 7)
    return x2 ^ (x2 << 17)[:64]


def lfsr32_xnor_next(r):
    """Next state of the published XNOR LFSR for the 32-bit value ``r`` (combinational)."""
    fb = ~(r[31] ^ r[21] ^ r[1] ^ r[0])
    return Cat(fb, r[:31])


def next_state(kind: str, x):
    """Next generator state of ``kind`` for the state value ``x`` (for engines that keep states
    in memory rather than in a :class:`Xorshift64` / :class:`Lfsr32Xnor` register)."""
    if kind == "xorshift64":
        return xorshift64_next(x)
    if kind == "lfsr32-xnor":
        return lfsr32_xnor_next(x)
    raise ValueError(f"unknown random number generator {kind!r}")


def generator_for(kind: str, rng_bits: int, seed: int) -> _Generator:
    """The gateware generator of ``kind`` (a :data:`pbitsim.rng.RNG_KINDS` name)."""
    if kind == "xorshift64":
        return Xorshift64(rng_bits, seed)
    if kind == "lfsr32-xnor":
        return Lfsr32Xnor(rng_bits, seed)
    raise ValueError(f"unknown random number generator {kind!r}")
