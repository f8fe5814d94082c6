"""Window kernels: compiled loops over rows sorted by user and event order.

Every target is computed in two steps, each a plain loop compiled by numba
(``@njit(cache=True, nogil=True)``: no classes, so the functions pickle by reference into
DataLoader workers, and release the GIL so that targets run on several threads):

1. a **window driver** writes, for every row ``i``, the half-open range of rows
   ``[lo[i], hi[i])`` that its window covers. Rows are in *scan order*: sorted by user and
   event order, or (where a calendar key or an elapsed time goes back within a user, as a
   daylight-saving change can make it) by user and that key, stably. Within a user the
   ranges never cross into another user, and both ends never decrease from one row to the
   next, whatever the window kind:

   - ``expanding``: from the first row of the row's segment (user and calendar period) to
     the row itself (or to the row before it, ``include_current: false``);
   - ``period``: the row's whole segment; ``next_period``: the segment of the same user
     whose key is the wanted period (or an empty range);
   - ``rolling`` / ``future``: rows whose elapsed time is in ``(t - length, t]`` /
     ``(t + offset, t + offset + length]`` (two pointers);
   - ``next`` / ``previous``: the n-th active row after / before this one.

2. an **aggregator** walks the rows once, keeping the aggregate of the rows that are
   *active* (pass the target's filter and have a value) inside the current range.
   Because both ends only move forward, each row enters and leaves once:

   - sum, min, max, first, last, and moments (for var/std) use two stacks ("SWAG"): a back
     part accumulated in event order and a front part of suffix aggregates rebuilt when
     rows must leave. When a range starts at or after everything held (a new calendar
     segment) the state is reset, so calendar windows accumulate strictly in event order:
     their sums equal a sequential sum bit for bit, as the NumPy reference computes them;
   - count_distinct keeps a count per value code; mode a segment tree over a user's value
     codes (the most frequent, then the smallest); quantile, median and top_k a Fenwick tree
     over a user's value ranks (the k-th smallest in O(log n)).

Empty windows are found with a prefix count of active rows (exact integers).

Sums over sliding windows (rolling, future) combine rows in another order than a
sequential sum. :func:`sum_order_risk` bounds how far that can move a result; where the
bound is not far below the comparison tolerance (huge, non-finite or cancelling values),
the runner uses :func:`sum_sequential`, which re-adds every window in event order.

>>> import numpy as np
>>> flags = np.array([True, False, False, True, False])  # two segments: rows 0-2 and 3-4
>>> lo = np.empty(5, np.int64); hi = np.empty(5, np.int64)
>>> expanding_ranges(flags, True, lo, hi)
>>> lo.tolist(), hi.tolist()
([0, 0, 0, 3, 3], [1, 2, 3, 4, 5])
>>> x = np.array([1.0, 2.0, 4.0, 8.0, 16.0]); act = np.ones(5, np.bool_)
>>> out = np.empty(5); scratch = np.empty(5)
>>> swag(x, act, lo, hi, SUM, out, scratch)
>>> out.tolist()
[1.0, 3.0, 7.0, 8.0, 24.0]
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit

#: Operations of :func:`swag` (and their identities).
SUM, MIN, MAX = 0, 1, 2

_INT64_MAX = np.iinfo(np.int64).max


def _jit(fn):  # type: ignore[no-untyped-def]
    return njit(cache=True, nogil=True)(fn)


# ---------------------------------------------------------------------------------------------
# helpers


@_jit
def active_count(act, cum):  # type: ignore[no-untyped-def]
    """``cum[i]`` = active rows before row i (``cum`` has one more entry than ``act``)."""
    c = 0
    cum[0] = 0
    for i in range(act.size):
        if act[i]:
            c += 1
        cum[i + 1] = c


@_jit
def window_counts(cum, lo, hi, out):  # type: ignore[no-untyped-def]
    """Active rows in each window."""
    for i in range(lo.size):
        out[i] = cum[hi[i]] - cum[lo[i]]


@_jit
def _add_saturating(a, b):  # type: ignore[no-untyped-def]
    # a + b for int64 elapsed times, saturating instead of wrapping (b >= 0)
    if a > _INT64_MAX - b:
        return _INT64_MAX
    return a + b


# ---------------------------------------------------------------------------------------------
# window drivers: [lo, hi) per row


@_jit
def expanding_ranges(seg_start, inclusive, lo, hi):  # type: ignore[no-untyped-def]
    """From the row's segment start to the row (inclusive) or to the row before it."""
    s = 0
    for i in range(seg_start.size):
        if seg_start[i]:
            s = i
        lo[i] = s
        hi[i] = i + 1 if inclusive else i


@_jit
def period_ranges(seg_start, lo, hi):  # type: ignore[no-untyped-def]
    """The row's whole segment."""
    n = seg_start.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and not seg_start[j]:
            j += 1
        for r in range(i, j):
            lo[r] = i
            hi[r] = j
        i = j


@_jit
def next_period_ranges(seg_start, user, key, wanted, lo, hi):  # type: ignore[no-untyped-def]
    """The segment of the same user whose key equals ``wanted`` (per row; constant within a
    segment), searched forward: keys increase within a user (scan order). Empty ranges sit
    where that segment would start, so both ends keep increasing."""
    n = seg_start.size
    i = 0
    p = 0  # candidate: the start of a segment at or after the current one's end
    while i < n:
        j = i + 1
        while j < n and not seg_start[j]:
            j += 1
        if p < j:
            p = j
        w = wanted[i]
        u = user[i]
        while p < n and user[p] == u and key[p] < w:
            p += 1
            while p < n and not seg_start[p]:
                p += 1
        a = p
        b = p
        if p < n and user[p] == u and key[p] == w:
            b = p + 1
            while b < n and not seg_start[b]:
                b += 1
        for r in range(i, j):
            lo[r] = a
            hi[r] = b
        i = j


