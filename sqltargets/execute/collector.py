"""Python's cyclic garbage collector, paused while sqltargets compiles and runs a spec.

Compiling a spec (sqlglot's trees for ``where`` and the SQL, Jinja, numba loading its
kernels) allocates some hundred thousand container objects and frees most of them by
reference counting. Their count alone makes CPython start full collections, and a full
collection walks every object of the process: 0.1 to 0.2 s in a process that has imported
torch (280,000 objects), more in a training script's. That was a fifth of building a
:class:`~sqltargets.torch.StreamingTargetDataset` and a tenth of ``generate`` at one
target on the torch bench. The calls that compile pause the collector, and let it resume
as it was: the few cycles they leave (about 3,000 small objects for 20 targets, measured;
NumPy and Arrow buffers are not the collector's) are collected by its next run.

Never around a generator's ``yield``: the caller's code runs there.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

_lock = threading.Lock()
_depth = 0
_resume = False

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def paused() -> Iterator[None]:
    """The collector paused within the block (nested and threaded uses count: it resumes,
    if it ran before the first, when the last one ends)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


def pausing(fn: F) -> F:
    """``fn`` (no generator) run with the collector :func:`paused`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with paused():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
