"""Peak traced memory of a call, for the memory-guard tests (tracemalloc sees numpy's buffers)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

MiB = 2**20
#: what a guarded call may use beyond its max_bytes: interpreter and library bookkeeping
SLACK = 8 * MiB


def traced_peak(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``(fn(*args, **kwargs), peak bytes traced during the call)``; an exception propagates."""
    # The heap of the libraries loaded (torch, SymPy, matplotlib, dask) is frozen out of the
    # collector: a collection then walks only what was made since the last call (about 0.2 s a
    # call otherwise), and cyclic garbage of the earlier tests is still freed before measuring.
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return out, peak