@_jit
def sliding_ranges(user, e, lo_after, hi_after, hi_inclusive, lo, hi):  # type: ignore[no-untyped-def]
    """Rows of the same user with elapsed time in ``(e + lo_after, e + hi_after]``
    (``hi_inclusive``) or ``(e + lo_after, e + hi_after)``; ``e`` increases within a user.

    rolling (t - L, t]: lo_after = -L, hi_after = 0; future (t + o, t + o + L]:
    lo_after = o, hi_after = o + L. A bound beyond the int64 range leaves that side open.
    """
    n = e.size
    i = 0
    while i < n:  # one user's rows [i, j) at a time: the pointers never test the user
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        a = i
        b = i
        for r in range(i, j):
            t = e[r]
            # the lower bound t + lo_after: below int64 excludes nothing; above, everything
            if lo_after < 0 and t < -_INT64_MAX - 1 - lo_after:
                a = i
            else:
                low = _add_saturating(t, lo_after) if lo_after >= 0 else t + lo_after
                while a < j and e[a] <= low:
                    a += 1
            if b < a:
                b = a
            if hi_after > 0 and t > _INT64_MAX - hi_after:  # above int64: every later row
                b = j
            else:
                high = t + hi_after
                if hi_inclusive:
                    while b < j and e[b] <= high:
                        b += 1
                else:
                    while b < j and e[b] < high:
                        b += 1
            lo[r] = a
            hi[r] = b
        i = j


@_jit
def nth_event_ranges(user, act, n_th, after, lo, hi):  # type: ignore[no-untyped-def]
    """The n-th active row of the same user strictly after (``after``) or before this row:
    ``[j, j + 1)``, or an empty range at the user's end (after) or start (before)."""
    n = act.size
    i = 0
    pos = np.empty(n, np.int64)
    while i < n:
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        m = 0
        for r in range(i, j):  # the user's active rows, in order
            if act[r]:
                pos[i + m] = r
                m += 1
        seen = 0  # active rows before r
        for r in range(i, j):
            if after:
                k = seen + (1 if act[r] else 0) + n_th - 1
                if k < m:
                    lo[r] = pos[i + k]
                    hi[r] = pos[i + k] + 1
                else:
                    lo[r] = j
                    hi[r] = j
            else:
                k = seen - n_th
                if k >= 0:
                    lo[r] = pos[i + k]
                    hi[r] = pos[i + k] + 1
                else:
                    lo[r] = i
                    hi[r] = i
            if act[r]:
                seen += 1
        i = j


# ---------------------------------------------------------------------------------------------
# aggregators: two stacks over [lo, hi)


@_jit
def _combine(op, a, b):  # type: ignore[no-untyped-def]
    if op == 0:
        return a + b
    if op == 1:  # min: NaN is the largest value, so it loses unless there is nothing else
        if a != a:
            return b
        if b != b:
            return a
        return a if a <= b else b
    if a != a or b != b:  # max: NaN is the largest value
        return np.nan
    return a if a >= b else b


@_jit
def _identity(op):  # type: ignore[no-untyped-def]
    if op == 0:
        return 0.0
    if op == 1:
        return np.nan  # _combine(min, NaN, x) = x
    return -np.inf


@_jit
def swag(x, act, lo, hi, op, out, front):  # type: ignore[no-untyped-def]
    """``op`` (SUM, MIN or MAX) of the active ``x`` in ``[lo[i], hi[i])``, for every row.

    ``front`` is scratch of ``x``'s length. Empty windows get the identity (0, NaN, -inf):
    the caller masks them with a count.
    """
    ident = _identity(op)
    n = lo.size
    cur_lo = 0
    cur_hi = 0
    mid = 0
    back = ident
    for i in range(n):
        lw = lo[i]
        hw = hi[i]
        if lw >= cur_hi:  # nothing held stays: start afresh (a new segment)
            cur_lo = lw
            cur_hi = lw
            mid = lw
            back = ident
        while cur_hi < hw:
            # an inactive row combines the identity: the same result, bit for bit (see
            # _sum_fold), and a select instead of a branch that filters make mispredict
            v = x[cur_hi]
            back = _combine(op, back, v if act[cur_hi] else ident)
            cur_hi += 1
        if lw > cur_lo:
            cur_lo = lw
            if cur_lo > mid:  # rows of the back part leave: rebuild the front
                acc = ident
                for j in range(cur_hi - 1, cur_lo - 1, -1):
                    v = x[j]
                    acc = _combine(op, v if act[j] else ident, acc)
                    front[j] = acc
                mid = cur_hi
                back = ident
        if cur_lo < mid:
            out[i] = _combine(op, front[cur_lo], back)
        else:
            out[i] = back


@_jit
def swag_position(pos, act, lo, hi, last, out, front):  # type: ignore[no-untyped-def]
    """The smallest (first) or largest (``last``) ``pos`` among active rows of each window;
    -1 when empty. ``pos`` is the event position of each row (in scan order)."""
    n = lo.size
    cur_lo = 0
    cur_hi = 0
    mid = 0
    none = -1
    back = none
    for i in range(n):
        lw = lo[i]
        hw = hi[i]
        if lw >= cur_hi:
            cur_lo = lw
            cur_hi = lw
            mid = lw
            back = none
        while cur_hi < hw:
            if act[cur_hi]:
                p = pos[cur_hi]
                if back == none or (p > back if last else p < back):
                    back = p
            cur_hi += 1
        if lw > cur_lo:
            cur_lo = lw
            if cur_lo > mid:
                acc = none
                for j in range(cur_hi - 1, cur_lo - 1, -1):
                    if act[j]:
                        p = pos[j]
                        if acc == none or (p > acc if last else p < acc):
                            acc = p
                    front[j] = acc
                mid = cur_hi
                back = none
        best = back
        if cur_lo < mid:
            f = front[cur_lo]
            if best == none or (f != none and (f > best if last else f < best)):
                best = f
        out[i] = best


@_jit
def _merge(ca, ma, sa, cb, mb, sb):  # type: ignore[no-untyped-def]
    # Chan et al.: count, mean and sum of squared deviations of two parts
    if ca == 0:
        return cb, mb, sb
    if cb == 0:
        return ca, ma, sa
    c = ca + cb
    d = mb - ma
    return c, ma + d * (cb / c), sa + sb + d * d * (ca * cb / c)


