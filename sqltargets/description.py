"""Describe targets before training on them: statistics, redundancy and coverage over time.

:func:`describe` runs a spec over the input (or a random sample of its users), and returns a
:class:`Description`: Arrow tables of per-target statistics, the Spearman correlation matrix,
the share of users with a non-empty window per calendar month, and histogram bins, plus
:class:`Flag` s for targets that are always (or almost always) empty, constant, heavy-tailed,
or that say the same thing as another target. :mod:`sqltargets.report` renders it as text
(``str(d)``) and as one self-contained HTML file (``d.write_html(path)``, plots with
matplotlib from the ``plot`` extra).

Definitions (each statistic is over one *series*: a target, or one slot of a list target such
as ``top_k``, where ``top3[0]`` is the largest value):

- ``rows``: output rows described; ``non_null``: share of rows with a value (NaN counts as
  null); ``non_empty``: share of rows whose window holds at least one transaction passing
  the target's filter, found exactly by a companion ``count`` with the same window and filter
  computed in the same run (``sum`` and ``count`` give 0 on an empty window, so non-null
  does not tell); ``zero``: share of the non-null values equal to 0.
- ``mean``, ``std`` (population, ddof=0, NumPy's default), ``min``, ``max``, the quantiles
  ``p01`` … ``p99`` (linear interpolation, NumPy's default), and ``skew``: the Fisher-Pearson
  coefficient g1 = m3 / m2^1.5 with population moments (``scipy.stats.skew`` with
  ``bias=True``, its default); null when the values are constant. All over non-null values.
- ``correlation``: Spearman's rho between two series over the rows where both are non-null
  (Pearson's r of average ranks), on at most ``max_correlation_rows`` rows drawn at random
  with ``seed``; null for fewer than 3 such rows or a constant side.
- ``coverage``: per calendar month (in the spec's time zone) and target, of the users with
  a transaction that month, the share with at least one row that month whose window is
  non-empty. A month below half the target's median month is a ``coverage_drop`` flag
  (typically a future window running past the end of the data).

>>> import pyarrow as pa
>>> days = range(60)
>>> tx = pa.table({"u": [d % 3 for d in days], "t": pa.array(days, pa.int64()),
...                "a": [float(d % 7) for d in days], "m": [5411 if d % 2 else 5812 for d in days]})
>>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
...         "time": {"unit": "day", "origin": "2024-01-01"},
...         "targets": [
...             {"name": "grocery", "agg": "sum", "mcc": [5411],
...              "window": {"kind": "rolling", "length": "7d"}},
...             {"name": "same", "agg": "sum", "mcc": [5411],
...              "window": {"kind": "rolling", "length": "7d"}},
...             {"name": "never", "agg": "max", "mcc": [1234],
...              "window": {"kind": "rolling", "length": "7d"}}]}
>>> d = describe(spec, tx)
>>> d.stats.select(["series", "rows", "non_null", "non_empty", "max"]).to_pylist()[0]
{'series': 'grocery', 'rows': 60, 'non_null': 1.0, 'non_empty': 0.9666666666666667, 'max': 11.0}
>>> for f in d.flags:
...     print(f.kind, f.message)
always_empty never: always empty (no transaction passes its filter in any window)
redundant grocery and same: 1.00
>>> [(r["month"], r["share"]) for r in d.coverage.to_pylist() if r["target"] == "grocery"]
[('2024-01', 1.0), ('2024-02', 1.0)]
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import MAX_SEED, SourceError, SpecError, whole
from .execute.files import input_paths
from .report import (
    QUANTILES,
    REDUNDANT_ABOVE,
    Progress,
    _pct,
)

#: A pair needs this many rows where both are non-null before it is flagged.
MIN_PAIR_ROWS = 30
#: Targets non-empty in fewer than this share of rows are flagged as mostly empty.
MOSTLY_EMPTY_BELOW = 0.05
#: Series with |skewness| above this are flagged as heavy-tailed.
HEAVY_TAIL_SKEW = 2.0
#: Correlations run on at most this many rows, drawn at random (with the seed).
MAX_CORRELATION_ROWS = 200_000
#: Bins of a histogram (integer series with a small range get one bin per integer).
HIST_BINS = 40
#: Positive values spanning this ratio (p99 / p01 of |x| > 0) get a log axis.
LOG_SPAN = 100.0
#: A month whose coverage is below this share of the target's median month is a drop.
COVERAGE_DROP = 0.5

FLAG_KINDS = (
    "always_empty", "mostly_empty", "constant", "coverage_drop", "redundant", "heavy_tailed"
)  # fmt: skip

_UNIT_US = {"day": 86_400_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True)
class Flag:
    """Something a user should know about a target before training on it.

    ``kind`` is one of :data:`FLAG_KINDS`; ``targets`` the target(s) it is about; ``value``
    the number behind it (a share, a skewness, a correlation), ``message`` one line;
    ``series`` the series it was found on (the two of a redundant pair).
    """

    kind: str
    targets: tuple[str, ...]
    value: float | None
    message: str
    series: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Description:
    """What :func:`describe` found: Arrow tables, flags, and what was described.

    ``stats``: one row per series (see the module docstring for each column).
    ``correlation``: the Spearman matrix; column ``series``, then one column per series.
    ``coverage``: ``month`` (``YYYY-MM``), ``target``, ``users`` (active that month),
    ``non_empty_users``, ``share``; empty where months are unknown (a torch dataset).
    ``histograms``: ``target``, ``series``, ``scale`` (``linear``, ``log`` or ``symlog``),
    ``linthresh`` (symlog only), ``left``, ``right``, ``count``.
    ``user_sample``: the users drawn with ``users=``, sorted; None when all were described.

    ``str(d)`` is the terminal report; :meth:`to_html` / :meth:`write_html` the HTML one.
    """

    stats: pa.Table
    correlation: pa.Table
    coverage: pa.Table
    histograms: pa.Table
    flags: tuple[Flag, ...]
    spec_text: str
    spec_name: str
    source_text: str
    users: int
    total_users: int
    rows: int
    correlation_rows: int
    seed: int
    time_range: tuple[str, str] | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    targets: tuple[str, ...] = field(default=())
    user_sample: tuple[Any, ...] | None = None
    #: real paths of the input described (its files and folders): a report never goes there
    inputs: tuple[str, ...] = ()

    def flagged(self, kind: str) -> list[Flag]:
        """The flags of one kind (one of :data:`FLAG_KINDS`)."""
        if kind not in FLAG_KINDS:
            raise ValueError(f"flag kind {kind!r}: expected one of {', '.join(FLAG_KINDS)}")
        return [f for f in self.flags if f.kind == kind]

    def to_text(self) -> str:
        """The terminal report: what was described, statistics, flags, coverage."""
        from .report import text

        return text(self)

    def to_html(self, *, plots: bool | None = None, progress: Progress | None = None) -> str:
        """One self-contained HTML page (images embedded as base64 PNG). ``plots=None``
        draws them when matplotlib is installed, else the page says how to get them."""
        from .report import html_page

        return html_page(self, plots=plots, progress=progress)

    def write_html(
        self, path: str | Path, *, plots: bool | None = None, progress: Progress | None = None
    ) -> Path:
        """Write :meth:`to_html` to ``path``; returns the path."""
        from .report import write_html

        return write_html(self, path, plots=plots, progress=progress)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:  # Jupyter
        return self.to_html()


# ---------------------------------------------------------------------------------------------
# the verb


def describe(
    spec: Any,
    source: Any,
    users: int | None = None,
    *,
    seed: int = 0,
    max_correlation_rows: int = MAX_CORRELATION_ROWS,
    engine: str = "native",
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: Progress | None = None,
) -> Description:
    """Describe the targets of ``spec`` over ``source``, on ``users`` users drawn at random
    with ``seed`` (all users by default).

    ``source`` is anything :func:`sqltargets.generate` reads, or a
    :class:`sqltargets.torch.TargetDataset` / ``StreamingTargetDataset`` (then ``spec`` may
    be None; with a dataset the non-empty share and the coverage over time are not
    available: an item carries no window counts, and its ``time`` is relative to the
    user's first event). ``progress(stage, done, total)`` is called as the work goes on.

    >>> import pyarrow as pa
    >>> tx = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 0], pa.int64()),
    ...                "a": [1.0, 3.0, 2.0], "m": [1, 1, 1]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "time": {"unit": "day"},
    ...         "targets": [{"name": "n", "agg": "count",
    ...                      "window": {"kind": "expanding", "period": "year"}}]}
    >>> d = describe(spec, tx, users=1, seed=3)
    >>> d.users, d.total_users, d.stats.column("rows").to_pylist()
    (1, 2, [2])
    """
    t0 = time.monotonic()
    report = progress or _no_progress
    if users is not None:
        whole("users", users, 1)
    whole("seed", seed, 0, MAX_SEED)
    whole("max_correlation_rows", max_correlation_rows, 3)
    if _is_dataset(source):
        series, meta = _from_dataset(spec, source, users, seed, report)
    else:
        series, meta = _from_generate(
            spec, source, users, seed, report, engine=engine, threads=threads,
            memory_limit=memory_limit,
        )  # fmt: skip
    return _assemble(series, meta, seed, max_correlation_rows, report, t0)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class _Series:
    """One column to describe: a target, or one slot of a list target."""

    name: str
    target: str
    slot: int | None
    agg: str
    window: str
    values: np.ndarray  # float64, NaN where null
    non_empty: np.ndarray | None  # bool per row, None when unknown


@dataclass
class _Meta:
    spec_text: str
    spec_name: str
    source_text: str
    users: int
    total_users: int
    rows: int
    targets: tuple[str, ...]
    user_codes: np.ndarray | None = None  # int per row
    month_codes: np.ndarray | None = None  # months since 1970-01 per row, NO_MONTH if unknown
    time_range: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    user_sample: tuple[Any, ...] | None = None
    inputs: tuple[str, ...] = ()  # real paths of the input's files and folders


# ---------------------------------------------------------------------------------------------
# from a spec and its input, through generate


def _from_generate(
    spec: Any,
    source: Any,
    users: int | None,
    seed: int,
    report: Progress,
    *,
    engine: str,
    threads: int | None,
    memory_limit: str | None,
) -> tuple[list[_Series], _Meta]:
    import sqltargets

    if spec is None:
        raise SpecError("describe: a spec is needed (only a torch dataset carries its own)")
    ts = sqltargets.load(spec)
    ucol = ts.columns.user
    report("reading input", 0, 1)
    total_users: int | None = None
    run_on = source
    chosen = None
    if users is not None:
        run_on, chosen, total_users = _sample_users(source, ucol, users, seed)
    report("reading input", 1, 1)

    full, nonempty_of = _with_companions(ts)
    rows_done = [0, 0]

    def started(total: int) -> None:
        rows_done[1] = total
        report("computing targets", 0, total)

    reader = sqltargets.generate_batches(
        full, run_on, on_total=started, engine=engine, threads=threads,
        memory_limit=memory_limit,
    )  # fmt: skip
    batches = []
    try:
        for batch in reader:
            batches.append(batch)
            rows_done[0] += batch.num_rows
            report("computing targets", rows_done[0], max(rows_done[1], rows_done[0]))
    finally:
        reader.close()
    out = pa.Table.from_batches(batches, schema=reader.schema).combine_chunks()
    report("computing targets", out.num_rows, out.num_rows)

    user_col = out.column(ucol)
    uniques = pc.unique(user_col)
    described = len(uniques)
    if total_users is None:
        total_users = described
    codes = pc.index_in(user_col, value_set=uniques).to_numpy(zero_copy_only=False)
    time_col = out.column(ts.columns.time) if ts.output == "events" else out.column("period_start")
    months = _month_codes(time_col, ts)

    series: list[_Series] = []
    masks: dict[str, np.ndarray] = {}  # targets sharing a window and filter share one mask
    for t in ts.targets:
        col = out.column(t.name)
        companion = nonempty_of[t.name]
        if companion not in masks:
            masks[companion] = _as_float(out.column(companion)) > 0
        non_empty = masks[companion]
        window = _window_text(t)
        for slot, values in _slots(col):
            name = t.name if slot is None else f"{t.name}[{slot}]"
            series.append(_Series(name, t.name, slot, t.agg, window, values, non_empty))
    meta = _Meta(
        spec_text=_spec_text(spec, ts),
        spec_name=str(spec) if isinstance(spec, (str, Path)) else "(spec given as Python data)",
        source_text=_source_text(source),
        inputs=tuple(input_paths(source)),
        users=described,
        total_users=total_users,
        rows=out.num_rows,
        targets=tuple(t.name for t in ts.targets),
        user_codes=np.asarray(codes, dtype=np.int64),
        month_codes=months,
        time_range=_time_range(time_col),
        user_sample=None if chosen is None else tuple(chosen),
    )
    if users is not None:
        meta.notes.append(
            f"{described:,} of {total_users:,} users drawn at random (seed {seed}); row ids "
            "are positions in the sampled rows"
        )
    return series, meta


def _with_companions(ts: Any) -> tuple[Any, dict[str, str]]:
    """The spec plus one ``count`` per distinct (window, filter), to tell empty windows;
    and, per target, the column holding its window's count.

    Built with ``dataclasses.replace`` on the validated targets, so that every window and
    filter setting (including ones added later) carries over unchanged; a ``count`` target
    without ``fill`` is its own companion."""
    taken = {t.name for t in ts.targets}
    by_key: dict[tuple[Any, ...], str] = {}
    extra = []
    nonempty_of: dict[str, str] = {}
    for t in ts.targets:
        if t.agg == "count" and getattr(t, "fill", None) is None:
            nonempty_of[t.name] = t.name
            continue
        key = (t.window, getattr(t, "mcc", None), getattr(t, "where", None))
        if key not in by_key:
            name = f"_describe_nonempty_{len(by_key)}"
            while name in taken:
                name += "_"
            by_key[key] = name
            extra.append(replace(t, name=name, agg="count", k=None, fill=None))
        nonempty_of[t.name] = by_key[key]
    return replace(ts, targets=(*ts.targets, *extra)), nonempty_of


def _sample_users(source: Any, ucol: str, n: int, seed: int) -> tuple[pa.Table, list[Any], int]:
    """The rows of ``n`` users drawn as :func:`sqltargets.verify` draws them, in input
    order; the users drawn; how many users the input has."""
    import pyarrow.parquet as pq

    files = _parquet_files(source)
    if files is not None:
        user_values = pa.chunked_array(
            [pq.read_table(f, columns=[ucol]).column(ucol) for f in files]
        )
    else:
        table = _as_table(source)
        if ucol not in table.column_names:
            raise SourceError(f"input has no column {ucol!r} (the spec's user column)")
        user_values = table.column(ucol)
    all_users = pc.unique(user_values.drop_null()).to_pylist()
    chosen = sorted(random.Random(seed).sample(all_users, min(n, len(all_users))))
    value_set = pa.array(chosen, type=user_values.type)
    if files is not None:
        parts = [pq.read_table(f) for f in files]
        parts = [p.filter(pc.is_in(p.column(ucol), value_set=value_set)) for p in parts]
        subset = pa.concat_tables(parts, promote_options="default")
    else:
        subset = table.filter(pc.is_in(table.column(ucol), value_set=value_set))
    return subset, chosen, len(all_users)


def _parquet_files(source: Any) -> list[str] | None:
    """The Parquet files of a path, glob or folder in name order (as generate reads them);
    None when ``source`` is not a path."""
    from .execute.files import list_input

    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str):
        return None
    # the files every run reads (a store or an output inside the folder is skipped)
    return list(list_input(source).files)


def _as_table(source: Any) -> pa.Table:
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatchReader):
        return source.read_all()
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    if type(source).__module__.startswith("pandas"):
        return pa.Table.from_pandas(source, preserve_index=False)
    raise SourceError(
        f"describe: cannot sample users of a {type(source).__name__}; pass a Parquet path, "
        "an Arrow table or a pandas DataFrame"
    )


def _month_codes(col: pa.ChunkedArray, ts: Any) -> np.ndarray:
    """Calendar month of each row (months since 1970-01, in the spec's time zone; negative
    before 1970); :data:`NO_MONTH` where the time is null."""
    typ = col.type
    if pa.types.is_timestamp(typ):
        if typ.tz is not None:
            col = pc.local_timestamp(col.cast(pa.timestamp(typ.unit, tz=ts.timezone)))
        dt = col.to_numpy(zero_copy_only=False)
    elif pa.types.is_date(typ):
        dt = col.to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(typ):
        tspec = getattr(ts, "time", None)
        unit = getattr(tspec, "unit", None) or "s"
        origin = np.datetime64(getattr(tspec, "origin", "1970-01-01"), "us")
        raw = pc.cast(col, pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
        null = raw == np.iinfo(np.int64).min
        dt = origin + (np.where(null, 0, raw) * _UNIT_US[unit]).astype("timedelta64[us]")
        dt = np.where(null, np.datetime64("NaT"), dt)
    else:
        return np.full(len(col), NO_MONTH, dtype=np.int64)
    months = np.asarray(dt).astype("datetime64[M]")
    codes = months.astype(np.int64)
    codes[np.isnat(months)] = NO_MONTH
    return codes


#: A row's month code when its time is unknown (months before 1970 are negative codes).
NO_MONTH = np.iinfo(np.int64).min


def _time_range(col: pa.ChunkedArray) -> tuple[str, str] | None:
    lo, hi = pc.min(col).as_py(), pc.max(col).as_py()
    if lo is None:
        return None
    return str(lo), str(hi)


def _window_text(t: Any) -> str:
    w = t.window
    try:
        return str(w.describe())
    except AttributeError:
        return str(getattr(w, "kind", w))


def _spec_text(spec: Any, ts: Any) -> str:
    if isinstance(spec, (str, Path)):
        try:
            return Path(spec).read_text()
        except OSError:
            pass
    if isinstance(spec, dict):
        import yaml

        return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    lines = [f"columns: user={ts.columns.user}, time={ts.columns.time}", "targets:"]
    for t in ts.targets:
        parts = [f"{t.agg} over {_window_text(t)}"]
        if getattr(t, "where", None):
            parts.append(f"where {t.where}")
        if getattr(t, "mcc", None):
            parts.append(f"mcc {', '.join(f'{a}-{b}' if a != b else str(a) for a, b in t.mcc)}")
        lines.append(f"  {t.name}: {'; '.join(parts)}")
    return "\n".join(lines) + "\n"


def _source_text(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, pa.Table):
        return f"an Arrow table of {source.num_rows:,} rows"
    return f"a {type(source).__name__}"


def _as_float(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NaN where null."""
    arr = pc.cast(col, pa.float64())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _slots(col: pa.ChunkedArray) -> list[tuple[int | None, np.ndarray]]:
    """A scalar column as one series; a list column as one series per slot (slot i null
    where the list is null or shorter)."""
    typ = col.type
    if not (
        pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)
    ):
        return [(None, _as_float(col))]
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(typ):
        arr = arr.cast(pa.list_(typ.value_type))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)[:-1]
    flat = _as_float(arr.values)
    width = int(lengths.max()) if lengths.size else 0
    out = []
    for i in range(width):
        has = lengths > i
        values = np.full(len(arr), np.nan)
        values[has] = flat[offsets[has] + i]
        out.append((i, values))
    return out


