"""The fast paths of the samplers compute what the plain rules compute, bit for bit.

* the exact schemes: a call on several threads (blocks on a thread pool) and a short call on the
  calling thread alone give the same samples;
* the asynchronous model: its timing wheel, side-by-side draws, rational-tanh decisions and
  table of waiting times give the samples of a plain transcription of the model's rules (every
  p-bit's firing time compared at every tick, uniforms drawn one after the other, math.tanh and
  math.log every time), and the shortcuts agree with the formulas they replace where it is
  hardest: next to the thresholds.

Speed is measured in ``benchmarks/``, never here.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import pbitsim
from pbitsim import models
from pbitsim import rng as prng
from pbitsim.sim import async_, gibbs, rows
from pbitsim.sim.async_ import AsyncRunner

# -- exact schemes: threads ---------------------------------------------------------------------

SCHEMES = ("sequential", "random-scan", "chromatic")
MODELS = {
    "lattice": models.lattice_2d(6, 10, beta=0.5, h=0.1),
    "dense": models.spin_glass(30, p=0.4, seed=2, field=0.2),
}


def _samples(c, method, threads, **kw):
    numba.set_num_threads(threads)
    try:
        return pbitsim.sample(c, 12, method=method, replicas=40, burn_in=5, thin=3, seed=5, **kw)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("pt", [False, True])
@pytest.mark.parametrize("method", SCHEMES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_thread_pool_gives_the_one_thread_samples(monkeypatch, name, method, pt):
    """Every call on 2 threads (the short-call rule switched off) equals every call on one."""
    c, kw = MODELS[name], ({"betas": [0.3, 0.6, 1.0], "swap_every": 2} if pt else {})
    monkeypatch.setattr(gibbs, "_ONE_THREAD_BELOW", 0)
    pooled = _samples(c, method, 2, **kw)
    runner = pbitsim.open_runner(c, method, 40, seed=5, **kw)
    assert runner._threads(1) == 2 and len(runner._plan(2)[0]) - 1 >= 2  # really split
    single = _samples(c, method, 1, **kw)
    np.testing.assert_array_equal(pooled.spins, single.spins)
    np.testing.assert_array_equal(pooled.info["energies"], single.info["energies"])


def test_short_calls_stay_on_the_calling_thread():
    c = models.lattice_2d(10)
    runner = pbitsim.open_runner(c, "chromatic", 64, seed=1)
    assert runner._threads(10) == 1  # a PCD step of a 100-spin model: no thread is woken
    assert runner._threads(10**6) == numba.get_num_threads()


def test_block_functions_are_one_per_kernel():
    from pbitsim.sim import gibbs_kernels as gk

    kernels = (gk.KERNEL_REPLICAS, gk.KERNEL_COLUMNS, gk.KERNEL_SITES, gk.KERNEL_RANDOM_SCAN)
    functions = [gk._block_function(k) for k in kernels]
    assert len({id(f) for f in functions}) == len(kernels)
    assert gk._block_function(gk.KERNEL_SITES) is functions[2]  # made once


# -- the asynchronous model: a plain transcription of its rules ---------------------------------


def _mix(z: int) -> int:
    return int(prng.mix64(np.array([z], np.uint64))[0])


def _decision(csr, beta, old, i, u):
    """The model's new spin of p-bit i from the old spins ``old`` and its uniform u, as
    written: the float64 field in the CSR's order, math.tanh."""
    ip, ix, dv, h = csr
    field = h[i]
    for q in range(ip[i], ip[i + 1]):
        field += dv[q] * old[ix[q]]
    return 1 if u < 0.5 * (1.0 + math.tanh(beta * field)) else -1


