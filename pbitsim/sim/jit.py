"""The scalar rules of :mod:`pbitsim.rng` and :mod:`pbitsim.fixedpoint`, compiled for the CPU.

The rules are written once, as plain Python functions in those modules (which import no Numba, so
the gateware generators and the board modules can use them without loading a compiler); here they
are compiled with ``numba.njit``. Explicit signatures make Python ints of any size convert to
uint64 when these are called from Python.
"""

from __future__ import annotations

import numba as nb

from pbitsim import fixedpoint as _fp
from pbitsim import rng as _rng
from pbitsim.sim import async_rules as _ar

__all__ = [
    "next_action",
    "counter_at",
    "enable_acts",
    "xorshift64_next",
    "xorshift64_output",
    "lfsr32_xnor_next",
    "lfsr32_xnor_output",
    "rng_next",
    "rng_output",
    "splitmix64_next",
    "uniform53",
    "saturate",
    "decide_spin",
]

xorshift64_next = nb.njit("uint64(uint64)", cache=True)(_rng.xorshift64_next)
xorshift64_output = nb.njit("uint64(uint64, int64)", cache=True)(_rng.xorshift64_output)
lfsr32_xnor_next = nb.njit("uint64(uint64)", cache=True)(_rng.lfsr32_xnor_next)
lfsr32_xnor_output = nb.njit("uint64(uint64, int64)", cache=True)(_rng.lfsr32_xnor_output)
_mix64 = nb.njit("uint64(uint64)", cache=True)(_rng.mix64)
uniform53 = nb.njit("float64(uint64)", cache=True)(_rng.uniform53)
_GOLDEN = _rng._GOLDEN
saturate = nb.njit(cache=True)(_fp.saturate)
decide_spin = nb.njit(cache=True)(_fp.decide_spin)
enable_acts = nb.njit(cache=True)(_ar.enable_acts)
next_action = nb.njit(cache=True)(_ar.next_action)
counter_at = nb.njit(cache=True)(_ar.counter_at)


@nb.njit("UniTuple(uint64, 2)(uint64)", cache=True)
def splitmix64_next(state):
    """:func:`pbitsim.rng.splitmix64_next`, compiled (it calls the compiled mixer)."""
    s = state + _GOLDEN
    return s, _mix64(s)


# Kind codes are the indices in pbitsim.rng.RNG_KINDS.
@nb.njit("uint64(int64, uint64)", cache=True)
def rng_next(kind, state):
    """Advance a generator of kind code ``kind`` (:func:`pbitsim.rng.rng_kind_code`)."""
    if kind == 0:
        return xorshift64_next(state)
    return lfsr32_xnor_next(state)


@nb.njit("uint64(int64, uint64, int64)", cache=True)
def rng_output(kind, state, rng_bits):
    """Output of a generator of kind code ``kind`` in its current state."""
    if kind == 0:
        return xorshift64_output(state, rng_bits)
    return lfsr32_xnor_output(state, rng_bits)