# ---------------------------------------------------------------------------------------------
# from a torch dataset


def _is_dataset(source: Any) -> bool:
    return hasattr(source, "target_names") and hasattr(source, "feature_names")


def _from_dataset(
    spec: Any, ds: Any, users: int | None, seed: int, report: Progress
) -> tuple[list[_Series], _Meta]:
    import sqltargets

    names = list(ds.target_names)
    info: dict[str, tuple[str, str]] = {}
    spec_text = "(the dataset's spec was not given)\n"
    if spec is not None:
        ts = sqltargets.load(spec)
        info = {t.name: (t.agg, _window_text(t)) for t in ts.targets}
        spec_text = _spec_text(spec, ts)
    all_users = list(ds.users)
    if users is None:
        chosen = None
    else:
        chosen = set(random.Random(seed).sample(all_users, min(users, len(all_users))))
    items = _dataset_items(ds, all_users, chosen)
    total = len(all_users) if chosen is None else len(chosen)
    collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    seen = 0
    report("reading the dataset", 0, total)
    for item in items:
        for n in names:
            collected[n].append(np.asarray(item[n].detach().cpu().numpy(), dtype=np.float64))
        seen += 1
        report("reading the dataset", seen, total)
    series: list[_Series] = []
    rows = 0
    for n in names:
        parts = collected[n]
        agg, window = info.get(n, ("", ""))
        if parts and parts[0].ndim == 2:
            values = np.concatenate(parts, axis=0) if parts else np.empty((0, 1))
            rows = values.shape[0]
            for i in range(values.shape[1]):
                series.append(_Series(f"{n}[{i}]", n, i, agg, window, values[:, i].copy(), None))
        else:
            values = np.concatenate(parts) if parts else np.empty(0)
            rows = values.shape[0]
            series.append(_Series(n, n, None, agg, window, values, None))
    meta = _Meta(
        spec_text=spec_text,
        spec_name=str(spec) if isinstance(spec, (str, Path)) else "(dataset)",
        source_text=repr(ds),
        users=seen,
        total_users=len(all_users),
        rows=rows,
        targets=tuple(names),
    )
    meta.notes.append(
        "non-empty share: not available for a dataset (its items carry no window counts); "
        "an always-empty target shows as never non-null, or as constant 0 for sum and count"
    )
    meta.notes.append(
        "coverage over time: not available for a dataset (an item's time is seconds since "
        "the user's first event); describe the spec and its input for it"
    )
    if chosen is not None:
        meta.user_sample = tuple(sorted(chosen))
        meta.notes.append(f"{seen:,} of {len(all_users):,} users drawn at random (seed {seed})")
    return series, meta


