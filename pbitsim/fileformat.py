"""The on-disk coupling file (``.pbit``), version 1. Byte layout: ``docs/coupling-format.md``.

    offset  size  content
    0       8     magic b"PBITSIM\\0"
    8       2     format version, uint16 LE (1)
    10      2     reserved, uint16 LE (0)
    12      4     header length L, uint32 LE
    16      L     header: UTF-8 JSON object
    16+L    ...   arrays, little-endian, no padding: h f64[n], coloring i32[n],
                  edge_i u32[m], edge_j u32[m], edge_w f64[m]   (edges i < j, sorted)
    end-32  32    SHA-256 of every byte before it

A reader needs only ``struct``, ``json`` and ``hashlib`` (or numpy) to decode it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings, CouplingsError
from pbitsim.fixedpoint import FixedPointSpec

MAGIC = b"PBITSIM\0"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHHI")
#: edges per pass when the reader places the weights: its temporaries stay a few MB
_CHUNK = 1 << 16


class CouplingFileError(CouplingsError):
    """A coupling file that cannot be read: not a .pbit file, corrupted, or from a newer pbitsim."""


def _parts(c: Couplings):
    """The file's bytes in order, piece by piece (arrays as they are, no copy when they are in
    the file's types already), without the trailing checksum."""
    from pbitsim import __version__

    i, j, w = c.edges()
    header = {
        "n": c.n,
        "n_edges": len(i),
        "beta": c.beta,
        "fixed_point": c.fixed_point.to_dict() if c.fixed_point else None,
        "names": c.names,
        "fingerprint": c.fingerprint,
        "topology_fingerprint": c.topology_fingerprint,
        "values_fingerprint": c.values_fingerprint,
        "created_by": f"pbitsim {__version__}",
    }
    hb = json.dumps(header, sort_keys=True).encode("utf-8")
    yield _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hb))
    yield hb
    yield (c.h + 0.0).astype("<f8", copy=False)
    yield np.ascontiguousarray(c.coloring, dtype="<i4")
    yield i.astype("<u4")
    yield j.astype("<u4")
    yield (w + 0.0).astype("<f8", copy=False)


def encode(c: Couplings) -> bytes:
    """The bytes of the ``.pbit`` file of ``c``."""
    body = b"".join(bytes(memoryview(p)) for p in _parts(c))
    return body + hashlib.sha256(body).digest()


class _Reader:
    """The bytes of a file (or of a blob) read front to back once, hashed as they are read.

    Reading a file goes straight into the arrays (no copy of the whole file is ever held), and
    the SHA-256 trailer is checked against the running hash at the end (:meth:`verify`).
    """

    def __init__(self, source: str, blob: bytes | None = None, f=None, size: int = 0) -> None:
        self.source, self._f = source, f
        self._blob = None if blob is None else memoryview(blob)
        self.size = len(blob) if blob is not None else size
        self.body = self.size - 32  # bytes before the trailer
        self.pos = 0
        self._hash = hashlib.sha256()

    def bytes(self, count: int) -> bytes:
        """The next ``count`` bytes (``count`` <= what is left before the trailer)."""
        if self._blob is not None:
            data = bytes(self._blob[self.pos : self.pos + count])
        else:
            data = self._f.read(count)
        self._hash.update(data)
        self.pos += count
        return data

    def array(self, dtype: str, count: int) -> np.ndarray:
        """The next ``count`` values of ``dtype`` as an array of its own (writable)."""
        a = np.empty(count, dtype)
        if self._blob is not None:
            a[:] = np.frombuffer(self._blob, dtype, count, self.pos)
        else:
            view = memoryview(a).cast("B")
            got = 0
            while got < a.nbytes:  # readinto may return less than asked
                k = self._f.readinto(view[got:])
                if not k:
                    break
                got += k
            if got != a.nbytes:
                raise CouplingFileError(f"{self.source}: the file changed while it was read")
        self._hash.update(a)
        self.pos += a.nbytes
        return a

    def verify(self) -> None:
        """Hash whatever was not read yet, then compare with the trailer."""
        while self.pos < self.body:
            self.bytes(min(1 << 22, self.body - self.pos))
        if self._blob is not None:
            digest = bytes(self._blob[self.body :])
        else:
            digest = self._f.read(32)
        if self._hash.digest() != digest:
            raise CouplingFileError(
                f"{self.source}: checksum mismatch: the file is corrupted or truncated"
            )


def decode(blob: bytes, source: str = "<bytes>") -> Couplings:
    """The :class:`Couplings` encoded in ``blob`` (the bytes of a ``.pbit`` file).

    Every header field is checked for type and range before anything is allocated, and the
    array sizes it implies must match the bytes present, so no file, however crafted (even with a
    valid checksum), makes the reader allocate more than a small multiple of its own size.

    Raises
    ------
    CouplingFileError
        For every problem, with ``source`` and the field or check that failed in the message.
    """
    return _read(_Reader(source, blob=blob))


