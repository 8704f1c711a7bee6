"""`Samples`: what every sampler returns, simulated or physical (dimod's SampleSet plays this role
for dimod). It carries the spins and everything needed to know where they came from and to
reproduce them, so diagnostics never have to ask which sampler produced them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Samples",
    "load_samples",
    "FingerprintMismatchError",
    "check_fingerprint",
    "info_path",
    "write_metadata",
]

SAMPLES_FORMAT_VERSION = 1


class FingerprintMismatchError(ValueError):
    """Samples were drawn from other couplings than the model they are being combined with."""


@dataclass
class Samples:
    """Spins drawn from a p-bit model.

    Attributes
    ----------
    spins : np.ndarray of int8, shape (replicas, draws, n)
        +1/-1 states; ``spins[r, t]`` is draw t of replica r (draws are in chain order). May be a
        read-only ``np.memmap`` when the run was streamed to disk.
    fingerprint : str
        :attr:`Couplings.fingerprint` of the couplings actually sampled (for a board: what the board
        reported it runs).
    topology_fingerprint : str
    method : str
        Sampler name (``"chromatic"``, ``"sequential"``, ``"random-scan"``, ``"async"``,
        ``"hardware"``, ``"board"``...).
    seed : int or None
    settings : dict
        Every setting needed to reproduce the run (sweeps, burn_in, thin, replicas, beta or the
        beta ladder, method options). JSON-serialisable.
    info : dict
        Per-run outputs beyond the spins (e.g. parallel tempering swap acceptance per rung,
        round trips, the beta of each replica). Values are numbers, lists or numpy arrays.
    """

    spins: np.ndarray
    fingerprint: str
    topology_fingerprint: str
    method: str
    seed: int | None = None
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.spins
        if s.ndim != 3:
            raise ValueError(f"Samples.spins must have shape (replicas, draws, n), not {s.shape}")
        if s.dtype != np.int8:
            raise TypeError(f"Samples.spins must be int8, not {s.dtype}")

    @property
    def replicas(self) -> int:
        return self.spins.shape[0]

    @property
    def draws(self) -> int:
        return self.spins.shape[1]

    @property
    def n(self) -> int:
        return self.spins.shape[2]

    def flat(self) -> np.ndarray:
        """All draws of all replicas stacked: (replicas * draws, n)."""
        return np.asarray(self.spins).reshape(-1, self.n)

    def metadata(self, base: Path | None = None) -> dict:
        """The JSON metadata. With ``base``, per-draw info arrays (numpy, 2 or more dimensions,
        e.g. ``energies``) are referenced as ``{"npy": file}`` files beside it (see
        :func:`info_path`) instead of being written inline."""
        info = {
            k: {"npy": info_path(base, k).name}
            if base is not None and _per_draw(v)
            else _jsonable(v)
            for k, v in self.info.items()
        }
        return {
            "format_version": SAMPLES_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "topology_fingerprint": self.topology_fingerprint,
            "method": self.method,
            "seed": self.seed,
            "settings": self.settings,
            "info": info,
            "shape": list(self.spins.shape),
        }

    def save(self, path) -> Path:
        """Write ``PATH.npy`` (spins), ``PATH.KEY.npy`` (per-draw info arrays) and ``PATH.json``
        (metadata); returns the .npy path.

        Long runs stream straight into these files (see :func:`pbitsim.sample` ``out=``); this
        writes them for samples held in memory.
        """
        base = _base(path)
        np.save(base.with_suffix(".npy"), np.asarray(self.spins))
        for k, v in self.info.items():
            if _per_draw(v):
                np.save(info_path(base, k), np.asarray(v))
        write_metadata(base, self.metadata(base))
        return base.with_suffix(".npy")

    def __repr__(self) -> str:
        return (
            f"Samples(method={self.method!r}, replicas={self.replicas}, draws={self.draws}, "
            f"n={self.n}, fingerprint={self.fingerprint[:12]})"
        )


def _base(path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".npy", ".json") else p


def info_path(base: Path, key: str) -> Path:
    """Where a per-draw info array of the samples at ``base`` lives: ``BASE.KEY.npy``."""
    return base.with_name(f"{base.name}.{key}.npy")


def _per_draw(v) -> bool:
    return isinstance(v, np.ndarray) and v.ndim >= 2


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def write_metadata(base: Path, meta: dict) -> None:
    base.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def load_samples(path, mmap: bool = True) -> Samples:
    """Read samples written by :meth:`Samples.save` or a streamed run (``PATH.npy`` + ``.json``)."""
    base = _base(path)
    meta_path = base.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(f"sample metadata {meta_path} does not exist")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version", 0) > SAMPLES_FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: samples format version {meta['format_version']} is newer than this "
            f"pbitsim reads ({SAMPLES_FORMAT_VERSION}); upgrade pbitsim"
        )
    spins = np.load(base.with_suffix(".npy"), mmap_mode="r" if mmap else None)
    if list(spins.shape) != meta["shape"]:
        raise ValueError(
            f"{base}.npy has shape {spins.shape} but its metadata says {meta['shape']}: the run "
            f"was interrupted or the files do not belong together"
        )
    info = {
        k: np.load(base.parent / v["npy"], mmap_mode="r" if mmap else None)
        if isinstance(v, dict) and list(v) == ["npy"]
        else v
        for k, v in meta.get("info", {}).items()
    }
    return Samples(
        spins=spins,
        fingerprint=meta["fingerprint"],
        topology_fingerprint=meta["topology_fingerprint"],
        method=meta["method"],
        seed=meta.get("seed"),
        settings=meta.get("settings", {}),
        info=info,
    )


def check_fingerprint(samples: Samples, couplings, allow_mismatch: bool = False) -> None:
    """Refuse to combine samples with a model whose fingerprint differs (stale-weights guard)."""
    if samples.fingerprint == couplings.fingerprint:
        return
    if allow_mismatch:
        import warnings

        warnings.warn(
            "samples' couplings fingerprint differs from the model's (override accepted)",
            stacklevel=2,
        )
        return
    same_graph = samples.topology_fingerprint == couplings.topology_fingerprint
    raise FingerprintMismatchError(
        f"samples were drawn from couplings {samples.fingerprint[:16]} but the model is "
        f"{couplings.fingerprint[:16]} ("
        + (
            "same graph, different values: stale or retrained weights?"
            if same_graph
            else "a different graph"
        )
        + "); pass allow_mismatch=True only if this is intended"
    )
