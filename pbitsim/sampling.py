"""The one sampling entry point, ``pbitsim.sample``, and the registry of methods behind it.

Every sampler (the Numba kernels, the hardware-faithful cycle model, a board through the host) is a
:class:`Runner` registered under a method name. ``sample`` owns what is common to all of them:
argument checks, burn-in, thinning, chunking, streaming to disk, the progress bar and the
:class:`~pbitsim.samples.Samples` it returns, so no sampler can label or lose draws differently.

Runner contract
---------------
* ``Runner(couplings, replicas=R, seed=S, **options)`` sets up R independent chains; the seed fixes
  every random number (one stream per replica, so results do not depend on the thread count).
* ``advance(sweeps)`` runs without recording; ``draw(k, thin)`` runs ``k * thin`` sweeps and returns
  the state after every ``thin``-th as int8 (R, k, n). Splitting the same work into several calls
  gives bit-identical results (chunking never changes samples).
* ``settings`` (dict) holds the options needed to reproduce the run; ``info()`` per-run outputs.

Optional, with defaults in :class:`Runner`:

* ``output_replicas``: rows of what ``draw`` returns (default R; parallel tempering returns one row
  per chain and rung).
* ``draw_info()``: per-draw arrays of the last ``draw`` call, each (output_replicas, k, ...), e.g.
  ``energies``; ``sample`` concatenates them along the draws into ``Samples.info``.
* ``record_energies`` (default True): a caller that needs the spins only (a PCD step) sets it
  False, and a runner whose energies cost work may then leave them out of ``draw_info()``.
* ``begin(steps)``: called by ``sample`` once before burn-in with the run's total steps
  (burn_in + sweeps), e.g. for an annealing ramp over the whole run.
* ``_load(couplings)``: take new values (J, h, beta) on the same topology without resetting the
  chains; behind the public :meth:`Runner.load`, which checks the topology first.
* ``_set_state(spins)``: replace the chains' spins by int8 (output_replicas, n); behind
  :meth:`Runner.set_state`, which checks the shape and values first.
* ``_close()``: release what the runner holds (a serial port, ...); behind :meth:`Runner.close`.

Life cycle
----------
A runner is opened (:func:`open_runner`, or constructed), used for any number of ``advance`` /
``draw`` / ``load`` / ``set_state`` calls, and closed (``close()``, or ``with open_runner(...) as
r:``). After ``close()`` every one of those calls raises ``RuntimeError``: the base class checks it
in ``load``/``set_state`` and wraps every ``advance``/``draw`` a subclass defines (in
``__init_subclass__``), so subclasses keep implementing plain ``advance``/``draw``.

Plug-ins
--------
Methods from other distributions register through the entry-point group ``pbitsim.methods``: an
entry point ``name = module:Class`` names a :class:`Runner` subclass, imported only when
``get_method(name)`` (or ``sample(..., method=name)``) first asks for it and then registered under
``name``. :func:`methods` lists them without importing them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.samples import Samples, SampleStream, _base, _jsonable

__all__ = [
    "Runner",
    "RunTooLargeError",
    "DrawInterrupted",
    "register_method",
    "methods",
    "get_method",
    "open_runner",
    "sample",
    "available_memory",
    "watch_compilation",
    "CompileTime",
    "METHODS_GROUP",
]

_METHODS: dict[str, type[Runner]] = {}

#: entry-point group through which other distributions add sampling methods
METHODS_GROUP = "pbitsim.methods"


def _checks_open(method):
    """Wrap a subclass's ``advance``/``draw`` so that a closed runner refuses to run."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self._check_open()
        return method(self, *args, **kwargs)

    wrapper._checks_open = True
    return wrapper