def _read(r: _Reader) -> Couplings:
    """Read a whole file from ``r`` (see ``docs/coupling-format.md`` for the order of checks).

    Errors found before the checksum could be compared (a header past the end, sizes that do
    not add up, an edge out of range) are raised only once the rest of the file is hashed and
    its checksum holds: a corrupted file is always reported as such.
    """
    source = r.source
    if r.size < _PREFIX.size + 32:
        raise CouplingFileError(f"{source}: too short ({r.size} bytes) to be a .pbit file")
    magic, version, _reserved, hlen = _PREFIX.unpack(r.bytes(_PREFIX.size))
    if magic != MAGIC:
        raise CouplingFileError(f"{source}: not a pbitsim coupling file (bad magic {magic!r})")
    if version > FORMAT_VERSION:
        raise CouplingFileError(
            f"{source}: file format version {version} is newer than this pbitsim reads "
            f"(up to {FORMAT_VERSION}); upgrade pbitsim"
        )
    if version < 1:
        raise CouplingFileError(f"{source}: invalid format version {version}")
    try:
        parts = _read_body(r, hlen)
    except CouplingFileError:
        r.verify()  # a checksum mismatch is the error to report, if there is one
        raise
    r.verify()
    n, beta, names, spec, stored, h, coloring, csr = parts
    try:
        c = Couplings(*csr, h, beta, coloring=coloring, names=names, fixed_point=spec)
    except CouplingFileError:
        raise
    except CouplingsError as e:  # the content is not a valid model: say which file
        raise CouplingFileError(f"{source}: {e}") from None
    for key, value in stored.items():
        if value != getattr(c, key):
            raise CouplingFileError(
                f"{source}: stored {key} {value[:16]}... does not match the "
                f"content ({getattr(c, key)[:16]}...): the file was altered"
            )
    return c


def _read_body(r: _Reader, hlen: int):
    """Header and arrays of the file, up to (not including) the checksum."""
    source = r.source
    if _PREFIX.size + hlen > r.body:
        raise CouplingFileError(
            f"{source}: header length {hlen} runs past the end of the file ({r.size} bytes)"
        )
    header = _read_header(r.bytes(hlen), source)
    n = _header_int(header, "n", 1, source)
    m = _header_int(header, "n_edges", 0, source)
    need = _PREFIX.size + hlen + 8 * n + 4 * n + 4 * m + 4 * m + 8 * m
    if need != r.body:
        raise CouplingFileError(
            f"{source}: header says n={n}, {m} edges ({need} bytes) but body has {r.body}"
        )
    beta = _header_beta(header, source)
    names = _header_names(header, n, source)
    spec = _header_fixed_point(header, source)
    stored = {}
    for key in ("topology_fingerprint", "values_fingerprint", "fingerprint"):
        value = header.get(key)
        if not isinstance(value, str):
            raise CouplingFileError(
                f"{source}: header field {key!r} must be a hex string, not {_short(value)}"
            )
        stored[key] = value
    h = r.array("<f8", n).astype(np.float64, copy=False)
    coloring = r.array("<i4", n).astype(np.int32, copy=False)
    ei = r.array("<u4", m).astype(np.uint32, copy=False)
    ej = r.array("<u4", m).astype(np.uint32, copy=False)
    csr = _csr_from_edges(r, n, ei, ej)
    return n, beta, names, spec, stored, h, coloring, csr


