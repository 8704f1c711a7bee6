"""The serial link to a board: pyserial ports by URL, frames in and out.

Any pyserial URL works: a device (``/dev/ttyUSB1``), ``socket://127.0.0.1:PORT`` (the emulator),
``loop://`` (tests), ``spy://PORT?file=...`` (a hex dump of the traffic). pyserial is the ``[host]``
extra, imported when a port is opened.
"""

from __future__ import annotations

import time

from pbitsim.board import protocol as P

__all__ = ["BoardLinkError", "open_port", "Link", "DEFAULT_BAUD"]

#: The firmware's default rate (iCEBreaker: 12 MHz / 4 clocks per bit). A socket ignores it.
DEFAULT_BAUD = 3_000_000


class BoardLinkError(ConnectionError):
    """The link failed: the port cannot be opened, or it broke (disconnect)."""


def open_port(url: str, baudrate: int = DEFAULT_BAUD):
    """A pyserial port for ``url`` (raises BoardLinkError naming the URL if it cannot be opened)."""
    try:
        import serial
    except ImportError:
        raise ImportError(
            "talking to a board needs pyserial: pip install 'pbitsim[host]'"
        ) from None
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as e:
        raise BoardLinkError(f"cannot open board port {url!r}: {e}") from None


class Link:
    """Frames over a byte port (anything with ``read``, ``write``, ``timeout``, ``close``).

    Parameters
    ----------
    port
        An open pyserial port (or a test double).
    max_frame : int
        Longest frame accepted (updated once the board's IDENT_REPLY states its own).
    """

    def __init__(self, port, max_frame: int = P.DEFAULT_MAX_FRAME) -> None:
        self.port = port
        self.decoder = P.Decoder(max_frame)
        self.bytes_out = 0
        self.bytes_in = 0

    @property
    def max_frame(self) -> int:
        return self.decoder.max_frame

    def set_max_frame(self, max_frame: int) -> None:
        if max_frame != self.decoder.max_frame:
            self.decoder = P.Decoder(max_frame)

    def send(self, msg: P.Message, seq: int) -> bytes:
        """Encode and write one frame; returns its wire bytes (to resend them unchanged)."""
        wire = P.encode_message(msg, seq, self.max_frame)
        self.write(wire)
        return wire

    def write(self, wire: bytes) -> None:
        try:
            self.port.write(wire)
            self.bytes_out += len(wire)
        except Exception as e:  # pyserial raises SerialException, sockets OSError
            raise BoardLinkError(f"writing to the board failed: {e}") from e

    def receive(self, timeout: float) -> list[P.Frame | P.ProtocolError]:
        """Frames (and decoding errors) that arrive within ``timeout`` seconds; returns as soon as
        at least one item is complete, or empty on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                self.port.timeout = max(left, 0.0)
                data = self.port.read(1)
                if data:
                    self.port.timeout = 0
                    data += self.port.read(65536)
            except Exception as e:
                raise BoardLinkError(f"reading from the board failed: {e}") from e
            if data:
                self.bytes_in += len(data)
                items = self.decoder.feed(data)
                if items:
                    return items
            if time.monotonic() >= deadline:
                return []

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # closing a broken link must not hide the error that broke it
            pass
