"""pbitsim.firmware (installed from the firmware/ folder): what is flashed on a board.

Modules (each imported on its own; this package imports nothing): :mod:`~pbitsim.firmware.uart`
(8N1 UART), :mod:`~pbitsim.firmware.framing` (COBS + CRC frames in and out),
:mod:`~pbitsim.firmware.buffers`, :mod:`~pbitsim.firmware.stream` (SAMPLES/DONE frames, credit,
resend), :mod:`~pbitsim.firmware.stats` (on-board statistics),
:mod:`~pbitsim.firmware.engine` (``CommandEngine``, twin of
:class:`pbitsim.board.session.BoardSession`), :mod:`~pbitsim.firmware.board` (``BoardCore``,
``SerialBoard``: everything but the clock and the pins), :mod:`~pbitsim.firmware.throughput`
(link and statistics rates, pure Python). ``docs/hardware.md`` ("Firmware") describes them.
"""