class DrawInterrupted(RuntimeError):
    """A runner's ``draw`` broke off (a board reset, a broken link) after delivering part of what
    was asked; the chain cannot be continued, so the run ends here.

    Raise it with ``received``: int8 (output_replicas, k, n), the draws of the interrupted call
    that did arrive, in order. :func:`sample` keeps them with the draws before: streamed to disk,
    the files say ``"complete": false`` with the number of draws written; in memory, the
    exception's ``samples`` attribute holds them as an incomplete :class:`Samples`.
    """

    def __init__(self, message: str, received: np.ndarray) -> None:
        super().__init__(message)
        self.received = received
        self.samples: Samples | None = None


class Runner(ABC):
    """Base class of a sampling method's per-run state (see the module docstring).

    Attributes
    ----------
    couplings : Couplings
        The couplings the chains run now (replaced by :meth:`load`).
    replicas : int
    seed : int or None
    settings : dict
    closed : bool
        True once :meth:`close` was called.
    """

    #: what one unit of ``sweeps`` means for this method (e.g. "sweep", "chromatic step", "cycle")
    step_unit = "sweep"
    #: bytes of chain state per spin per row that opening a runner allocates, for the memory
    #: check of :func:`sample` before it opens one (spins, fields, random streams: a generous
    #: figure for the Numba kernels; a board's runner holds its chains on the board)
    state_bytes_per_spin: int = 24
    #: the name the class is registered under (set by :func:`register_method` / entry points)
    method_name: str | None = None
    closed: bool = False

    def __init__(
        self, couplings: Couplings, replicas: int = 1, seed: int | None = None, **options
    ) -> None:
        if not isinstance(couplings, Couplings):
            raise TypeError(f"couplings must be a Couplings, not {type(couplings).__name__}")
        self.couplings = couplings
        self.replicas = int(replicas)
        self.seed = seed
        self.settings: dict = dict(options)
        self.closed = False

    def __init_subclass__(cls, **kwargs) -> None:
        # Every advance/draw a subclass defines refuses to run once the runner is closed, so no
        # subclass (a plug-in included) can forget the check.
        super().__init_subclass__(**kwargs)
        for name in ("advance", "draw"):
            f = cls.__dict__.get(name)
            if callable(f) and not getattr(f, "__isabstractmethod__", False):
                if not getattr(f, "_checks_open", False):
                    setattr(cls, name, _checks_open(f))

    @abstractmethod
    def advance(self, sweeps: int) -> None:
        """Run ``sweeps`` steps without recording."""

    @abstractmethod
    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        """Run ``k * thin`` steps; return int8 (replicas, k, n), the state after every thin-th."""

    def info(self) -> dict:
        return {}

    @property
    def output_replicas(self) -> int:
        """Rows of the arrays :meth:`draw` returns."""
        return self.replicas

    #: whether :meth:`draw` also records each draw's energy (``draw_info()["energies"]``).
    #: A loop that needs the spins only (a PCD step) may set it False; a runner whose energies
    #: cost nothing may ignore it. :func:`sample` sets it True for its run (and then back).
    record_energies: bool = True

    def draw_info(self) -> dict:
        """Per-draw arrays (output_replicas, k, ...) of the last :meth:`draw` call."""
        return {}

    def begin(self, steps: int) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Told by :func:`sample` the total steps of the run (burn_in + sweeps) before it starts."""

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the couplings actually run (a board overrides this with its report)."""
        return self.couplings.fingerprint

    @property
    def properties(self) -> dict:
        """What the runner is: ``method`` (registered name), ``design`` (the hardware design
        object, or None for a simulator without one), ``replicas``, ``output_replicas``, ``n``,
        ``topology_fingerprint``, ``fingerprint``, ``step_unit``, ``seed``, ``closed``."""
        return {
            "method": self.method_name,
            "design": getattr(self, "design", None),
            "replicas": self.replicas,
            "output_replicas": self.output_replicas,
            "n": self.couplings.n,
            "topology_fingerprint": self.couplings.topology_fingerprint,
            "fingerprint": self.fingerprint,
            "step_unit": self.step_unit,
            "seed": self.seed,
            "closed": self.closed,
        }

    # -- life cycle ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"this {self.method_name or type(self).__name__!r} runner is closed")

    def close(self) -> None:
        """Release the runner (idempotent); afterwards advance/draw/load/set_state raise."""
        if self.closed:
            return
        # Marked closed first: a failing _close must not leave a half-released runner usable.
        self.closed = True
        self._close()

    def _close(self) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Release resources (a board runner closes its serial port here)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, couplings: Couplings) -> None:
        """Run new values (J, h, beta) on the same topology from now on, keeping the chains.

        The spins and the random streams continue where they are; only the weights change.

        Raises
        ------
        TypeError
            ``couplings`` is not a :class:`Couplings`.
        ValueError
            Its topology (graph and colouring) differs from the runner's.
        RuntimeError
            The runner is closed.
        NotImplementedError
            The method cannot take new weights.
        """
        self._check_open()
        if not isinstance(couplings, Couplings):
            raise TypeError(f"couplings must be a Couplings, not {type(couplings).__name__}")
        have = self.couplings.topology_fingerprint
        if couplings.topology_fingerprint != have:
            raise ValueError(
                f"cannot load couplings of topology {couplings.topology_fingerprint[:16]} into a "
                f"runner built for topology {have[:16]}: open a new runner for another graph or "
                f"colouring"
            )
        self._load(couplings)
        self.couplings = couplings

    def _load(self, couplings: Couplings) -> None:
        """Take the values of ``couplings`` (same topology, already checked)."""
        raise NotImplementedError(
            f"method {self.method_name or type(self).__name__!r} cannot load new couplings "
            f"(its runner has no _load)"
        )

    def set_state(self, spins) -> None:
        """Set every chain's spins: +-1 of shape (output_replicas, n), or (n,) for all of them.

        Only the spins change: the random streams (and, for parallel tempering, which walker holds
        which rung) continue. Row r is the row r of what :meth:`draw` returns.

        Raises
        ------
        ValueError
            A wrong shape (the message names the expected one) or values other than +-1.
        RuntimeError
            The runner is closed.
        NotImplementedError
            The method cannot set its state.
        """
        self._check_open()
        rows, n = self.output_replicas, self.couplings.n
        s = np.asarray(spins)
        if s.shape not in ((n,), (rows, n)):
            raise ValueError(f"spins must have shape ({rows}, {n}) or ({n},), not {s.shape}")
        if s.dtype == bool or not np.all((s == 1) | (s == -1)):
            raise ValueError("spins must hold only -1 and +1")
        self._set_state(np.ascontiguousarray(np.broadcast_to(s, (rows, n)), dtype=np.int8))

    def _set_state(self, spins: np.ndarray) -> None:
        """Replace the spins by ``spins``, int8 (output_replicas, n) of +-1 (already checked)."""
        raise NotImplementedError(
            f"method {self.method_name or type(self).__name__!r} cannot set its state "
            f"(its runner has no _set_state)"
        )


