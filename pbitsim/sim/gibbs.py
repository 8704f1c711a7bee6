"""Exact p-bit samplers: sequential sweep, random scan, chromatic (colour-by-colour) Gibbs, and the
reversible sweep family (symmetric sweep, forward/backward mixture).

Registered as ``sample(..., method="sequential" | "random-scan" | "chromatic" | "symmetric" |
"sweep-mixture")``. One step (what ``sweeps``, ``burn_in`` and ``thin`` count) is, per method, as
below: one step of the exact kernel of the same name (:class:`~pbitsim.diagnostics.ExactChain`),
except random scan, whose step is n steps of the single-update kernel there and in
``shared/reference/diagnostics-definitions.md`` (how steps, draws and exact-kernel steps convert:
``docs/diagnostics.md``, "Time units"):

* ``"sequential"``: n updates, sites 0..n-1 in order;
* ``"random-scan"``: n updates, each at a site drawn uniformly (with replacement);
* ``"chromatic"``: every colour class of :attr:`Couplings.coloring` once, colours in order. Sites of
  one colour do not interact, so updating them all at once is the same Markov kernel as updating
  them one after the other; the kernels do the latter (per replica) and never wait for each other;
* ``"symmetric"``: a forward sweep 0..n-1, then back n-2..0 (2n - 1 updates: the turning site is
  not updated twice in a row, which would change nothing). The step is a palindrome of
  self-adjoint updates, so this kernel is reversible;
* ``"sweep-mixture"`` (option ``q``, default 0.5): each step, each chain independently sweeps
  forward (0..n-1) with probability q, else backward (n-1..0); n updates. q = 1/2 is reversible,
  q = 1 draws exactly what ``"sequential"`` draws (bit for bit, same seed).

The exact kernels of all five are in :mod:`pbitsim.diagnostics.kernels`.

Each update sets s_i = +1 with probability (1 + tanh(beta I_i)) / 2 (float32, within 2e-7; see
:mod:`pbitsim.sim.gibbs_kernels`). All of them leave exp(-beta E) invariant.

Options (keyword arguments of :func:`pbitsim.sample`)
-----------------------------------------------------
``betas=[b_0, ..., b_{K-1}]``, ``swap_every=1``
    Parallel tempering: each of the ``replicas`` = C chains runs K walkers, one per rung, and
    every ``swap_every`` steps tries to exchange neighbouring rungs (pairs (0,1), (2,3), ... and
    (1,2), (3,4), ... alternately), accepting with min(1, exp((b_k - b_{k+1}) (E_k - E_{k+1}))).
    Output row c*K + k is chain c at rung k (indexed by temperature, not by walker); ``info``
    holds ``betas``, ``swap_acceptance`` and ``swap_attempts`` per rung pair (pooled over chains,
    counted while drawing, not during burn-in; acceptance None before any attempt),
    ``walker_index`` (rows, draws): which walker (0..K-1 of its chain) held that rung,
    ``energies`` (rows, draws) and ``round_trips`` per chain: walker passages rung 0 -> rung K-1
    -> rung 0 completed while drawing.
``beta_schedule=[...]``
    Annealing: beta of global step t (burn-in included) is ``beta_schedule[t]`` (the last value is
    held after the end); ``couplings.beta`` is not used.
``anneal=(start, stop)``, ``anneal_kind="linear" | "geometric"``, ``anneal_sweeps=None``
    The same with a ramp from start to stop over ``anneal_sweeps`` steps (default: the whole run,
    burn-in plus sweeps, when run through :func:`pbitsim.sample`).
``initial``
    Initial spins, (n,) or (rows, n) of +-1; default uniformly random (from the seed). Recorded in
    ``settings`` as given, or by its SHA-256 when it holds more than 4096 spins.

Every run also records ``energies`` (rows, draws): E(s) of each draw, without beta, in float64.

New weights and states (:meth:`Runner.load`, :meth:`Runner.set_state`)
----------------------------------------------------------------------
The layout (update order, padded CSR, streams) depends on the topology alone and is built once per
runner; ``load(c2)`` only rewrites J and h in it, and the spins, streams, step counter and (PT)
walker assignment continue. A new ``c2.beta`` is the sampling beta of a plain run; parallel
tempering keeps its ladder and annealing its schedule, since neither reads ``couplings.beta``
(a runner opened on ``c2`` would ignore it too). So ``load(c2)`` right after opening gives
bit for bit what a runner opened on ``c2`` with the same seed gives. ``set_state`` sets row r of
the output (PT: chain c at rung k is row c*K + k, held by whichever walker is at that rung now).

Randomness and reproducibility
------------------------------
Positions are the sites in update order (chromatic: colour classes in order, each in reverse
Cuthill-McKee order for memory locality). Each colour class is cut into blocks of 1024 positions,
and position p of a block uses lane p mod 32 of the block: one xoshiro128+ stream per
(replica, block, lane); random scan uses one stream per replica. Replica r's initial stream states
are the r-th slice of a PCG64 stream seeded by ``numpy.random.SeedSequence(seed,
spawn_key=(0,))`` (PT swap streams: one per chain, ``spawn_key=(1,)``; random initial states:
``spawn_key=(2,)``). So the samples depend only on the seed, the couplings, the method and its
options: not on the thread count, on how a run is split into calls, on which kernel (vectorised
over replicas, over sites, or neither) serves a replica, nor on how many other replicas run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.sampling import Runner, _count, register_method
from pbitsim.sim import aligned
from pbitsim.sim import gibbs_kernels as gk
from pbitsim.sim.gibbs_kernels import BLOCK, LANES

__all__ = [
    "Layout",
    "build_layout",
    "GibbsRunner",
    "SequentialRunner",
    "RandomScanRunner",
    "ChromaticRunner",
    "SymmetricRunner",
    "SweepMixtureRunner",
]

#: below this many replicas per block, kernels that work column by column serve them.
_COLUMN_KERNELS_BELOW = 16
#: replicas per block of the replica kernel, at most (more blocks than threads above it).
_MAX_BLOCK_WIDTH = 128
#: above this many bytes of spins (n x rows), a chromatic runner's threads share each colour
#: class's positions instead of its replicas (:func:`pbitsim.sim.gibbs_kernels.run_split`): the
#: model's spins are far outside the caches there, and a class takes milliseconds, so meeting
#: after each costs nothing measurable
_SPLIT_SITES_ABOVE = 1 << 24
#: a call doing less work than this (rows x steps x (n + stored couplings)), about a millisecond
#: on one core, runs on the calling thread alone
_ONE_THREAD_BELOW = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Couplings renumbered into update order, in the arrays the kernels read.

    ``arrays`` is (ptr, nbr, w, h, sidx, site, w64, h64, bstart): position p is site ``site[p]``;
    its CSR row ``ptr[p]``..``ptr[p+1]`` of neighbour positions ``nbr`` and weights ``w``
    (float32; ``w64`` float64) is padded to a multiple of 4 entries with (n, 0); ``h`` / ``h64``
    the fields; ``sidx[p]`` the stream of position p; ``bstart`` the first position of each block.

    Everything but the four value arrays (w, h, w64, h64) depends on the topology alone;
    :meth:`fill` rewrites those four in place from couplings of the same topology, which is all
    :meth:`Runner.load` needs (no re-layout, and the kernels see the same array objects).
    """

    arrays: tuple
    n_streams: int
    #: where the stored entries of the couplings' CSR go in the padded rows: ``w64[dst] =
    #: data[src]``
    dst: np.ndarray
    src: np.ndarray
    #: how far apart the neighbours of a block's positions lie: the median over blocks of the
    #: range of their positions (~2 x side for a lattice in Cuthill-McKee order, ~n for a random
    #: graph), which tells the kernels whether a sweep's reads stay in cache
    window: int = 0
    #: the first position of each update class, then n (chromatic: the colour classes)
    starts: tuple = ()
    #: the kernels' private copies of column blocks, kept from one call to the next
    #: (:func:`pbitsim.sim.gibbs_kernels.run`): a fresh copy's page faults cost more than the
    #: copying (a 10^6-spin model's 32-replica block: 48 MB, 34 ms to fault in its spins alone)
    buffers: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def site(self) -> np.ndarray:
        return self.arrays[5]

    def fill(self, c: Couplings, compiled: bool = True) -> None:
        """Write the values (J data, h) of ``c`` into the value arrays, in place: by one
        compiled call (``Runner.load``, every step of a training loop), or by numpy (a new
        layout: a run that never loads new values never compiles it). The same values."""
        _, _, w, h, _, site, w64, h64, _ = self.arrays
        if compiled:
            gk.fill_values(w64, w, h64, h, self.dst, self.src, site, c.data, c.h)
            return
        w64[self.dst] = c.data[self.src]
        w[:] = w64  # float32 rounding
        h64[:] = c.h[site]
        h[:] = h64


