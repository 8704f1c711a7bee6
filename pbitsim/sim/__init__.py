"""Simulators behind :func:`pbitsim.sample`: software kernels, the hardware-faithful cycle model
(:mod:`pbitsim.sim.hardware`) and asynchronous p-bits (:mod:`pbitsim.sim.async_`).

Submodules register their sampling methods when imported (see ``pbitsim.sampling``); this package
imports nothing eagerly, since Numba modules are slow to load.
"""
