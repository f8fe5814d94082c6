"""The physical program of a spec: a relational prologue for DuckDB, then window kernels.

The compiler has two back-ends with one meaning (TARGETS.md). The portable statement
(:func:`sqltargets.compile.render.render`) is what ``explain --engine sql`` prints, the
DuckDB shell and Spark run. The native executor runs a :class:`Program` instead:

1. the **prologue**, one DuckDB statement: read the input, the roles, values as DOUBLE (or
   MCC codes, or raw for distinct counts), one boolean per filter, calendar period keys and
   the elapsed time, sorted by user and event order (time, then tie-break);
2. one **kernel call** per target (:mod:`sqltargets.execute.kernels`), a pass over each
   user's sorted rows, joined into the output by name.

``explain`` prints the Program: the prologue (it runs as it is in the DuckDB shell) and one
comment line per kernel call.

>>> from sqltargets.compile.spec import load
>>> from sqltargets.compile.plan import build as plan
>>> from sqltargets.compile.render import relation_source
>>> ts = load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
...     {"name": "s", "agg": "sum", "mcc": [5411], "window": {"kind": "expanding", "period": "day"}}]})
>>> prog = build(plan(ts), relation_source("transactions"))
>>> prog.columns  # the filter _f0 and the day _p_day are derived from _m and _o
('_u', '_time', '_tb', '_v0', '_m', '_o')
>>> print(prog.calls[0].describe())
s: sum of _v0 where _f0, expanding/day (key _p_day) -> double (past-looking)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..compile.aggregates import AGGREGATIONS
from ..compile.mcc import merge
from ..compile.plan import Plan
from ..compile.render import LOCAL_IS_ORDER, Source, format_prologue, prologue_text
from ..compile.spec import TargetSet, Window
from ..errors import SqlTargetsError

#: Window kinds over calendar periods, over elapsed time, and over single events.
CALENDAR = ("expanding", "period", "next_period")
SLIDING = ("rolling", "future")
EVENT = ("next", "previous")


@dataclass(frozen=True)
class Call:
    """One target computed by a kernel: its inputs (prologue columns) and parameters."""

    name: str
    agg: str
    kernel: str  # the kernel family (sqltargets.compile.aggregates)
    window: Window
    type: str  # output: "int64", "double" or "list"
    reads: str  # "nothing", "number", "raw" or "code"
    value: str | None  # the prologue column of the values
    filter: str | None  # the prologue column of the filter (None: every row passes)
    period: str | None  # the prologue column of the calendar key
    fill: float | int | None = None
    k: int | None = None  # top_k
    q: float | None = None  # quantile
    slots: str | None = None  # distribution: the prologue column of each row's slot
    n_slots: int = 0
    measure: str = "sum"  # distribution
    normalize: bool = False  # distribution

    def describe(self) -> str:
        """One line: what the kernel computes from which columns."""
        what = self.agg if self.value is None else f"{self.agg} of {self.value}"
        if self.k is not None:
            what += f" (k={self.k})"
        if self.q is not None:
            what += f" (q={self.q})"
        if self.slots is not None:
            what += f" per {self.slots} ({self.n_slots} slots, {self.measure})"
        where = f" where {self.filter}" if self.filter else ""
        key = f" (key {self.period})" if self.period else ""
        fill = f", fill {self.fill}" if self.fill is not None else ""
        looks = self.window.looks
        return (
            f"{self.name}: {what}{where}, {self.window.describe()}{key}{fill} -> {self.type} "
            f"({looks}-looking)"
        )


@dataclass(frozen=True)
class Derived:
    """A column the executor derives from prologue columns (runner.Events) instead of
    DuckDB computing it, which costs several times more (one expression per row, per
    filter): a filter on MCC codes, a distribution's slot, a calendar key."""

    name: str
    kind: str  # "mcc" (a filter), "slot" or "period"
    source: str  # the prologue column it reads: _m (MCC codes) or a clock in µs
    #: mcc: the filter's code ranges, merged and sorted; slot: every group's ranges
    ranges: tuple[tuple[int, int], ...] = ()
    groups: tuple[int, ...] = ()  # slot: the group of each range
    n_groups: int = 0  # slot: rows in no group go to the last slot, n_groups
    where: str | None = None  # mcc: the prologue column of the filter's `where` part
    period: str | None = None  # period: day, week, month, quarter or year
    week_shift: int = 0  # period: 0 for weeks starting on Monday ... 6 for Sunday

    def describe(self) -> str:
        """One line: how the column is derived."""
        if self.kind == "period":
            start = f", weeks from weekday {self.week_shift}" if self.week_shift else ""
            return f"{self.name}: the {self.period} of {self.source}{start} (a DATE)"

        def spans(ranges: list[tuple[int, int]]) -> str:
            return "[" + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges) + "]"

        if self.kind == "slot":
            groups = [
                spans([r for r, g in zip(self.ranges, self.groups) if g == i])
                for i in range(self.n_groups)
            ]
            return (
                f"{self.name}: the first i with {self.source} in group i of "
                f"{', '.join(groups)}, else {self.n_groups}"
            )
        where = f" and {self.where}" if self.where else ""
        return f"{self.name}: {self.source} in {spans(list(self.ranges))}{where}"