@_jit
def swag_moments(x, act, lo, hi, out_m2, out_count, fc, fm, fs):  # type: ignore[no-untyped-def]
    """Sum of squared deviations from the mean (and the count) of the active ``x`` in each
    window (Welford within the back part, Chan's merge across parts)."""
    n = lo.size
    cur_lo = 0
    cur_hi = 0
    mid = 0
    bc = 0.0
    bm = 0.0
    bs = 0.0
    for i in range(n):
        lw = lo[i]
        hw = hi[i]
        if lw >= cur_hi:
            cur_lo = lw
            cur_hi = lw
            mid = lw
            bc = 0.0
            bm = 0.0
            bs = 0.0
        while cur_hi < hw:
            if act[cur_hi]:
                bc, bm, bs = _merge(bc, bm, bs, 1.0, x[cur_hi], 0.0)
            cur_hi += 1
        if lw > cur_lo:
            cur_lo = lw
            if cur_lo > mid:
                ac = 0.0
                am = 0.0
                a_s = 0.0
                for j in range(cur_hi - 1, cur_lo - 1, -1):
                    if act[j]:
                        ac, am, a_s = _merge(1.0, x[j], 0.0, ac, am, a_s)
                    fc[j] = ac
                    fm[j] = am
                    fs[j] = a_s
                mid = cur_hi
                bc = 0.0
                bm = 0.0
                bs = 0.0
        if cur_lo < mid:
            c, _m, s = _merge(fc[cur_lo], fm[cur_lo], fs[cur_lo], bc, bm, bs)
        else:
            c, s = bc, bs
        out_m2[i] = s
        out_count[i] = c


# ---------------------------------------------------------------------------------------------
# calendar windows in one pass (the common case, without materialised ranges)

#: Further operations of :func:`calendar_fold`: the first / last active value.
FIRST, LAST = 3, 4


@_jit
def calendar_fold(seg_start, act, x, op, whole, inclusive, out, count):  # type: ignore[no-untyped-def]
    """SUM, MIN, MAX, FIRST or LAST of the active ``x`` over calendar windows, and the
    active count, in one pass over the rows: running within each segment (expanding; the
    rows before this one with ``inclusive`` False) or over the whole segment (``whole``:
    period). Sums accumulate in row order: the same as :func:`swag` over
    :func:`expanding_ranges` / :func:`period_ranges`, without materialising the ranges.
    Empty windows get 0, NaN, -inf or NaN (the caller masks them with ``count``)."""
    if op == SUM:
        _sum_fold(seg_start, act, x, whole, inclusive, out, count)
        return
    n = seg_start.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and not seg_start[j]:
            j += 1
        ident = _identity(op) if op <= 2 else np.nan
        acc = ident
        c = 0
        for r in range(i, j):
            if not whole and not inclusive:
                out[r] = acc
                count[r] = c
            a = act[r]
            v = x[r]
            if op <= 2:  # an inactive row combines the identity: a select, not a branch
                acc = _combine(op, acc, v if a else ident)
            elif a and (op == LAST or c == 0):
                acc = v
            c += 1 if a else 0
            if not whole and inclusive:
                out[r] = acc
                count[r] = c
        if whole:
            for r in range(i, j):
                out[r] = acc
                count[r] = c
        i = j


@_jit
def _sum_fold(seg_start, act, x, whole, inclusive, out, count):  # type: ignore[no-untyped-def]
    # calendar_fold's SUM, about twice as fast: adding 0.0 for an inactive row instead of
    # branching on it (filters pass rows at random, and a branch would mispredict) leaves
    # every sum unchanged, bit for bit (a sum started at +0.0 is never -0.0, and x + 0.0 is
    # x for every other x, NaN and infinities included). The value is read whether or not
    # the row is active, so that the choice compiles to a select, not a branch.
    n = seg_start.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and not seg_start[j]:
            j += 1
        acc = 0.0
        c = 0
        if whole:
            for r in range(i, j):
                v = x[r]
                acc += v if act[r] else 0.0
                c += act[r]
            for r in range(i, j):
                out[r] = acc
                count[r] = c
        elif inclusive:
            for r in range(i, j):
                v = x[r]
                acc += v if act[r] else 0.0
                c += act[r]
                out[r] = acc
                count[r] = c
        else:
            for r in range(i, j):
                out[r] = acc
                count[r] = c
                v = x[r]
                acc += v if act[r] else 0.0
                c += act[r]
        i = j


@_jit
def next_period_fold(seg_start, user, key, wanted, act, x, op, out, count):  # type: ignore[no-untyped-def]
    """:func:`calendar_fold` over the next period's segment: each segment's whole-period
    aggregate is computed once, then given to the rows of the segment of the same user
    whose key is ``wanted`` (read at each segment's first row; keys increase within a
    user, in scan order). Rows with no such segment get an empty window (count 0)."""
    n = seg_start.size
    m = 0
    for i in range(n):
        if seg_start[i]:
            m += 1
    first = np.empty(m + 1, np.int64)
    agg = np.empty(m)
    cnt = np.zeros(m, np.int64)
    s = -1
    ident = _identity(op) if op <= 2 else np.nan
    for i in range(n):
        if seg_start[i]:
            s += 1
            first[s] = i
            agg[s] = ident
        a = act[i]
        v = x[i]
        if op <= 2:  # an inactive row combines the identity: a select, not a branch
            agg[s] = _combine(op, agg[s], v if a else ident)
        elif a and (op == LAST or cnt[s] == 0):
            agg[s] = v
        cnt[s] += 1 if a else 0
    first[m] = n
    t = 0  # candidate target segment, never behind the current one's successor
    for s in range(m):
        if t <= s:
            t = s + 1
        i = first[s]
        u = user[i]
        w = wanted[i]
        while t < m and user[first[t]] == u and key[first[t]] < w:
            t += 1
        hit = t < m and user[first[t]] == u and key[first[t]] == w
        for r in range(i, first[s + 1]):
            if hit:
                out[r] = agg[t]
                count[r] = cnt[t]
            else:
                out[r] = _identity(op) if op <= 2 else np.nan
                count[r] = 0


# ---------------------------------------------------------------------------------------------
# exact fallbacks: every window re-added in event order