def reference_async(
    c,
    replicas,
    seed,
    ticks,
    stride,
    p=0.1,
    mode="poisson",
    period=8.0,
    jitter=0.5,
    delay=0,
    with_counts=False,
):
    """The module docstring's rules, written out: every tick, every p-bit's time is compared
    (index order); each firing draws its spin's uniform, then its waiting time's, from the
    replica's splitmix64 stream; math.tanh and math.log every time. With ``with_counts``, also
    each p-bit's number of firings, (replicas, n)."""
    n = c.n
    csr = (c.indptr, c.indices, c.data, c.h)
    per = np.broadcast_to(np.asarray(period, float), (n,))
    out = np.empty((replicas, ticks // stride, n), np.int8)
    counts = np.zeros((replicas, n), np.int64)
    for r in range(replicas):
        state = prng.splitmix64(seed, r)

        def uniform():
            nonlocal state
            state = (state + prng.GOLDEN64) % 2**64
            return (_mix(state) >> 11) * 2.0**-53

        def wait(tau, t, i):
            if mode == "poisson":
                if p >= 1.0:
                    return t + 1.0
                return t + 1.0 + math.floor(math.log(1.0 - uniform()) / math.log(1.0 - p))
            step = per[i]
            if jitter > 0.0:
                u1, u2 = uniform(), uniform()
                step += jitter * math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
            return max(tau + step, float(t))

        nxt = np.empty(n)
        for i in range(n):
            nxt[i] = wait(0.0, 0, i) if mode == "poisson" else uniform() * per[i]
        hist = [np.full(n, -1, np.int8) for _ in range(delay + 1)]
        for t in range(1, ticks + 1):
            old = hist[t % (delay + 1)]  # S_{t-1-delay} (S_0 early on)
            fired = [i for i in range(n) if nxt[i] <= t]
            new = hist[(t - 1) % (delay + 1)].copy()
            for i in fired:
                new[i] = _decision(csr, c.beta, old, i, uniform())
                nxt[i] = wait(nxt[i], t, i)
                counts[r, i] += 1
            hist[t % (delay + 1)] = new
            if t % stride == 0:
                out[r, t // stride - 1] = new
    return (out, counts) if with_counts else out


def reference_async_ticks(c, replicas, seed, ticks, stride, p=0.1, delay=0):
    """Stream layout 2 written out: each tick, from index -1, a geometric gap
    floor(log(1 - u) / log(1 - p)) >= 0 after the last firing, then (if it lands below n) that
    p-bit's decision, until a gap passes n - 1; math.tanh and math.log every time. Returns the
    recordings, each p-bit's firings (replicas, n) and how many gaps of each replica fall in a
    cell of the table of waits that does not settle them."""
    n = c.n
    csr = (c.indptr, c.indices, c.data, c.h)
    table = async_.wait_table(p)
    out = np.empty((replicas, ticks // stride, n), np.int8)
    counts = np.zeros((replicas, n), np.int64)
    misses = np.zeros(replicas, np.int64)
    for r in range(replicas):
        state = prng.splitmix64(seed, r)

        def output():
            nonlocal state
            state = (state + prng.GOLDEN64) % 2**64
            return _mix(state)

        hist = [np.full(n, -1, np.int8) for _ in range(delay + 1)]
        for t in range(1, ticks + 1):
            old = hist[t % (delay + 1)]
            new = hist[(t - 1) % (delay + 1)].copy()
            i = -1
            while True:
                z = output()
                misses[r] += table[z >> (64 - async_._WAIT_BITS)] < 0
                i += 1 + math.floor(math.log(1.0 - (z >> 11) * 2.0**-53) / math.log(1.0 - p))
                if i >= n:
                    break
                new[i] = _decision(csr, c.beta, old, i, (output() >> 11) * 2.0**-53)
                counts[r, i] += 1
            hist[t % (delay + 1)] = new
            if t % stride == 0:
                out[r, t // stride - 1] = new
    return out, counts, misses


@pytest.mark.parametrize(
    "options",
    [
        {"p": 0.1},
        {"p": 0.02},
        {"p": 1.0},
        {"p": 0.3, "delay": 2},
        {"mode": "periodic", "period": 5.0, "jitter": 0.7},
        {"mode": "periodic", "period": 3.0, "jitter": 0.0},
    ],
)
def test_async_matches_a_plain_transcription_of_its_rules(options):
    c = models.spin_glass(9, p=0.5, seed=4, field=0.3, beta=1.5)
    run = AsyncRunner(c, replicas=2, seed=21, stream_layout=1, **options)
    ticks, stride = 6 * run.ticks_per_step, run.ticks_per_step
    got = run.draw(6)
    kw = {k: v for k, v in options.items()}
    np.testing.assert_array_equal(got, reference_async(c, 2, 21, ticks, stride, **kw))


def _star(n):
    """A hub coupled to n - 1 leaves: padding every row to the hub's degree would cost n times
    the couplings, so its fields are summed over the CSR rows."""
    return pbitsim.Couplings.from_edges(
        n, [(0, j, 0.4 * (-1) ** j) for j in range(1, n)], h=0.2 * np.cos(np.arange(n)), beta=1.3
    )


@pytest.mark.parametrize("p", [0.1, 0.9])
@pytest.mark.parametrize("name", ["lattice", "star"])
def test_async_long_run_counts_and_laps(monkeypatch, name, p):
    """Many laps of the timing wheel (a small one: at p = 0.1 most waits pass through the
    overflow list), counts carried over the 8-bit counters' flushes (every 255 ticks: at p = 0.9
    a p-bit fires about 300 times in the last call), calls of uneven lengths: samples and firing
    counts equal the transcription's."""
    c = models.lattice_2d(3, 4, beta=0.7, h=0.1) if name == "lattice" else _star(9)
    nbr = async_.padded_rows(c)[0]
    assert (nbr.shape[0] == c.n) == (name == "lattice")  # both ways of summing a field
    run = AsyncRunner(c, replicas=2, seed=13, p=p, stream_layout=1)
    tps = run.ticks_per_step
    monkeypatch.setattr(async_, "wheel_slots", lambda mean, n: 8)
    got = np.concatenate([run.draw(ticks // tps) for ticks in (70, 10, 330)], axis=1)
    want, counts = reference_async(c, 2, 13, 410, tps, p=p, with_counts=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run._counts, counts)
    assert counts.max() > 300 or p < 0.5  # the flushes are needed
    np.testing.assert_allclose(run.info()["updates_per_step"], counts.mean(axis=0) / (410 / tps))


def test_padded_rows_hold_the_csr_rows_in_order():
    c = models.spin_glass(11, p=0.4, seed=3, field=0.2)
    nbr, w = async_.padded_rows(c)
    assert nbr.dtype == np.uint32 and w.dtype == np.float64
    degree = np.diff(c.indptr)
    width = -(-degree.max() // 4) * 4  # a multiple of 4 entries, summed 4 terms at a time
    assert nbr.shape == w.shape == (c.n, width)
    for i in range(c.n):
        row = slice(c.indptr[i], c.indptr[i + 1])
        np.testing.assert_array_equal(nbr[i, : degree[i]], c.indices[row])
        np.testing.assert_array_equal(w[i, : degree[i]], c.data[row])
        assert np.all(nbr[i, degree[i] :] == i) and np.all(w[i, degree[i] :] == 0.0)
    assert async_.padded_rows(_star(9))[0].shape == (0, 0)


@pytest.mark.parametrize("width", [None, 12])
@pytest.mark.parametrize("pad", [None, -1])
def test_one_builder_pads_rows_by_position(width, pad):
    """pbitsim.sim.rows.padded_rows, which the hardware model's kernels (rows of their own
    multiple of 4) and the asynchronous sampler (one width) read: row k is CSR row order[k] in
    the CSR's order, then zero weights reading ``pad`` or the row's own index."""
    c = models.spin_glass(11, p=0.4, seed=3, field=0.2)
    order = np.random.default_rng(5).permutation(c.n)
    ptr, nbr, w = rows.padded_rows(c.indptr, c.indices, c.data, order, np.float32, width, pad)
    assert w.dtype == np.float32 and nbr.dtype == np.int64
    degree = np.diff(c.indptr)[order]
    sizes = np.diff(ptr)
    assert np.all(sizes % 4 == 0) and np.all(sizes >= np.maximum(degree, 1))
    if width is None:
        assert np.all(sizes < np.maximum(degree, 1) + 4)  # no more than one group's padding
    else:
        assert np.all(sizes == width)
    for k, i in enumerate(order):
        got = slice(ptr[k], ptr[k] + degree[k])
        np.testing.assert_array_equal(nbr[got], c.indices[c.indptr[i] : c.indptr[i + 1]])
        np.testing.assert_array_equal(w[got], c.data[c.indptr[i] : c.indptr[i + 1]].astype(w.dtype))
        padding = slice(ptr[k] + degree[k], ptr[k + 1])
        assert np.all(w[padding] == 0) and np.all(nbr[padding] == (i if pad is None else pad))
    with pytest.raises(ValueError, match="multiple of 4"):
        rows.padded_rows(c.indptr, c.indices, c.data, order, np.float64, 10)
    with pytest.raises(ValueError, match="largest degree"):
        rows.padded_rows(c.indptr, c.indices, c.data, order, np.float64, 4)


def test_sign_of_a_zero_field_decides_nothing():
    """Padding adds 0.0 * s, which can turn a field of -0.0 into +0.0: both decide alike, by the
    rational tanh and by the rule as written, for uniforms on either side of 1/2."""
    for k in (-(10**12), -1, 0, 1, 10**12):
        u = (2**52 + k) * 2.0**-53
        assert async_._decide_fast(u, 0.0) == async_._decide_fast(u, -0.0)
        assert (u < 0.5 * (1.0 + math.tanh(0.0))) == (u < 0.5 * (1.0 + math.tanh(-0.0)))


def test_async_fallbacks_run_and_agree():
    """Strong couplings put many decisions next to the rational tanh's margin and p = 0.02 many
    waits into cells that straddle an integer: both exact paths are taken, and the samples still
    equal the transcription's."""
    c = models.spin_glass(8, p=0.7, seed=7, field=0.1, beta=9.0)
    run = AsyncRunner(c, replicas=3, seed=5, p=0.02, stream_layout=1)
    got = run.draw(4)
    assert run._exact[:, 1].sum() > 0  # waits recomputed with math.log
    np.testing.assert_array_equal(got, reference_async(c, 3, 5, 4 * 50, 50, p=0.02))


@pytest.mark.parametrize(
    "p, delay, calls",
    [(0.1, 0, (3, 1, 5)), (0.02, 0, (2, 1)), (0.3, 2, (4, 2)), (0.9, 0, (40, 1, 330))],
)
@pytest.mark.parametrize("name", ["glass", "lattice", "star"])
def test_async_ticks_layout_matches_its_transcription(name, p, delay, calls):
    """Stream layout 2 (the poisson default): samples, firing counts (through the 8-bit
    counters' flushes at p = 0.9) and the count of waits computed with math.log (p = 0.02: many
    cells straddle an integer; the batch drawn past a tick's end must not count) equal the
    transcription's, on padded rows, on CSR rows (the star) and over calls of uneven lengths."""
    c = {
        "glass": models.spin_glass(9, p=0.5, seed=4, field=0.3, beta=1.5),
        "lattice": models.lattice_2d(3, 4, beta=0.7, h=0.1),
        "star": _star(9),
    }[name]
    run = AsyncRunner(c, replicas=2, seed=21, p=p, delay=delay)
    assert run.stream_layout == 2 and run.settings["stream_layout"] == 2
    tps = run.ticks_per_step
    got = np.concatenate([run.draw(k) for k in calls], axis=1)
    want, counts, misses = reference_async_ticks(c, 2, 21, sum(calls) * tps, tps, p, delay)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run._counts, counts)
    np.testing.assert_array_equal(run._exact[:, 1], misses)
    assert misses.sum() > 0 or p > 0.02  # the exact path was taken
    assert counts.max() > 255 or p < 0.9  # so were the flushes


def test_layouts_share_the_stream_at_p_one():
    """p = 1: every p-bit fires every tick and no wait is drawn; firing k's uniform is output
    k + 1 in both layouts, so they give the same samples."""
    c = models.spin_glass(8, p=0.6, seed=2, field=0.2)
    a = AsyncRunner(c, replicas=3, seed=4, p=1.0, stream_layout=1).draw(7)
    b = AsyncRunner(c, replicas=3, seed=4, p=1.0).draw(7)
    np.testing.assert_array_equal(a, b)
    c2 = AsyncRunner(c, replicas=3, seed=4, p=0.5, stream_layout=1).draw(7)
    assert not np.array_equal(c2, AsyncRunner(c, replicas=3, seed=4, p=0.5).draw(7))


def test_decision_shortcut_agrees_next_to_the_threshold():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 3, 4000), [0.0, -0.0, 7.9, 8.5, -30.0, 1e300, -1e300]])
    settled = 0
    for xi in x:
        q = 0.5 * (1.0 + math.tanh(xi))
        grid = round(q * 2**53)
        # uniforms at q, a few grid points off, and on either side of the 1e-6 margin (9e9 points)
        for du in (-40, -1, 0, 1, 40, -(10**9), 10**9, -(10**11), 10**11, -(10**13), 10**13):
            k = min(max(grid + du, 0), 2**53 - 1)
            u = k * 2.0**-53
            fast = async_._decide_fast(u, xi)
            exact = 1 if u < 0.5 * (1.0 + math.tanh(xi)) else -1
            if fast != 0:
                settled += 1
                assert fast == exact, (u, xi)
    assert settled > 0.3 * 11 * len(x)  # the shortcut settles all but the closest


@pytest.mark.parametrize("p", [0.5, 0.1, 0.02, 1e-4])
def test_wait_table_agrees_with_the_formula(p):
    table = async_.wait_table(p)
    if p >= 0.01:  # for small p a cell spans several waits: the formula runs instead
        assert (table >= 0).mean() > 0.5
    lp = math.log(1.0 - p)
    top = 64 - async_._WAIT_BITS
    rng = np.random.default_rng(1)
    cells = np.flatnonzero(table >= 0)
    # both ends of every settled cell and random draws inside it
    lows = cells.astype(np.uint64) << np.uint64(top)
    highs = lows | np.uint64((1 << top) - 1)
    inside = lows | rng.integers(0, 1 << top, len(cells), dtype=np.uint64)
    for z in np.concatenate([lows, highs, inside]).tolist():
        u = (z >> 11) * 2.0**-53
        assert table[z >> top] == math.floor(math.log(1.0 - u) / lp), (p, z)


def test_wheel_size_never_changes_samples(monkeypatch):
    c = models.random_regular(40, 3, seed=2, beta=0.8)
    runs = []
    for slots in (8, 64):
        monkeypatch.setattr(async_, "wheel_slots", lambda mean, n, s=slots: s)
        runs.append(AsyncRunner(c, replicas=2, seed=3, p=0.01, stream_layout=1).draw(3))
    np.testing.assert_array_equal(*runs)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("layout", async_.STREAM_LAYOUTS)
def test_async_threads_never_change_samples(monkeypatch, layout):
    c = models.spin_glass(12, seed=1, field=0.2)
    monkeypatch.setattr(async_, "_ONE_THREAD_BELOW", 0)
    a = AsyncRunner(c, replicas=5, seed=8, p=0.2, stream_layout=layout).draw(10)
    numba.set_num_threads(1)
    try:
        b = AsyncRunner(c, replicas=5, seed=8, p=0.2, stream_layout=layout).draw(10)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("m", [8, 64, 128, 192])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 13, 100])
def test_recordings_move_every_byte_where_the_plain_rule_puts_it(m, n):
    """out[row, d, i] = S[pos[i], j] for every lane j (row = chain * K + its rung): the replica
    kernel's recordings (8 x 8 word tiles, or 64-lane shuffles with ragged groups of 4, 2 and 1
    sites) against that rule written out, with tempering's row permutation."""
    from pbitsim.sim import gibbs_kernels as gk

    rng = np.random.default_rng(n * 1000 + m)
    K = 4 if m % 4 == 0 else 1
    S = rng.integers(-128, 128, (n + 1, m)).astype(np.int8)  # every byte value, not just +-1
    pos = rng.permutation(n).astype(np.int64)
    temp = np.concatenate([rng.permutation(K) for _ in range(m // K)]).astype(np.int32)
    e = rng.normal(size=m)
    k = 3
    rows = np.arange(m) // K * K + temp
    want = np.full((m, k, n), 99, np.int8)
    want[rows, 1, :] = S[pos].T
    recorders = [gk._record_lanes] + ([gk._record_wide] if m % 64 == 0 else [])
    for record in recorders:
        out = np.full((m, k, n), 99, np.int8)
        out_e, out_w = np.zeros((m, k)), np.zeros((m, k), np.int32)
        record(S, pos, 0, K, temp, e, 1, out, out_e, out_w)
        np.testing.assert_array_equal(out, want)  # draws 0 and 2 untouched
        np.testing.assert_array_equal(out_e[rows, 1], e)
        np.testing.assert_array_equal(out_w[rows, 1], np.arange(m) % K)


def test_loaded_values_fill_the_layout_as_a_fresh_one():
    """Runner.load writes J and h into the layout in place (one compiled call): the value
    arrays then equal those of a layout built from the new couplings, padding included."""
    c = models.spin_glass(13, p=0.5, seed=4, field=0.3)
    rng = np.random.default_rng(1)
    new = c.replace(data=c.data * 1.7, h=rng.normal(size=c.n))
    held = pbitsim.open_runner(c, "chromatic", 2, seed=0)
    held.load(new)
    fresh = pbitsim.open_runner(new, "chromatic", 2, seed=0)
    for a, b in zip(held._layout.arrays, fresh._layout.arrays):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert np.any(held._layout.arrays[2] != 0) and np.any(held._layout.arrays[3] != 0)


@pytest.mark.parametrize("spins", [np.float32, np.int8])
def test_gathered_fields_give_the_scalar_sums(spins):
    """The site kernel sums a whole group's fields 16 sites at a time with vector gathers
    (:data:`pbitsim.sim.gathers.fields16`); on rows of 4 entries it must decide exactly as the
    scalar sums of the general-row kernel, float32 or int8 column, Gaussian weights and fields."""
    from pbitsim.sim import aligned
    from pbitsim.sim import gibbs_kernels as gk

    c = models.random_regular(2000, 4, seed=5, weights="gauss", beta=1.3)
    c = c.replace(h=np.random.default_rng(2).normal(0, 0.5, c.n))
    runner = pbitsim.open_runner(c, "chromatic", 1, seed=8)
    ptr, nbr, w, h, _, _, _, _, bstart = runner._layout.arrays
    assert gk._uniform_rows(runner._layout.arrays)
    n = c.n
    lanes = np.empty((4, gk.LANES), np.uint32)
    f, res = np.empty(gk.LANES, np.float32), np.empty(gk.LANES, np.float32)
    beta = np.float32(c.beta)
    cols, streams = [], []
    for sweep in (gk._sweep_sites_uniform, gk._sweep_sites_any):
        s = aligned.empty((1, n + 1), spins, tail=3)[0]
        s[:n] = np.where(np.random.default_rng(0).random(n) < 0.5, -1, 1)
        s[n] = 0
        st = runner._rng[:, 0].copy()  # (a column of one: a view would be shared)
        for _ in range(3):
            sweep(s, st, ptr, nbr, w, h, bstart, beta, lanes, f, res)
        cols.append(s.copy())
        streams.append(st)
    np.testing.assert_array_equal(cols[0], cols[1])
    np.testing.assert_array_equal(streams[0], streams[1])
    assert 0.2 < np.mean(cols[0][:n] > 0) < 0.8  # the sweeps ran and decided both ways


@pytest.mark.parametrize("spins", [np.float32, np.int8])
def test_gathered_fields_are_the_scalar_chain_bit_for_bit(spins):
    """Each of the 16 fields equals the scalar chain fma(w3, s3, ... fma(w0, s0, h)) exactly
    (its float32 bits): the order of the multiply-adds is what makes the samples the same."""
    from numba import njit

    from pbitsim.sim import aligned
    from pbitsim.sim import gibbs_kernels as gk
    from pbitsim.sim.gathers import GROUP, fields16

    @njit
    def both(s, nbr, w, h, p0, f):
        fields16(s, nbr, w, h, p0, f, 0)
        g = np.empty(GROUP, np.float32)
        for j in range(GROUP):
            k = 4 * (p0 + j)
            acc = h[p0 + j]
            for e in range(4):
                acc = gk._fma(w[k + e], np.float32(s[nbr[k + e]]), acc)
            g[j] = acc
        return g

    rng = np.random.default_rng(3)
    n = 200
    s = aligned.empty(n + 1, spins, tail=3)
    s[:n] = np.where(rng.random(n) < 0.5, -1, 1)
    s[n] = 0
    nbr = rng.integers(0, n + 1, 4 * n).astype(np.int32)  # the padding row n among them
    # weights of every magnitude, so that each order of the sums rounds differently somewhere
    w = (rng.normal(size=4 * n) * 10.0 ** rng.integers(-6, 7, 4 * n)).astype(np.float32)
    h = (rng.normal(size=n) * 1e3).astype(np.float32)
    f = np.empty(GROUP, np.float32)
    for p0 in range(0, n - GROUP + 1, GROUP):
        want = both(s, nbr, w, h, p0, f)
        np.testing.assert_array_equal(f.view(np.uint32), want.view(np.uint32))
