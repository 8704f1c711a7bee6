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
    try:
        header = json.loads(blob[_PREFIX.size : _PREFIX.size + hlen].decode("utf-8"))
        n, m = int(header["n"]), int(header["n_edges"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CouplingFileError(f"{source}: unreadable header ({e})") from None
    off = _PREFIX.size + hlen
    need = off + 8 * n + 4 * n + 4 * m + 4 * m + 8 * m
    if need != len(body):
        raise CouplingFileError(
            f"{source}: header says n={n}, {m} edges ({need} bytes) but body has {len(body)}"
        )

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(body, dtype=dtype, count=count, offset=off)
        off += a.nbytes
        return a

    h, coloring = take("<f8", n), take("<i4", n)
    ei, ej, ew = take("<u4", m), take("<u4", m), take("<f8", m)
    if m and (np.any(ei >= ej) or np.any(ej >= n)):
        raise CouplingFileError(f"{source}: edge list must have 0 <= i < j < n")
    fp = header.get("fixed_point")
    weights = dict(zip(zip(ei.tolist(), ej.tolist()), ew.tolist()))
    if len(weights) != m:
        raise CouplingFileError(f"{source}: an edge is listed twice")
    c = Couplings._from_upper(
        n,
        weights,
        h.astype(np.float64),
        header["beta"],
        coloring=coloring.astype(np.int32),
        names=header.get("names"),
        fixed_point=FixedPointSpec.from_dict(fp) if fp else None,
    )
    for key in ("topology_fingerprint", "values_fingerprint", "fingerprint"):
        if header.get(key) != getattr(c, key):
            raise CouplingFileError(
                f"{source}: stored {key} {str(header.get(key))[:16]}... does not match the "
                f"content ({getattr(c, key)[:16]}...): the file was altered"
            )
    return c


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
