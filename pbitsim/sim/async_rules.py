"""Scalar rules of the cycle model's un-coloured schedules, "async-random" and "async-periodic".

Which p-bits act at an edge, and whose decision generator advances, is decided per p-bit by the
three rules below (``docs/hardware-model.md``, section 5.2). Like the generator steps of
:mod:`pbitsim.rng` and the saturation and decision of :mod:`pbitsim.fixedpoint`, they are plain
scalar functions, written once and compiled for each target: ``cuda.jit(device=True)`` in
:mod:`pbitsim.sim.gpu_kernels` (and run as Python by Numba's CUDA simulator), ``numba.njit``
in :mod:`pbitsim.sim.jit` for the CPU model. The CPU's kernels visit only the p-bits that act,
so they use the counter rule in its event form (``next_action``, ``counter_at``: when a p-bit
next acts, and the counter that implies), which a test holds to ``counter_tick``; and the
decision generators' rule as two loops, every p-bit ("async-random") or the acting ones.
This module imports no Numba.
"""

from __future__ import annotations

__all__ = [
    "RANDOM",
    "PERIODIC",
    "enable_acts",
    "counter_tick",
    "next_action",
    "counter_at",
    "decision_generator_steps",
]

#: kernel codes of the un-coloured schedules
RANDOM, PERIODIC = 0, 1


def enable_acts(e, threshold):
    """ "async-random": whether a p-bit acts at this edge, from its enable number E (the top
    ``ENABLE_BITS`` bits of its enable generator's output, before the edge) and the ENABLE
    register P: E < P, unsigned (P >= 2**16: every p-bit acts)."""
    return e < threshold


def counter_tick(k, reload):
    """ "async-periodic": one edge of a p-bit's down-counter k, which reloads ``reload`` =
    (PERIOD - 1) mod 2**16 when it fires. Returns (acts, the counter after the edge): the p-bit
    acts iff k == 0."""
    if k == 0:
        return True, reload
    return False, k - 1


def next_action(cycle, k):
    """ "async-periodic", event form of :func:`counter_tick`: the cycle at which a p-bit whose
    counter reads k after edge ``cycle`` next acts (the counter reaches 0 after k more edges):
    cycle + 1 + k. After acting at cycle t it reads ``reload``, so it acts again at
    next_action(t, reload)."""
    return cycle + 1 + k


def counter_at(due, cycle):
    """The inverse of :func:`next_action`: the counter after edge ``cycle`` of a p-bit that next
    acts at cycle ``due`` (> cycle)."""
    return due - cycle - 1


def decision_generator_steps(mode, acts):
    """Whether a p-bit's decision generator advances at this edge: in "async-random"
    (``mode`` :data:`RANDOM`) always (free-running, acting or not); in "async-periodic" only when
    the p-bit acts (its own clock ticks)."""
    return acts or mode == RANDOM
