"""A board without a board: :class:`Emulator`.

The board's command engine (:class:`pbitsim.board.session.BoardSession`, the same state machine
the firmware is tested against) with the bit-exact cycle model injected as its array
(:class:`pbitsim.sim.array.ArrayModel`), behind a TCP socket (``socket://127.0.0.1:PORT``) or a
pseudo-terminal. It enforces credits and frame limits exactly as the board does: a TCP socket
would otherwise hide back-pressure a USB-serial link does not have.

Faults are injected through :class:`Fault` (Python) or ``pbitsim emulate --faults`` (text), never
through messages on the wire: corrupt a byte of a frame (either direction), drop or repeat a frame,
stall before a frame, reset the board (power cycle: the loaded model is gone), disconnect.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from pbitsim.board import protocol as P
from pbitsim.board.session import DEFAULT_BUFFER_FRAMES, BoardSession
from pbitsim.sim.array import ArrayModel

__all__ = ["Emulator", "Fault", "parse_faults", "FAULT_KINDS"]

FAULT_KINDS = ("corrupt", "corrupt-in", "drop", "repeat", "stall", "reset", "disconnect")


@dataclass
class Fault:
    """One fault, fired once at the ``nth`` frame of type ``frame`` (a MsgType name, or "ANY").

    ``corrupt-in`` counts frames from the host; every other kind counts frames to the host and
    acts on that frame: ``corrupt`` flips one bit of it, ``drop`` loses it, ``repeat`` sends it
    twice, ``stall`` waits ``seconds`` before it, ``reset`` power-cycles the board instead of
    sending it, ``disconnect`` closes the link instead of sending it.
    """

    kind: str
    frame: str = "SAMPLES"
    nth: int = 1
    seconds: float = 0.0
    fired: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        if self.frame != "ANY" and self.frame not in P.MsgType.__members__:
            raise ValueError(
                f"unknown frame type {self.frame!r} in fault {self.kind}; use ANY or one of "
                f"{', '.join(P.MsgType.__members__)}"
            )
        if self.nth < 1 or self.seconds < 0:
            raise ValueError(f"fault {self.kind}: nth must be >= 1 and seconds >= 0")

    def matches(self, frame_type: int) -> bool:
        return self.frame == "ANY" or P.MsgType[self.frame] == frame_type


def parse_faults(text: str) -> list[Fault]:
    """Faults from ``KIND=TYPE#N[:SECONDS],...``, e.g. ``drop=SAMPLES#3,stall=SAMPLES#2:0.5``."""
    faults = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            kind, rest = item.split("=", 1)
            what, _, secs = rest.partition(":")
            frame, _, nth = what.partition("#")
            faults.append(
                Fault(kind.strip(), frame.strip().upper(), int(nth or 1), float(secs or 0))
            )
        except ValueError as e:
            raise ValueError(f"bad fault {item!r} ({e}); write KIND=TYPE#N[:SECONDS]") from None
    return faults


class _Disconnect(Exception):
    """A disconnect fault fired."""


def _frame_type(piece: bytes) -> int | None:
    try:
        return P.cobs_decode(piece)[0]
    except (P.ProtocolError, IndexError):
        return None


