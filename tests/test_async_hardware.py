"""The un-coloured schedules of the cycle model ("async-random", "async-periodic"): the rules of
docs/hardware-model.md section 5, their run-time registers, the enable generators' seeds, the
sampler options of method="hardware", and the exact stationary distributions of
pbitsim.async_design (the designer's question: which p keeps the KL below epsilon)."""

import itertools
import math
import warnings

import numpy as np
import pytest
from board_support import MiniHost, make_board
from scipy import stats

from pbitsim import Couplings, FixedPointSpec, models
from pbitsim.async_design import (
    async_random_kernel,
    async_random_kl,
    kl_floor,
    max_enable_probability,
    quantised_conditionals,
    random_scan_kernel,
    reference_distribution,
    stationary_distribution,
)
from pbitsim.board import protocol as P
from pbitsim.board.design import (
    SCHEDULES,
    HardwareDesign,
    cycles_per_step,
    derive_phases,
    enable_threshold,
    run_time_values,
)
from pbitsim.board.regmap import (
    AddressError,
    AddressMap,
    Region,
    Register,
    RegisterFile,
    decode_design,
    design_word,
    format_word,
    image_writes,
    load_writes,
    read_load_writes,
)
from pbitsim.exact import all_states, kl_divergence, state_index
from pbitsim.fixedpoint import decide, saturate_input
from pbitsim.rng import (
    Lfsr32Xnor,
    Xorshift64,
    derive_enable_seeds,
    derive_seeds,
    resolve_enable_seeds,
    splitmix64,
)
from pbitsim.sim.array import ArrayModel
from pbitsim.sim.hardware import (
    HardwareMachine,
    HardwareRunner,
    simulate_cycles,
    simulate_cycles_reference,
    trace_cycles,
)

RANDOM = HardwareDesign(schedule="async-random")
PERIODIC = HardwareDesign(schedule="async-periodic")
VALUES = {"async-random": {"p": 0.3}, "async-periodic": {"period": 5}}


def glass(n=10, seed=1):
    return models.spin_glass(n, p=0.35, seed=seed, weights="gauss", field=0.5, beta=0.8)


# -- the design and its run-time values ---------------------------------------------------------


def test_schedules_and_design_word():
    assert SCHEDULES[0] == "chromatic" and set(SCHEDULES) >= {"async-random", "async-periodic"}
    for s in SCHEDULES:
        for latency in (0, 2):
            d = HardwareDesign(schedule=s, read_latency=latency, warmup_edges=1)
            word = design_word(d)
            assert word & 0xF == SCHEDULES.index(s) and word >> 4 & 0xFF == latency
            assert decode_design(format_word(d.fixed_point, d.rng), word) == d
    assert RANDOM.generators == 2 and PERIODIC.generators == 1
    assert not RANDOM.coloured and HardwareDesign().coloured
    assert RANDOM.warmup_cycles(5) == 0 and HardwareDesign(warmup_edges=2).warmup_cycles(3) == 6
    assert HardwareDesign(schedule="async-periodic", warmup_edges=2).warmup_cycles(3) == 2


def test_run_time_values():
    assert enable_threshold(1.0) == 65536 and enable_threshold(0.1) == 6554
    assert run_time_values(RANDOM, 4, 1, p=0.5) == {"enable": 32768, "period": None, "phase": None}
    v = run_time_values(PERIODIC, 4, 7, period=[3, 4, 5, 6])
    np.testing.assert_array_equal(v["phase"], derive_phases(7, [3, 4, 5, 6]))
    assert all(0 <= ph < t for ph, t in zip(v["phase"], [3, 4, 5, 6], strict=True))
    # phase of p-bit i: splitmix64(M, 3*2**62 + i) mod T_i
    assert v["phase"][2] == splitmix64(7, (3 << 62) + 2) % 5
    assert cycles_per_step(RANDOM, 3, enable=enable_threshold(0.1)) == 10
    assert cycles_per_step(PERIODIC, 3, period=[3, 4, 5, 6]) == 4
    assert cycles_per_step(HardwareDesign(), 3) == 3


