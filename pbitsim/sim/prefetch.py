"""A cache hint for the Numba kernels: ``prefetch(arr, row)`` asks for the line of
``arr[row, 0, ...]`` ahead of its use (LLVM's ``llvm.prefetch``, read, all cache levels). It
changes no value; the kernels that wait on memory call it a few positions or firings ahead
(the exact kernels' neighbour rows and layout at 10^6 sites, the asynchronous sampler's rows of
the firings of a tick).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch"]


@intrinsic
def prefetch(typingctx, arr, row):
    """Ask for the cache line of arr[row, 0, ...] (any integer ``row``; no bounds check, since a
    hint never faults)."""
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):
        aryty, rowty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = [context.cast(builder, args[1], rowty, types.intp)] + [zero] * (aryty.ndim - 1)
        ptr = cgutils.get_item_pointer2(
            context,
            builder,
            ary.data,
            cgutils.unpack_tuple(builder, ary.shape),
            cgutils.unpack_tuple(builder, ary.strides),
            aryty.layout,
            idx,
            wraparound=False,
            boundscheck=False,
        )
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