@_jit
def sum_sequential(x, act, lo, hi, out):  # type: ignore[no-untyped-def]
    """The sum of each window added in row order from its first row (as the reference)."""
    for i in range(lo.size):
        acc = 0.0
        for j in range(lo[i], hi[i]):
            if act[j]:
                acc += x[j]
        out[i] = acc


@_jit
def moments_two_pass(x, act, lo, hi, out_m2, out_count):  # type: ignore[no-untyped-def]
    """Sum of squared deviations from the mean, mean first (two passes per window)."""
    for i in range(lo.size):
        c = 0
        acc = 0.0
        for j in range(lo[i], hi[i]):
            if act[j]:
                acc += x[j]
                c += 1
        s = 0.0
        if c > 0:
            mean = acc / c
            for j in range(lo[i], hi[i]):
                if act[j]:
                    d = x[j] - mean
                    s += d * d
        out_m2[i] = s
        out_count[i] = c


@_jit
def sum_order_risk_by_user(user, x, act, cum, lo, hi):  # type: ignore[no-untyped-def]
    """A cheaper, looser bound than :func:`sum_order_risk`, without allocating: per user,
    (the most active rows in one of its windows) x (the sum of |x| over the user); inf when
    a value is not finite. ``cum`` is the active prefix count (:func:`active_count`)."""
    n = lo.size
    worst = 0.0
    i = 0
    while i < n:
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        total = 0.0
        most = 0
        for r in range(i, j):  # (selects, not branches: filters pass rows at random)
            v = abs(x[r])
            total += v if act[r] else 0.0
            most = max(most, cum[hi[r]] - cum[lo[r]])
        if not np.isfinite(total):  # an active value is NaN or infinite (or |x| overflows)
            return np.inf
        w = most * total * (1.0 + 1e-9)
        if not w <= worst:
            worst = w if w == w else np.inf
        i = j
    return worst


@_jit
def minus_user_first(user, x, act, out):  # type: ignore[no-untyped-def]
    """``x`` minus the first active value of its user (0 when it has none): the moments of
    the shifted values are those of ``x`` without the cancellation that a large offset
    common to the values causes in Welford's and Chan's updates (values of 1e12 plus a
    few units: 2e-6 relative error in a variance, none once shifted). Active values must be
    finite (see :func:`moments_are_safe`)."""
    n = x.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        k = 0.0
        for r in range(i, j):
            if act[r]:
                k = x[r]
                break
        for r in range(i, j):
            out[r] = x[r] - k
        i = j


@_jit
def moments_are_safe(x, act, limit):  # type: ignore[no-untyped-def]
    """Every active value finite and below ``limit`` in magnitude."""
    for j in range(x.size):  # noqa: SIM110 - numba compiles loops, not generators
        if act[j] and not (abs(x[j]) < limit):
            return False
    return True


@_jit
def finish_moments(m2, count, take_root):  # type: ignore[no-untyped-def]
    """In place: the sample variance (m2 / (count - 1)), or its square root."""
    for i in range(m2.size):
        v = m2[i] / max(count[i] - 1.0, 1.0)
        m2[i] = np.sqrt(v) if take_root else v


@_jit
def sum_order_risk(x, act, lo, hi):  # type: ignore[no-untyped-def]
    """An upper bound of (rows in the window) x (sum of |x| in the window) over all windows,
    or inf when a value is not finite: a sum in another order than event order differs from
    the sequential one by less than about 2.2e-16 times this. The sums of |x| are themselves
    summed without subtraction (two stacks), so a huge value elsewhere cannot hide them."""
    n = lo.size
    ax = np.empty(x.size)
    for j in range(x.size):
        if act[j] and not np.isfinite(x[j]):
            return np.inf
        ax[j] = abs(x[j])
    sums = np.empty(n)
    swag(ax, act, lo, hi, SUM, sums, np.empty(x.size))
    cnt = np.empty(x.size + 1, np.int64)
    active_count(act, cnt)
    worst = 0.0
    for i in range(n):
        w = (cnt[hi[i]] - cnt[lo[i]]) * sums[i] * (1.0 + 1e-9)
        if not w <= worst:  # also NaN or inf (sums that overflowed)
            worst = w if w == w else np.inf
    return worst


# ---------------------------------------------------------------------------------------------
# distinct counts, order statistics, mode


@_jit
def count_distinct(codes, act, lo, hi, n_codes, out):  # type: ignore[no-untyped-def]
    """Distinct ``codes`` (0 .. n_codes - 1) among active rows of each window."""
    counts = np.zeros(n_codes, np.int64)
    cur_lo = 0
    cur_hi = 0
    distinct = 0
    for i in range(lo.size):
        lw = lo[i]
        hw = hi[i]
        if lw >= cur_hi:
            for j in range(cur_lo, cur_hi):
                if act[j]:
                    counts[codes[j]] -= 1
            cur_lo = lw
            cur_hi = lw
            distinct = 0
        while cur_hi < hw:
            if act[cur_hi]:
                c = codes[cur_hi]
                counts[c] += 1
                if counts[c] == 1:
                    distinct += 1
            cur_hi += 1
        while cur_lo < lw:
            if act[cur_lo]:
                c = codes[cur_lo]
                counts[c] -= 1
                if counts[c] == 0:
                    distinct -= 1
            cur_lo += 1
        out[i] = distinct


@_jit
def user_ranks(user, x, act, rank, sorted_x, first):  # type: ignore[no-untyped-def]
    """Per user, rank the active values (ascending, NaN last, ties by row) into ``rank`` (per
    row) and lay the sorted values out in ``sorted_x[first[i] + r]``, where ``first[i]`` is
    the row where row i's user starts. Returns the most active rows of one user."""
    n = x.size
    i = 0
    most = 0
    while i < n:
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        m = 0
        for r in range(i, j):
            if act[r]:
                m += 1
        vals = np.empty(m)
        rows = np.empty(m, np.int64)
        k = 0
        for r in range(i, j):
            first[r] = i
            if act[r]:
                vals[k] = x[r]
                rows[k] = r
                k += 1
        order = np.argsort(vals, kind="mergesort")
        for q in range(m):
            rank[rows[order[q]]] = q
            sorted_x[i + q] = vals[order[q]]
        if m > most:
            most = m
        i = j
    return most


