"""Expanding windows as vectorised segmented scans over rows sorted by (user, time).

DuckDB evaluates a running ``SUM(...) OVER (PARTITION BY user, period ORDER BY time ROWS
UNBOUNDED PRECEDING)`` with a segment tree: about 0.6 s of CPU per aggregate per 8 M rows on
this project's machines, whatever the partition size. Twenty targets are twenty of those.
The scan engine asks DuckDB for everything else (reading, filters, values, calendar keys,
every other window, the sort by user and time) and computes the expanding windows here, in
one pass per aggregate over the sorted rows:

- a *segment* is a run of rows with the same user and period key;
- counts are a cumulative sum of integers minus the segment's offset (exact);
- sums, minima and maxima accumulate *sequentially within each segment*, in event order,
  like the reference (no subtraction of large prefix sums, so no cancellation): rows are
  laid out position-major (every segment's first row, then every segment's second row, ...)
  so that step ``k`` is one vectorised operation over all segments longer than ``k``.

Semantics are those of the SQL (and TARGETS.md): null values do not contribute; NaN is the
greatest value (``max`` is NaN once a NaN is in the window, ``min`` ignores NaN unless every
value is NaN); an empty window gives 0 for sums and counts, null for the rest, or ``fill``.

>>> import numpy as np
>>> seg = Segments.of(np.array([0, 0, 0, 1, 1]), np.array([5, 5, 6, 5, 5]))
>>> seg.starts.tolist(), seg.lengths.tolist()
([0, 2, 3], [2, 1, 2])
>>> seg.accumulate(np.array([1.0, 2.0, 4.0, 8.0, 16.0]), np.add).tolist()
[1.0, 3.0, 4.0, 8.0, 24.0]
>>> seg.count(np.array([True, False, True, True, True])).tolist()
[1, 1, 1, 1, 2]
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Target aggregates the scan computes (over ``expanding`` windows).
SCAN_AGGS = ("sum", "count", "mean", "min", "max")

#: Positions go one vectorised step at a time while at least ``_FEW`` segments are still
#: open, for at most ``_STEPS`` positions; the rest of each longer segment is accumulated on
#: its own contiguous rows (at most max(_FEW, rows / _STEPS) such segments).
_FEW = 16
_STEPS = 4096

#: Decimal places of exact integer arithmetic on value columns (cents have 2).
MAX_SCALE = 4


@dataclass
class Segments:
    """Runs of equal (user, key) over rows sorted by user then time, and how to scan them.

    ``perm`` is set when the keys are not sorted within a user (a calendar day can repeat
    after a daylight-saving fold); the scan then runs over the rows reordered by
    (user, key), stably, and results are put back in row order.
    """

    n: int
    starts: np.ndarray  # first row of each segment (in scan order)
    lengths: np.ndarray
    seg_id: np.ndarray  # the segment of each row (in scan order)
    perm: np.ndarray | None
    _pm: np.ndarray | None = None  # row of each position-major slot
    _steps: list[tuple[int, int, int]] | None = None  # (offset of k, offset of k-1, count)
    _tails: list[tuple[int, int, int]] | None = None  # (start, first position left, length)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, user_code: np.ndarray, key: np.ndarray) -> Segments:
        """Segments for rows whose ``user_code`` is non-decreasing (rows sorted by user)."""
        n = len(key)
        perm = None
        if n > 1:
            same_user = user_code[1:] == user_code[:-1]
            if np.any(same_user & (key[1:] < key[:-1])):
                perm = np.lexsort((key, user_code))  # stable: event order within a key
                user_code, key = user_code[perm], key[perm]
        change = np.ones(n, dtype=bool)
        if n > 1:
            change[1:] = (user_code[1:] != user_code[:-1]) | (key[1:] != key[:-1])
        starts = np.flatnonzero(change)
        lengths = np.diff(np.append(starts, n))
        seg_id = np.cumsum(change) - 1
        return cls(n, starts, lengths, seg_id, perm)

    # -- integers: exact by cumulative sums ---------------------------------------------------

    def count(self, flags: np.ndarray) -> np.ndarray:
        """Running count of true ``flags`` within each segment, in row order."""
        return self.int_sum(flags)

    def int_sum(self, x: np.ndarray) -> np.ndarray:
        """Running sum of integers (or booleans) within each segment: a cumulative sum
        minus the segment's offset, exact in int64."""
        c = x.astype(np.int64) if self.perm is None else x[self.perm].astype(np.int64)
        np.cumsum(c, out=c)
        if self.perm is not None:
            x = x[self.perm]
        if self.n:
            before = c[self.starts] - x[self.starts]
            c -= before[self.seg_id]
        return self._back(c)

    def int_max(self, key: np.ndarray, span: int) -> np.ndarray:
        """Running maximum of non-negative integers ``key`` < ``span`` within each segment:
        one cumulative maximum of ``segment * span + key``, since every row of a later
        segment is above every row of an earlier one. Needs segments * span < 2**63."""
        if self.perm is not None:
            key = key[self.perm]
        lift = self.seg_id * np.int64(span)
        acc = np.maximum.accumulate(lift + key)
        acc -= lift
        return self._back(acc)

    # -- sequential accumulation --------------------------------------------------------------

    def _layout(self) -> None:
        with self._lock:
            if self._pm is None:
                self._build_layout()

    def _build_layout(self) -> None:
        order = np.argsort(-self.lengths, kind="stable")  # longest segments first
        lengths = self.lengths[order]
        starts = self.starts[order]
        longest = int(lengths[0]) if len(lengths) else 0
        # open_at[k] = how many segments have a row at position k (lengths are descending)
        open_at = np.searchsorted(-lengths, -np.arange(longest), side="left")
        stop = int(np.searchsorted(-open_at, -_FEW, side="right"))
        stop = min(max(stop, 1), _STEPS) if longest else 0  # positions [0, stop) step-wise
        counts = open_at[:stop]
        offsets = np.concatenate(([0], np.cumsum(counts)))
        pm = np.empty(int(offsets[-1]), dtype=np.int64)
        for k in range(stop):
            m = int(counts[k])
            pm[offsets[k] : offsets[k] + m] = starts[:m] + k
        long = lengths > stop  # these finish on their own contiguous rows
        self._steps = [
            (int(offsets[k]), int(offsets[k - 1]), int(counts[k])) for k in range(1, stop)
        ]
        self._tails = [
            (int(s), stop, int(L))
            for s, L in zip(starts[long].tolist(), lengths[long].tolist(), strict=True)
        ]
        self._pm = pm  # last: other threads test it

    def accumulate(self, values: np.ndarray, op: np.ufunc) -> np.ndarray:
        """Running ``op`` (``np.add``, ``np.maximum``, ``np.fmin``) of ``values`` within each
        segment, left to right in event order, in row order."""
        x = values if self.perm is None else values[self.perm]
        out = np.empty(self.n, dtype=x.dtype)
        if not self.n:
            return out
        self._layout()
        assert self._pm is not None and self._steps is not None and self._tails is not None
        xp = x[self._pm]
        for cur, prev, m in self._steps:
            op(xp[prev : prev + m], xp[cur : cur + m], out=xp[cur : cur + m])
        out[self._pm] = xp
        for start, first, length in self._tails:
            seed = out[start + first - 1 : start + first]
            rest = x[start + first : start + length]
            out[start + first : start + length] = op.accumulate(np.concatenate((seed, rest)))[1:]
        return self._back(out)

    def _back(self, res: np.ndarray) -> np.ndarray:
        if self.perm is None:
            return res
        out = np.empty_like(res)
        out[self.perm] = res
        return out