def derivations(plan: Plan) -> dict[str, Derived]:
    """Every column the native executor derives for ``plan``, by name."""
    out: dict[str, Derived] = {}
    for f in plan.filters:
        if f.mcc is not None:
            where = f"_{f.id}_w" if f.where is not None else None
            out[f"_{f.id}"] = Derived(f"_{f.id}", "mcc", "_m", merge(list(f.mcc)), where=where)
    for s in plan.slots:
        pairs = [(r, g) for g, group in enumerate(s.groups) for r in group]
        out[f"_{s.id}"] = Derived(
            f"_{s.id}", "slot", "_m", tuple(r for r, _ in pairs), tuple(g for _, g in pairs),
            len(s.groups),
        )  # fmt: skip
    clock = "_o" if plan.time_kind in LOCAL_IS_ORDER else "_lus"
    for p in plan.periods:
        shift = plan.spec.week_start_index if p == "week" else 0
        out[f"_p_{p}"] = Derived(f"_p_{p}", "period", clock, period=p, week_shift=shift)
    return out


@dataclass(frozen=True)
class Program:
    """The prologue SQL, its columns, and the kernel calls of one spec."""

    spec: TargetSet
    plan: Plan
    prologue: str  # the SQL as rendered and run (explain prints it formatted by sqlglot)
    columns: tuple[str, ...]
    calls: tuple[Call, ...]
    elapsed: str | None  # the prologue column of elapsed time in µs, when a window needs it
    #: the events unsorted, with the sort keys too: materialised as a table, then sorted by
    #: :meth:`sorted_from` (DuckDB sorts a table about twice as fast as a stream)
    unsorted: str = ""
    sort_keys: tuple[str, ...] = ("_u", "_o", "_tb")
    presorted: bool = False  # the input is sorted already: the prologue has no ORDER BY
    #: columns the kernels read that the executor derives from prologue columns
    derived: tuple[Derived, ...] = ()

    def sorted_from(self, table: str) -> str:
        """The prologue's result from the table ``unsorted`` was materialised as (a quoted
        name): its columns, sorted by user and event order."""
        return f"SELECT {', '.join(self.fetched)} FROM {table} ORDER BY {', '.join(self.sort_keys)}"

    @property
    def fetched(self) -> tuple[str, ...]:
        """The columns the prologue returns (see :func:`fetched`; :meth:`complete` adds
        what it leaves out)."""
        return fetched(self.columns, self.plan)

    def complete(self, table: pa.Table) -> pa.Table:
        """The prologue's result (or a part of it) as the kernels read it: :attr:`columns`,
        in order, ``_o`` a zero-copy int64 view of a µs ``_time`` where the prologue leaves
        it out (8 bytes a row less to compute, export, sort and hold)."""
        if "_o" in self.columns and "_o" not in table.column_names:
            time = table.column("_time")
            if not (pa.types.is_timestamp(time.type) and time.type.unit == "us"):
                raise SqlTargetsError(
                    f"internal error: the time column came back as {time.type}, not as µs "
                    "timestamps; please report this"
                )
            table = table.append_column("_o", time.cast(pa.int64()))
        return table.select(list(self.columns))

    @property
    def names(self) -> list[str]:
        """The target names, in output order."""
        return [c.name for c in self.calls]

    def explain(self) -> str:
        """The prologue (runs as it is in the DuckDB shell) and one comment per kernel."""
        lines = [
            "-- sqltargets native program: the prologue below runs in DuckDB; then one kernel",
            "-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):",
        ]
        lines += [f"--   {c.describe()}" for c in self.calls]
        views = self.fetched != self.columns
        if self.derived or views:
            lines.append("-- and derives from the prologue's columns:")
            if views:
                lines.append("--   _o: _time's µs as BIGINT (a view of the same memory)")
            lines += [f"--   {d.describe()}" for d in self.derived]
        return "\n".join(lines) + "\n" + format_prologue(self.prologue)


