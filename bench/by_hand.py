"""The targets written by hand in Polars and in pandas, as a data scientist would.

Benchmark-only code (Polars and pandas are not dependencies of sqltargets). Each function
reads the same Parquet files as sqltargets (``files`` in name order), and computes the same
values as the library (the contract in TARGETS.md) for the specs the
benchmark uses:

- ``row_id`` = the input position (files in name order, rows in file order);
- events ordered by (user, time, row_id);
- calendar keys: day, week (Monday first), month, quarter, year; naive UTC times;
- ``expanding`` = the running aggregate within (user, period) in event order; ``period`` =
  the whole (user, period); ``rolling`` = time in (t - length, t], same-time rows together;
  ``future`` = time in (t, t + length]; ``next_period`` = the whole next period of the user;
- filters: the target's MCC set (group names resolved by sqltargets' MCC catalog) and a
  ``where`` of the simple form ``<column> <op> <literal>`` (``amount > 0``,
  ``channel = 'online'``); both apply;
- ``value``: the aggregated column (default: the amount); nulls are skipped;
- aggregations: sum, count, mean, min, max, std and var (sample), median and quantile
  (linear interpolation), first / last (the earliest / latest value in event order),
  count_distinct, top_k (the k largest values, largest first, padded with nulls to exactly
  k); on ``next`` / ``previous`` windows (n = 1: the next / previous row of the user that
  passes the filter) first / last (its value) and elapsed (the seconds between the two);
- ``include_current: false`` on rolling windows: time in (t - length, t);
- empty windows: sum, count and count_distinct -> 0; the others -> null (top_k: k nulls).

Polars computes every window kind and aggregation above (not mode, distribution, n > 1,
offsets, ``include_current`` on other kinds); pandas only ``expanding`` windows with sum /
count / mean / min / max and MCC filters. Anything else (``fill``, time zones, week starts,
``output: periods``) raises
``NotImplementedError``. The result materialises every target column in memory: columns
user, time, row_id, then one column per target, rows ordered by (user, time, row_id).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sqltargets.compile.mcc import resolve

AGGS = ("sum", "count", "mean", "min", "max", "std", "first", "last", "count_distinct", "top_k",
        "var", "median", "quantile", "elapsed")  # fmt: skip
KINDS = ("expanding", "period", "rolling", "future", "next_period", "next", "previous")
PERIODS = ("day", "week", "month", "quarter", "year")
#: Polars' truncate / offset spelling of each calendar period ("1w" truncates to Monday)
_EVERY = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q", "year": "1y"}
_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "min": 60_000_000,
            "h": 3_600_000_000, "d": 86_400_000_000, "w": 7 * 86_400_000_000}  # fmt: skip
_WHERE = re.compile(
    r"\s*(?P<col>[A-Za-z_]\w*)\s*(?P<op>>=|<=|!=|<>|==|=|>|<)\s*"
    r"(?P<lit>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|'[^']*')\s*"
)


@dataclass(frozen=True)
class HandTarget:
    """One target, as the hand-written code needs it."""

    name: str
    agg: str
    kind: str
    period: str | None  # expanding / period / next_period
    length_us: int | None  # rolling / future
    codes: tuple[int, ...] | None  # None: no MCC filter
    where: tuple[str, str, float | str] | None = None  # (column, operator, literal)
    value: str | None = None  # None: the amount column
    k: int | None = None  # top_k
    q: float | None = None  # quantile (median: 0.5)
    include_current: bool = True  # rolling: False is time in (t - length, t)


@dataclass(frozen=True)
class HandSpec:
    user: str
    time: str
    amount: str
    mcc: str
    targets: tuple[HandTarget, ...]

    def value(self, x: HandTarget) -> str:
        return x.value or self.amount

    def input_columns(self) -> list[str]:
        """The columns to read: user, time, and what filters and values need."""
        cols = [self.user, self.time]
        for x in self.targets:
            cols += [self.value(x), *([self.mcc] if x.codes is not None else [])]
            cols += [x.where[0]] if x.where else []
        return list(dict.fromkeys(cols))


def _length_us(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]+)\s*", str(text))
    if not m or m.group(2) not in _UNIT_US:
        raise NotImplementedError(f"length {text!r}")
    return int(m.group(1)) * _UNIT_US[m.group(2)]


def _where(text: str) -> tuple[str, str, float | str]:
    m = _WHERE.fullmatch(text)
    if not m:
        raise NotImplementedError(f"where {text!r}: only '<column> <op> <literal>' by hand")
    lit = m["lit"]
    op = {"=": "==", "<>": "!="}.get(m["op"], m["op"])
    return m["col"], op, lit[1:-1] if lit.startswith("'") else float(lit)


def load_spec(path: str | Path) -> HandSpec:
    """Read a bench spec (YAML) into what the hand-written code needs."""
    raw: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    for key in ("time", "fill"):
        if key in raw:
            raise NotImplementedError(f"spec key {key!r}")
    if raw.get("timezone", "UTC") != "UTC" or raw.get("week_start", "monday") != "monday":
        raise NotImplementedError("time zones and week starts other than UTC / monday")
    if raw.get("output", "events") != "events":
        raise NotImplementedError("output: periods")
    cols = raw["columns"]
    targets = []
    for t in raw["targets"]:
        extra = set(t) - {"name", "agg", "mcc", "where", "value", "k", "q", "window"}
        w = t["window"]
        if extra or t["agg"] not in AGGS or w["kind"] not in KINDS:
            raise NotImplementedError(f"target {t}")
        if set(w) - {"kind", "period", "length", "n", "include_current"} or w.get("n", 1) != 1:
            raise NotImplementedError(f"window {w}")
        if w.get("include_current", True) is False and w["kind"] != "rolling":
            raise NotImplementedError(f"window {w}")
        event = w["kind"] in ("next", "previous")
        if (event and t["agg"] not in ("first", "last", "elapsed")) or (
            not event and t["agg"] == "elapsed"
        ):
            raise NotImplementedError(f"target {t}")
        if "period" in w and w["period"] not in PERIODS:
            raise NotImplementedError(f"period {w['period']!r}")
        codes = None
        if t.get("mcc") is not None:
            codes = tuple(c for lo, hi in resolve(list(t["mcc"])) for c in range(lo, hi + 1))
        targets.append(
            HandTarget(
                name=t["name"],
                agg=t["agg"],
                kind=w["kind"],
                period=w.get("period"),
                length_us=_length_us(w["length"]) if "length" in w else None,
                codes=codes,
                where=_where(t["where"]) if t.get("where") else None,
                value=t.get("value"),
                k=int(t.get("k", 1)) if t["agg"] == "top_k" else None,
                q=0.5 if t["agg"] == "median" else t.get("q"),
                include_current=w.get("include_current", True),
            )
        )
    return HandSpec(cols["user"], cols["time"], cols["amount"], cols["mcc"], tuple(targets))


# ------------------------------------------------------------------------------- Polars


def polars_targets(spec: HandSpec, files: list[str], presorted: bool = False):  # -> pl.DataFrame
    """Every target of ``spec`` over ``files`` with Polars' eager API.

    ``presorted``: ``files`` is a copy of the input already sorted by (user, time, row_id)
    with the input position in a ``row_id`` column (:func:`write_presorted`); no sort.

    Expanding windows are ``cum_*`` over (user, period); rolling windows ``rolling_*_by``
    over the user; future windows the same over the negated time of the reversed frame;
    period and next_period one ``group_by`` per period, joined back on the period (or the
    one before it). first / last in sliding windows pick the row by its position in event
    order (``rolling_min_by`` / ``rolling_max_by`` of the position, then ``gather``);
    count_distinct and top_k in sliding windows and expanding top_k, which have no
    ``rolling_*_by`` / ``cum_*``, use ``DataFrame.rolling`` (slow; mix.yaml has none)."""
    import polars as pl

    u, t = spec.user, spec.time
    if presorted:
        df = pl.read_parquet(files, columns=[*spec.input_columns(), "row_id"])
        df = df.with_columns(pl.col(u).set_sorted())  # what we know: sorted by user first
    else:
        # files in name order; the row index continues across files: the input position
        df = pl.read_parquet(files, columns=spec.input_columns(), row_index_name="row_id")
        df = df.with_columns(pl.col("row_id").cast(pl.Int64)).sort([u, t, "row_id"])
    df = df.with_row_index("_i")  # the position in event order
    periods = sorted({x.period for x in spec.targets if x.period})
    df = df.with_columns(pl.col(t).dt.truncate(_EVERY[p]).alias(f"_{p}") for p in periods)
    lit = {"==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}

    def passes(x: HandTarget) -> pl.Expr:
        tests = []
        if x.codes is not None:
            tests.append(pl.col(spec.mcc).is_in(x.codes))
        if x.where is not None:
            col, op, value = x.where
            tests.append(getattr(pl.col(col), lit[op])(value))
        if not tests:  # a column, not a scalar: rolling_*_by needs one
            return pl.repeat(True, pl.len())
        return pl.all_horizontal(tests).fill_null(False)

    def value(x: HandTarget) -> pl.Expr:  # the value where the filter passes, else null
        v = pl.col(spec.value(x))
        if x.agg in ("sum", "mean", "std", "var", "median", "quantile"):
            v = v.cast(pl.Float64)
        return pl.when(passes(x)).then(v)

    def by_kind(kind: str) -> list[HandTarget]:
        return [x for x in spec.targets if x.kind == kind]

    n = df.height + 1  # a window of n positions holds every earlier row
    out: dict[str, pl.Expr] = {}
    later: list[pl.DataFrame] = []  # columns computed on their own frame, in df's order
    picks: dict[str, str] = {}  # first / last: target -> the value column to gather from

    # expanding: running aggregates over (user, period) in event order
    for x in by_kind("expanding"):
        v, keys = value(x), [u, f"_{x.period}"]
        if x.agg == "top_k":  # a window over the position: every earlier row of the period
            later.append(_frame_rolling(pl, df, x, v, "_i", f"{n}i", None, keys))
            continue
        out[x.name] = _running(pl, x, v, passes(x), f"{n}i").over(keys)

    # rolling: time in (t - length, t], same-time transactions together
    for x in by_kind("rolling"):
        v, w = value(x), _dt.timedelta(microseconds=x.length_us)
        if x.agg in ("count_distinct", "top_k"):
            later.append(_frame_rolling(pl, df, x, v, t, w, None, [u]))
        else:
            closed = "right" if x.include_current else "none"
            out[x.name] = _sliding(pl, x, v, passes(x), t, w, closed).over(u)
            picks.update({x.name: spec.value(x)} if x.agg in ("first", "last") else {})
    if out:
        df = df.with_columns(**out)

    # future: time in (t, t + length]: a trailing window [t' - length, t') over t' = -t
    fut = [x for x in by_kind("future") if x.agg not in ("count_distinct", "top_k")]
    if fut:
        neg = (-pl.col(t).cast(pl.Int64)).alias("_neg")
        rev = df.select(*spec.input_columns(), "_i", neg).reverse()
        cols = {
            x.name: _sliding(pl, x, value(x), passes(x), "_neg", f"{x.length_us}i", "left").over(u)
            for x in fut
        }
        df = df.hstack(rev.select(**cols).reverse())
        picks.update({x.name: spec.value(x) for x in fut if x.agg in ("first", "last")})
    for x in by_kind("future"):
        if x.agg in ("count_distinct", "top_k"):  # offset 0: the window (t, t + length]
            w = _dt.timedelta(microseconds=x.length_us)
            later.append(_frame_rolling(pl, df, x, value(x), t, w, _dt.timedelta(0), [u]))
    if later:
        df = df.hstack([c for f in later for c in f.get_columns()])
    if picks:  # first / last in sliding windows: the value at the chosen position
        df = df.with_columns(
            pl.col(c).gather(pl.col(name)).alias(name) for name, c in picks.items()
        )

    # next / previous: the next (previous) row of the user that passes the filter, whether
    # or not its value is null: its position by a shifted, back- (forward-) filled column
    events = by_kind("next") + by_kind("previous")
    if events:
        at: dict[str, pl.Expr] = {}
        for x in events:
            mark = pl.when(passes(x)).then(pl.col("_i"))
            if x.kind == "next":
                at[x.name] = mark.shift(-1).backward_fill().over(u)
            else:
                at[x.name] = mark.shift(1).forward_fill().over(u)
        df = df.with_columns(**{f"_at/{name}": e for name, e in at.items()})
        cols = {}
        for x in events:
            pos = pl.col(f"_at/{x.name}")
            if x.agg == "elapsed":  # seconds between the two events, null without one
                dt = pl.col(t).gather(pos) - pl.col(t)
                cols[x.name] = (dt if x.kind == "next" else -dt).dt.total_microseconds() / 1e6
            else:  # first / last of one event: its value
                cols[x.name] = pl.col(spec.value(x)).gather(pos).cast(pl.Float64)
        df = df.with_columns(**cols)

    # period and next_period: aggregate each (user, period) once, join it to the rows of
    # the same period and, shifted back by one period, to the rows of the period before
    for p in periods:
        same = [x for x in by_kind("period") if x.period == p]
        nxt = [x for x in by_kind("next_period") if x.period == p]
        if not same and not nxt:
            continue
        key = [u, f"_{p}"]
        agg = df.group_by(key).agg(
            [_whole(pl, x, value(x), passes(x)).alias(x.name) for x in same]
            + [_whole(pl, x, value(x), passes(x)).alias(f"_next/{x.name}") for x in nxt]
        )
        if same:
            df = df.join(agg.select(*key, *(x.name for x in same)), on=key, how="left",
                         maintain_order="left")  # fmt: skip
        if nxt:
            ahead = agg.select(
                u,
                pl.col(f"_{p}").dt.offset_by(f"-{_EVERY[p]}"),
                *(pl.col(f"_next/{x.name}").alias(x.name) for x in nxt),
            )
            df = df.join(ahead, on=key, how="left", maintain_order="left")
            # no row at all in the next period: the empty window's value
            df = df.with_columns(_empty(pl, x, pl.col(x.name)) for x in nxt)
    return df.select(u, t, "row_id", *(x.name for x in spec.targets))


def write_presorted(files: list[str], out: str | Path, user: str, time: str) -> None:
    """Write the input once more as one Parquet file sorted by (user, time, row_id), with
    the input position as a ``row_id`` column (zstd, 122,880-row groups, like a
    sqltargets store), for :func:`polars_targets` with ``presorted=True``."""
    import polars as pl

    df = pl.read_parquet(files, row_index_name="row_id")
    df = df.with_columns(pl.col("row_id").cast(pl.Int64)).sort([user, time, "row_id"])
    df.write_parquet(out, compression="zstd", row_group_size=122_880)


def _running(pl: Any, x: HandTarget, v: Any, passes: Any, everything: str) -> Any:
    """The running aggregate of ``v`` in event order (to be taken ``over`` the period)."""
    seen = v.is_not_null().cum_sum()
    if x.agg == "sum":
        return v.fill_null(0.0).cum_sum()
    if x.agg == "count":
        return passes.cast(pl.Int64).cum_sum()
    if x.agg == "mean":
        return pl.when(seen > 0).then(v.fill_null(0.0).cum_sum() / seen)
    if x.agg in ("min", "max"):  # cum_min / cum_max leave nulls where the filter fails
        return getattr(v, f"cum_{x.agg}")().forward_fill()
    if x.agg == "std":  # no cum_std: a window over the position holding every earlier row
        return v.rolling_std_by("_i", everything, closed="right")
    if x.agg == "first":
        return pl.when(seen > 0).then(v.drop_nulls().first())
    if x.agg == "last":
        return v.forward_fill()
    if x.agg == "count_distinct":
        return (v.is_not_null() & v.is_first_distinct()).cast(pl.Int64).cum_sum()
    raise NotImplementedError(x.agg)


def _sliding(pl: Any, x: HandTarget, v: Any, passes: Any, by: str, w: Any, closed: str) -> Any:
    """``v`` aggregated over a window of ``by`` (to be taken ``over`` the user); first / last:
    the position of the row to pick (see ``picks`` above)."""

    def roll(e: Any, how: str) -> Any:
        return getattr(e, f"rolling_{how}_by")(by, w, closed=closed)

    if x.agg == "count":
        return roll(passes.cast(pl.Int64), "sum").fill_null(0)
    if x.agg == "sum":
        return roll(v.fill_null(0.0), "sum").fill_null(0.0)
    if x.agg == "mean":
        n = roll(v.is_not_null().cast(pl.Int64), "sum")
        return pl.when(n > 0).then(roll(v.fill_null(0.0), "sum") / n)
    if x.agg in ("min", "max", "std", "var", "median"):  # nulls skipped; std, var: null
        return roll(v, x.agg)  # under two values
    if x.agg == "quantile":  # linear interpolation, as numpy's default
        return v.rolling_quantile_by(by, w, quantile=x.q, interpolation="linear", closed=closed)
    if x.agg in ("first", "last"):  # the earliest / latest position that has a value
        at = pl.when(v.is_not_null()).then(pl.col("_i"))
        return roll(at, "min" if x.agg == "first" else "max")
    raise NotImplementedError(x.agg)


def _whole(pl: Any, x: HandTarget, v: Any, passes: Any) -> Any:
    """``v`` aggregated over a whole group (``group_by(...).agg``)."""
    if x.agg == "count":
        return passes.cast(pl.Int64).sum()
    if x.agg in ("sum", "mean", "min", "max", "std", "var", "median"):
        return getattr(v, x.agg)()  # sum of nothing: 0; the others: null
    if x.agg == "quantile":
        return v.quantile(x.q, interpolation="linear")
    if x.agg in ("first", "last"):
        return getattr(v.drop_nulls(), x.agg)()
    return _list_agg(pl, x, v)


def _list_agg(pl: Any, x: HandTarget, v: Any) -> Any:
    """count_distinct and top_k of ``v`` in an aggregation context."""
    if x.agg == "count_distinct":
        return v.drop_nulls().n_unique().cast(pl.Int64)
    if x.agg == "top_k":
        return _pad(pl, v.drop_nulls().top_k(x.k).sort(descending=True).implode(), x.k)
    raise NotImplementedError(x.agg)


def _pad(pl: Any, values: Any, k: int) -> Any:
    """A list of exactly ``k`` items: ``values``' first k, then nulls."""
    return pl.concat_list([values.list.get(i, null_on_oob=True) for i in range(k)])