def register_method(name: str):
    """Class decorator: make a :class:`Runner` available as ``sample(..., method=name)``."""

    def deco(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"sampling method {name!r} is already registered")
        _METHODS[name] = cls
        cls.method_name = name
        return cls

    return deco


def _entry_points(group: str) -> dict:
    """Entry points of ``group`` by name (the first one found wins), none of them loaded."""
    from importlib.metadata import entry_points

    found: dict = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def methods() -> list[str]:
    """Names of the registered methods: built-in ones and those of plug-ins (not imported)."""
    _load_builtin()
    return sorted(set(_METHODS) | set(_entry_points(METHODS_GROUP)))


def get_method(name: str) -> type[Runner]:
    """The :class:`Runner` class registered as ``name`` (a plug-in's is imported on first use).

    Raises
    ------
    ValueError
        No such method (the message lists the available ones).
    ImportError
        A plug-in's module failed to import (the message names the method, the entry point and
        the original error, e.g. a missing optional dependency).
    TypeError
        ``name`` is not a string, or a plug-in's entry point is not a Runner subclass.
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a method name (str), not {type(name).__name__}")
    _load_builtin(until=name)
    if name in _METHODS:
        return _METHODS[name]
    ep = _entry_points(METHODS_GROUP).get(name)
    if ep is None:
        raise ValueError(f"unknown sampling method {name!r}; available: {methods()}")
    try:
        obj = ep.load()
    except Exception as e:
        raise ImportError(
            f"sampling method {name!r} (entry point {ep.value!r} of group {METHODS_GROUP!r}) "
            f"could not be loaded: {type(e).__name__}: {e}"
        ) from e
    if not (isinstance(obj, type) and issubclass(obj, Runner)):
        raise TypeError(
            f"entry point {name!r} = {ep.value!r} of group {METHODS_GROUP!r} must name a "
            f"pbitsim.sampling.Runner subclass, not {obj!r}"
        )
    if _METHODS.get(name) is not obj:  # the module may have registered it itself
        register_method(name)(obj)
    return obj


def _load_builtin(until: str | None = None) -> None:
    """Import the modules that register the built-in methods (kept lazy: Numba is slow to load),
    stopping once ``until`` is registered."""
    import importlib

    for module in _BUILTIN_MODULES:
        if until in _METHODS:
            return
        importlib.import_module(module)


# Modules whose import registers methods. Add a module here when it registers a new one.
_BUILTIN_MODULES: list[str] = [
    "pbitsim.sim.gibbs",
    "pbitsim.sim.hardware",
    "pbitsim.sim.async_",
]


#: bytes of spins handed over per runner call when chunk_draws is not given
_CHUNK_BYTES = 1 << 26
#: spin updates above which a run shows a progress bar by default (when stderr is a terminal)
_LONG_RUN = 2e9


def _count(name: str, x, low: int) -> int:
    if type(x) is int and x >= low:  # the common case, first (every call of a PCD loop)
        return x
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {x!r}")
    return int(x)


def _check_options(cls: type[Runner], method: str, options: dict) -> None:
    """Unknown option names fail here, with the list of the method's options."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k in params if k not in ("self", "couplings", "replicas", "seed")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"method {method!r} has no option(s) {unknown}; its options: {known}")