def _dataset_items(ds: Any, all_users: list[Any], chosen: set[Any] | None) -> Any:
    import torch.utils.data as tud

    if isinstance(ds, tud.IterableDataset):
        for item in ds:
            if chosen is None or _item_user(item) in chosen:
                yield item
        return
    for i, u in enumerate(all_users):
        if chosen is None or u in chosen:
            yield ds[i]


def _item_user(item: Any) -> Any:
    u = item["user"]
    return u.item() if hasattr(u, "item") else u


# ---------------------------------------------------------------------------------------------
# statistics, correlations, coverage, histograms, flags


def _assemble(
    series: list[_Series],
    meta: _Meta,
    seed: int,
    max_corr_rows: int,
    report: Progress,
    t0: float,
) -> Description:
    stats = _stats_table(series, report)
    corr, pair_rows, corr_rows = _correlations(series, meta.rows, max_corr_rows, seed, report)
    coverage = _coverage(series, meta, report)
    hist = _histograms(series)
    flags = _flags(series, stats, corr, pair_rows, meta)
    drops = _coverage_drops(coverage)
    at = sum(1 for f in flags if FLAG_KINDS.index(f.kind) < FLAG_KINDS.index("coverage_drop"))
    flags[at:at] = drops
    notes = list(meta.notes)
    if corr_rows < meta.rows:
        notes.append(
            f"correlations on {corr_rows:,} of {meta.rows:,} rows drawn at random (seed {seed}), "
            f"at most max_correlation_rows={max_corr_rows:,}"
        )
    names = [s.name for s in series]
    corr_table = pa.table(
        {"series": pa.array(names, pa.string())}
        | {n: pa.array(corr[:, i], pa.float64(), mask=np.isnan(corr[:, i])) for i, n in
           enumerate(names)}
    )  # fmt: skip
    return Description(
        stats=stats,
        correlation=corr_table,
        coverage=coverage,
        histograms=hist,
        flags=tuple(flags),
        spec_text=meta.spec_text,
        spec_name=meta.spec_name,
        source_text=meta.source_text,
        users=meta.users,
        total_users=meta.total_users,
        rows=meta.rows,
        correlation_rows=corr_rows,
        seed=seed,
        time_range=meta.time_range,
        notes=tuple(notes),
        seconds=time.monotonic() - t0,
        targets=meta.targets,
        user_sample=meta.user_sample,
        inputs=meta.inputs,
    )


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def series_stats(values: np.ndarray) -> dict[str, float | None]:
    """See :func:`_series_stats`; overflow to inf or NaN (values near ±1e308, infinities)
    is the statistic's value, not a warning."""
    with np.errstate(all="ignore"):
        return _series_stats(values)