def _empty(pl: Any, x: HandTarget, e: Any) -> Any:
    """``e`` where a whole window is missing: the empty window's value."""
    if x.agg in ("sum", "count", "count_distinct"):
        return e.fill_null(0)
    if x.agg == "top_k":
        return _pad(pl, e, x.k)
    return e


def _frame_rolling(pl: Any, df: Any, x: HandTarget, v: Any, index: str, period: Any,
                   offset: Any, group_by: list[str]) -> Any:  # fmt: skip
    """One target column by ``DataFrame.rolling`` (window (t + offset, t + offset + period],
    the default offset being -period), for aggregations with no ``rolling_*_by``."""
    kw = {} if offset is None else {"offset": offset}
    r = df.rolling(index, period=period, closed="right", group_by=group_by, **kw)
    col = r.agg(_list_agg(pl, x, v).alias(x.name))
    keys = [*group_by, index]
    assert col.select(keys).equals(df.select(keys)), "DataFrame.rolling changed the row order"
    if x.agg == "count_distinct":
        col = col.with_columns(pl.col(x.name).fill_null(0))
    return col.select(x.name)


# ------------------------------------------------------------------------------- pandas


def pandas_supports(spec: HandSpec) -> bool:
    """Whether :func:`pandas_targets` computes every target of ``spec``."""
    return all(
        x.kind == "expanding"
        and x.agg in ("sum", "count", "mean", "min", "max")
        and x.where is None
        and x.value is None
        for x in spec.targets
    )


