"""The targets written by hand in Polars and in pandas, as a data scientist would.

Benchmark-only code (Polars and pandas are not dependencies of sqltargets). Each function
reads the same Parquet files as sqltargets (``files`` in name order), and computes the same
values as the library for the subset of specs the benchmark uses:

- ``row_id`` = the input position (files in name order, rows in file order);
- events ordered by (user, time, row_id);
- calendar keys: day = the date, week = the Monday-start ISO week, month; naive UTC times;
- ``expanding`` = the running aggregate within (user, period) in event order; ``period`` =
  the whole (user, period); ``rolling`` = time in (t - length, t]; ``future`` = time in
  (t, t + length]; ``next_period`` = the whole next period of the same user;
- filters: the target's MCC set (group names resolved by ``sqltargets.compile.mcc.resolve``);
- empty windows: sum and count -> 0; mean, min and max -> null.

Only ``agg`` sum / count / mean / min / max and ``mcc`` filters are supported (no ``where``,
``value``, ``fill``, time zones or week starts): anything else raises ``NotImplementedError``.
The result materialises every target column in memory: columns user, time, row_id, then one
column per target, rows ordered by (user, time, row_id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sqltargets.compile.mcc import resolve

AGGS = ("sum", "count", "mean", "min", "max")
KINDS = ("expanding", "period", "rolling", "future", "next_period")
PERIODS = ("day", "week", "month")
_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "min": 60_000_000,
            "h": 3_600_000_000, "d": 86_400_000_000, "w": 7 * 86_400_000_000}  # fmt: skip


@dataclass(frozen=True)
class HandTarget:
    """One target, as the hand-written code needs it."""

    name: str
    agg: str
    kind: str
    period: str | None  # expanding / period / next_period
    length_us: int | None  # rolling / future
    codes: tuple[int, ...] | None  # None: no MCC filter


@dataclass(frozen=True)
class HandSpec:
    user: str
    time: str
    amount: str
    mcc: str
    targets: tuple[HandTarget, ...]


def _length_us(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]+)\s*", str(text))
    if not m or m.group(2) not in _UNIT_US:
        raise NotImplementedError(f"length {text!r}")
    return int(m.group(1)) * _UNIT_US[m.group(2)]


def load_spec(path: str | Path) -> HandSpec:
    """Read a bench spec (YAML) into what the hand-written code needs."""
    raw: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    for key in ("time", "where", "fill"):
        if key in raw:
            raise NotImplementedError(f"spec key {key!r}")
    if raw.get("timezone", "UTC") != "UTC" or raw.get("week_start", "monday") != "monday":
        raise NotImplementedError("time zones and week starts other than UTC / monday")
    if raw.get("output", "events") != "events":
        raise NotImplementedError("output: periods")
    cols = raw["columns"]
    targets = []
    for t in raw["targets"]:
        extra = set(t) - {"name", "agg", "mcc", "window"}
        if extra or t["agg"] not in AGGS or t["window"]["kind"] not in KINDS:
            raise NotImplementedError(f"target {t}")
        w = t["window"]
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
            )
        )
    return HandSpec(cols["user"], cols["time"], cols["amount"], cols["mcc"], tuple(targets))


# ------------------------------------------------------------------------------- Polars


def polars_targets(spec: HandSpec, files: list[str]):  # -> pl.DataFrame
    """Every target of ``spec`` over ``files`` with Polars' eager API."""
    import polars as pl

    u, t, a, m = spec.user, spec.time, spec.amount, spec.mcc
    # files in name order; the row index continues across files: the input position
    df = pl.read_parquet(files, columns=[u, t, a, m], row_index_name="row_id")
    df = df.with_columns(pl.col("row_id").cast(pl.Int64)).sort([u, t, "row_id"])
    trunc = {"day": "1d", "week": "1w", "month": "1mo"}  # 1w truncates to Monday
    periods = sorted({x.period for x in spec.targets if x.period})
    df = df.with_columns(pl.col(t).dt.truncate(trunc[p]).alias(f"_{p}") for p in periods)

    def passes(x: HandTarget) -> pl.Expr:
        if x.codes is None:
            return pl.lit(True)
        return pl.col(m).is_in(x.codes).fill_null(False)

    def value(x: HandTarget) -> pl.Expr:  # the amount where the filter passes, else null
        return pl.when(passes(x)).then(pl.col(a))

    out: dict[str, pl.Expr] = {}
    # expanding: running aggregates over (user, period) in event order
    for x in spec.targets:
        if x.kind != "expanding":
            continue
        keys = [u, f"_{x.period}"]
        v = value(x)
        if x.agg == "sum":
            e = v.fill_null(0.0).cum_sum()
        elif x.agg == "count":
            e = passes(x).cast(pl.Int64).cum_sum()
        elif x.agg == "mean":
            n = v.is_not_null().cast(pl.Int64).cum_sum()
            e = pl.when(n > 0).then(v.fill_null(0.0).cum_sum() / n)
        elif x.agg == "max":
            e = v.cum_max().forward_fill()  # cum_max leaves nulls where the filter fails
        else:
            e = v.cum_min().forward_fill()
        out[x.name] = e.over(keys)
    # period: one value per (user, period)
    for x in spec.targets:
        if x.kind != "period":
            continue
        out[x.name] = _whole(pl, x, value(x), passes(x)).over([u, f"_{x.period}"])
    # rolling: time in (t - length, t], same-time transactions together
    for x in spec.targets:
        if x.kind == "rolling":
            out[x.name] = _rolling(pl, x, value(x), passes(x), t, f"{x.length_us}us", "right", u)
    if out:
        df = df.with_columns(**out)
    # future: time in (t, t + length]: a trailing window [t' - length, t') over t' = -t
    fut = [x for x in spec.targets if x.kind == "future"]
    if fut:
        rev = df.select(u, a, m, (-pl.col(t).cast(pl.Int64)).alias("_neg")).reverse()
        cols = {
            x.name: _rolling(pl, x, value(x), passes(x), "_neg", f"{x.length_us}i", "left", u)
            for x in fut
        }
        df = df.hstack(rev.select(**cols).reverse())
    # next_period: aggregate each (user, period), join it to the rows of the period before
    step = {"day": "1d", "week": "1w", "month": "1mo"}
    for p in periods:
        nxt = [x for x in spec.targets if x.kind == "next_period" and x.period == p]
        if not nxt:
            continue
        agg = df.group_by([u, f"_{p}"]).agg(
            _whole(pl, x, value(x), passes(x)).alias(x.name) for x in nxt
        )
        agg = agg.with_columns(pl.col(f"_{p}").dt.offset_by(f"-{step[p]}"))
        df = df.join(agg, on=[u, f"_{p}"], how="left", maintain_order="left")
        df = df.with_columns(pl.col(x.name).fill_null(0) for x in nxt if x.agg in ("sum", "count"))
    return df.select(u, t, "row_id", *(x.name for x in spec.targets))


