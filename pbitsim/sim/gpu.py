"""GPU samplers: ``method="gpu-chromatic"`` and ``method="gpu-hardware"``, bit-identical to the CPU.

Both register through the ``pbitsim.methods`` entry point and need the ``[gpu]`` extra
(``numba-cuda``) and a CUDA GPU, or Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before
``numba.cuda`` is first imported; it runs the same kernels on the CPU, thread by thread, slowly).
Without either, opening a runner raises :class:`GpuUnavailableError` with one line naming what is
missing.

``gpu-chromatic`` (:class:`GpuChromaticRunner`)
    The chromatic sampler of :mod:`pbitsim.sim.gibbs` with the same layout, streams, options
    (``betas``/``swap_every``, ``beta_schedule``, ``anneal``, ``initial``), life cycle and outputs:
    for the same couplings, replicas, seed and options it returns the same samples, energies, walker
    indices and swap statistics as ``method="chromatic"``, bit for bit. Chain state (spins, streams)
    stays on the GPU between calls. Per step the GPU updates colour after colour; each thread owns
    one (replica, stream) pair of a colour and walks its positions in the CPU's order
    (:mod:`pbitsim.sim.gpu_kernels`). Replica exchange and recording run on the host at the steps
    that need them: the GPU sums the energies in the CPU's order (exact float64 arithmetic, so equal
    bits) and the CPU's own swap routine decides, ``exp`` included, so no last-bit difference of a
    GPU ``exp`` can flip a swap. Extra options (speed only, never results): ``kernel`` =
    ``"fused"`` (a thread block owns whole replicas and runs many steps per launch, meeting at a
    barrier after each colour; best with many replicas or a small model), ``"colour"`` (one launch
    per colour and step over all (stream, replica) pairs; best for few replicas of a large model)
    or ``"auto"``; ``threads`` = threads per block.
``gpu-hardware`` (:class:`GpuHardwareRunner`, :func:`simulate_cycles_gpu`)
    The hardware-faithful cycle model of :mod:`pbitsim.sim.hardware` (integer arithmetic,
    per-p-bit generators, both design presets, warm-up, every read latency, every schedule:
    "chromatic", "async-random" with its enable generators and ENABLE threshold,
    "async-periodic" with its PERIOD/PHASE counters), one thread block per replica:
    bit-identical to :func:`~pbitsim.sim.hardware.simulate_cycles` and ``method="hardware"``,
    with the same options. The machine's state (spins, generators, enable generators, counters)
    crosses to the GPU and back on every :meth:`~GpuHardwareMachine.run` call, so everything else
    of :class:`~pbitsim.sim.hardware.HardwareMachine` (seeds, ``set_codes``, ``set_enable``,
    ``set_periods``, ``restart``) is unchanged.
"""

from __future__ import annotations

import inspect

import numba as nb
import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.sim import gibbs_kernels as gk
from pbitsim.sim import hardware as hw
from pbitsim.sim.async_rules import PERIODIC, RANDOM
from pbitsim.sim.gibbs import ChromaticRunner
from pbitsim.sim.gibbs_kernels import LANES

__all__ = [
    "GpuUnavailableError",
    "gpu_problem",
    "require_gpu",
    "GpuChromaticRunner",
    "GpuHardwareMachine",
    "GpuHardwareRunner",
    "simulate_cycles_gpu",
    "KERNELS",
    "GPU_SCHEDULES",
]

#: kernels of gpu-chromatic (a speed choice: every kernel computes the same bits)
KERNELS = ("auto", "fused", "colour")
_SIM_HINT = (
    "set NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported to run the GPU kernels on the "
    "CPU simulator"
)


class GpuUnavailableError(RuntimeError):
    """A GPU method was asked for where neither a CUDA GPU nor the CUDA simulator is usable."""


def gpu_problem() -> str | None:
    """Why the GPU methods cannot run here (one phrase), or None when they can (a usable GPU, or
    Numba's CUDA simulator switched on)."""
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target; it provides numba.cuda)
    except ImportError:
        return "numba-cuda is not installed (pip install 'pbitsim[gpu]')"
    try:
        from numba import cuda
        from numba.cuda.core import config
    except Exception as e:  # a broken CUDA installation: say what failed
        return f"numba.cuda cannot be imported ({type(e).__name__}: {str(e).splitlines()[0]})"
    if config.ENABLE_CUDASIM:
        return None
    if config.DISABLE_CUDA:
        return f"CUDA is disabled (NUMBA_DISABLE_CUDA=1) and the CUDA simulator is off; {_SIM_HINT}"
    try:
        if cuda.is_available():
            return None
        from numba.cuda.cudadrv import driver

        has_driver = bool(driver.driver.is_available)
    except Exception:
        has_driver = False
    if not has_driver:
        return f"no CUDA GPU (no CUDA driver found) and the CUDA simulator is off; {_SIM_HINT}"
    return (
        "a CUDA driver is there but CUDA's NVVM compiler library is not (install "
        "'numba-cuda[cu12]' or 'numba-cuda[cu13]' to match the driver)"
    )