def _series_stats(values: np.ndarray) -> dict[str, float | None]:
    """The value statistics of one series (float64, NaN where null): ``mean`` … ``skew``.

    >>> s = series_stats(np.array([1.0, 2.0, 3.0, 10.0, np.nan]))
    >>> s["mean"], s["p50"], round(s["skew"], 4)
    (4.0, 2.5, 1.0182)
    """
    x = values[~np.isnan(values)]
    out: dict[str, float | None] = dict.fromkeys(
        ["mean", "std", "min", *(f"p{q:02d}" for q in QUANTILES), "max", "skew"]
    )
    if x.size == 0:
        return out
    lo, hi = float(x.min()), float(x.max())
    mean = float(x.mean())
    out["min"], out["max"], out["mean"] = lo, hi, mean
    qs = np.quantile(x, [q / 100 for q in QUANTILES])
    for q, v in zip(QUANTILES, qs):
        out[f"p{q:02d}"] = float(v)
    if lo == hi:
        out["std"], out["mean"] = 0.0, lo
        return out
    d = x - mean
    m2 = float(np.mean(d * d))
    m3 = float(np.mean(d * d * d))
    out["std"] = math.sqrt(m2)
    out["skew"] = _num(m3 / m2**1.5) if m2 > 0 else None
    return out


