"""LLVM function attributes for Numba functions, set from inside them: ``own_frame()`` keeps a
function out of its callers (``noinline``), so that its loops get registers of their own;
``wide_vectors()`` lets its loops use 512-bit vectors.

LLVM inlines small Numba functions into the kernel that calls them. In a large kernel (the
asynchronous sampler's tick loop: the firing set, the fields, the decisions, the tick's end) the
register allocator then keeps the inner loops' array pointers and strides on the stack and
reloads them at every iteration (five reloads a firing in the fields loop, read in the
assembly). Called once per tick, a function of its own costs one call a tick and keeps its loop
in registers: 5% of the asynchronous sampler's time (``docs/performance.md``). It changes no
value.

Numba's target prefers 256-bit vectors on this CPU family; 512-bit ones measured slower in the
samplers' kernels (the asynchronous tick loop: 10%), and serve the benchmark of the hardware
model's generator floor, which takes the faster of both widths.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["own_frame", "wide_vectors"]

#: the attribute that lets LLVM's loop vectoriser use 512-bit vectors
_WIDE = '"prefer-vector-width"="512"'


@intrinsic
def own_frame(typingctx):
    """Mark the calling function ``noinline`` (call it first in the function's body)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorise the calling function's loops with 512-bit vectors. llvmlite adds only
    the attributes it knows by name; where it has no such set, the default width stays."""

    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        try:
            attributes._known = attributes._known | {_WIDE}
            attributes.add(_WIDE)
        except (AttributeError, ValueError):
            pass
        return context.get_dummy_value()

    return types.void(), codegen