def require_gpu(method: str) -> None:
    """Raise :class:`GpuUnavailableError` (one line, naming what is missing) unless the GPU
    methods can run."""
    problem = gpu_problem()
    if problem is not None:
        raise GpuUnavailableError(f"method {method!r} cannot run: {problem}")


def _cuda():
    from numba import cuda

    return cuda


def _kernels():
    from pbitsim.sim import gpu_kernels

    return gpu_kernels


def _multiprocessors() -> int:
    """Streaming multiprocessors of the current GPU (1 under the simulator)."""
    if _kernels().simulating():
        return 1
    return int(_cuda().get_current_device().MULTIPROCESSOR_COUNT)


@nb.njit(cache=True)
def _swap_all(event, K, e, ladder, temp, walker, label, swap_rng, acc, att, trips, stats):
    """The CPU's replica exchange (:func:`pbitsim.sim.gibbs_kernels._swap`) for every chain."""
    for c in range(walker.shape[0]):
        gk._swap(c, event, K, 0, e, ladder, temp, walker, label, swap_rng, acc, att, trips, stats)


def _stream_tables(arrays: tuple, class_sizes: list[int]) -> tuple[np.ndarray, ...]:
    """(first, end, cs) of a chromatic layout: stream s serves positions first[s], first[s] + 32,
    ... < end[s]; the streams of colour c are cs[c]..cs[c+1]-1 (blocks are in colour order)."""
    bstart = arrays[8]
    blen = np.diff(bstart)
    nl = np.minimum(LANES, blen)
    soff = np.concatenate([[0], np.cumsum(nl)]).astype(np.int64)
    blk = np.repeat(np.arange(len(blen)), nl)
    lane = np.arange(soff[-1]) - soff[blk]
    first = (bstart[blk] + lane).astype(np.int64)
    end = bstart[blk + 1].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(class_sizes)])
    cs = soff[np.searchsorted(bstart[:-1], starts)].astype(np.int64)
    return first, end, cs


