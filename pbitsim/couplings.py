"""The coupling format: the one description of a p-bit model that every part of pbitsim reads.

A :class:`Couplings` holds n spins, J as a sparse symmetric CSR matrix with zero diagonal, fields h,
inverse temperature beta, a proper graph colouring, optional node names and an optional
:class:`~pbitsim.fixedpoint.FixedPointSpec`. Conventions (as in the diagnostics definitions):

    E(s) = -(sum_{i<j} J_ij s_i s_j + sum_i h_i s_i),   p(s) ~ exp(-beta E(s)),   s_i in {-1, +1}.

Topology (the sparsity pattern and colouring: what a synthesised design depends on) and values
(J data, h, beta, fixed-point spec: what is streamed at run time) each have a fingerprint, a SHA-256
of a canonical little-endian byte encoding documented in ``docs/coupling-format.md``. An edge stored
with weight 0 is still part of the topology (a trained weight may become non-zero later).
"""

from __future__ import annotations

import hashlib
import math
import operator
import struct
import weakref
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property

import numpy as np

from pbitsim.fixedpoint import FixedPointSpec, QuantizedCouplings, quantize_couplings

__all__ = ["Couplings", "CouplingsError", "greedy_coloring"]


class CouplingsError(ValueError):
    """Invalid model description (asymmetric J, bad colouring, NaN, wrong shape, ...)."""


def _finite(name: str, x: np.ndarray) -> None:
    # A finite sum means every term is finite (NaN and inf propagate): one pass, no temporary;
    # only a sum that overflowed needs the element-wise look (a small model rebuilt each PCD
    # step pays microseconds per check)
    if math.isfinite(np.add.reduce(x, axis=None)):
        return
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(np.asarray(x).ravel()))
        raise CouplingsError(f"{name} contains NaN or inf (first at flat index {int(bad[0])})")


def _real(name: str, x) -> np.ndarray:
    """``x`` as float64, refusing what numpy would convert silently or with a mere warning:
    complex values (numpy drops the imaginary part, so a purely imaginary J would become a model
    with no edges), text and other non-numbers."""
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise CouplingsError(f"{name} is complex ({a.dtype}); couplings and fields must be real")
    if a.dtype.kind not in "biuf":
        if a.dtype.kind != "O" or any(isinstance(v, complex | str | bytes) for v in a.flat):
            raise CouplingsError(f"{name} must hold real numbers, not {a.dtype} values")
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise CouplingsError(f"{name} must hold real numbers") from None
    return np.ascontiguousarray(a, dtype=np.float64)


_LIMITS = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max) for t in (np.int32, np.int64)}