def _whole(pl: Any, x: HandTarget, v: Any, passes: Any) -> Any:
    if x.agg == "count":
        return passes.cast(pl.Int64).sum()
    return {"sum": v.sum, "mean": v.mean, "max": v.max, "min": v.min}[x.agg]()  # sum: 0


def _rolling(pl: Any, x: HandTarget, v: Any, passes: Any, by: str, w: str, closed: str, u: str):
    if x.agg == "count":
        e = passes.cast(pl.Int64).rolling_sum_by(by, w, closed=closed).fill_null(0)
    elif x.agg == "sum":
        e = v.fill_null(0.0).rolling_sum_by(by, w, closed=closed).fill_null(0.0)
    elif x.agg == "mean":
        s = v.fill_null(0.0).rolling_sum_by(by, w, closed=closed)
        n = v.is_not_null().cast(pl.Int64).rolling_sum_by(by, w, closed=closed).fill_null(0)
        e = pl.when(n > 0).then(s / n)
    elif x.agg == "max":
        e = v.rolling_max_by(by, w, closed=closed)
    else:
        e = v.rolling_min_by(by, w, closed=closed)
    return e.over(u)


# ------------------------------------------------------------------------------- pandas


def pandas_targets(spec: HandSpec, files: list[str]):  # -> pd.DataFrame
    """Every ``expanding`` target of ``spec`` over ``files`` with pandas."""
    import numpy as np
    import pandas as pd

    if any(x.kind != "expanding" for x in spec.targets):
        raise NotImplementedError("pandas by hand: expanding windows only")
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
