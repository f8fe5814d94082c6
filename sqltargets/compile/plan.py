"""Specs → plan: which windows, which aggregates, shared where possible. No SQL text here.

The plan groups targets by the shape of their window, so that every distinct window
(partition + order + frame) is evaluated once for all its targets; it shares filters and
aggregates across targets (a ``mean`` reuses the ``sum`` of a ``sum`` target with the same
filter and window); and it computes whole-period and next-period windows with one
``GROUP BY`` per calendar period, joined back to the events.

>>> from sqltargets.compile.spec import load
>>> ts = load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
...     {"name": "s", "agg": "sum", "mcc": [5411], "window": {"kind": "expanding", "period": "day"}},
...     {"name": "m", "agg": "mean", "mcc": [5411], "window": {"kind": "expanding", "period": "day"}},
... ]})
>>> p = build(ts)
>>> [(m.fn, m.filter.id) for m in p.frames[0].measures]
[('sum', 'f0'), ('count_value', 'f0')]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .aggregates import AGGREGATIONS, EVENT_WINDOWS, output_type, reads
from .spec import PERIODS, Target, TargetSet, Window

TIME_KINDS = ("timestamptz", "timestamp", "date", "integer")


@dataclass(frozen=True)
class Filter:
    """A row filter shared by every measure that uses the same MCC set and ``where``."""

    id: str
    mcc: tuple[tuple[int, int], ...] | None
    where: str | None


@dataclass(frozen=True)
class Value:
    """An aggregated input column, read as ``kind``: ``number`` (DOUBLE), ``raw`` (as it is,
    for count_distinct) or ``code`` (MCC codes: integers, strings of digits parsed)."""

    id: str
    column: str
    kind: str

    @property
    def numeric(self) -> bool:
        return self.kind == "number"


@dataclass(frozen=True)
class Slot:
    """The group (slot) of each row for a distribution: the first of ``groups`` (MCC ranges)
    holding its MCC, else the last slot, ``len(groups)``."""

    id: str
    groups: tuple[tuple[tuple[int, int], ...], ...]


@dataclass(frozen=True)
class Measure:
    """One primitive aggregate (``fn``, spelled by ``aggregates.MEASURES``) over one window,
    of the rows passing ``filter`` (and, for a distribution, in group ``group`` of ``slot``)."""

    id: str
    fn: str
    value: Value | None
    filter: Filter | None
    k: int | None = None
    q: float | None = None
    slot: Slot | None = None
    group: int | None = None


@dataclass(frozen=True)
class Frame:
    """A window evaluated with OVER: expanding (ROWS), rolling and future (RANGE on time),
    next and previous events; one per distinct window (parameters included)."""

    id: str
    window: Window
    measures: tuple[Measure, ...]

    @property
    def kind(self) -> str:
        return self.window.kind

    @property
    def period(self) -> str | None:
        return self.window.period

    @property
    def length(self) -> int | None:
        return self.window.length


@dataclass(frozen=True)
class Grouped:
    """Whole calendar periods, aggregated with one GROUP BY (user, period), joined back to
    the same period (``period`` targets) and to the period ``1 + offset`` before it, once per
    distinct offset of the ``next_period`` targets (``next_offsets``, ascending)."""

    id: str
    period: str
    measures: tuple[Measure, ...]
    join_current: bool
    next_offsets: tuple[int, ...] = ()

    @property
    def join_next(self) -> bool:
        return bool(self.next_offsets)


def next_relation(period: str, offset: int) -> str:
    """The alias of a ``next_period`` join: the period ``offset`` periods after the next.

    >>> next_relation("month", 0), next_relation("month", 2)
    ('next_month', 'next_month_plus2')
    """
    return f"next_{period}" if offset == 0 else f"next_{period}_plus{offset}"


@dataclass(frozen=True)
class Output:
    """A target's output column: how its measures combine, and where they live."""

    target: Target
    relation: str  # "e" for frames; "cur_<period>", "next_<period>[_plus<offset>]" for groups
    #: by fn (aggregates.MEASURES); a distribution's by slot ("slot0", ...), one per group
    measures: dict[str, Measure] = field(hash=False)
    type: str = "double"  # "int64", "double" or "list" (list<double>)
    slot: Slot | None = None  # distribution: the slot of each row


@dataclass(frozen=True)
class Plan:
    """Everything the renderer needs, in order."""

    spec: TargetSet
    time_kind: str
    filters: tuple[Filter, ...]
    values: tuple[Value, ...]
    periods: tuple[str, ...]  # calendar periods whose keys the events need
    frames: tuple[Frame, ...]
    groups: tuple[Grouped, ...]
    outputs: tuple[Output, ...]
    needs_elapsed: bool  # rolling/future windows or elapsed times present
    needs_order_key: bool  # first/last present
    mcc_text: bool = False  # the MCC column holds strings (of digits, we hope)
    extra: tuple[Value, ...] = ()  # values asked for beyond the targets' (see build)
    slots: tuple[Slot, ...] = ()  # distribution groups of rows
    #: the time column is DuckDB's µs TIMESTAMP (with or without zone): its values are the
    #: order key ``_o`` already, so the native executor reads ``_o`` as a view of ``_time``
    time_us: bool = False
    #: the time column is DuckDB's TIMESTAMP_NS or TIMESTAMPTZ_NS: read as µs rounded down
    #: (DuckDB's own casts round to the nearest µs, which can move an event into the next
    #: day; TARGETS.md's events are instants at µs resolution, floored)
    time_ns: bool = False


