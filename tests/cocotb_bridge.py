"""A TCP bridge to the firmware's UART pins, inside the cocotb simulation (run by
tests/test_host_rtl.py, not collected by pytest): the host client in the pytest process connects
to it as to any board (``socket://127.0.0.1:PORT``), so the same client code drives the RTL and
the emulator. The port is written to ``PBIT_PORT_FILE``; the test ends when the client closes."""

from __future__ import annotations

import os
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

DIVISOR = int(os.environ["PBIT_DIVISOR"])


async def _to_rx(dut, queue: bytearray) -> None:
    while True:
        if not queue:
            await ClockCycles(dut.clk, 8 * DIVISOR)
            continue
        byte = queue.pop(0)
        for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
            dut.rx.value = bit
            await ClockCycles(dut.clk, DIVISOR)


async def _from_tx(dut, out: bytearray) -> None:
    while True:
        await FallingEdge(dut.tx)  # a start bit: sample each bit in its middle
        await ClockCycles(dut.clk, DIVISOR // 2)
        if int(dut.tx.value):
            continue
        byte = 0
        for bit in range(8):
            await ClockCycles(dut.clk, DIVISOR)
            byte |= int(dut.tx.value) << bit
        await ClockCycles(dut.clk, DIVISOR)
        out.append(byte)


@cocotb.test()
async def bridge(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    server = socket.create_server(("127.0.0.1", 0))
    with open(os.environ["PBIT_PORT_FILE"], "w") as f:
        f.write(str(server.getsockname()[1]))
    server.settimeout(60)
    conn, _ = server.accept()
    conn.setblocking(False)
    to_board, from_board = bytearray(), bytearray()
    cocotb.start_soon(_to_rx(dut, to_board))
    cocotb.start_soon(_from_tx(dut, from_board))
    while True:
        await ClockCycles(dut.clk, 10 * DIVISOR)  # about one byte time between looks
        if from_board:
            conn.sendall(bytes(from_board))
            from_board.clear()
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            continue
        if not data:
            break  # the client closed the link: the session is over
        to_board.extend(data)
    conn.close()
    server.close()
