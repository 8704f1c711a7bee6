"""`Samples`: what every sampler returns, simulated or physical (dimod's SampleSet plays this role
for dimod). It carries the spins and everything needed to know where they came from and to
reproduce them, so diagnostics never have to ask which sampler produced them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Samples",
    "SampleStream",
    "SamplesFileError",
    "load_samples",
    "check_spins",
    "FingerprintMismatchError",
    "check_fingerprint",
    "info_path",
    "write_metadata",
]

SAMPLES_FORMAT_VERSION = 1


class SamplesFileError(ValueError):
    """Samples on disk that cannot be read as samples: metadata that is not pbitsim's JSON or does
    not match the spins, a truncated or foreign ``.npy``, spins that are not int8 +1/-1 of shape
    (replicas, draws, n). The message names the file."""


class FingerprintMismatchError(ValueError):
    """Samples were drawn from other couplings than the model they are being combined with.

    Attributes
    ----------
    sampled, model : str
        The two fingerprints.
    same_graph : bool
        Whether only the values differ (stale or retrained weights) or the graph too.
    """

    def __init__(self, sampled: str, model: str, same_graph: bool) -> None:
        self.sampled, self.model, self.same_graph = sampled, model, same_graph
        super().__init__(self.message("allow_mismatch=True"))

    def __reduce__(self):  # picklable (e.g. across worker processes) despite the signature
        return type(self), (self.sampled, self.model, self.same_graph)

    def message(self, override: str) -> str:
        """The explanation, ending with how to accept the mismatch: ``override`` is the keyword
        (``"allow_mismatch=True"``) or, from the command line, the flag (``"--allow-mismatch"``)."""
        why = (
            "same graph, different values: stale or retrained weights?"
            if self.same_graph
            else "a different graph"
        )
        return (
            f"samples were drawn from couplings {self.sampled[:16]} but the model is "
            f"{self.model[:16]} ({why}); pass {override} only if this is intended"
        )


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
    complete : bool
        False for the part of a run that was interrupted (see :class:`SampleStream`): ``spins``
        then holds the draws written before it stopped, ``settings["draws"]`` the draws planned.
    """

    spins: np.ndarray
    fingerprint: str
    topology_fingerprint: str
    method: str
    seed: int | None = None
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    complete: bool = True

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
            "complete": self.complete,
            "draws_written": self.draws,
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
    """Write ``BASE.json`` atomically: a reader (or an interruption) never sees half of it."""
    path = base.with_suffix(".json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, path)


class SampleStream:
    """Samples written to disk while they are drawn, with a note of how far the run got.

    The one mechanism for long and interrupted runs (:func:`pbitsim.sample` with ``out=`` uses
    it, and so can a host that receives draws from a board): ``BASE.npy`` (spins, int8 of the
    planned shape (rows, draws, n)), ``BASE.KEY.npy`` (per-draw info such as energies, created
    on first use) and ``BASE.json``. The JSON is written when the stream opens with
    ``"complete": false, "draws_written": 0``, rewritten after later writes (at most every
    ``note_every`` seconds, always after the arrays were flushed, so it never counts a draw that
    is not on disk), and a last time by :meth:`finish` (``"complete": true``) or, when the
    ``with`` block ends by an exception or Ctrl-C, with the draws written until then. A killed
    process leaves a note at most ``note_every`` seconds old. :func:`load_samples` reads an
    incomplete run as its first ``draws_written`` draws, with ``Samples.complete`` False.

    Draws must arrive in order: each :meth:`write` continues where the last one stopped.

    Parameters
    ----------
    base : path
        ``BASE`` (a ``.npy`` or ``.json`` suffix is dropped).
    shape : (rows, draws, n)
        The planned shape.
    header : dict
        ``fingerprint``, ``topology_fingerprint``, ``method``, ``seed``, ``settings`` and
        optionally ``info`` (JSON-able run outputs known so far).
    note_every : float
        Seconds between metadata rewrites while drawing.

    Examples
    --------
    >>> with SampleStream("run", (2, 100, 8), header) as stream:  # doctest: +SKIP
    ...     for chunk in chunks:  # int8 (2, k, 8)
    ...         stream.write(chunk, {"energies": e})
    ...     samples = stream.finish(info={"swap_acceptance": [...]})
    """

    def __init__(self, base, shape: tuple, header: dict, note_every: float = 1.0) -> None:
        from numpy.lib.format import open_memmap

        self.base = _base(base)
        self.shape = tuple(int(x) for x in shape)
        if len(self.shape) != 3 or min(self.shape) < 0:
            raise ValueError(f"shape must be (rows, draws, n), not {shape!r}")
        missing = {"fingerprint", "topology_fingerprint", "method"} - set(header)
        if missing:
            raise ValueError(f"header lacks {sorted(missing)}")
        self.header = dict(header)
        self.note_every = float(note_every)
        self.written = 0
        self.finished = False
        self._extra: dict[str, np.ndarray] = {}
        self._spins = open_memmap(
            self.base.with_suffix(".npy"), mode="w+", dtype=np.int8, shape=self.shape
        )
        self._noted = time.monotonic()
        self.note()

    def __enter__(self) -> SampleStream:
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished:
            self.note()  # interrupted: say how far it got

    def write(self, spins: np.ndarray, info: dict | None = None) -> None:
        """Append draws: int8 spins (rows, k, n) and per-draw arrays (rows, k, ...)."""
        rows, k = self.shape[0], spins.shape[1]
        d0 = self.written
        if d0 + k > self.shape[1]:
            raise ValueError(f"{d0} + {k} draws exceed the {self.shape[1]} planned")
        self._spins[:, d0 : d0 + k] = spins
        for key, a in (info or {}).items():
            if key not in self._extra:
                from numpy.lib.format import open_memmap

                self._extra[key] = open_memmap(
                    info_path(self.base, key),
                    mode="w+",
                    dtype=a.dtype,
                    shape=(rows, self.shape[1], *a.shape[2:]),
                )
            self._extra[key][:, d0 : d0 + k] = a
        self.written = d0 + k
        if time.monotonic() - self._noted >= self.note_every:
            self.note()

    def note(self, info: dict | None = None) -> None:
        """Flush the arrays, then write the metadata with the draws on disk now."""
        self._spins.flush()
        for a in self._extra.values():
            a.flush()
        complete = self.finished
        meta = {
            "format_version": SAMPLES_FORMAT_VERSION,
            "fingerprint": self.header["fingerprint"],
            "topology_fingerprint": self.header["topology_fingerprint"],
            "method": self.header["method"],
            "seed": self.header.get("seed"),
            "settings": self.header.get("settings", {}),
            "info": {
                **{k: _jsonable(v) for k, v in (info or self.header.get("info", {})).items()},
                **{k: {"npy": info_path(self.base, k).name} for k in self._extra},
            },
            "shape": list(self.shape),
            "complete": complete,
            "draws_written": self.written,
        }
        write_metadata(self.base, meta)
        self._noted = time.monotonic()

    def finish(self, info: dict | None = None) -> Samples:
        """Mark the run complete (every planned draw written) and return it as read-only maps.

        ``info``: JSON-able run outputs (per-draw arrays were given to :meth:`write`).
        """
        if self.written != self.shape[1]:
            raise ValueError(
                f"only {self.written} of {self.shape[1]} planned draws were written; "
                f"an unfinished stream is closed by leaving its with block"
            )
        self.finished = True
        self.note(info)
        del self._spins, self._extra
        return load_samples(self.base, check=False)


def _meta_field(meta: dict, key: str, kind, where: Path):
    if key not in meta:
        raise SamplesFileError(f"{where}: metadata has no {key!r}")
    value = meta[key]
    if not isinstance(value, kind):
        raise SamplesFileError(f"{where}: metadata field {key!r} has the wrong type")
    return value


def _npy(path: Path, mmap: bool, what: str) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        # e.g. "mmap length is greater than file size": a truncated file
        raise SamplesFileError(
            f"{path}: not a readable .npy array ({e}); the file is truncated or not pbitsim's"
        ) from None


def check_spins(spins: np.ndarray, where: str = "spins") -> None:
    """Raise :class:`SamplesFileError` unless ``spins`` is int8 (replicas, draws, n) of +-1.

    The values are checked a block at a time, so a memory-mapped file of any size is checked in
    bounded memory.
    """
    if spins.dtype != np.int8:
        raise SamplesFileError(
            f"{where}: spins must be int8 +1/-1, not {spins.dtype} (convert with "
            f"np.where(x > 0, 1, -1).astype(np.int8) if the values mean spins)"
        )
    if spins.ndim != 3:
        raise SamplesFileError(
            f"{where}: spins must have shape (replicas, draws, n), not {spins.shape}"
        )
    rows, draws, n = spins.shape
    step = max(1, (1 << 24) // max(1, rows * n))
    for t0 in range(0, draws, step):
        block = np.asarray(spins[:, t0 : t0 + step])
        bad = (block != 1) & (block != -1)
        if bad.any():
            r, t, i = (int(x[0]) for x in np.nonzero(bad))
            raise SamplesFileError(
                f"{where}: spins must be +1/-1, found {int(block[r, t, i])} at [{r}, {t0 + t}, {i}]"
            )


def load_samples(path, mmap: bool = True, check: bool = True) -> Samples:
    """Read samples written by :meth:`Samples.save`, a streamed run or a :class:`SampleStream`
    (``PATH.npy`` + ``PATH.json``).

    An interrupted run (``"complete": false`` in its metadata) comes back as the draws it wrote,
    with ``Samples.complete`` False.

    Parameters
    ----------
    path : path
        ``PATH``, ``PATH.npy`` or ``PATH.json``.
    mmap : bool
        Memory-map the arrays read-only instead of reading them.
    check : bool
        Check that every spin is +1 or -1 (reads the whole file once, a block at a time).

    Raises
    ------
    FileNotFoundError
        A file is missing.
    SamplesFileError
        Anything else: unreadable or inconsistent metadata, a truncated or foreign ``.npy``,
        spins that are not int8 +-1 of shape (replicas, draws, n).
    """
    base = _base(path)
    meta_path = base.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(
            f"sample metadata {meta_path} does not exist (pbitsim reads samples as PATH.npy "
            f"with PATH.json, as written by `pbitsim sample --out` or Samples.save)"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SamplesFileError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise SamplesFileError(f"{meta_path}: metadata must be a JSON object")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > SAMPLES_FORMAT_VERSION:
        raise SamplesFileError(
            f"{meta_path}: samples format version {version!r} is newer than this "
            f"pbitsim reads ({SAMPLES_FORMAT_VERSION}); upgrade pbitsim"
        )
    shape = _meta_field(meta, "shape", list, meta_path)
    if len(shape) != 3 or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise SamplesFileError(f"{meta_path}: 'shape' must be [replicas, draws, n], not {shape}")
    npy = base.with_suffix(".npy")
    spins = _npy(npy, mmap, "samples file")
    if spins.dtype != np.int8 or spins.ndim != 3:
        check_spins(spins, str(npy))  # names the dtype or shape problem
    if list(spins.shape) != shape:
        raise SamplesFileError(
            f"{npy} has shape {spins.shape} but its metadata says {shape}: the files do not "
            f"belong together"
        )
    complete = meta.get("complete", True)
    written = meta.get("draws_written", shape[1])
    if not isinstance(complete, bool) or not isinstance(written, int):
        raise SamplesFileError(f"{meta_path}: 'complete' / 'draws_written' have the wrong type")
    if not 0 <= written <= shape[1] or (complete and written != shape[1]):
        raise SamplesFileError(
            f"{meta_path}: draws_written = {written} does not fit {shape[1]} planned draws"
        )
    if written < shape[1]:
        spins = spins[:, :written]
    if check:
        check_spins(spins, str(npy))
    info = {}
    raw_info = _meta_field(meta, "info", dict, meta_path) if "info" in meta else {}
    for k, v in raw_info.items():
        if isinstance(v, dict) and list(v) == ["npy"]:
            a = _npy(base.parent / str(v["npy"]), mmap, f"info array {k!r}")
            if a.ndim < 2 or a.shape[:2] != tuple(shape[:2]):
                raise SamplesFileError(
                    f"{base.parent / str(v['npy'])}: shape {a.shape} does not start with "
                    f"(rows, draws) = {tuple(shape[:2])}"
                )
            v = a[:, :written] if written < shape[1] else a
        info[k] = v
    return Samples(
        spins=spins,
        fingerprint=_meta_field(meta, "fingerprint", str, meta_path),
        topology_fingerprint=_meta_field(meta, "topology_fingerprint", str, meta_path),
        method=_meta_field(meta, "method", str, meta_path),
        seed=meta.get("seed"),
        settings=meta.get("settings", {}) if isinstance(meta.get("settings"), dict) else {},
        info=info,
        complete=complete,
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
    raise FingerprintMismatchError(
        samples.fingerprint,
        couplings.fingerprint,
        samples.topology_fingerprint == couplings.topology_fingerprint,
    )
