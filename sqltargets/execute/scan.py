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

#: Target aggregates the scan computes, and the window kinds it computes them over.
SCAN_AGGS = ("sum", "count", "mean", "min", "max")
SCAN_KINDS = ("expanding", "period", "next_period")

#: Positions go one vectorised step at a time while at least ``_FEW`` segments are still
#: open, for at most ``_STEPS`` positions; the rest of each longer segment is accumulated on
#: its own contiguous rows (at most max(_FEW, rows / _STEPS) such segments).
_FEW = 16
_STEPS = 4096

#: Rolling and future windows search one int64 key, user * band + time: groups of users
#: keep it below this.
_KEY_LIMIT = 2**62

#: See Values.of: the most a window's decimal sum may differ from the doubles' exact sum
#: (half the absolute tolerance that the engines and the reference are compared with).
DECIMAL_SLACK = 5e-7

#: Decimal places of exact integer arithmetic on value columns (cents have 2).
MAX_SCALE = 4


def _within_users(user_code: np.ndarray, key: np.ndarray) -> np.ndarray | None:
    """The stable order by (user, key) when ``key`` goes back somewhere within a user (a
    calendar day repeated by a DST fold, an elapsed time before the previous event's),
    else None: rows sorted by user are already in that order."""
    if len(key) > 1 and np.any((user_code[1:] == user_code[:-1]) & (key[1:] < key[:-1])):
        return np.lexsort((key, user_code))
    return None