def _stats_table(series: list[_Series], report: Progress) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for i, s in enumerate(series):
        report("statistics", i, len(series))
        n = len(s.values)
        valid = ~np.isnan(s.values)
        nn = int(valid.sum())
        row: dict[str, Any] = {
            "series": s.name,
            "target": s.target,
            "slot": s.slot,
            "agg": s.agg,
            "window": s.window,
            "rows": n,
            "non_null": nn / n if n else None,
            "non_empty": float(s.non_empty.mean()) if s.non_empty is not None and n else None,
            "zero": float(np.count_nonzero(s.values[valid] == 0)) / nn if nn else None,
        }
        row |= series_stats(s.values)
        rows.append(row)
    report("statistics", len(series), len(series))
    schema = pa.schema(
        [("series", pa.string()), ("target", pa.string()), ("slot", pa.int32()),
         ("agg", pa.string()), ("window", pa.string()), ("rows", pa.int64()),
         ("non_null", pa.float64()), ("non_empty", pa.float64()), ("zero", pa.float64()),
         ("mean", pa.float64()), ("std", pa.float64()), ("min", pa.float64())]
        + [(f"p{q:02d}", pa.float64()) for q in QUANTILES]
        + [("max", pa.float64()), ("skew", pa.float64())]
    )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing their average rank (as ``scipy.stats.rankdata``).

    >>> average_ranks(np.array([10.0, 20.0, 10.0, 5.0])).tolist()
    [2.5, 4.0, 2.5, 1.0]
    """
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = _sorted_ranks(x[order])
    return ranks


def _sorted_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks of values already sorted ascending."""
    n = len(v)
    if n == 0:
        return np.empty(0)
    starts = np.concatenate([[0], np.flatnonzero(v[1:] != v[:-1]) + 1])
    ends = np.concatenate([starts[1:], [n]])
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    if den == 0:
        return math.nan
    return max(-1.0, min(1.0, float(a @ b) / den))


