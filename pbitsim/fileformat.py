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


class CouplingFileError(CouplingsError):
    """A coupling file that cannot be read: not a .pbit file, corrupted, or from a newer pbitsim."""


def encode(c: Couplings) -> bytes:
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
    body = b"".join(
        [
            _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hb)),
            hb,
            (c.h + 0.0).astype("<f8").tobytes(),
            c.coloring.astype("<i4").tobytes(),
            i.astype("<u4").tobytes(),
            j.astype("<u4").tobytes(),
            (w + 0.0).astype("<f8").tobytes(),
        ]
    )
    return body + hashlib.sha256(body).digest()


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
    if len(blob) < _PREFIX.size + 32:
        raise CouplingFileError(f"{source}: too short ({len(blob)} bytes) to be a .pbit file")
    magic, version, _reserved, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise CouplingFileError(f"{source}: not a pbitsim coupling file (bad magic {magic!r})")
    if version > FORMAT_VERSION:
        raise CouplingFileError(
            f"{source}: file format version {version} is newer than this pbitsim reads "
            f"(up to {FORMAT_VERSION}); upgrade pbitsim"
        )
    if version < 1:
        raise CouplingFileError(f"{source}: invalid format version {version}")
    body, digest = blob[:-32], blob[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise CouplingFileError(f"{source}: checksum mismatch: the file is corrupted or truncated")
    if _PREFIX.size + hlen > len(body):
        raise CouplingFileError(
            f"{source}: header length {hlen} runs past the end of the file ({len(blob)} bytes)"
        )
    header = _read_header(blob[_PREFIX.size : _PREFIX.size + hlen], source)
    n = _header_int(header, "n", 1, source)
    m = _header_int(header, "n_edges", 0, source)
    off = _PREFIX.size + hlen
    need = off + 8 * n + 4 * n + 4 * m + 4 * m + 8 * m
    if need != len(body):
        raise CouplingFileError(
            f"{source}: header says n={n}, {m} edges ({need} bytes) but body has {len(body)}"
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

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(body, dtype=dtype, count=count, offset=off)
        off += a.nbytes
        return a

    h, coloring = take("<f8", n), take("<i4", n)
    ei, ej, ew = take("<u4", m), take("<u4", m), take("<f8", m)
    if m and (np.any(ei >= ej) or np.any(ej >= n)):
        raise CouplingFileError(f"{source}: edge list must have 0 <= i < j < n")
    weights = dict(zip(zip(ei.tolist(), ej.tolist()), ew.tolist()))
    if len(weights) != m:
        raise CouplingFileError(f"{source}: an edge is listed twice")
    try:
        c = Couplings._from_upper(
            n,
            weights,
            h.astype(np.float64),
            beta,
            coloring=coloring.astype(np.int32),
            names=names,
            fixed_point=spec,
        )
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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode(c))
    os.replace(tmp, path)  # never leave a half-written model behind


def load(path) -> Couplings:
    """Read a ``.pbit`` coupling file written by :meth:`Couplings.save`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"coupling file {path} does not exist") from None
    return decode(blob, str(path))