class Emulator:
    """An emulated board for one topology and design.

    Parameters
    ----------
    couplings : Couplings
        The topology the emulated array is built for (its values are loaded by the host).
    design : HardwareDesign
    max_frame, buffer_frames : int
        The board's link limits (reported in IDENT_REPLY).
    faults : list of Fault
    cycles_per_poll : int
        Model cycles run between two looks at the link (responsiveness vs speed).
    """

    def __init__(
        self,
        couplings,
        design,
        *,
        max_frame: int = P.DEFAULT_MAX_FRAME,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        faults=(),
        cycles_per_poll: int = 4096,
    ) -> None:
        self.couplings, self.design = couplings, design
        self._opts = dict(max_frame=max_frame, buffer_frames=buffer_frames)
        self.faults = list(faults)
        self.cycles_per_poll = int(cycles_per_poll)
        self._counts: dict[tuple[str, int], int] = {}
        self._inbox = b""
        self.power_cycles = 0
        self._power_on()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.url: str | None = None

    def _power_on(self) -> None:
        self.session = BoardSession(
            ArrayModel(self.couplings, self.design),
            self.couplings.indptr,
            self.couplings.indices,
            **self._opts,
        )

    # -- bytes in, bytes out, with faults ----------------------------------------------------------
    def _fault_for(self, direction: str, frame_type: int | None) -> Fault | None:
        hit = None
        for f in self.faults:
            if f.fired or (f.kind == "corrupt-in") != (direction == "in"):
                continue
            if frame_type is None or not f.matches(frame_type):
                continue
            key = (f"{direction}:{f.frame}", id(f))
            self._counts[key] = self._counts.get(key, 0) + 1
            if self._counts[key] == f.nth and hit is None:
                f.fired = True
                hit = f
        return hit

    @staticmethod
    def _flip(piece: bytes) -> bytes:
        b = bytearray(piece)
        k = len(b) // 2
        b[k] ^= 0x04 if b[k] != 0x04 else 0x08  # never create a 0x00: the frame stays one frame
        return bytes(b)

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host in (faults applied), the board's answer out (faults applied)."""
        self._inbox += data
        *pieces, self._inbox = self._inbox.split(b"\x00")
        out = b""
        for piece in pieces:
            if not piece:
                continue
            fault = self._fault_for("in", _frame_type(piece))
            if fault is not None:
                piece = self._flip(piece)
            out += self.session.receive(b"\x00" + piece + b"\x00")
        return self._outgoing(out)

    def poll(self) -> bytes:
        """Run the array for up to ``cycles_per_poll`` cycles; the stream frames it produced."""
        return self._outgoing(self.session.step(self.cycles_per_poll))

    def _outgoing(self, wire: bytes) -> bytes:
        if not self.faults:
            return wire
        out = b""
        for piece in wire.split(b"\x00"):
            if not piece:
                continue
            frame = b"\x00" + piece + b"\x00"
            fault = self._fault_for("out", _frame_type(piece))
            if fault is None:
                out += frame
            elif fault.kind == "corrupt":
                out += b"\x00" + self._flip(piece) + b"\x00"
            elif fault.kind == "repeat":
                out += frame + frame
            elif fault.kind == "stall":
                self._pending_stall = fault.seconds
                out += frame
            elif fault.kind == "reset":
                self.power_cycles += 1
                self._power_on()
                return out  # the board lost everything, including the rest of this burst
            elif fault.kind == "disconnect":
                self._pending_disconnect = out
                raise _Disconnect
            # drop: nothing
        return out

    # -- serving -------------------------------------------------------------------------------
    _pending_stall = 0.0
    _pending_disconnect = b""

    def _pump(self, read_fd, write) -> None:
        """Serve one connection until it closes, a disconnect fault fires or stop() is called."""
        while not self._stop.is_set():
            running = self.session.state is P.BoardState.RUNNING
            ready, _, _ = select.select([read_fd], [], [], 0 if running else 0.02)
            try:
                if ready:
                    data = self._read(read_fd)
                    if not data:
                        return  # the host closed the link
                    self._send(write, self.receive(data))
                if self.session.state is P.BoardState.RUNNING:
                    self._send(write, self.poll())
            except _Disconnect:
                self._send(write, self._pending_disconnect)
                return

    def _send(self, write, data: bytes) -> None:
        if self._pending_stall:
            time.sleep(self._pending_stall)
            self._pending_stall = 0.0
        if data:
            write(data)

    def serve_socket(self, host: str = "127.0.0.1", port: int = 0, ready=None) -> None:
        """Listen on ``host:port`` (0: any free port) and serve connections one after another
        until :meth:`stop`. ``ready(url)`` is called once listening."""
        with socket.create_server((host, port)) as server:
            server.settimeout(0.1)
            self.url = f"socket://{host}:{server.getsockname()[1]}"
            if ready is not None:
                ready(self.url)
            while not self._stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.setblocking(True)
                    self._read = lambda s: s.recv(65536)
                    self._pump(conn, conn.sendall)

    def serve_pty(self, ready=None) -> None:
        """Serve on a pseudo-terminal (raw mode); ``ready(path)`` gets the device path to open."""
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)  # else the terminal driver rewrites bytes (newlines, 0x03, ...)
        self.url = os.ttyname(slave)
        if ready is not None:
            ready(self.url)
        self._read = lambda fd: os.read(fd, 65536)
        try:
            while not self._stop.is_set():
                self._pump(master, lambda b: os.write(master, b))
        finally:
            os.close(master)
            os.close(slave)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a socket in a background thread; returns its pyserial URL."""
        got = threading.Event()
        self._thread = threading.Thread(
            target=self.serve_socket, args=(host, port, lambda url: got.set()), daemon=True
        )
        self._thread.start()
        if not got.wait(10):
            raise RuntimeError("the emulator did not start listening")
        return self.url

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
