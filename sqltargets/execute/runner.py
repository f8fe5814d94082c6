"""Run a :class:`~sqltargets.execute.program.Program`: the prologue's sorted events in, one
Arrow column per target out.

:class:`Events` holds the prologue's result as NumPy arrays (views of the Arrow buffers
where the types allow) and what several targets share: user starts, calendar segments,
orders by a key that goes back within a user, active-row masks, value codes.
:func:`compute` runs every kernel call, on ``threads`` threads (the kernels release the
GIL), each with scratch arrays it reuses from one target to the next (memory touched for
the first time is expensive; a run allocates the outputs and little else).

>>> import pyarrow as pa
>>> from sqltargets.compile.spec import load
>>> from sqltargets.compile.plan import build as plan
>>> from sqltargets.compile.render import relation_source
>>> from sqltargets.execute.program import build
>>> ts = load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
...            "time": {"unit": "day"}, "targets": [
...     {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "month"}}]})
>>> prog = build(plan(ts, time_kind="integer"), relation_source("transactions"))
>>> events = pa.table({"_u": [1, 1, 2], "_time": [0, 1, 0], "_tb": [0, 1, 2],
...                    "_v0": [1.0, 2.0, 4.0],
...                    "_lus": [0, 86_400_000_000, 0]})  # (the month key derives from it)
>>> compute(prog, events)["s"].to_pylist()
[1.0, 3.0, 4.0]
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from ..compile.aggregates import AGGREGATIONS
from . import arrays
from . import kernels as K
from .program import CALENDAR, EVENT, SLIDING, Call, Derived, Program

#: A bound on (rows x sum of |values|) of a sliding window below which a sum in another
#: order than event order stays within 2.2e-16 x this = 2.2e-7 of the sequential sum (inside
#: the comparison tolerance, 1e-6 absolute, with a margin of 4); above it, sums are re-added
#: in event order.
SAFE_SUM_SCALE = 1e9
#: |values| below which squared deviations cannot overflow: Welford's updates are used;
#: above it (or with NaN or infinities), every window's moments are computed in two passes.
SAFE_MOMENT_VALUE = 1e150

_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def shift_period(key: np.ndarray, period: str, steps: int) -> np.ndarray:
    """The start of the period ``steps`` periods after the one starting on ``key`` (days
    since 1970-01-01).

    >>> shift_period(np.array([19783]), "month", 1).tolist()  # 2024-03-01 -> 2024-04-01
    [19814]
    >>> shift_period(np.array([19783]), "quarter", 2).tolist()  # -> 2024-09-01
    [19967]
    """
    key = key.astype(np.int64)
    if period == "day":
        return key + steps
    if period == "week":
        return key + 7 * steps
    months = key.astype("datetime64[D]").astype("datetime64[M]") + _MONTHS[period] * steps
    return months.astype("datetime64[D]").astype(np.int64)


_SERIALS = itertools.count()


#: Calendar periods as :func:`kernels.period_keys` numbers them.
PERIOD_NUMBERS = {"day": 0, "week": 1, "month": 2, "quarter": 3, "year": 4}


class Events:
    """The prologue's result as arrays, the columns derived from it (``derived``: the
    program's :class:`~sqltargets.execute.program.Derived`), and what several kernel calls
    share."""

    def __init__(self, table: pa.Table, derived: tuple[Derived, ...] = ()) -> None:
        self.table = table
        self.derived = {d.name: d for d in derived}
        self.n = table.num_rows
        self.user_start = arrays.user_starts(table.column("_u"))
        self.user = np.cumsum(self.user_start, dtype=np.int64) - 1
        self._cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.serial = next(_SERIALS)  # unique for the process's life (an id() is reused)

    def _get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = make()
        with self._lock:
            return self._cache.setdefault(key, value)

    def values(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        """(doubles with 0.0 where null, valid)."""
        c = self.table.column(col)
        return self._get(("v", col), lambda: (arrays.doubles(c), arrays.valid(c)))

    def filter(self, col: str | None) -> np.ndarray:
        if col is None:
            return self._get("all", lambda: np.ones(self.n, dtype=bool))
        d = self.derived.get(col)
        if d is not None:
            return self._get(("f", col), lambda: self._mcc_filter(d))
        return self._get(("f", col), lambda: arrays.bools(self.table.column(col)))

    def _mcc_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(MCC codes, int32, arbitrary where not valid; valid)."""
        c = self.table.column("_m")
        return self._get("m", lambda: (arrays.numpy(c, np.int32, writable=False), arrays.valid(c)))

    def _mcc_filter(self, d: Derived) -> np.ndarray:
        code, ok = self._mcc_codes()
        los, his = _bounds(d)
        where = self.filter(d.where) if d.where is not None else ok
        out = np.empty(self.n, dtype=bool)
        K.mcc_filter(code, ok, los, his, where, d.where is not None, out)
        return out

    def slots(self, col: str) -> np.ndarray:
        """A distribution's slot of each row, int64 (derived from the MCC codes)."""
        d = self.derived[col]

        def make() -> np.ndarray:
            code, ok = self._mcc_codes()
            los, his = _bounds(d)
            out = np.empty(self.n, np.int64)
            K.mcc_slots(code, ok, los, his, np.array(d.groups, np.int64), d.n_groups, out)
            return out

        return self._get(("g", col), make)

    def active(self, filt: str | None, value: str | None) -> np.ndarray:
        """Rows that pass the filter and have a value."""
        if value is None:
            return self.filter(filt)

        def make() -> np.ndarray:
            ok = self.values(value)[1]
            return self.filter(filt) & ok

        return self._get(("a", filt, value), make)

    def key(self, col: str) -> np.ndarray:
        """A calendar key: days since 1970-01-01, int32, read-only (derived from the local
        clock in µs)."""
        d = self.derived[col]

        def make() -> np.ndarray:
            us = arrays.numpy(self.table.column(d.source), np.int64, writable=False)
            out = np.empty(self.n, np.int32)
            K.period_keys(us, PERIOD_NUMBERS[d.period], d.week_shift, out)  # type: ignore[index]
            out.setflags(write=False)  # (the kernels' read-only specialisations, as a view's)
            return out

        return self._get(("k", col), make)

    def elapsed(self, col: str) -> np.ndarray:
        return self._get(
            ("e", col), lambda: arrays.numpy(self.table.column(col), np.int64, writable=False)
        )

    def order(self, key: np.ndarray, tag: Any) -> np.ndarray | None:
        """The stable order by (user, key) when ``key`` goes back within a user somewhere
        (a calendar day repeated by a daylight-saving fold, an elapsed time that runs
        backwards over a spring-forward gap), else None: rows already are in that order."""

        def make() -> np.ndarray | None:
            same = self.user[1:] == self.user[:-1]
            if self.n > 1 and np.any(same & (key[1:] < key[:-1])):
                return np.lexsort((key, self.user))
            return None

        return self._get(("o", tag), make)

    def segments(self, key: np.ndarray, perm: np.ndarray | None, tag: Any) -> np.ndarray:
        """True where a (user, key) segment starts, in scan order."""

        def make() -> np.ndarray:
            u = self.user if perm is None else self.user[perm]
            k = key if perm is None else key[perm]
            flags = np.ones(self.n, dtype=bool)
            if self.n > 1:
                flags[1:] = (u[1:] != u[:-1]) | (k[1:] != k[:-1])
            return flags

        return self._get(("s", tag), make)

    def codes(self, col: str) -> tuple[np.ndarray, int]:
        """Dense codes of a raw column's values (nulls -1): equal values, equal codes; every
        NaN one value; -0.0 equal to 0.0 (as SQL's and Python's equality)."""

        def make() -> tuple[np.ndarray, int]:
            import pyarrow.compute as pc

            c = self.table.column(col)
            if pa.types.is_floating(c.type):
                x = arrays.doubles(c) + 0.0  # -0.0 -> 0.0
                x[np.isnan(x)] = np.nan
                c = pa.chunked_array([arrays.from_numpy(x.view(np.int64), arrays.valid(c))])
            try:
                enc = pc.dictionary_encode(c).combine_chunks()
            except pa.ArrowNotImplementedError:  # nested values: by their contents
                return _python_codes(c.to_pylist())
            idx = enc.indices
            codes = arrays.numpy(idx, np.int64)
            if idx.null_count:
                codes[~arrays.valid(idx)] = -1
            return codes, max(len(enc.dictionary), 1)

        return self._get(("c", col), make)