def open_runner(
    couplings: Couplings,
    method: str = "chromatic",
    replicas: int = 1,
    seed: int | None = None,
    *,
    beta: float | None = None,
    **options,
) -> Runner:
    """Open a runner of ``method`` on ``couplings``: persistent chains to advance, draw from,
    load new weights into (:meth:`Runner.load`) and close (``with open_runner(...) as r:``).

    Parameters
    ----------
    couplings : Couplings
    method : str
        A registered method, see :func:`methods`.
    replicas : int
        Independent chains (parallel tempering: chains of ``len(betas)`` rungs each).
    seed : int, optional
        Fixes every random number; None draws a 63-bit seed from the OS (kept in ``runner.seed``).
    beta : float, optional
        Run ``couplings.with_beta(beta)`` instead.
    **options
        Method options, as for :func:`sample`.

    Returns
    -------
    Runner
        Pass it to :func:`sample` as ``method=`` to draw through ``sample``; the caller closes it.

    Raises
    ------
    TypeError
        ``couplings`` is not a :class:`Couplings` or ``method`` not a name.
    ValueError
        An unknown method or option, bad counts.
    """
    if not isinstance(couplings, Couplings):
        raise TypeError(f"couplings must be a Couplings, not {type(couplings).__name__}")
    replicas = _count("replicas", replicas, 1)
    seed = secrets.randbits(63) if seed is None else _count("seed", seed, 0)
    cls = get_method(method)
    _check_options(cls, method, options)
    if beta is not None:
        couplings = couplings.with_beta(beta)
    runner = cls(couplings, replicas=replicas, seed=seed, **options)
    # what the runner was opened with, recorded by sample() in Samples.settings["options"]
    runner._opened_with = dict(options)
    return runner


