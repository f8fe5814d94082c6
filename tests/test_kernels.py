"""The native executor's kernels (``sqltargets/execute/kernels.py``) against plain Python loops.

Every oracle here is written from the kernels' docstrings and TARGETS.md alone: a loop over the
rows of each window, never the kernels' own helpers. Inputs are small and random (hypothesis):
several users with non-decreasing (gapped) codes, calendar segments, sorted elapsed times with
ties, random active masks, values with NaN, ±inf, 0.0, -0.0, 1e300, subnormals, ordinary
amounts and duplicates.

The aggregators are fed ranges from the *oracle* drivers (which the driver tests prove equal
to the kernels' drivers), so each aggregator test stands on its own.

Kernel bugs this file found are kept as regression tests at its end.
"""

from __future__ import annotations

import datetime as dt
import math
import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.core.registry import CPUDispatcher

from sqltargets.execute import kernels as K
from sqltargets.execute.runner import SAFE_SUM_SCALE, shift_period
from tests.conftest import examples

I64_MIN = int(np.iinfo(np.int64).min)
I64_MAX = int(np.iinfo(np.int64).max)
NAN = math.nan
INF = math.inf
ORDINARY = (12.5, 3.0, -12.5, 0.0, -0.0, 1999.99, 7.75, 100.0, 0.1, -3.0, 1.0)
SPECIAL = (NAN, INF, -INF, 1e300, -1e300, 5e-324)
EPOCH = dt.date(1970, 1, 1)
PERIODS = ("day", "week", "month", "quarter", "year")

# window kinds of the aggregator tests; the first six never lose rows from a window's start
# except by jumping past everything held (sums there are sequential, bit for bit)
EXACT_KINDS = ("expanding", "expanding_excl", "period", "next_period", "next", "previous")
SLIDING_KINDS = ("rolling", "rolling_excl", "future")
GROWING_KINDS = ("expanding", "expanding_excl", "period", "next_period")
KINDS = EXACT_KINDS + SLIDING_KINDS


# ---------------------------------------------------------------------------------------------
# random events


class Ev(NamedTuple):
    user: np.ndarray  # int64, non-decreasing, with gaps
    e: np.ndarray  # int64 elapsed times, non-decreasing within a user, with ties
    key: np.ndarray  # int64 calendar keys, non-decreasing within a user
    seg: np.ndarray  # bool: a (user, key) segment starts
    act: np.ndarray  # bool
    x: np.ndarray  # float64

    @property
    def n(self) -> int:
        return int(self.user.size)


def values(special: bool) -> st.SearchStrategy[float]:
    ordinary = st.one_of(
        st.sampled_from(ORDINARY),
        st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )
    return st.one_of(ordinary, st.sampled_from(SPECIAL)) if special else ordinary


@st.composite
def events(
    draw: st.DrawFn,
    special: bool = True,
    max_users: int = 4,
    max_rows: int = 8,
    e_start: st.SearchStrategy[int] | None = None,
    e_steps: tuple[int, ...] = (0, 0, 1, 2, 3, 10),
) -> Ev:
    n_users = draw(st.integers(1, max_users))
    code = draw(st.integers(-5, 5))
    user: list[int] = []
    e: list[int] = []
    key: list[int] = []
    for _ in range(n_users):
        code += draw(st.integers(1, 3))
        t = draw(e_start if e_start is not None else st.integers(-50, 50))
        k = draw(st.integers(-20, 20))
        for _ in range(draw(st.integers(0, max_rows))):
            t = min(t + draw(st.sampled_from(e_steps)), I64_MAX)
            k += draw(st.sampled_from((0, 0, 1, 2)))
            user.append(code)
            e.append(t)
            key.append(k)
    n = len(user)
    seg = [i == 0 or user[i] != user[i - 1] or key[i] != key[i - 1] for i in range(n)]
    mostly = draw(st.sampled_from((1, 3, 10)))  # active rows: half, most, nearly all
    act = draw(st.lists(st.sampled_from((True,) * mostly + (False,)), min_size=n, max_size=n))
    xs = values(special)
    if draw(st.booleans()):  # many duplicates: values from a small pool
        xs = st.sampled_from(draw(st.lists(xs, min_size=1, max_size=3)))
    x = draw(st.lists(xs, min_size=n, max_size=n))
    return Ev(
        np.array(user, np.int64),
        np.array(e, np.int64),
        np.array(key, np.int64),
        np.array(seg, np.bool_),
        np.array(act, np.bool_),
        np.array(x, np.float64),
    )


# ---------------------------------------------------------------------------------------------
# oracle window drivers (Python ints and lists)


def user_bounds(user: list[int]) -> list[tuple[int, int]]:
    """(first row, one past the last row) of each row's user."""
    n = len(user)
    out = []
    for i in range(n):
        s = i
        while s > 0 and user[s - 1] == user[i]:
            s -= 1
        t = i + 1
        while t < n and user[t] == user[i]:
            t += 1
        out.append((s, t))
    return out


def oracle_expanding(seg: list[bool], inclusive: bool) -> tuple[list[int], list[int]]:
    lo, hi = [], []
    for i in range(len(seg)):
        s = i
        while not seg[s]:
            s -= 1
        lo.append(s)
        hi.append(i + 1 if inclusive else i)
    return lo, hi


def oracle_period(seg: list[bool]) -> tuple[list[int], list[int]]:
    n = len(seg)
    lo, hi = [], []
    for i in range(n):
        s = i
        while not seg[s]:
            s -= 1
        t = i + 1
        while t < n and not seg[t]:
            t += 1
        lo.append(s)
        hi.append(t)
    return lo, hi


def oracle_next_period(
    user: list[int], key: list[int], wanted: list[int]
) -> tuple[list[int], list[int]]:
    """The rows of the same user whose key is the wanted one; else an empty range where such
    a segment would start (the first later key, or the user's end)."""
    lo, hi = [], []
    for i, (s, t) in enumerate(user_bounds(user)):
        rows = [r for r in range(s, t) if key[r] == wanted[i]]
        if rows:
            assert rows == list(range(rows[0], rows[-1] + 1))
            lo.append(rows[0])
            hi.append(rows[-1] + 1)
        else:
            at = next((r for r in range(s, t) if key[r] > wanted[i]), t)
            lo.append(at)
            hi.append(at)
    return lo, hi


def oracle_sliding(
    user: list[int], e: list[int], lo_after: int, hi_after: int, inclusive: bool
) -> tuple[list[int], list[int]]:
    """Rows of the same user with e in (t + lo_after, t + hi_after] (or ..., t + hi_after));
    an empty window sits at the first row after t + lo_after."""
    lo, hi = [], []
    for i, (s, t) in enumerate(user_bounds(user)):
        low = e[i] + lo_after  # Python ints: no overflow
        high = e[i] + hi_after
        rows = [
            r for r in range(s, t) if low < e[r] and (e[r] <= high if inclusive else e[r] < high)
        ]
        if rows:
            assert rows == list(range(rows[0], rows[-1] + 1))
            lo.append(rows[0])
            hi.append(rows[-1] + 1)
        else:
            at = next((r for r in range(s, t) if e[r] > low), t)
            lo.append(at)
            hi.append(at)
    return lo, hi