class GpuChromaticRunner(ChromaticRunner):
    """``method="gpu-chromatic"``: :class:`~pbitsim.sim.gibbs.ChromaticRunner` on a CUDA GPU, bit
    for bit (see the module docstring).

    Parameters
    ----------
    couplings, replicas, seed, betas, swap_every, beta_schedule, anneal, anneal_kind,
    anneal_sweeps, initial
        As for ``method="chromatic"`` (:mod:`pbitsim.sim.gibbs`).
    kernel : {"auto", "fused", "colour"}
        Which kernel runs the sweeps (never changes a result).
    threads : int, optional
        Threads per block (default 256; small values keep the CUDA simulator quick).

    Raises
    ------
    GpuUnavailableError
        No CUDA GPU and no simulator, or numba-cuda missing.
    """

    method_name = "gpu-chromatic"
    step_unit = "chromatic step"

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        *,
        betas=None,
        swap_every: int | None = None,
        beta_schedule=None,
        anneal=None,
        anneal_kind: str = "linear",
        anneal_sweeps: int | None = None,
        initial=None,
        kernel: str = "auto",
        threads: int | None = None,
    ) -> None:
        require_gpu(self.method_name)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024
        ):
            raise ValueError(f"threads must be an int in 1..1024, not {threads!r}")
        super().__init__(
            couplings,
            replicas,
            seed,
            betas=betas,
            swap_every=swap_every,
            beta_schedule=beta_schedule,
            anneal=anneal,
            anneal_kind=anneal_kind,
            anneal_sweeps=anneal_sweeps,
            initial=initial,
        )
        cuda = _cuda()
        arrays = self._layout.arrays
        ptr, nbr, w, h, _, _, w64, h64, _ = arrays
        sizes = [len(x) for x in couplings.color_classes()]
        first, end, cs = _stream_tables(arrays, sizes)
        self._cs = cs
        self._threads = 256 if threads is None else threads
        self._kernel = self._choose(kernel)
        d = cuda.to_device
        self._dev = {
            "S": d(self._S),
            "st": d(self._rng),
            "ptr": d(ptr),
            "nbr": d(nbr.view(np.uint32)),  # positions, all >= 0
            "w": d(w),
            "h": d(h),
            "w64": d(w64),
            "h64": d(h64),
            "first": d(first),
            "end": d(end),
            "cs": d(cs),
            "e": cuda.device_array(self._rows, np.float64),
        }
        # flat views for the sweep kernels (the same memory)
        self._dev["S_flat"] = self._dev["S"].reshape(self._S.size)
        self._dev["st_flat"] = self._dev["st"].reshape(self._rng.size)
        self._host_stale = False  # True once the GPU has moved the chains past self._S/_rng

    # -- kernel choice --------------------------------------------------------------------------
    def _fused_shape(self) -> tuple[int, int]:
        """(replicas per block, rows of threads per block) of the fused kernel."""
        rb = min(32, self._rows, self._threads)
        widest = int(np.diff(self._cs).max())
        return rb, max(1, min(self._threads // rb, widest))

    def _choose(self, kernel: str) -> str:
        """The fused kernel when its blocks fill the GPU or one block holds the whole problem;
        else one launch per colour (parallel over streams, for few replicas of a large model)."""
        if kernel != "auto":
            return kernel
        rb, wy = self._fused_shape()
        blocks = -(-self._rows // rb)
        one_block = blocks == 1 and wy * rb >= int(np.diff(self._cs).max()) * self._rows
        return "fused" if one_block or blocks >= _multiprocessors() else "colour"

    @property
    def kernel(self) -> str:
        """The kernel that runs the sweeps ("fused" or "colour")."""
        return self._kernel

    # -- state between host and GPU -------------------------------------------------------------
    def _pull(self) -> None:
        """Bring the chains' spins and streams back into the host arrays."""
        if self._host_stale:
            self._dev["S"].copy_to_host(self._S)
            self._dev["st"].copy_to_host(self._rng)
            self._host_stale = False

    def spins_and_streams(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the chain state as the CPU kernels hold it: int8 spins [n + 1, rows] by
        position and uint32 xoshiro128+ states [4 * streams, rows]."""
        self._pull()
        return self._S.copy(), self._rng.copy()

    def _load(self, couplings: Couplings) -> None:
        super()._load(couplings)
        _, _, w, h, _, _, w64, h64, _ = self._layout.arrays
        for name, a in (("w", w), ("h", h), ("w64", w64), ("h64", h64)):
            self._dev[name].copy_to_device(a)

    def _set_state(self, spins: np.ndarray) -> None:
        self._pull()
        super()._set_state(spins)
        self._dev["S"].copy_to_device(self._S)

    def _close(self) -> None:
        self._pull()
        self._dev = {}

    # -- running --------------------------------------------------------------------------------
    def _sweeps(self, t0: int, nsteps: int, ladder, sched, temp) -> None:
        """Steps t0 .. t0 + nsteps - 1 of every column on the GPU."""
        k, d = _kernels(), self._dev
        R = np.uint32(self._rows)
        args = (d["S_flat"], d["st_flat"], R, d["ptr"], d["nbr"], d["w"], d["h"], d["first"])
        args += (d["end"],)
        if self._kernel == "fused":
            rb, wy = self._fused_shape()
            grid = -(-self._rows // rb)
            k.chromatic_fused[grid, (rb, wy)](*args, d["cs"], ladder, sched, temp, t0, nsteps)
            return
        tpb = self._threads
        cs = [int(x) for x in self._cs]
        for t in range(t0, t0 + nsteps):
            for c in range(len(cs) - 1):
                items = (cs[c + 1] - cs[c]) * self._rows
                if items:
                    k.chromatic_colour[-(-items // tpb), tpb](
                        *args, cs[c], cs[c + 1], ladder, sched, temp, t
                    )

    def _energies(self) -> np.ndarray:
        d = self._dev
        tpb = min(self._threads, 128)
        _kernels().energies[-(-self._rows // tpb), tpb](
            d["S"], d["ptr"], d["nbr"], d["w64"], d["h64"], d["e"]
        )
        return d["e"].copy_to_host()

    def _run(self, steps: int, thin: int, record: bool) -> np.ndarray:
        if self._ramp is not None and self._ramp[3] is None:
            raise ValueError(
                "anneal=(start, stop) needs its length: pass anneal_sweeps= or run "
                "through pbitsim.sample, which uses burn_in + sweeps"
            )
        k = steps // thin if record else 0
        n = self.couplings.n
        out = np.empty((self._rows, k, n), np.int8)
        out_e = np.empty((self._rows, k))
        out_w = np.empty((self._rows, k), np.int32)
        if steps:
            cuda = _cuda()
            ladder = cuda.to_device(self._ladder)
            sched = cuda.to_device(self._sched)
            temp = cuda.to_device(self._temp)
            K, every, t0 = self._K, self._swap_every, self._t
            site = self._layout.site
            done = ndraw = 0
            while done < steps:
                # the next step (0-based in this call) after which something happens on the host
                nxt = steps - 1
                if every:
                    nxt = min(nxt, done + (-(t0 + done + 1)) % every)
                if record:
                    nxt = min(nxt, done + (-(done + 1)) % thin)
                self._sweeps(t0 + done, nxt - done + 1, ladder, sched, temp)
                self._host_stale = True
                t = t0 + nxt
                swap = every > 0 and (t + 1) % every == 0
                rec = record and (nxt + 1) % thin == 0
                if swap or rec:
                    e = self._energies()
                if swap:
                    _swap_all(
                        (t + 1) // every - 1,
                        K,
                        e,
                        self._ladder,
                        self._temp,
                        self._walker,
                        self._label,
                        self._swap_rng,
                        self._acc,
                        self._att,
                        self._trips,
                        record,
                    )
                    temp.copy_to_device(self._temp)
                if rec:
                    self._pull()
                    gk._record(self._S, False, 0, K, self._temp, site, e, ndraw, out, out_e, out_w)
                    ndraw += 1
                done = nxt + 1
            self._t += steps
        self._last_info = {"energies": out_e}
        if self._K > 1:
            self._last_info["walker_index"] = out_w
        return out


# --------------------------------------------------------------------------------------------
# The cycle model.
# --------------------------------------------------------------------------------------------


class GpuHardwareMachine(hw.HardwareMachine):
    """:class:`~pbitsim.sim.hardware.HardwareMachine` whose :meth:`run` runs on the GPU.

    Same constructor and methods, every schedule; the state is held on the host between calls (a
    call uploads spins, generators, enable generators or counters and codes, runs, and brings the
    state back), so every other method is the CPU machine's own. ``threads`` (attribute, default
    256) caps the threads per block (never changes a result).
    """

    threads = 256

    @classmethod
    def from_machine(cls, machine: hw.HardwareMachine) -> GpuHardwareMachine:
        """The same machine, state included, running on the GPU from now on."""
        gpu = cls.__new__(cls)
        gpu.__dict__.update(machine.__dict__)
        return gpu

    def run(self, cycles: int, record_every: int = 1) -> np.ndarray:
        """As :meth:`HardwareMachine.run <pbitsim.sim.hardware.HardwareMachine.run>`, on the GPU."""
        cycles = int(cycles)
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, not {cycles}")
        k = cycles // record_every if record_every > 0 else 0
        n = self.quantized.n
        out = np.empty((self.replicas, k, n), dtype=np.int8)
        if cycles and n:
            cuda = _cuda()
            d_out = cuda.device_array((self.replicas, max(k, 1), n), np.int8)
            if self.design.coloured:
                self._run_chromatic_gpu(cycles, int(record_every), d_out)
            else:
                self._run_uncoloured_gpu(cycles, int(record_every), d_out)
            if k:
                out = d_out.copy_to_host()
        self.cycle += cycles
        return out

    def _block(self, width: int) -> int:
        """Threads per block for ``width`` p-bits decided per cycle: whole warps, at most
        :attr:`threads`."""
        return int(min(self.threads, 1024, max(32, -(-width // 32) * 32)))

    def _codes(self) -> tuple:
        cuda = _cuda()
        return tuple(cuda.to_device(a) for a in (self._indptr, self._indices, self._j, self._h))

    def _run_chromatic_gpu(self, cycles: int, record_every: int, d_out) -> None:
        cuda = _cuda()
        spec = self.design.fixed_point
        width = int(np.diff(self._cstart).max())
        d_hist = cuda.to_device(self._hist)
        d_gen = cuda.to_device(self._gen)
        d_tmp = cuda.device_array((self.replicas, max(width, 1)), np.int8)
        _kernels().cycles[self.replicas, self._block(width)](
            *self._codes(),
            cuda.to_device(self._table),
            cuda.to_device(self._order),
            cuda.to_device(self._cstart),
            self.n_colors,
            self._kind,
            spec.rng_bits,
            spec.input_max,
            self.design.warmup_edges,
            self.design.read_latency,
            d_hist,
            d_gen,
            d_tmp,
            self.cycle,
            cycles,
            record_every,
            d_out,
        )
        d_hist.copy_to_host(self._hist)
        d_gen.copy_to_host(self._gen)

    def _run_uncoloured_gpu(self, cycles: int, record_every: int, d_out) -> None:
        cuda = _cuda()
        spec = self.design.fixed_point
        R, n = self._gen.shape
        random = self.design.schedule == "async-random"
        # The state of the schedule that runs goes up and comes back; the other schedule's
        # arrays are empty on the host and stand in as one-element dummies (no zero-size
        # device allocations).
        d_hist = cuda.to_device(self._hist)
        d_gen = cuda.to_device(self._gen)
        d_egen = cuda.to_device(self._egen if random else np.zeros((R, 1), np.uint64))
        d_counter = cuda.to_device(np.zeros((R, 1), np.int64) if random else self._counter)
        d_reload = cuda.to_device(np.zeros(1, np.int64) if random else self._reload)
        d_tmp = cuda.device_array((R, n), np.int8)
        _kernels().async_cycles[R, self._block(n)](
            *self._codes(),
            cuda.to_device(self._table),
            RANDOM if random else PERIODIC,
            self._kind,
            spec.rng_bits,
            spec.input_max,
            self.warmup_cycles,
            self.design.read_latency,
            np.uint64(self._threshold),
            d_reload,
            d_hist,
            d_gen,
            d_egen,
            d_counter,
            d_tmp,
            self.cycle,
            cycles,
            record_every,
            d_out,
        )
        d_hist.copy_to_host(self._hist)
        d_gen.copy_to_host(self._gen)
        if random:
            d_egen.copy_to_host(self._egen)
        else:
            d_counter.copy_to_host(self._counter)


def simulate_cycles_gpu(
    couplings_or_quantized,
    design: hw.HardwareDesign,
    seed_or_seeds,
    cycles: int,
    initial=None,
    coloring=None,
    *,
    p: float | None = None,
    period=None,
    phase=None,
    enable_seeds=None,
) -> np.ndarray:
    """:func:`pbitsim.sim.hardware.simulate_cycles` on the GPU (same arguments, same bits),
    every schedule: ``p`` and ``enable_seeds`` for "async-random", ``period`` and ``phase`` for
    "async-periodic", as there.

    Raises
    ------
    GpuUnavailableError
        No CUDA GPU and no simulator, or numba-cuda missing.
    NotImplementedError
        A schedule the GPU cycle model does not have (named in the message).
    """
    require_gpu("gpu-hardware")
    _check_schedule(design)
    q, col, _ = hw._prepare(couplings_or_quantized, design, coloring)
    seeds, kw = hw._schedule_inputs(design, q.n, seed_or_seeds, 1, p, period, phase, enable_seeds)
    m = GpuHardwareMachine(q, design, seeds, initial=initial, coloring=col, **kw)
    return m.run(cycles)[0]


class GpuHardwareRunner(hw.HardwareRunner):
    """``method="gpu-hardware"``: :class:`~pbitsim.sim.hardware.HardwareRunner` with its machine
    on the GPU: the same options (those of ``method="hardware"``: ``design``, ``schedule``,
    ``read_latency``, ``fixed_point``, ``p``, ``period``, ``phase``, ``enable_seeds``, ``seeds``,
    ``initial``) and the same samples, for every schedule.

    Raises
    ------
    GpuUnavailableError
        No CUDA GPU and no simulator, or numba-cuda missing.
    NotImplementedError
        A schedule the GPU cycle model does not have (named in the message).
    """

    method_name = "gpu-hardware"

    def __init__(self, couplings: Couplings, replicas: int = 1, seed: int | None = None, **options):
        require_gpu(self.method_name)
        super().__init__(couplings, replicas, seed, **options)
        _check_schedule(self.design)
        self.machine = GpuHardwareMachine.from_machine(self.machine)

    # the options are the CPU runner's: sample() checks names against this signature
    __init__.__signature__ = inspect.signature(hw.HardwareRunner.__init__)


#: the schedules of the cycle model that the GPU runs (a schedule added to the CPU model later
#: is refused by name until its kernel exists)
GPU_SCHEDULES = ("chromatic", "async-random", "async-periodic")


def _check_schedule(design) -> None:
    schedule = getattr(design, "schedule", "chromatic")
    if schedule not in GPU_SCHEDULES:
        raise NotImplementedError(
            f"the GPU cycle model has the schedules {GPU_SCHEDULES}, not {schedule!r}; "
            f"use method='hardware' for it"
        )