@dataclass(frozen=True)
class ScanTarget:
    """One target the scan computes: which period, aggregate, value and filter columns."""

    name: str
    agg: str  # sum | count | mean | min | max
    period: str
    value: str | None  # column name in the scan input (None for count)
    filter: str | None  # boolean column name (None: every row)
    fill: float | int | None


@dataclass
class Values:
    """A value column: doubles (nulls as 0), validity, and, when every valid value is a
    finite decimal with at most ``MAX_SCALE`` places, the values as exact integers
    ``cents / 10**scale`` (so that sums, minima and maxima run on integers)."""

    doubles: np.ndarray
    valid: np.ndarray
    cents: np.ndarray | None = None
    scale: int = 0
    lo: int = 0
    hi: int = 0

    @classmethod
    def of(cls, col: pa.ChunkedArray | pa.Array) -> Values:
        v = _doubles(col)
        valid = _valid(col)
        out = cls(v, valid)
        if len(v) == 0:
            return out
        top = float(max(v.max(), -v.min()))  # NaN or inf: no scale fits, below
        for scale in (MAX_SCALE, 2, 0):  # any scale that fits is exact; try few
            f = 10.0**scale
            if not top * f * len(v) < 2.0**62:  # sums must stay exact in int64
                continue
            c = v * f
            np.round(c, out=c)
            back = c / f if scale else c
            if np.array_equal(back, v):
                cents = c.astype(np.int64)
                return cls(v, valid, cents, scale, int(cents.min()), int(cents.max()))
            if scale == MAX_SCALE:
                return out  # not a decimal of at most MAX_SCALE places
        return out

    def _decode(self, cents: np.ndarray) -> np.ndarray:
        x = cents.astype(np.float64)
        return x / 10.0**self.scale if self.scale else x

    def running_sum(self, seg: Segments, mask: np.ndarray) -> np.ndarray:
        """Running sum of the contributing values (0 where none)."""
        if self.cents is not None:
            return self._decode(seg.int_sum(np.where(mask, self.cents, 0)))
        return seg.accumulate(np.where(mask, self.doubles, 0.0), np.add)

    def exact_extremes(self, seg: Segments) -> bool:
        """Whether minima and maxima over ``seg`` can run on the integers."""
        return self.cents is not None and len(seg.starts) * (self.hi - self.lo + 2) < 2**62

    def running_extreme(
        self, seg: Segments, mask: np.ndarray, n: np.ndarray | None, agg: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Running max or min of the contributing values, and where the window is empty
        (``n``, the running count of contributing values, is needed off the integer path)."""
        if self.exact_extremes(seg):
            assert self.cents is not None
            span = self.hi - self.lo + 2
            if agg == "max":  # keys 1.. for values, 0 for rows that do not contribute
                key = np.where(mask, self.cents - (self.lo - 1), 0)
                r = seg.int_max(key, span)
                return self._decode(r + (self.lo - 1)), r == 0
            key = np.where(mask, (self.hi + 1) - self.cents, 0)
            r = seg.int_max(key, span)
            return self._decode((self.hi + 1) - r), r == 0
        assert n is not None
        v = self.doubles
        if agg == "max":  # NaN is the greatest value, and np.maximum keeps it
            return seg.accumulate(np.where(mask, v, -np.inf), np.maximum), n == 0
        res = seg.accumulate(np.where(mask, v, np.inf), np.fmin)
        nan = mask & np.isnan(v)
        if nan.any():  # the minimum is NaN only when every value so far is NaN
            res = np.where((seg.count(nan) == n) & (n > 0), np.nan, res)
        return res, n == 0


def _arrow(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A zero-copy Arrow array of int64 or float64 ``values``, null where ``null``.
    (``pa.array`` would import pandas on first use, which costs a quarter second.)"""
    values = np.ascontiguousarray(values)
    typ = pa.int64() if values.dtype == np.int64 else pa.float64()
    if values.dtype not in (np.int64, np.float64):
        values = values.astype(np.float64)
    validity = None
    nulls = 0
    if null is not None:
        nulls = int(np.count_nonzero(null))
        if nulls:
            validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
    return pa.Array.from_buffers(
        typ, len(values), [validity, pa.py_buffer(values)], null_count=nulls
    )


def _valid(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if col.null_count == 0:
        return np.ones(len(col), dtype=bool)
    return _numpy(col.is_valid(), bool)


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    """The values as a writable NumPy array (nulls arbitrary: combine with ``_valid``).

    Fixed-width columns are read from their Arrow buffers: ``to_numpy`` would import
    pandas on first use (a quarter of a second)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    n, off = len(arr), arr.offset
    if pa.types.is_boolean(t):
        bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8) if n else np.zeros(0, np.uint8)
        flags = np.unpackbits(bits, count=off + n, bitorder="little")[off:]
        return flags.astype(dtype)
    if pa.types.is_date32(t):
        arr, t = arr.view(pa.int32()), pa.int32()
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and n:
        raw = np.frombuffer(arr.buffers()[1], dtype=t.to_pandas_dtype(), count=off + n)
        return np.array(raw[off:], dtype=dtype)
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _bools(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where true (null counts as false)."""
    out = _numpy(col, bool)
    if col.null_count:
        out &= _valid(col)
    return out


def _doubles(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values as doubles, with 0.0 where null."""
    out = _numpy(col, np.float64)
    if col.null_count:
        out[~_valid(col)] = 0.0
    return out


def user_codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """0, 1, 2, ... for each new user in rows sorted by user (any comparable type)."""
    n = len(col)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    new = np.ones(n, dtype=bool)
    if n > 1 and pa.types.is_floating(arr.type):  # NaN users are one user, as in SQL
        a = _numpy(arr, np.float64)
        new[1:] = (a[1:] != a[:-1]) & ~(np.isnan(a[1:]) & np.isnan(a[:-1]))
    elif n > 1 and pa.types.is_integer(arr.type):
        a = _numpy(arr, arr.type.to_pandas_dtype())
        new[1:] = a[1:] != a[:-1]
    elif n > 1:
        new[1:] = _numpy(pc.not_equal(arr.slice(1), arr.slice(0, n - 1)), bool)
    return np.cumsum(new) - 1


def compute(
    table: pa.Table,
    user: str,
    periods: dict[str, str],
    targets: list[ScanTarget],
    map_fn: Callable[[Callable[[ScanTarget], Any], list[ScanTarget]], list[Any]] | None = None,
) -> dict[str, pa.Array]:
    """The scan targets over ``table`` (rows sorted by user, then event order).

    ``periods`` maps each period to its key column (any integer-like or date column);
    ``map_fn`` may run the per-target work in threads (NumPy releases the GIL).
    """
    codes = user_codes(table.column(user))
    segments: dict[str, Segments] = {}
    for p, col in periods.items():
        key = table.column(col)
        if pa.types.is_date64(key.type) or pa.types.is_timestamp(key.type):
            key = key.cast(pa.int64())
        segments[p] = Segments.of(codes, _numpy(key, np.int64))
    n_rows = table.num_rows
    bools: dict[str | None, np.ndarray] = {}
    columns: dict[str, Values] = {}
    masks: dict[tuple[str | None, str | None], np.ndarray] = {}
    # shared inputs first, so that threads only read them
    for t in targets:
        if t.filter not in bools:
            bools[t.filter] = (
                np.ones(n_rows, dtype=bool) if t.filter is None else _bools(table.column(t.filter))
            )
        if t.value is not None and t.value not in columns:
            columns[t.value] = Values.of(table.column(t.value))
        key = (t.value, t.filter)
        if key not in masks:
            flags = bools[t.filter]
            masks[key] = flags if t.value is None else flags & columns[t.value].valid

    # running counts (of rows, or of contributing values), shared by the targets that need
    # them: counts, means, fills, and minima and maxima off the integer path
    def needs_count(t: ScanTarget) -> bool:
        if t.agg in ("count", "mean") or t.fill is not None:
            return True
        return t.agg in ("min", "max") and not columns[t.value].exact_extremes(segments[t.period])

    count_keys = list(
        dict.fromkeys((t.period, t.value, t.filter) for t in targets if needs_count(t))
    )

    def count_of(key: tuple[str, str | None, str | None]) -> np.ndarray:
        return segments[key[0]].count(masks[key[1:]])

    done = map_fn(count_of, count_keys) if map_fn else [count_of(k) for k in count_keys]
    counts = dict(zip(count_keys, done, strict=True))

    def one(t: ScanTarget) -> pa.Array:
        seg = segments[t.period]
        n = counts.get((t.period, t.value, t.filter))
        if t.agg == "count":
            if t.fill is not None:
                return _arrow(np.where(n == 0, np.int64(t.fill), n))
            return _arrow(n)
        assert t.value is not None
        col = columns[t.value]
        mask = masks[(t.value, t.filter)]
        if t.agg in ("sum", "mean"):
            s = col.running_sum(seg, mask)  # 0 where empty
            if t.agg == "sum":
                if n is None:
                    return _arrow(s)
                return _arrow(np.where(n == 0, float(t.fill or 0), s))
            assert n is not None
            empty = n == 0
            with np.errstate(invalid="ignore", divide="ignore"):
                res = s / np.maximum(n, 1)
        else:
            res, empty = col.running_extreme(seg, mask, n, t.agg)
        if t.fill is not None:
            return _arrow(np.where(empty, float(t.fill), res))
        return _arrow(res, empty)

    results = map_fn(one, targets) if map_fn else [one(t) for t in targets]
    return {t.name: r for t, r in zip(targets, results, strict=True)}


__all__ = ["SCAN_AGGS", "ScanTarget", "Segments", "compute", "user_codes"]


# ---------------------------------------------------------------------------------------------
# which targets the scan takes, and the columns the SQL hands it

#: Primitive measures of the scanned aggregates (see ``plan.MEASURES_OF``).
SCAN_FNS = frozenset({"sum", "count_star", "count_value", "avg", "min", "max"})


@dataclass(frozen=True)
class ScanSplit:
    """The scan engine's share of a plan: its targets, and the hidden columns (alias, SQL
    expression over the events) that the statement appends for it after the targets."""

    targets: tuple[ScanTarget, ...]
    hidden: tuple[tuple[str, str], ...]
    periods: tuple[tuple[str, str], ...]  # (period, alias of its key column)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.targets)


def split(plan: Any) -> ScanSplit | None:
    """The targets of ``plan`` (a :class:`sqltargets.plan.Plan`) that the scan computes:
    expanding windows with sum, count, mean, min or max, over per-event output. None when
    there are none."""
    if plan.spec.output != "events":
        return None
    hidden: dict[str, str] = {}

    def col(expr: str) -> str:
        return hidden.setdefault(expr, f"_st_scan{len(hidden)}")

    targets = []
    for o in plan.outputs:
        t = o.target
        if t.window.kind != "expanding" or t.agg not in SCAN_AGGS:
            continue
        m = next(iter(o.measures.values()))
        targets.append(
            ScanTarget(
                name=t.name,
                agg=t.agg,
                period=t.window.period,
                value=None if t.agg == "count" else col(f"e._{m.value.id}"),
                filter=col(f"e._{m.filter.id}") if m.filter is not None else None,
                fill=t.fill,
            )
        )
    if not targets:
        return None
    periods = tuple((p, col(f"e._p_{p}")) for p in dict.fromkeys(t.period for t in targets))
    return ScanSplit(tuple(targets), tuple((a, e) for e, a in hidden.items()), periods)
