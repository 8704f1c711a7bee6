"""BLAS thread limits, in one place.

Small dense products and the level-1 work of iterative solvers lose more to BLAS threads that
spin-wait between calls than they gain on a busy 2-core machine (ARPACK and CG ran 10x slower at
n = 14; dense eigen-solves of a few hundred states likewise). threadpoolctl is a dependency.
"""

from __future__ import annotations

__all__ = ["blas_threads"]


def blas_threads(n: int = 1):
    """A context manager (also effective at once when not used as one) that holds BLAS to ``n``
    threads."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")