def build_layout(c: Couplings, classes: list[np.ndarray]) -> Layout:
    """Layout of ``c`` whose positions are the sites of ``classes`` in order.

    Each class is cut into blocks of BLOCK positions; position p of a block uses the block's
    stream p mod LANES (the site-vectorised kernel needs every class to be an independent set).
    """
    n = c.n
    order = np.concatenate(classes).astype(np.int64)
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    deg = c.degrees[order]
    # CSR over positions, each row padded to a multiple of 4 (at least 4) entries pointing at the
    # zero row n: the replica kernel then reads neighbours four at a time without a remainder.
    pdeg = np.maximum(4, -(-deg // 4) * 4)
    ptr = np.concatenate([[0], np.cumsum(pdeg)]).astype(np.int64)
    row = np.repeat(np.arange(n), deg)
    k = np.arange(deg.sum()) - np.repeat(np.cumsum(deg) - deg, deg)
    src = c.indptr[order][row] + k  # the k-th stored neighbour of the site at position `row`
    dst = ptr[row] + k
    nbr = np.full(ptr[-1], n, np.int32)
    nbr[dst] = pos[c.indices[src]]

    sizes = [len(x) for x in classes]
    starts = np.cumsum([0] + sizes)
    bstart = np.concatenate(
        [np.arange(s, s + z, BLOCK) for s, z in zip(starts[:-1], sizes) if z] + [[n]]
    ).astype(np.int64)
    blen = np.diff(bstart)
    soff = np.concatenate([[0], np.cumsum(np.minimum(LANES, blen))])
    blk = np.repeat(np.arange(len(blen)), blen)
    sidx = (soff[blk] + (np.arange(n) - bstart[blk]) % LANES).astype(np.int32)
    arrays = (
        ptr,
        nbr,
        np.zeros(ptr[-1], np.float32),
        np.zeros(n, np.float32),
        sidx,
        order.astype(np.int32),
        np.zeros(ptr[-1]),
        np.zeros(n),
        bstart,
    )
    layout = Layout(
        arrays=arrays,
        n_streams=int(soff[-1]),
        dst=dst,
        src=src,
        window=_window(nbr[dst], row, bstart),
        starts=tuple(int(x) for x in starts),
    )
    layout.fill(c, compiled=False)
    return layout


def _window(q: np.ndarray, row: np.ndarray, bstart: np.ndarray) -> int:
    """Median over the blocks with neighbours of max - min of their neighbours' positions ``q``
    (the entries in order of their position ``row``)."""
    first = np.unique(np.searchsorted(row, bstart[:-1]))
    first = first[first < len(q)]
    if len(first) == 0:
        return 0
    return int(np.median(np.maximum.reduceat(q, first) - np.minimum.reduceat(q, first)))


def _words(seed: int, domain: int, rows: int, per_row: int) -> np.ndarray:
    """uint32 (rows, per_row): row r is the r-th slice of one PCG64 stream seeded by
    ``SeedSequence(seed, spawn_key=(domain,))``, so a row never depends on how many follow it."""
    bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(domain,)))
    return (
        bits.random_raw(-(-rows * per_row // 2))
        .view(np.uint32)[: rows * per_row]
        .reshape(rows, per_row)
    )


def _streams(seed: int, domain: int, rows: int, streams: int) -> np.ndarray:
    """Initial xoshiro128+ states, uint32 (rows, 4 * streams)."""
    st = _words(seed, domain, rows, 4 * streams).reshape(rows, streams, 4)
    st[~st.any(axis=2), 0] = 1  # the all-zero state is xoshiro's fixed point
    return st.reshape(rows, 4 * streams)


def _positive(name: str, x) -> np.ndarray:
    a = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if a.ndim != 1 or len(a) == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must hold finite values > 0, not {x!r}")
    return a


class GibbsRunner(Runner):
    """Shared machinery of the exact schemes (see the module docstring for the options)."""

    #: the kernel every block runs (None: chosen per block by :meth:`_plan`)
    _column_kernel: int | None = None
    #: whether the update classes are independent sets, whose positions threads may share
    _independent_classes = False
    #: forward-sweep probability and per-row direction streams (``"sweep-mixture"`` only)
    _q = 1.0
    _dirs = np.zeros((0, 4), np.uint32)

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
    ) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        replicas = _count("replicas", replicas, 1)
        seed = _count("seed", seed, 0)
        super().__init__(couplings, replicas, seed)
        n = couplings.n
        if n == 0:
            raise ValueError("cannot sample a model with no spins")
        settings: dict = {}
        if betas is not None:
            if beta_schedule is not None or anneal is not None:
                raise ValueError("parallel tempering (betas=) cannot be combined with annealing")
            ladder = _positive("betas", betas)
            if len(ladder) < 2:
                raise ValueError(
                    "parallel tempering needs at least 2 betas; for one beta pass "
                    "beta= (or use couplings.with_beta)"
                )
            swap_every = _count("swap_every", 1 if swap_every is None else swap_every, 1)
            settings.update(betas=ladder.tolist(), swap_every=swap_every)
        elif swap_every is not None:
            raise ValueError("swap_every applies to parallel tempering only (pass betas=)")
        else:
            ladder = np.array([couplings.beta])
            swap_every = 0
        self._sched = np.ones(1)
        self._ramp = None
        if beta_schedule is not None and anneal is not None:
            raise ValueError("pass either beta_schedule or anneal, not both")
        if beta_schedule is not None:
            self._sched = _positive("beta_schedule", beta_schedule)
            ladder = np.ones(1)
            settings["beta_schedule"] = self._sched.tolist()
        elif anneal is not None:
            ends = _positive("anneal", anneal)
            if len(ends) != 2:
                raise ValueError(f"anneal must be (start, stop), not {anneal!r}")
            if anneal_kind not in ("linear", "geometric"):
                raise ValueError(
                    f"anneal_kind must be 'linear' or 'geometric', not {anneal_kind!r}"
                )
            if anneal_sweeps is not None:
                anneal_sweeps = _count("anneal_sweeps", anneal_sweeps, 1)
            self._ramp = (float(ends[0]), float(ends[1]), anneal_kind, anneal_sweeps)
            ladder = np.ones(1)
            if anneal_sweeps is not None:
                self._set_ramp(anneal_sweeps)
        elif anneal_sweeps is not None:
            raise ValueError("anneal_sweeps applies to anneal= only")

        K = len(ladder)
        self._ladder = ladder
        # only a plain run samples at couplings.beta; PT and annealing bring their own betas
        self._beta_from_couplings = betas is None and beta_schedule is None and anneal is None
        self._K = K
        self._swap_every = swap_every
        rows = replicas * K
        self._rows = rows
        self._layout = self._make_layout()
        ns = self._layout.n_streams
        self._rng = aligned.copy(_streams(seed, 0, rows, ns).T)
        pos_of = np.empty(n, np.int64)
        pos_of[self._layout.site] = np.arange(n)
        self._pos_of = pos_of  # site -> position (row of self._S)
        self._S = aligned.zeros((n + 1, rows), np.int8)  # a row of 64 replicas: one line
        if initial is None:
            words = _words(seed, 2, rows, -(-n // 32))
            bits = np.unpackbits(words.view(np.uint8), axis=1)[:, :n]
            self._S[pos_of] = (2 * bits.astype(np.int8) - 1).T
        else:
            s0 = np.asarray(initial)
            if s0.shape not in ((n,), (rows, n)) or not np.all(np.isin(s0, (-1, 1))):
                raise ValueError(f"initial must hold +-1 values of shape ({n},) or ({rows}, {n})")
            self._S[pos_of] = np.broadcast_to(s0, (rows, n)).T
            # a large start is identified, not copied, to keep the metadata small
            settings["initial"] = (
                s0.tolist()
                if s0.size <= 4096
                else {"sha256": hashlib.sha256(s0.astype("<i1").tobytes()).hexdigest()}
            )
        self._temp = np.tile(np.arange(K, dtype=np.int32), replicas)
        self._walker = np.tile(np.arange(K, dtype=np.int32), (replicas, 1))
        self._label = np.where(self._temp == 0, 1, 0).astype(np.int8)
        self._swap_rng = _streams(seed, 1, replicas, 1)
        self._acc = np.zeros((replicas, max(K - 1, 0)), np.int64)
        self._att = np.zeros_like(self._acc)
        self._trips = np.zeros(replicas, np.int64)
        self._t = 0
        self._plans: dict = {}  # per thread count (and ("sites", threads) for run_split)
        self._last_info: dict = {}
        if self._ramp is not None:
            start, stop, kind, sweeps = self._ramp
            settings["anneal"] = {"start": start, "stop": stop, "kind": kind, "sweeps": sweeps}
        if initial is None:
            settings["initial"] = "random"
        self.settings = settings

    # -- layout and schedule ------------------------------------------------------------------
    def _make_layout(self) -> Layout:
        """The layout of ``self.couplings`` (built once per runner: it depends on the topology
        only; :meth:`_load` refills its values)."""
        return build_layout(self.couplings, [np.arange(self.couplings.n)])

    def _set_ramp(self, steps: int) -> None:
        start, stop, kind, _ = self._ramp
        if kind == "linear":
            self._sched = np.linspace(start, stop, steps)
        else:
            self._sched = np.geomspace(start, stop, steps)

    # -- life cycle ---------------------------------------------------------------------------
    def _load(self, couplings: Couplings) -> None:
        """New J and h in place (same layout); a new beta is the single-rung ladder's only rung.

        Parallel tempering keeps its ladder and annealing its schedule: neither ever reads
        ``couplings.beta`` (the ladder and the schedule are the betas), so a new beta changes
        nothing there, exactly as it would not for a runner opened on the new couplings.
        """
        self._layout.fill(couplings)
        if self._beta_from_couplings:
            self._ladder = np.array([couplings.beta])

    def _set_state(self, spins: np.ndarray) -> None:
        """Row c*K + k (chain c at rung k) goes to the walker now at that rung, in position order;
        the walkers keep their streams and rungs."""
        K = self._K
        cols = (np.arange(self.replicas)[:, None] * K + self._walker).ravel()
        self._S[self._pos_of[:, None], cols[None, :]] = spins.T

    def begin(self, steps: int) -> None:
        """Fix the annealing ramp's length to the run's length when none was given."""
        if self._ramp is not None and self._ramp[3] is None:
            start, stop, kind, _ = self._ramp
            self._ramp = (start, stop, kind, max(1, int(steps)))
            self.settings["anneal"]["sweeps"] = self._ramp[3]
            self._set_ramp(self._ramp[3])

    # -- running ------------------------------------------------------------------------------
    @property
    def output_replicas(self) -> int:
        return self._rows

    def _threads(self, steps: int) -> int:
        """Threads for a call of ``steps`` steps: Numba's thread count, or 1 for a short call.

        A second thread is woken for each call; on a busy machine that wake-up waits out a
        scheduler slice (milliseconds), which a short call (a PCD step, a board-sized model)
        never earns back. Results do not depend on it.
        """
        work = self._rows * steps * (self.couplings.n + self.couplings.nnz)
        if work < _ONE_THREAD_BELOW:
            return 1
        from numba import get_num_threads

        return get_num_threads()

    def _plan(self, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Column blocks (whole chains) for ``threads`` threads (default: Numba's count) and the
        kernel of each: a speed choice only, since every kernel computes the same numbers."""
        from numba import get_num_threads

        chains, threads = self.replicas, threads or get_num_threads()
        # Enough blocks to keep each under _MAX_BLOCK_WIDTH replicas (its spins then stay in
        # cache on random graphs), a multiple of the thread count (static schedule: balance).
        nblocks = threads * -(-self._rows // (threads * _MAX_BLOCK_WIDTH))
        nblocks = min(chains, nblocks)
        bounds = (np.arange(nblocks + 1) * chains // nblocks * self._K).astype(np.int64)
        if self._column_kernel is not None:  # the reversible family: column kernels only
            kernel = self._column_kernel
        elif self.method_name == "random-scan":
            kernel = gk.KERNEL_RANDOM_SCAN
        elif self._rows // nblocks >= _COLUMN_KERNELS_BELOW:
            kernel = gk.KERNEL_REPLICAS
        elif self.method_name == "chromatic":
            kernel = gk.KERNEL_SITES
        else:
            kernel = gk.KERNEL_COLUMNS
        return bounds, np.full(nblocks, kernel, np.int64)

    def _run(self, steps: int, thin: int, record: bool) -> np.ndarray:
        if self._ramp is not None and self._ramp[3] is None:
            raise ValueError(
                "anneal=(start, stop) needs its length: pass anneal_sweeps= or run "
                "through pbitsim.sample, which uses burn_in + sweeps"
            )
        k = steps // thin if record else 0
        n = self.couplings.n
        # tempering needs every draw's energies for its swaps; a plain run only when asked
        energies = self._K > 1 or bool(self.record_energies)
        out = np.empty((self._rows, k, n), np.int8)
        out_e = np.empty((self._rows, k if energies else 0))
        out_w = np.empty((self._rows, k if self._K > 1 else 0), np.int32)
        if steps:
            threads = self._threads(steps)
            pt = (self._walker, self._label, self._swap_rng, self._acc, self._att, self._trips)
            # what both runs take between the state and the threads
            work = (self._layout.arrays, self._ladder, self._sched, self._temp, pt, self._t)
            work += (steps, self._swap_every, thin, record, out, out_e, out_w)
            if threads > 1 and self._splits_sites():
                parts = self._site_parts(threads)
                gk.run_split(self._S, self._rng, parts, *work, threads, energies, self._pos_of)
            else:
                calls = self._plans.get(threads)
                if calls is None:  # a plan depends on the runner and thread count only
                    calls = self._plans[threads] = self._block_calls(threads)
                gk.run(
                    self._S, self._rng, calls, *work, threads, self._q, self._dirs, energies,
                    self._pos_of,
                )  # fmt: skip
            self._t += steps
        self._last_info = {"energies": out_e} if energies else {}
        if self._K > 1:
            self._last_info["walker_index"] = out_w
        return out

    def _block_calls(self, threads: int) -> list[tuple]:
        """The blocks of :meth:`_plan` as :func:`pbitsim.sim.gibbs_kernels.block_calls`."""
        bounds, kernels = self._plan(threads)
        lay = self._layout
        return gk.block_calls(
            self._S, self._rng, bounds, kernels, lay.arrays, lay.buffers, lay.window
        )

    def _splits_sites(self) -> bool:
        """Whether a multi-threaded call shares each class's positions over the threads
        (:data:`_SPLIT_SITES_ABOVE`) rather than the replicas: chromatic runners whose rows fit
        one replica-kernel block and whose spins outgrow the caches."""
        n, rows = self.couplings.n, self._rows
        return (
            self._independent_classes
            and _COLUMN_KERNELS_BELOW <= rows <= _MAX_BLOCK_WIDTH
            and (n + 1) * rows > _SPLIT_SITES_ABOVE
        )

    def _site_parts(self, threads: int) -> list:
        """Each colour class's position blocks cut into runs for ``threads`` threads (made once
        per thread count, :func:`pbitsim.sim.gibbs_kernels.site_parts`)."""
        key = ("sites", threads)
        if key not in self._plans:
            self._plans[key] = gk.site_parts(self._layout.arrays[8], self._layout.starts, threads)
        return self._plans[key]

    def advance(self, sweeps: int) -> None:
        self._run(_count("sweeps", sweeps, 0), 1, False)

    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        k = _count("k", k, 0)
        thin = _count("thin", thin, 1)
        return self._run(k * thin, thin, True)

    def draw_info(self) -> dict:
        return dict(self._last_info)

    def info(self) -> dict:
        if self._K == 1:
            return {}
        att = self._att.sum(axis=0)
        acc = self._acc.sum(axis=0)
        return {
            "betas": self._ladder.tolist(),
            "swap_acceptance": [float(a / t) if t else None for a, t in zip(acc, att)],
            "swap_attempts": att.tolist(),
            "round_trips": self._trips.tolist(),
        }


@register_method("sequential")
class SequentialRunner(GibbsRunner):
    """``method="sequential"``: one step = sites 0..n-1 updated in order."""

    step_unit = "sweep"


@register_method("random-scan")
class RandomScanRunner(GibbsRunner):
    """``method="random-scan"``: one step = n updates at uniformly chosen sites."""

    step_unit = "n random-site updates"


@register_method("chromatic")
class ChromaticRunner(GibbsRunner):
    """``method="chromatic"``: one step = every colour class once, colours in order."""

    step_unit = "chromatic step"
    _independent_classes = True

    def _make_layout(self) -> Layout:
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        c = self.couplings
        rank = np.empty(c.n, np.int64)
        rank[reverse_cuthill_mckee(c.to_scipy(), symmetric_mode=True)] = np.arange(c.n)
        classes = [x[np.argsort(rank[x], kind="stable")] for x in c.color_classes()]
        return build_layout(c, classes)


@register_method("symmetric")
class SymmetricRunner(GibbsRunner):
    """``method="symmetric"``: one step = sites 0..n-1 then n-2..0 (2n - 1 updates), reversible.

    Column kernels serve every replica (scalar sweeps), with the streams of the forward sweep
    (:class:`SequentialRunner`'s layout): the forward half of a step consumes each stream as a
    sequential step does, the backward half continues them.
    """

    step_unit = "symmetric sweep (2n - 1 updates)"
    _column_kernel = gk.KERNEL_SYMMETRIC


@register_method("sweep-mixture")
class SweepMixtureRunner(GibbsRunner):
    """``method="sweep-mixture"``: each step a forward sweep with probability ``q``, else a
    backward one (n updates), chosen per chain and step.

    Row r's directions come from its own xoshiro128+ stream, seeded from
    ``SeedSequence(seed, spawn_key=(3,))`` (a float64 uniform u < q: forward), apart from the
    update streams: with q = 1 the spins are those of ``method="sequential"`` with the same seed.
    """

    step_unit = "sweep (forward or backward)"
    _column_kernel = gk.KERNEL_MIXTURE

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        *,
        q: float = 0.5,
        betas=None,
        swap_every: int | None = None,
        beta_schedule=None,
        anneal=None,
        anneal_kind: str = "linear",
        anneal_sweeps: int | None = None,
        initial=None,
    ) -> None:
        if isinstance(q, bool) or not isinstance(q, int | float | np.integer | np.floating):
            raise TypeError(f"q must be a number in [0, 1], not {type(q).__name__}")
        if not 0.0 <= float(q) <= 1.0:
            raise ValueError(f"q must be in [0, 1] (the probability of a forward sweep), not {q}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
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
        self._q = float(q)
        self._dirs = _streams(self.seed, 3, self._rows, 1)
        self.settings["q"] = self._q