def _integers(name: str, x, dtype) -> np.ndarray:
    """``x`` as an integer array of ``dtype``; refuses fractions and values that do not fit."""
    a = np.asarray(x)
    if a.dtype == dtype:  # nothing to convert, nothing out of range
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "iu":
        if a.dtype.kind not in "bf" or (a.size and not np.all(np.mod(a, 1) == 0)):
            raise CouplingsError(f"{name} must hold integers, not {a.dtype} values")
    low, high = _LIMITS[np.dtype(dtype)]
    if a.size and (a.min() < low or a.max() > high):
        raise CouplingsError(f"{name} has values outside the range of {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


#: stored entries per pass of the validation and hashing loops: their temporaries stay a few
#: MB whatever the model's size (a 10^6-spin model is checked in about 60 passes)
_CHUNK = 1 << 16


def _row_chunks(indptr: np.ndarray) -> Iterator[tuple[int, int]]:
    """Row ranges (r0, r1) of about ``_CHUNK`` stored entries each; a row is never split."""
    n = len(indptr) - 1
    nnz = int(indptr[-1])
    if nnz <= _CHUNK:
        yield 0, n
        return
    cuts = np.searchsorted(indptr, np.arange(_CHUNK, nnz, _CHUNK), side="right") - 1
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    yield from zip(bounds[:-1].tolist(), bounds[1:].tolist())


def _chunk_rows(indptr: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """The row index of each stored entry of rows r0..r1-1 (int32)."""
    return np.repeat(np.arange(r0, r1, dtype=np.int32), np.diff(indptr[r0 : r1 + 1]))


def _transposed(indptr: np.ndarray, indices: np.ndarray):
    """For each row chunk (r0, r1, order, pos): stored entry ``indptr[r0] + order[q]`` sits at
    position ``pos[q]`` of the transpose's CSR. Raises :class:`_Asymmetric` when a column holds
    more or fewer entries than the row of the same index (the transpose has other row lengths).

    A counting sort by column, chunk by chunk: within a chunk a stable sort of its columns, across
    chunks one running slot per column (starting at ``indptr``: the transpose of a symmetric
    pattern has the same row pointers), so the temporaries are n counters and a chunk, never an
    nnz-sized sort key or a count of every column.
    """
    fill = indptr[:-1].astype(np.int32 if indptr[-1] < 2**31 else np.int64)
    for r0, r1 in _row_chunks(indptr):
        k0, k1 = int(indptr[r0]), int(indptr[r1])
        if k0 == k1:
            continue
        cols = indices[k0:k1]
        # (column, row) order; rows ascend within the chunk, so this is a stable sort by column:
        # on unique int64 keys numpy's vectorised quicksort does it (timsort, 3x slower, is what
        # a stable sort of the columns alone would get)
        rows = _chunk_rows(indptr, r0, r1) - r0
        order = np.argsort(cols.astype(np.int64) * (r1 - r0) + rows)
        sc = cols[order]
        first = np.flatnonzero(np.concatenate([[True], sc[1:] != sc[:-1]]))
        counts = np.diff(np.append(first, len(sc)))
        pos = fill[sc] + (np.arange(len(sc)) - np.repeat(first, counts)).astype(fill.dtype)
        fill[sc[first]] += counts.astype(fill.dtype)
        if np.any(fill[sc[first]] > indptr[sc[first] + 1]):  # more in a column than its row
            raise _Asymmetric
        yield r0, r1, order, pos
    if not np.array_equal(fill, indptr[1:]):  # fewer in a column than its row
        raise _Asymmetric


class _Asymmetric(Exception):
    """Internal: a column holds more or fewer entries than the row of the same index."""


#: arrays up to this many elements compare as bytes (a copy each, 5x faster than a == b there)
_BYTES_COMPARE = 1 << 16


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and values (np.array_equal without its checks: a few µs on small arrays)."""
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.dtype.kind in "iub" and a.size <= _BYTES_COMPARE:
        return a.tobytes() == b.tobytes()  # equal integers are equal bytes
    return bool((a == b).all())


def _sha256(parts) -> str:
    """Hex SHA-256 of the concatenated buffers ``parts``, hashed as they come."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def _asymmetry(indptr, indices, data) -> CouplingsError:
    """The error naming the first entry without an equal transposed partner (an error path:
    memory proportional to the entries is fine here)."""
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    key = rows * n + indices
    tkey = indices.astype(np.int64) * n + rows
    order = np.argsort(tkey, kind="stable")
    mism = (
        np.flatnonzero(data[order] != data)
        if np.array_equal(tkey[order], key)
        else np.flatnonzero(tkey[order] != key)
    )
    k = int(mism[0]) if len(mism) else 0
    i, j = int(rows[k]), int(indices[k])
    return CouplingsError(f"J is not symmetric: J[{i},{j}] != J[{j},{i}]")


def _check_pattern(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
    """No diagonal entry, sorted unique columns in every row, J equal to its transpose (pattern
    and values): in passes over row chunks, with memory independent of the number of entries."""
    for r0, r1 in _row_chunks(indptr):
        k0, k1 = int(indptr[r0]), int(indptr[r1])
        rows, cols = _chunk_rows(indptr, r0, r1), indices[k0:k1]
        diag = np.flatnonzero(rows == cols)
        if len(diag):
            i = int(rows[diag[0]])
            raise CouplingsError(f"J has a diagonal entry J[{i},{i}]; the diagonal must be zero")
        # sorted, unique columns per row: a step back or a repeat inside any row
        unsorted = np.flatnonzero((rows[1:] == rows[:-1]) & (cols[1:] <= cols[:-1]))
        if len(unsorted):
            i = int(rows[unsorted[0]])
            raise CouplingsError(f"row {i}: column indices must be sorted and unique")
    try:
        for r0, r1, order, pos in _transposed(indptr, indices):
            # entry (r, c) is sorted to where (c, r) sits in row-major order iff J is symmetric
            k0, k1 = int(indptr[r0]), int(indptr[r1])
            rows = _chunk_rows(indptr, r0, r1)[order]
            if not (
                np.array_equal(indices[pos], rows) and np.array_equal(data[pos], data[k0:k1][order])
            ):
                raise _Asymmetric
    except _Asymmetric:
        raise _asymmetry(indptr, indices, data) from None


class _Topology:
    """A validated graph and colouring, shared by every :class:`Couplings` on it.

    Built once per graph: :meth:`Couplings.replace` and a constructor given the same arrays (or
    equal ones: a training loop rebuilding its couplings every step) reuse it, so new values cost
    only their own checks (finite, symmetric through the cached transpose permutation) and the
    topology fingerprint is hashed once.
    """

    __slots__ = ("indptr", "indices", "coloring", "greedy", "_tperm", "fingerprint", "__weakref__")

    #: the last topology validated for each (n, stored entries), while something holds it
    _recent: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def __init__(self, indptr, indices, coloring, greedy: bool) -> None:
        self.indptr, self.indices, self.coloring, self.greedy = indptr, indices, coloring, greedy
        self._tperm: np.ndarray | None = None
        self.fingerprint: str | None = None
        _Topology._recent[(len(indptr), len(indices))] = self

    @classmethod
    def recall(cls, indptr, indices, coloring) -> _Topology | None:
        """The validated topology with these arrays (compared by value), if one is held."""
        if not (isinstance(indptr, np.ndarray) and isinstance(indices, np.ndarray)):
            return None
        t = cls._recent.get((len(indptr), len(indices)))
        if t is None:
            return None
        if coloring is None:
            if not t.greedy:
                return None
        elif coloring is not t.coloring and not (
            isinstance(coloring, np.ndarray)
            and coloring.dtype.kind in "iu"
            and _same(coloring, t.coloring)
        ):
            return None
        if indptr is not t.indptr and not _same(indptr, t.indptr):
            return None
        if indices is not t.indices and not _same(indices, t.indices):
            return None
        return t

    @property
    def tperm(self) -> np.ndarray:
        """Position of each stored entry's transposed partner (computed on first use)."""
        if self._tperm is None:
            nnz = len(self.indices)
            tperm = np.empty(nnz, np.int64 if nnz >= 2**31 else np.int32)
            for r0, _, order, pos in _transposed(self.indptr, self.indices):
                tperm[self.indptr[r0] + order] = pos
            self._tperm = tperm
        return self._tperm


def _node(x, edge) -> int:
    """A node index of an edge: an integer (or an integral float, as CSV readers give)."""
    if isinstance(x, bool | np.bool_):
        raise CouplingsError(f"edge {edge!r}: node {x!r} is not an integer")
    try:
        return operator.index(x)
    except TypeError:
        pass
    if isinstance(x, float | np.floating) and float(x).is_integer():
        return int(x)
    raise CouplingsError(f"edge {edge!r}: node {x!r} is not an integer")


def _weight(w, edge) -> float:
    if isinstance(w, complex | np.complexfloating):
        raise CouplingsError(f"edge {edge!r}: weight {w!r} is complex; couplings must be real")
    if isinstance(w, str | bytes):
        raise CouplingsError(f"edge {edge!r}: weight {w!r} is not a number")
    try:
        return float(w)
    except (TypeError, ValueError):
        raise CouplingsError(f"edge {edge!r}: weight {w!r} is not a number") from None


def _check_beta(beta) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise CouplingsError(f"beta must be a number, not {beta!r}") from None
    if not math.isfinite(b) or b <= 0:
        raise CouplingsError(f"beta must be finite and > 0, not {beta!r}")
    return b


def greedy_coloring(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Deterministic greedy colouring: largest degree first (ties by index), smallest free colour.

    Proper by construction; uses at most max_degree + 1 colours. Bipartite graphs whose greedy
    order happens to need more than 2 colours are fixed up with a 2-colouring by BFS.
    """
    n = len(indptr) - 1
    deg = np.diff(indptr)
    two = _two_coloring(indptr, indices)
    if two is not None:
        return two
    order = np.lexsort((np.arange(n), -deg))
    colors = np.full(n, -1, dtype=np.int32)
    for v in order:
        used = set(colors[indices[indptr[v] : indptr[v + 1]]].tolist())
        c = 0
        while c in used:
            c += 1
        colors[v] = c
    return colors


def _two_coloring(indptr, indices):
    """A 2-colouring (0/1) when the graph is bipartite and has an edge, else None."""
    n = len(indptr) - 1
    if len(indices) == 0:
        return None
    colors = np.full(n, -1, dtype=np.int32)
    for start in range(n):
        if colors[start] >= 0:
            continue
        colors[start] = 0
        stack = [start]
        while stack:
            v = stack.pop()
            for u in indices[indptr[v] : indptr[v + 1]]:
                if colors[u] < 0:
                    colors[u] = 1 - colors[v]
                    stack.append(u)
                elif colors[u] == colors[v]:
                    return None
    return colors


class Couplings:
    """A p-bit model: sparse symmetric J (zero diagonal), h, beta, colouring, fixed-point spec.

    Build one with :meth:`from_dense`, :meth:`from_edges`, :meth:`from_networkx` or
    :meth:`from_bqm`; the constructor takes CSR arrays directly and validates them.

    Parameters
    ----------
    indptr, indices, data : array_like
        CSR arrays of J (both triangles stored, no diagonal entries, column indices sorted).
    h : array_like, optional
        Fields, length n (default zeros).
    beta : float
        Inverse temperature, > 0.
    coloring : array_like of int, optional
        Proper colouring with colours 0..C-1 all used; computed when omitted, validated when given.
    names : sequence of str, optional
        Node names (metadata only: not part of any fingerprint).
    fixed_point : FixedPointSpec, optional
        Hardware number format; :attr:`quantized` needs one (default spec when omitted).

    Raises
    ------
    CouplingsError
        On asymmetric J, a non-zero diagonal, NaN/inf, wrong shapes, an invalid colouring or
        beta <= 0.
    """

    def __init__(
        self,
        indptr,
        indices,
        data,
        h=None,
        beta: float = 1.0,
        coloring=None,
        names: Sequence[str] | None = None,
        fixed_point: FixedPointSpec | None = None,
    ) -> None:
        data = _real("J", data)
        topo = _Topology.recall(indptr, indices, coloring)
        if topo is not None:  # a graph and colouring validated before: check the values only
            self._set(topo, data, h, beta, names, fixed_point)
            return
        indptr = _integers("indptr", indptr, np.int64)
        indices = _integers("indices", indices, np.int32)
        if indptr.ndim != 1 or len(indptr) < 1 or indptr[0] != 0:
            raise CouplingsError("indptr must be a 1-D array starting at 0")
        n = len(indptr) - 1
        if n < 1:
            raise CouplingsError("a model needs at least one spin (n >= 1)")
        if np.any(indptr[1:] < indptr[:-1]):
            raise CouplingsError("indptr must be non-decreasing")
        if indices.shape != data.shape or indices.ndim != 1 or len(indices) != indptr[-1]:
            raise CouplingsError(
                f"CSR shapes disagree: indptr[-1]={int(indptr[-1])}, "
                f"{len(indices)} indices, {len(data)} values"
            )
        _finite("J", data)
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise CouplingsError(f"column index out of range 0..{n - 1}")
        _check_pattern(indptr, indices, data)
        # the values are checked; h and beta before the colouring, as errors always came
        self._indptr, self._indices = indptr, indices  # what _validate_coloring reads
        h, beta = self._fields(h, n), _check_beta(beta)
        greedy = coloring is None
        if greedy:
            coloring = greedy_coloring(indptr, indices)
        coloring = self._validate_coloring(coloring)
        for a in (indptr, indices, coloring):
            a.flags.writeable = False
        topo = _Topology(indptr, indices, coloring, greedy)
        self._set(topo, data, h, beta, names, fixed_point, checked=True)

    @staticmethod
    def _fields(h, n: int) -> np.ndarray:
        if h is None:
            return np.zeros(n)
        h = _real("h", h)
        if h.shape != (n,):
            raise CouplingsError(f"h must have shape ({n},), not {h.shape}")
        _finite("h", h)
        return h

    def _set(
        self, topo: _Topology, data, h, beta, names, fixed_point, checked: bool = False
    ) -> None:
        """Take the values (J data as float64, h, beta) and metadata on a validated topology.

        Unless ``checked`` (the constructor's full check ran), the values are checked against
        the topology here: J's shape, finite, equal to its transpose; h; beta.
        """
        n = len(topo.indptr) - 1
        if not checked:
            if data.shape != topo.indices.shape:
                raise CouplingsError(
                    f"CSR shapes disagree: indptr[-1]={int(topo.indptr[-1])}, "
                    f"{len(topo.indices)} indices, {len(data)} values"
                )
            _finite("J", data)
            mirror = data.take(topo.tperm)
            # equal bytes are equal values; unequal bytes may still be (0.0 and -0.0)
            if not (mirror.tobytes() == data.tobytes() or (mirror == data).all()):
                raise _asymmetry(topo.indptr, topo.indices, data)
            h, beta = self._fields(h, n), _check_beta(beta)
        self._topology = topo
        self._indptr, self._indices, self._coloring = topo.indptr, topo.indices, topo.coloring
        self._data, self._h, self._beta = data, h, beta
        if names is not None:
            names = [str(x) for x in names]
            if len(names) != n:
                raise CouplingsError(f"{len(names)} names given for {n} nodes")
            if len(set(names)) != n:
                raise CouplingsError("node names must be unique")
        self._names = names
        if fixed_point is not None and not isinstance(fixed_point, FixedPointSpec):
            raise TypeError(f"fixed_point must be a FixedPointSpec, not {type(fixed_point)}")
        self._fixed_point = fixed_point
        for a in (data, h):
            if a.flags.writeable:
                a.flags.writeable = False

    def _validate_coloring(self, coloring) -> np.ndarray:
        c = np.asarray(coloring)
        if c.shape != (self.n,):
            raise CouplingsError(f"coloring must have shape ({self.n},), not {c.shape}")
        if self.n and not np.issubdtype(c.dtype, np.integer):
            raise CouplingsError(f"coloring must hold integers, not {c.dtype}")
        if self.n:
            # Bounds first, on the values as given: every later step (the cast, the count of
            # each colour) then needs memory proportional to n, never to the largest colour.
            lo, hi = int(c.min()), int(c.max())
            if lo < 0:
                i = int(np.argmin(c))
                raise CouplingsError(f"coloring has a negative colour {lo} (spin {i})")
            if hi >= self.n:
                i = int(np.argmax(c))
                raise CouplingsError(
                    f"coloring uses colour {hi} (spin {i}), but {self.n} spins need at most "
                    f"colours 0..{self.n - 1}"
                )
            c = c.astype(np.int32)
            missing = np.flatnonzero(np.bincount(c, minlength=hi + 1) == 0)
            if len(missing):
                shown = ", ".join(map(str, missing[:5].tolist()))
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise CouplingsError(
                    f"coloring must use every colour 0..C-1; missing {shown}{more}"
                )
        c = np.ascontiguousarray(c, dtype=np.int32)
        for r0, r1 in _row_chunks(self._indptr):
            rows = _chunk_rows(self._indptr, r0, r1)
            cols = self._indices[self._indptr[r0] : self._indptr[r1]]
            clash = np.flatnonzero(c[rows] == c[cols])
            if len(clash):
                i, j = int(rows[clash[0]]), int(cols[clash[0]])
                raise CouplingsError(
                    f"coloring is not proper: neighbours {i} and {j} both have colour {int(c[i])}"
                )
        return c

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_dense(cls, J, h=None, beta: float = 1.0, **kw) -> Couplings:
        """From a dense symmetric n x n matrix; zero entries are not edges."""
        J = _real("J", J)
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise CouplingsError(f"J must be a square matrix, not shape {J.shape}")
        _finite("J", J)
        if np.any(np.diag(J) != 0):
            i = int(np.flatnonzero(np.diag(J))[0])
            raise CouplingsError(f"J has a non-zero diagonal: J[{i},{i}] = {J[i, i]}")
        if not np.array_equal(J, J.T):
            i, j = np.argwhere(J != J.T)[0]
            raise CouplingsError(
                f"J is not symmetric: J[{i},{j}] = {J[i, j]} but J[{j},{i}] = {J[j, i]}"
            )
        mask = J != 0
        indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
        indices = np.nonzero(mask)[1]
        return cls(indptr, indices, J[mask], h, beta, **kw)

    @classmethod
    def from_edges(
        cls,
        n: int,
        edges: Iterable,
        h=None,
        beta: float = 1.0,
        **kw,
    ) -> Couplings:
        """From ``(i, j, J_ij)`` triples (each undirected edge once; weight 0 keeps the edge).

        An edge given twice, as (i, j) and (j, i), must carry the same weight.
        """
        n = int(n)
        if n < 1:
            raise CouplingsError(f"n must be >= 1, not {n}")
        weights: dict[tuple[int, int], float] = {}
        for e in edges:
            try:
                i, j, w = e
            except (TypeError, ValueError):
                raise CouplingsError(f"edge {e!r} is not an (i, j, weight) triple") from None
            i, j, w = _node(i, e), _node(j, e), _weight(w, e)
            if not (0 <= i < n and 0 <= j < n):
                raise CouplingsError(f"edge ({i}, {j}) has a node outside 0..{n - 1}")
            if i == j:
                raise CouplingsError(f"edge ({i}, {i}) is a self-loop; the diagonal must be zero")
            if not np.isfinite(w):
                raise CouplingsError(f"edge ({i}, {j}) has a non-finite weight {w}")
            key = (min(i, j), max(i, j))
            if key in weights and weights[key] != w:
                raise CouplingsError(
                    f"J is not symmetric: edge {key} given twice with weights "
                    f"{weights[key]} and {w}"
                )
            weights[key] = w
        return cls._from_upper(n, weights, h, beta, **kw)

    @classmethod
    def _from_upper(cls, n, weights: dict, h, beta, **kw) -> Couplings:
        if weights:
            ij = np.array(list(weights.keys()), dtype=np.int64)
            w = np.array(list(weights.values()), dtype=np.float64)
        else:
            ij = np.zeros((0, 2), dtype=np.int64)
            w = np.zeros(0)
        rows = np.concatenate([ij[:, 0], ij[:, 1]])
        cols = np.concatenate([ij[:, 1], ij[:, 0]])
        vals = np.concatenate([w, w])
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls(np.cumsum(indptr), cols, vals, h, beta, **kw)

    @classmethod
    def from_networkx(cls, graph, weight: str = "weight", field: str = "h", beta=1.0, **kw):
        """From a networkx graph: edge attribute ``weight`` (default 1), node attribute ``field``.

        Nodes are ordered as ``list(graph.nodes)`` and keep their names (as strings).
        """
        nodes = list(graph.nodes)
        index = {v: k for k, v in enumerate(nodes)}
        edges = [(index[u], index[v], d.get(weight, 1.0)) for u, v, d in graph.edges(data=True)]
        h = np.array([graph.nodes[v].get(field, 0.0) for v in nodes], dtype=np.float64)
        kw.setdefault("names", [str(v) for v in nodes])
        return cls.from_edges(len(nodes), edges, h=h, beta=beta, **kw)

    @classmethod
    def from_bqm(cls, bqm, beta: float = 1.0, **kw) -> Couplings:
        """From a dimod BinaryQuadraticModel (SPIN or BINARY).

        dimod's energy is E = sum_i a_i s_i + sum_{i<j} b_ij s_i s_j + offset, so J = -b, h = -a;
        a BINARY model is converted to spins first (x = (1 + s) / 2). The constant offset does not
        change the distribution and is dropped. Variables keep their labels as names; sortable
        labels are sorted, so a BQM over 0..n-1 gives index i for variable i.
        """
        import dimod

        spin = bqm.change_vartype(dimod.SPIN, inplace=False)
        labels = list(spin.variables)
        try:  # integer labels 0..n-1 map to indices 0..n-1; mixed labels keep dimod's order
            labels = sorted(labels)
        except TypeError:
            pass
        index = {v: k for k, v in enumerate(labels)}
        h = np.array([-spin.linear[v] for v in labels], dtype=np.float64)
        edges = [(index[u], index[v], -b) for (u, v), b in spin.quadratic.items()]
        kw.setdefault("names", [str(v) for v in labels])
        return cls.from_edges(len(labels), edges, h=h, beta=beta, **kw)

    # -- views -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self._indptr) - 1

    @property
    def indptr(self) -> np.ndarray:
        return self._indptr

    @property
    def indices(self) -> np.ndarray:
        return self._indices

    @property
    def data(self) -> np.ndarray:
        return self._data

    @property
    def h(self) -> np.ndarray:
        return self._h

    @property
    def beta(self) -> float:
        return self._beta

    @property
    def coloring(self) -> np.ndarray:
        return self._coloring

    @property
    def n_colors(self) -> int:
        return int(self._coloring.max()) + 1 if self.n else 0

    @property
    def names(self) -> list[str] | None:
        return None if self._names is None else list(self._names)

    @property
    def fixed_point(self) -> FixedPointSpec | None:
        return self._fixed_point

    @property
    def nnz(self) -> int:
        """Stored entries of J (each undirected edge counts twice)."""
        return len(self._indices)

    @property
    def n_edges(self) -> int:
        return self.nnz // 2

    @property
    def degrees(self) -> np.ndarray:
        return np.diff(self._indptr)

    def color_classes(self) -> list[np.ndarray]:
        """Site indices of each colour, colours in order."""
        return [np.flatnonzero(self._coloring == c) for c in range(self.n_colors)]

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upper-triangle edge list (i < j), sorted by (i, j): (i, j, J_ij)."""
        rows = np.repeat(np.arange(self.n, dtype=np.int64), self.degrees)
        upper = rows < self._indices
        return rows[upper], self._indices[upper].astype(np.int64), self._data[upper]

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(J, h) as a dense n x n matrix and a length-n vector (copies)."""
        J = np.zeros((self.n, self.n))
        rows = np.repeat(np.arange(self.n), self.degrees)
        J[rows, self._indices] = self._data
        return J, self._h.copy()

    def to_scipy(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self._data, self._indices, self._indptr), shape=(self.n, self.n))

    def to_bqm(self):
        """A SPIN dimod BQM with the same energy: linear = -h, quadratic = -J (beta not in it)."""
        import dimod

        labels = self._names if self._names is not None else list(range(self.n))
        i, j, w = self.edges()
        return dimod.BinaryQuadraticModel(
            {labels[k]: -self._h[k] for k in range(self.n)},
            {(labels[a], labels[b]): -x for a, b, x in zip(i.tolist(), j.tolist(), w.tolist())},
            0.0,
            dimod.SPIN,
        )

    def to_networkx(self):
        import networkx as nx

        g = nx.Graph()
        labels = self._names if self._names is not None else list(range(self.n))
        for k, lab in enumerate(labels):
            g.add_node(lab, h=float(self._h[k]))
        i, j, w = self.edges()
        for a, b, x in zip(i.tolist(), j.tolist(), w.tolist()):
            g.add_edge(labels[a], labels[b], weight=x)
        return g

    def energy(self, spins) -> np.ndarray:
        """E(s) = -(sum_{i<j} J_ij s_i s_j + sum_i h_i s_i) for one state (n,) or many (..., n)."""
        s = np.asarray(spins, dtype=np.float64)
        if s.shape[-1] != self.n:
            raise CouplingsError(f"states have {s.shape[-1]} spins, model has {self.n}")
        js = (self.to_scipy() @ s.reshape(-1, self.n).T).T.reshape(s.shape)
        return -(0.5 * np.sum(s * js, axis=-1) + s @ self._h)

    def local_fields(self, spins) -> np.ndarray:
        """I = J s + h for one state (n,) or many (..., n)."""
        s = np.asarray(spins, dtype=np.float64)
        return (self.to_scipy() @ s.reshape(-1, self.n).T).T.reshape(s.shape) + self._h

    # -- derived models ----------------------------------------------------------------------
    def replace(self, **changes) -> Couplings:
        """A copy with some of data/h/beta/coloring/names/fixed_point changed (topology kept)."""
        allowed = {"data", "h", "beta", "coloring", "names", "fixed_point"}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"replace() got unknown fields {sorted(unknown)}")
        kw = {
            "data": self._data,
            "h": self._h,
            "beta": self._beta,
            "coloring": self._coloring,
            "names": self._names,
            "fixed_point": self._fixed_point,
        }
        kw.update(changes)
        coloring = kw.pop("coloring")
        if coloring is not self._coloring:
            return Couplings(self._indptr, self._indices, coloring=coloring, **kw)
        # same graph and colouring: only the values are checked
        c = Couplings.__new__(Couplings)
        c._set(self._topology, _real("J", kw.pop("data")), **kw)
        return c

    def with_beta(self, beta: float) -> Couplings:
        return self.replace(beta=beta)

    # -- fixed point -------------------------------------------------------------------------
    def quantized(self, spec: FixedPointSpec | None = None) -> QuantizedCouplings:
        """The integer view hardware runs (see :mod:`pbitsim.fixedpoint`).

        Uses ``spec``, else the couplings' own spec, else :meth:`FixedPointSpec.default`.
        Raises :class:`~pbitsim.fixedpoint.FixedPointOverflowError` when a value does not fit.
        """
        spec = spec or self._fixed_point or FixedPointSpec.default()
        names = self._names

        def label(i, j):
            if names is None:
                return f"J[{i},{j}]"
            return f"J[{names[i]},{names[j]}]"

        return quantize_couplings(
            self._indptr, self._indices, self._data, self._h, self._beta, spec, label
        )

    # -- fingerprints ------------------------------------------------------------------------
    def _topology_parts(self) -> Iterator:
        """The canonical encoding of the graph, piece by piece (the arrays themselves, no copy:
        they are stored in the encoding's little-endian types already on the usual machines)."""
        yield b"pbitsim-topology-v1\0"
        yield struct.pack("<Q", self.n)
        yield np.ascontiguousarray(self._indptr, dtype="<i8")
        yield np.ascontiguousarray(self._indices, dtype="<i4")
        yield np.ascontiguousarray(self._coloring, dtype="<i4")

    def _values_parts(self) -> Iterator:
        """The canonical encoding of the values, piece by piece (``_CHUNK`` values at a time)."""
        fp = self._fixed_point.canonical_bytes() if self._fixed_point else b""
        yield b"pbitsim-values-v1\0"
        for a in (self._data, self._h):
            for k in range(0, len(a), _CHUNK):
                yield (a[k : k + _CHUNK] + 0.0).astype("<f8", copy=False)  # + 0.0: -0.0 to 0.0
        yield struct.pack("<d", self._beta)
        yield struct.pack("<I", len(fp))
        yield fp

    def topology_bytes(self) -> bytes:
        """Canonical encoding of the graph: what a synthesised design depends on."""
        return b"".join(bytes(memoryview(p)) for p in self._topology_parts())

    def values_bytes(self) -> bytes:
        """Canonical encoding of what is streamed at run time: J data, h, beta, fixed-point spec."""
        return b"".join(bytes(memoryview(p)) for p in self._values_parts())

    @property
    def topology_fingerprint(self) -> str:
        """SHA-256 of :meth:`topology_bytes` (hashed once per graph and colouring)."""
        topo = self._topology
        if topo.fingerprint is None:
            topo.fingerprint = _sha256(self._topology_parts())
        return topo.fingerprint

    @cached_property
    def values_fingerprint(self) -> str:
        """SHA-256 of :meth:`values_bytes`."""
        return _sha256(self._values_parts())

    @cached_property
    def fingerprint(self) -> str:
        """Fingerprint of topology and values together (hex SHA-256)."""
        both = bytes.fromhex(self.topology_fingerprint) + bytes.fromhex(self.values_fingerprint)
        return hashlib.sha256(b"pbitsim-couplings-v1\0" + both).hexdigest()

    # -- files -------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the versioned ``.pbit`` file (see ``docs/coupling-format.md``)."""
        from pbitsim.fileformat import save_couplings

        save_couplings(self, path)

    # -- misc --------------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        if not isinstance(other, Couplings):
            return NotImplemented
        return self.fingerprint == other.fingerprint and self._names == other._names

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return (
            f"Couplings(n={self.n}, edges={self.n_edges}, beta={self._beta:g}, "
            f"colors={self.n_colors}, fingerprint={self.fingerprint[:12]})"
        )
