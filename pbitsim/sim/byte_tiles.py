"""Transposing bytes from lane-major rows into replica-major rows (Numba, inlined).

The lane-major kernels keep the replicas of one site side by side (a row of int8 spins per site)
while the samples they return are replica-major (a row per replica). Both recordings,
:func:`pbitsim.sim.gibbs_kernels._record_lanes` and :func:`pbitsim.sim.hardware_lanes._record`,
turn 8 rows of 8 bytes into 8 columns with the same three swap stages: 12 word operations per
tile, several times faster than moving a byte at a time.

:data:`scatter16` (with scatter4 for a ragged rest) does the same for 64 lanes at once: a
network of small LLVM byte shuffles per group of rows, stored straight into the output rows
(about twice as fast again for 64 replicas).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["transpose8", "ROW", "scatter16", "scatter4"]

_S8, _S16, _S32 = np.uint64(8), np.uint64(16), np.uint64(32)
_M8, _M16, _M32 = (np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF),
                   np.uint64(0x00000000FFFFFFFF))  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _swap(a, b, shift, mask):
    """One stage: a's high halves of each pair of 2**k-byte groups with b's low halves."""
    t = ((a >> shift) ^ b) & mask
    return a ^ (t << shift), b ^ t


@njit(cache=True, nogil=True, inline="always")
def transpose8(a0, a1, a2, a3, a4, a5, a6, a7):
    """The words of the transposed tile: byte t of result k is byte k of input word t
    (little-endian bytes; the inputs are 8 rows, the results the 8 columns)."""
    a0, a1 = _swap(a0, a1, _S8, _M8)
    a2, a3 = _swap(a2, a3, _S8, _M8)
    a4, a5 = _swap(a4, a5, _S8, _M8)
    a6, a7 = _swap(a6, a7, _S8, _M8)
    a0, a2 = _swap(a0, a2, _S16, _M16)
    a1, a3 = _swap(a1, a3, _S16, _M16)
    a4, a6 = _swap(a4, a6, _S16, _M16)
    a5, a7 = _swap(a5, a7, _S16, _M16)
    a0, a4 = _swap(a0, a4, _S32, _M32)
    a1, a5 = _swap(a1, a5, _S32, _M32)
    a2, a6 = _swap(a2, a6, _S32, _M32)
    a3, a7 = _swap(a3, a7, _S32, _M32)
    return a0, a1, a2, a3, a4, a5, a6, a7


#: lanes (bytes of a lane-major row) that :data:`scatter16` moves at once
ROW = 64


def _scatter_rows(G: int):
    """The intrinsic ``scatter(src, offs, dst, base, i0)`` for groups of G rows (1, 2, 4, 8 or
    16; each one used costs its compile time): ``dst[base[j] + i0 + t] = src[offs[t] + j]`` for
    t < G, j < :data:`ROW`.

    src and dst are 1-D int8 arrays, offs and base int64 arrays (G and ROW entries); nothing is
    bounds-checked (the caller's indices are in range). Up to 8 rows of 64 bytes are loaded as
    vectors and turned lane-major by a network of two-input ``shufflevector``s interleaving
    units of 1, 2, 4 bytes (the classic transpose: LLVM lowers each to a byte permute, AVX-512
    VBMI here, the same bytes on any target; one 512-byte shuffle instead took LLVM seconds to
    compile); 16 rows are two such blocks whose 8-byte pieces are joined lane by lane. Each
    lane's G bytes go to its output row as one G-byte store (16-byte stores: a third faster
    than two 8-byte ones).
    """
    sub = min(G, 8)  # rows per shuffled block

    @intrinsic
    def scatter(typingctx, src, offs, dst, base, i0):
        for a, dtype in (
            (src, types.int8),
            (offs, types.int64),
            (dst, types.int8),
            (base, types.int64),
        ):
            if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == dtype):
                return None  # no such signature: Numba reports the call as a typing error
        sig = types.void(src, offs, dst, base, types.int64)

        def codegen(context, builder, sig, args):
            sa, oa, da, ba = (
                context.make_array(t)(context, builder, a) for t, a in zip(sig.args[:4], args[:4])
            )
            i32, i64, i8 = ir.IntType(32), ir.IntType(64), ir.IntType(8)

            def block(first):
                """Rows first .. first + sub - 1 through a network of two-input byte shuffles
                (interleaving units of 1, 2, 4 bytes: small masks, quick for LLVM to lower),
                ending with each lane's sub bytes side by side. Returns {lane: piece}."""
                vecs, labels = [], []
                for t in range(first, first + sub):
                    o = builder.load(builder.gep(oa.data, [ir.Constant(i64, t)]))
                    p = builder.bitcast(
                        builder.gep(sa.data, [o]), ir.VectorType(i8, ROW).as_pointer()
                    )
                    vecs.append(builder.load(p, align=1))
                    labels.append([(t - first, j) for j in range(ROW)])
                unit = 1
                while unit < sub:
                    nv, nl = [], []
                    for (a, la), (b, lb) in zip(
                        zip(vecs[::2], labels[::2]), zip(vecs[1::2], labels[1::2])
                    ):
                        units = ROW // unit
                        both = la + lb  # what index m of the shuffle's two inputs holds
                        for ks in (range(units // 2), range(units // 2, units)):
                            mask = []
                            for k in ks:  # unit k of a, then unit k of b
                                mask += range(k * unit, (k + 1) * unit)
                                mask += range(ROW + k * unit, ROW + (k + 1) * unit)
                            kind = ir.Constant(ir.VectorType(i32, ROW), mask)
                            nv.append(builder.shuffle_vector(a, b, kind))
                            nl.append([both[m] for m in mask])
                    unit *= 2
                    if unit < sub:  # pair the halves that hold the same lanes
                        los, his = nv[0::2], nv[1::2]
                        llo, lhi = nl[0::2], nl[1::2]
                        vecs, labels = los + his, llo + lhi
                    else:
                        vecs, labels = nv, nl
                piece = ir.IntType(8 * sub)
                found = {}
                for v, lab in zip(vecs, labels):
                    words = builder.bitcast(v, ir.VectorType(piece, ROW // sub))
                    for e in range(ROW // sub):
                        chunk = lab[e * sub : (e + 1) * sub]
                        assert [r for r, _ in chunk] == list(range(sub)), "network order"
                        found[chunk[0][1]] = builder.extract_element(words, ir.Constant(i32, e))
                return found

            pieces = [block(b) for b in range(0, G, sub)]
            piece = ir.IntType(8 * sub)
            out = ir.VectorType(piece, len(pieces))
            for j in range(ROW):  # lane j: its piece of each block, stored together
                part = ir.Constant(out, None)
                for b, found in enumerate(pieces):
                    part = builder.insert_element(part, found[j], ir.Constant(i32, b))
                at = builder.add(builder.load(builder.gep(ba.data, [ir.Constant(i64, j)])), args[4])
                builder.store(
                    part, builder.bitcast(builder.gep(da.data, [at]), out.as_pointer()), align=1
                )
            return context.get_dummy_value()

        return sig, codegen

    return scatter


#: groups of 16 and 4 rows (:func:`_scatter_rows`): 16 at a time, then 4 for the ragged rest
scatter16, scatter4 = _scatter_rows(16), _scatter_rows(4)
