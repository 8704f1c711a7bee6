"""pbitsim.hdl (installed from the hdl/ folder): Amaranth gateware for p-bit arrays.

Modules: :mod:`~pbitsim.hdl.rng` (generators), :mod:`~pbitsim.hdl.fixedpoint` (input sum,
saturation, activation table, comparator), :mod:`~pbitsim.hdl.hardware` (``PbitArray``: one colour
per clock; register port ``AddressMap``), :mod:`~pbitsim.hdl.engine` (``PbitEngine``: the same
machine time-multiplexed over a few lanes). Synthesis and bitstreams live in
:mod:`pbitsim.firmware` (``pbitsim build``); ``hdl`` never imports it.
Each block's software twin is named alike in :mod:`pbitsim.rng`, :mod:`pbitsim.fixedpoint` and
:mod:`pbitsim.sim.hardware`; ``docs/hardware.md`` documents the design and the address map.
"""