def sample(
    couplings: Couplings,
    sweeps: int,
    *,
    method: str | Runner = "chromatic",
    replicas: int | None = None,
    burn_in: int = 0,
    thin: int = 1,
    seed: int | None = None,
    out: str | os.PathLike | None = None,
    progress: bool | None = None,
    chunk_draws: int | None = None,
    beta: float | None = None,
    **options,
) -> Samples:
    """Draw samples from a p-bit model with any registered method.

    Parameters
    ----------
    couplings : Couplings
    sweeps : int
        Steps run after burn-in, in the method's own unit (``step_unit``: a sweep, a chromatic
        step, ...). A positive multiple of ``thin``; the run records ``sweeps // thin`` draws.
    method : str or Runner
        A registered method, see :func:`methods` (``"chromatic"``, ``"sequential"``,
        ``"random-scan"``, ``"async"``, ``"hardware"``, ...): a runner is opened for this call
        and closed at its end. Or an open :class:`Runner` (:func:`open_runner`): its chains
        continue where they stand (two calls draw what one longer call would), it stays open,
        and ``couplings`` must be what it runs (``runner.fingerprint``); ``replicas``, ``seed``,
        ``beta`` and options are then the runner's own and cannot be passed.
    replicas : int, optional
        Independent chains (parallel tempering: chains of ``len(betas)`` rungs each); default 1.
    burn_in : int
        Steps run first and discarded.
    thin : int
        Record the state after every ``thin``-th step.
    seed : int, optional
        Fixes every random number. None draws a 63-bit seed from the OS; it is recorded in
        ``Samples.seed`` either way.
    out : path, optional
        Stream the run to ``OUT.npy`` (spins), ``OUT.KEY.npy`` (per-draw info such as energies)
        and ``OUT.json`` (metadata, written last) chunk by chunk, so a long run never holds its
        draws in memory; the returned Samples holds read-only memory maps of those files.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal and the run is long).
    chunk_draws : int, optional
        Draws per runner call (default: about 64 MiB of spins). Never changes the samples.
    beta : float, optional
        Sample at this inverse temperature instead of ``couplings.beta``, i.e. sample
        ``couplings.with_beta(beta)`` (whose fingerprint the samples then carry).
    **options
        Method options, e.g. ``betas=``, ``swap_every=`` (parallel tempering), ``anneal=``,
        ``beta_schedule=``, ``initial=`` for the exact schemes (:mod:`pbitsim.sim.gibbs`).

    Returns
    -------
    Samples
        ``spins`` (rows, draws, n) with rows = replicas (parallel tempering: replicas * rungs);
        ``settings`` holds the arguments that reproduce the run; ``info`` the method's outputs
        (at least ``energies`` (rows, draws) for the exact schemes).

    Raises
    ------
    ValueError
        An unknown method (the message lists the available ones) or option, bad counts, a
        ``sweeps`` that is not a multiple of ``thin``; with a Runner: couplings other than the
        runner's, or arguments that belong to the runner.
    TypeError
        ``couplings`` is not a :class:`Couplings`.
    RunTooLargeError
        The draws (and chains) would not fit in the memory available (or, with ``out``, on the
        disk): checked before anything is allocated; the message gives the sizes and what to
        lower.
    FileNotFoundError
        ``out`` is in a folder that does not exist (checked before the run starts).
    RuntimeError
        The Runner given is closed.
    """
    if not isinstance(couplings, Couplings):
        raise TypeError(f"couplings must be a Couplings, not {type(couplings).__name__}")
    sweeps = _count("sweeps", sweeps, 1)
    thin = _count("thin", thin, 1)
    if sweeps % thin:
        raise ValueError(f"sweeps ({sweeps}) must be a multiple of thin ({thin})")
    burn_in = _count("burn_in", burn_in, 0)
    if chunk_draws is not None:
        chunk_draws = _count("chunk_draws", chunk_draws, 1)

    if out is not None:
        _check_out(out)

    if isinstance(method, Runner):
        runner, owned = method, False
        _check_given_runner(runner, couplings, replicas, seed, beta, options)
        name, seed = runner.method_name or type(runner).__name__, runner.seed
    else:
        replicas = 1 if replicas is None else replicas
        # before the runner allocates its chains: refuse a run that cannot fit, with its size
        rows = _count("replicas", replicas, 1) * _rungs(options.get("betas"))
        per_spin = (
            getattr(get_method(method), "state_bytes_per_spin", 0) if isinstance(method, str) else 0
        )
        check_room(rows, sweeps // thin, couplings.n, out, state=rows * couplings.n * per_spin)
        runner = open_runner(couplings, method, replicas, seed, beta=beta, **options)
        owned, name, seed = True, method, runner.seed
    try:
        return _run(runner, name, seed, sweeps, burn_in, thin, out, progress, chunk_draws, owned)
    finally:
        if owned:
            runner.close()


def _check_given_runner(runner: Runner, couplings, replicas, seed, beta, options) -> None:
    """sample(..., method=runner): the runner fixes everything but the run's length."""
    runner._check_open()
    if replicas is not None and replicas != runner.replicas:
        raise ValueError(
            f"replicas={replicas!r} differs from the runner's {runner.replicas}; a Runner "
            f"passed as method runs its own replicas"
        )
    given = [k for k, v in (("seed", seed), ("beta", beta)) if v is not None] + sorted(options)
    if given:
        raise ValueError(
            f"{given} cannot be passed with a Runner as method: they were fixed when it was "
            f"opened (open a new runner, or runner.load(couplings.with_beta(b)) for a new beta)"
        )
    if couplings.fingerprint != runner.fingerprint:
        raise ValueError(
            f"the couplings passed ({couplings.fingerprint[:16]}) are not what the runner runs "
            f"({runner.fingerprint[:16]}): call runner.load(couplings) first"
        )


def _run(runner, name, seed, sweeps, burn_in, thin, out, progress, chunk_draws, fresh) -> Samples:
    """The body of :func:`sample` once the runner is open."""
    couplings = runner.couplings
    runner.begin(burn_in + sweeps)
    rows, n, draws = runner.output_replicas, couplings.n, sweeps // thin
    check_room(rows, draws, n, out)  # the runner's own row count (parallel tempering: rungs)
    chunk = min(draws, chunk_draws or max(1, _CHUNK_BYTES // max(1, rows * n)))
    settings = {
        "method": name,
        "sweeps": sweeps,
        "burn_in": burn_in,
        "thin": thin,
        "draws": draws,
        "replicas": runner.replicas,
        "step_unit": runner.step_unit,
        "beta": couplings.beta,
        "options": {k: _recorded(v) for k, v in getattr(runner, "_opened_with", {}).items()},
        "runner": runner.settings,
        # False: the draws continue chains that ran before this call (a Runner was passed)
        "fresh_runner": fresh,
    }
    header = {
        "fingerprint": runner.fingerprint,
        "topology_fingerprint": couplings.topology_fingerprint,
        "method": name,
        "seed": seed,
        "settings": settings,
    }

    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty() and rows * n * (burn_in + sweeps) > _LONG_RUN
    stream = None if out is None else SampleStream(out, (rows, draws, n), header)
    spins = np.empty((rows, draws, n), np.int8) if stream is None else None
    extra: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        if stream is not None:  # an interruption leaves files that say how far the run got
            stack.enter_context(stream)
        bar = stack.enter_context(
            tqdm(total=burn_in + sweeps, unit="step", disable=not progress, leave=False)
        )
        # Samples always carry the energies, whatever a held runner's caller chose
        stack.callback(setattr, runner, "record_energies", runner.record_energies)
        runner.record_energies = True
        for done in range(0, burn_in, chunk * thin):
            k = min(chunk * thin, burn_in - done)
            runner.advance(k)
            bar.update(k)
        for d0 in range(0, draws, chunk):
            k = min(chunk, draws - d0)
            try:
                block = runner.draw(k, thin)
            except DrawInterrupted as e:
                _keep_received(e, stream, spins, d0, header)
                raise
            info = runner.draw_info()
            if stream is not None:
                stream.write(block, info)
            else:
                spins[:, d0 : d0 + k] = block
                for key, a in info.items():
                    if key not in extra:
                        extra[key] = np.empty((a.shape[0], draws, *a.shape[2:]), a.dtype)
                    extra[key][:, d0 : d0 + k] = a
            bar.update(k * thin)
        if stream is not None:  # hand back read-only views of the finished files
            run_info = runner.info()
            samples = stream.finish(run_info)
            # the run's values as the runner gave them (JSON turned tuples into lists)
            samples.info = {**samples.info, **run_info}
            samples.settings = settings
            return samples
    return Samples(
        spins=spins,
        fingerprint=header["fingerprint"],
        topology_fingerprint=header["topology_fingerprint"],
        method=name,
        seed=seed,
        settings=settings,
        info={**runner.info(), **extra},
    )


# -- room for a run ------------------------------------------------------------------------------


class RunTooLargeError(ValueError):
    """A run whose draws (or chains) would not fit in memory or on disk; raised before anything
    is allocated.

    Attributes
    ----------
    needed, available : int
        Bytes.
    where : str
        ``"memory"`` or ``"disk"``.
    """

    def __init__(self, message: str, needed: int, available: int, where: str) -> None:
        super().__init__(message)
        self.needed, self.available, self.where = needed, available, where

    def __reduce__(self):  # picklable (e.g. from a worker process) despite the signature
        return type(self), (str(self), self.needed, self.available, self.where)


#: bytes of per-draw info per row and draw that a method may add (energies float64, the PT
#: walker index int32), counted with the spins
_INFO_BYTES_PER_DRAW = 12
#: share of the available memory (or disk) a run may plan to use
_ROOM_SHARE = 0.9


def _size(b: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{int(b)} bytes"


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of the machine's available memory, the
    container's (cgroup v2) limit and the address-space limit (``ulimit -v``); None when none of
    them can be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            pages = int(Path("/proc/self/statm").read_text().split()[0])
            found.append(max(0, soft - pages * os.sysconf("SC_PAGE_SIZE")))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return min(found) if found else None


def check_room(rows: int, draws: int, n: int, out=None, state: int = 0) -> None:
    """Refuse (:class:`RunTooLargeError`) a run of ``rows`` x ``draws`` x ``n`` spins that would
    not fit: in memory (plus ``state`` bytes of chains), or on disk when streamed to ``out``.

    A streamed run holds one chunk in memory (about 64 MiB, at least one draw of every row).
    """
    samples = rows * draws * (n + _INFO_BYTES_PER_DRAW)
    shape = f"{rows} rows x {draws} draws x {n} spins"
    lower = "lower sweeps or replicas, or raise thin (--sweeps, --replicas, --thin)"
    if out is None:
        needed = samples + state
        what = f"{_size(samples)} of samples ({shape}, int8 plus energies)"
    else:
        needed = state + 2 * max(_CHUNK_BYTES, rows * (n + _INFO_BYTES_PER_DRAW))
        what = f"{_size(needed)} for the chains and one chunk of draws"
    if state:
        what += f" and {_size(state)} of chain state"
    free = available_memory()
    if free is not None and needed > _ROOM_SHARE * free:
        if out is None and state <= _ROOM_SHARE * free:
            hint = f"stream the draws to disk with out= (--out), or {lower}"
        else:  # the chains themselves do not fit
            hint = "lower replicas (--replicas)"
        raise RunTooLargeError(
            f"this run needs {what}: more than the {_size(free)} of memory available; {hint}",
            needed,
            free,
            "memory",
        )
    if out is not None:
        import shutil

        folder = _base(out).parent
        disk = shutil.disk_usage(folder).free
        if samples > _ROOM_SHARE * disk:
            raise RunTooLargeError(
                f"streaming this run to {folder} needs {_size(samples)} ({shape}, int8 plus "
                f"energies), more than the {_size(disk)} free there; {lower}",
                samples,
                disk,
                "disk",
            )


def _rungs(betas) -> int:
    """Rows per replica: the parallel-tempering ladder's length (1 without one)."""
    if betas is None:
        return 1
    try:
        return max(1, len(betas))
    except TypeError:
        return 1  # not a ladder: the runner's own check says so


def _check_out(out) -> None:
    folder = _base(out).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"out={str(out)!r}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"out={str(out)!r}: the folder {folder} is not writable")


# -- compilation -----------------------------------------------------------------------------


@dataclass
class CompileTime:
    """What :func:`watch_compilation` saw: seconds spent compiling (outermost compilations
    only, so nested ones are not counted twice) and how many functions were compiled."""

    seconds: float = 0.0
    functions: int = 0


@contextlib.contextmanager
def watch_compilation(on_start: Callable[[], None] | None = None) -> Iterator[CompileTime]:
    """Time Numba compilation inside the ``with`` block.

    Numba compiles a kernel the first time it is called with new argument types and keeps the
    result in its on-disk cache; a later process loads it instead (no compilation, nothing
    reported here). ``on_start`` is called once, when the first compilation starts, so a program
    can say that it is compiling rather than sampling. Without Numba installed this reports 0.

    Examples
    --------
    >>> with watch_compilation(lambda: print("compiling ...")) as compiled:  # doctest: +SKIP
    ...     s = pbitsim.sample(c, 1000)
    >>> compiled.seconds  # doctest: +SKIP
    """
    result = CompileTime()
    try:
        from numba.core import event
    except ImportError:
        yield result
        return

    class _Listener(event.Listener):
        depth = 0
        started = 0.0

        def on_start(self, ev) -> None:
            if self.depth == 0:
                if result.functions == 0 and on_start is not None:
                    on_start()
                self.started = time.perf_counter()
            self.depth += 1
            result.functions += 1

        def on_end(self, ev) -> None:
            self.depth -= 1
            if self.depth == 0:
                result.seconds += time.perf_counter() - self.started

    with event.install_listener("numba:compile", _Listener()):
        yield result


def _keep_received(e: DrawInterrupted, stream, spins, d0: int, header: dict) -> None:
    """Keep the draws an interrupted call delivered, after the ``d0`` draws before it."""
    got = np.asarray(e.received, dtype=np.int8)
    if stream is not None:
        if got.shape[1]:
            stream.write(got)  # the stream's exit then records "complete": false
        return
    kept = np.concatenate([spins[:, :d0], got], axis=1)
    e.samples = Samples(
        spins=kept,
        fingerprint=header["fingerprint"],
        topology_fingerprint=header["topology_fingerprint"],
        method=header["method"],
        seed=header["seed"],
        settings=header["settings"],
        info={},
        complete=False,
    )


def _recorded(value):
    """An option as JSON for ``Samples.settings``: large arrays by their SHA-256, objects JSON
    cannot hold by their repr."""
    import hashlib
    import json

    if isinstance(value, np.ndarray | list | tuple) and np.size(value) > 4096:
        data = np.ascontiguousarray(value)
        return {"sha256": hashlib.sha256(data.tobytes()).hexdigest(), "shape": list(data.shape)}
    value = _jsonable(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
