"""``own_frame()``: keep a Numba function out of its callers (LLVM's ``noinline``), so that its
loops get registers of their own.

LLVM inlines small Numba functions into the kernel that calls them. In a large kernel (the
asynchronous sampler's tick loop: the firing set, the fields, the decisions, the tick's end) the
register allocator then keeps the inner loops' array pointers and strides on the stack and
reloads them at every iteration (five reloads a firing in the fields loop, read in the
assembly). Called once per tick, a function of its own costs one call a tick and keeps its loop
in registers: 5% of the asynchronous sampler's time (``docs/performance.md``). It changes no
value.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["own_frame"]


@intrinsic
def own_frame(typingctx):
    """Mark the calling function ``noinline`` (call it first in the function's body)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return sig, codegen
