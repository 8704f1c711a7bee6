"""A board seen from outside: its design, register map, wire protocol and behaviour.

Pure Python (numpy and the standard library only): the gateware (``hdl/``, ``firmware/``),
the host client and the board emulator all read these modules, so there is one definition of each
fact. See ``docs/protocol.md`` (the wire protocol) and ``docs/hardware.md`` (the register map).

* :mod:`pbitsim.board.design` — :class:`HardwareDesign` and its presets;
* :mod:`pbitsim.board.regmap` — the address map, ID/SHAPE/FORMAT/DESIGN words, load images;
* :mod:`pbitsim.board.protocol` — framing, CRC, message types and payloads;
* :mod:`pbitsim.board.session` — the board's behaviour, frames in, frames out.
"""