@pytest.mark.parametrize(
    "design, kw, match",
    [
        (RANDOM, {"p": 0.0}, "p must be in"),
        (RANDOM, {"p": 1e-6}, "smallest enable probability"),
        (RANDOM, {"period": 4}, "period is a run-time value of schedule 'async-periodic'"),
        (HardwareDesign(), {"p": 0.5}, "p is a run-time value of schedule 'async-random'"),
        (PERIODIC, {"period": 0}, "period must be in 1..65535"),
        (PERIODIC, {"period": 2.5}, "integers"),
        (PERIODIC, {"period": [3, 4]}, "shape"),
        (PERIODIC, {"period": 4, "phase": [0, 1, 2, -1]}, "phase must be in"),
    ],
)
def test_run_time_values_wrong(design, kw, match):
    with pytest.raises(ValueError, match=match):
        run_time_values(design, 4, 1, **kw)


def test_default_phases_need_a_master_seed():
    with pytest.raises(ValueError, match="needs phases"):
        simulate_cycles(models.ring(4), PERIODIC, [1, 2, 3, 4], 3)
    with pytest.raises(ValueError, match="needs enable_seeds"):
        simulate_cycles(models.ring(4), RANDOM, [1, 2, 3, 4], 3)


# -- the enable generators' seeds ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xorshift64", "lfsr32-xnor"])
def test_enable_seeds_never_equal_decision_seeds(kind):
    dec = derive_seeds(5, 40, kind, replicas=30)
    en = derive_enable_seeds(5, dec, kind)
    assert en.shape == dec.shape and en.dtype == np.uint64
    for r in range(30):
        assert len(set(dec[r].tolist()) | set(en[r].tolist())) == 80
    # Replica 0 is what hardware loads; the rule is splitmix64 at index 2**63 + r*n + i.
    np.testing.assert_array_equal(derive_enable_seeds(5, dec[0], kind), en[0])
    z = splitmix64(5, (1 << 63) + 3 * 40 + 7)
    assert int(en[3, 7]) == (z if kind == "xorshift64" else z >> 32)


def test_lfsr_enable_seed_collisions_are_resolved_deterministically():
    """Make the decision seeds equal to the enable seeds the rule would give: every one must be
    replaced, by splitmix64 continued from its raw value, and no two may be equal."""
    first = derive_enable_seeds(9, np.array([1, 2, 3, 4], np.uint64), "lfsr32-xnor")
    dec = first.copy()  # collide on purpose
    en = derive_enable_seeds(9, dec, "lfsr32-xnor")
    assert not set(en.tolist()) & set(dec.tolist()) and len(set(en.tolist())) == 4
    np.testing.assert_array_equal(en, derive_enable_seeds(9, dec, "lfsr32-xnor"))
    from pbitsim.rng import GOLDEN64, mix64

    z = splitmix64(9, 1 << 63)
    z2 = int(mix64(np.array([(z + GOLDEN64) % 2**64], np.uint64))[0])
    assert int(en[0]) == z2 >> 32
    with pytest.raises(ValueError, match="equals the decision seed of p-bit 1"):
        resolve_enable_seeds([5, 2, 7], np.array([1, 5, 3], np.uint64), "xorshift64")
    with pytest.raises(ValueError, match="stuck state"):
        resolve_enable_seeds([0xFFFFFFFF, 2, 7], np.array([1, 5, 3], np.uint64), "lfsr32-xnor")


# -- the rules, written out again with Python ints --------------------------------------------


