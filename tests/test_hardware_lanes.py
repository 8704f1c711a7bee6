"""Many-replica machines against one-replica machines and the pure-Python reference, bit for
bit: the chromatic schedule vectorised across replica lanes (pbitsim.sim.hardware_lanes, here
from 2 replicas on), the un-coloured schedules replica after replica.

Every replica of a many-replica machine must run exactly what a one-replica machine runs with
that replica's seeds, enable seeds and phases, for both presets, every schedule and read
latency, whatever the split into blocks and threads, across calls and with register writes
between them.
"""

import numpy as np
import pytest

from pbitsim import Couplings, FixedPointSpec
from pbitsim.board.design import derive_phases, enable_threshold
from pbitsim.rng import derive_enable_seeds, derive_seeds
from pbitsim.sim import hardware
from pbitsim.sim import hardware_lanes as hl
from pbitsim.sim.hardware import HardwareDesign, HardwareMachine, simulate_cycles_reference

SCHEDULES = ("chromatic", "async-random", "async-periodic")


@pytest.fixture(autouse=True)
def lanes_from_two_replicas(monkeypatch):
    """The chromatic schedule across lanes from 2 replicas on (by default a few replicas run by
    class, tests/test_hardware_replica.py), so that these tests hold the lane kernels to the
    one-replica kernels at every replica count."""
    monkeypatch.setattr(hardware, "LANES_FROM", 2)