@_jit
def _fenwick_add(tree, r, d):  # type: ignore[no-untyped-def]
    k = r + 1
    while k < tree.size:
        tree[k] += d
        k += k & (-k)


@_jit
def _fenwick_kth(tree, kth, top):  # type: ignore[no-untyped-def]
    # the rank of the (kth + 1)-th smallest present rank; ``top`` = highest power of two
    pos = 0
    rem = kth + 1
    step = top
    while step > 0:
        nxt = pos + step
        if nxt < tree.size and tree[nxt] < rem:
            pos = nxt
            rem -= tree[nxt]
        step >>= 1
    return pos  # 0-based rank


@_jit
def order_statistics(rank, sorted_x, first, act, lo, hi, most, qs, largest, out, valid):  # type: ignore[no-untyped-def]
    """Order statistics of the active values in each window, from a Fenwick tree over the
    user's value ranks.

    With ``largest`` false, ``qs`` are quantiles: ``out[i, k]`` is the ``qs[k]`` quantile
    ((1 - g) * x_j + g * x_{j+1}, h = (m - 1) q, j = floor(h), g = h - j; x_j when g == 0).
    With ``largest`` true, ``out[i, k]`` is the (k+1)-th largest value (``qs`` only gives k).
    ``valid[i, k]`` is False where the window has too few values.
    """
    tree = np.zeros(most + 1, np.int64)
    top = 1
    while top * 2 <= most:
        top *= 2
    cur_lo = 0
    cur_hi = 0
    held = 0
    nq = qs.size
    for i in range(lo.size):
        lw = lo[i]
        hw = hi[i]
        if i > 0 and lw == lo[i - 1] and hw == hi[i - 1]:  # the same window: same answer
            for k in range(nq):
                out[i, k] = out[i - 1, k]
                valid[i, k] = valid[i - 1, k]
            continue
        if lw >= cur_hi:
            for j in range(cur_lo, cur_hi):
                if act[j]:
                    _fenwick_add(tree, rank[j], -1)
            cur_lo = lw
            cur_hi = lw
            held = 0
        while cur_hi < hw:
            if act[cur_hi]:
                _fenwick_add(tree, rank[cur_hi], 1)
                held += 1
            cur_hi += 1
        while cur_lo < lw:
            if act[cur_lo]:
                _fenwick_add(tree, rank[cur_lo], -1)
                held -= 1
            cur_lo += 1
        if held == 0:
            for k in range(nq):
                valid[i, k] = False
            continue
        base = first[cur_lo]
        for k in range(nq):
            if largest:
                if k >= held:
                    valid[i, k] = False
                    continue
                r = _fenwick_kth(tree, held - 1 - k, top)
                out[i, k] = sorted_x[base + r]
                valid[i, k] = True
            else:
                h = (held - 1) * qs[k]
                j = np.floor(h)
                g = h - j
                jj = int(j)
                a = sorted_x[base + _fenwick_kth(tree, jj, top)]
                if g == 0.0:
                    out[i, k] = a
                else:
                    b = sorted_x[base + _fenwick_kth(tree, jj + 1, top)]
                    out[i, k] = (1.0 - g) * a + g * b
                valid[i, k] = True


@_jit
def _topk_insert(buf, held, k, v):  # type: ignore[no-untyped-def]
    # keep buf[:held] sorted descending (NaN largest); returns the new count held
    if held == k:
        last = buf[k - 1]
        if not (v != v and last == last) and not (v > last):
            return held  # not larger than the smallest kept (NaN only beats numbers)
        pos = k - 1
    else:
        pos = held
        held += 1
    while pos > 0:
        prev = buf[pos - 1]
        if (v != v and prev == prev) or v > prev:  # v ranks above prev
            buf[pos] = prev
            pos -= 1
        else:
            break
    buf[pos] = v
    return held


@_jit
def top_k_growing(x, act, lo, hi, k, out, valid):  # type: ignore[no-untyped-def]
    """The k largest active values (largest first, NaN largest) of windows that only grow
    or jump to rows after everything held (calendar windows: expanding, period, next
    period): one small sorted buffer, O(k) per row. ``valid[i, j]`` is False past the
    window's values."""
    buf = np.empty(k)
    held = 0
    cur_lo = 0
    cur_hi = 0
    for i in range(lo.size):
        lw = lo[i]
        hw = hi[i]
        if lw != cur_lo or hw < cur_hi:  # a new window: start afresh
            cur_lo = lw
            cur_hi = lw
            held = 0
        while cur_hi < hw:
            if act[cur_hi]:
                held = _topk_insert(buf, held, k, x[cur_hi])
            cur_hi += 1
        for j in range(k):
            if j < held:
                out[i, j] = buf[j]
                valid[i, j] = True
            else:
                valid[i, j] = False


@_jit
def user_value_codes(user, x, act, code, values, first):  # type: ignore[no-untyped-def]
    """Per user, number the distinct active values in ascending order (NaN last and one
    value, -0.0 equal to 0.0) into ``code`` (per row); ``values[first[i] + c]`` is the value
    of code c. Returns the most distinct values of one user."""
    n = x.size
    i = 0
    most = 0
    while i < n:
        j = i + 1
        while j < n and user[j] == user[i]:
            j += 1
        m = 0
        for r in range(i, j):
            if act[r]:
                m += 1
        vals = np.empty(m)
        rows = np.empty(m, np.int64)
        k = 0
        for r in range(i, j):
            first[r] = i
            if act[r]:
                vals[k] = x[r]
                rows[k] = r
                k += 1
        order = np.argsort(vals, kind="mergesort")
        c = -1
        prev = 0.0
        for q in range(m):
            v = vals[order[q]]
            same = q > 0 and (v == prev or (v != v and prev != prev))
            if not same:
                c += 1
                values[i + c] = v
                prev = v
            code[rows[order[q]]] = c
        if c + 1 > most:
            most = c + 1
        i = j
    return most


@_jit
def _tree_update(cnt, best, size, leaf, d):  # type: ignore[no-untyped-def]
    # a segment tree over codes: cnt = the largest count below a node, best = its smallest
    # code with that count
    k = size + leaf
    cnt[k] += d
    k //= 2
    while k >= 1:
        a = 2 * k
        b = a + 1
        if cnt[b] > cnt[a]:
            cnt[k] = cnt[b]
            best[k] = best[b]
        else:
            cnt[k] = cnt[a]
            best[k] = best[a]
        k //= 2


