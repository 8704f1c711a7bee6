"""The paths the exact samplers take on large models compute what the small-model paths compute.

* the column kernels copy a large random graph's column into int8 (not float32): the same
  samples (the thresholds lowered here, so that small models take that path);
* the site-vectorised chromatic kernel skips the row pointer when every padded row holds 4
  entries: the same samples as the replica kernel, which always reads it;
* blocks keep their private copies between calls (``Layout.buffers``): splitting a run into
  calls, on a pool of threads, gives the samples of one call on one thread.

Speed is measured in ``benchmarks/bench_large_models.py``, never here.
"""

from __future__ import annotations

import numpy as np
import pytest

import pbitsim
from pbitsim import models
from pbitsim.sim import gibbs
from pbitsim.sim import gibbs_kernels as gk

CASES = {
    "lattice": models.lattice_2d(8, 10, beta=0.5, h=0.1),  # every row 4 entries
    "regular": models.random_regular(60, 3, seed=1, weights="gauss", beta=0.9),  # 3, padded
    "glass": models.spin_glass(24, p=0.4, seed=2, field=0.2),  # rows of 8 and more
}
COLUMN_SCHEMES = ("chromatic", "sequential", "random-scan", "symmetric", "sweep-mixture")


def _draws(c, method, replicas, **kw):
    return pbitsim.sample(c, 6, method=method, replicas=replicas, burn_in=3, thin=2, seed=7, **kw)


def test_column_dtype_narrows_large_columns_with_far_neighbours():
    big, far, near = gk._NARROW_ABOVE + 1, gk._NEAR + 1, gk._NEAR
    assert gk.column_dtype(big, far, gk.KERNEL_SITES) is np.int8
    assert gk.column_dtype(big - 1, far, gk.KERNEL_SITES) is np.float32
    assert gk.column_dtype(big, near, gk.KERNEL_SITES) is np.float32
    assert gk.column_dtype(big, near, gk.KERNEL_RANDOM_SCAN) is np.int8  # jumps anywhere