def _correlations(
    series: list[_Series], rows: int, max_rows: int, seed: int, report: Progress
) -> tuple[np.ndarray, np.ndarray, int]:
    """Spearman matrix over pairwise-complete rows; the pairwise row counts; rows used."""
    k = len(series)
    if rows > max_rows:
        take = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    else:
        take = None
    cols = [s.values if take is None else s.values[take] for s in series]
    used = rows if take is None else max_rows
    valid = [~np.isnan(c) for c in cols]
    # the order of each column once; the ranks of any subset are then an O(n) pass
    orders = [np.argsort(c, kind="stable") for c in cols]  # NaN sort last
    cache: dict[tuple[int, int], np.ndarray] = {}

    def ranks(i: int, mask: np.ndarray, owner: int | None) -> np.ndarray:
        if owner is not None and (i, owner) in cache:
            return cache[(i, owner)]
        o = orders[i][mask[orders[i]]]
        r = np.empty(len(o))
        r[(np.cumsum(mask) - 1)[o]] = _sorted_ranks(cols[i][o])
        if owner is not None:
            cache[(i, owner)] = r
        return r

    corr = np.full((k, k), np.nan)
    counts = np.zeros((k, k), dtype=np.int64)
    full = [bool(v.all()) for v in valid]
    nvalid = [int(v.sum()) for v in valid]
    total = k * (k - 1) // 2
    done = 0
    for i in range(k):
        counts[i, i] = nvalid[i]
        if nvalid[i] >= 3 and _not_constant(cols[i], valid[i]):
            corr[i, i] = 1.0
        for j in range(i + 1, k):
            both = valid[i] & valid[j]
            n = int(both.sum())
            counts[i, j] = counts[j, i] = n
            done += 1
            if done % 16 == 0:
                report("correlations", done, total)
            if n < 3:
                continue
            # name whose own mask equals `both`, so ranks over it can be cached
            if full[j] or n == nvalid[i]:
                owner = i
            elif full[i] or n == nvalid[j]:
                owner = j
            else:
                owner = None
            r = _pearson(ranks(i, both, owner), ranks(j, both, owner))
            corr[i, j] = corr[j, i] = r
    report("correlations", total, total)
    return corr, counts, used


def _not_constant(x: np.ndarray, valid: np.ndarray) -> bool:
    v = x[valid]
    return bool(v.size) and bool(v.min() != v.max())