@_jit
def mode(code, values, first, act, lo, hi, most, out, valid):  # type: ignore[no-untyped-def]
    """The most frequent active value of each window, ties to the smallest."""
    size = 1
    while size < max(most, 1):
        size *= 2
    cnt = np.zeros(2 * size, np.int64)
    best = np.zeros(2 * size, np.int64)
    for leaf in range(size):
        best[size + leaf] = leaf
    for k in range(size - 1, 0, -1):
        best[k] = best[2 * k]
    cur_lo = 0
    cur_hi = 0
    held = 0
    for i in range(lo.size):
        lw = lo[i]
        hw = hi[i]
        if i > 0 and lw == lo[i - 1] and hw == hi[i - 1]:  # the same window: same answer
            out[i] = out[i - 1]
            valid[i] = valid[i - 1]
            continue
        if lw >= cur_hi:
            for j in range(cur_lo, cur_hi):
                if act[j]:
                    _tree_update(cnt, best, size, code[j], -1)
            cur_lo = lw
            cur_hi = lw
            held = 0
        while cur_hi < hw:
            if act[cur_hi]:
                _tree_update(cnt, best, size, code[cur_hi], 1)
                held += 1
            cur_hi += 1
        while cur_lo < lw:
            if act[cur_lo]:
                _tree_update(cnt, best, size, code[cur_lo], -1)
                held -= 1
            cur_lo += 1
        if held == 0:
            valid[i] = False
        else:
            out[i] = values[first[cur_lo] + best[1]]
            valid[i] = True


@_jit
def elapsed(e, lo, hi, after, out, valid):  # type: ignore[no-untyped-def]
    """Seconds between each row and the row its (one-row) window holds."""
    for i in range(lo.size):
        if hi[i] > lo[i]:
            d = e[lo[i]] - e[i] if after else e[i] - e[lo[i]]
            out[i] = d / 1e6
            valid[i] = True
        else:
            valid[i] = False


# ---------------------------------------------------------------------------------------------
# derived columns: what DuckDB would compute with one expression per row and per column


@_jit
def _range_of(los, his, c):  # type: ignore[no-untyped-def]
    # the index of the range of sorted, disjoint [los, his] holding c, else -1
    a = 0
    b = los.size
    while a < b:
        h = (a + b) >> 1
        if los[h] <= c:
            a = h + 1
        else:
            b = h
    if a > 0 and c <= his[a - 1]:
        return a - 1
    return -1


#: The widest span of MCC codes (highest minus lowest of a filter's ranges) looked up in a
#: table of flags rather than by binary search (several times faster on random codes).
LOOKUP_SPAN = 1 << 16


@_jit
def mcc_filter(code, ok, los, his, where, use_where, out):  # type: ignore[no-untyped-def]
    """``out[i]``: the row's MCC code is valid and inside one of the sorted, disjoint
    inclusive ranges ``[los, his]`` (and ``where[i]``, with ``use_where``): the filter
    ``COALESCE(code IN (...) OR code BETWEEN ... [AND where], FALSE)``."""
    n = code.size
    if los.size == 0:
        out[:] = False
        return
    base = los[0]
    span = his[his.size - 1] - base + 1
    if span <= LOOKUP_SPAN:
        table = np.zeros(span, np.bool_)
        for j in range(los.size):
            table[los[j] - base : his[j] - base + 1] = True
        for i in range(n):  # (bitwise, without branches: codes come in random order)
            k = np.int64(code[i]) - base
            r = ok[i] & (k >= 0) & (k < span) & table[min(max(k, 0), span - 1)]
            out[i] = r & (where[i] | (not use_where))
        return
    for i in range(n):
        r = False
        if ok[i] and (not use_where or where[i]):
            r = _range_of(los, his, code[i]) >= 0
        out[i] = r


@_jit
def mcc_slots(code, ok, los, his, group, n_groups, out):  # type: ignore[no-untyped-def]
    """``out[i]``: the first group (``group[j]`` of each range ``[los[j], his[j]]``) whose
    ranges hold the row's MCC code, else ``n_groups`` (no group, or no valid code)."""
    for i in range(code.size):
        s = n_groups
        if ok[i]:
            c = code[i]
            for j in range(los.size):
                if los[j] <= c <= his[j] and group[j] < s:
                    s = group[j]
        out[i] = s


_US_PER_DAY = 86_400_000_000


@_jit
def _civil(days):  # type: ignore[no-untyped-def]
    # (year, month) of a day count since 1970-01-01, proleptic Gregorian (H. Hinnant)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m


