"""pbitsim.sim.gpu without a GPU: the scalar rules the GPU shares with the CPU, the simulator's
correctly rounded FMA, the stream tables, registration and the error where no GPU is usable.

(The kernels themselves are compared with the CPU bit for bit in ``test_gpu_kernels.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import pbitsim
from pbitsim import models
from pbitsim.sim import async_rules, gpu
from pbitsim.sim import gibbs_kernels as gk
from pbitsim.sim.gibbs import ChromaticRunner


@numba.njit(cache=True)
def _cpu_fma(a, b, c, out):
    """The CPU's fused multiply-add (llvm.fma, what fma32 compiles to), elementwise."""
    for i in range(a.shape[0]):
        out[i] = gk.fma32(a[i], b[i], c[i])


def _bits(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.int32)


def _triples(seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random float32 triples over wide exponents, half of them with c close to -a*b (where
    cancellation exposes the low bits of the product, and double rounding bites)."""
    rng = np.random.default_rng(seed)

    def wide(k):
        return (rng.normal(size=k) * 2.0 ** rng.integers(-20, 20, k)).astype(np.float32)

    a, b, c = wide(count), wide(count), wide(count)
    near = rng.random(count) < 0.5
    p = a.astype(np.float64) * b
    c[near] = (-p[near] * (1 + rng.normal(0, 2.0**-20, near.sum()))).astype(np.float32)
    return a, b, c


def _double_rounding_traps(seed: int, count: int) -> tuple[np.ndarray, ...]:
    """Triples whose exact a * b + c lies just below a float32 midpoint that float64 rounds onto:
    c = u with an odd last bit, a * b = (1 + k 2^-23)(1 - k 2^-23) half an ulp of u = half an
    ulp minus k^2 2^-46 of it. Rounded to float64 first, the sum is the midpoint, and ties to
    even then round up: one ulp above the correctly rounded u."""
    rng = np.random.default_rng(seed)
    u = np.float32(rng.uniform(1, 2, count)).view(np.int32) | 1  # odd last bit
    u = u.view(np.float32) * np.float32(2.0) ** rng.integers(-30, 30, count).astype(np.float32)
    sign = np.where(rng.random(count) < 0.5, -1, 1).astype(np.float32)
    _, e = np.frexp(u)  # |u| in [2^(e-1), 2^e): its ulp is 2^(e-24)
    k = rng.integers(1, 300, count).astype(np.float32)
    a = ((1 + k * np.float32(2.0**-23)) * np.ldexp(np.float32(1), e - 25)).astype(np.float32)
    b = (1 - k * np.float32(2.0**-23)).astype(np.float32)
    return sign * a, b, sign * u


def _cpu(a, b, c) -> np.ndarray:
    want = np.empty_like(a)
    _cpu_fma(a, b, c, want)
    return want


def test_fma32_rounds_once_like_the_cpu():
    for a, b, c in (_triples(0, 4000), _double_rounding_traps(1, 500)):
        got = np.array([gk.fma32(x, y, z) for x, y, z in zip(a, b, c)], np.float32)
        assert np.array_equal(_bits(got), _bits(_cpu(a, b, c)))


def test_fma32_fixes_what_rounding_twice_gets_wrong():
    """The test above has power: both ways of rounding twice miss on some of its triples."""
    a, b, c = _triples(0, 4000)
    simulator = a * b + c  # the CUDA simulator's cuda.fma: a * b rounded, then + c rounded
    assert np.sum(_bits(simulator) != _bits(_cpu(a, b, c))) > 100
    a, b, c = _double_rounding_traps(1, 500)
    via_double = (a.astype(np.float64) * b + c).astype(np.float32)  # a * b exact, + c twice
    assert np.all(_bits(via_double) != _bits(_cpu(a, b, c)))


def test_fma32_special_values():
    inf, nan = np.float32(np.inf), np.float32(np.nan)
    one, big = np.float32(1.0), np.float32(3e38)
    assert gk.fma32(big, big, -inf) == -inf
    assert gk.fma32(big, np.float32(10.0), one) == inf  # overflow in the final rounding
    assert np.isnan(gk.fma32(nan, one, one))
    tiny = np.float32(1e-30)
    assert gk.fma32(tiny, tiny, np.float32(0.0)) == np.float32(1e-60)  # underflows to 0
    assert np.signbit(gk.fma32(np.float32(-0.0), one, np.float32(-0.0)))
    # at the overflow threshold (FLT_MAX + half an ulp ties to infinity) and just below it
    top = np.finfo(np.float32).max
    a = np.array([top, top, -top, top], np.float32)
    b = np.array([1, 1, 1, 1], np.float32)
    c = np.array([2.0**103, 2.0**102, -(2.0**103), -(2.0**103)], np.float32)
    got = [gk.fma32(x, y, z) for x, y, z in zip(a, b, c)]
    assert np.array_equal(_bits(got), _bits(_cpu(a, b, c)))
    assert np.isinf(got[0]) and got[1] == top


def test_plain_rules_run_as_python_like_compiled():
    """What the simulator runs (the rules as Python on numpy scalars) equals the CPU kernels'
    compiled rules: the decision over fields from tiny (subnormal x^2) to saturated."""
    rng = np.random.default_rng(2)
    fields = np.concatenate(
        [rng.normal(0, 3, 1500), [0.0, -0.0, 1e-23, -1e-23, 7.9, -7.9, 40.0, -40.0]]
    ).astype(np.float32)
    betas = rng.uniform(0.05, 3.0, len(fields)).astype(np.float32)
    outs = rng.integers(0, 2**32, len(fields), dtype=np.uint64)
    for f, b, o in zip(fields, betas, outs):
        assert gk.tanh_accept(f, b, o) == gk._accept(f, b, o)
    state = tuple(np.uint64(x) for x in rng.integers(0, 2**32, 4))
    for _ in range(200):
        as_python = gk.xoshiro128p_step(*state)
        compiled = gk._xoshiro(*state)
        assert [int(x) for x in as_python] == [int(x) for x in compiled]
        state = as_python[1:]


def test_async_rules_follow_the_timing_table():
    """counter_tick gives the acting cycles of docs/hardware-model.md 5.2 (T = (3, 2, 4),
    phi = (0, 1, 3)): p-bit i acts at cycles phi_i + 1 + m T_i."""
    period, phase = (3, 2, 4), (0, 1, 3)
    k = list(phase)
    acted = [[] for _ in period]
    for t in range(1, 11):
        for i, T in enumerate(period):
            act, k[i] = async_rules.counter_tick(k[i], (T - 1) & 0xFFFF)
            if act:
                acted[i].append(t)
    assert acted == [[1, 4, 7, 10], [2, 4, 6, 8, 10], [4, 8]]
    # PERIOD 0 counts as 2**16: the counter reloads 65535
    assert async_rules.counter_tick(0, (0 - 1) & 0xFFFF) == (True, 65535)


def test_async_rules_run_as_python_like_compiled():
    """The un-coloured schedules' rules as Python (what the CUDA simulator runs) and compiled
    with numba.njit (as the CPU model compiles them) agree, at the edges of their ranges too."""
    acts = numba.njit(async_rules.enable_acts)
    tick = numba.njit(async_rules.counter_tick)
    steps = numba.njit(async_rules.decision_generator_steps)
    rng = np.random.default_rng(4)
    es = np.r_[rng.integers(0, 1 << 16, 300), 0, 0xFFFF].astype(np.uint64)
    ps = np.r_[rng.integers(0, (1 << 16) + 2, 300), 0, 1 << 16].astype(np.uint64)
    for e, p in zip(es, ps):
        assert acts(e, p) == async_rules.enable_acts(e, p) == (int(e) < int(p))
    for k, reload in zip(rng.integers(0, 3, 200), rng.integers(0, 1 << 16, 200)):
        assert tick(np.int64(k), np.int64(reload)) == async_rules.counter_tick(k, reload)
    for mode in (async_rules.RANDOM, async_rules.PERIODIC):
        for act in (False, True):
            assert steps(mode, act) == async_rules.decision_generator_steps(mode, act)
    # free-running in async-random, with the p-bit's own clock in async-periodic
    assert async_rules.decision_generator_steps(async_rules.RANDOM, False)
    assert not async_rules.decision_generator_steps(async_rules.PERIODIC, False)


def test_stream_tables_cover_every_position_once():
    """Stream s serves first[s], first[s] + 32, ... < end[s]: the positions whose sidx is s,
    and the streams of colour c are cs[c]..cs[c+1]-1."""
    rng = np.random.default_rng(0)
    nv, nh = 1100, 3
    edges = [(i, nv + int(rng.integers(nh)), 0.5) for i in range(nv)]
    coloring = np.r_[np.zeros(nv, int), np.ones(nh, int)]
    c = pbitsim.Couplings.from_edges(nv + nh, edges, coloring=coloring)
    layout = ChromaticRunner(c, 1, 0)._layout
    sizes = [len(x) for x in c.color_classes()]
    first, end, cs = gpu._stream_tables(layout.arrays, sizes)
    sidx = layout.arrays[4]
    served = np.full(c.n, -1)
    for s in range(len(first)):
        pos = np.arange(first[s], end[s], gk.LANES)
        assert np.all(served[pos] == -1)
        served[pos] = s
    assert np.array_equal(served, sidx)
    colour_of_position = np.repeat(np.arange(len(sizes)), sizes)
    for k in range(len(sizes)):
        assert np.all(colour_of_position[first[cs[k] : cs[k + 1]]] == k)
    assert cs[0] == 0 and cs[-1] == layout.n_streams == len(first)
    assert len(first) > 32  # more than one block of lanes in the big colour


def test_gpu_methods_registered():
    names = pbitsim.methods()
    assert {"gpu-chromatic", "gpu-hardware"} <= set(names)
    from pbitsim.sampling import get_method

    assert get_method("gpu-chromatic") is gpu.GpuChromaticRunner
    assert get_method("gpu-hardware") is gpu.GpuHardwareRunner
    assert gpu.GpuChromaticRunner.method_name == "gpu-chromatic"


def _run_without_gpu(prelude: str = "") -> list[str]:
    """Ask for both GPU methods in a fresh process with the simulator off (and CUDA disabled if
    this machine has a GPU); return the error messages."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if Path("/dev/nvidiactl").exists():
        env["NUMBA_DISABLE_CUDA"] = "1"
    code = (
        prelude
        + "import json, pbitsim\n"
        + "from pbitsim import models\n"
        + "from pbitsim.sim.gpu import GpuUnavailableError\n"
        + "for m in ('gpu-chromatic', 'gpu-hardware'):\n"
        + "    try:\n"
        + "        pbitsim.sample(models.ring(5), 2, method=m)\n"
        + "        print(json.dumps('no error'))\n"
        + "    except GpuUnavailableError as e:\n"
        + "        print(json.dumps(str(e)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_no_gpu_and_no_simulator_is_one_clear_error():
    messages = _run_without_gpu()
    assert len(messages) == 2
    for method, msg in zip(("gpu-chromatic", "gpu-hardware"), messages):
        assert "\n" not in msg and method in msg, msg
        assert "CUDA" in msg and "NUMBA_ENABLE_CUDASIM=1" in msg, msg


def test_missing_numba_cuda_is_one_clear_error():
    messages = _run_without_gpu("import sys\nsys.modules['numba_cuda'] = None\n")
    for msg in messages:
        assert "\n" not in msg and "numba-cuda is not installed" in msg and "[gpu]" in msg, msg


def test_gpu_problem_is_none_only_with_a_way_to_run():
    """In this process the simulator is off: gpu_problem names a reason unless a GPU works."""
    problem = gpu.gpu_problem()
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA device: the reason may legitimately be None")
    assert isinstance(problem, str) and problem
    with pytest.raises(gpu.GpuUnavailableError, match="gpu-chromatic"):
        gpu.GpuChromaticRunner(models.ring(4))
