"""Fields (and the cycle model's integer inputs) of 16 sites at once, their neighbours' spins
fetched by vector gathers (Numba).

The site-vectorised chromatic kernel (:func:`pbitsim.sim.gibbs_kernels._site_sweep`) sums a
group's fields site by site in scalar code: LLVM does not emit gather instructions for this CPU
family on its own, so the neighbour reads, their conversions and the multiply-adds ran one at a
time, and they cost as much as the vectorised decisions and generator steps together.
:data:`fields16` asks for the gathers explicitly (``llvm.masked.gather``, which LLVM lowers to
the target's gather instructions, or to scalar loads on a target without them).

It computes exactly the scalar loop's numbers: for each site the float32 multiply-adds run in
the same order, h_p + J_p0 s_q0, then + J_p1 s_q1, ... (``llvm.fma``, one rounding each), on
rows of exactly 4 entries (the layout's padded rows when every degree is at most 4).
:data:`inputs16` is the same for the hardware-faithful model (:mod:`pbitsim.sim.hardware_replica`):
int32 codes, exact integer sums.

Spins are float32 or int8. An int8 spin is fetched as the 4-byte word that starts at it (x86 has
no byte gather), whose low byte is the spin on a little-endian machine: the column must then
have 3 readable bytes after its last entry (:func:`pbitsim.sim.aligned.empty`'s ``tail``).
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from pbitsim.sim.rows import ENTRIES as _ENTRIES

__all__ = ["GROUP", "fields16", "inputs16"]

#: sites per call of :data:`fields16` (16 float32 lanes: one AVX-512 register); each reads one
#: group of _ENTRIES entries of a padded row (:mod:`pbitsim.sim.rows`)
GROUP = 16

if sys.byteorder != "little":  # pragma: no cover - every platform Numba supports today
    raise ImportError("pbitsim.sim.gathers reads an int8 spin as the low byte of a word")


def _vector(builder, ty, value, lanes: int):
    """``value`` in every one of ``lanes`` lanes."""
    vt = ir.VectorType(ty, lanes)
    one = builder.insert_element(ir.Constant(vt, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(
        one, ir.Constant(vt, None), ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    )


def _rows16(builder, context, sig, args, acc_ty, combine):
    """The code both intrinsics share: the group's 16 rows of 4 entries read as two vectors, the
    spins of entry k of each row gathered, and ``combine(acc, weights, spins)`` applied for
    k = 0..3 in order, starting from the 16 values h[p0:p0 + 16]; stores f[j0:j0 + 16]. Spins
    come back as an int32 vector (int8: the gathered word's low byte, sign-extended) or a float32
    one; ``acc_ty`` is the element type of w, h and f."""
    sa, na, wa, ha = (
        context.make_array(t)(context, builder, a) for t, a in zip(sig.args[:4], args[:4])
    )
    fa = context.make_array(sig.args[5])(context, builder, args[5])
    p0, j0 = args[4], args[6]
    int8 = sig.args[0].dtype == types.int8
    i1, i32, i64, f32 = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.FloatType()
    V, W = GROUP, GROUP * _ENTRIES
    va, vi, v64 = ir.VectorType(acc_ty, V), ir.VectorType(i32, V), ir.VectorType(i64, V)
    k0 = builder.mul(p0, ir.Constant(i64, _ENTRIES))
    # the group's rows: 64 neighbour indices and 64 weights, read as two vectors
    rows_i = builder.bitcast(builder.gep(na.data, [k0]), ir.VectorType(i32, W).as_pointer())
    rows_w = builder.bitcast(builder.gep(wa.data, [k0]), ir.VectorType(acc_ty, W).as_pointer())
    idx_all, w_all = builder.load(rows_i, align=4), builder.load(rows_w, align=4)
    hp = builder.bitcast(builder.gep(ha.data, [p0]), va.as_pointer())
    acc = builder.load(hp, align=4)
    # gather: a vector of addresses (the spins' base + index x size)
    elem = vi if int8 else ir.VectorType(f32, V)
    ptrs_ty = ir.VectorType((i32 if int8 else f32).as_pointer(), V)
    mask_ty = ir.VectorType(i1, V)
    suffix = "i32" if int8 else "f32"
    gather = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(elem, [ptrs_ty, i32, mask_ty, elem]),
        f"llvm.masked.gather.v{V}{suffix}.v{V}p0{suffix}",  # (typed-pointer mangling)
    )
    base = _vector(builder, i64, builder.ptrtoint(sa.data, i64), V)
    everyone = ir.Constant(mask_ty, [1] * V)
    for k in range(_ENTRIES):  # entry k of each row, in the scalar loop's order
        pick = ir.Constant(vi, [_ENTRIES * j + k for j in range(V)])
        idx = builder.zext(
            builder.shuffle_vector(idx_all, ir.Constant(ir.VectorType(i32, W), None), pick), v64
        )
        wk = builder.shuffle_vector(w_all, ir.Constant(ir.VectorType(acc_ty, W), None), pick)
        offset = idx if int8 else builder.shl(idx, ir.Constant(v64, [2] * V))
        ptrs = builder.inttoptr(builder.add(base, offset), ptrs_ty)
        align = ir.Constant(i32, 1 if int8 else 4)
        got = builder.call(gather, [ptrs, align, everyone, ir.Constant(elem, None)])
        if int8:  # the word's low byte, sign-extended
            eight = ir.Constant(vi, [24] * V)
            got = builder.ashr(builder.shl(got, eight), eight)
        acc = combine(acc, wk, got)
    fp = builder.bitcast(builder.gep(fa.data, [j0]), va.as_pointer())
    builder.store(acc, fp, align=4)


def _typed(s, nbr, w, h, f, acc_dtype):
    """Whether the arguments fit: 1-D float32 or int8 spins; int32 indices; w, h, f of
    ``acc_dtype``, all 1-D and contiguous."""
    spins_ok = isinstance(s, types.Array) and s.ndim == 1 and s.dtype in (types.float32, types.int8)
    rest = ((nbr, types.int32), (w, acc_dtype), (h, acc_dtype), (f, acc_dtype))
    return spins_ok and all(
        isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == d
        for a, d in rest
    )


@intrinsic
def fields16(typingctx, s, nbr, w, h, p0, f, j0):
    """f[j0 + j] = the field of position p = p0 + j, j < :data:`GROUP`:
    fma(w[4p + 3], s[nbr[4p + 3]], ... fma(w[4p], s[nbr[4p]], h[p])).

    s: 1-D float32 or int8 spins; nbr: int32, w: float32 (rows of 4 entries), h, f: float32, all
    1-D and contiguous. Nothing is bounds-checked: the caller passes a whole group of positions.
    """
    if not _typed(s, nbr, w, h, f, types.float32):
        return None  # no such signature: Numba reports the call as a typing error
    sig = types.void(s, nbr, w, h, types.int64, f, types.int64)

    def codegen(context, builder, sig, args):
        f32 = ir.FloatType()
        vf = ir.VectorType(f32, GROUP)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vf, [vf, vf, vf]), f"llvm.fma.v{GROUP}f32"
        )

        def combine(acc, wk, spins):
            if spins.type.element != f32:  # int8 spins: exact as float (-1, 0, +1)
                spins = builder.sitofp(spins, vf)
            return builder.call(fma, [wk, spins, acc])

        _rows16(builder, context, sig, args, f32, combine)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def inputs16(typingctx, s, nbr, w, h, p0, f, j0):
    """f[j0 + j] = h[p] + w[4p] s[nbr[4p]] + ... + w[4p + 3] s[nbr[4p + 3]] in int32 (the exact
    integer sum whenever it fits: the cycle model's accumulator of at most 32 bits), p = p0 + j,
    j < :data:`GROUP`.

    s: 1-D int8 spins (3 readable bytes after the last); nbr, w, h, f: int32, 1-D and contiguous.
    Nothing is bounds-checked: the caller passes a whole group of positions.
    """
    if not _typed(s, nbr, w, h, f, types.int32) or s.dtype != types.int8:
        return None
    sig = types.void(s, nbr, w, h, types.int64, f, types.int64)

    def codegen(context, builder, sig, args):
        def combine(acc, wk, spins):
            return builder.add(acc, builder.mul(wk, spins))

        _rows16(builder, context, sig, args, ir.IntType(32), combine)
        return context.get_dummy_value()

    return sig, codegen