def fetched(columns: tuple[str, ...] | list[str], plan: Plan) -> tuple[str, ...]:
    """The prologue's columns among ``columns``: all but ``_o`` where it is a view of
    ``_time`` (``Plan.time_us``)."""
    return tuple(c for c in columns if c != "_o" or not plan.time_us)


def elapsed_column(plan: Plan) -> str:
    """``_e`` (the instant) when it differs from the order key ``_o`` (naive timestamps in a
    zone other than UTC), else ``_o``."""
    differs = plan.time_kind == "timestamp" and plan.spec.timezone != "UTC"
    return "_e" if differs else "_o"


def build(
    plan: Plan, source: Source, *, order_time: bool = False, presorted: bool = False
) -> Program:
    """The program for ``plan`` reading ``source``. ``order_time`` adds ``_o`` (the event
    time in µs) to the prologue's columns, for the torch datasets' time feature;
    ``presorted`` says the input is sorted by user and event order already."""
    ts = plan.spec
    calls: list[Call] = []
    columns = ["_u", "_time", "_tb"]
    derivable = derivations(plan)
    derived: dict[str, Derived] = {}
    elapsed = None
    for o in plan.outputs:
        t = o.target
        m = next(iter(o.measures.values()))
        value = f"_{m.value.id}" if m.value is not None else None
        filt = f"_{m.filter.id}" if m.filter is not None else None
        kind = t.window.kind
        period = f"_p_{t.window.period}" if kind in CALENDAR else None
        if kind in SLIDING or t.agg == "elapsed":
            elapsed = elapsed_column(plan)
        agg = AGGREGATIONS[t.agg]
        slots = f"_{o.slot.id}" if o.slot is not None else None
        calls.append(
            Call(
                name=t.name,
                agg=t.agg,
                kernel=agg.kernel,
                window=t.window,
                type=o.type,
                reads=m.value.kind if m.value is not None else "nothing",
                value=value,
                filter=filt,
                period=period,
                fill=t.fill,
                k=t.k,
                q=0.5 if t.agg == "median" else t.q,
                slots=slots,
                n_slots=len(t.by) + 1 if t.by is not None else 0,
                measure=t.measure,
                normalize=t.normalize,
            )
        )
        for col in (value, filt, period, slots):
            if col is None:
                continue
            d = derivable.get(col)
            if d is not None:
                derived.setdefault(col, d)
            for c in (d.source, d.where) if d is not None else (col,):
                if c is not None and c not in columns:
                    columns.append(c)
    columns += [f"_{v.id}" for v in plan.extra if f"_{v.id}" not in columns]
    if elapsed is not None and elapsed not in columns:
        columns.append(elapsed)
    if order_time and "_o" not in columns:
        columns.append("_o")
    # a µs time column sorts as its order key does: _o need not be computed at all
    clock = "_time" if plan.time_us else "_o"
    sort_keys = ["_u", clock, "_tb"] + (["_tb2"] if ts.columns.id and source.rid else [])
    returned = list(fetched(columns, plan))
    prologue = prologue_text(plan, source, returned, sort=not presorted)
    unsorted = prologue_text(
        plan, source, returned + [k for k in sort_keys if k not in returned], sort=False
    )
    return Program(
        ts, plan, prologue, tuple(columns), tuple(calls), elapsed, unsorted, tuple(sort_keys),
        presorted, tuple(derived.values()),
    )  # fmt: skip