def _coverage(series: list[_Series], meta: _Meta, report: Progress) -> pa.Table:
    schema = pa.schema(
        [("month", pa.string()), ("target", pa.string()), ("users", pa.int64()),
         ("non_empty_users", pa.int64()), ("share", pa.float64())]
    )  # fmt: skip
    if meta.user_codes is None or meta.month_codes is None or not series:
        return schema.empty_table()
    ok = meta.month_codes != NO_MONTH
    months = meta.month_codes[ok]
    if months.size == 0:
        return schema.empty_table()
    n_users = int(meta.user_codes.max()) + 1
    first = int(months.min())
    key = (months - first) * n_users + meta.user_codes[ok]
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.concatenate([[0], np.flatnonzero(sk[1:] != sk[:-1]) + 1])
    group_month = sk[starts] // n_users  # one entry per active (user, month)
    n_months = int(group_month.max()) + 1
    active = np.bincount(group_month, minlength=n_months)
    labels = [str(np.datetime64(first + m, "M")) for m in range(n_months)]
    cols: dict[str, list[Any]] = {n: [] for n in schema.names}
    per_target = {}
    for s in series:
        if s.target not in per_target and s.non_empty is not None:
            per_target[s.target] = s.non_empty
    for ti, (target, ne) in enumerate(per_target.items()):
        report("coverage", ti, len(per_target))
        hit = np.logical_or.reduceat(ne[ok][order], starts)
        users = np.bincount(group_month[hit], minlength=n_months)
        for m in range(n_months):
            if active[m] == 0:
                continue
            cols["month"].append(labels[m])
            cols["target"].append(target)
            cols["users"].append(int(active[m]))
            cols["non_empty_users"].append(int(users[m]))
            cols["share"].append(float(users[m]) / float(active[m]))
    report("coverage", len(per_target), len(per_target))
    return pa.table(cols, schema=schema)


def coverage_drops(shares: dict[str, float]) -> list[str]:
    """The months (of ``{month: share}``) whose share is below :data:`COVERAGE_DROP` times
    the median month's; none with fewer than 3 months or a median of 0.

    >>> coverage_drops({"2024-01": 0.98, "2024-02": 0.99, "2024-03": 0.97, "2024-04": 0.0})
    ['2024-04']
    """
    if len(shares) < 3:
        return []
    median = float(np.median(list(shares.values())))
    if median <= 0:
        return []
    return [m for m, v in shares.items() if v < COVERAGE_DROP * median]


def _coverage_drops(coverage: pa.Table) -> list[Flag]:
    by_target: dict[str, dict[str, float]] = {}
    for r in coverage.to_pylist():
        by_target.setdefault(r["target"], {})[r["month"]] = r["share"]
    flags = []
    for target, shares in by_target.items():
        months = coverage_drops(shares)
        if not months:
            continue
        low = min(months, key=lambda m: shares[m])
        median = float(np.median(list(shares.values())))
        where = f"in {low}" if len(months) == 1 else f"in {len(months)} months, lowest in {low}"
        flags.append(
            Flag(
                "coverage_drop",
                (target,),
                shares[low],
                f"{target}: coverage falls to {_pct(shares[low])} {where} (median month "
                f"{_pct(median)} of active users)",
            )
        )
    return flags


def _symlog(x: np.ndarray, linthresh: float) -> np.ndarray:
    """matplotlib's symlog transform (base 10, linscale 1), so that bins computed here are
    of equal width on a symlog axis."""
    adj = 1.0 / (1.0 - 0.1)
    ax = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            ax <= linthresh, x * adj, np.sign(x) * linthresh * (adj + np.log10(ax / linthresh))
        )
    return out


def _symlog_inverse(y: np.ndarray, linthresh: float) -> np.ndarray:
    adj = 1.0 / (1.0 - 0.1)
    ay = np.abs(y)
    lin = linthresh * adj
    return np.where(
        ay <= lin, y / adj, np.sign(y) * linthresh * np.power(10.0, ay / linthresh - adj)
    )


def choose_scale(x: np.ndarray) -> tuple[str, float | None]:
    """The histogram axis for non-null values ``x``.

    ``linear`` for integers with a small range (counts) and for values that neither span
    orders of magnitude nor are heavy-tailed; otherwise ``log`` when none is negative (zeros
    are counted, not drawn), ``symlog`` with negatives too (linear within ± the returned
    threshold, a power of ten near the 5th percentile of |x| > 0). Spanning orders of
    magnitude: p99 / p01 of |x| > 0 above :data:`LOG_SPAN`; heavy-tailed: |skewness| above
    :data:`HEAVY_TAIL_SKEW` with the largest |x| over 10 times the median |x| > 0.

    >>> choose_scale(np.array([0.0, 1.0, 2.0, 3.0]))
    ('linear', None)
    >>> choose_scale(np.array([0.0, 0.5, 3.0, 40.0, 900.0, 20000.0]))
    ('log', None)
    >>> choose_scale(np.array([-300.0, 0.5, 3.0, 40.0, 900.0, 20000.0]))
    ('symlog', 1.0)
    """
    nz = np.abs(x[x != 0])
    if nz.size < 2:
        return "linear", None
    lo, hi = float(x.min()), float(x.max())
    if np.all(x == np.round(x)) and hi - lo <= 2 * HIST_BINS:
        return "linear", None
    p01, p50, p99 = np.quantile(nz, [0.01, 0.5, 0.99])
    spans = p01 > 0 and p99 / p01 > LOG_SPAN
    skew = series_stats(x)["skew"]
    tailed = skew is not None and abs(skew) > HEAVY_TAIL_SKEW and nz.max() > 10 * p50
    if not (spans or tailed):
        return "linear", None
    if lo < 0:
        return "symlog", float(10 ** math.floor(math.log10(np.quantile(nz, 0.05))))
    return "log", None


