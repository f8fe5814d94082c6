"""Target specs: parse a YAML/JSON file or a dict and validate it into frozen objects.

Every problem is collected and reported together, each naming its dotted path
(``targets[2].window.period``), the value received and what is allowed.

>>> ts = load({
...     "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"},
...     "targets": [{"name": "grocery_day", "agg": "sum", "mcc": ["grocery"],
...                  "window": {"kind": "expanding", "period": "day"}}],
... })
>>> ts.targets[0].window
Window(kind='expanding', period='day', length=None, offset=0, include_current=True, n=1)
>>> ts.targets[0].window.describe(), ts.targets[0].looks
('expanding/day', 'past')
>>> load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
...       "targets": [{"name": "x", "agg": "summ", "window": {"kind": "expanding", "period": "day"}}]})
Traceback (most recent call last):
...
sqltargets.errors.SpecError: targets[0].agg: 'summ' is not allowed; expected one of: sum, count, mean, min, max, std, first, last, count_distinct, top_k, var, median, quantile, mode, distribution, elapsed (did you mean 'sum'?)
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    DataError,
    SourceError,
    SpecError,
    SpecIssue,
    did_you_mean,
    first_line,
    one_of,
    short,
)
from . import mcc as mcc_catalog
from . import where as where_mod
from .aggregates import AGGREGATIONS, EVENT_AGGS, MCC_LABEL_AGGS

#: The aggregations, in the order errors list them (sqltargets/compile/aggregates.py).
AGGS = tuple(AGGREGATIONS)
WINDOW_KINDS = ("expanding", "period", "rolling", "future", "next_period", "next", "previous")
#: Window kinds over a calendar period, over an elapsed length, and over one event.
CALENDAR_KINDS = ("expanding", "period", "next_period")
DURATION_KINDS = ("rolling", "future")
EVENT_KINDS = ("next", "previous")
#: Window kinds that see only this row and earlier rows; every other kind looks ahead.
PAST_KINDS = ("expanding", "rolling", "previous")
#: What ``distribution`` adds up per group.
MEASURES = ("sum", "count")
#: Window parameters and the kinds they apply to.
WINDOW_PARAMETERS = {
    "offset": ("future", "next_period"),
    "include_current": ("expanding", "rolling"),
    "n": EVENT_KINDS,
}
MAX_N = 1000
MAX_GROUPS = 64
MAX_OFFSET_PERIODS = 1000
PERIODS = ("day", "week", "month", "quarter", "year")
TIME_UNITS = ("day", "s", "ms", "us")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OUTPUTS = ("events", "periods")
#: Aggregations whose empty-window value is 0 (and whose output is an integer).
COUNTING = ("count", "count_distinct")
MAX_K = 1000
MAX_TARGETS = 1000
#: Problems listed in one SpecError; the rest are counted.
MAX_ISSUES = 20
#: The longest window: 10,000 years of microseconds (a time plus or minus it stays far
#: inside int64, whose microseconds cover about 292,000 years).
MAX_LENGTH_US = 10_000 * 366 * 86_400_000_000
#: Fills for count and count_distinct are int64.
INT64 = (-(2**63), 2**63 - 1)

#: Microseconds per duration unit; the first spelling of each is the canonical one.
DURATION_UNITS: dict[str, int] = {}
for _names, _us in [
    (("us", "microsecond", "microseconds"), 1),
    (("ms", "millisecond", "milliseconds"), 1_000),
    (("s", "sec", "secs", "second", "seconds"), 1_000_000),
    (("m", "min", "mins", "minute", "minutes"), 60_000_000),
    (("h", "hr", "hrs", "hour", "hours"), 3_600_000_000),
    (("d", "day", "days"), 86_400_000_000),
    (("w", "week", "weeks"), 604_800_000_000),
]:
    for _n in _names:
        DURATION_UNITS[_n] = _us
UNIT_US = {"day": 86_400_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")

TOP_KEYS = ("columns", "time", "timezone", "week_start", "output", "null_rows", "targets")
NULL_ROWS = ("error", "drop")
COLUMN_KEYS = ("user", "time", "amount", "mcc", "id")
TIME_KEYS = ("unit", "origin")
TARGET_KEYS = (
    "name", "agg", "mcc", "where", "value", "window", "k", "fill", "q", "by", "measure",
    "normalize",
)  # fmt: skip
WINDOW_KEYS = ("kind", "period", "length", "offset", "include_current", "n")


@dataclass(frozen=True)
class Columns:
    """Which input columns play which role."""

    user: str
    time: str
    amount: str
    mcc: str
    id: str | None = None


@dataclass(frozen=True)
class TimeSpec:
    """How an integer time column becomes a date: ``unit`` steps after ``origin``."""

    unit: str | None = None
    origin: dt.date = dt.date(1970, 1, 1)

    def steps_allowed(self) -> tuple[int, int]:
        """The smallest and largest integer time whose date falls in years 1 to 9999 (what
        every engine reads; the NumPy reference cannot hold other dates, and such a time
        is almost always a value in a smaller unit than ``unit``).

        >>> TimeSpec("day").steps_allowed()
        (-719162, 2932896)
        >>> TimeSpec("s", dt.date(2000, 1, 1)).steps_allowed()
        (-63082281600, 252455615999)
        """
        size = UNIT_US[self.unit or "us"]
        origin = dt.datetime.combine(self.origin, dt.time())
        low = (dt.datetime.min - origin) // dt.timedelta(microseconds=1)
        high = (dt.datetime.max - origin) // dt.timedelta(microseconds=1)
        return -(-low // size), high // size

    def outside(self, column: str) -> tuple[str, str]:
        """The error for a value of integer time ``column`` outside :meth:`steps_allowed`, as
        the text before the value and the text after it (the SQL puts the value between).

        >>> "{}1700000000{}".format(*TimeSpec("day").outside("t"))[:67]
        "time.unit: column 't' holds 1700000000, which as day steps after 19"
        """
        low, high = self.steps_allowed()
        return (
            f"time.unit: column {column!r} holds ",
            f", which as {self.unit} steps after {self.origin.isoformat()} is a date outside "
            f"years 1 to 9999 (allowed: {low} to {high}); is the column in another unit?",
        )


@dataclass(frozen=True)
class Window:
    """A window: ``kind`` with a calendar ``period``, an elapsed ``length`` (µs), or neither.

    - ``offset``: on ``future`` a duration in µs (>= 0), the window being time in
      (t + offset, t + offset + length]; on ``next_period`` a whole number of periods (>= 0),
      the period that starts ``offset`` periods after the next one. 0 elsewhere.
    - ``include_current``: on ``expanding`` / ``rolling``, False leaves out this row
      (``expanding``: rows strictly before it in event order) or this time (``rolling``:
      time in (t - length, t), so same-time rows are left out together). True elsewhere.
    - ``n``: on ``next`` / ``previous``, the window is the n-th passing transaction strictly
      after / before this row in event order (1..1000). 1 elsewhere.
    """

    kind: str
    period: str | None = None
    length: int | None = None
    offset: int = 0
    include_current: bool = True
    n: int = 1

    def describe(self) -> str:
        """A short human form of the window and its parameters.

        >>> day = 86_400_000_000
        >>> Window("rolling", length=30 * day).describe()
        'rolling/30d'
        >>> Window("future", length=30 * day, offset=day).describe()
        'future/30d+1d'
        >>> Window("expanding", period="day", include_current=False).describe()
        'expanding/day excl. current'
        >>> Window("next_period", period="month", offset=1).describe()
        'next_period/month+1'
        >>> Window("next", n=2).describe(), Window("previous").describe()
        ('next#2', 'previous#1')
        """
        if self.kind in EVENT_KINDS:
            return f"{self.kind}#{self.n}"
        if self.length is not None:
            text = f"{self.kind}/{format_duration(self.length)}"
            if self.offset:
                text += f"+{format_duration(self.offset)}"
        else:
            text = f"{self.kind}/{self.period}"
            if self.offset:
                text += f"+{self.offset}"
        if not self.include_current:
            text += " excl. current"
        return text

    @property
    def looks(self) -> str:
        """``"past"`` when the window holds only this row and earlier rows, else ``"future"``."""
        return "past" if self.kind in PAST_KINDS else "future"


@dataclass(frozen=True)
class Target:
    """One output column: ``agg`` of ``value`` over filtered transactions in ``window``.

    - ``k``: ``top_k`` only. ``q``: ``quantile`` only, 0 < q < 1 (``median`` keeps None: it
      is the quantile at 0.5).
    - ``by``, ``by_names``, ``measure``, ``normalize``: ``distribution`` only. ``by`` holds
      one tuple of inclusive MCC ranges per group, in the spec's order; ``by_names`` a label
      per group (the spec's spelling); the output has ``len(by) + 1`` slots, the last one
      "other".
    """

    name: str
    agg: str
    window: Window
    value: str
    mcc: tuple[tuple[int, int], ...] | None = None
    where: str | None = None
    k: int | None = None
    fill: float | int | None = None
    q: float | None = None
    by: tuple[tuple[tuple[int, int], ...], ...] | None = None
    by_names: tuple[str, ...] | None = None
    measure: str = "sum"
    normalize: bool = False

    def where_columns(self) -> set[str]:
        """Input columns the ``where`` filter reads."""
        return where_mod.columns(where_mod.parse(self.where)) if self.where else set()

    @property
    def looks(self) -> str:
        """``"past"`` (``expanding``, ``rolling``, ``previous``: only this row and earlier
        rows) or ``"future"`` (every other window kind)."""
        return self.window.looks


@dataclass(frozen=True)
class TargetSet:
    """A validated spec: column roles, calendar settings, output shape and targets."""

    columns: Columns
    targets: tuple[Target, ...]
    time: TimeSpec = field(default_factory=TimeSpec)
    timezone: str = "UTC"
    week_start: str = "monday"
    output: str = "events"
    null_rows: str = "error"

    @property
    def week_start_index(self) -> int:
        """0 for Monday … 6 for Sunday."""
        return WEEKDAYS.index(self.week_start)

    def input_columns(self) -> list[str]:
        """Every input column the spec reads, roles first, without repeats."""
        cols = [self.columns.user, self.columns.time, self.columns.amount, self.columns.mcc]
        if self.columns.id:
            cols.append(self.columns.id)
        for t in self.targets:
            cols.append(t.value)
            cols.extend(sorted(t.where_columns()))
        return list(dict.fromkeys(cols))

    def check_column_case(self, names: list[str]) -> None:
        """Refuse an input (its column ``names``) with two columns whose names differ only
        in case when the spec reads one of them: DuckDB's names are case-insensitive, so
        it renames the second ('AMOUNT' becomes 'AMOUNT_1') and either could be read."""
        twins = case_twins(names)
        for col in self.input_columns():
            same = twins.get(col.lower(), [])
            if same and len(set(same)) == 1:  # (Arrow allows one name twice)
                raise DataError(
                    f"column {col!r}: the input has {len(same)} columns of that name, so "
                    "which one the spec reads is not defined: rename one"
                )
            if same:
                raise DataError(
                    f"column {col!r}: the input has columns {' and '.join(map(repr, same))}, "
                    "whose names differ only in case; DuckDB's names are case-insensitive, so "
                    "it cannot tell them apart: rename one"
                )

    def key_column(self) -> str:
        """Name of the output's row key: the id column, else ``row_id``."""
        return self.columns.id or "row_id"

    def future_targets(self) -> list[Target]:
        """The targets that look past this row (every window kind but ``expanding``,
        ``rolling`` and ``previous``): what a past-only run refuses."""
        return [t for t in self.targets if t.looks == "future"]

    def check_past_only(self) -> None:
        """Refuse a spec with future-looking targets (for ``past_only`` runs, which feed
        targets to a model as features that must not leak the future), naming them."""
        ahead = self.future_targets()
        if ahead:
            names = ", ".join(f"{t.name} ({t.window.describe()})" for t in ahead)
            raise SpecError(
                f"past_only: {len(ahead)} target(s) look past the current row: {names}; "
                "a past-only run takes only expanding, rolling and previous windows"
            )

    def outputs_mcc_code(self, target: Target) -> bool:
        """True when ``target`` outputs MCC codes as int64 class labels: ``first``, ``last``
        or ``mode`` of the spec's mcc column."""
        return target.agg in MCC_LABEL_AGGS and target.value == self.columns.mcc


def format_duration(us: int) -> str:
    """Shortest exact spelling of a duration in µs.

    >>> format_duration(7 * 86_400_000_000), format_duration(90_000_000)
    ('1w', '90s')
    """
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = DURATION_UNITS[unit]
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def parse_duration(text: object, allow_zero: bool = False) -> int | None:
    """``"7d"`` → µs, or None when ``text`` is not a duration (``allow_zero``: also
    ``"0d"`` and the number 0, as a ``future`` offset may be).

    >>> parse_duration("12h") == 12 * 3600 * 10**6, parse_duration("7 parsecs")
    (True, None)
    >>> parse_duration("0d"), parse_duration("0d", allow_zero=True), parse_duration(0, True)
    (None, 0, 0)
    """
    if allow_zero and type(text) is int and text == 0:
        return 0
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    if not m or m.group(2).lower() not in DURATION_UNITS or _calendar_unit(m.group(2)):
        return None
    if int(m.group(1)) <= 0 and not allow_zero:
        return None
    return int(m.group(1)) * DURATION_UNITS[m.group(2).lower()]


# ---------------------------------------------------------------------------------------------
# loading


def load(source: str | Path | dict[str, Any] | TargetSet) -> TargetSet:
    """Load and validate a spec from a YAML/JSON path, a dict, or a ready TargetSet."""
    if isinstance(source, TargetSet):
        return source
    if isinstance(source, dict):
        return from_dict(source)
    if isinstance(source, (str, Path)):
        if not str(source).strip():  # (Path("") is the working folder)
            raise SourceError(f"spec: expected a YAML or JSON file path, got {str(source)!r}")
        return from_dict(read_file(Path(source)))
    raise SpecError(f"spec: expected a path or a dict, got {type(source).__name__}")


#: Limits of a spec file: nesting depth, values after YAML aliases are expanded, bytes.
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_SPEC_BYTES = 10 * 2**20


def read_file(path: Path) -> Any:
    """Read a YAML or JSON spec file; malformed text is an error naming its line."""
    try:
        if not path.exists():
            raise SourceError(f"spec file {str(path)!r} does not exist")
        if path.is_dir():
            raise SourceError(f"spec file {str(path)!r} is a folder; expected a YAML or JSON file")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: the spec file is larger than {MAX_SPEC_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"spec file {str(path)!r} cannot be read: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, path))
        except json.JSONDecodeError as e:
            raise SpecError(
                f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
            ) from e
        except RecursionError as e:
            raise SpecError(f"{path}: the JSON is nested too deeply") from e
    return _read_yaml(text, str(path))


def case_twins(names: list[str]) -> dict[str, list[str]]:
    """Column names that differ only in case, grouped by their lower-case form (DuckDB's
    names are case-insensitive: it renames the second of 'a' and 'A' to 'A_1').

    >>> case_twins(["a", "b", "A"])
    {'a': ['a', 'A']}
    """
    by_lower: dict[str, list[str]] = {}
    for n in names:
        by_lower.setdefault(n.lower(), []).append(n)
    return {k: v for k, v in by_lower.items() if len(v) > 1}


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object, refused when a key repeats (json.loads would keep the last silently;
    YAML's duplicate keys are refused too)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError(f"{path}: duplicate key {_short(key)} in a JSON object")
        out[key] = value
    return out


def _read_yaml(text: str, name: str) -> Any:
    """Parse YAML safely: plain types only, nesting at most :data:`MAX_DEPTH` deep, aliases
    expanding to at most :data:`MAX_NODES` values (an alias bomb fails at once, before
    anything is built), keys plain values and not repeated."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise SpecError(
                        f"{name}: line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep"
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            _check_expansion(node, name)
            return self.construct_document(node)

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:  # the mapping's own keys (merged ones may repeat)
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise SpecError(
                    f"{name}: line {key_node.start_mark.line + 1}: a {kind} is used as a key; "
                    "keys are plain names"
                )
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise SpecError(
                    f"{name}: line {key_node.start_mark.line + 1}: duplicate key "
                    f"{_short(key)} (first at line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
        loader.flatten_mapping(node)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    def construct_timestamp(loader: Any, node: Any) -> Any:
        try:
            return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
        except ValueError:  # 2024-13-45: the validator names the field and the value
            return loader.construct_scalar(node)

    def sexagesimal_as_text(construct: Any) -> Any:
        # YAML 1.1 reads 54:11 as the base-60 number 3251 (and 1:30:00.5 as a float): kept
        # as the text it is, which the validator then names
        def build(loader: Any, node: Any) -> Any:
            if ":" in str(node.value):
                return loader.construct_scalar(node)
            return construct(loader, node)

        return build

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)
    for tag, construct in [
        ("tag:yaml.org,2002:int", yaml.SafeLoader.construct_yaml_int),
        ("tag:yaml.org,2002:float", yaml.SafeLoader.construct_yaml_float),
    ]:
        Loader.add_constructor(tag, sexagesimal_as_text(construct))
    try:
        data = yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{name}: malformed YAML{where}: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise SpecError(f"{name}: malformed YAML: {_first_line(e)}") from e
    except RecursionError as e:
        raise SpecError(f"{name}: the YAML is nested too deeply") from e
    except (TypeError, ValueError, OverflowError) as e:  # a value PyYAML cannot build
        raise SpecError(f"{name}: unsupported YAML value: {_first_line(e)}") from e
    if data is None:
        raise SpecError(f"{name}: the spec file is empty")
    return data


def _check_expansion(root: Any, name: str) -> None:
    """Count the values a YAML node graph builds with its aliases expanded (each distinct
    node once, with memory): refuse recursive aliases and more than MAX_NODES values."""
    import yaml

    size: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            if isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size[id(c)] for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                total = 1 + sum(size[id(k)] + size[id(v)] for k, v in node.value)
            else:
                total = 1
            if total > MAX_NODES:
                raise SpecError(
                    f"{name}: line {node.start_mark.line + 1}: YAML aliases expand to more "
                    f"than {MAX_NODES:,} values"
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in active:
            raise SpecError(
                f"{name}: line {node.start_mark.line + 1}: a YAML alias refers to itself"
            )
        active.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        else:
            children = []
        for child in children:
            if id(child) in active:
                raise SpecError(
                    f"{name}: line {child.start_mark.line + 1}: a YAML alias refers to itself"
                )
            if id(child) not in size:
                stack.append((child, False))


def _first_line(e: BaseException) -> str:
    return first_line(e)[:200]


# ---------------------------------------------------------------------------------------------
# validation


class _Collector:
    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(SpecIssue(path, message))

    def issue(self, issue: SpecIssue) -> None:
        self.issues.append(issue)

    def keys(self, obj: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in obj:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.add(
                    where,
                    f"unknown key {_short(key)}; allowed keys: {', '.join(allowed)}"
                    f"{did_you_mean(key, allowed)}",
                )

    def mapping(self, obj: object, path: str) -> dict[str, Any] | None:
        if isinstance(obj, dict):
            return obj
        self.add(path, f"expected a mapping, got {_show(obj)}")
        return None

    def string(self, obj: object, path: str) -> str | None:
        if isinstance(obj, str) and obj.strip():
            return obj
        self.add(path, f"expected a non-empty string, got {_show(obj)}")
        return None

    def choice(self, obj: object, allowed: tuple[str, ...], path: str) -> str | None:
        if isinstance(obj, str) and obj in allowed:
            return obj
        if isinstance(obj, str) and obj.lower() in allowed:
            return obj.lower()
        self.issue(one_of(path, obj, allowed))
        return None


_short = short


def _show(obj: object) -> str:
    if obj is None:
        return "nothing (null)"
    return f"{type(obj).__name__} {_short(obj)}"


def from_dict(data: Any) -> TargetSet:
    """Validate a spec given as plain data (the parsed YAML/JSON)."""
    c = _Collector()
    if not isinstance(data, dict):
        raise SpecError(
            f"spec: expected a mapping with keys {', '.join(TOP_KEYS)}, got {_show(data)}"
        )
    c.keys(data, TOP_KEYS, "")

    columns = _columns(c, data.get("columns"))
    time = _time(c, data.get("time"))
    tz = data.get("timezone", "UTC")
    timezone = _timezone(c, tz)
    week_start = c.choice(data.get("week_start", "monday"), WEEKDAYS, "week_start")
    output = c.choice(data.get("output", "events"), OUTPUTS, "output")
    null_rows = c.choice(data.get("null_rows", "error"), NULL_ROWS, "null_rows")

    targets: list[Target] = []
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        c.add("targets", f"expected a non-empty list of targets, got {_show(raw_targets)}")
        raw_targets = []
    if len(raw_targets) > MAX_TARGETS:
        c.add("targets", f"{len(raw_targets)} targets; at most {MAX_TARGETS} are allowed")
        raw_targets = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_targets):
        t = _target(c, raw, f"targets[{i}]", columns)
        if t is None:
            continue
        key = t.name.lower()
        if key in seen:
            c.add(
                f"targets[{i}].name",
                f"{t.name!r} repeats the name of targets[{seen[key]}] "
                "(names must differ, ignoring case)",
            )
        seen.setdefault(key, i)
        targets.append(t)

    if columns is not None:
        reserved = {columns.user.lower(), columns.time.lower(), "row_id", "period_start"}
        if columns.id:
            reserved.add(columns.id.lower())
        for i, t in enumerate(targets):
            if t.name.lower() in reserved:
                c.add(
                    f"targets[{i}].name",
                    f"{t.name!r} collides with an output column; choose another name",
                )
    if output == "periods":
        _check_periods_output(c, raw_targets, targets)

    if c.issues:
        if len(c.issues) > MAX_ISSUES:
            more = len(c.issues) - MAX_ISSUES
            c.issues = [*c.issues[:MAX_ISSUES], SpecIssue("", f"and {more} more problems")]
        raise SpecError(c.issues)
    assert columns is not None and week_start is not None and output is not None
    assert null_rows is not None
    return TargetSet(
        columns=columns,
        targets=tuple(targets),
        time=time or TimeSpec(),
        timezone=timezone or "UTC",
        week_start=week_start,
        output=output,
        null_rows=null_rows,
    )


def _columns(c: _Collector, raw: object) -> Columns | None:
    if raw is None:
        c.add("columns", "missing; map the roles user, time, amount, mcc to your column names")
        return None
    obj = c.mapping(raw, "columns")
    if obj is None:
        return None
    c.keys(obj, COLUMN_KEYS, "columns")
    names: dict[str, str | None] = {}
    for role in COLUMN_KEYS:
        value = obj.get(role)
        if value is None and role == "id":
            names[role] = None
            continue
        if value is None:
            c.add(f"columns.{role}", "missing; name the input column that holds the " + role)
            continue
        names[role] = c.string(value, f"columns.{role}")
    if any(names.get(r) is None for r in COLUMN_KEYS if r != "id"):
        return None
    # the output carries the user, time and id columns by name (row_id without an id): one
    # column in two of these roles would be two output columns of one name (a file pyarrow
    # cannot read back)
    first_role: dict[str, str] = {}
    for role in ("user", "time", "id"):
        name = names.get(role)
        if name is None:
            continue
        if names.get("id") is None and name.lower() == "row_id":
            c.add(
                f"columns.{role}",
                f"{name!r} would be a second row_id: the output's row position column is "
                "row_id when the spec has no columns.id; set columns.id, or rename the column",
            )
            continue
        other = first_role.setdefault(name.lower(), role)
        if other != role:
            c.add(
                f"columns.{role}",
                f"{name!r} is columns.{other} already; the user, time and id roles must name "
                "different columns",
            )
    return Columns(**names)  # type: ignore[arg-type]


def _time(c: _Collector, raw: object) -> TimeSpec | None:
    if raw is None:
        return TimeSpec()
    obj = c.mapping(raw, "time")
    if obj is None:
        return None
    c.keys(obj, TIME_KEYS, "time")
    unit = None
    if "unit" in obj:
        unit = c.choice(obj["unit"], TIME_UNITS, "time.unit")
    origin = dt.date(1970, 1, 1)
    if "origin" in obj:
        # a date, or its ISO text; a datetime (YAML reads an unquoted 2024-01-01T12:00 as one)
        # was cut to its date without a word, and an integer 20240101 read as a date
        o = obj["origin"]
        if isinstance(o, dt.date) and not isinstance(o, dt.datetime):
            origin = o
        elif isinstance(o, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", o.strip()):
            try:
                origin = dt.date.fromisoformat(o.strip())
            except ValueError:
                c.add("time.origin", f"{_short(o)} is not a date; expected YYYY-MM-DD")
        else:
            c.add(
                "time.origin",
                f"{_short(o)} is not a date; expected YYYY-MM-DD (integer time 0 is midnight "
                "of that date)",
            )
    return TimeSpec(unit=unit, origin=origin)


def _timezone(c: _Collector, tz: object) -> str | None:
    if not isinstance(tz, str) or not tz:
        c.add(
            "timezone",
            f"expected a time zone name such as 'UTC' or 'Europe/Berlin', got {_show(tz)}",
        )
        return None
    if tz.upper() == "UTC":
        return "UTC"
    zones = _zones()
    if tz not in zones:
        c.add(
            "timezone",
            f"{_short(tz)} is not a known time zone; expected an IANA name such as 'UTC' or "
            f"'Europe/Berlin'{did_you_mean(tz, sorted(zones))}",
        )
        return None
    return tz


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    """IANA zone names that Python and DuckDB both know ('localtime' is this machine's zone,
    a file that DuckDB does not read, and whose meaning moves with the machine)."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


def _target(c: _Collector, raw: object, path: str, columns: Columns | None) -> Target | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    c.keys(obj, TARGET_KEYS, path)
    n_before = len(c.issues)

    name = obj.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 120:
        c.add(
            f"{path}.name",
            f"{_short(name)} is not a valid target name; use letters, digits and underscores, "
            "starting with a letter or underscore (at most 120 characters)",
        )
    agg = c.choice(obj.get("agg"), AGGS, f"{path}.agg")
    window = _window(c, obj.get("window"), f"{path}.window")

    mcc_ranges = None
    if "mcc" in obj and obj["mcc"] is not None:
        items = obj["mcc"]
        if isinstance(items, (int, str)) and not isinstance(items, bool):
            items = [items]
        if not isinstance(items, list) or not items:
            c.add(
                f"{path}.mcc",
                f"expected a non-empty list of codes, ranges or groups, got {_show(items)}",
            )
        else:
            ranges: list[tuple[int, int]] = []
            for j, item in enumerate(items):
                r = mcc_catalog.parse_item(item, f"{path}.mcc[{j}]")
                if isinstance(r, SpecIssue):
                    c.issue(r)
                else:
                    ranges.extend(r)
            mcc_ranges = mcc_catalog.merge(ranges)

    where = obj.get("where")
    if where is not None:
        try:
            where_mod.parse(where)
        except SpecError as e:
            for issue in e.issues:
                c.add(f"{path}.where", issue.message)

    value = obj.get("value")
    if value is None:
        value = columns.amount if columns else None
    else:
        value = c.string(value, f"{path}.value")

    k = obj.get("k")
    if agg == "top_k":
        if k is None:
            c.add(f"{path}.k", f"missing; top_k needs k, a whole number from 1 to {MAX_K}")
        elif isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            c.add(f"{path}.k", f"{_short(k)} is not allowed; k is a whole number from 1 to {MAX_K}")
    elif k is not None:
        c.add(f"{path}.k", f"k applies only to agg top_k, not {agg!r}; remove it")

    fill = obj.get("fill")
    if fill is not None:
        fill = _fill(c, fill, agg, f"{path}.fill")

    _agg_fits_window(c, agg, _kind_of(obj.get("window")), path)
    q = _quantile_q(c, obj, agg, path)
    groups = _distribution(c, obj, agg, path)
    if agg in MCC_LABEL_AGGS and columns is not None and value == columns.mcc:
        fill = _label_fill(c, fill, agg, path)

    if len(c.issues) > n_before or agg is None or window is None or value is None:
        return None
    return Target(
        name=name, agg=agg, window=window, value=value, mcc=mcc_ranges,
        where=where, k=k if agg == "top_k" else None, fill=fill, q=q, **groups,
    )  # fmt: skip


def _kind_of(raw: object) -> str | None:
    """The window's kind when it is a known one (to check the agg against it even when
    the window has other problems)."""
    if isinstance(raw, dict) and isinstance(raw.get("kind"), str):
        kind = raw["kind"].lower()
        return kind if kind in WINDOW_KINDS else None
    return None


def _agg_fits_window(c: _Collector, agg: str | None, kind: str | None, path: str) -> None:
    """An event window takes first / last / count / elapsed; elapsed needs an event window."""
    if agg is None or kind is None:
        return
    if kind in EVENT_KINDS and agg not in EVENT_AGGS:
        direction = "to" if kind == "next" else "since"
        c.add(
            f"{path}.agg",
            f"{agg!r} does not apply to a {kind} window, which holds one transaction (or "
            f"none); expected one of: first, last (its value), count (1 or 0), elapsed "
            f"(seconds {direction} it)",
        )
    if agg == "elapsed" and kind not in EVENT_KINDS:
        c.add(
            f"{path}.agg",
            f"elapsed is the time to the next or since the previous transaction; it needs "
            f"window kind next or previous, not {kind!r}",
        )


def _quantile_q(c: _Collector, obj: dict[str, Any], agg: str | None, path: str) -> float | None:
    """``q`` of a quantile: required there, a number strictly between 0 and 1; nowhere else."""
    q = obj.get("q")
    if agg == "quantile":
        if q is None:
            c.add(
                f"{path}.q",
                "missing; quantile needs q, a number strictly between 0 and 1 "
                "(0.9 for the 90th percentile)",
            )
            return None
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            hint = f"; for the {q}th percentile write {q / 100}" if _is_percent(q) else ""
            c.add(
                f"{path}.q", f"{q!r} is not allowed; q is a number strictly between 0 and 1{hint}"
            )
            return None
        return float(q)
    if "q" in obj and agg == "median":
        c.add(
            f"{path}.q",
            "median is the quantile at 0.5 and takes no q; for another q use agg quantile",
        )
    elif "q" in obj and agg is not None:
        c.add(f"{path}.q", f"q applies only to agg quantile, not {agg!r}; remove it")
    return None


def _is_percent(q: object) -> bool:
    return isinstance(q, (int, float)) and not isinstance(q, bool) and 1 < q < 100


def _distribution(c: _Collector, obj: dict[str, Any], agg: str | None, path: str) -> dict[str, Any]:
    """``by`` / ``measure`` / ``normalize`` of a distribution, as Target fields."""
    if agg != "distribution":
        for key in ("by", "measure", "normalize"):
            if key in obj and agg is not None:
                c.add(
                    f"{path}.{key}",
                    f"{key} applies only to agg distribution, not {agg!r}; remove it",
                )
        return {}
    if obj.get("fill") is not None:
        c.add(
            f"{path}.fill",
            "a distribution takes no fill: its empty value is a list (all zeros, or all null "
            "when normalized), not one number",
        )
    out: dict[str, Any] = {}
    measure = c.choice(obj.get("measure", "sum"), MEASURES, f"{path}.measure")
    if measure is not None:
        out["measure"] = measure
    normalize = obj.get("normalize", False)
    if isinstance(normalize, bool):
        out["normalize"] = normalize
    else:
        c.add(
            f"{path}.normalize",
            "expected true or false (true: each slot as a share of the total), "
            f"got {_show(normalize)}",
        )

    example = 'such as {mcc: [grocery, restaurants, "5411-5499", [fuel, 5983]]}'
    by = obj.get("by")
    if by is None:
        c.add(
            f"{path}.by",
            f"missing; distribution needs by, the groups to split into, {example}",
        )
        return out
    if not isinstance(by, dict):
        c.add(f"{path}.by", f"expected a mapping with the key mcc, {example}; got {_show(by)}")
        return out
    c.keys(by, ("mcc",), f"{path}.by")
    items = by.get("mcc")
    if not isinstance(items, list) or not items or len(items) > MAX_GROUPS:
        c.add(
            f"{path}.by.mcc",
            f"expected a list of 1 to {MAX_GROUPS} groups (each an MCC code, a range, a group "
            f"name, or a list of those), got "
            + (f"{len(items)} groups" if isinstance(items, list) and items else _show(items)),
        )
        return out
    groups: list[tuple[tuple[int, int], ...]] = []
    names: list[str] = []
    first_at: dict[str, int] = {}  # label -> index of the group that first has it
    for j, item in enumerate(items):
        item_path = f"{path}.by.mcc[{j}]"
        parts = item if isinstance(item, list) else [item]
        if not parts:
            c.add(item_path, "an empty list; a group needs at least one code, range or group name")
            continue
        ranges: list[tuple[int, int]] = []
        for i, part in enumerate(parts):
            part_path = f"{item_path}[{i}]" if isinstance(item, list) else item_path
            if isinstance(part, list):
                c.add(
                    part_path,
                    "lists do not nest; a group is one flat list of codes, ranges and group names",
                )
                continue
            r = mcc_catalog.parse_item(part, part_path)
            if isinstance(r, SpecIssue):
                c.issue(r)
            else:
                ranges.extend(r)
        label = "+".join(_spelling(p) for p in parts)
        if label in first_at:
            c.add(
                item_path,
                f"{label!r} repeats group by.mcc[{first_at[label]}]; name each group once",
            )
        first_at.setdefault(label, j)
        merged = mcc_catalog.merge(ranges)
        earlier = mcc_catalog.merge([r for g in groups for r in g])
        if (
            ranges
            and label not in names
            and all(any(a <= lo and hi <= b for a, b in earlier) for lo, hi in merged)
        ):  # (every transaction goes to the first group that holds its MCC)
            c.add(
                item_path,
                f"{label!r} holds only codes of the groups before it, so its slot would always "
                "be 0 (a transaction goes to the first group holding its MCC); drop it, or put "
                "it first",
            )
        names.append(label)
        groups.append(merged)
    out["by"], out["by_names"] = tuple(groups), tuple(names)
    return out


def _spelling(item: object) -> str:
    """An ``mcc`` item as the spec wrote it: the label of its distribution slot."""
    return item.strip() if isinstance(item, str) else str(item)


def _label_fill(c: _Collector, fill: Any, agg: str, path: str) -> Any:
    """An MCC code output (first / last / mode of the mcc column) is int64: so is its fill."""
    if fill is None or isinstance(fill, bool) or not isinstance(fill, (int, float)):
        return fill
    if not float(fill).is_integer():
        c.add(
            f"{path}.fill",
            f"{fill!r}: {agg} of the mcc column gives MCC codes (integers), so fill must be "
            "an integer",
        )
        return fill
    if not INT64[0] <= int(fill) <= INT64[1]:
        c.add(f"{path}.fill", f"{_short(fill)} is outside int64, the type of MCC codes")
        return fill
    return int(fill)


def _fill(c: _Collector, fill: object, agg: str | None, path: str) -> float | int | None:
    """A finite number (a whole int64 for counts): one meaning in every engine and the
    reference, so NaN, infinities and values beyond the output type are refused."""
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        hint = ""
        if isinstance(fill, str):
            try:
                float(fill)
                hint = " (YAML reads 1e30 as text: write 1.0e+30)"
            except ValueError:
                pass
        c.add(path, f"{_short(fill)} is not a number; fill is the value of an empty window{hint}")
        return None
    if isinstance(fill, float) and not math.isfinite(fill):
        c.add(path, f"{fill!r} is not allowed; fill must be a finite number")
        return None
    if agg in COUNTING:
        if isinstance(fill, float) and not fill.is_integer():
            c.add(path, f"{fill!r}: {agg} gives whole numbers, so fill must be an integer")
            return None
        whole = int(fill)
        if not INT64[0] <= whole <= INT64[1]:
            c.add(path, f"{_short(fill)} is outside int64, the type of {agg}")
            return None
        return whole
    try:
        as_float = float(fill)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float):
        c.add(path, f"{_short(fill)} is too large for a double, the type of {agg or 'this'}")
        return None
    return as_float if isinstance(fill, int) and abs(fill) > 2**53 else fill


def _window(c: _Collector, raw: object, path: str) -> Window | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    c.keys(obj, WINDOW_KEYS, path)
    kind = c.choice(obj.get("kind"), WINDOW_KINDS, f"{path}.kind")
    if kind is None:
        return None
    n_before = len(c.issues)
    which = "after" if kind == "next" else "before"  # for event windows
    for key, kinds in WINDOW_PARAMETERS.items():
        if key in obj and kind not in kinds:
            c.add(
                f"{path}.{key}",
                f"{key} applies only to window kinds {' and '.join(kinds)}, not {kind!r}; "
                "remove it",
            )

    period = length = None
    if kind in CALENDAR_KINDS:
        if "length" in obj:
            c.add(f"{path}.length", f"a {kind} window takes a calendar period, not a length")
        period = c.choice(obj.get("period"), PERIODS, f"{path}.period")
    elif kind in DURATION_KINDS:
        if "period" in obj:
            c.add(
                f"{path}.period",
                f"a {kind} window takes a length such as '7d' or '12h', not a calendar period "
                "(for calendar periods use kind expanding, period or next_period)",
            )
        length = parse_duration(obj.get("length"))
        if length is None:
            c.add(
                f"{path}.length",
                f"{_short(obj.get('length'))} is not a duration; expected a positive whole "
                "number and a unit (us, ms, s, m, h, d, w), such as '7d' or '12h'"
                f"{_unit_hint(obj.get('length'))}",
            )
        elif length > MAX_LENGTH_US:
            c.add(
                f"{path}.length",
                f"{_short(obj.get('length'))} is longer than 10,000 years, the longest window",
            )
    else:
        for key in ("period", "length"):
            if key in obj:
                c.add(
                    f"{path}.{key}",
                    f"a {kind} window is the n-th passing transaction {which} this row, with "
                    f"no {key}; choose the event with n (default 1)",
                )

    offset = 0
    if "offset" in obj and kind == "future":
        offset = _future_offset(c, obj["offset"], f"{path}.offset")
    elif "offset" in obj and kind == "next_period":
        offset = _period_offset(c, obj["offset"], f"{path}.offset", period)
    include_current = obj.get("include_current", True)
    if kind in WINDOW_PARAMETERS["include_current"] and not isinstance(include_current, bool):
        c.add(
            f"{path}.include_current",
            f"expected true or false (false leaves this row out), got {_show(include_current)}",
        )
    n = obj.get("n", 1)
    if kind in EVENT_KINDS and (
        isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N
    ):
        c.add(
            f"{path}.n",
            f"{n!r} is not allowed; n is a whole number from 1 to {MAX_N} "
            f"(1: the {kind} transaction, 2: the one {which} that)",
        )
    if len(c.issues) > n_before:
        return None
    return Window(
        kind, period=period, length=length, offset=offset,
        include_current=include_current if kind in ("expanding", "rolling") else True,
        n=n if kind in EVENT_KINDS else 1,
    )  # fmt: skip


def _future_offset(c: _Collector, raw: object, path: str) -> int:
    """A future window's offset: a duration like its length, 0 allowed (``0d`` or 0)."""
    us = parse_duration(raw, allow_zero=True)
    if us is None:
        c.add(
            path,
            f"{raw!r} is not a duration; a future window's offset is a whole number and a unit "
            f"(us, ms, s, m, h, d, w), such as '1d', or 0{_unit_hint(raw)}",
        )
        return 0
    if us > MAX_LENGTH_US:
        c.add(path, f"{_short(raw)} is longer than 10,000 years, the longest offset")
        return 0
    return us


def _period_offset(c: _Collector, raw: object, path: str, period: str | None) -> int:
    """A next_period window's offset: how many whole periods after the next one."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_OFFSET_PERIODS:
        unit = f"{period}s" if period else "periods"
        hint = ""
        if parse_duration(raw) is not None:
            hint = "; for a duration use a future window with a length and an offset"
        c.add(
            path,
            f"{raw!r} is not allowed; a next_period window's offset is a whole number of {unit} "
            f"from 0 (the next one) to {MAX_OFFSET_PERIODS}{hint}",
        )
        return 0
    return raw


def _calendar_unit(unit: str) -> bool:
    """A month or a year, which a duration cannot be: ``M`` (a month in pandas and most
    date libraries; ``m`` is a minute), ``mo``/``month``, ``y``/``year``...

    >>> [u for u in ("M", "m", "MS", "mo", "Months", "y", "yr", "years", "min") if _calendar_unit(u)]
    ['M', 'mo', 'Months', 'y', 'yr', 'years']
    """
    low = unit.lower()
    return unit == "M" or low.startswith("mo") or low in ("y", "yr", "yrs", "year", "years")


def _unit_hint(text: object) -> str:
    if isinstance(text, str) and (m := _DURATION.match(text)):
        if _calendar_unit(m.group(2)):
            return (
                f" ({m.group(2)!r} reads as a month or a year, which has no fixed length: use a "
                "calendar window, kind expanding, period or next_period with period month or "
                "year; a minute is 'm' or 'min')"
            )
        return did_you_mean(m.group(2), list(DURATION_UNITS))
    return ""


def _check_periods_output(c: _Collector, raw: list[Any], targets: list[Target]) -> None:
    periods = set()
    for i, t in enumerate(targets):
        if t.window.kind not in ("period", "next_period"):
            c.add(
                f"targets[{i}].window.kind",
                f"{t.window.kind!r} cannot be a per-period output; output 'periods' takes "
                "targets with window kind period or next_period",
            )
        elif t.window.period:
            periods.add(t.window.period)
    if len(periods) > 1:
        c.add(
            "output",
            f"'periods' needs one calendar period for all targets, got {', '.join(sorted(periods))}",
        )