def _bounds(d: Derived) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper ends of a derived column's MCC ranges, as the kernels read them."""
    return (
        np.array([lo for lo, _ in d.ranges], np.int64),
        np.array([hi for _, hi in d.ranges], np.int64),
    )


def _nested_key(v: Any) -> Any:
    # equal contents, equal keys: lists, structs and maps by their items, NaN one value
    if isinstance(v, float) and v != v:
        return ("NaN",)
    if isinstance(v, list):
        return ("list", tuple(_nested_key(x) for x in v))
    if isinstance(v, dict):
        return ("struct", tuple((k, _nested_key(x)) for k, x in v.items()))
    if isinstance(v, tuple):
        return ("pair", tuple(_nested_key(x) for x in v))
    return v


def _python_codes(values: list[Any]) -> tuple[np.ndarray, int]:
    """Dense codes of values Arrow cannot hash (lists, structs, maps); nulls -1."""
    seen: dict[Any, int] = {}
    codes = np.fromiter(
        (-1 if v is None else seen.setdefault(_nested_key(v), len(seen)) for v in values),
        dtype=np.int64,
        count=len(values),
    )
    return codes, max(len(seen), 1)


class Scratch:
    """Per-thread arrays reused across kernel calls."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._arrays: dict[str, np.ndarray] = {}
        self.user: np.ndarray = np.zeros(0, np.int64)  # the current call's user codes
        self.ranges: Any = None  # what "lo" and "hi" hold now (see run_call)

    def get(self, name: str, dtype: Any, extra: int = 0) -> np.ndarray:
        """``self.n + extra`` items: a view of a buffer kept for the next calls (which may
        be over other blocks of rows, of other sizes)."""
        need = self.n + extra
        a = self._arrays.get(name)
        if a is None or a.dtype != np.dtype(dtype) or a.size < need:
            a = np.empty(need, dtype=dtype)
            self._arrays[name] = a
        return a[:need]


def compute(program: Program, events: pa.Table, threads: int = 1) -> dict[str, pa.Array]:
    """Every target of ``program`` over the prologue's ``events`` (sorted by user and
    event order): name -> Arrow array, row for row."""
    got = compute_arrays(program, events, threads)
    return {c.name: to_arrow(c, *got[c.name]) for c in program.calls}


#: Where :func:`compute_arrays` hands each finished (target, block of rows) instead of
#: keeping it: ``sink(name, start, end, values, ok)``, called from any of its threads.
Sink = Callable[[str, int, int, np.ndarray, "np.ndarray | None"], None]


def compute_arrays(
    program: Program,
    events: pa.Table,
    threads: int = 1,
    sink: Sink | None = None,
    scratch: Scratch | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Like :func:`compute`, as NumPy: name -> (values, ok), ``ok`` False where null (None:
    no nulls); values are int64 or float64 vectors, or (rows, k) float64 matrices for
    list targets.

    Work items are (target, block of users): the rows are cut at user boundaries (a window
    never crosses users) into blocks of about ``BLOCK_ROWS`` rows, so that each thread's
    work arrays stay block-sized whatever the input (a third less peak memory on the seed
    workload's rolling targets), and with fewer targets than threads into as many blocks
    as it takes to give every core work. Each target's blocks are written into one output
    array as they finish; or, with a ``sink``, handed to it (rows ``start`` to ``end``) and
    let go, and nothing is returned: the caller writes them where they belong (the torch
    datasets, straight into their tensors). ``scratch``: the work arrays of a caller that
    computes chunk after chunk on one thread (a streaming dataset's worker), kept from one
    call to the next instead of allocated (and paid for, page by page) every time."""
    calls = list(program.calls)
    n = events.num_rows
    blocks = [(0, n)]
    k = -(-n // BLOCK_ROWS)  # bounded scratch: each thread's work arrays are block-sized
    if threads > 1 and len(calls) < threads and n >= MIN_BLOCK_ROWS:
        k = max(k, -(-threads // len(calls)))
    if k > 1:
        blocks = _user_blocks(events, k)
    local = threading.local()
    given = scratch if threads <= 1 else None
    lock = threading.Lock()
    # a block's arrays (filters, values, user codes, ...) exist while its targets run
    parts: dict[int, Events] = {}
    remaining = [len(calls)] * len(blocks)

    def part(bi: int) -> Events:
        with lock:
            ev = parts.get(bi)
            if ev is None:
                a, b = blocks[bi]
                rows = events.slice(a, b - a) if len(blocks) > 1 else events
                ev = parts[bi] = Events(rows, program.derived)
            return ev

    def done_with(bi: int) -> None:
        with lock:
            remaining[bi] -= 1
            if remaining[bi] == 0:
                del parts[bi]

    whole: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}  # one block: its result
    outs: dict[int, list[Any]] = {}  # several: [values, ok or None], filled block by block

    def one(task: tuple[int, int]) -> None:
        c, bi = task
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = given if given is not None else Scratch(0)
        ev = part(bi)
        scratch.n = ev.n
        values, ok = run_call(calls[c], ev, scratch, program)
        del ev
        done_with(bi)
        if sink is not None:
            sink(calls[c].name, *blocks[bi], values, ok)
            return
        if len(blocks) == 1:
            whole[c] = (values, ok)
            return
        a, b = blocks[bi]
        with lock:
            slot = outs.get(c)
            if slot is None:
                slot = outs[c] = [np.empty((n, *values.shape[1:]), values.dtype), None]
            if ok is not None and slot[1] is None:
                slot[1] = np.ones((n, *ok.shape[1:]), bool)  # blocks without nulls: valid
        slot[0][a:b] = values
        if ok is not None:
            slot[1][a:b] = ok

    # block by block (each block's data stays in cache), and within one, targets with the
    # same window next to each other, so that a thread reuses its ranges
    by_window = sorted(range(len(calls)), key=lambda c: repr(calls[c].window))
    tasks = [(c, b) for b in range(len(blocks)) for c in by_window]
    if threads > 1 and len(tasks) > 1 and n:
        with ThreadPoolExecutor(min(threads, len(tasks))) as pool:
            list(pool.map(one, tasks))
    else:
        for t in tasks:
            one(t)
    if sink is not None:
        return {}
    got = whole if len(blocks) == 1 else {c: (v, ok) for c, (v, ok) in outs.items()}
    return {call.name: got[c] for c, call in enumerate(calls)}


#: Rows below which a target is not cut into blocks of users for several threads.
MIN_BLOCK_ROWS = 200_000
#: Rows of a block of users the kernels work on at a time (half a million: 15-120 MB less
#: peak memory than a million on the seed workload, in the same time).
BLOCK_ROWS = 500_000


def _user_blocks(events: pa.Table, k: int) -> list[tuple[int, int]]:
    """At most ``k`` row ranges of about equal size, each starting at a user's first row.

    >>> t = pa.table({"_u": [1, 1, 2, 2, 3, 3]})
    >>> _user_blocks(t, 2), _user_blocks(t, 5), _user_blocks(pa.table({"_u": [1, 1, 1]}), 2)
    ([(0, 4), (4, 6)], [(0, 2), (2, 4), (4, 6)], [(0, 3)])
    """
    starts = np.flatnonzero(arrays.user_starts(events.column("_u")))
    n = events.num_rows
    cuts = {0, n}
    for j in range(1, k):
        i = int(np.searchsorted(starts, j * n // k))
        cuts.add(int(starts[i]) if i < starts.size else n)
    edges = sorted(cuts)
    return list(itertools.pairwise(edges))


# ---------------------------------------------------------------------------------------------
# one call


def run_call(
    call: Call, ev: Events, scratch: Scratch, program: Program
) -> tuple[np.ndarray, np.ndarray | None]:
    """One target over every row of ``ev``, in row order: (values, ok)."""
    n = ev.n
    w = call.window
    if n == 0:
        width = (call.k or call.n_slots or 1,) if call.type == "list" else ()
        dtype = np.int64 if call.type == "int64" else np.float64
        return np.zeros((0, *width), dtype), np.zeros((0, *width), bool)
    value_col = call.value if call.reads in ("number", "code") else None
    if call.kernel == "distribution" and call.measure == "count":
        value_col = None  # counts transactions, whether or not their value is null
    act = ev.active(call.filter, value_col)
    if call.reads == "raw":
        codes, _n_codes = ev.codes(call.value)  # type: ignore[arg-type]
        act = ev.filter(call.filter) & (codes >= 0)
    # the order the window's ranges run in, and the key it is cut by
    perm = None
    key = None
    if w.kind in CALENDAR:
        key = ev.key(call.period)  # type: ignore[arg-type]
        perm = ev.order(key, ("k", call.period))
    elif w.kind in SLIDING:
        key = ev.elapsed(program.elapsed)  # type: ignore[arg-type]
        perm = ev.order(key, ("e", program.elapsed))

    def scan(a: np.ndarray) -> np.ndarray:
        return a if perm is None else a[perm]

    user = scan(ev.user)
    scratch.user = user
    act_s = scan(act)
    if w.kind in CALENDAR and call.kernel in _FOLDS:
        seg = ev.segments(key, perm, ("k", call.period))  # type: ignore[arg-type]
        k_s = scan(key)  # type: ignore[arg-type]
        wanted = None
        if w.kind == "next_period":
            wanted = _wanted(k_s, seg, w.period, 1 + int(w.offset), scratch)  # type: ignore[arg-type]
        values, ok = _fold(call, ev, scratch, act_s, scan, seg, w, user, k_s, wanted)
        if perm is not None:
            values = _unscan(values, perm)
            ok = None if ok is None else _unscan(ok, perm)
        return finish(call, values, ok)
    lo = scratch.get("lo", np.int64)
    hi = scratch.get("hi", np.int64)
    # targets with the same window (whatever their filter) share its ranges: skip the driver
    # when this thread's last call over these events left them in lo and hi
    tag: Any = (ev.serial, w)
    if w.kind in EVENT:
        tag = (*tag, call.filter)  # the n-th event passing this target's filter
    if scratch.ranges != tag:
        scratch.ranges = None
        _ranges(call, ev, scratch, program, perm, key, user, lo, hi)
        scratch.ranges = tag
    sliding = w.kind in SLIDING
    if call.kernel == "distribution":
        values, ok = _distribution(call, ev, scratch, act_s, scan, lo, hi, sliding)
    elif call.kernel == "elapsed":  # the time to the event the window holds, if any
        values = np.empty(n)
        ok = np.empty(n, dtype=bool)
        e = scan(ev.elapsed(program.elapsed))  # type: ignore[arg-type]
        K.elapsed(e, lo, hi, w.kind == "next", values, ok)
    else:
        cum = scratch.get("cum", np.int64, extra=1)
        K.active_count(act_s, cum)
        count = scratch.get("count", np.int64)
        K.window_counts(cum, lo, hi, count)
        values, ok = _aggregate(call, ev, scratch, act_s, scan, perm, lo, hi, count, sliding)
    if perm is not None:
        values = _unscan(values, perm)
        ok = None if ok is None else _unscan(ok, perm)
    return finish(call, values, ok)


def _ranges(
    call: Call,
    ev: Events,
    scratch: Scratch,
    program: Program,
    perm: np.ndarray | None,
    key: np.ndarray | None,
    user: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """The window driver: per row (in scan order), the rows ``[lo, hi)`` its window covers."""
    w = call.window

    def scan(a: np.ndarray) -> np.ndarray:
        return a if perm is None else a[perm]

    if w.kind == "expanding":
        seg = ev.segments(key, perm, ("k", call.period))  # type: ignore[arg-type]
        K.expanding_ranges(seg, w.include_current, lo, hi)
    elif w.kind == "period":
        K.period_ranges(ev.segments(key, perm, ("k", call.period)), lo, hi)  # type: ignore[arg-type]
    elif w.kind == "next_period":
        seg = ev.segments(key, perm, ("k", call.period))  # type: ignore[arg-type]
        k_s = scan(key)  # type: ignore[arg-type]
        wanted = _wanted(k_s, seg, w.period, 1 + int(w.offset), scratch)  # type: ignore[arg-type]
        K.next_period_ranges(seg, user, k_s, wanted, lo, hi)
    elif w.kind == "rolling":
        K.sliding_ranges(user, scan(key), -int(w.length), 0, w.include_current, lo, hi)  # type: ignore[arg-type]
    elif w.kind == "future":
        off = int(w.offset)
        K.sliding_ranges(user, scan(key), off, off + int(w.length), True, lo, hi)  # type: ignore[arg-type]
    elif w.kind in EVENT:
        # the n-th event passing the filter, whether or not its value is null
        K.nth_event_ranges(user, ev.filter(call.filter), int(w.n), w.kind == "next", lo, hi)
    else:  # pragma: no cover - the spec refuses other kinds
        raise ValueError(f"unknown window kind {w.kind!r}")


#: Kernels computed over expanding and period windows in one pass (kernels.calendar_fold).
_FOLDS = {"sum": K.SUM, "count": K.SUM, "mean": K.SUM, "min": K.MIN, "max": K.MAX,
          "first": K.FIRST, "last": K.LAST}  # fmt: skip


def _wanted(
    key: np.ndarray, seg: np.ndarray, period: str, steps: int, scratch: Scratch
) -> np.ndarray:
    """Per row, the key of the period ``steps`` after its own, set at each segment's first
    row only (where the kernels read it): the calendar arithmetic runs once a segment."""
    starts = np.flatnonzero(seg)
    wanted = scratch.get("wanted", np.int64)
    wanted[starts] = shift_period(key[starts], period, steps)
    return wanted


def _fold(
    call: Call,
    ev: Events,
    scratch: Scratch,
    act: np.ndarray,
    scan: Callable[[np.ndarray], np.ndarray],
    seg: np.ndarray,
    w: Any,
    user: np.ndarray,
    key: np.ndarray,
    wanted: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    n = ev.n
    kern = call.kernel
    if kern == "count":  # the counts are the output; the values are scratch (not read)
        x = out = scratch.get("front", np.float64)  # (reading and writing row r alone)
        count = np.empty(n, np.int64)
    else:
        x = scan(ev.values(call.value)[0])  # type: ignore[arg-type]
        out = np.empty(n)
        count = scratch.get("count", np.int64)
    if wanted is not None:
        K.next_period_fold(seg, user, key, wanted, act, x, _FOLDS[kern], out, count)
    else:
        K.calendar_fold(
            seg, act, x, _FOLDS[kern], w.kind == "period", w.include_current, out, count
        )
    if kern == "count":
        return count, (count > 0) if call.fill is not None else None
    if kern == "sum":
        return out, (count > 0) if call.fill is not None else None
    nonempty = count > 0
    if kern == "mean":
        with np.errstate(all="ignore"):
            np.divide(out, count, out=out, where=nonempty)
    return out, nonempty


def _unscan(a: np.ndarray, perm: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    out[perm] = a
    return out


def _sum(
    x: np.ndarray, act: np.ndarray, lo: np.ndarray, hi: np.ndarray, sliding: bool, scratch: Scratch
) -> np.ndarray:
    out = np.empty(lo.size)
    if sliding and _risky(x, act, lo, hi, scratch):
        K.sum_sequential(x, act, lo, hi, out)
    else:
        K.swag(x, act, lo, hi, K.SUM, out, scratch.get("front", np.float64))
    return out


def _risky(
    x: np.ndarray, act: np.ndarray, lo: np.ndarray, hi: np.ndarray, scratch: Scratch
) -> bool:
    """Whether sliding windows' sums, added in another order than event order, could move
    by more than the bound SAFE_SUM_SCALE allows: a cheap per-user bound first, the tight
    per-window one only when that fails."""
    cum = scratch.get("cum_risk", np.int64, extra=1)
    K.active_count(act, cum)
    user = scratch.user
    if K.sum_order_risk_by_user(user, x, act, cum, lo, hi) <= SAFE_SUM_SCALE:
        return False
    return bool(K.sum_order_risk(x, act, lo, hi) > SAFE_SUM_SCALE)


def _aggregate(
    call: Call,
    ev: Events,
    scratch: Scratch,
    act: np.ndarray,
    scan: Callable[[np.ndarray], np.ndarray],
    perm: np.ndarray | None,
    lo: np.ndarray,
    hi: np.ndarray,
    count: np.ndarray,
    sliding: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(values, ok) in scan order; ``ok`` False where the result is null before ``fill``."""
    kern = call.kernel
    n = lo.size
    agg_least = 2 if kern in ("std", "var") else 1
    if kern == "count":
        return count.copy(), (count > 0) if call.fill is not None else None
    if kern == "distinct":
        codes, n_codes = ev.codes(call.value)  # type: ignore[arg-type]
        out = np.empty(n, np.int64)
        K.count_distinct(scan(codes), act, lo, hi, n_codes, out)
        return out, (out > 0) if call.fill is not None else None
    x = scan(ev.values(call.value)[0])  # type: ignore[arg-type]
    if kern == "sum":
        return _sum(x, act, lo, hi, sliding, scratch), (
            count > 0
        ) if call.fill is not None else None
    nonempty = count >= agg_least
    if kern == "mean":
        s = _sum(x, act, lo, hi, sliding, scratch)
        with np.errstate(all="ignore"):
            np.divide(s, count, out=s, where=nonempty)
        return s, nonempty
    if kern in ("min", "max"):
        out = np.empty(n)
        K.swag(
            x, act, lo, hi, K.MIN if kern == "min" else K.MAX, out, scratch.get("front", np.float64)
        )
        return out, nonempty
    if kern in ("std", "var"):
        m2 = np.empty(n)
        c = scratch.get("moment_count", np.float64)
        if not K.moments_are_safe(x, act, SAFE_MOMENT_VALUE):
            K.moments_two_pass(x, act, lo, hi, m2, c)
        else:  # (over values shifted by their user's first: see minus_user_first)
            shifted = scratch.get("shifted", np.float64)
            K.minus_user_first(scratch.user, x, act, shifted)
            K.swag_moments(
                shifted, act, lo, hi, m2, c, scratch.get("fc", np.float64),
                scratch.get("fm", np.float64), scratch.get("fs", np.float64),
            )  # fmt: skip
        K.finish_moments(m2, c, kern == "std")
        return m2, nonempty
    if kern in ("first", "last"):
        pos = np.arange(n, dtype=np.int64) if perm is None else perm
        at = np.empty(n, np.int64)
        K.swag_position(pos, act, lo, hi, kern == "last", at, scratch.get("front_pos", np.int64))
        ok = at >= 0
        xe = ev.values(call.value)[0]  # type: ignore[arg-type]
        return xe[np.where(ok, at, 0)], ok
    if kern == "top_k" and call.window.kind in CALENDAR + EVENT:  # windows that only grow
        k = int(call.k)  # type: ignore[arg-type]
        out = np.empty((n, k))
        ok2 = np.empty((n, k), dtype=bool)
        K.top_k_growing(x, act, lo, hi, k, out, ok2)
        return out, ok2
    if kern in ("top_k", "quantile"):
        rank = np.empty(n, np.int64)
        sorted_x = np.empty(n)
        first = np.empty(n, np.int64)
        most = K.user_ranks(scan(ev.user), x, act, rank, sorted_x, first)
        if kern == "top_k":
            qs = np.zeros(int(call.k))  # type: ignore[arg-type]
        else:
            qs = np.array([0.5 if call.agg == "median" else float(call.q)])  # type: ignore[arg-type]
        out = np.empty((n, qs.size))
        ok2 = np.empty((n, qs.size), dtype=bool)
        K.order_statistics(rank, sorted_x, first, act, lo, hi, most, qs, kern == "top_k", out, ok2)
        if kern == "top_k":
            return out, ok2
        return out[:, 0], ok2[:, 0]
    if kern == "mode":
        code = np.empty(n, np.int64)
        vals = np.empty(n)
        first = np.empty(n, np.int64)
        most = K.user_value_codes(scan(ev.user), x, act, code, vals, first)
        out = np.empty(n)
        ok = np.empty(n, dtype=bool)
        K.mode(code, vals, first, act, lo, hi, most, out, ok)
        return out, ok
    raise ValueError(f"unknown kernel {kern!r}")  # pragma: no cover


def _distribution(
    call: Call,
    ev: Events,
    scratch: Scratch,
    act: np.ndarray,
    scan: Callable[[np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    sliding: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n = lo.size
    slots = scan(ev.slots(call.slots))  # type: ignore[arg-type]
    g = call.n_slots
    out = np.empty((n, g))
    x = scan(ev.values(call.value)[0]) if call.measure == "sum" else None  # type: ignore[arg-type]
    cum = np.empty(n + 1, np.int64)
    cnt = np.empty(n, np.int64)
    for s in range(g):
        act_g = act & (slots == s)
        if x is None:
            K.active_count(act_g, cum)
            K.window_counts(cum, lo, hi, cnt)
            out[:, s] = cnt
        else:
            out[:, s] = _sum(x, act_g, lo, hi, sliding, scratch)
    if not call.normalize:
        return out, None
    total = np.zeros((n, 1))
    with np.errstate(all="ignore"):
        for s in range(g):  # slot by slot, as the reference adds them (not pairwise)
            total[:, 0] += out[:, s]
        out /= total
    return out, np.broadcast_to(total != 0, out.shape).copy()


# ---------------------------------------------------------------------------------------------
# output columns


def finish(
    call: Call, values: np.ndarray, ok: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Where ``ok`` is False the window is empty (too few values): the aggregation's empty
    value (0, or null), or ``fill``. ``values`` (owned by the caller, changed in place)
    come back int64 or float64; ``ok`` None when no value is null."""
    dtype = np.int64 if call.type == "int64" else np.float64
    if values.dtype != dtype:
        values = values.astype(dtype) if ok is None else np.where(ok, values, 0).astype(dtype)
    if ok is None:
        return values, None
    empty = ~ok
    if call.fill is not None:
        values[empty] = call.fill
        return values, None
    if AGGREGATIONS[call.agg].empty in ("zero", "zeros") and not call.normalize:
        values[empty] = 0  # (shares of nothing stay null)
        return values, None
    if ok.all():
        return values, None
    if dtype is np.int64:
        values[empty] = 0
    return values, ok


def to_arrow(call: Call, values: np.ndarray, ok: np.ndarray | None) -> pa.Array:
    """The Arrow column of a finished target."""
    if call.type == "list":
        return arrays.lists_from_numpy(
            values, ok if ok is not None else np.ones(values.shape, bool)
        )
    return arrays.from_numpy(values, ok)
