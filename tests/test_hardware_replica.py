"""The one-replica-at-a-time kernels of the cycle model (pbitsim.sim.hardware_replica) at their
edges, bit for bit against the pure-Python reference (simulate_cycles_reference, the documented
rules line by line): the padded rows, the timing wheel of "async-periodic" (a period equal to the
wheel, phases beyond the period, the widest wheel, PERIOD writes between calls, calls of
one cycle) and the flag passes of "async-random" (n not a multiple of 8, every p-bit acting)."""

import numpy as np
import pytest

from pbitsim import Couplings, FixedPointSpec, models
from pbitsim.board.design import enable_threshold
from pbitsim.rng import derive_enable_seeds, derive_seeds
from pbitsim.sim import hardware_replica as hrep
from pbitsim.sim.async_rules import counter_at, counter_tick, next_action
from pbitsim.sim.hardware import HardwareDesign, HardwareMachine, simulate_cycles_reference


def graph(n: int, seed: int, max_degree: int = 6) -> Couplings:
    """Degrees 0 (p-bit 0) to ``max_degree`` (rows of one and of two or three groups of four;
    the published design has 6 neighbour slots), couplings and fields large enough to
    saturate the input sometimes."""
    rng = np.random.default_rng(seed)
    deg = np.zeros(n, int)
    kept = []
    for i in range(2, n):
        for j in rng.choice(
            np.arange(1, i), size=min(i - 1, int(rng.integers(1, 5))), replace=False
        ):
            if deg[i] < max_degree and deg[j] < max_degree:
                deg[i] += 1
                deg[j] += 1
                kept.append((int(j), i, float(rng.uniform(-2, 2))))
    return Couplings.from_edges(n, kept, h=rng.uniform(-1, 1, n).round(1), beta=0.7)


def design(preset: str, schedule: str, latency: int = 0) -> HardwareDesign:
    """A preset, or "wide" (a 24-bit accumulator: codes and sums past 16 bits)."""
    if preset == "wide":
        spec = FixedPointSpec(weight_bits=14, frac_bits=6, input_bits=12, acc_bits=24)
        d = HardwareDesign(fixed_point=spec)
    else:
        d = HardwareDesign.from_name(preset)
    return HardwareDesign(**{**d.__dict__, "schedule": schedule, "read_latency": latency})