def oracle_nth(
    user: list[int], act: list[bool], n_th: int, after: bool
) -> tuple[list[int], list[int]]:
    lo, hi = [], []
    for i, (s, t) in enumerate(user_bounds(user)):
        if after:
            cands = [r for r in range(i + 1, t) if act[r]]
        else:
            cands = [r for r in range(i - 1, s - 1, -1) if act[r]]
        if len(cands) >= n_th:
            lo.append(cands[n_th - 1])
            hi.append(cands[n_th - 1] + 1)
        else:
            lo.append(t if after else s)
            hi.append(t if after else s)
    return lo, hi


def oracle_ranges(ev: Ev, kind: str, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's ranges of one window kind (``p``: a length, offset or n, by kind)."""
    user, e, key, seg, act = (a.tolist() for a in ev[:5])
    if kind in ("expanding", "expanding_excl"):
        lo, hi = oracle_expanding(seg, kind == "expanding")
    elif kind == "period":
        lo, hi = oracle_period(seg)
    elif kind == "next_period":
        lo, hi = oracle_next_period(user, key, [k + p for k in key])
    elif kind in ("rolling", "rolling_excl"):
        lo, hi = oracle_sliding(user, e, -p, 0, kind == "rolling")
    elif kind == "future":
        lo, hi = oracle_sliding(user, e, p - 1, 2 * p, True)
    else:
        lo, hi = oracle_nth(user, act, p, kind == "next")
    return np.array(lo, np.int64), np.array(hi, np.int64)


@st.composite
def windows(draw: st.DrawFn, special: bool = True, kinds: tuple[str, ...] = KINDS) -> tuple:
    ev = draw(events(special=special, max_rows=12))
    kind = draw(st.sampled_from(kinds))
    p = draw(
        st.integers(1, 3) if kind in ("next_period", "next", "previous") else st.integers(1, 30)
    )
    lo, hi = oracle_ranges(ev, kind, p)
    return ev, kind, lo, hi


def check_range_shape(user: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Ranges stay inside the row's user, and both ends never decrease (what every aggregator
    relies on)."""
    for i, (s, t) in enumerate(user_bounds(user.tolist())):
        assert s <= lo[i] <= hi[i] <= t, (i, lo[i], hi[i], s, t)
    assert np.all(np.diff(lo) >= 0), lo
    assert np.all(np.diff(hi) >= 0), hi


def active_in(ev: Ev, lo: np.ndarray, hi: np.ndarray, i: int) -> list[float]:
    return [float(ev.x[j]) for j in range(lo[i], hi[i]) if ev.act[j]]


def same(a: float, b: float) -> bool:
    """Equal, or both NaN (-0.0 equals 0.0)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def same_bits(a: float, b: float) -> bool:
    """The same double: both NaN, or equal with the same sign."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def sorted_nan_last(vals: list[float], reverse: bool = False) -> list[float]:
    """Stable sort with NaN as the largest value."""
    return sorted(vals, key=lambda v: (1, 0.0) if math.isnan(v) else (0, v), reverse=reverse)


def new(n: int, dtype: Any = np.float64) -> np.ndarray:
    return np.empty(n, dtype)


# ---------------------------------------------------------------------------------------------
# window drivers


@settings(max_examples=examples(150))
@given(ev=events(special=False), inclusive=st.booleans())
def test_expanding_ranges(ev: Ev, inclusive: bool) -> None:
    lo, hi = new(ev.n, np.int64), new(ev.n, np.int64)
    K.expanding_ranges(ev.seg, inclusive, lo, hi)
    want = oracle_expanding(ev.seg.tolist(), inclusive)
    assert (lo.tolist(), hi.tolist()) == want
    check_range_shape(ev.user, lo, hi)


@settings(max_examples=examples(150))
@given(ev=events(special=False))
def test_period_ranges(ev: Ev) -> None:
    lo, hi = new(ev.n, np.int64), new(ev.n, np.int64)
    K.period_ranges(ev.seg, lo, hi)
    assert (lo.tolist(), hi.tolist()) == oracle_period(ev.seg.tolist())
    check_range_shape(ev.user, lo, hi)


def period_start(period: str, p: int) -> int:
    """Day number (since 1970-01-01) of the start of the p-th period after the one holding
    1970-01-01 (weeks: ISO, from Monday 1969-12-29)."""
    if period == "day":
        return p
    if period == "week":
        return (dt.date(1969, 12, 29) + dt.timedelta(weeks=p) - EPOCH).days
    months = p * {"month": 1, "quarter": 3, "year": 12}[period]
    y, m = divmod(months, 12)
    return (dt.date(1970 + y, m + 1, 1) - EPOCH).days


@st.composite
def calendar_events(draw: st.DrawFn) -> tuple[str, int, list[int], list[int], list[int]]:
    """Users whose rows carry calendar keys (period starts, gaps, several rows per period)
    and the key of the period ``1 + offset`` periods after each row's."""
    period = draw(st.sampled_from(PERIODS))
    offset = draw(st.integers(0, 2))
    code = draw(st.integers(-3, 3))
    user, idx = [], []
    for _ in range(draw(st.integers(1, 4))):
        code += draw(st.integers(1, 2))
        p = draw(st.integers(-40, 40))
        for _ in range(draw(st.integers(0, 6))):
            for _ in range(draw(st.integers(1, 3))):
                user.append(code)
                idx.append(p)
            p += draw(st.sampled_from((1, 1, 2, 3)))
    key = [period_start(period, p) for p in idx]
    wanted = [period_start(period, p + 1 + offset) for p in idx]
    return period, offset, user, key, wanted


@settings(max_examples=examples(200))
@given(cal=calendar_events())
def test_next_period_ranges(cal: tuple) -> None:
    _period, _offset, user, key, wanted = cal
    n = len(user)
    seg = [i == 0 or user[i] != user[i - 1] or key[i] != key[i - 1] for i in range(n)]
    lo, hi = new(n, np.int64), new(n, np.int64)
    K.next_period_ranges(
        np.array(seg, np.bool_),
        np.array(user, np.int64),
        np.array(key, np.int64),
        np.array(wanted, np.int64),
        lo,
        hi,
    )
    assert (lo.tolist(), hi.tolist()) == oracle_next_period(user, key, wanted)
    check_range_shape(np.array(user, np.int64), lo, hi)


def test_next_period_ranges_absent_periods() -> None:
    # one user with days 0, 0, 2, 3; another with day 1: next day of day 0 (1) is absent for
    # user 0 (empty range where day 2 starts), day 2 -> 3, day 3 -> 4 absent (the user's end)
    user = np.array([0, 0, 0, 0, 1], np.int64)
    key = np.array([0, 0, 2, 3, 1], np.int64)
    seg = np.array([True, False, True, True, True])
    lo, hi = new(5, np.int64), new(5, np.int64)
    K.next_period_ranges(seg, user, key, key + 1, lo, hi)
    assert lo.tolist() == [2, 2, 3, 4, 5]
    assert hi.tolist() == [2, 2, 4, 4, 5]


# elapsed times at the int64 edges
E_STARTS = st.one_of(
    st.integers(-1000, 1000),
    st.integers(I64_MAX - 40, I64_MAX),
    st.integers(I64_MIN, I64_MIN + 40),
)
LENGTHS = st.one_of(
    st.integers(1, 25), st.sampled_from((2**62, I64_MAX - 5, I64_MAX)), st.integers(1, 2**63 - 1)
)


@settings(max_examples=examples(300))
@given(
    ev=events(special=False, e_start=E_STARTS, e_steps=(0, 0, 1, 2, 5, 2**40)),
    data=st.data(),
)
def test_sliding_ranges(ev: Ev, data: st.DataObject) -> None:
    if data.draw(st.booleans(), "rolling"):
        length = data.draw(LENGTHS, "length")
        lo_after, hi_after = -length, 0
        inclusive = data.draw(st.booleans(), "include_current")
    else:  # future (t + o, t + o + L]
        off = data.draw(st.one_of(st.integers(0, 20), st.sampled_from((2**62, I64_MAX - 3))))
        length = data.draw(st.integers(1, I64_MAX - off), "length")
        lo_after, hi_after = off, off + length
        inclusive = data.draw(st.booleans(), "inclusive end")
    lo, hi = new(ev.n, np.int64), new(ev.n, np.int64)
    K.sliding_ranges(ev.user, ev.e, lo_after, hi_after, inclusive, lo, hi)
    want = oracle_sliding(ev.user.tolist(), ev.e.tolist(), lo_after, hi_after, inclusive)
    assert (lo.tolist(), hi.tolist()) == want
    check_range_shape(ev.user, lo, hi)


def test_sliding_ranges_ties_and_users() -> None:
    # user 0: times 0, 0, 5, 10, 10; user 1: 7, 8. rolling (t - 5, t] and (t - 5, t)
    user = np.array([0, 0, 0, 0, 0, 1, 1], np.int64)
    e = np.array([0, 0, 5, 10, 10, 7, 8], np.int64)
    lo, hi = new(7, np.int64), new(7, np.int64)
    K.sliding_ranges(user, e, -5, 0, True, lo, hi)
    assert lo.tolist() == [0, 0, 2, 3, 3, 5, 5]
    assert hi.tolist() == [2, 2, 3, 5, 5, 6, 7]
    K.sliding_ranges(user, e, -5, 0, False, lo, hi)  # same-time rows leave together
    assert lo.tolist() == [0, 0, 2, 3, 3, 5, 5]
    assert hi.tolist() == [0, 0, 2, 3, 3, 5, 6]
    K.sliding_ranges(user, e, 0, 5, True, lo, hi)  # future (t, t + 5]
    assert lo.tolist() == [2, 2, 3, 5, 5, 6, 7]
    assert hi.tolist() == [3, 3, 5, 5, 5, 7, 7]


@settings(max_examples=examples(200))
@given(ev=events(special=False), n_th=st.integers(1, 3), after=st.booleans())
def test_nth_event_ranges(ev: Ev, n_th: int, after: bool) -> None:
    lo, hi = new(ev.n, np.int64), new(ev.n, np.int64)
    K.nth_event_ranges(ev.user, ev.act, n_th, after, lo, hi)
    assert (lo.tolist(), hi.tolist()) == oracle_nth(ev.user.tolist(), ev.act.tolist(), n_th, after)
    check_range_shape(ev.user, lo, hi)


# ---------------------------------------------------------------------------------------------
# counts


@settings(max_examples=examples(100))
@given(w=windows())
def test_active_count_and_window_counts(w: tuple) -> None:
    ev, _kind, lo, hi = w
    cum = new(ev.n + 1, np.int64)
    K.active_count(ev.act, cum)
    assert cum.tolist() == [sum(ev.act[:i].tolist()) for i in range(ev.n + 1)]
    out = new(ev.n, np.int64)
    K.window_counts(cum, lo, hi, out)
    assert out.tolist() == [len(active_in(ev, lo, hi, i)) for i in range(ev.n)]


# ---------------------------------------------------------------------------------------------
# swag: sum, min, max


def seq_sum(vals: list[float]) -> float:
    acc = 0.0
    for v in vals:
        acc += v
    return acc


@settings(max_examples=examples(300))
@given(w=windows(kinds=EXACT_KINDS))
def test_swag_sum_calendar_is_sequential_bit_for_bit(w: tuple) -> None:
    ev, kind, lo, hi = w
    out = new(ev.n)
    K.swag(ev.x, ev.act, lo, hi, K.SUM, out, new(ev.n))
    for i in range(ev.n):
        want = seq_sum(active_in(ev, lo, hi, i))
        assert same_bits(out[i], want), (kind, i, out[i], want)


@settings(max_examples=examples(300))
@given(w=windows(kinds=SLIDING_KINDS))
def test_swag_sum_sliding(w: tuple) -> None:
    ev, kind, lo, hi = w
    out = new(ev.n)
    K.swag(ev.x, ev.act, lo, hi, K.SUM, out, new(ev.n))
    ordinary = all(v in ORDINARY or abs(v) <= 1e4 for v in ev.x.tolist())
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        want = seq_sum(vals)
        if not math.isfinite(want):  # no overflow here: the set decides NaN, +inf or -inf
            assert same(out[i], want), (kind, i, out[i], want)
            continue
        # two orders of summation differ by at most 2u(n-1) sum|x| (u = 2^-53)
        bound = 2.3e-16 * len(vals) * math.fsum(abs(v) for v in vals)
        assert abs(out[i] - want) <= bound, (kind, i, out[i], want)
        if ordinary:
            assert math.isclose(out[i], want, rel_tol=1e-9, abs_tol=1e-6)


def oracle_min(vals: list[float]) -> float:
    """NaN is the largest value: it is the minimum only when every value is NaN; an empty
    window gives the identity, NaN."""
    numbers = [v for v in vals if not math.isnan(v)]
    return min(numbers) if numbers else NAN


def oracle_max(vals: list[float]) -> float:
    """NaN is the largest value; an empty window gives the identity, -inf."""
    if any(math.isnan(v) for v in vals):
        return NAN
    return max(vals) if vals else -INF


@settings(max_examples=examples(300))
@given(w=windows(), op=st.sampled_from(("min", "max")))
def test_swag_min_max(w: tuple, op: str) -> None:
    ev, kind, lo, hi = w
    out = new(ev.n)
    K.swag(ev.x, ev.act, lo, hi, K.MIN if op == "min" else K.MAX, out, new(ev.n))
    oracle = oracle_min if op == "min" else oracle_max
    for i in range(ev.n):
        want = oracle(active_in(ev, lo, hi, i))
        assert same(out[i], want), (kind, op, i, out[i], want)


def test_swag_min_max_nan_semantics() -> None:
    x = np.array([NAN, 1.0, NAN, -INF, NAN])
    act = np.ones(5, np.bool_)
    lo = np.array([0, 0, 1, 2, 4], np.int64)
    hi = np.array([1, 2, 3, 4, 5], np.int64)
    out = new(5)
    K.swag(x, act, lo, hi, K.MIN, out, new(5))
    assert np.isnan(out[0]) and out[1:4].tolist() == [1.0, 1.0, -INF] and np.isnan(out[4])
    K.swag(x, act, lo, hi, K.MAX, out, new(5))
    assert np.isnan(out).all()


@settings(max_examples=examples(200))
@given(w=windows(special=False), last=st.booleans(), data=st.data())
def test_swag_position(w: tuple, last: bool, data: st.DataObject) -> None:
    ev, kind, lo, hi = w
    pos = np.array(data.draw(st.permutations(range(ev.n)), "pos"), np.int64)
    out = new(ev.n, np.int64)
    K.swag_position(pos, ev.act, lo, hi, last, out, new(ev.n, np.int64))
    for i in range(ev.n):
        held = [int(pos[j]) for j in range(lo[i], hi[i]) if ev.act[j]]
        want = (max(held) if last else min(held)) if held else -1
        assert out[i] == want, (kind, last, i)


# ---------------------------------------------------------------------------------------------
# moments


def two_pass(vals: list[float]) -> float:
    """Sum of squared deviations from the mean: the mean first, then the squares."""
    if not vals:
        return 0.0
    mean = math.fsum(vals) / len(vals)
    return math.fsum((v - mean) * (v - mean) for v in vals)


@settings(max_examples=examples(250))
@given(w=windows(special=False))
def test_swag_moments(w: tuple) -> None:
    # the runner uses Welford/Chan only for finite values below SAFE_MOMENT_VALUE
    ev, kind, lo, hi = w
    m2, c = new(ev.n), new(ev.n)
    K.swag_moments(ev.x, ev.act, lo, hi, m2, c, new(ev.n), new(ev.n), new(ev.n))
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        assert c[i] == len(vals)
        assert math.isclose(m2[i], two_pass(vals), rel_tol=1e-9, abs_tol=1e-6), (kind, i)


def plain_two_pass(vals: list[float]) -> float:
    """The same in plain floating point, in event order (for NaN, inf and overflow)."""
    if not vals:
        return 0.0
    mean = seq_sum(vals) / len(vals)
    acc = 0.0
    for v in vals:
        acc += (v - mean) * (v - mean)
    return acc


@settings(max_examples=examples(200))
@given(w=windows())
def test_moments_two_pass(w: tuple) -> None:
    ev, kind, lo, hi = w
    m2, c = new(ev.n), new(ev.n)
    K.moments_two_pass(ev.x, ev.act, lo, hi, m2, c)
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        assert c[i] == len(vals)
        if all(math.isfinite(v) and abs(v) < 1e150 for v in vals):
            assert math.isclose(m2[i], two_pass(vals), rel_tol=1e-9, abs_tol=1e-6), (kind, i)
        else:  # non-finite values, or squares that overflow: the same NaN or inf
            assert same(m2[i], plain_two_pass(vals)), (kind, i, m2[i], vals)


# ---------------------------------------------------------------------------------------------
# exact fallbacks


@settings(max_examples=examples(150))
@given(w=windows())
def test_sum_sequential(w: tuple) -> None:
    ev, _kind, lo, hi = w
    out = new(ev.n)
    K.sum_sequential(ev.x, ev.act, lo, hi, out)
    for i in range(ev.n):
        assert same_bits(out[i], seq_sum(active_in(ev, lo, hi, i)))


def oracle_risk(ev: Ev, lo: np.ndarray, hi: np.ndarray) -> float:
    """max over windows of (active rows) x (sum of |x|); inf with a non-finite active value."""
    if any(not math.isfinite(v) for v in ev.x[ev.act].tolist()):
        return INF
    worst = 0.0
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        worst = max(worst, len(vals) * math.fsum(abs(v) for v in vals))
    return worst


@settings(max_examples=examples(200))
@given(
    w=windows(kinds=SLIDING_KINDS, special=False),
    spice=st.lists(st.sampled_from((NAN, INF, -INF, 5e-324, 1e300, -1e300, 1e16)), max_size=3),
    data=st.data(),
)
def test_sum_order_risk_is_an_upper_bound(w: tuple, spice: list, data: st.DataObject) -> None:
    ev, _kind, lo, hi = w
    x = ev.x.copy()
    for v in spice:  # a few non-finite (or tiny) values somewhere
        if ev.n:
            x[data.draw(st.integers(0, ev.n - 1))] = v
    ev = ev._replace(x=x)
    risk = K.sum_order_risk(ev.x, ev.act, lo, hi)
    want = oracle_risk(ev, lo, hi)
    if math.isinf(want):
        assert risk == INF
        return
    assert risk >= want, (risk, want)  # an upper bound, whatever the other windows hold
    # the runner's promise: below SAFE_SUM_SCALE, swag's sums stay within 2.2e-8 of the
    # sequential ones
    if risk <= SAFE_SUM_SCALE:
        out, seq = new(ev.n), new(ev.n)
        K.swag(ev.x, ev.act, lo, hi, K.SUM, out, new(ev.n))
        K.sum_sequential(ev.x, ev.act, lo, hi, seq)
        assert np.all(np.abs(out - seq) <= 2.3e-16 * SAFE_SUM_SCALE)


# ---------------------------------------------------------------------------------------------
# count_distinct


@settings(max_examples=examples(200))
@given(w=windows(special=False), data=st.data())
def test_count_distinct(w: tuple, data: st.DataObject) -> None:
    ev, kind, lo, hi = w
    n_codes = data.draw(st.integers(1, 5), "n_codes")
    codes = [
        data.draw(st.integers(0, n_codes - 1) if a else st.integers(-1, n_codes - 1))
        for a in ev.act.tolist()
    ]  # null codes (-1) only on inactive rows, as the runner guarantees
    out = new(ev.n, np.int64)
    K.count_distinct(np.array(codes, np.int64), ev.act, lo, hi, n_codes, out)
    for i in range(ev.n):
        want = len({codes[j] for j in range(lo[i], hi[i]) if ev.act[j]})
        assert out[i] == want, (kind, i)


# ---------------------------------------------------------------------------------------------
# order statistics


def oracle_user_ranks(ev: Ev) -> tuple[dict[int, int], list[float], list[int], int]:
    """rank per active row (ascending, NaN last, ties by row), the sorted values laid out from
    each user's first row, each row's user start, the most active rows of one user."""
    rank: dict[int, int] = {}
    sorted_x = [NAN] * ev.n
    first = []
    most = 0
    for i, (s, t) in enumerate(user_bounds(ev.user.tolist())):
        first.append(s)
        if i != s:
            continue
        rows = [r for r in range(s, t) if ev.act[r]]
        order = sorted(rows, key=lambda r: ((1, 0.0) if math.isnan(ev.x[r]) else (0, ev.x[r]), r))
        for q, r in enumerate(order):
            rank[r] = q
            sorted_x[s + q] = float(ev.x[r])
        most = max(most, len(rows))
    return rank, sorted_x, first, most


@settings(max_examples=examples(150))
@given(ev=events())
def test_user_ranks(ev: Ev) -> None:
    rank, sorted_x, first = new(ev.n, np.int64), new(ev.n), new(ev.n, np.int64)
    most = K.user_ranks(ev.user, ev.x, ev.act, rank, sorted_x, first)
    want_rank, want_sorted, want_first, want_most = oracle_user_ranks(ev)
    assert most == want_most
    assert first.tolist() == want_first
    for r, q in want_rank.items():
        assert rank[r] == q, r
        assert same_bits(sorted_x[first[r] + q], want_sorted[first[r] + q])


def oracle_quantile(vals: list[float], q: float) -> float:
    """h = (m - 1) q, j = floor(h), g = h - j: x_j when g == 0, else (1 - g) x_j + g x_{j+1},
    over the values sorted with NaN last."""
    xs = sorted_nan_last(vals)
    h = (len(xs) - 1) * q
    j = math.floor(h)
    g = h - j
    if g == 0.0:
        return xs[j]
    return (1.0 - g) * xs[j] + g * xs[j + 1]


QS = st.lists(
    st.one_of(st.sampled_from((0.0, 0.25, 0.5, 0.9, 1.0)), st.floats(0.0, 1.0)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=examples(300))
@given(w=windows(), qs=QS, largest=st.booleans())
def test_order_statistics(w: tuple, qs: list[float], largest: bool) -> None:
    ev, kind, lo, hi = w
    rank_d, sorted_x, first, most = oracle_user_ranks(ev)
    rank = np.array([rank_d.get(r, -1) for r in range(ev.n)], np.int64)
    qa = np.zeros(len(qs)) if largest else np.array(qs)
    out = np.full((ev.n, qa.size), 12345.0)
    valid = np.zeros((ev.n, qa.size), np.bool_)
    K.order_statistics(
        rank, np.array(sorted_x), np.array(first, np.int64), ev.act, lo, hi, most, qa,
        largest, out, valid,
    )  # fmt: skip
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        for k in range(qa.size):
            if largest:
                top = sorted_nan_last(vals, reverse=True)
                assert valid[i, k] == (k < len(top)), (kind, i, k)
                if k < len(top):
                    assert same(out[i, k], top[k]), (kind, i, k, out[i, k], top[k])
            else:
                assert valid[i, k] == bool(vals), (kind, i, k)
                if vals:
                    want = oracle_quantile(vals, qs[k])
                    assert same(out[i, k], want), (kind, i, qs[k], out[i, k], want)


@settings(max_examples=examples(150))
@given(w=windows(kinds=GROWING_KINDS), k=st.integers(1, 4))
def test_top_k_growing(w: tuple, k: int) -> None:
    # calendar windows only grow or jump past everything held: one small sorted buffer
    ev, kind, lo, hi = w
    out, valid = np.empty((ev.n, k)), np.empty((ev.n, k), np.bool_)
    K.top_k_growing(ev.x, ev.act, lo, hi, k, out, valid)
    for i in range(ev.n):
        top = sorted_nan_last(active_in(ev, lo, hi, i), reverse=True)
        for j in range(k):
            assert valid[i, j] == (j < len(top)), (kind, i, j)
            if j < len(top):
                assert same(out[i, j], top[j]), (kind, i, j, out[i, j], top[j])


@settings(max_examples=examples(200))
@given(
    ev=events(),
    kind=st.sampled_from(("expanding", "expanding_excl", "period")),
    op=st.sampled_from(("sum", "min", "max", "first", "last")),
)
def test_calendar_fold(ev: Ev, kind: str, op: str) -> None:
    # one pass over expanding / period windows: the same values as the window loops
    if kind == "period":
        lo, hi = oracle_period(ev.seg.tolist())
    else:
        lo, hi = oracle_expanding(ev.seg.tolist(), kind == "expanding")
    code = {"sum": K.SUM, "min": K.MIN, "max": K.MAX, "first": K.FIRST, "last": K.LAST}[op]
    out, count = new(ev.n), new(ev.n, np.int64)
    K.calendar_fold(
        ev.seg, ev.act, ev.x, code, kind == "period", kind != "expanding_excl", out, count
    )
    for i in range(ev.n):
        vals = [ev.x[r] for r in range(lo[i], hi[i]) if ev.act[r]]
        assert count[i] == len(vals)
        if not vals:
            continue
        if op == "sum":
            acc = 0.0
            for v in vals:
                acc += v
            assert same_bits(out[i], acc), (i, out[i], acc)  # bit for bit: row order
        elif op in ("first", "last"):
            assert same(out[i], vals[0] if op == "first" else vals[-1])
        else:
            want = oracle_min(vals) if op == "min" else oracle_max(vals)
            assert same(out[i], want), (i, op, out[i], want)


@settings(max_examples=examples(200))
@given(
    ev=events(),
    step=st.integers(1, 3),
    op=st.sampled_from(("sum", "min", "max", "first", "last")),
)
def test_next_period_fold(ev: Ev, step: int, op: str) -> None:
    # each segment's whole aggregate, given to the rows of the segment `step` keys before
    user, key = ev.user.tolist(), ev.key.tolist()
    wanted = [k + step for k in key]
    lo, hi = oracle_next_period(user, key, wanted)
    code = {"sum": K.SUM, "min": K.MIN, "max": K.MAX, "first": K.FIRST, "last": K.LAST}[op]
    out, count = new(ev.n), new(ev.n, np.int64)
    K.next_period_fold(
        ev.seg, ev.user, ev.key, np.array(wanted, np.int64), ev.act, ev.x, code, out, count
    )
    for i in range(ev.n):
        vals = [ev.x[r] for r in range(lo[i], hi[i]) if ev.act[r]]
        assert count[i] == len(vals), i
        if not vals:
            continue
        if op == "sum":
            acc = 0.0
            for v in vals:
                acc += v
            assert same_bits(out[i], acc), (i, out[i], acc)
        elif op in ("first", "last"):
            assert same(out[i], vals[0] if op == "first" else vals[-1])
        else:
            want = oracle_min(vals) if op == "min" else oracle_max(vals)
            assert same(out[i], want), (i, op, out[i], want)


@settings(max_examples=examples(150))
@given(w=windows(kinds=SLIDING_KINDS, special=False))
def test_the_per_user_risk_bounds_the_per_window_one(w: tuple) -> None:
    ev, _kind, lo, hi = w
    cum = new(ev.n + 1, np.int64)
    K.active_count(ev.act, cum)
    cheap = K.sum_order_risk_by_user(ev.user, ev.x, ev.act, cum, lo, hi)
    assert cheap >= K.sum_order_risk(ev.x, ev.act, lo, hi) * (1 - 1e-9)
    assert cheap >= oracle_risk(ev, lo, hi)


def test_moments_helpers() -> None:
    act = np.array([True, True, False])
    assert K.moments_are_safe(np.array([1.0, -1e149, NAN]), act, 1e150)
    assert not K.moments_are_safe(np.array([1.0, 1e150, 0.0]), act, 1e150)
    assert not K.moments_are_safe(np.array([INF, 0.0, 0.0]), act, 1e150)
    m2 = np.array([8.0, 3.0, 0.0])
    K.finish_moments(m2, np.array([3.0, 1.0, 0.0]), False)
    assert m2.tolist() == [4.0, 3.0, 0.0]  # m2 / max(count - 1, 1); empty windows masked later
    m2 = np.array([8.0])
    K.finish_moments(m2, np.array([3.0]), True)
    assert m2.tolist() == [2.0]


def test_minus_user_first() -> None:
    user = np.array([0, 0, 0, 1, 1, 2], np.int64)
    x = np.array([5.0, 7.0, 1.0, 1e12 + 1, 1e12 + 3.5, 9.0])
    act = np.array([False, True, True, True, True, False])
    out = new(6)
    K.minus_user_first(user, x, act, out)
    # user 0 shifts by its first active value (7), user 1 by 1e12 + 1 exactly, user 2 has
    # none: by 0
    assert out.tolist() == [-2.0, 0.0, -6.0, 0.0, 2.5, 9.0]


def test_quantile_examples() -> None:
    # one window of [3, NaN, 1, 2]: sorted 1, 2, 3, NaN
    x = np.array([3.0, NAN, 1.0, 2.0])
    act = np.ones(4, np.bool_)
    rank, sx, first = new(4, np.int64), new(4), new(4, np.int64)
    most = K.user_ranks(np.zeros(4, np.int64), x, act, rank, sx, first)
    assert rank.tolist() == [2, 3, 0, 1]
    lo, hi = np.zeros(1, np.int64), np.array([4], np.int64)
    qs = np.array([0.0, 0.5, 2 / 3, 1.0])
    out, valid = np.empty((1, 4)), np.empty((1, 4), np.bool_)
    K.order_statistics(rank, sx, first, act, lo, hi, most, qs, False, out, valid)
    assert out[0, :3].tolist() == [1.0, 2.5, 3.0] and np.isnan(out[0, 3]) and valid.all()
    top = np.zeros(5)
    out, valid = np.empty((1, 5)), np.empty((1, 5), np.bool_)
    K.order_statistics(rank, sx, first, act, lo, hi, most, top, True, out, valid)
    assert np.isnan(out[0, 0]) and out[0, 1:4].tolist() == [3.0, 2.0, 1.0]
    assert valid[0].tolist() == [True, True, True, True, False]


# ---------------------------------------------------------------------------------------------
# mode


def canon(v: float) -> Any:
    """Equality of values as the mode sees it: every NaN one value, -0.0 equal to 0.0."""
    return "nan" if math.isnan(v) else v + 0.0


def canon_order(c: Any) -> tuple[int, float]:
    return (1, 0.0) if c == "nan" else (0, c)


@settings(max_examples=examples(150))
@given(ev=events())
def test_user_value_codes(ev: Ev) -> None:
    code, vals, first = new(ev.n, np.int64), new(ev.n), new(ev.n, np.int64)
    most = K.user_value_codes(ev.user, ev.x, ev.act, code, vals, first)
    want_most = 0
    for i, (s, t) in enumerate(user_bounds(ev.user.tolist())):
        assert first[i] == s
        distinct = sorted(
            {canon(ev.x[r]) for r in range(s, t) if ev.act[r]}, key=canon_order
        )  # ascending, NaN last
        want_most = max(want_most, len(distinct))
        if ev.act[i]:
            c = distinct.index(canon(ev.x[i]))
            assert code[i] == c, i
            assert same(vals[s + c], ev.x[i])
    assert most == want_most


def oracle_mode(vals: list[float]) -> float:
    counts = Counter(canon(v) for v in vals)
    top = max(counts.values())
    best = min((c for c, k in counts.items() if k == top), key=canon_order)
    return NAN if best == "nan" else best


@settings(max_examples=examples(300))
@given(w=windows(), pool=st.lists(st.sampled_from((0.0, -0.0, 1.0, NAN, -INF, 2.5)), max_size=4))
def test_mode(w: tuple, pool: list[float]) -> None:
    ev, kind, lo, hi = w
    if pool and ev.n:  # many duplicates: values from a small pool
        ev = ev._replace(x=np.array([pool[i % len(pool)] for i in range(ev.n)]))
    code, values_, first = new(ev.n, np.int64), new(ev.n), new(ev.n, np.int64)
    most = K.user_value_codes(ev.user, ev.x, ev.act, code, values_, first)
    out, valid = new(ev.n), new(ev.n, np.bool_)
    K.mode(code, values_, first, ev.act, lo, hi, most, out, valid)
    for i in range(ev.n):
        vals = active_in(ev, lo, hi, i)
        assert valid[i] == bool(vals), (kind, i)
        if vals:
            want = oracle_mode(vals)
            assert same(out[i], want), (kind, i, out[i], want, vals)


def test_mode_examples() -> None:
    # 2.0 twice, -0.0 and 0.0 (one value) twice, NaN twice: ties go to the smallest, 0.0;
    # then NaN three times wins
    x = np.array([2.0, -0.0, NAN, 2.0, 0.0, NAN, NAN])
    act = np.ones(7, np.bool_)
    code, vals, first = new(7, np.int64), new(7), new(7, np.int64)
    most = K.user_value_codes(np.zeros(7, np.int64), x, act, code, vals, first)
    assert most == 3 and code.tolist() == [1, 0, 2, 1, 0, 2, 2]
    lo = np.zeros(2, np.int64)
    hi = np.array([6, 7], np.int64)
    out, valid = new(2), new(2, np.bool_)
    K.mode(code, vals, first, act, lo, hi, most, out, valid)
    assert out[0] == 0.0 and np.isnan(out[1]) and valid.all()


# ---------------------------------------------------------------------------------------------
# elapsed


@settings(max_examples=examples(150))
@given(
    ev=events(special=False, e_steps=(0, 1, 10**6, 86_400 * 10**6)),
    n_th=st.integers(1, 3),
    after=st.booleans(),
)
def test_elapsed(ev: Ev, n_th: int, after: bool) -> None:
    lo, hi = (
        np.array(a, np.int64) for a in oracle_nth(ev.user.tolist(), ev.act.tolist(), n_th, after)
    )
    out, valid = new(ev.n), new(ev.n, np.bool_)
    K.elapsed(ev.e, lo, hi, after, out, valid)
    e = ev.e.tolist()
    for i in range(ev.n):
        assert valid[i] == (hi[i] > lo[i])
        if hi[i] > lo[i]:
            d = e[lo[i]] - e[i] if after else e[i] - e[lo[i]]
            assert d >= 0 and out[i] == d / 1e6


# ---------------------------------------------------------------------------------------------
# the runner's calendar arithmetic


def start_of(period: str, d: dt.date) -> dt.date:
    if period == "day":
        return d
    if period == "week":
        return d - dt.timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    if period == "quarter":
        return d.replace(month=3 * ((d.month - 1) // 3) + 1, day=1)
    return d.replace(month=1, day=1)


def add_periods(period: str, d: dt.date, steps: int) -> dt.date:
    if period == "day":
        return d + dt.timedelta(days=steps)
    if period == "week":
        return d + dt.timedelta(weeks=steps)
    months = d.year * 12 + d.month - 1 + steps * {"month": 1, "quarter": 3, "year": 12}[period]
    return dt.date(months // 12, months % 12 + 1, 1)


@settings(max_examples=examples(200))
@given(
    dates=st.lists(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)), min_size=1, max_size=5),
    period=st.sampled_from(PERIODS),
    steps=st.integers(-4, 13),
    dtype=st.sampled_from((np.int32, np.int64)),
)
def test_shift_period(dates: list[dt.date], period: str, steps: int, dtype: Any) -> None:
    starts = [start_of(period, d) for d in dates]
    key = np.array([(s - EPOCH).days for s in starts], dtype)
    got = shift_period(key, period, steps)
    assert got.dtype == np.int64
    want = [(add_periods(period, s, steps) - EPOCH).days for s in starts]
    assert got.tolist() == want


def test_shift_period_examples() -> None:
    def days(*ymd: int) -> int:
        return (dt.date(*ymd) - EPOCH).days

    k = np.array([days(1969, 12, 1), days(1969, 11, 1), days(2024, 1, 1)])
    assert shift_period(k, "month", 1).tolist() == [0, days(1969, 12, 1), days(2024, 2, 1)]
    assert shift_period(np.array([days(1969, 10, 1)]), "quarter", 1).tolist() == [0]
    assert shift_period(np.array([days(1969, 10, 1)]), "quarter", 2).tolist() == [days(1970, 4, 1)]
    assert shift_period(np.array([days(1968, 1, 1)]), "year", 3).tolist() == [days(1971, 1, 1)]
    assert shift_period(np.array([-3]), "week", 2).tolist() == [11]  # Monday 1969-12-29
    assert shift_period(np.array([-1]), "day", 3).tolist() == [2]


# ---------------------------------------------------------------------------------------------
# derived columns: calendar keys, MCC filters and slots (what DuckDB computed before)

PERIOD_NUMBER = {"day": 0, "week": 1, "month": 2, "quarter": 3, "year": 4}
US_PER_DAY = 86_400_000_000


def start_of_shifted(period: str, d: dt.date, week_shift: int) -> dt.date:
    if period == "week":  # weeks start on weekday `week_shift` (0 Monday)
        return d - dt.timedelta(days=(d.weekday() - week_shift) % 7)
    return start_of(period, d)


@settings(max_examples=examples(300))
@given(
    times=st.lists(
        st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        min_size=1,
        max_size=20,
    ),
    period=st.sampled_from(PERIODS),
    week_shift=st.integers(0, 6),
)
def test_period_keys(times: list[dt.datetime], period: str, week_shift: int) -> None:
    """Any wall-clock time of years 1 to 9999 (before 1970 too, at any microsecond): the
    first day of its period, weeks starting on any weekday."""
    epoch = dt.datetime(1970, 1, 1)
    us = np.array([(t - epoch) // dt.timedelta(microseconds=1) for t in times], np.int64)
    out = np.empty(us.size, np.int32)
    K.period_keys(us, PERIOD_NUMBER[period], week_shift if period == "week" else 0, out)
    shift = week_shift if period == "week" else 0
    want = [(start_of_shifted(period, t.date(), shift) - EPOCH).days for t in times]
    assert out.tolist() == want


def test_period_keys_as_duckdb() -> None:
    """The same keys as the SQL the portable statement runs (``CAST(date_trunc(...) AS
    DATE)``), on the edges of days, weeks, months and years, around 1970 and far from it."""
    import duckdb

    con = duckdb.connect()
    keys = {  # days since 1970-01-01 (BC dates too)
        "day": "CAST(t AS DATE)",
        "week": "CAST(date_trunc('week', t) AS DATE)",
        "month": "CAST(date_trunc('month', t) AS DATE)",
        "quarter": "CAST(date_trunc('quarter', t) AS DATE)",
        "year": "CAST(date_trunc('year', t) AS DATE)",
        "week6": "CAST(date_trunc('week', t - INTERVAL 6 DAY) + INTERVAL 6 DAY AS DATE)",
    }
    select = ", ".join(f"{sql} - DATE '1970-01-01'" for sql in keys.values())
    rows = con.sql(
        f"SELECT epoch_us(t), {select} "
        "FROM (SELECT unnest([TIMESTAMP '1969-12-31 23:59:59.999999', TIMESTAMP '1970-01-01', "
        "TIMESTAMP '1600-02-29 12:00', TIMESTAMP '0001-01-01', TIMESTAMP '9999-12-31 23:59:59', "
        "TIMESTAMP '2024-03-31 23:59:59.999999', TIMESTAMP '2024-04-01', "
        "TIMESTAMP '1900-03-01 00:00:00.000001', TIMESTAMP '2000-02-29 23:00']) AS t)"
    ).fetchall()
    us = np.array([r[0] for r in rows], np.int64)
    for j, name in enumerate(keys, start=1):
        period, shift = ("week", 6) if name == "week6" else (name, 0)
        out = np.empty(us.size, np.int32)
        K.period_keys(us, PERIOD_NUMBER[period], shift, out)
        assert out.tolist() == [r[j] for r in rows], name


def in_ranges(c: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= c <= hi for lo, hi in ranges)


@settings(max_examples=examples(200))
@given(
    codes=st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(0, 30), max_size=40),
    valid=st.lists(st.booleans(), min_size=40, max_size=40),
    where=st.lists(st.booleans(), min_size=40, max_size=40),
    use_where=st.booleans(),
    ranges=st.lists(st.tuples(st.integers(-5, 35), st.integers(0, 8)), min_size=1, max_size=6),
    scale=st.sampled_from((1, 100_000)),
    step=st.lists(st.sampled_from((-1, 0, 1)), min_size=40, max_size=40),
)
def test_mcc_filter(
    codes: list[int],
    valid: list[bool],
    where: list[bool],
    use_where: bool,
    ranges: list,
    scale: int,
    step: list[int],
) -> None:
    """As ``COALESCE(code IN (...) OR code BETWEEN lo AND hi [AND where], FALSE)``, with the
    ranges as the program passes them (merged, sorted); ranges spanning up to 4M codes
    (``scale``) take the binary search instead of the table, codes next to their ends too."""
    from sqltargets.compile.mcc import merge

    spans = [(lo * scale, (lo + width) * scale) for lo, width in ranges]
    m = merge(spans)
    codes = [
        c if abs(c) > 40 else max(-(2**31), min(2**31 - 1, c * scale + d))
        for c, d in zip(codes, step)
    ]
    n = len(codes)
    code = np.array(codes, np.int32)
    ok = np.array(valid[:n], bool)
    w = np.array(where[:n], bool)
    out = np.empty(n, bool)
    los = np.array([a for a, _ in m], np.int64)
    his = np.array([b for _, b in m], np.int64)
    K.mcc_filter(code, ok, los, his, w, use_where, out)
    want = [
        bool(ok[i]) and (not use_where or bool(w[i])) and in_ranges(codes[i], spans)
        for i in range(n)
    ]
    assert out.tolist() == want


@settings(max_examples=examples(200))
@given(
    codes=st.lists(st.integers(-3, 40), max_size=40),
    valid=st.lists(st.booleans(), min_size=40, max_size=40),
    groups=st.lists(
        st.lists(st.tuples(st.integers(-2, 38), st.integers(0, 6)), min_size=1, max_size=3),
        min_size=1,
        max_size=4,
    ),
)
def test_mcc_slots(codes: list[int], valid: list[bool], groups: list) -> None:
    """The first group holding the code (groups may overlap), else the last slot."""
    spans = [[(lo, lo + width) for lo, width in g] for g in groups]
    flat = [(r, gi) for gi, g in enumerate(spans) for r in g]
    n = len(codes)
    ok = np.array(valid[:n], bool)
    out = np.empty(n, np.int64)
    K.mcc_slots(
        np.array(codes, np.int32),
        ok,
        np.array([r[0] for r, _ in flat], np.int64),
        np.array([r[1] for r, _ in flat], np.int64),
        np.array([g for _, g in flat], np.int64),
        len(spans),
        out,
    )
    want = []
    for i, c in enumerate(codes):
        hit = [gi for gi, g in enumerate(spans) if ok[i] and in_ranges(c, g)]
        want.append(hit[0] if hit else len(spans))
    assert out.tolist() == want


# ---------------------------------------------------------------------------------------------
# compiled: nogil, cached, picklable by reference; safe on several threads


DISPATCHERS = sorted(name for name, f in vars(K).items() if isinstance(f, CPUDispatcher))


def test_every_kernel_is_found() -> None:
    public = {"swag", "swag_moments", "sliding_ranges", "order_statistics", "mode", "elapsed"}
    assert public <= set(DISPATCHERS)


@pytest.mark.parametrize("name", DISPATCHERS)
def test_kernels_nogil_cached_picklable(name: str) -> None:
    f = getattr(K, name)
    assert f.targetoptions.get("nopython") is True, name
    assert f.targetoptions.get("nogil") is True, name  # releases the GIL
    assert type(f._cache).__name__ == "FunctionCache", name  # cache=True (NullCache otherwise)
    assert pickle.loads(pickle.dumps(f)) is f, name  # DataLoader workers get the same function


def test_swag_on_threads_matches_one_thread() -> None:
    # the kernels keep no state between calls: concurrent runs give the single-thread answers
    rng = np.random.default_rng(7)
    n = 200_000
    user = np.repeat(np.arange(n // 1000, dtype=np.int64), 1000)
    e = np.sort(rng.integers(0, 10_000, n)).astype(np.int64)
    e = e + user * 10_000  # sorted within (and across) users
    lo, hi = new(n, np.int64), new(n, np.int64)
    K.sliding_ranges(user, e, -50, 0, True, lo, hi)
    inputs = [(rng.normal(size=n), rng.random(n) < 0.7, op) for op in (K.SUM, K.MIN, K.MAX) * 2]

    def run(args: tuple) -> np.ndarray:
        x, act, op = args
        out = new(n)
        K.swag(x, act, lo, hi, op, out, new(n))
        return out

    alone = [run(a) for a in inputs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, inputs))
    for a, b in zip(alone, together):
        assert np.array_equal(a, b, equal_nan=True)  # empty windows: identities


# ---------------------------------------------------------------------------------------------
# cases of kernel bugs found by this file, fixed since: kept as regression tests


def test_sum_order_risk_after_a_huge_value() -> None:
    x = np.array([1e300, 1.0])
    lo, hi = np.array([1], np.int64), np.array([2], np.int64)
    assert K.sum_order_risk(x, np.ones(2, np.bool_), lo, hi) >= 1.0


def test_sum_order_risk_lets_a_reordered_sum_through() -> None:
    # one user, future (t, t + 10]: row 0 (1e300) is in no window; row 1's window holds
    # 1, 1e16, -1e16, summed right to left by swag's front part
    user = np.zeros(5, np.int64)
    e = np.arange(5, dtype=np.int64)
    x = np.array([1e300, 5.0, 1.0, 1e16, -1e16])
    act = np.ones(5, np.bool_)
    lo, hi = new(5, np.int64), new(5, np.int64)
    K.sliding_ranges(user, e, 0, 10, True, lo, hi)
    out, seq = new(5), new(5)
    K.sum_sequential(x, act, lo, hi, seq)
    if K.sum_order_risk(x, act, lo, hi) <= SAFE_SUM_SCALE:  # what the runner does
        K.swag(x, act, lo, hi, K.SUM, out, new(5))
    else:
        out = seq
    assert out.tolist() == seq.tolist()


def test_sliding_ranges_at_int64_min() -> None:
    user = np.zeros(2, np.int64)
    e = np.array([I64_MIN, I64_MIN + 1], np.int64)
    lo, hi = new(2, np.int64), new(2, np.int64)
    K.sliding_ranges(user, e, -5, 0, True, lo, hi)  # rolling (t - 5, t]
    assert lo.tolist() == [0, 0] and hi.tolist() == [1, 2]


def test_sliding_ranges_exclusive_end_at_int64_max() -> None:
    user = np.zeros(2, np.int64)
    e = np.array([I64_MAX - 1, I64_MAX], np.int64)
    lo, hi = new(2, np.int64), new(2, np.int64)
    K.sliding_ranges(user, e, 0, 5, False, lo, hi)  # (t, t + 5)
    assert lo.tolist() == [1, 2] and hi.tolist() == [2, 2]


# --------------------------------------------------------------------------- the event sort


@settings(max_examples=examples(300))
@given(
    n=st.integers(0, 700),
    span=st.sampled_from([1, 3, 2**11, 2**40, 2**62, 2**63 - 1]),
    base=st.sampled_from([0, -(2**62), 1_700_000_000_000_000, -(2**63), 2**62]),
    seed=st.integers(0, 2**32 - 1),
)
def test_stable_argsort(n: int, span: int, base: int, seed: int) -> None:
    """The radix sort is numpy's stable argsort: ties (small spans), huge and negative
    keys, spans that would overflow (which take the merge sort), short inputs."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, span, n, dtype=np.int64, endpoint=True)
    x = x + np.int64(base)  # wraps around where it overflows: any int64 values will do
    got = K.stable_argsort(x)
    assert got.tolist() == np.argsort(x, kind="stable").tolist()


def is_identity(perm: np.ndarray) -> bool:
    return bool(np.array_equal(perm, np.arange(perm.size)))


@settings(max_examples=examples(150))
@given(
    users=st.integers(1, 6),
    n=st.integers(0, 900),
    times=st.integers(1, 10**13),
    seed=st.integers(0, 2**32 - 1),
    threads=st.integers(1, 3),
)
def test_event_order_is_a_stable_lexsort(
    users: int, n: int, times: int, seed: int, threads: int
) -> None:
    """(user, k1, k2, k3) order, stable, on any threads: shuffled rows, rows already in
    time order, ties in k1 broken by k2 then k3 (short runs of ties and runs of hundreds),
    ties in all three kept in input order."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n).astype(np.int64)
    k1 = rng.integers(0, times, n).astype(np.int64)
    k2 = rng.integers(0, 3, n).astype(np.int64)
    k3 = rng.permutation(n).astype(np.int64)
    if seed % 2 == 0:  # ties in all three keys: input order decides
        k3 = rng.integers(0, 3, n).astype(np.int64)
    if seed % 3 == 0:  # some users' rows already in order
        k1 = np.sort(k1)
    got = K.event_order(user, users, k1, k2, k3, threads)
    assert got.tolist() == np.lexsort((k3, k2, k1, user)).tolist()
    # in order already exactly when the sort is the identity (by all three keys here)
    assert K.in_event_order(user, k1, k2, k3, 3) == is_identity(got)
    perm = got
    s_user, s1, s2, s3 = user[perm], k1[perm], k2[perm], k3[perm]
    assert K.in_event_order(s_user, s1, s2, s3, 3)
    assert is_identity(K.event_order(s_user, users, s1, s2, s3, threads))
    if n > 1 and not (np.all(s1 == s1[0]) and np.all(s2 == s2[0]) and np.all(s3 == s3[0])):
        # sorted rows reversed are out of order unless every key ties within the users
        r = slice(None, None, -1)
        want = is_identity(K.event_order(s_user[r], users, s1[r], s2[r], s3[r], threads))
        assert K.in_event_order(s_user[r], s1[r], s2[r], s3[r], 3) == want
    # fewer keys: ties in k1 are left as they are
    assert K.in_event_order(s_user, s1, s1, s1, 1)


@settings(max_examples=examples(60))
@given(
    users=st.lists(st.integers(-5, 40), min_size=2, max_size=300),
    wide=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_order_events_by_integer_users(users: list[int], wide: bool, seed: int) -> None:
    """Integer users, dense or with gaps and negatives (counted by their span) or spread
    over a wide range (ranked), tie-breaks in order or shuffled: rows sorted by (user,
    time, tie-break)."""
    import pyarrow as pa

    from sqltargets.execute.arrays import span_codes
    from sqltargets.execute.engine import order_events

    rng = np.random.default_rng(seed)
    u = np.array(users, np.int64) * (10**12 if wide else 1)
    counted = int(u.max()) - int(u.min()) < 2 * u.size  # else ranked
    assert (span_codes(pa.array(u)) is not None) == counted
    t = rng.integers(0, 4, u.size).astype(np.int64)
    # the tie-break in input order (as DuckDB usually returns it), or not
    tb = np.arange(u.size, dtype=np.int64) if seed % 2 else rng.permutation(u.size)
    table = pa.table({"_u": u, "_o": t, "_tb": tb})
    got = order_events(table, ("_u", "_o", "_tb"), threads=2)
    want = np.lexsort((tb, t, u))
    assert got.column("_tb").to_pylist() == tb[want].tolist()