def build(
    ts: TargetSet,
    time_kind: str | None = None,
    numeric: dict[str, bool] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    time_type: str | None = None,
) -> Plan:
    """Plan ``ts``. ``time_kind`` is the time column's kind (default from the spec:
    ``integer`` when ``time.unit`` is set, else ``timestamp``); ``numeric`` says which
    columns are numeric (default: all). ``extra`` lists more (column, kind) values the
    events carry (features of the torch datasets); ``Plan.extra`` holds their values.
    ``time_type``: the time column's DuckDB type, when known (``Plan.time_us``,
    ``Plan.time_ns``)."""
    if time_kind is None:
        time_kind = "integer" if ts.time.unit else "timestamp"
    if time_kind not in TIME_KINDS:
        raise ValueError(f"time_kind must be one of {TIME_KINDS}, got {time_kind!r}")
    numeric = numeric or {}

    filters: dict[tuple[object, ...], Filter] = {}
    values: dict[tuple[str, bool], Value] = {}
    frames: dict[Window, dict[tuple[object, ...], Measure]] = {}
    slots: dict[tuple[object, ...], Slot] = {}
    groups: dict[str, dict[tuple[object, ...], Measure]] = {}
    joins: dict[str, set[object]] = {}  # per period: "period" and next_period offsets
    outputs: list[Output] = []
    counter = [0]

    def measure(
        bucket: dict[tuple[object, ...], Measure],
        fn: str,
        t: Target,
        slot: Slot | None = None,
        group: int | None = None,
    ) -> Measure:
        f = None
        if t.mcc is not None or t.where is not None:
            fkey = (t.mcc, t.where)
            f = filters.setdefault(fkey, Filter(f"f{len(filters)}", t.mcc, t.where))
        v = None
        kind = reads(t.agg, t.value == ts.columns.mcc)
        if fn != "count_star" and kind != "nothing":
            v = values.setdefault((t.value, kind), Value(f"v{len(values)}", t.value, kind))
        k = t.k if fn == "top_k" else None
        q = None
        if fn == "quantile":
            q = 0.5 if t.agg == "median" else t.q
        key = (fn, v.id if v else None, f.id if f else None, k, q, slot, group)
        if key not in bucket:
            bucket[key] = Measure(f"m{counter[0]}", fn, v, f, k, q, slot, group)
            counter[0] += 1
        return bucket[key]

    # a mean shares the sum of a sum target over the same value, filter and window (and adds
    # a count of values); with no such sum, one AVG is cheaper than SUM and COUNT
    summed = {(t.value, t.mcc, t.where, t.window) for t in ts.targets if t.agg == "sum"}

    for t in ts.targets:
        w = t.window
        agg = AGGREGATIONS[t.agg]
        if w.kind == "period":
            assert w.period is not None
            bucket = groups.setdefault(w.period, {})
            joins.setdefault(w.period, set()).add("period")
            relation = f"cur_{w.period}"
        elif w.kind == "next_period":
            assert w.period is not None
            bucket = groups.setdefault(w.period, {})
            joins.setdefault(w.period, set()).add(w.offset)
            relation = next_relation(w.period, w.offset)
        else:
            bucket = frames.setdefault(w, {})
            relation = "e"
        slot = None
        if w.kind in EVENT_WINDOWS:  # one LEAD / LAG serves every agg of the event
            ms = {w.kind: measure(bucket, w.kind, t)}
        elif t.agg == "distribution" and t.by is not None:
            slot = slots.setdefault(t.by, Slot(f"s{len(slots)}", t.by))
            fn = "count_star" if t.measure == "count" else agg.measures[0]
            ms = {f"slot{g}": measure(bucket, fn, t, slot, g) for g in range(len(t.by) + 1)}
        else:
            fns = agg.measures
            if agg.solo and (t.value, t.mcc, t.where, t.window) not in summed:
                fns = (agg.solo,)
            ms = {fn: measure(bucket, fn, t) for fn in fns}
        outputs.append(Output(t, relation, ms, output_type(t.agg, t.value == ts.columns.mcc), slot))

    frame_list = tuple(
        Frame(f"w{i}", w, tuple(b.values())) for i, (w, b) in enumerate(frames.items())
    )
    group_list = tuple(
        Grouped(
            f"g_{period}",
            period,
            tuple(b.values()),
            join_current="period" in joins[period],
            next_offsets=tuple(sorted(o for o in joins[period] if isinstance(o, int))),
        )
        for period, b in groups.items()
    )
    used_periods = {f.period for f in frame_list if f.period} | set(groups)
    fns = {m.fn for f in frame_list for m in f.measures} | {
        m.fn for g in group_list for m in g.measures
    }
    extras = tuple(
        values.setdefault((col, kind), Value(f"v{len(values)}", col, kind)) for col, kind in extra
    )
    return Plan(
        spec=ts,
        extra=extras,
        slots=tuple(slots.values()),
        time_kind=time_kind,
        filters=tuple(filters.values()),
        values=tuple(values.values()),
        periods=tuple(p for p in PERIODS if p in used_periods),
        frames=frame_list,
        groups=group_list,
        outputs=tuple(outputs),
        needs_elapsed=any(
            t.window.kind in ("rolling", "future") or t.agg == "elapsed" for t in ts.targets
        ),
        needs_order_key=bool(fns & {"first", "last"}),
        mcc_text=numeric.get(ts.columns.mcc, True) is False,
        time_us=time_type in US_TIMESTAMPS and time_kind in ("timestamp", "timestamptz"),
        time_ns=time_type in NS_TIMESTAMPS and time_kind in ("timestamp", "timestamptz"),
    )


#: DuckDB's time types whose values are epoch µs, and those of epoch ns.
US_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
NS_TIMESTAMPS = ("TIMESTAMP_NS", "TIMESTAMPTZ_NS")