def glass(n: int, degree: int, seed: int, scale: float = 2.0) -> Couplings:
    """A random graph with couplings and fields large enough to saturate the input sometimes,
    some p-bits of more than 4 neighbours (the padded rows), some of fewer, and p-bit n - 1 of
    none."""
    rng = np.random.default_rng(seed)
    edges = set()
    for i in range(n - 1):
        for j in rng.choice(n - 1, size=degree // 2, replace=False):
            if i != j:
                edges.add((min(i, j), int(max(i, j))))
    deg = np.zeros(n, int)
    kept = []
    for i, j in sorted(edges):
        if deg[i] < degree and deg[j] < degree:
            deg[i] += 1
            deg[j] += 1
            kept.append((i, j, float(rng.uniform(-scale, scale))))
    return Couplings.from_edges(n, kept, h=rng.uniform(-1, 1, n).round(1), beta=0.7)


def design_of(preset: str, schedule: str, latency: int) -> HardwareDesign:
    d = HardwareDesign.from_name(preset)
    return HardwareDesign(**{**d.__dict__, "schedule": schedule, "read_latency": latency})


def machine(c, design, seeds, master=7, initial=None):
    """A machine for ``seeds`` (R, n) with the schedule's run-time values of those replicas
    (p = 0.15; periods 2..6 and phases from ``master``): with 32 or 64 lanes per block, some
    p-bits have few acting lanes in a cycle and some many (the kernel's two paths)."""
    kw = {}
    if design.schedule == "async-random":
        kw = {"enable_seeds": derive_enable_seeds(master, seeds, design.rng),
              "enable": enable_threshold(0.15)}  # fmt: skip
    elif design.schedule == "async-periodic":
        period = 2 + np.arange(c.n) % 5
        kw = {"period": period, "phase": derive_phases(master, period, len(seeds))}
    return HardwareMachine(c, design, seeds, initial=initial, **kw)


def one_replica(m: HardwareMachine, r: int) -> HardwareMachine:
    """A one-replica machine (the scalar kernels) in the state replica r of ``m`` started in."""
    single = HardwareMachine.__new__(HardwareMachine)
    single.__dict__.update(m.__dict__)
    single._lanes, single._lanes_current, single._rm_current = None, False, True
    single.replicas = 1
    m.spins  # noqa: B018 (brings the replica-major arrays up to date)
    for name in ("_rm_hist", "_rm_gen", "_rm_egen", "_rm_counter", "_phase"):
        single.__dict__[name] = m.__dict__[name][r : r + 1].copy()
    return single


def assert_same_state(m, singles):
    for r, s in enumerate(singles):
        np.testing.assert_array_equal(m.spins[r], s.spins[0])
        np.testing.assert_array_equal(m.generator_states[r], s.generator_states[0])
        np.testing.assert_array_equal(m.enable_generator_states[r], s.enable_generator_states[0])
        np.testing.assert_array_equal(m.counters[r], s.counters[0])


@pytest.mark.parametrize("preset", ["default", "published"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("latency", [0, 2])
@pytest.mark.parametrize("replicas", [3, 64])
def test_lanes_equal_one_replica_kernels(preset, schedule, latency, replicas):
    """Each replica, over several calls of different lengths and record strides and register
    writes between them, equals a one-replica machine started like it."""
    design = design_of(preset, schedule, latency)
    c = glass(24, 6, seed=1)
    seeds = derive_seeds(11, c.n, design.rng, replicas)
    initial = np.where(np.random.default_rng(3).random((replicas, c.n)) < 0.5, -1, 1)
    m = machine(c, design, seeds, initial=initial)
    singles = [one_replica(m, r) for r in range(replicas)]
    calls = [(29, 1), (1, 1), (40, 7), (13, 0), (30, 3)]
    for k, (cycles, every) in enumerate(calls):
        got = m.run(cycles, every)
        for r, s in enumerate(singles):
            np.testing.assert_array_equal(got[r], s.run(cycles, every)[0])
        if k == 2:  # a SPIN write and a restart between calls (both layouts must see them)
            for x in [m, *singles]:
                x.set_spin(5, 1)
                x.restart()
    assert_same_state(m, singles)
    # the runs did something: spins differ from the start and between replicas
    assert not np.array_equal(m.spins, initial) and len({tuple(s) for s in m.spins}) > 1


@pytest.mark.parametrize("preset", ["default", "published"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lanes_equal_pure_python_reference(preset, schedule):
    """Three replicas, each against simulate_cycles_reference (the model written line by line
    after the documented rules) with that replica's seeds; one replica likewise."""
    design = design_of(preset, schedule, 1)
    c = glass(10, 6, seed=4)
    for replicas in (1, 3):
        seeds = derive_seeds(5, c.n, design.rng, replicas)
        m = machine(c, design, seeds, master=5)
        got = m.run(45)
        for r in range(replicas):
            kw = {}
            if schedule == "async-random":
                kw = {"p": 0.15, "enable_seeds": derive_enable_seeds(5, seeds, design.rng)[r]}
            elif schedule == "async-periodic":
                period = 2 + np.arange(c.n) % 5
                kw = {"period": period, "phase": derive_phases(5, period, replicas)[r]}
            want = simulate_cycles_reference(c, design, seeds[r], 45, **kw)
            np.testing.assert_array_equal(got[r], want)


def test_wide_accumulators():
    """Codes wider than int16 (acc_bits = 24: int32 lanes) and a dense row of 11 neighbours
    (three groups of four, padded) give the same bits as the scalar kernel."""
    spec = FixedPointSpec(weight_bits=14, frac_bits=6, input_bits=12, acc_bits=24)
    design = HardwareDesign(fixed_point=spec)
    rng = np.random.default_rng(2)
    n = 12
    edges = [(i, j, float(rng.uniform(-40, 40))) for i in range(n) for j in range(i + 1, n)]
    c = Couplings.from_edges(n, edges, h=rng.uniform(-3, 3, n), beta=1.0)
    seeds = derive_seeds(3, n, design.rng, 5)
    m = HardwareMachine(c, design, seeds)
    singles = [one_replica(m, r) for r in range(5)]
    got = m.run(120, 5)
    for r, s in enumerate(singles):
        np.testing.assert_array_equal(got[r], s.run(120, 5)[0])
    assert_same_state(m, singles)


def test_layout_types_and_padding():
    """The codes' type is the narrowest holding acc_bits; rows are padded with weight 0 reading
    the zero row n; the exact sums are unchanged."""
    c = glass(9, 6, seed=3)
    q = c.quantized(FixedPointSpec())
    order = np.argsort(c.coloring, kind="stable")
    for bits, dtype in [(9, np.int16), (16, np.int16), (17, np.int32), (32, np.int32),
                        (33, np.int64)]:  # fmt: skip
        ptr, nbr, w, h = hl.lanes_layout(q.indptr, q.indices, q.j_codes, q.h_codes, order, bits)
        assert w.dtype == dtype and h.dtype == dtype
    assert np.all(np.diff(ptr) % 4 == 0) and np.all(np.diff(ptr) >= 4)  # isolated p-bit too
    assert np.all(w[nbr == c.n] == 0)
    s = np.where(np.random.default_rng(0).random(c.n) < 0.5, -1, 1)
    padded = np.append(s, 0)
    sums = [h[p] + sum(int(w[k]) * padded[nbr[k]] for k in range(ptr[p], ptr[p + 1]))
            for p in range(c.n)]  # fmt: skip
    exact = q.h_codes + np.array([q.j_codes[q.indptr[i] : q.indptr[i + 1]]
                                  @ s[q.indices[q.indptr[i] : q.indptr[i + 1]]]
                                  for i in range(c.n)])  # fmt: skip
    np.testing.assert_array_equal(sums, exact[order])


def test_improper_colouring_updates_in_parallel():
    """A colouring with coupled p-bits in one colour: they decide from the same old state in the
    lanes too (the hardware's behaviour, which the scalar kernel models)."""
    c = glass(16, 4, seed=6)
    design = HardwareDesign()
    colouring = np.arange(c.n) % 2  # not a proper colouring of a random graph
    seeds = derive_seeds(9, c.n, design.rng, 4)
    m = HardwareMachine(c, design, seeds, coloring=colouring)
    singles = [one_replica(m, r) for r in range(4)]
    got = m.run(60, 2)
    for r, s in enumerate(singles):
        np.testing.assert_array_equal(got[r], s.run(60, 2)[0])


def test_blocks_and_threads_do_not_change_results(monkeypatch):
    """Narrow blocks (many of them, uneven widths) on two threads give the bits of one block on
    the calling thread."""
    c = glass(20, 5, seed=8)
    design = HardwareDesign()
    seeds = derive_seeds(4, c.n, design.rng, 23)
    wide = machine(c, design, seeds)
    want = wide.run(50, 5)
    monkeypatch.setattr(hl, "MAX_BLOCK", 5)
    monkeypatch.setattr(hl, "ONE_THREAD_BELOW", 0)
    monkeypatch.setattr(HardwareMachine, "_threads", lambda self, work: 2)
    narrow = machine(c, design, seeds)
    np.testing.assert_array_equal(narrow.run(50, 5), want)
    assert len(narrow._lanes.bounds) - 1 >= 5
    np.testing.assert_array_equal(narrow.generator_states, wide.generator_states)


def test_record_transposes_tiles_and_ragged_edges():
    """A recorded state lands in out[replica, draw, p-bit]: by 8 x 8 tiles (lanes and p-bits
    multiples of 8) or a byte at a time (other shapes), touching nothing else."""
    rng = np.random.default_rng(0)
    for n, m in [(64, 32), (16, 8), (24, 64), (13, 8), (16, 5)]:
        Hc = rng.integers(-128, 127, (n + 1, m), dtype=np.int8)
        out = np.zeros((m + 3, 2, n), np.int8)
        hl._record(Hc, 2, 1, out)
        np.testing.assert_array_equal(out[2 : 2 + m, 1], Hc[:n].T)
        assert not out[:2].any() and not out[2 + m :].any() and not out[:, 0].any()


def test_block_bounds():
    for replicas, threads in [
        (1, 2),
        (3, 2),
        (8, 2),
        (16, 2),
        (64, 2),
        (64, 1),
        (200, 2),
        (129, 4),
    ]:
        b = hl.block_bounds(replicas, threads)
        assert b[0] == 0 and b[-1] == replicas and np.all(np.diff(b) >= 1)
        assert np.diff(b).max() <= hl.MAX_BLOCK
        if replicas >= threads * hl.MIN_BLOCK:  # every thread gets blocks, the same number
            assert (len(b) - 1) % threads == 0 and np.diff(b).min() >= hl.MIN_BLOCK
        else:
            assert len(b) - 1 == max(1, replicas // hl.MIN_BLOCK)


def test_state_writes_and_reads_between_runs():
    """Reading the state keeps the lane copy; writing it (generators, codes) reaches the next
    run; the GPU-style direct access to the replica-major arrays sees the latest state."""
    c = glass(12, 4, seed=5)
    design = HardwareDesign()
    seeds = derive_seeds(1, c.n, design.rng, 6)
    m = machine(c, design, seeds)
    singles = [one_replica(m, r) for r in range(6)]
    for x in [m, *singles]:
        x.run(17)
    assert_same_state(m, singles)
    assert m._lanes_current  # reading did not invalidate the lane copy
    new = derive_seeds(99, c.n, design.rng, 6)
    m.set_generator_states(new)
    j = m.quantized.j_codes // 2
    m.set_codes(j, m.quantized.h_codes, m.quantized.table)
    for r, s in enumerate(singles):
        s.set_generator_states(new[r : r + 1])
        s.set_codes(j, m.quantized.h_codes, m.quantized.table)
    got = m.run(33, 3)
    for r, s in enumerate(singles):
        np.testing.assert_array_equal(got[r], s.run(33, 3)[0])
    np.testing.assert_array_equal(m._hist[:, 0], m.spins)  # the direct view is current