def pandas_targets(spec: HandSpec, files: list[str]):  # -> pd.DataFrame
    """Every ``expanding`` target of ``spec`` over ``files`` with pandas (sum, count, mean,
    min and max of the amount, MCC filters only)."""
    import numpy as np
    import pandas as pd

    if not pandas_supports(spec):
        raise NotImplementedError("pandas by hand: expanding sum/count/mean/min/max, MCC filters")
    u, t, a, m = spec.user, spec.time, spec.amount, spec.mcc
    df = pd.concat(
        [pd.read_parquet(f, columns=[u, t, a, m]) for f in files], ignore_index=True
    )  # files in name order
    df["row_id"] = np.arange(len(df), dtype=np.int64)  # the input position
    df = df.sort_values([u, t, "row_id"], kind="stable", ignore_index=True)
    day = df[t].dt.normalize()
    keys = {
        "day": day,
        "week": day - pd.to_timedelta(df[t].dt.weekday, unit="D"),  # Monday-start weeks
        "month": df[t].dt.to_period("M"),
    }
    amount = df[a]
    out = df[[u, t, "row_id"]].copy()
    for p in sorted({x.period for x in spec.targets}):
        mine = [x for x in spec.targets if x.period == p]
        by = [df[u], keys[p]]
        sums, maxs, mins = {}, {}, {}  # columns to run cumsum / cummax / cummin on
        for x in mine:
            ok = df[m].isin(x.codes) if x.codes is not None else pd.Series(True, index=df.index)
            if x.agg == "sum":
                sums[x.name] = amount.where(ok, 0.0).fillna(0.0)
            elif x.agg == "count":
                sums[x.name] = ok.astype(np.int64)
            elif x.agg == "mean":
                sums[f"{x.name}/s"] = amount.where(ok, 0.0).fillna(0.0)
                sums[f"{x.name}/n"] = (ok & amount.notna()).astype(np.int64)
            elif x.agg == "max":
                maxs[x.name] = amount.where(ok)
            else:
                mins[x.name] = amount.where(ok)
        res = {}
        if sums:
            res.update(pd.DataFrame(sums).groupby(by, sort=False).cumsum().items())
        for cols, how in ((maxs, "cummax"), (mins, "cummin")):
            if cols:
                run = getattr(pd.DataFrame(cols).groupby(by, sort=False), how)()
                # cummax / cummin leave NaN where the filter fails: carry the last value
                res.update(run.groupby(by, sort=False).ffill().items())
        for x in mine:
            if x.agg == "mean":
                s, n = res[f"{x.name}/s"], res[f"{x.name}/n"]
                out[x.name] = (s / n).where(n > 0)
            else:
                out[x.name] = res[x.name]
    return out[[u, t, "row_id", *(x.name for x in spec.targets)]]
