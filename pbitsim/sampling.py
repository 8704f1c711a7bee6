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
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pbitsim.couplings import Couplings

__all__ = ["Runner", "register_method", "methods", "get_method"]

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
    _load_builtin()
    if name not in _METHODS:
        raise ValueError(f"unknown sampling method {name!r}; available: {sorted(_METHODS)}")
    return _METHODS[name]


def _load_builtin() -> None:
    """Import the modules that register the built-in methods (kept lazy: Numba is slow to load)."""
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# Modules whose import registers methods. Add a module here when it registers a new one.
_BUILTIN_MODULES: list[str] = [
    "pbitsim.sim.hardware",
    "pbitsim.sim.async_",
]