def _csr_from_edges(r: _Reader, n: int, ei: np.ndarray, ej: np.ndarray):
    """CSR arrays (indptr, indices, data) of the symmetric J whose upper triangle is the edge
    list (ei, ej) with the weights that follow in ``r``.

    Row i of J is its lower part (edges (k, i), k < i, in order of k) followed by its upper part
    (edges (i, j) in order of j). For the canonical edge order (sorted by (i, j)) each weight is
    read in chunks and placed at once: the upper entry at a fixed offset of its row, the lower
    entry at the next free slot of row j (a counting sort, chunk by chunk), so the reader holds
    the result, the two index arrays and counters of n entries, never a sort key per edge.
    Edges in another order are sorted first (more memory; pbitsim writes them sorted).
    """
    source, m = r.source, len(ei)
    if m and (np.any(ei >= ej) or np.any(ej >= n)):
        raise CouplingFileError(f"{source}: edge list must have 0 <= i < j < n")
    step = (ei[1:] > ei[:-1]) | ((ei[1:] == ei[:-1]) & (ej[1:] > ej[:-1]))
    w = None
    if not step.all():  # not in (i, j) order: sort, then look for repeats
        w = r.array("<f8", m).astype(np.float64, copy=False)
        order = np.lexsort((ej, ei))
        ei, ej, w = ei[order], ej[order], w[order]
        if np.any((ei[1:] == ei[:-1]) & (ej[1:] == ej[:-1])):
            raise CouplingFileError(f"{source}: an edge is listed twice")
    del step
    index = np.int32 if 2 * m < 2**31 else np.int64
    lower = np.bincount(ej, minlength=n).astype(index)  # entries left of the diagonal, per row
    upper = np.bincount(ei, minlength=n).astype(index)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(lower, out=indptr[1:])
    indptr[1:] += np.cumsum(upper, dtype=index)
    # upper entry of edge k: slot shift[i] + k (its rank among the edges of row i is k - first)
    shift = indptr[:-1].astype(index)
    shift += lower
    del lower
    upper -= np.cumsum(upper, dtype=index)  # minus the edges of the rows before
    shift += upper
    del upper
    fill = indptr[:-1].astype(index)  # next free lower slot of each row
    indices = np.empty(2 * m, np.int32)
    data = np.empty(2 * m)
    for k0 in range(0, m, _CHUNK):
        k1 = min(m, k0 + _CHUNK)
        i, j = ei[k0:k1], ej[k0:k1]
        wk = w[k0:k1] if w is not None else r.array("<f8", k1 - k0).astype(np.float64, copy=False)
        up = shift[i] + np.arange(k0, k1, dtype=index)
        indices[up] = j
        data[up] = wk
        # stable by j: edges come in (i, j) order, so (j, i) order is; unique int64 keys sort
        # with numpy's vectorised quicksort (a stable sort of j alone is timsort, 3x slower)
        order = np.argsort(j.astype(np.int64) * (int(i[-1]) - int(i[0]) + 1) + (i - i[0]))
        sj = j[order]
        first = np.flatnonzero(np.concatenate([[True], sj[1:] != sj[:-1]]))
        counts = np.diff(np.append(first, len(sj))).astype(index)
        low = fill[sj] + (np.arange(len(sj), dtype=index) - np.repeat(first.astype(index), counts))
        fill[sj[first]] += counts
        indices[low] = i[order]
        data[low] = wk[order]
    return indptr, indices, data


def _short(value) -> str:
    """A field's value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_header(raw: bytes, source: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError and integers too long to convert
        raise CouplingFileError(f"{source}: unreadable header ({_short(str(e))})") from None
    if not isinstance(header, dict):
        raise CouplingFileError(
            f"{source}: the header must be a JSON object, not {type(header).__name__}"
        )
    return header


def _header_int(header: dict, key: str, low: int, source: str) -> int:
    if key not in header:
        raise CouplingFileError(f"{source}: header has no {key!r}")
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CouplingFileError(
            f"{source}: header field {key!r} must be an integer >= {low}, not {_short(value)}"
        )
    return value


def _header_beta(header: dict, source: str) -> float:
    if "beta" not in header:
        raise CouplingFileError(f"{source}: header has no 'beta'")
    beta = header["beta"]
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < math.inf:
        raise CouplingFileError(
            f"{source}: header field 'beta' must be a finite number > 0, not {_short(beta)}"
        )
    return float(beta)


def _header_names(header: dict, n: int, source: str) -> list[str] | None:
    names = header.get("names")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise CouplingFileError(f"{source}: header field 'names' must be null or a list of strings")
    if len(names) != n:
        raise CouplingFileError(f"{source}: header has {len(names)} names for n={n} spins")
    return names


def _header_fixed_point(header: dict, source: str) -> FixedPointSpec | None:
    fp = header.get("fixed_point")
    if fp is None:
        return None
    if not isinstance(fp, dict):
        raise CouplingFileError(
            f"{source}: header field 'fixed_point' must be null or an object, not {_short(fp)}"
        )
    try:
        return FixedPointSpec.from_dict(fp)
    except (TypeError, ValueError) as e:
        raise CouplingFileError(f"{source}: invalid 'fixed_point' ({_short(str(e))})") from None


def save_couplings(c: Couplings, path) -> None:
    """Write the file of ``c`` piece by piece (hashed as written: no copy of the whole file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    digest = hashlib.sha256()
    with open(tmp, "wb") as f:
        for part in _parts(c):
            digest.update(part)
            f.write(part)
        f.write(digest.digest())
    os.replace(tmp, path)  # never leave a half-written model behind


def load(path) -> Couplings:
    """Read a ``.pbit`` coupling file written by :meth:`Couplings.save`.

    The file is read once, front to back, into the arrays it holds (no copy of the whole file),
    hashed as it is read: a 10^6-spin model loads in about as much memory as the model holds.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"coupling file {path} does not exist") from None
    with f:
        return _read(_Reader(str(path), f=f, size=os.fstat(f.fileno()).st_size))