def _edges(x: np.ndarray, scale: str, linthresh: float | None) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if scale in ("log", "symlog") and lo < hi:
        if scale == "log":
            edges = np.logspace(math.log10(lo), math.log10(hi), HIST_BINS + 1)
        else:
            assert linthresh is not None
            t = _symlog(np.array([lo, hi]), linthresh)
            edges = _symlog_inverse(np.linspace(t[0], t[1], HIST_BINS + 1), linthresh)
        edges[0], edges[-1] = lo, hi  # exact, so that no value falls outside by rounding
        return edges
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    if np.all(x == np.round(x)) and hi - lo <= 2 * HIST_BINS:
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    # (as weights of the ends: hi - lo overflows when the values span more than a double)
    f = np.arange(HIST_BINS + 1) / HIST_BINS
    edges = lo * (1 - f) + hi * f
    edges[0], edges[-1] = lo, hi
    return np.maximum.accumulate(edges)


def _histograms(series: list[_Series]) -> pa.Table:
    """Bins per target, shared by its slots; counts per series."""
    cols: dict[str, list[Any]] = {
        k: [] for k in ("target", "series", "scale", "linthresh", "left", "right", "count")
    }
    by_target: dict[str, list[_Series]] = {}
    for s in series:
        by_target.setdefault(s.target, []).append(s)
    for target, group in by_target.items():
        # (finite values only: an infinity has no bin; the stats count it)
        pooled = np.concatenate([s.values[np.isfinite(s.values)] for s in group])
        if pooled.size == 0:
            continue
        scale, linthresh = choose_scale(pooled)
        if scale != "linear":
            pooled = pooled[pooled != 0]
        edges = _edges(pooled, scale, linthresh)
        for s in group:
            x = s.values[np.isfinite(s.values)]
            if scale != "linear":  # zeros are counted in the stats, not drawn on a log axis
                x = x[x != 0]
            counts, _ = np.histogram(x, bins=edges)
            for b in range(len(counts)):
                cols["target"].append(target)
                cols["series"].append(s.name)
                cols["scale"].append(scale)
                cols["linthresh"].append(linthresh)
                cols["left"].append(float(edges[b]))
                cols["right"].append(float(edges[b + 1]))
                cols["count"].append(int(counts[b]))
    schema = pa.schema(
        [("target", pa.string()), ("series", pa.string()), ("scale", pa.string()),
         ("linthresh", pa.float64()), ("left", pa.float64()), ("right", pa.float64()),
         ("count", pa.int64())]
    )  # fmt: skip
    return pa.table(cols, schema=schema)


def _flags(
    series: list[_Series],
    stats: pa.Table,
    corr: np.ndarray,
    pair_rows: np.ndarray,
    meta: _Meta,
) -> list[Flag]:
    rows = stats.to_pylist()
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_target.setdefault(r["target"], []).append(r)
    flags: dict[str, list[Flag]] = {k: [] for k in FLAG_KINDS}
    dead: set[str] = set()
    for target, group in by_target.items():
        first = group[0]
        n = first["rows"]
        if n == 0:
            continue
        ne = first["non_empty"]
        nn = max(r["non_null"] or 0.0 for r in group)
        if ne == 0.0 or (ne is None and nn == 0.0):
            dead.add(target)
            why = (
                "no transaction passes its filter in any window"
                if ne is not None
                else "never has a value"
            )
            flags["always_empty"].append(
                Flag("always_empty", (target,), 0.0, f"{target}: always empty ({why})")
            )
            continue
        if ne is not None and ne < MOSTLY_EMPTY_BELOW:
            flags["mostly_empty"].append(
                Flag(
                    "mostly_empty",
                    (target,),
                    ne,
                    f"{target}: mostly empty (a non-empty window in {_pct(ne)} of rows)",
                )
            )
        if all(r["min"] is not None and r["min"] == r["max"] for r in group):
            dead.add(target)
            flags["constant"].append(
                Flag(
                    "constant",
                    (target,),
                    first["min"],
                    f"{target}: constant (always {first['min']:g})",
                )
            )
            continue
        skews = [(abs(r["skew"]), r) for r in group if r["skew"] is not None]
        if skews:
            worst = max(skews, key=lambda p: p[0])[1]
            if abs(worst["skew"]) > HEAVY_TAIL_SKEW:
                where = f" in slot {worst['slot']}" if worst["slot"] is not None else ""
                cure = "log1p" if (worst["min"] or 0) >= 0 else "a signed log, sign(x)·log1p(|x|),"
                flags["heavy_tailed"].append(
                    Flag(
                        "heavy_tailed",
                        (target,),
                        worst["skew"],
                        f"{target}: heavy-tailed (skewness {worst['skew']:.1f}{where}); "
                        f"{cure} would tame it",
                    )
                )
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    k = len(series)
    for i in range(k):
        for j in range(i + 1, k):
            a, b = series[i].target, series[j].target
            r = corr[i, j]
            if a == b or a in dead or b in dead or np.isnan(r) or pair_rows[i, j] < MIN_PAIR_ROWS:
                continue
            if abs(r) > REDUNDANT_ABOVE and abs(r) > abs(best.get((a, b), (0.0, 0, 0))[0]):
                best[(a, b)] = (float(r), i, j)
    for (a, b), (r, i, j) in sorted(best.items(), key=lambda p: -abs(p[1][0])):
        sa, sb = series[i].name, series[j].name
        flags["redundant"].append(Flag("redundant", (a, b), r, f"{sa} and {sb}: {r:.2f}", (sa, sb)))
    return [f for kind in FLAG_KINDS for f in flags[kind]]