@_jit
def _first_of_month(y, m):  # type: ignore[no-untyped-def]
    # days since 1970-01-01 of the first day of month m of year y
    y = y - (1 if m <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@_jit
def period_keys(us, period, week_shift, out):  # type: ignore[no-untyped-def]
    """``out[i]``: the first day (days since 1970-01-01) of the calendar period holding the
    wall-clock time ``us[i]`` (µs since 1970-01-01): ``period`` 0 day, 1 week (starting on
    weekday ``week_shift``, 0 Monday), 2 month, 3 quarter, 4 year. As DuckDB's
    ``CAST(date_trunc(period, t) AS DATE)``, for any time before or after 1970."""
    last_day = np.int64(0)
    last_key = np.int64(0)
    for i in range(us.size):
        d = us[i] // _US_PER_DAY
        if i > 0 and d == last_day:  # sorted rows: mostly the day of the row before
            out[i] = last_key
            continue
        last_day = d
        if period == 1:
            d -= week_shift
            d = d - (d + 3) % 7 + week_shift  # 1970-01-01 was a Thursday (3 from Monday)
        elif period >= 2:
            y, m = _civil(d)
            if period == 3:
                m = m - (m - 1) % 3
            elif period == 4:
                m = 1
            d = _first_of_month(y, m)
        last_key = d
        out[i] = d


# ---------------------------------------------------------------------------------------------
# the event order: rows sorted by user, then by up to three more keys


@_jit
def _in_order(a, b, k1, k2, k3, first):  # type: ignore[no-untyped-def]
    # whether rows a..b-1 (contiguous keys) are in (k1, k2, k3) order (first: 1) or in
    # (k2, k3) order (first: 2)
    for j in range(a + 1, b):
        i = j - 1
        if first == 1 and k1[i] != k1[j]:
            if k1[i] > k1[j]:
                return False
            continue
        if k2[i] != k2[j]:
            if k2[i] > k2[j]:
                return False
            continue
        if k3[i] > k3[j]:
            return False
    return True


@_jit
def stable_argsort(x):  # type: ignore[no-untyped-def]
    """``np.argsort(x, kind="stable")`` for int64 ``x``: an LSD radix sort of ``x - min(x)``,
    11 bits a pass (digits all alike are skipped); 4x faster than numba's merge sort on a
    user's 4096 shuffled times. Short or very wide inputs take the merge sort."""
    n = x.size
    if n < 128:
        return np.argsort(x, kind="mergesort")
    lo = x.min()
    hi = x.max()
    if lo < -(2**62) or hi > 2**62:  # hi - lo might overflow
        return np.argsort(x, kind="mergesort")
    span = hi - lo
    a = np.arange(n)
    b = np.empty(n, np.int64)
    digit = np.empty(n, np.int64)
    count = np.empty(2049, np.int64)
    shift = 0
    while (span >> shift) > 0:
        count[:] = 0
        for j in range(n):
            v = ((x[a[j]] - lo) >> shift) & 2047
            digit[j] = v
            count[v + 1] += 1
        if count[digit[0] + 1] != n:
            for k in range(2048):
                count[k + 1] += count[k]
            for j in range(n):
                v = digit[j]
                b[count[v]] = a[j]
                count[v] += 1
            a, b = b, a
        shift += 11
    return a


@_jit
def _count_users(user, i0, i1, counts):  # type: ignore[no-untyped-def]
    for i in range(i0, i1):
        counts[user[i]] += 1


@_jit
def _scatter_users(user, i0, i1, pos, perm, k1, k2, k3, s1, s2, s3, n_keys):  # type: ignore[no-untyped-def]
    # rows i0..i1-1 to their user's next free position (pos, advanced): writes go to one
    # run per user, cache friendly
    for i in range(i0, i1):
        u = user[i]
        p = pos[u]
        perm[p] = i
        s1[p] = k1[i]
        if n_keys > 1:
            s2[p] = k2[i]
        if n_keys > 2:
            s3[p] = k3[i]
        pos[u] = p + 1


def _event_layout(user, n_users, k1, k2, k3, n_keys, threads):  # type: ignore[no-untyped-def]
    """A stable counting sort by the dense user codes, ``threads`` blocks of rows at a time:
    each user's first position, the permutation, and the keys laid out user by user (the
    second and third keys are the first's or the second's arrays when there are fewer)."""
    n = user.size
    cuts = np.linspace(0, n, max(1, threads) + 1).astype(np.int64).tolist()
    blocks = list(itertools.pairwise(cuts))
    counts = np.zeros((len(blocks), n_users), np.int64)
    on_threads(
        threads, lambda j: _count_users(user, blocks[j][0], blocks[j][1], counts[j]), len(blocks)
    )
    start = np.zeros(n_users + 1, np.int64)
    np.cumsum(counts.sum(axis=0), out=start[1:])
    pos = np.cumsum(counts, axis=0) - counts + start[:-1]  # block j's first row of each user
    perm = np.empty(n, np.int64)
    s1 = np.empty(n, np.int64)
    s2 = np.empty(n, np.int64) if n_keys > 1 else s1
    s3 = np.empty(n, np.int64) if n_keys > 2 else s2
    on_threads(threads, lambda j: _scatter_users(user, blocks[j][0], blocks[j][1], pos[j], perm,
                                           k1, k2, k3, s1, s2, s3, n_keys), len(blocks))  # fmt: skip
    return start, perm, s1, s2, s3


def on_threads(threads, fn, n):  # type: ignore[no-untyped-def]
    """``fn(0) .. fn(n - 1)`` on ``threads`` Python threads (the kernels release the GIL)."""
    if threads <= 1 or n <= 1:
        for j in range(n):
            fn(j)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, n)) as pool:
        list(pool.map(fn, range(n)))


@_jit
def _after(s2, s3, i, j):  # type: ignore[no-untyped-def]
    # whether row i comes after row j by (s2, s3)
    return s2[i] > s2[j] or (s2[i] == s2[j] and s3[i] > s3[j])


@_jit
def _order_ties(order, a, s1, s2, s3):  # type: ignore[no-untyped-def]
    """Rows ``a + order`` sorted by ``s1`` (stably): each run of equal ``s1`` put in
    (``s2``, ``s3``) order, stably. Short runs by insertion, long ones by two stable
    sorts (a user with many events at one instant stays n log n)."""
    m = order.size
    j0 = 0
    while j0 < m:
        j1 = j0 + 1
        v = s1[a + order[j0]]
        while j1 < m and s1[a + order[j1]] == v:
            j1 += 1
        if j1 - j0 > 32:
            run = order[j0:j1].copy()
            run = run[np.argsort(s3[a + run], kind="mergesort")]
            run = run[np.argsort(s2[a + run], kind="mergesort")]
            order[j0:j1] = run
        elif j1 - j0 > 1:
            for p in range(j0 + 1, j1):
                cur = order[p]
                q = p - 1
                while q >= j0 and _after(s2, s3, a + order[q], a + cur):
                    order[q + 1] = order[q]
                    q -= 1
                order[q + 1] = cur
        j0 = j1


@_jit
def _sort_users(start, perm, s1, s2, s3, u0, u1):  # type: ignore[no-untyped-def]
    """Users ``u0 .. u1 - 1`` of a layout: each one's rows sorted by (s1, s2, s3), stably."""
    for u in range(u0, u1):
        a = start[u]
        b = start[u + 1]
        if b - a < 2 or _in_order(a, b, s1, s2, s3, 1):
            continue
        # by the first key, then each run of ties by the other two (times rarely tie:
        # one radix sort and a scan, whatever order the input positions came in)
        order = stable_argsort(s1[a:b])
        _order_ties(order, a, s1, s2, s3)
        rows = perm[a:b].copy()
        for j in range(b - a):
            perm[a + j] = rows[order[j]]


