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
* ``begin(steps)``: called by ``sample`` once before burn-in with the run's total steps
  (burn_in + sweeps), e.g. for an annealing ramp over the whole run.
"""

from __future__ import annotations

import os
import secrets
import sys
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.samples import Samples, _base, _jsonable, info_path, write_metadata

__all__ = ["Runner", "register_method", "methods", "get_method", "sample"]

_METHODS: dict[str, type[Runner]] = {}


class Runner(ABC):
    """Base class of a sampling method's per-run state (see the module docstring)."""

    #: what one unit of ``sweeps`` means for this method (e.g. "sweep", "chromatic step", "cycle")
    step_unit = "sweep"

    def __init__(
        self, couplings: Couplings, replicas: int = 1, seed: int | None = None, **options
    ) -> None:
        self.couplings = couplings
        self.replicas = int(replicas)
        self.seed = seed
        self.settings: dict = dict(options)

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

    def draw_info(self) -> dict:
        """Per-draw arrays (output_replicas, k, ...) of the last :meth:`draw` call."""
        return {}

    def begin(self, steps: int) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Told by :func:`sample` the total steps of the run (burn_in + sweeps) before it starts."""

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the couplings actually run (a board overrides this with its report)."""
        return self.couplings.fingerprint


def register_method(name: str):
    """Class decorator: make a :class:`Runner` available as ``sample(..., method=name)``."""

    def deco(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"sampling method {name!r} is already registered")
        _METHODS[name] = cls
        cls.method_name = name
        return cls

    return deco


def methods() -> list[str]:
    _load_builtin()
    return sorted(_METHODS)


def get_method(name: str) -> type[Runner]:
    _load_builtin(until=name)
    if name not in _METHODS:
        raise ValueError(f"unknown sampling method {name!r}; available: {sorted(_METHODS)}")
    return _METHODS[name]


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


def sample(
    couplings: Couplings,
    sweeps: int,
    *,
    method: str = "chromatic",
    replicas: int = 1,
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
    method : str
        A registered method, see :func:`methods` (``"chromatic"``, ``"sequential"``,
        ``"random-scan"``, ``"async"``, ``"hardware"``, ...).
    replicas : int
        Independent chains (parallel tempering: chains of ``len(betas)`` rungs each).
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
        ``sweeps`` that is not a multiple of ``thin``.
    TypeError
        ``couplings`` is not a :class:`Couplings`.
    """
    if not isinstance(couplings, Couplings):
        raise TypeError(f"couplings must be a Couplings, not {type(couplings).__name__}")
    sweeps = _count("sweeps", sweeps, 1)
    thin = _count("thin", thin, 1)
    if sweeps % thin:
        raise ValueError(f"sweeps ({sweeps}) must be a multiple of thin ({thin})")
    replicas = _count("replicas", replicas, 1)
    burn_in = _count("burn_in", burn_in, 0)
    if chunk_draws is not None:
        chunk_draws = _count("chunk_draws", chunk_draws, 1)
    seed = secrets.randbits(63) if seed is None else _count("seed", seed, 0)
    cls = get_method(method)
    _check_options(cls, method, options)
    if beta is not None:
        couplings = couplings.with_beta(beta)

    runner = cls(couplings, replicas=replicas, seed=seed, **options)
    runner.begin(burn_in + sweeps)
    rows, n, draws = runner.output_replicas, couplings.n, sweeps // thin
    chunk = min(draws, chunk_draws or max(1, _CHUNK_BYTES // max(1, rows * n)))
    base = None if out is None else _base(out)
    spins = _allocate(base and base.with_suffix(".npy"), (rows, draws, n), np.int8)
    extra: dict[str, np.ndarray] = {}

    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty() and rows * n * (burn_in + sweeps) > _LONG_RUN
    with tqdm(total=burn_in + sweeps, unit="step", disable=not progress, leave=False) as bar:
        for done in range(0, burn_in, chunk * thin):
            k = min(chunk * thin, burn_in - done)
            runner.advance(k)
            bar.update(k)
        for d0 in range(0, draws, chunk):
            k = min(chunk, draws - d0)
            spins[:, d0 : d0 + k] = runner.draw(k, thin)
            for key, a in runner.draw_info().items():
                if key not in extra:
                    path = base and info_path(base, key)
                    extra[key] = _allocate(path, (a.shape[0], draws, *a.shape[2:]), a.dtype)
                extra[key][:, d0 : d0 + k] = a
            bar.update(k * thin)

    info = runner.info()
    settings = {
        "method": method,
        "sweeps": sweeps,
        "burn_in": burn_in,
        "thin": thin,
        "draws": draws,
        "replicas": replicas,
        "step_unit": runner.step_unit,
        "beta": couplings.beta,
        "options": {k: _recorded(v) for k, v in options.items()},
        "runner": runner.settings,
    }
    if base is not None:  # hand back read-only views of the finished files
        spins.flush()
        spins = np.load(base.with_suffix(".npy"), mmap_mode="r")
        for key, a in extra.items():
            a.flush()
            extra[key] = np.load(info_path(base, key), mmap_mode="r")
    info.update(extra)
    samples = Samples(
        spins=spins,
        fingerprint=runner.fingerprint,
        topology_fingerprint=couplings.topology_fingerprint,
        method=method,
        seed=seed,
        settings=settings,
        info=info,
    )
    if base is not None:
        write_metadata(base, samples.metadata(base))
    return samples


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


def _allocate(path: Path | None, shape: tuple, dtype) -> np.ndarray:
    """An array in memory, or a .npy file mapped into memory when a path is given."""
    if path is None:
        return np.empty(shape, dtype)
    from numpy.lib.format import open_memmap

    return open_memmap(path, mode="w+", dtype=dtype, shape=shape)