def test_rows_pad_with_weight_zero_on_the_own_spin():
    c = graph(30, seed=1, max_degree=9)
    q = c.quantized(HardwareDesign.from_name("default").fixed_point)
    order = np.random.default_rng(2).permutation(c.n)
    ptr, nbr, w, h = hrep.rows(q.indptr, q.indices, q.j_codes, q.h_codes, order, 16)
    deg = np.diff(q.indptr)[order]
    assert deg.min() == 0 and deg.max() > 8  # rows of one, two and three groups
    np.testing.assert_array_equal(np.diff(ptr), np.maximum(-(-deg // 4), 1) * 4)
    assert nbr.dtype == np.int32 and w.dtype == np.int32 and h.dtype == np.int32
    for bits, dtype in [(9, np.int32), (32, np.int32), (33, np.int64)]:
        _, _, wb, hb = hrep.rows(q.indptr, q.indices, q.j_codes, q.h_codes, order, bits)
        assert wb.dtype == dtype and hb.dtype == dtype
    spins = np.where(np.random.default_rng(3).random(c.n) < 0.5, -1, 1)
    for k, i in enumerate(order):
        row = slice(ptr[k], ptr[k + 1])
        real = slice(ptr[k], ptr[k] + deg[k])
        csr = slice(q.indptr[i], q.indptr[i + 1])
        np.testing.assert_array_equal(nbr[real], q.indices[csr])  # the CSR's order
        np.testing.assert_array_equal(w[real], q.j_codes[csr])
        assert np.all(w[row][deg[k] :] == 0) and np.all(nbr[row][deg[k] :] == i)
        assert (
            h[k] + w[row] @ spins[nbr[row]] == q.h_codes[i] + q.j_codes[csr] @ spins[q.indices[csr]]
        )


def test_event_form_of_the_counter_rule():
    """next_action is the cycle counter_tick first acts at, from any counter and reload, again
    after each reload; counter_at gives back the counter at every cycle before it."""
    rng = np.random.default_rng(0)
    for k0, reload in [(0, 0), (0, 65535), (5, 2), (65535, 0), *rng.integers(0, 300, (20, 2))]:
        k, cycle, due = int(k0), 100, next_action(100, int(k0))
        for _ in range(3):
            while True:
                assert counter_at(due, cycle) == k
                acts, k = counter_tick(k, int(reload))
                cycle += 1
                if acts:
                    break
            assert cycle == due
            due = next_action(cycle, int(reload))


def periodic_machine(c, d, seeds, period, phase):
    return HardwareMachine(c, d, seeds[None], period=period, phase=phase)


def counters_after(phase, period, cycles):
    """The counter rule applied ``cycles`` times, p-bit by p-bit."""
    out = []
    for k, t in zip(phase, period, strict=True):
        reload = (int(t) - 1) & 0xFFFF
        for _ in range(cycles):
            _, k = counter_tick(k, reload)
        out.append(k)
    return np.array(out)


@pytest.mark.parametrize("preset", ["default", "published"])
@pytest.mark.parametrize("latency", [0, 2])
def test_periodic_wheel_edges_against_reference(preset, latency):
    """Periods of 8 with phases 0..7 (wheel of 8 slots: a p-bit files itself in the slot being
    visited), phases past the period (a p-bit waits longer than a period before its first
    action) and, in a second machine, a period of 40,000 cycles (the widest wheel, 2**16)."""
    d = design(preset, "async-periodic", latency)
    c = graph(21, seed=4)
    seeds = derive_seeds(9, c.n, d.rng)
    period = np.full(c.n, 8)
    period[::5] = 3
    phase = np.arange(c.n) % 8
    phase[2] = 29  # first action at cycle 30, then every 8 cycles
    for per, ph in ((period, phase), (np.where(np.arange(c.n) == 6, 40000, period), phase)):
        m = periodic_machine(c, d, seeds, per, ph)
        got = np.concatenate([m.run(k)[0] for k in (1, 1, 5, 33, 1, 19)])
        want = simulate_cycles_reference(c, d, seeds, len(got), period=per, phase=ph)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(m.counters[0], counters_after(ph, per, len(got)))
        assert len(np.unique(want[:, 2])) == 2  # p-bit 2 did act


def test_periodic_period_writes_between_calls():
    """A new PERIOD takes effect at each p-bit's next reload: running on equals a fresh
    reference started from the state reached, with PHASE = the counters then."""
    d = design("default", "async-periodic")
    c = graph(17, seed=5)
    seeds = derive_seeds(3, c.n, d.rng)
    phase = np.arange(c.n) % 4
    m = periodic_machine(c, d, seeds, np.full(c.n, 4), phase)
    m.run(13)
    spins, gens, counters = m.spins[0], m.generator_states[0], m.counters[0]
    new = 2 + np.arange(c.n) % 7
    m.set_periods(new)
    got = m.run(40)[0]
    want = simulate_cycles_reference(c, d, gens, 40, initial=spins, period=new, phase=counters)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [0.3, 1.0])
@pytest.mark.parametrize("preset", ["default", "published"])
def test_random_one_replica_flag_passes_against_reference(p, preset):
    """n = 21 (the flag words' padding), p = 1 (every p-bit acts in every cycle), latency 1."""
    d = design(preset, "async-random", 1)
    c = graph(21, seed=6)
    seeds = derive_seeds(8, c.n, d.rng)
    enable = derive_enable_seeds(8, seeds, d.rng)
    m = HardwareMachine(c, d, seeds[None], enable_seeds=enable[None], enable=enable_threshold(p))
    got = np.concatenate([m.run(k)[0] for k in (2, 1, 30)])
    want = simulate_cycles_reference(c, d, seeds, len(got), p=p, enable_seeds=enable)
    np.testing.assert_array_equal(got, want)
    assert len({tuple(s) for s in got}) > 3  # the spins moved


def sparse(kind: str) -> Couplings:
    """Degree <= 4 with 16 and more p-bits a colour (the gathered path, inputs16), random
    fields so that the spins keep moving."""
    rng = np.random.default_rng(2)
    if kind == "lattice":
        c = models.lattice_2d(12, beta=0.4)
    else:
        c = models.random_regular(60, 3, weights="pm1", beta=0.8, seed=3)
    return c.replace(h=rng.uniform(-0.8, 0.8, c.n).round(1))


@pytest.mark.parametrize("preset", ["default", "published", "wide"])
@pytest.mark.parametrize("latency", [0, 1])
@pytest.mark.parametrize("kind", ["lattice", "regular"])
def test_one_replica_chromatic_gathered_against_reference(preset, latency, kind):
    """One replica of the chromatic schedule (state kept by position, inputs gathered 16 p-bits
    at a time): calls of uneven length with records, then (latency 0) a spin write and more
    cycles, against a reference started from the state written."""
    d = design(preset, "chromatic", latency)
    c = sparse(kind)
    q = c.quantized(d.fixed_point)
    ptr, _, w, _ = hrep.rows(q.indptr, q.indices, q.j_codes, q.h_codes, np.arange(c.n), 16)
    sizes = np.bincount(c.coloring)  # colours of 16 and more, and partial groups of 16
    assert hrep.gathered(ptr, w) and sizes.max() >= 16 and np.any(sizes % 16)
    seeds = derive_seeds(4, c.n, d.rng)
    m = HardwareMachine(c, d, seeds[None])
    got = [m.run(k, e)[0] for k, e in ((7, 1), (1, 1), (28, 4))]
    want = simulate_cycles_reference(c, d, seeds, 36)
    np.testing.assert_array_equal(np.concatenate(got[:2]), want[:8])
    np.testing.assert_array_equal(got[2], want[8:][3::4])
    assert len({tuple(s) for s in want}) > 20  # the spins moved
    if latency == 0:  # 36 cycles: a whole number of colour periods (C = 2, 3 or 4)
        assert 36 % m.n_colors == 0
        m.set_spin(3, 1)
        start, gens = m.spins[0], m.generator_states[0]
        d0 = HardwareDesign(**{**d.__dict__, "warmup_edges": 0})
        want = simulate_cycles_reference(c, d0, gens, 12, initial=start)
        np.testing.assert_array_equal(m.run(12)[0], want)


@pytest.mark.parametrize("preset", ["default", "published", "wide"])
@pytest.mark.parametrize("latency", [0, 2])
@pytest.mark.parametrize("kind", ["lattice", "regular", "glass"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_periodic_classes_against_reference(preset, latency, kind, replicas):
    """One period for every p-bit: calls of at least a period run as phase classes (gathered
    rows when the degree allows), shorter ones event-driven; between them a restart (the
    classes are filed anew) and a period change (another class count). Against the reference
    where it can start from the state reached (at the start and after the restart), and against
    a machine making only calls shorter than a period (every cycle event-driven) throughout."""
    d = design(preset, "async-periodic", latency)
    c = graph(21, seed=7) if kind == "glass" else sparse(kind)
    seeds = derive_seeds(6, c.n, d.rng, replicas)
    phase = np.random.default_rng(5).integers(0, 5, (replicas, c.n))
    m, e = (HardwareMachine(c, d, seeds, period=np.full(c.n, 5), phase=phase) for _ in "me")

    def both(calls, every):
        got = np.concatenate([m.run(k, every) for k in calls], axis=1)
        short = np.concatenate([e.run(1, 1) for _ in range(sum(calls))], axis=1)
        np.testing.assert_array_equal(got, short[:, every - 1 :: every])
        return got

    got = both((12, 3, 25), 1)
    for r in range(replicas):
        want = simulate_cycles_reference(c, d, seeds[r], 40, period=5, phase=phase[r])
        np.testing.assert_array_equal(got[r], want)
    np.testing.assert_array_equal(m.counters, (phase - 40) % 5)
    assert isinstance(m._lanes, hrep.ClassState) and m._lanes.classes == 5
    phase = (phase + np.arange(c.n)) % 5
    for x in (m, e):
        x.set_phases(phase)
        x.restart()  # counters reloaded from new phases: the kept classes no longer hold
    spins, gens = m.spins, m.generator_states
    got = both((18,), 1)
    for r in range(replicas):
        want = simulate_cycles_reference(
            c, d, gens[r], 18, initial=spins[r], period=5, phase=phase[r]
        )
        np.testing.assert_array_equal(got[r], want)
    for x in (m, e):
        x.set_periods(np.full(c.n, 3))
    both((20,), 4)  # counters still past the new period: event-driven
    both((9,), 3)  # then classes of 3
    np.testing.assert_array_equal(m.counters, e.counters)
    np.testing.assert_array_equal(m.generator_states, e.generator_states)
    assert isinstance(m._lanes, hrep.ClassState) and m._lanes.classes == 3


def test_by_class_only_where_the_copy_fits(monkeypatch):
    """Without room for the copy by class, "async-periodic" runs event-driven and the chromatic
    schedule across lanes, with the same spins; few replicas of the chromatic schedule run by
    class, many across lanes."""
    import pbitsim.sim.hardware as hw

    c = sparse("lattice")
    runs = {}
    for room in (hw.CLASS_STATE_BYTES, 0):
        monkeypatch.setattr(hw, "CLASS_STATE_BYTES", room)
        for schedule in ("chromatic", "async-periodic"):
            d = design("default", schedule)
            seeds = derive_seeds(1, c.n, d.rng, 4)
            phase = np.random.default_rng(0).integers(0, 6, (4, c.n))
            kw = {"period": np.full(c.n, 6), "phase": phase} if schedule != "chromatic" else {}
            m = HardwareMachine(c, d, seeds, **kw)
            runs[room, schedule] = [m.run(k, 1) for k in (6, 13, 30)] + [m.counters]
            assert isinstance(m._lanes, hrep.ClassState) == (room > 0)
    for schedule in ("chromatic", "async-periodic"):
        for a, b in zip(runs[hw.CLASS_STATE_BYTES, schedule], runs[0, schedule], strict=True):
            np.testing.assert_array_equal(a, b)
    d = design("default", "chromatic")
    many = HardwareMachine(c, d, derive_seeds(1, c.n, d.rng, hw.LANES_FROM))
    many.run(3)
    assert not isinstance(many._lanes, hrep.ClassState)


@pytest.mark.parametrize("schedule", ["chromatic", "async-periodic"])
def test_new_codes_reach_the_copy_by_class(schedule):
    """New couplings (what Runner.load writes) while the copy by class holds the state: the next
    run uses them, from the state reached, as a reference started there does."""
    d = design("default", schedule)
    c = sparse("lattice")
    seeds = derive_seeds(2, c.n, d.rng, 2)
    phase = np.random.default_rng(1).integers(0, 4, (2, c.n))
    kw = {"period": np.full(c.n, 4), "phase": phase} if schedule != "chromatic" else {}
    m = HardwareMachine(c, d, seeds, **kw)
    m.run(16)
    assert isinstance(m._lanes, hrep.ClassState) and m._lanes_current
    c2 = c.replace(h=-c.h, data=0.5 * c.data)
    m.set_quantized(c2.quantized(d.fixed_point))
    spins, gens, counters = m.spins, m.generator_states, m.counters
    got = m.run(12, 1)
    for r in range(2):
        extra = {"period": 4, "phase": counters[r]} if schedule != "chromatic" else {}
        want = simulate_cycles_reference(c2, d, gens[r], 12, initial=spins[r], **extra)
        np.testing.assert_array_equal(got[r], want)