def event_order(user, n_users, k1, k2, k3, threads=1, n_keys=3):  # type: ignore[no-untyped-def]
    """The permutation that sorts rows by (``user``, ``k1``, ``k2``, ``k3``), stably: a
    counting sort by the dense user codes (0 .. n_users - 1, in the users' order), which
    also lays the keys out user by user; then, for each user whose rows are not in order
    already, a stable sort by ``k1`` (enough when they are in (k2, k3) order already, as
    rows in input order are by position) or by all three keys, last first. ``n_keys`` < 3:
    the last keys repeat the one before (they are not copied). Work runs on ``threads``
    Python threads (the kernels release the GIL): no numba threading layer, whose OpenMP
    runtime is not safe across ``fork`` (DataLoader workers, multiprocessing)."""
    start, perm, s1, s2, s3 = _event_layout(user, n_users, k1, k2, k3, n_keys, threads)
    # blocks of users with about equal rows
    cuts = np.searchsorted(start, np.linspace(0, user.size, 4 * max(1, threads) + 1)).tolist()
    cuts = sorted({0, n_users, *(min(c, n_users) for c in cuts)})
    blocks = list(itertools.pairwise(cuts))
    on_threads(threads, lambda j: _sort_users(start, perm, s1, s2, s3, blocks[j][0], blocks[j][1]),
         len(blocks))  # fmt: skip
    return perm


@_jit
def in_event_order(user, k1, k2, k3, n_keys):  # type: ignore[no-untyped-def]
    """Whether the rows are sorted by (``user``, ``k1``, ``k2``, ``k3``) already (only the
    first ``n_keys`` keys compared; rows equal in every key in any order, as a stable sort
    keeps them): :func:`event_order` would return the identity. One pass, stopped at the
    first row out of order (at once on shuffled input)."""
    for j in range(1, user.size):
        i = j - 1
        if user[i] != user[j]:
            if user[i] > user[j]:
                return False
            continue
        if k1[i] != k1[j]:
            if k1[i] > k1[j]:
                return False
            continue
        if n_keys > 1 and k2[i] != k2[j]:
            if k2[i] > k2[j]:
                return False
            continue
        if n_keys > 2 and k3[i] > k3[j]:
            return False
    return True


@_jit
def is_increasing(x):  # type: ignore[no-untyped-def]
    """Whether every value is larger than the one before."""
    for i in range(1, x.size):  # noqa: SIM110 - numba compiles loops, not generators
        if x[i] <= x[i - 1]:
            return False
    return True


def warm_up() -> None:
    """Load every kernel (from numba's on-disk cache, or compile it) by running each once on
    a few rows with the types the runner passes. A process pays this once (about a second
    with a warm cache; the first compile takes longer); forked DataLoader workers inherit
    it from the process that built the dataset."""
    n = 4
    b = np.array([True, False, True, True])
    x = np.array([1.0, np.nan, 2.0, 2.0])
    i64 = np.array([0, 0, 1, 1], np.int64)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    f = np.empty(n)
    cum = np.empty(n + 1, np.int64)
    active_count(b, cum)
    expanding_ranges(b, True, lo, hi)
    period_ranges(b, lo, hi)
    next_period_ranges(b, i64, i64, i64 + 1, lo, hi)
    nth_event_ranges(i64, b, 1, True, lo, hi)
    sliding_ranges(i64, i64, -1, 0, True, lo, hi)
    window_counts(cum, lo, hi, np.empty(n, np.int64))
    swag(x, b, lo, hi, SUM, f, np.empty(n))
    swag_position(i64, b, lo, hi, False, np.empty(n, np.int64), np.empty(n, np.int64))
    swag_moments(x, b, lo, hi, f, np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    moments_two_pass(x, b, lo, hi, f, np.empty(n))
    sum_sequential(x, b, lo, hi, f)
    sum_order_risk(x, b, lo, hi)
    sum_order_risk_by_user(i64, x, b, cum, lo, hi)
    moments_are_safe(x, b, 1e150)
    finish_moments(f, np.ones(n), True)
    count_distinct(i64, b, lo, hi, 2, np.empty(n, np.int64))
    rank = np.empty(n, np.int64)
    sx = np.empty(n)
    first = np.empty(n, np.int64)
    most = user_ranks(i64, x, b, rank, sx, first)
    out = np.empty((n, 1))
    ok = np.empty((n, 1), np.bool_)
    order_statistics(rank, sx, first, b, lo, hi, most, np.array([0.5]), False, out, ok)
    most = user_value_codes(i64, x, b, rank, sx, first)
    mode(rank, sx, first, b, lo, hi, most, f, np.empty(n, np.bool_))
    elapsed(i64, lo, hi, True, f, np.empty(n, np.bool_))
    top_k_growing(x, b, lo, hi, 2, np.empty((n, 2)), np.empty((n, 2), np.bool_))
    code = np.array([5411, 0, 7, 5412], np.int32)  # (the runner passes read-only views)
    code.setflags(write=False)
    spans = np.array([1, 5411], np.int64)
    mcc_filter(code, b, spans, spans, b, True, np.empty(n, np.bool_))
    mcc_slots(code, b, spans, spans, i64, 2, np.empty(n, np.int64))
    us = i64.copy()
    us.setflags(write=False)
    period_keys(us, 2, 0, np.empty(n, np.int32))
    calendar_fold(b, b, x, SUM, False, True, f, np.empty(n, np.int64))
    event_order(i64, 2, i64, i64, i64)
    in_event_order(i64, i64, i64, i64, 3)
    is_increasing(i64)
    next_period_fold(b, i64, i64, i64 + 1, b, x, SUM, f, np.empty(n, np.int64))
    i32 = i64.astype(np.int32)  # calendar keys are int32 days
    next_period_fold(b, i64, i32, i64 + 1, b, x, SUM, f, np.empty(n, np.int64))
    next_period_ranges(b, i64, i32, i64 + 1, lo, hi)