def _to_scan(x: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    """Row-order values in the order a scan runs in."""
    return x if perm is None else x[perm]


def _to_rows(res: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    """A scan's results back in row order."""
    if perm is None:
        return res
    out = np.empty_like(res)
    out[perm] = res
    return out


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
    seg_user: np.ndarray | None = None  # user code of each segment
    seg_key: np.ndarray | None = None  # period key of each segment
    _pm: np.ndarray | None = None  # row of each position-major slot
    _steps: list[tuple[int, int, int]] | None = None  # (offset of k, offset of k-1, count)
    _tails: list[tuple[int, int, int]] | None = None  # (start, first position left, length)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, user_code: np.ndarray, key: np.ndarray) -> Segments:
        """Segments for rows whose ``user_code`` is non-decreasing (rows sorted by user)."""
        n = len(key)
        perm = _within_users(user_code, key)  # stable: event order within a key
        user_code, key = _to_scan(user_code, perm), _to_scan(key, perm)
        change = np.ones(n, dtype=bool)
        if n > 1:
            change[1:] = (user_code[1:] != user_code[:-1]) | (key[1:] != key[:-1])
        starts = np.flatnonzero(change)
        lengths = np.diff(np.append(starts, n))
        seg_id = np.cumsum(change) - 1
        return cls(n, starts, lengths, seg_id, perm, user_code[starts], key[starts])

    # -- whole segments, and the next period's --------------------------------------------

    def _row_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The segment of each row, and the last row of each segment (row order)."""
        last = self.starts + self.lengths - 1
        if self.perm is None:
            return self.seg_id, last
        seg_of_row = np.empty(self.n, dtype=np.int64)
        seg_of_row[self.perm] = self.seg_id
        return seg_of_row, self.perm[last]

    def whole(self, running: np.ndarray) -> np.ndarray:
        """For each row, the value ``running`` (row order) has at its segment's last row:
        the aggregate over the whole period."""
        seg_of_row, last = self._row_maps()
        return running[last[seg_of_row]]

    def following(self, running: np.ndarray, next_key: np.ndarray, missing: Any) -> np.ndarray:
        """For each row, the whole-segment value of the same user's segment whose key is
        ``next_key`` of the row's key (``next_key``: per segment), or ``missing``."""
        assert self.seg_user is not None and self.seg_key is not None
        seg_of_row, last = self._row_maps()
        out = np.empty(self.n, dtype=running.dtype)
        if not self.n:
            return out
        lo = int(min(self.seg_key.min(), next_key.min()))
        span = int(max(self.seg_key.max(), next_key.max())) - lo + 1
        have = self.seg_user.astype(np.int64) * span + (self.seg_key - lo)  # ascending
        want = self.seg_user.astype(np.int64) * span + (next_key - lo)
        j = np.minimum(np.searchsorted(have, want), len(have) - 1)
        found = have[j] == want
        target = np.where(found, last[j], 0)[seg_of_row]
        out[:] = running[target]
        out[~found[seg_of_row]] = missing
        return out

    # -- integers: exact by cumulative sums ---------------------------------------------------

    def count(self, flags: np.ndarray) -> np.ndarray:
        """Running count of true ``flags`` within each segment, in row order."""
        return self.int_sum(flags)

    def int_sum(self, x: np.ndarray) -> np.ndarray:
        """Running sum of integers (or booleans) within each segment: a cumulative sum
        minus the segment's offset, exact in int64."""
        x = _to_scan(x, self.perm)
        c = x.astype(np.int64)
        np.cumsum(c, out=c)
        if self.n:
            before = c[self.starts] - x[self.starts]
            for a in range(0, self.n, _CHUNK):  # in pieces: no full-size temporary
                c[a : a + _CHUNK] -= before[self.seg_id[a : a + _CHUNK]]
        return self._back(c)

    def int_max(self, key: np.ndarray, span: int) -> np.ndarray:
        """Running maximum of non-negative integers ``key`` < ``span`` within each segment:
        one cumulative maximum of ``segment * span + key``, since every row of a later
        segment is above every row of an earlier one. Needs segments * span < 2**63."""
        key = _to_scan(key, self.perm)
        out = np.empty(self.n, dtype=np.int64)
        lift = np.empty(min(self.n, _CHUNK), dtype=np.int64)
        carry = np.int64(-1)
        for a in range(0, self.n, _CHUNK):  # in pieces, carrying the maximum across
            b = min(a + _CHUNK, self.n)
            w, part = lift[: b - a], out[a:b]
            np.multiply(self.seg_id[a:b], np.int64(span), out=w)
            np.add(w, key[a:b], out=part)
            part[0] = max(part[0], carry)
            np.maximum.accumulate(part, out=part)
            carry = part[-1]
            part -= w
        return self._back(out)

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
        x = _to_scan(values, self.perm)
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
        return _to_rows(res, self.perm)


class Windows:
    """Rolling ``(t - length, t]`` or future ``(t, t + length]`` windows of each row, over
    rows sorted by user (elapsed times ``t`` in µs). A window is a run of rows in (user,
    time) order, ``[lo, hi)``: sums and counts are differences of prefix sums of integers
    (exact), minima and maxima come from a sparse table of running maxima over powers of
    two (each window is covered by two overlapping blocks).

    >>> w = Timeline(np.array([0, 0, 0, 1]), np.array([0, 5, 5, 6]), 5).windows("rolling", 5)
    >>> w.lo.tolist(), w.hi.tolist()
    ([0, 1, 1, 3], [1, 3, 3, 4])
    >>> w.int_sum(np.array([1, 2, 4, 8])).tolist(), w.int_max(np.array([3, 1, 2, 7])).tolist()
    ([1, 6, 6, 8], [3, 2, 2, 7])
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, perm: np.ndarray | None) -> None:
        self.lo, self.hi, self.perm = lo, hi, perm

    def _back(self, res: np.ndarray) -> np.ndarray:
        return _to_rows(res, self.perm)

    def int_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of integers (or booleans) over each row's window, exact in int64."""
        c = np.zeros(len(x) + 1, dtype=np.int64)
        np.cumsum(_to_scan(x, self.perm), out=c[1:])
        return self._back(c[self.hi] - c[self.lo])

    def int_max(self, key: np.ndarray) -> np.ndarray:
        """Maximum of non-negative integers ``key`` over each row's window (0 when empty)."""
        x = _to_scan(key, self.perm).astype(np.int64)
        size = self.hi - self.lo
        out = np.zeros(len(x), dtype=np.int64)
        level = np.zeros(len(x), dtype=np.int64)  # floor(log2(size)) where size > 0
        nz = size > 0
        level[nz] = np.floor(np.log2(size[nz])).astype(np.int64)
        table, k = x, 0
        top = int(level.max()) if len(x) else 0
        while True:
            rows = np.flatnonzero(nz & (level == k))
            if rows.size:
                w = 1 << k
                out[rows] = np.maximum(table[self.lo[rows]], table[self.hi[rows] - w])
            if k >= top:
                break
            w = 1 << k  # table[i] = max over [i, i + 2w) from the level below
            nxt = table.copy()
            np.maximum(table[:-w], table[w:], out=nxt[:-w])
            table, k = nxt, k + 1
        return self._back(out)


class Timeline:
    """Rows sorted by user and elapsed time, as one increasing int64 key per group of users
    (``user * band + time since the user's first event``, the band wider than any user's
    span plus any window length), with the end of each row's run of equal times. Shared by
    the windows of every length over the same time column."""

    def __init__(self, user_code: np.ndarray, t: np.ndarray, max_length: int = 0) -> None:
        n = len(t)
        self.n = n
        self.perm = _within_users(user_code, t)
        user_code, t = _to_scan(user_code, self.perm), _to_scan(t, self.perm)
        self.max_length = int(max_length)
        self.groups: list[tuple[int, int, np.ndarray]] = []  # (first row, end, keys)
        self.after_peers = np.zeros(n, dtype=np.int64)
        if not n:
            return
        new_user = np.r_[True, user_code[1:] != user_code[:-1]]
        base = t[np.flatnonzero(new_user)][np.cumsum(new_user) - 1]  # each user's first time
        rel = t - base
        band = int(rel.max()) + self.max_length + 2
        users = int(user_code[-1] - user_code[0]) + 1
        if band * users >= _KEY_LIMIT:  # too wide for one int64 key: users in groups
            step = max(1, _KEY_LIMIT // band - 1)
            bounds = np.searchsorted(user_code, user_code[0] + np.arange(0, users + step, step))
        else:
            bounds = np.array([0, n])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if a < b:
                g = (user_code[a:b] - user_code[a]).astype(np.int64) * band + rel[a:b]
                self.groups.append((a, b, g))
        # the end of each row's run of equal (user, time): linear, no search
        change = new_user | np.r_[True, t[1:] != t[:-1]]
        run_end = np.r_[np.flatnonzero(change)[1:], n]
        self.after_peers = run_end[np.cumsum(change) - 1]

    def windows(self, kind: str, length: int) -> Windows:
        """Each row's rolling ``(t - length, t]`` or future ``(t, t + length]`` rows."""
        if length > self.max_length:
            raise ValueError(f"length {length} is over the timeline's {self.max_length}")
        if kind == "rolling":  # peers at t are in
            lo = np.empty(self.n, dtype=np.int64)
            for a, _, g in self.groups:
                lo[a : a + len(g)] = np.searchsorted(g, g - length, side="right") + a
            return Windows(lo, self.after_peers, self.perm)
        hi = np.empty(self.n, dtype=np.int64)  # future: peers at t are out
        for a, _, g in self.groups:
            hi[a : a + len(g)] = np.searchsorted(g, g + length, side="right") + a
        return Windows(self.after_peers, hi, self.perm)


@dataclass(frozen=True)
class ScanTarget:
    """One target the scan computes: which period, aggregate, value and filter columns."""

    name: str
    agg: str  # sum | count | mean | min | max
    period: str
    value: str | None  # column name in the scan input (None for count)
    filter: str | None  # boolean column name (None: every row)
    fill: float | int | None
    kind: str = "expanding"  # expanding | period | next_period | rolling | future
    length: int = 0  # rolling / future: the window length in microseconds
    time: str | None = None  # rolling / future: the elapsed-time column (µs)


_CHUNK = 1 << 18  # rows per piece of work on scratch buffers (2 MB of doubles)


def _to_cents(v: np.ndarray, f: float) -> np.ndarray | None:
    """``v * f`` as int64 when every value round-trips (``round(v * f) / f == v``), else
    None; in pieces, so that the scratch memory stays small and warm."""
    cents = np.empty(len(v), dtype=np.int64)
    c = np.empty(min(len(v), _CHUNK))
    for a in range(0, len(v), _CHUNK):
        part = v[a : a + _CHUNK]
        w = c[: len(part)]
        np.multiply(part, f, out=w)
        np.round(w, out=w)
        cents[a : a + len(part)] = w
        if f != 1.0:
            w /= f
        if not np.array_equal(w, part):
            return None
    return cents


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
    def of(cls, col: pa.ChunkedArray | pa.Array, rows: int | None = None) -> Values:
        """``rows``: the most rows one window can hold (the largest user's; default all).
        The integer path reads each double as the decimal it rounds to; the two differ by
        up to half a unit in the last place, so it is taken only when that difference,
        summed over a whole window, stays below ``DECIMAL_SLACK``: with 4096 rows a user,
        amounts up to about 1e6 take the path; amounts of 1e11 never do."""
        v = _doubles(col)
        valid = _valid(col)
        out = cls(v, valid)
        if len(v) == 0:
            return out
        top = float(max(v.max(), -v.min()))  # NaN or inf: no scale fits, below
        if not (rows or len(v)) * float(np.spacing(top)) / 2 < DECIMAL_SLACK:
            return out
        for scale in (MAX_SCALE, 2, 0):  # any scale that fits is exact; try few
            f = 10.0**scale
            if not top * f * len(v) < 2.0**62:  # sums must stay exact in int64
                continue
            cents = _to_cents(v, f)
            if cents is not None:
                return cls(v, valid, cents, scale, int(cents.min()), int(cents.max()))
            if scale == MAX_SCALE:
                return out  # not a decimal of at most MAX_SCALE places
        return out

    def _decode(self, cents: np.ndarray) -> np.ndarray:
        x = cents.astype(np.float64)
        if self.scale:
            x /= 10.0**self.scale
        return x

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


#: Months in one period, for the next period's key.
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def next_period_key(key: np.ndarray, period: str) -> np.ndarray:
    """The start of the period after the one starting on ``key`` (days since 1970-01-01).

    >>> next_period_key(np.array([19783]), "month").tolist()  # 2024-03-01 -> 2024-04-01
    [19814]
    """
    key = key.astype(np.int64)
    if period == "day":
        return key + 1
    if period == "week":
        return key + 7
    months = key.astype("datetime64[D]").astype("datetime64[M]") + _MONTHS[period]
    return months.astype("datetime64[D]").astype(np.int64)


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


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type, writable: bool = True) -> np.ndarray:
    """The values as a NumPy array (nulls arbitrary: combine with ``_valid``); with
    ``writable=False``, a read-only view of the Arrow buffer where the types allow.

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
        raw = np.frombuffer(arr.buffers()[1], dtype=t.to_pandas_dtype(), count=off + n)[off:]
        if not writable and raw.dtype == np.dtype(dtype):
            return raw
        return np.array(raw, dtype=dtype)
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _bools(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where true (null counts as false)."""
    out = _numpy(col, bool)
    if col.null_count:
        out &= _valid(col)
    return out


def _doubles(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values as doubles, with 0.0 where null."""
    out = _numpy(col, np.float64, writable=bool(col.null_count))
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
        a = _numpy(arr, np.float64, writable=False)
        new[1:] = (a[1:] != a[:-1]) & ~(np.isnan(a[1:]) & np.isnan(a[:-1]))
    elif n > 1 and pa.types.is_integer(arr.type):
        a = _numpy(arr, arr.type.to_pandas_dtype(), writable=False)
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
    longest_user = int(np.bincount(codes).max()) if len(codes) else 0
    sliding = [t for t in targets if t.kind in ("rolling", "future")]
    timelines: dict[str, Timeline] = {}
    for name in dict.fromkeys(t.time for t in sliding if t.time is not None):
        longest = max(t.length for t in sliding if t.time == name)
        times = _numpy(table.column(name), np.int64, writable=False)
        timelines[name] = Timeline(codes, times, longest)
    wkeys = list(dict.fromkeys((t.kind, t.length, t.time) for t in sliding))

    def window_of(key: tuple[str, int, str | None]) -> Windows:
        return timelines[str(key[2])].windows(key[0], key[1])

    built = map_fn(window_of, wkeys) if map_fn else [window_of(k) for k in wkeys]
    windows = dict(zip(wkeys, built, strict=True))
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
            columns[t.value] = Values.of(table.column(t.value), longest_user)
        key = (t.value, t.filter)
        if key not in masks:
            flags = bools[t.filter]
            masks[key] = flags if t.value is None else flags & columns[t.value].valid

    # running counts (of rows, or of contributing values), shared by the targets that need
    # them: counts, means, fills, and minima and maxima off the integer path
    def needs_count(t: ScanTarget) -> bool:
        if t.kind in ("rolling", "future"):
            return False  # counted over each window, below
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

    # next_period: the key of each segment's next period (keys are dates, as day numbers)
    next_keys = {
        t.period: next_period_key(segments[t.period].seg_key, t.period)
        for t in targets
        if t.kind == "next_period"
    }

    def one(t: ScanTarget) -> pa.Array:
        if t.kind in ("rolling", "future"):
            return over_window(t)
        seg = segments[t.period]

        def project(running: np.ndarray, missing: Any) -> np.ndarray:
            """Running values (expanding) -> this target's window kind."""
            if t.kind == "expanding":
                return running
            if t.kind == "period":
                return seg.whole(running)
            return seg.following(running, next_keys[t.period], missing)

        n_run = counts.get((t.period, t.value, t.filter))
        n = None if n_run is None else project(n_run, 0)
        if t.agg == "count":
            assert n is not None
            if t.fill is not None:
                return _arrow(np.where(n == 0, np.int64(t.fill), n))
            return _arrow(n)
        assert t.value is not None
        col = columns[t.value]
        mask = masks[(t.value, t.filter)]
        if t.agg in ("sum", "mean"):
            s = project(col.running_sum(seg, mask), 0.0)  # 0 where empty
            if t.agg == "sum":
                if n is None:
                    return _arrow(s)
                return _arrow(np.where(n == 0, float(t.fill or 0), s))
            assert n is not None
            empty = n == 0
            with np.errstate(invalid="ignore", divide="ignore"):
                res = s / np.maximum(n, 1)
        else:
            res, empty = col.running_extreme(seg, mask, n_run, t.agg)
            res, empty = project(res, np.nan), project(empty, True)
        if t.fill is not None:
            return _arrow(np.where(empty, float(t.fill), res))
        return _arrow(res, empty)

    def over_window(t: ScanTarget) -> pa.Array:
        w = windows[(t.kind, t.length, t.time)]
        mask = masks[(t.value, t.filter)]
        n = w.int_sum(mask)
        if t.agg == "count":
            return _arrow(n if t.fill is None else np.where(n == 0, np.int64(t.fill), n))
        assert t.value is not None
        col = columns[t.value]
        if col.cents is None:  # pragma: no cover - split() takes only decimal columns
            raise ValueError(f"scan: {t.name}: {t.kind} windows need a decimal value column")
        empty = n == 0
        if t.agg in ("sum", "mean"):
            s = col._decode(w.int_sum(np.where(mask, col.cents, 0)))
            if t.agg == "sum":
                return _arrow(np.where(empty, float(t.fill or 0), s))
            with np.errstate(invalid="ignore", divide="ignore"):
                res = s / np.maximum(n, 1)
        elif t.agg == "max":
            r = w.int_max(np.where(mask, col.cents - (col.lo - 1), 0))
            res = col._decode(r + (col.lo - 1))
        else:
            r = w.int_max(np.where(mask, (col.hi + 1) - col.cents, 0))
            res = col._decode((col.hi + 1) - r)
        if t.fill is not None:
            return _arrow(np.where(empty, float(t.fill), res))
        return _arrow(res, empty)

    results = map_fn(one, targets) if map_fn else [one(t) for t in targets]
    return {t.name: r for t, r in zip(targets, results, strict=True)}


__all__ = [
    "SCAN_AGGS", "SCAN_KINDS", "ScanTarget", "Segments", "Timeline", "Windows", "compute",
    "user_codes",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# which targets the scan takes, and the columns the SQL hands it


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


def split(plan: Any, decimal: frozenset[str] | None = None) -> ScanSplit | None:
    """The targets of ``plan`` (a :class:`sqltargets.compile.plan.Plan`) that the scan computes:
    expanding, period and next_period windows with sum, count, mean, min or max, over
    per-event output; and rolling and future windows too, for counts and for values whose
    column (a value id of the plan, ``v0``...) is in ``decimal`` (known to be decimals
    that the integer path takes; the engine checks). None when there are none."""
    if plan.spec.output != "events":
        return None
    elapsed = "_e" if plan.time_kind == "timestamp" and plan.spec.timezone != "UTC" else "_o"
    hidden: dict[str, str] = {}

    def col(expr: str) -> str:
        return hidden.setdefault(expr, f"_st_scan{len(hidden)}")

    targets = []
    for o in plan.outputs:
        t = o.target
        if t.agg not in SCAN_AGGS:
            continue
        m = next(iter(o.measures.values()))
        if t.window.kind in ("rolling", "future"):
            if decimal is None or (t.agg != "count" and m.value.id not in decimal):
                continue
            targets.append(
                ScanTarget(
                    name=t.name,
                    agg=t.agg,
                    period="",
                    value=None if t.agg == "count" else col(f"e._{m.value.id}"),
                    filter=col(f"e._{m.filter.id}") if m.filter is not None else None,
                    fill=t.fill,
                    kind=t.window.kind,
                    length=int(t.window.length),
                    time=col(f"e.{elapsed}"),
                )
            )
            continue
        if t.window.kind not in SCAN_KINDS:
            continue
        targets.append(
            ScanTarget(
                name=t.name,
                agg=t.agg,
                period=t.window.period,
                value=None if t.agg == "count" else col(f"e._{m.value.id}"),
                filter=col(f"e._{m.filter.id}") if m.filter is not None else None,
                fill=t.fill,
                kind=t.window.kind,
            )
        )
    if not targets:
        return None
    periods = tuple(
        (p, col(f"e._p_{p}")) for p in dict.fromkeys(t.period for t in targets if t.period)
    )
    return ScanSplit(tuple(targets), tuple((a, e) for e, a in hidden.items()), periods)