@pytest.mark.parametrize("method", ["chromatic", "sequential"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_window_is_the_median_range_of_a_blocks_neighbours(name, method):
    c = CASES[name]
    lay = pbitsim.open_runner(c, method, 1, seed=1)._layout
    pos = np.empty(c.n, np.int64)
    pos[lay.site] = np.arange(c.n)
    bstart = lay.arrays[8]
    ranges = []
    for b0, b1 in zip(bstart[:-1], bstart[1:]):
        sites = lay.site[b0:b1]
        q = [pos[j] for i in sites for j in c.indices[c.indptr[i] : c.indptr[i + 1]]]
        if q:
            ranges.append(max(q) - min(q))
    assert lay.window == int(np.median(ranges))


def test_window_tells_a_lattice_from_a_random_graph():
    """A lattice in Cuthill-McKee order reads neighbours near each other (float32 copies of a
    large one), a random graph reads them anywhere (int8 copies)."""
    lattice = pbitsim.open_runner(models.lattice_2d(150), "chromatic", 1, seed=1)._layout
    assert lattice.window <= gk.BLOCK + 4 * 150  # a block's own span and two rows either side
    graph = pbitsim.open_runner(models.random_regular(20000, 3), "chromatic", 1, seed=1)._layout
    assert graph.window > 20000 // 2


@pytest.mark.parametrize("method", COLUMN_SCHEMES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_int8_columns_give_the_float32_samples(monkeypatch, name, method):
    c = CASES[name]
    wide = _draws(c, method, 3)
    monkeypatch.setattr(gk, "_NARROW_ABOVE", 0)
    monkeypatch.setattr(gk, "_NEAR", -1)
    runner = pbitsim.open_runner(c, method, 3, seed=7)
    runner.advance(1)
    assert {b[0].dtype for b in runner._layout.buffers.values()} == {np.dtype(np.int8)}
    narrow = _draws(c, method, 3)
    np.testing.assert_array_equal(wide.spins, narrow.spins)
    np.testing.assert_array_equal(wide.info["energies"], narrow.info["energies"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_site_kernel_agrees_with_replica_kernel(monkeypatch, name):
    """Replica r's samples do not depend on the kernel: the site-vectorised one (1 replica, with
    or without the row pointer) and the replica-vectorised one (16 replicas) agree."""
    c = CASES[name]
    runner = pbitsim.open_runner(c, "chromatic", 1, seed=7)
    ptr = runner._layout.arrays[0]
    assert (ptr[-1] == 4 * c.n) == (name != "glass")  # the uniform path is taken where it should
    one = _draws(c, "chromatic", 1)
    monkeypatch.setattr(gibbs, "_COLUMN_KERNELS_BELOW", 0)
    many = _draws(c, "chromatic", 16)
    np.testing.assert_array_equal(one.spins[0], many.spins[0])


def _addresses(runner) -> dict:
    return {k: (a.ctypes.data, b.ctypes.data) for k, (a, b) in runner._layout.buffers.items()}


@pytest.mark.parametrize("replicas", [6, 64])  # column kernels; replica kernel (blocks of 32)
@pytest.mark.parametrize("name", ["lattice", "glass"])
def test_kept_copies_give_the_one_call_samples(monkeypatch, name, replicas):
    """Four calls on a pool of 2 threads (blocks copying into kept buffers) end where one call on
    the calling thread (one block in place, or copies made for it) ends."""
    c = CASES[name]
    monkeypatch.setattr(gibbs, "_MAX_BLOCK_WIDTH", 32)
    monkeypatch.setattr(gibbs, "_ONE_THREAD_BELOW", 0)
    split = pbitsim.open_runner(c, "chromatic", replicas, seed=3)
    bounds, _ = split._plan(2)
    assert len(bounds) - 1 >= 2
    monkeypatch.setattr(split, "_threads", lambda steps: 2)
    for steps in (1, 3, 2, 4):
        split.advance(steps)
    kept = _addresses(split)
    assert kept  # the blocks copied into buffers
    split.advance(1)
    assert _addresses(split) == kept  # and kept them
    whole = pbitsim.open_runner(c, "chromatic", replicas, seed=3)
    monkeypatch.setattr(whole, "_threads", lambda steps: 1)
    whole.advance(11)
    np.testing.assert_array_equal(split._S, whole._S)
    np.testing.assert_array_equal(split._rng, whole._rng)


SPLIT_CASES = {
    "lattice": models.lattice_2d(64, 48, beta=0.45, h=0.05),  # 2 classes of 3 blocks
    "regular": models.random_regular(5000, 3, seed=4, weights="gauss", beta=0.8),  # 3+ colours
}


@pytest.mark.parametrize(
    "replicas, kw",
    [
        (16, {}),  # a multiple of 8 rows: word-at-a-time recording
        (20, {}),  # ragged rows
        (12, {"betas": [0.3, 0.6, 1.0], "swap_every": 2}),  # 36 rows of tempering
    ],
)
@pytest.mark.parametrize("name", sorted(SPLIT_CASES))
def test_threads_sharing_a_class_give_the_one_thread_samples(monkeypatch, name, replicas, kw):
    """A large chromatic model's threads share each colour class's positions (run_split, the
    threshold lowered so that a small model takes it): draws, energies, walkers, swap counts and
    the final state equal those of one thread running every replica."""
    c = SPLIT_CASES[name]
    calls = []
    run_split = gk.run_split

    def spy(*args, **kwargs):
        calls.append(args[2])
        return run_split(*args, **kwargs)

    monkeypatch.setattr(gibbs, "_SPLIT_SITES_ABOVE", 0)
    monkeypatch.setattr(gk, "run_split", spy)

    def runs(threads):
        r = pbitsim.open_runner(c, "chromatic", replicas, seed=9, **kw)
        monkeypatch.setattr(r, "_threads", lambda steps: threads)
        r.advance(2)
        a = r.draw(3, thin=2)
        info = r.draw_info()
        b = r.draw(2)
        return r, a, b, info

    split, a2, b2, info2 = runs(2)
    assert calls and max(len(runs) for parts in calls for runs in parts) == 2  # really shared
    calls.clear()
    whole, a1, b1, info1 = runs(1)
    assert not calls
    np.testing.assert_array_equal(a2, a1)
    np.testing.assert_array_equal(b2, b1)
    assert sorted(info2) == sorted(info1)
    for key in info1:
        np.testing.assert_array_equal(info2[key], info1[key])
    np.testing.assert_array_equal(split._S, whole._S)
    np.testing.assert_array_equal(split._rng, whole._rng)
    assert split.info() == whole.info()


def test_site_parts_cut_each_class_into_runs_of_whole_blocks():
    bstart = np.array([0, 1024, 2048, 2500, 3524, 4000])  # class 0: 3 blocks, class 1: 2
    parts = gk.site_parts(bstart, (0, 2500, 4000), 2)
    assert [[list(r) for r in runs] for runs in parts] == [
        [[0, 1024], [1024, 2048, 2500]],
        [[2500, 3524], [3524, 4000]],
    ]
    one = gk.site_parts(bstart, (0, 2500, 4000), 4)  # fewer blocks than threads: one each
    assert [len(runs) for runs in one] == [3, 2]


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (1001, 64), (7, 3, 9)])
@pytest.mark.parametrize("dtype", [np.int8, np.uint32, np.uint64, np.float32])
def test_aligned_arrays_start_on_a_cache_line(shape, dtype):
    from pbitsim.sim import aligned

    a = aligned.zeros(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert (a.ctypes.data % aligned.LINE == 0 or a.size == 0) and not a.any()
    src = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    b = aligned.copy(src.T.T)
    np.testing.assert_array_equal(b, src)
    assert (b.ctypes.data % aligned.LINE == 0 or b.size == 0) and b.flags.c_contiguous


def test_runner_and_lane_state_rows_start_on_cache_lines():
    """A row of 64 replicas' spins is one 64-byte line only if the array starts on one (numpy
    starts a large array 16 bytes into a page)."""
    from pbitsim.sampling import get_method
    from pbitsim.sim import aligned

    c = models.lattice_2d(40, 50, beta=0.4)
    r = pbitsim.open_runner(c, "chromatic", 64, seed=1)
    assert r._S.ctypes.data % aligned.LINE == 0 and r._rng.ctypes.data % aligned.LINE == 0
    hw = get_method("hardware")(c, replicas=64, seed=1)
    hw.advance(1)
    lanes = hw.machine._lanes
    for arrays in (lanes.H, lanes.G):
        assert all(a.ctypes.data % aligned.LINE == 0 for a in arrays)
