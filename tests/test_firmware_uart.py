"""firmware/uart.py: UARTRx / UARTTx against their bit-level twin, in Amaranth's simulator."""

import numpy as np
import pytest
from firmware_support import simulate
from pbitsim.firmware.uart import LineReceiver, UARTRx, UARTTx, line_levels


def receive(divisor, levels):
    """Drive ``levels`` (one per clock) into a UARTRx; the bytes it gives and its error pulses."""
    dut = UARTRx(divisor)
    got, errors = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for t, level in enumerate(levels + [1] * (4 * divisor)):
            ctx.set(dut.rx, level)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.framing_error):
                errors.append(t)

    simulate(dut, bench)
    return got, errors


@pytest.mark.parametrize("divisor", [4, 5])
def test_rx_back_to_back_and_gaps(divisor):
    rng = np.random.default_rng(divisor)
    data = bytes(rng.integers(0, 256, 60).tolist()) + b"\x00\xff\x55\xaa"
    gaps = [0 if k % 3 else int(rng.integers(0, 2 * divisor)) for k in range(len(data))]
    levels = [1] * 3 + line_levels(data, divisor, gaps)
    got, errors = receive(divisor, levels)
    assert bytes(got) == data and not errors
    assert [b for b, ok in LineReceiver(divisor).feed(levels)] == list(data)


@pytest.mark.parametrize("divisor", [4, 5])
def test_rx_framing_error_dropped_and_flagged(divisor):
    """Bytes with a low stop bit are dropped and flagged, exactly as the twin decides."""
    data = bytes(range(0x30, 0x40))
    stops = [0 if k in (3, 9) else 1 for k in range(len(data))]
    gaps = [divisor if k in (3, 9) else 0 for k in range(len(data))]  # the line recovers
    levels = [1] * 2 + line_levels(data, divisor, gaps, stops)
    got, errors = receive(divisor, levels)
    twin = LineReceiver(divisor).feed(levels)
    assert got == [b for b, ok in twin if ok]
    assert len(errors) == sum(not ok for _, ok in twin) == 2
    assert bytes(got) == bytes(b for k, b in enumerate(data) if k not in (3, 9))


def test_rx_glitch_is_not_a_start_bit():
    divisor = 4
    levels = [1, 1, 0, 1, 1, 1] + line_levels(b"\x42", divisor)  # a one-clock glitch first
    got, errors = receive(divisor, levels)
    assert got == [0x42] and not errors


@pytest.mark.parametrize("divisor", [4, 5])
def test_tx_matches_line_levels(divisor):
    """Bytes offered continuously go out back to back: the line is exactly the twin's."""
    rng = np.random.default_rng(10 + divisor)
    data = bytes(rng.integers(0, 256, 40).tolist())
    dut = UARTTx(divisor)
    line = []

    async def bench(ctx):
        k = 0
        for _ in range(len(data) * 10 * divisor + 10):
            if k < len(data):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, data[k])
            else:
                ctx.set(dut.i.valid, 0)
            taken = ctx.get(dut.i.ready) and k < len(data)
            await ctx.tick()
            line.append(ctx.get(dut.tx))
            k += taken

    simulate(dut, bench)
    first = line.index(0)
    assert line[:first] == [1] * first
    want = line_levels(data, divisor)
    assert line[first : first + len(want)] == want
    assert set(line[first + len(want) :]) == {1}


def test_tx_with_gaps_decodes():
    divisor = 4
    rng = np.random.default_rng(3)
    data = bytes(rng.integers(0, 256, 30).tolist())
    dut = UARTTx(divisor)
    line = []

    async def bench(ctx):
        k = 0
        for _ in range(len(data) * 60 + 100):
            offer = k < len(data) and rng.random() < 0.3
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, data[k] if k < len(data) else 0)
            taken = offer and ctx.get(dut.i.ready)
            await ctx.tick()
            line.append(ctx.get(dut.tx))
            k += taken

    simulate(dut, bench)
    assert bytes(b for b, ok in LineReceiver(divisor).feed(line) if ok) == data


def test_init_wrong():
    with pytest.raises(ValueError, match="divisor"):
        UARTRx(2)
    with pytest.raises(ValueError, match="divisor"):
        UARTTx(4.0)
