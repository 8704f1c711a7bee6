"""Shared helpers for the gateware tests: test graphs, an Amaranth testbench driver, the
cocotb/Icarus runner. Imported by tests/test_hdl_*.py (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pbitsim.couplings import Couplings
from pbitsim.fixedpoint import FixedPointSpec

HERE = Path(__file__).resolve().parent

requires_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None,
    reason="Icarus Verilog (iverilog) is not installed: apt-get install -y iverilog "
    "(CI installs it; the RTL tests must pass there)",
)


# -- graphs -------------------------------------------------------------------------------------


def _weights(rng, count: int, spec: FixedPointSpec, beta: float) -> np.ndarray:
    """Real weights that quantise to codes spread over the whole range (incl. the extremes)."""
    fold = 1.0 if spec.beta_in_table else beta
    codes = rng.integers(spec.code_min, spec.code_max + 1, count)
    return codes * spec.resolution / fold


def ring(n: int, spec: FixedPointSpec, seed: int, beta: float = 1.0) -> Couplings:
    rng = np.random.default_rng(seed)
    w = _weights(rng, n, spec, beta)
    edges = [(i, (i + 1) % n, w[i]) for i in range(n)]
    h = _weights(rng, n, spec, beta) / 2
    return Couplings.from_edges(n, edges, h=h, beta=beta, fixed_point=spec)


def lattice(rows: int, cols: int, spec: FixedPointSpec, seed: int, beta: float = 1.0) -> Couplings:
    rng = np.random.default_rng(seed)
    edges = []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                edges.append((i, i + 1))
            if r + 1 < rows:
                edges.append((i, i + cols))
    w = _weights(rng, len(edges), spec, beta)
    n = rows * cols
    h = _weights(rng, n, spec, beta) / 4
    return Couplings.from_edges(
        n, [(i, j, x) for (i, j), x in zip(edges, w)], h=h, beta=beta, fixed_point=spec
    )


def rbm(visible: int, hidden: int, spec: FixedPointSpec, seed: int, beta: float = 1.0) -> Couplings:
    """Complete bipartite visible x hidden (an RBM's shape); visible first."""
    rng = np.random.default_rng(seed)
    edges = [(v, visible + k) for v in range(visible) for k in range(hidden)]
    w = _weights(rng, len(edges), spec, beta) / 2
    n = visible + hidden
    h = _weights(rng, n, spec, beta) / 4
    return Couplings.from_edges(
        n, [(i, j, x) for (i, j), x in zip(edges, w)], h=h, beta=beta, fixed_point=spec
    )


def random_sparse(
    n: int, spec: FixedPointSpec, seed: int, max_degree: int = 6, beta: float = 1.0
) -> Couplings:
    """A random graph with maximum degree ``max_degree`` (usually 3-5 greedy colours)."""
    rng = np.random.default_rng(seed)
    deg = np.zeros(n, dtype=int)
    pairs = set()
    for _ in range(4 * n):
        i, j = (int(x) for x in rng.integers(0, n, 2))
        key = (min(i, j), max(i, j))
        if i == j or key in pairs or deg[i] >= max_degree or deg[j] >= max_degree:
            continue
        pairs.add(key)
        deg[i] += 1
        deg[j] += 1
    pairs = sorted(pairs)
    w = _weights(rng, len(pairs), spec, beta) / 2
    h = _weights(rng, n, spec, beta) / 4
    return Couplings.from_edges(
        n, [(i, j, x) for (i, j), x in zip(pairs, w)], h=h, beta=beta, fixed_point=spec
    )


def spins_from_bits(value: int, n: int) -> np.ndarray:
    return np.array([1 if (value >> i) & 1 else -1 for i in range(n)], dtype=np.int8)


def bits_from_spins(spins) -> int:
    return sum(1 << i for i, s in enumerate(np.asarray(spins).tolist()) if s > 0)


# -- Amaranth simulator ---------------------------------------------------------------------------


async def bus_write(ctx, bus, addr: int, data: int) -> None:
    ctx.set(bus.addr, addr)
    ctx.set(bus.w_data, data)
    ctx.set(bus.w_en, 1)
    await ctx.tick()
    ctx.set(bus.w_en, 0)


async def bus_read(ctx, bus, addr: int) -> int:
    ctx.set(bus.addr, addr)
    return ctx.get(bus.r_data)


async def record_cycles(ctx, dut, cycles: int, n: int, pause_at: int | None = None) -> np.ndarray:
    """Run ``cycles`` model cycles (edges with ``cycle_done`` high); return the spins after each.

    ``pause_at``: drop ``run`` for three clocks after that many model cycles (must not matter).
    """
    got = []
    ctx.set(dut.run, 1)
    paused = 0
    while len(got) < cycles:
        if pause_at is not None and len(got) == pause_at and paused < 3:
            ctx.set(dut.run, 0)
            paused += 1
        else:
            ctx.set(dut.run, 1)
        was_running = ctx.get(dut.cycle_done)
        await ctx.tick()
        if was_running:
            got.append(spins_from_bits(ctx.get(dut.spins), n))
    ctx.set(dut.run, 0)
    return np.array(got, dtype=np.int8).reshape(-1, n)


# -- cocotb / Icarus ------------------------------------------------------------------------------


def run_cocotb(tmp_path: Path, top, case: dict, test_module: str = "cocotb_pbit_array") -> None:
    """Convert ``top`` to Verilog, run ``test_module`` on it in Icarus with ``case`` as JSON.

    Everything (Verilog, build, results) stays under ``tmp_path``; fails if a cocotb test fails.
    """
    from amaranth.back import verilog
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    src = tmp_path / "top.v"
    src.write_text(verilog.convert(top, name="top", emit_src=False))
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case))
    runner = get_runner("icarus")
    build = tmp_path / "build"
    runner.build(sources=[src], hdl_toplevel="top", build_dir=build, timescale=("1ns", "1ps"))
    env = {
        "PBIT_CASE": str(case_file),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    results = runner.test(
        hdl_toplevel="top",
        test_module=test_module,
        build_dir=build,
        test_dir=tmp_path,
        extra_env=env,
    )
    total, failed = get_results(results)
    assert total > 0 and failed == 0, f"{failed} of {total} cocotb tests failed (see {tmp_path})"
