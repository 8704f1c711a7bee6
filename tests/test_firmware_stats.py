"""firmware/stats.py: StatsAccumulator against the statistics vector BoardSession keeps (count,
sum s_i, sum s_i s_j per edge in CSR order, signed 64-bit), Amaranth simulator."""

import numpy as np
import pytest
from firmware_support import simulate, stats_of
from hdl_support import bits_from_spins, random_sparse
from pbitsim.firmware.stats import StatsAccumulator, stat_edges

from pbitsim.board.design import HardwareDesign
from pbitsim.board.session import BoardSession

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

SPEC = HardwareDesign.default().fixed_point


def accumulate(acc: StatsAccumulator, batches, reads_between: bool = False):
    """Clear, then add each batch of states (k, n); read the whole vector after each batch."""
    out = []

    async def read_all(ctx):
        values = []
        for e in range(acc.entries):
            ctx.set(acc.rd_index, e)
            ctx.set(acc.rd_req, 1)
            while not ctx.get(acc.rd_valid):
                await ctx.tick()
            values.append(ctx.get(acc.rd_data.as_signed()))
            await ctx.tick()
            ctx.set(acc.rd_req, 0)
        return values

    async def bench(ctx):
        ctx.set(acc.clear, 1)
        await ctx.tick()
        ctx.set(acc.clear, 0)
        while ctx.get(acc.busy):
            await ctx.tick()
        for states in batches:
            for s in states:
                ctx.set(acc.vector, bits_from_spins(s))
                ctx.set(acc.take, 1)
                while not ctx.get(acc.ready):
                    await ctx.tick()
                await ctx.tick()
                ctx.set(acc.take, 0)
            out.append(await read_all(ctx))

    simulate(acc, bench)
    return out


@pytest.mark.parametrize("banks, single_port", [(1, True), (2, True), (1, False), (4, False)])
def test_sums_equal_the_session(banks, single_port):
    c = random_sparse(10, SPEC, seed=banks)
    rng = np.random.default_rng(banks)
    batches = [np.where(rng.random((k, c.n)) < p, 1, -1) for k, p in ((7, 0.5), (12, 0.9))]
    acc = StatsAccumulator(c.n, stat_edges(c.indptr, c.indices), banks, single_port=single_port)
    got = accumulate(acc, batches)
    assert got[0] == stats_of(batches[0], c.indptr, c.indices)
    assert got[1] == stats_of(np.concatenate(batches), c.indptr, c.indices)
    # The entry order is BoardSession's: its own accumulation gives the same vector.
    session = BoardSession(_NoArray(), c.indptr, c.indices)
    session._accumulate(np.concatenate(batches).astype(np.int8))
    assert got[1] == session.stats_vector().tolist()
    depth = -(-(1 + c.n + len(acc.edges)) // banks)
    assert acc.clocks_per_state() == (2 * depth if single_port else depth + 1)


class _NoArray:
    """BoardSession needs an array only to run; its statistics need none."""

    words = amap = None


def test_stat_edges_order():
    c = random_sparse(8, SPEC, seed=1)
    edges = stat_edges(c.indptr, c.indices)
    assert len(edges) == c.nnz // 2 and all(i < j for i, j in edges)
    assert edges == sorted(edges)  # CSR order with sorted neighbours


def test_init_wrong():
    with pytest.raises(ValueError, match="banks"):
        StatsAccumulator(4, [(0, 1)], banks=3)
    with pytest.raises(ValueError, match="edge"):
        StatsAccumulator(4, [(2, 1)])