def doc_model(c, design, seed, cycles, initial, p=None, period=None, phase=None):
    """docs/hardware-model.md section 5 for the un-coloured schedules, from the document alone
    (its generators, its table formula, its comparator), independent of pbitsim's model."""
    spec = design.fixed_point
    q = c.quantized(spec)
    n = c.n
    J = np.zeros((n, n), dtype=np.int64)
    J[np.repeat(np.arange(n), c.degrees), c.indices] = q.j_codes
    J, h = J.tolist(), q.h_codes.tolist()
    make = Xorshift64 if design.rng == "xorshift64" else Lfsr32Xnor
    seeds = [int(x) for x in derive_seeds(seed, n, design.rng)]
    gen = [make(s) for s in seeds]
    imax, r_bits, f = 2 ** (spec.input_bits - 1) - 1, spec.rng_bits, spec.frac_bits
    table = [
        min(2**r_bits - 1, math.floor(2**r_bits * (1 + math.tanh(c.beta * k / 2**f)) / 2 + 0.5))
        for k in range(imax + 1)
    ]
    if design.schedule == "async-random":
        en = [
            make(int(s)) for s in derive_enable_seeds(seed, np.array(seeds, np.uint64), design.rng)
        ]
        P = round(p * 2**16)
    else:
        counter = list(phase)
    history = [list(initial)]
    for t in range(1, cycles + 1):
        read = history[max(t - 1 - design.read_latency, 0)]
        s = list(history[-1])
        for i in range(n):
            if design.schedule == "async-random":
                acts = en[i].output(16) < P
                en[i].step()
            else:
                acts = counter[i] == 0
                counter[i] = (period[i] - 1) % 2**16 if acts else counter[i] - 1
            if acts:
                R = gen[i].output(r_bits)
                if t > design.warmup_edges:
                    acc = h[i] + sum(J[i][j] * read[j] for j in range(n))
                    I = max(-imax, min(imax, acc))
                    T = table[abs(I)]
                    s[i] = (
                        -1 if R == T else ((1 if T > R else -1) if I >= 0 else (-1 if T > R else 1))
                    )
            if acts or design.schedule == "async-random":
                gen[i].step()
        history.append(s)
    return history[1:]


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
@pytest.mark.parametrize(
    "rng, latency, warmup", [("xorshift64", 0, 0), ("lfsr32-xnor", 1, 2), ("xorshift64", 2, 1)]
)
def test_doc_model_agrees(schedule, rng, latency, warmup):
    design = HardwareDesign(schedule=schedule, rng=rng, read_latency=latency, warmup_edges=warmup)
    c = models.spin_glass(6, p=0.6, seed=latency, beta=1.0)
    init = np.random.default_rng(warmup).choice([-1, 1], c.n).tolist()
    kw = {"p": 0.4} if schedule == "async-random" else {"period": [2, 3, 5, 7, 3, 4]}
    phase = [1, 0, 4, 6, 2, 3]
    if schedule == "async-periodic":
        kw["phase"] = phase
    want = doc_model(c, design, 3, 60, init, p=kw.get("p"), period=kw.get("period"), phase=phase)
    assert simulate_cycles(c, design, 3, 60, initial=init, **kw).tolist() == want


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
@pytest.mark.parametrize(
    "design_kw",
    [
        {},
        {"rng": "lfsr32-xnor", "read_latency": 1, "warmup_edges": 2},
        {"read_latency": 2, "initial_spin": 1, "fixed_point": FixedPointSpec(
            weight_bits=5, frac_bits=2, input_bits=4, acc_bits=8, rng_bits=7)},
    ],
)  # fmt: skip
def test_reference_and_numba_bit_identical(schedule, design_kw):
    design = HardwareDesign(schedule=schedule, **design_kw)
    for k, c in enumerate([glass(), models.random_regular(10, degree=3, seed=2, beta=1.3)]):
        init = np.random.default_rng(k).choice([-1, 1], c.n)
        kw = {"p": 0.35} if schedule == "async-random" else {"period": np.arange(2, 12)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # clipping in the narrow format
            a = simulate_cycles(c, design, 40 + k, 150, initial=init, **kw)
            b = simulate_cycles_reference(c, design, 40 + k, 150, initial=init, **kw)
        np.testing.assert_array_equal(a, b)
        assert a.std() > 0  # the spins move


def test_chromatic_is_periodic_with_period_C_and_phase_colour():
    c = glass()
    for latency in (0, 1):
        a = simulate_cycles(c, HardwareDesign(read_latency=latency), 3, 120)
        b = simulate_cycles(
            c,
            HardwareDesign(schedule="async-periodic", read_latency=latency),
            3,
            120,
            period=c.n_colors,
            phase=c.coloring,
        )
        np.testing.assert_array_equal(a, b)


def test_periodic_pbits_act_at_phase_plus_one_plus_multiples_of_period():
    c = glass(6)
    period, phase = [2, 3, 4, 5, 6, 7], [0, 2, 3, 9, 5, 1]  # phase 9 >= T: first act at 10
    _, events = trace_cycles(c, PERIODIC, 1, 60, period=period, phase=phase)
    for i in range(6):
        got = [e["cycle"] for e in events if e["pbit"] == i]
        assert got == list(range(phase[i] + 1, 61, period[i]))


def test_random_enables_are_bernoulli_p():
    """Each p-bit acts in a cycle with probability p, independently of the others."""
    c = glass(8)
    p, cycles = 0.3, 2000
    _, events = trace_cycles(c, RANDOM, 4, cycles, p=p)
    acted = np.zeros((cycles, 8), bool)
    for e in events:
        acted[e["cycle"] - 1, e["pbit"]] = True
    k, N = acted.sum(), acted.size
    assert abs(k / N - p) < 4 * math.sqrt(p * (1 - p) / N)
    # pairs of p-bits act together p**2 of the time
    both = (acted[:, 0] & acted[:, 1]).mean()
    assert abs(both - p * p) < 4 * math.sqrt(p * p * (1 - p * p) / cycles)


def test_generators_advance_as_documented():
    """async-random: both generators of every p-bit advance every cycle (free-running);
    async-periodic: the decision generator advances when its p-bit acts."""
    c = glass(5)
    seeds = derive_seeds(2, 5, "xorshift64", replicas=1)
    m = HardwareMachine(
        c, RANDOM, seeds, enable_seeds=derive_enable_seeds(2, seeds), enable=enable_threshold(0.2)
    )
    m.run(17)
    for i in range(5):
        g, e = Xorshift64(int(seeds[0, i])), Xorshift64(int(derive_enable_seeds(2, seeds)[0, i]))
        for _ in range(17):
            g.step()
            e.step()
        assert m.generator_states[0, i] == g.state and m.enable_generator_states[0, i] == e.state
    m = HardwareMachine(c, PERIODIC, seeds, period=[3, 4, 5, 6, 7], phase=[0, 1, 2, 3, 4])
    m.run(20)
    for i, (t, ph) in enumerate(zip([3, 4, 5, 6, 7], [0, 1, 2, 3, 4], strict=True)):
        g = Xorshift64(int(seeds[0, i]))
        for _ in range(len(range(ph + 1, 21, t))):
            g.step()
        assert m.generator_states[0, i] == g.state


def test_p1_parallel_pair_by_hand():
    """p = 1: every p-bit acts every cycle from the same old state. A strongly antiferromagnetic
    pair started at (+1, +1): both read the other +1, both go -1; then both go +1: the pair
    oscillates in step forever (the chromatic schedule would settle in (+1, -1) or (-1, +1))."""
    c = Couplings.from_edges(2, [(0, 1, -7.5)], h=[0, 0])
    s = simulate_cycles(c, RANDOM, 1, 8, initial=[1, 1], p=1.0)
    assert s.tolist() == [[-1, -1], [1, 1]] * 4
    s = simulate_cycles(c, HardwareDesign(read_latency=1, schedule="async-random"), 1, 6,
                        initial=[1, 1], p=1.0)  # fmt: skip
    assert s.tolist() == [[-1, -1], [-1, -1], [1, 1], [1, 1], [-1, -1], [-1, -1]]


# -- register map, register file, the emulator's array ---------------------------------------


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
@pytest.mark.parametrize("rng", ["xorshift64", "lfsr32-xnor"])
def test_load_writes_inverse_is_identity(schedule, rng):
    c = glass(9, seed=4)
    design = HardwareDesign(schedule=schedule, rng=rng, read_latency=1)
    kw = {"p": 0.25} if schedule == "async-random" else {"period": np.arange(3, 12)}
    writes = load_writes(c, design, 12, None, **kw)
    image = read_load_writes(writes, c, design)
    amap = AddressMap.for_design(c, design)
    assert image_writes(amap, image) == writes and image.restart
    seeds = derive_seeds(12, c.n, rng)
    np.testing.assert_array_equal(image.seeds, seeds)
    if schedule == "async-random":
        assert image.enable == 16384 and (Register.ENABLE in [amap.split(a)[1] for a, _ in writes])
        np.testing.assert_array_equal(image.enable_seeds, derive_enable_seeds(12, seeds, rng))
        assert image.period is None
    else:
        np.testing.assert_array_equal(image.period, np.arange(3, 12))
        np.testing.assert_array_equal(image.phase, derive_phases(12, np.arange(3, 12)))
        assert image.enable_seeds is None
    # Chromatic designs keep their address map: no new slots, no new writes.
    chrom = AddressMap.for_design(c, HardwareDesign(rng=rng))
    assert chrom.slot_bits <= amap.slot_bits and not chrom.timers and chrom.generators == 1


def test_register_file_new_registers():
    c = models.random_regular(8, degree=5, seed=1)  # three slot bits
    chrom, rnd, per = (RegisterFile(c, d) for d in (HardwareDesign(), RANDOM, PERIODIC))
    for regs, ok in ((chrom, False), (rnd, True), (per, False)):
        a = regs.amap.register(Register.ENABLE)
        if ok:
            regs.write(a, 0x1_0000)
            assert regs.read(a) == 0x1_0000
        else:
            with pytest.raises(AddressError, match="async-random designs only"):
                regs.write(a, 1)
    with pytest.raises(AddressError, match="async-periodic designs only"):
        rnd.write(rnd.amap.address(Region.TIMER, 0), 3)
    per.write(per.amap.period(5), 0x12345)  # 16-bit registers keep the low bits
    per.write(per.amap.phase(5), 7)
    assert per.read(per.amap.period(5)) == 0x2345 and per.read(per.amap.phase(5)) == 7
    with pytest.raises(AddressError, match="slots 0 .PERIOD. and 1 .PHASE. only"):
        per.write(per.amap.period(5) + 2, 1)
    rnd.write(rnd.amap.enable_seed(2, 1), 0xABCD)  # word 1 of p-bit 2's enable generator
    assert int(rnd.image.enable_seeds[2]) >> 32 == 0xABCD
    with pytest.raises(AddressError, match="seed word 4 >= 4"):
        rnd.write(rnd.amap.seed(0, 4), 1)
    with pytest.raises(AddressError, match="seed word 2 >= 2"):
        chrom.write(chrom.amap.seed(0, 2), 1)


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
def test_array_model_follows_the_model_through_register_writes(schedule):
    """The emulator's array: load, run, change ENABLE / PERIOD mid-run, run on; equals the cycle
    model given the same changes (PERIOD takes effect at each p-bit's next reload)."""
    c = glass(8, seed=2)
    design = HardwareDesign(schedule=schedule, read_latency=1)
    kw = {"p": 0.4} if schedule == "async-random" else {"period": [3, 4, 5, 6, 3, 4, 5, 6]}
    arr = ArrayModel(c, design)
    for a, d in load_writes(c, design, 5, **kw):
        arr.write(a, d)
    got = [arr.run(40)]
    seeds = derive_seeds(5, c.n, design.rng, replicas=1)
    if schedule == "async-random":
        m = HardwareMachine(c, design, seeds, enable_seeds=derive_enable_seeds(5, seeds),
                            enable=enable_threshold(0.4))  # fmt: skip
        arr.write(arr.amap.register(Register.ENABLE), 3000)
        assert arr.read(arr.amap.register(Register.ENABLE)) == 3000
        m.run(40)
        m.set_enable(3000)
    else:
        m = HardwareMachine(c, design, seeds, period=kw["period"],
                            phase=derive_phases(5, kw["period"]))  # fmt: skip
        arr.write(arr.amap.period(2), 9)
        m.run(40)
        m.set_periods([3, 4, 9, 6, 3, 4, 5, 6])
    got.append(arr.run(60))
    want = m.run(60)[0]
    np.testing.assert_array_equal(got[1], want)
    assert arr.status() & 0xFFFF == 0  # no colours


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
def test_board_session_streams_async_designs(schedule):
    c = models.lattice_2d(3, 3, J=0.5, h=0.1, beta=0.8)
    design = HardwareDesign(schedule=schedule, read_latency=2)
    board = make_board(c, design, max_frame=64)
    host = MiniHost(board, c.n)
    host.write(load_writes(c, design, 3, **VALUES[schedule]))
    host.send(P.Run(90, 3, P.RUN_SAMPLES))
    host.step_all(window=3)
    spins, _ = host.samples()
    np.testing.assert_array_equal(
        spins, simulate_cycles(c, design, 3, 90, **VALUES[schedule])[2::3]
    )
    reply = host.send(P.Ident(P.PROTOCOL_VERSION))
    assert decode_design(reply.format_word, reply.design_word) == design


# -- method="hardware" ------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["async-random", "async-periodic"])
def test_runner_replicas_match_simulate_cycles(schedule):
    c = glass(7, seed=3)
    kw = {"p": 0.25} if schedule == "async-random" else {"period": [3, 4, 5, 4, 3, 4, 5]}
    run = HardwareRunner(c, replicas=3, seed=8, schedule=schedule, read_latency=1, **kw)
    per = run.machine.cycles_per_step
    assert per == 4 and run.step_unit == "async step"
    d = run.draw(5, thin=2)
    design = HardwareDesign(schedule=schedule, read_latency=1)
    seeds = derive_seeds(8, c.n, design.rng, replicas=3)
    for r in range(3):
        extra = {}
        if schedule == "async-random":
            extra["enable_seeds"] = derive_enable_seeds(8, seeds)[r]
        else:
            extra["phase"] = derive_phases(8, kw["period"], replicas=3)[r]
        full = simulate_cycles(c, design, seeds[r], 10 * per, **kw, **extra)
        np.testing.assert_array_equal(d[r], full[2 * per - 1 :: 2 * per])
    assert run.settings["design"]["schedule"] == schedule
    # chunking is invisible
    a = HardwareRunner(c, replicas=2, seed=1, schedule=schedule, **kw)
    b = HardwareRunner(c, replicas=2, seed=1, schedule=schedule, **kw)
    x = np.concatenate([a.draw(3, 2), a.draw(2, 2)], axis=1)
    b.advance(1)
    y = b.draw(9, 1)
    np.testing.assert_array_equal(x, np.concatenate([y[:, 0:1], y[:, 2::2]], axis=1))


def test_runner_uses_the_models_fixed_point_spec():
    """A behaviour change: the model's own spec runs unless a design or spec is given."""
    spec = FixedPointSpec(weight_bits=6, frac_bits=2, input_bits=8, acc_bits=12, rng_bits=12)
    c = models.ring(5, J=0.6, h=-0.2).replace(fixed_point=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing is overridden
        run = HardwareRunner(c, seed=1)
    assert run.design.fixed_point == spec
    assert HardwareRunner(c, seed=1, design="published").design.fixed_point == spec
    other = FixedPointSpec.default()
    for kw in ({"fixed_point": other}, {"design": HardwareDesign()}):  # told otherwise: warned
        with pytest.warns(UserWarning, match="the design's spec is what runs"):
            assert HardwareRunner(c, seed=1, **kw).design.fixed_point == other
    assert HardwareRunner(models.ring(5), seed=1).design == HardwareDesign.default()


def test_runner_wrong_options():
    c = models.ring(4)
    with pytest.raises(ValueError, match="schedule must be"):
        HardwareRunner(c, seed=1, schedule="poisson")
    with pytest.raises(ValueError, match="p is a run-time value"):
        HardwareRunner(c, seed=1, p=0.5)
    with pytest.raises(ValueError, match="enable_seeds: schedule 'chromatic'"):
        HardwareRunner(c, seed=1, enable_seeds=3)


# -- statistics: the exact stationary distribution of the quantised chain -----------------------

R_STAT = 20_000
RING5 = models.ring(5, J=0.6, h=-0.2)


def final_states(c, p, seed, steps=40):
    """One draw per replica after burn-in: independent draws of the async-random machine."""
    init = np.random.default_rng(seed).choice([-1, 1], (R_STAT, c.n)).astype(np.int8)
    run = HardwareRunner(c, replicas=R_STAT, seed=seed, schedule="async-random", p=p,
                         initial=init)  # fmt: skip
    run.advance(steps)
    return run.draw(1)[:, 0]


def chi_square_pvalue(spins, p):
    counts = np.bincount(state_index(spins), minlength=len(p))
    e = p * len(spins)
    small = e < 5
    o = np.r_[counts[~small], counts[small].sum()]
    e = np.r_[e[~small], e[small].sum()]
    if e[-1] == 0:
        o, e = o[:-1], e[:-1]
    return stats.chi2.sf(((o - e) ** 2 / e).sum(), len(e) - 1)


def kl_with_error(spins, ref, groups=20):
    """Plug-in KL(empirical || ref) and its jackknife standard error over groups of draws."""
    idx = state_index(spins)
    N = len(ref)

    def kl(sel):
        q = np.bincount(idx[sel], minlength=N) / sel.sum()
        return kl_divergence(q, ref)

    lab = np.arange(len(idx)) % groups
    full = kl(np.ones(len(idx), bool))
    loo = np.array([kl(lab != g) for g in range(groups)])
    return full, math.sqrt((groups - 1) / groups * ((loo - loo.mean()) ** 2).sum())


def peretto(c, spec):
    """Stationary distribution of synchronous (Little) heat-bath dynamics with symmetric J:
    pi(x) ~ exp(beta h.x) prod_i cosh(beta I_i(x)) (Peretto 1984), for the effective couplings."""
    q = c.quantized(spec)
    j, h, beta = q.effective_couplings()
    eff = Couplings(c.indptr, c.indices, j, h, beta)
    S = all_states(c.n).astype(float)
    fields = S @ eff.to_scipy().toarray()  # without h
    logw = beta * S @ h + np.log(np.cosh(beta * (fields + h))).sum(axis=1)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def test_p1_reproduces_the_known_strong_bias():
    """p = 1: every p-bit updates every cycle in parallel (Little dynamics). The machine's draws
    follow the exact stationary distribution of its quantised chain, which is Peretto's, not
    Boltzmann's: far outside the sampling error from it."""
    spec = FixedPointSpec.default()
    pi1 = stationary_distribution(async_random_kernel(RING5, 1.0, spec))
    np.testing.assert_allclose(pi1, peretto(RING5, spec), atol=2e-4)
    s = final_states(RING5, 1.0, seed=3)
    assert chi_square_pvalue(s, pi1) > 1e-3
    ref = reference_distribution(RING5, spec)
    kl, err = kl_with_error(s, ref)
    assert kl > 0.3 and kl > 30 * err
    assert chi_square_pvalue(s, ref) < 1e-12


def test_kl_falls_with_p_to_the_quantisation_floor():
    """Sampled KL to the quantised model's Boltzmann distribution falls over four values of p
    (each step many error bars), and at the smallest p equals, within error bars, the KL of as
    many draws from the p -> 0 chain (random-scan Gibbs with the quantised conditionals)."""
    spec = FixedPointSpec.default()
    ref = reference_distribution(RING5, spec)
    ps = [1.0, 0.5, 0.2, 0.05]
    exact_kl = [async_random_kl(RING5, p, spec) for p in ps]
    assert all(a > b for a, b in zip(exact_kl, exact_kl[1:], strict=False))
    sampled = []
    for k, p in enumerate(ps):
        s = final_states(RING5, p, seed=20 + k)
        pi = stationary_distribution(async_random_kernel(RING5, p, spec))
        assert chi_square_pvalue(s, pi) > 1e-3, p
        sampled.append(kl_with_error(s, ref))
    for (a, ea), (b, eb) in zip(sampled, sampled[1:], strict=False):
        assert a - b > 3 * math.hypot(ea, eb), sampled
    floor_pi = stationary_distribution(random_scan_kernel(RING5, spec))
    draws = np.random.default_rng(5).choice(len(floor_pi), R_STAT, p=floor_pi)
    floor_s = (((draws[:, None] >> np.arange(5)) & 1) * 2 - 1).astype(np.int8)
    f, ef = kl_with_error(floor_s, ref)
    (last, el) = sampled[-1]
    assert abs(last - f) < 3 * math.hypot(el, ef), (last, f)
    # Exactly: KL(p) -> the floor as p -> 0, and the floor is the quantisation's alone.
    floor = kl_floor(RING5, spec)
    assert 0 < floor < 1e-6
    assert abs(async_random_kl(RING5, 2**-16, spec) - floor) < 0.05 * floor


# -- the designer's API against direct enumeration --------------------------------------------

SMALL = FixedPointSpec(weight_bits=6, frac_bits=3, input_bits=7, acc_bits=10, rng_bits=6)


def enumerated_kernel(c, spec, p):
    """One cycle of async-random by brute force: every state, every set of acting p-bits, every
    random number of every acting p-bit through pbitsim.fixedpoint.decide (rng_bits small)."""
    q = c.quantized(spec)
    n, N = c.n, 1 << c.n
    S = all_states(n)
    R = np.arange(1 << spec.rng_bits, dtype=np.uint64)
    K = np.zeros((N, N))
    for x in range(N):
        acc = q.input_codes(S[x])  # saturated already
        up = [
            float(np.mean(decide(np.full(len(R), int(acc[i])), q.table, R) > 0)) for i in range(n)
        ]
        for acting in itertools.product([0, 1], repeat=n):
            w = math.prod(p if a else 1 - p for a in acting)
            if w == 0:
                continue
            outcomes = [
                [(S[x, i], 1.0)] if not a else [(1, up[i]), (-1, 1 - up[i])]
                for i, a in enumerate(acting)
            ]
            for combo in itertools.product(*outcomes):
                y = state_index(np.array([v for v, _ in combo]))
                K[x, y] += w * math.prod(pr for _, pr in combo)
    return K


def test_conditionals_and_kernel_against_enumeration():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = models.spin_glass(4, p=0.8, seed=6, field=0.4, beta=0.6)
        q = c.quantized(SMALL)
        cond = quantised_conditionals(c, SMALL)
        R = np.arange(64, dtype=np.uint64)
        for x, s in enumerate(all_states(4)):
            i_codes = saturate_input(q.input_codes(s), SMALL)
            for i in range(4):
                want = np.mean(decide(np.full(64, i_codes[i]), q.table, R) > 0)
                assert cond[x, i] == want
        for p in (1.0, 0.37, 0.01):
            np.testing.assert_allclose(
                async_random_kernel(c, p, SMALL), enumerated_kernel(c, SMALL, p), atol=1e-14
            )


def test_max_enable_probability_against_enumeration():
    """The answer p* = threshold / 2**16: KL <= epsilon there and > epsilon one step above,
    each computed from the brute-force kernel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = models.spin_glass(4, p=0.8, seed=6, field=0.4, beta=0.6)
        ref = reference_distribution(c, SMALL)
        floor = kl_floor(c, SMALL)
        eps = floor + 2e-3
        choice = max_enable_probability(c, eps, SMALL)
        assert 0 < choice.threshold < 65536 and choice.p == choice.threshold / 65536

        def kl_at(th):
            return kl_divergence(
                stationary_distribution(enumerated_kernel(c, SMALL, th / 65536)), ref
            )

        assert kl_at(choice.threshold) <= eps < kl_at(choice.threshold + 1)
        assert choice.cycles_per_step == round(65536 / choice.threshold)
        grid = np.array(choice.grid)
        assert np.all(np.diff(grid[:, 1]) > 0) and grid[0, 1] <= eps < grid[1, 1]
        with pytest.raises(ValueError, match="quantisation floor"):
            max_enable_probability(c, floor / 2, SMALL)
        assert max_enable_probability(c, 10.0, SMALL).threshold == 65536


def test_designer_api_wrong_inputs():
    with pytest.raises(ValueError, match="n <= 10"):
        async_random_kl(models.ring(11), 0.1)
    with pytest.raises(ValueError, match="epsilon must be"):
        max_enable_probability(models.ring(4), 0)
    with pytest.raises(ValueError, match="reference must be"):
        async_random_kl(models.ring(4), 0.1, reference="float")


def test_lfsr_enables_come_in_bursts():
    """docs/hardware-model.md section 7: with the LFSR the next enable number is the window
    shifted by one bit, so a p-bit that acted acts again with probability ~1/2 whatever p;
    with xorshift64, with probability p."""
    from pbitsim.rng import rng_stream

    P = enable_threshold(0.05)
    for kind, want in (("lfsr32-xnor", 0.5), ("xorshift64", 0.05)):
        e = rng_stream(kind, derive_seeds(3, 100, kind), 4000, 16) < P
        k = (e[:, 1:] & e[:, :-1]).sum() / e[:, :-1].sum()
        assert abs(e.mean() - 0.05) < 4 * math.sqrt(0.05 * 0.95 / e.size)
        assert abs(k - want) < 4 * math.sqrt(want * (1 - want) / e[:, :-1].sum())


def test_doc_numbers():
    """The figures quoted in docs/hardware-model.md section 7 (5-p-bit ring, default design)."""
    spec = FixedPointSpec.default()
    got = [round(async_random_kl(RING5, p, spec), 4) for p in (1.0, 0.5, 0.2, 0.1, 0.05)]
    assert got == [0.5432, 0.0357, 0.0037, 0.0008, 0.0002]
    assert f"{kl_floor(RING5, spec):.1e}" == "1.7e-08"
    choice = max_enable_probability(RING5, 1e-3, spec)
    assert (choice.threshold, round(choice.p, 3)) == (7168, 0.109)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_spin_and_seed_writes_with_read_latency(schedule):
    """A SPIN write sets one p-bit's spin and its delayed copies (taken as held for the last L
    cycles); a SEED write changes one generator and no spin history."""
    c = glass(8, seed=5)
    design = HardwareDesign(schedule=schedule, read_latency=2)
    values = VALUES.get(schedule, {})
    arr = ArrayModel(c, design)
    for a, d in load_writes(c, design, 6, **values):
        arr.write(a, d)
    first = arr.run(31)
    want_spin = -int(arr.spins[3])
    arr.write(arr.amap.spin(3), 1 if want_spin > 0 else 0)
    arr.write(arr.amap.seed(1, 0), 0x1234)
    seeds = derive_seeds(6, c.n, design.rng, replicas=1)
    kw = {}
    if schedule == "async-random":
        kw = {"enable_seeds": derive_enable_seeds(6, seeds), "enable": enable_threshold(0.3)}
    elif schedule == "async-periodic":
        kw = {"period": np.full(c.n, 5), "phase": derive_phases(6, np.full(c.n, 5))}
    m = HardwareMachine(c, design, seeds, **kw)
    np.testing.assert_array_equal(m.run(31)[0], first)
    m.set_spin(3, want_spin)
    g = m.generator_states
    g[0, 1] = (int(g[0, 1]) & ~0xFFFFFFFF) | 0x1234
    m.set_generator_states(g)
    np.testing.assert_array_equal(arr.run(40), m.run(40)[0])
