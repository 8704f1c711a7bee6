"""The samplers' thread pool: blocks of chains shared over a few threads, without a barrier.

Every multi-threaded sampler (the exact schemes' column blocks, the hardware model's replica-lane
blocks, the asynchronous sampler's replica ranges) splits its work into blocks whose results do
not depend on which thread runs them, and runs them here: thread t takes blocks t, t + threads,
... and the calling thread is one of them, so a one-thread call wakes nobody (what a short call
wants on a busy machine). The pool is made once per process: starting threads per call would
cost what the pool saves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["run_blocks", "workers"]

_pool: tuple[ThreadPoolExecutor, int] | None = None
_pool_lock = threading.Lock()


def workers(threads: int) -> ThreadPoolExecutor:
    """A pool of at least ``threads - 1`` threads (the calling thread is the other one)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] < threads - 1:
            _pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="pbitsim"), threads - 1)
        return _pool[0]


def run_blocks(block: Callable[[int], None], nblocks: int, threads: int) -> None:
    """``block(b)`` for every b in 0..nblocks-1 on ``threads`` threads, the calling one included;
    returns when every block has finished (re-raising the first failure)."""
    threads = min(int(threads), nblocks)
    if threads <= 1:
        for b in range(nblocks):
            block(b)
        return

    def share(first: int) -> None:
        for b in range(first, nblocks, threads):
            block(b)

    futures = [workers(threads).submit(share, t) for t in range(1, threads)]
    try:
        share(0)
    finally:
        for fu in futures:
            fu.result()
