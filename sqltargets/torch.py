"""PyTorch datasets: one item per user, their events in event order, features and targets.

Two datasets over the same machinery, and one collate function:

- :class:`TargetDataset` is map-style. It computes every target once, in ``__init__``, a
  chunk of users at a time, and keeps the results as flat tensors; ``ds[i]`` only slices.
- :class:`StreamingTargetDataset` is an ``IterableDataset`` that computes targets on the
  fly, a chunk of users at a time, inside each DataLoader worker. Users are sharded over
  the workers (a user's events are never split), so every user comes exactly once per
  epoch; ``shuffle=True`` permutes the user order every epoch. Each process opens its own
  DuckDB connection lazily (few threads, a memory limit), so the dataset pickles and works
  with the fork, spawn and forkserver start methods.
- :func:`collate` pads a batch to its longest sequence (or truncates it to ``max_len``),
  adds ``mask``, pads ``row_id`` with -1, targets with NaN and features with 0.

An item (:class:`Item`, a dict) holds ``user`` (a 0-d int64 tensor for integer ids, else the
value), ``row_id`` (int64, ``(L,)``: the ``row_id`` of :func:`sqltargets.generate`, or the
``columns.id`` value), ``length`` (0-d int64), one tensor per feature (default ``amount``,
``mcc`` and ``time``: seconds since the user's first event) and one tensor per target:
float, NaN where the target is null; a ``top_k`` target is ``(L, k)``.

The values are exactly those of :func:`sqltargets.generate` (the same SQL runs on each
chunk of users, with the global row positions carried along as the tie-break).

>>> import pyarrow as pa
>>> tx = pa.table({"user_id": [7, 7, 3], "day": [0, 1, 5], "amount": [10.0, 5.0, 2.0],
...                "mcc": [5411, 5411, 5812]})
>>> spec = {"columns": {"user": "user_id", "time": "day", "amount": "amount", "mcc": "mcc"},
...         "time": {"unit": "day"},
...         "targets": [{"name": "spent", "agg": "sum",
...                      "window": {"kind": "expanding", "period": "year"}}]}
>>> ds = TargetDataset(spec, tx)
>>> len(ds), ds.users
(2, [3, 7])
>>> item = ds[1]
>>> item["user"].item(), item["row_id"].tolist(), item["spent"].tolist(), item["time"].tolist()
(7, [0, 1], [10.0, 15.0], [0.0, 86400.0])
>>> batch = collate([ds[0], ds[1]])
>>> batch["mask"].tolist(), batch["row_id"].tolist()
([[True, False], [True, True]], [[2, -1], [0, 1]])
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .compile.plan import Plan
from .compile.render import ident, literal, relation_source, render
from .compile.spec import UNIT_US, TargetSet, load
from .errors import DataError, SourceError, SpecError, SpecIssue, SqlTargetsError, did_you_mean
from .execute import engine
from .execute import source as _src
from .execute.scan import ScanSplit
from .execute.scan import split as scan_split

__all__ = [
    "DEFAULT_FEATURES",
    "Item",
    "StreamingTargetDataset",
    "TargetDataset",
    "collate",
]

#: The features an item carries unless ``features=`` says otherwise: the amount and MCC
#: columns of the spec, and the time as seconds since the user's first event.
DEFAULT_FEATURES = ("amount", "mcc", "time")

#: Item and batch keys that no feature or target may use.
RESERVED = ("user", "row_id", "length", "mask")

KEEP = ("last", "first")

# Private relation and column names inside the per-process DuckDB connection.
_INPUT = "_st_in"  # an Arrow source, registered
_USERS = "_st_users"  # this worker's users, registered
_CHUNK = "_st_chunk"  # the chunk of users the target SQL reads, registered
_POS = "_st_pos"  # the global input position (generate's row_id)
_TIME = "_st_t"  # the event-order time in microseconds (the SQL's `_o`)

SpecLike = str | Path | dict[str, Any] | TargetSet


class Item(dict):  # type: ignore[type-arg]
    """One user's sequence: a plain ``dict`` of tensors that also knows which of its keys
    are targets (``item.targets``), so that :func:`collate` pads those with NaN and the
    features with 0.

    >>> it = Item({"user": 1, "x": 2}, targets=("x",))
    >>> dict(it), it.targets
    ({'user': 1, 'x': 2}, ('x',))
    """

    def __init__(self, data: Mapping[str, Any] = (), targets: Sequence[str] = ()) -> None:  # type: ignore[assignment]
        super().__init__(data)
        self.targets = tuple(targets)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Item, (dict(self), self.targets))


# ---------------------------------------------------------------------------------------------
# compiling: everything a worker needs, computed once and picklable


@dataclass(frozen=True)
class _Feature:
    name: str  # the item key
    kind: str  # "float" | "code" | "time"
    column: str  # the column in the materialized input


@dataclass(frozen=True)
class _Target:
    name: str
    spec: int  # index into _Program.specs
    k: int | None  # top_k: the list length; else None


@dataclass(frozen=True)
class _Program:
    """The compiled, picklable plan of a dataset: SQL text, names, the source, the users."""

    specs: tuple[TargetSet, ...]
    sqls: tuple[str, ...]  # per spec: the target SQL reading the registered chunk
    plans: tuple[Plan, ...]  # per spec: its plan
    scans: tuple[ScanSplit | None, ...]  # per spec: what the scan engine computes after it
    targets: tuple[_Target, ...]
    features: tuple[_Feature, ...]
    user: str  # the input's user column
    key: str  # the row key in the materialized input: _POS or columns.id
    out_key: str  # the row key in the SQL output: "row_id" or columns.id
    scan: str  # FROM item reading the input with its positions
    select: str  # the materialized columns
    arrow: pa.Table | None  # an Arrow source (registered as _INPUT), else None
    users: pa.Array  # distinct users, in DuckDB's ORDER BY order
    counts: np.ndarray  # events per user
    int_users: bool

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def user_values(self) -> list[Any]:
        return self.users.to_pylist()


def _load_specs(specs: SpecLike | Sequence[SpecLike]) -> tuple[TargetSet, ...]:
    if isinstance(specs, (list, tuple)):
        if not specs:
            raise SpecError("specs: expected a spec or a non-empty list of specs; got []")
        tss = tuple(load(s) for s in specs)
    else:
        tss = (load(specs),)
    first = tss[0]
    for i, ts in enumerate(tss):
        path = f"specs[{i}]" if len(tss) > 1 else "spec"
        if ts.output != "events":
            raise SpecError(
                SpecIssue(
                    f"{path}.output",
                    f"{ts.output!r} gives one row per user and period; the datasets need "
                    "output: events (one row per transaction)",
                )
            )
        if ts.columns != first.columns:
            raise SpecError(
                SpecIssue(
                    f"{path}.columns",
                    f"{ts.columns} differs from specs[0].columns {first.columns}; specs read "
                    "together must name the same columns",
                )
            )
    return tss


def _check_names(tss: tuple[TargetSet, ...], features: Sequence[str]) -> tuple[_Target, ...]:
    taken = {n: f"is reserved for the {n!r} item key" for n in RESERVED}
    for f in features:
        taken.setdefault(f, "is also a feature")
    targets: list[_Target] = []
    seen: dict[str, str] = {}
    for i, ts in enumerate(tss):
        for j, t in enumerate(ts.targets):
            path = f"specs[{i}].targets[{j}].name" if len(tss) > 1 else f"targets[{j}].name"
            if t.name in taken:
                raise SpecError(SpecIssue(path, f"{t.name!r} {taken[t.name]}; rename the target"))
            if t.name.lower() in seen:
                raise SpecError(
                    SpecIssue(path, f"{t.name!r} is already a target of {seen[t.name.lower()]}")
                )
            seen[t.name.lower()] = f"specs[{i}]"
            targets.append(_Target(t.name, i, t.k if t.agg == "top_k" else None))
    return tuple(targets)


def _features(
    features: Sequence[str] | None, ts: TargetSet, types: dict[str, str]
) -> tuple[_Feature, ...]:
    names = (
        DEFAULT_FEATURES
        if features is None
        else (features,)
        if isinstance(features, str)
        else tuple(features)
    )
    out: list[_Feature] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise SpecError(SpecIssue(f"features[{i}]", f"expected a column name, got {name!r}"))
        if name in (f.name for f in out):
            raise SpecError(SpecIssue(f"features[{i}]", f"{name!r} is listed twice"))
        if name in RESERVED:
            raise SpecError(SpecIssue(f"features[{i}]", f"{name!r} is a reserved item key"))
        col = f"_st_f{i}"
        if name == "time":
            out.append(_Feature(name, "time", _TIME))
        elif name == "amount":
            out.append(_Feature(name, "float", col))
        elif name == "mcc":
            out.append(_Feature(name, "code", col))
        elif name in types:
            if not (_src.is_numeric(types[name]) or types[name] == "BOOLEAN"):
                raise DataError(
                    f"features[{i}]: column {name!r} has type {types[name]}; a feature must be "
                    "numeric or boolean (encode strings before building the dataset)"
                )
            out.append(_Feature(name, "float", col))
        else:
            known = ["amount", "mcc", "time", *types]
            raise DataError(
                f"features[{i}]: {name!r} is neither a role (amount, mcc, time) nor an input "
                f"column; columns are: {', '.join(types)}{did_you_mean(name, known)}"
            )
    return tuple(out)


def _feature_sql(f: _Feature, ts: TargetSet) -> str:
    if f.kind == "code":
        return f"COALESCE(TRY_CAST({ident(ts.columns.mcc)} AS BIGINT), 0) AS {f.column}"
    column = ts.columns.amount if f.name == "amount" else f.name
    return f"CAST({ident(column)} AS DOUBLE) AS {f.column}"


def _order_time_sql(ts: TargetSet, time_kind: str) -> str:
    """The event-order key in µs: the same expression as the SQL's ``_o``."""
    t = ident(ts.columns.time)
    if time_kind == "integer":
        return f"CAST({t} AS BIGINT) * {UNIT_US[ts.time.unit or 'us']}"
    if time_kind == "timestamptz":
        return f"epoch_us({t})"
    return f"epoch_us(CAST({t} AS TIMESTAMP))"


def _to_arrow(source: Any) -> pa.Table:
    if hasattr(source, "to_arrow_table") and not isinstance(source, pa.Table):
        source = source.to_arrow_table()  # a DuckDB relation
    if type(source).__module__.startswith("pandas") and hasattr(source, "columns"):
        source = pa.Table.from_pandas(source, preserve_index=False)
    if isinstance(source, pa.RecordBatchReader):
        source = source.read_all()
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if not isinstance(source, pa.Table):
        raise SourceError(
            "input: expected a Parquet path, glob or folder, a pyarrow Table or RecordBatchReader, "
            f"a pandas DataFrame, or a table name with connection=; got {type(source).__name__}"
        )
    return source


def _compile(
    specs: SpecLike | Sequence[SpecLike],
    source: Any,
    features: Sequence[str] | None,
    connection: duckdb.DuckDBPyConnection | None,
    threads: int | None,
    memory_limit: str | None,
) -> _Program:
    """Validate specs and source, render the SQL, list the users. Opens and closes DuckDB."""
    tss = _load_specs(specs)
    ts0 = tss[0]
    rid = ts0.columns.id is None
    con = (
        connection.cursor()
        if connection is not None
        else _src.connect(threads=threads, memory_limit=memory_limit)
    )
    try:
        if isinstance(source, Path):
            source = str(source)
        arrow: pa.Table | None = None
        if isinstance(source, str) and connection is not None and not _src.looks_like_path(source):
            inp = _src.resolve(source, ts0, con)  # checks that a view has columns.id
            pos = f", {inp.source.rid_column} AS {_POS}" if rid else ""
            arrow = con.sql(f"SELECT *{pos} FROM {inp.source.relation}").to_arrow_table()
        elif isinstance(source, str):
            inp = _src.resolve(source, ts0, con)
        else:
            arrow = _to_arrow(source)
            clash = [c for c in arrow.column_names if c.startswith("_st_")]
            if clash:
                raise DataError(
                    f"input column {clash[0]!r}: names starting with '_st_' are reserved by sqltargets"
                )
            if rid:
                arrow = arrow.append_column(_POS, pa.array(np.arange(arrow.num_rows), pa.int64()))
        if arrow is not None:
            con.register(_INPUT, arrow)
            inp = _src.Input(relation_source(_INPUT, rid_column=""), label="the input table")
        types = _src.describe(inp, con)
        if arrow is not None:
            types.pop(_POS, None)
        clash = [c for c in types if c.startswith("_st_")]
        if clash:
            raise DataError(
                f"input column {clash[0]!r}: names starting with '_st_' are reserved by sqltargets"
            )
        kinds = {_src.check_columns(ts, types) for ts in tss}
        time_kind = kinds.pop()
        if kinds:
            raise SpecError("specs: the specs read the time column in different ways (time.unit)")
        feats = _features(features, ts0, types)
        targets = _check_names(tss, [f.name for f in feats])
        if ts0.columns.id is not None and types[ts0.columns.id] not in _src.INTEGER_TYPES:
            raise DataError(
                f"columns.id: column {ts0.columns.id!r} has type {types[ts0.columns.id]}; the "
                "datasets need an integer id (it becomes the int64 row_id tensor)"
            )
        _src.check_rows(ts0, inp, con)  # null users or times are errors

        u = ident(ts0.columns.user)
        raw = inp.scan_sql()
        users = con.sql(
            f"SELECT {u} AS u, count(*) AS n FROM {raw} GROUP BY {u} ORDER BY {u}"
        ).to_arrow_table()
        if inp.source.kind == "parquet" and rid:
            scan = inp.positions_sql(_POS)  # the files and positions of every other reader
        else:
            scan = raw
        key = _POS if rid else ts0.columns.id
        assert key is not None
        cols = list(dict.fromkeys(c for ts in tss for c in ts.input_columns()))
        select = ", ".join(
            [ident(c) for c in cols]
            + [_feature_sql(f, ts0) for f in feats if f.kind != "time"]
            + [f"{_order_time_sql(ts0, time_kind)} AS {_TIME}"]
            + ([_POS] if rid else [])
        )

        # Plan and render against a relation of exactly the chunks' columns and types.
        empty = con.sql(f"SELECT {select} FROM {scan} AS s LIMIT 0").to_arrow_table()
        con.register(_CHUNK, empty)
        chunk_source = relation_source(_CHUNK, rid_column=_POS if rid else "")
        sqls, plans, scans = [], [], []
        for ts in tss:
            plan = _src.prepare(ts, _src.Input(chunk_source, label="a chunk of users"), con)
            split = scan_split(plan)
            sql = render(plan, chunk_source, scan=split)
            out = con.sql(sql).to_arrow_table()
            if split is not None:
                out = engine.finish_scan(out, plan, split)
            schema = out.schema
            missing = [t.name for t in ts.targets if t.name not in schema.names]
            if missing or ts.key_column() not in schema.names:  # pragma: no cover
                raise SqlTargetsError(f"internal error: the SQL output lacks {missing}")
            sqls.append(sql)
            plans.append(plan)
            scans.append(split)
        con.unregister(_CHUNK)
        if arrow is not None:
            con.unregister(_INPUT)
    finally:
        con.close()

    utype = users.schema.field("u").type
    return _Program(
        specs=tss,
        sqls=tuple(sqls),
        plans=tuple(plans),
        scans=tuple(scans),
        targets=targets,
        features=feats,
        user=ts0.columns.user,
        key=key,
        out_key=ts0.key_column(),
        scan=scan,
        select=select,
        arrow=arrow,
        users=users.column("u").combine_chunks(),
        counts=users.column("n").to_numpy().astype(np.int64),
        int_users=pa.types.is_integer(utype) and utype != pa.uint64(),
    )


# ---------------------------------------------------------------------------------------------
# running: one per process, holding the DuckDB connection and the materialized input


@dataclass
class _Block:
    """The computed columns of a chunk of users, flat, users in sorted order."""

    index: np.ndarray  # the users (positions into _Program.users)
    lengths: np.ndarray  # events per user
    row_id: torch.Tensor  # (n,) int64
    features: dict[str, torch.Tensor]  # name -> (n,)
    scalars: torch.Tensor  # (targets without k, n)
    topk: dict[str, torch.Tensor]  # name -> (n, k)


class _Runner:
    """A DuckDB connection and the input rows of some users (sorted by user and event
    order), materialized once; computes the targets of any subset of those users."""

    def __init__(
        self,
        prog: _Program,
        index: np.ndarray,
        *,
        threads: int | None,
        memory_limit: str | None,
        temp_directory: str | None,
        dtype: torch.dtype,
    ) -> None:
        self.pid = os.getpid()
        self.prog = prog
        self.index = index
        self.dtype = dtype
        con = _src.connect(
            threads=threads, memory_limit=memory_limit, temp_directory=temp_directory
        )
        self.con: duckdb.DuckDBPyConnection | None = con
        self.timezone: str | None = None
        u = ident(prog.user)
        where = ""
        if prog.arrow is not None:
            con.register(_INPUT, prog.arrow)
        if index.size < len(prog.users):
            con.register(_USERS, pa.table({"u": prog.users.take(pa.array(index))}))
            where = f" WHERE {u} IN (SELECT u FROM {_USERS})"
        try:
            self.table = con.sql(
                f"SELECT {prog.select} FROM {prog.scan} AS s{where} "
                f"ORDER BY {u}, {_TIME}, {ident(prog.key)}"
            ).to_arrow_table()
        except duckdb.Error as e:
            con.close()
            raise SourceError(f"cannot read the input: {str(e).strip().splitlines()[0]}") from e
        finally:
            for name in (_USERS, _INPUT):
                try:
                    con.unregister(name)
                except duckdb.Error:
                    pass
        self.counts = prog.counts[index]
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        if self.table.num_rows != int(self.counts.sum()):
            raise SourceError(
                f"the input changed: {self.table.num_rows} rows for {index.size} users, "
                f"expected {int(self.counts.sum())}"
            )

    def close(self) -> None:
        """Close the connection and drop it (and the materialized rows)."""
        if self.con is not None:
            try:
                self.con.close()
            except duckdb.Error:  # pragma: no cover
                pass
        self.con = None
        self.table = pa.table({})

    def compute(self, pos: np.ndarray) -> _Block:
        """Targets and features of the users at ``pos`` (sorted positions into this runner's
        users)."""
        prog = self.prog
        c = self.counts[pos]
        s = self.starts[pos]
        n = int(c.sum())
        if pos.size and int(pos[-1] - pos[0]) + 1 == pos.size:
            chunk = self.table.slice(int(s[0]), n)
        else:
            rows = np.repeat(s - (np.cumsum(c) - c), c) + np.arange(n)
            chunk = self.table.take(pa.array(rows))
        key = chunk.column(prog.key).to_numpy().astype(np.int64, copy=False)

        scalar = [t for t in prog.targets if t.k is None]
        scal = np.empty((len(scalar), n), np.float64)
        where = {t.name: i for i, t in enumerate(scalar)}
        topk: dict[str, torch.Tensor] = {}
        for i, sql in enumerate(prog.sqls):
            out = self._run(prog.specs[i].timezone, sql, chunk)
            split = prog.scans[i]
            if split is not None:
                out = engine.finish_scan(out, prog.plans[i], split)
            got = out.column(prog.out_key).to_numpy()
            if not np.array_equal(got, key):
                raise DataError(
                    "rows came back in another order than expected; is columns.id unique? "
                    f"(spec {i}, users {prog.users.take(pa.array(self.index[pos[:3]])).to_pylist()}...)"
                )
            for t in prog.targets:
                if t.spec != i:
                    continue
                col = out.column(t.name)
                if t.k is None:
                    scal[where[t.name]] = col.to_numpy()
                else:
                    flat = np.array(pc.list_flatten(col).to_numpy(zero_copy_only=False), np.float64)
                    topk[t.name] = torch.from_numpy(flat.reshape(n, t.k)).to(self.dtype)

        feats: dict[str, torch.Tensor] = {}
        for f in prog.features:
            if f.kind == "time":
                t_us = chunk.column(_TIME).to_numpy()
                first = np.repeat(t_us[np.cumsum(c) - c], c)
                feats[f.name] = torch.from_numpy((t_us - first) / 1e6).to(self.dtype)
            elif f.kind == "code":
                feats[f.name] = torch.from_numpy(chunk.column(f.column).to_numpy().copy())
            else:
                arr = chunk.column(f.column).to_numpy(zero_copy_only=False)
                feats[f.name] = torch.from_numpy(np.array(arr, np.float64)).to(self.dtype)
        return _Block(
            index=self.index[pos],
            lengths=c,
            row_id=torch.from_numpy(key.copy()),
            features=feats,
            scalars=torch.from_numpy(scal).to(self.dtype),
            topk=topk,
        )

    def _run(self, timezone: str, sql: str, chunk: pa.Table) -> pa.Table:
        con = self.con
        if con is None:
            raise SqlTargetsError("this dataset's connection was closed (the process is exiting)")
        if timezone != self.timezone:
            con.execute(f"SET TimeZone = {literal(timezone)}")
            self.timezone = timezone
        con.register(_CHUNK, chunk)
        try:
            return engine.run_table(sql, con)
        finally:
            con.unregister(_CHUNK)


# Runners inherited through fork belong to the parent: never closed (or garbage collected)
# in the child, whose copy of DuckDB's state must not be touched.
_INHERITED: list[_Runner] = []
# This process's open runners, closed at exit (before the interpreter tears duckdb down).
_OPEN: weakref.WeakSet[_Runner] = weakref.WeakSet()


@atexit.register
def _close_open_runners() -> None:
    for runner in list(_OPEN):
        if runner.pid == os.getpid():
            runner.close()


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _check_common(max_len: int | None, keep: str, users_per_chunk: int) -> None:
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_len must be a positive integer or None, got {max_len!r}")
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if not isinstance(users_per_chunk, int) or users_per_chunk < 1:
        raise ValueError(f"users_per_chunk must be a positive integer, got {users_per_chunk!r}")


def _bounds(a: int, b: int, max_len: int | None, keep: str) -> tuple[int, int]:
    if max_len is not None and b - a > max_len:
        return (b - max_len, b) if keep == "last" else (a, a + max_len)
    return a, b


class _Items:
    """Slices items out of flat columns (a :class:`_Block`, or the whole dataset)."""

    def __init__(self, prog: _Program, max_len: int | None, keep: str) -> None:
        self.prog = prog
        self.max_len = max_len
        self.keep = keep
        self.order = [(t.name, t.k) for t in prog.targets]
        scalar = [t.name for t in prog.targets if t.k is None]
        self.scalar_row = {name: i for i, name in enumerate(scalar)}
        self.names = tuple(prog.target_names)

    def user(self, i: int, users: list[Any] | None = None) -> Any:
        value = self.prog.users[i].as_py() if users is None else users[i]
        return torch.tensor(value, dtype=torch.int64) if self.prog.int_users else value

    def item(
        self,
        user: Any,
        a: int,
        b: int,
        row_id: torch.Tensor,
        features: Mapping[str, torch.Tensor],
        scalars: torch.Tensor,
        topk: Mapping[str, torch.Tensor],
    ) -> Item:
        a, b = _bounds(a, b, self.max_len, self.keep)
        it = Item(targets=self.names)
        it["user"] = user
        it["row_id"] = row_id[a:b].clone()
        it["length"] = torch.tensor(b - a, dtype=torch.int64)
        for name, col in features.items():
            it[name] = col[a:b].clone()
        for name, k in self.order:
            it[name] = (
                scalars[self.scalar_row[name], a:b].clone()
                if k is None
                else topk[name][a:b].clone()
            )
        return it


# ---------------------------------------------------------------------------------------------
# the datasets


class TargetDataset(Dataset):  # type: ignore[type-arg]
    """Map-style: one item per user present in ``source``, users in sorted order.

    Every target is computed once, here in ``__init__``, ``users_per_chunk`` users at a
    time on one DuckDB connection (``threads``, ``memory_limit``), which is closed before
    ``__init__`` returns; the results are kept as flat tensors, and ``ds[i]`` slices them
    (sent to DataLoader workers through shared memory). ``specs`` is one spec or a list of
    specs naming the same columns; ``source`` is anything :func:`sqltargets.generate`
    reads. ``features`` lists item features: the roles ``amount`` and ``mcc`` (int64 codes,
    0 where null or not a number), ``time`` (seconds since the user's first event), or any
    numeric input column. ``max_len`` keeps at most that many events per item: the most
    recent ones (``keep="last"``) or the earliest (``keep="first"``). ``dtype`` is the type
    of the targets and float features.

    >>> import pyarrow as pa
    >>> tx = pa.table({"u": ["b", "a", "b"], "t": [1, 2, 3], "a": [1.0, 2.0, 4.0], "m": [1, 2, 3]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "time": {"unit": "s"},
    ...         "targets": [{"name": "top2", "agg": "top_k", "k": 2,
    ...                      "window": {"kind": "rolling", "length": "1h"}}]}
    >>> ds = TargetDataset(spec, tx, max_len=1)
    >>> ds[1]["user"], ds[1]["top2"].tolist(), ds[1]["row_id"].tolist()
    ('b', [[4.0, 1.0]], [2])
    """

    def __init__(
        self,
        specs: SpecLike | Sequence[SpecLike],
        source: Any,
        *,
        features: Sequence[str] | None = None,
        max_len: int | None = None,
        keep: str = "last",
        dtype: torch.dtype = torch.float32,
        users_per_chunk: int = 256,
        connection: duckdb.DuckDBPyConnection | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> None:
        _check_common(max_len, keep, users_per_chunk)
        prog = _compile(specs, source, features, connection, threads, memory_limit)
        self.max_len = max_len
        self.keep = keep
        n_users = len(prog.users)
        runner = _Runner(
            prog,
            np.arange(n_users),
            threads=threads,
            memory_limit=memory_limit,
            temp_directory=temp_directory,
            dtype=dtype,
        )
        try:
            blocks = [
                runner.compute(np.arange(n_users)[sl]) for sl in _chunks(n_users, users_per_chunk)
            ]
        finally:
            runner.close()
        self._users = prog.user_values()
        self._offsets = np.concatenate([[0], np.cumsum(prog.counts)]).astype(np.int64)
        self._row_id = (
            torch.cat([b.row_id for b in blocks]) if blocks else torch.empty(0, dtype=torch.int64)
        )
        names = prog.feature_names
        self._features = {
            f: torch.cat([b.features[f] for b in blocks]) if blocks else torch.empty(0)
            for f in names
        }
        scalar = [t for t in prog.targets if t.k is None]
        self._scalars = (
            torch.cat([b.scalars for b in blocks], dim=1)
            if blocks
            else torch.empty(len(scalar), 0, dtype=dtype)
        )
        self._topk = {
            t.name: torch.cat([b.topk[t.name] for b in blocks])
            if blocks
            else torch.empty(0, t.k or 1, dtype=dtype)
            for t in prog.targets
            if t.k is not None
        }
        self._prog = replace(prog, arrow=None)  # the input is no longer needed
        self._items = _Items(self._prog, max_len, keep)

    def __len__(self) -> int:
        return len(self._users)

    def __getitem__(self, index: int) -> Item:
        n = len(self._users)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"user index {index} out of range for {n} users")
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._items.item(
            self._items.user(i, self._users),
            a,
            b,
            self._row_id,
            self._features,
            self._scalars,
            self._topk,
        )

    @property
    def users(self) -> list[Any]:
        """The user ids, in item order."""
        return list(self._users)

    @property
    def lengths(self) -> torch.Tensor:
        """Events per item (after ``max_len``), int64, in item order: for bucketing samplers."""
        n = torch.from_numpy(np.diff(self._offsets))
        return n if self.max_len is None else n.clamp(max=self.max_len)

    @property
    def target_names(self) -> list[str]:
        """The target keys of an item, in spec order."""
        return self._prog.target_names

    @property
    def feature_names(self) -> list[str]:
        """The feature keys of an item."""
        return self._prog.feature_names

    def __repr__(self) -> str:
        return (
            f"TargetDataset(users={len(self)}, events={int(self._offsets[-1])}, "
            f"targets={len(self.target_names)}, features={self.feature_names})"
        )


class StreamingTargetDataset(IterableDataset):  # type: ignore[type-arg]
    """An ``IterableDataset`` computing targets on the fly, ``users_per_chunk`` users at a
    time, inside each DataLoader worker (or the main process with ``num_workers=0``).

    Users are sharded over the workers by position in sorted order (worker ``w`` of ``W``
    takes users ``w, w + W, ...``), so each user comes exactly once per epoch and a user's
    events are never split. On its first pass each process opens its own DuckDB
    connection (``threads``: default 1 in a worker, 2 in the main process; ``memory_limit``)
    and reads its users' input rows once (only the columns the specs and features need);
    later passes in the same process (``persistent_workers=True``, or ``num_workers=0``)
    reuse them. ``__init__`` only validates, renders the SQL and lists the users, so the
    dataset is small to pickle and works with the fork, spawn and forkserver start methods.

    ``shuffle=True`` permutes each worker's users (and so the chunks) every epoch, from
    ``seed``, the epoch (:meth:`set_epoch`, else a count of passes in this process) and,
    without :meth:`set_epoch`, the DataLoader's per-epoch worker seed. Other arguments are
    those of :class:`TargetDataset`.

    >>> import pyarrow as pa
    >>> tx = pa.table({"u": [2, 1, 2], "t": [1, 2, 3], "a": [1.0, 2.0, 4.0], "m": [1, 2, 3]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "time": {"unit": "s"},
    ...         "targets": [{"name": "n", "agg": "count",
    ...                      "window": {"kind": "expanding", "period": "day"}}]}
    >>> ds = StreamingTargetDataset(spec, tx, users_per_chunk=1)
    >>> [(it["user"].item(), it["n"].tolist()) for it in ds]
    [(1, [1.0]), (2, [1.0, 2.0])]
    """

    def __init__(
        self,
        specs: SpecLike | Sequence[SpecLike],
        source: Any,
        *,
        users_per_chunk: int = 64,
        shuffle: bool = False,
        seed: int = 0,
        features: Sequence[str] | None = None,
        max_len: int | None = None,
        keep: str = "last",
        dtype: torch.dtype = torch.float32,
        connection: duckdb.DuckDBPyConnection | None = None,
        threads: int | None = None,
        memory_limit: str | None = "1GB",
        temp_directory: str | None = None,
    ) -> None:
        _check_common(max_len, keep, users_per_chunk)
        self._prog = _compile(specs, source, features, connection, threads, memory_limit)
        self._items = _Items(self._prog, max_len, keep)
        self.users_per_chunk = users_per_chunk
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.max_len = max_len
        self.keep = keep
        self.dtype = dtype
        self.threads = threads
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory
        self._epoch: int | None = None
        self._passes = 0
        self._runner: _Runner | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runner"] = None  # a DuckDB connection does not pickle
        return state

    def __len__(self) -> int:
        return len(self._prog.users)

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch the next passes shuffle with (reaches workers that start after it:
        with ``persistent_workers=True`` the workers count their passes instead)."""
        self._epoch = int(epoch)

    @property
    def users(self) -> list[Any]:
        """All user ids, in sorted order (not the order of iteration)."""
        return self._prog.user_values()

    @property
    def target_names(self) -> list[str]:
        """The target keys of an item, in spec order."""
        return self._prog.target_names

    @property
    def feature_names(self) -> list[str]:
        """The feature keys of an item."""
        return self._prog.feature_names

    def _runner_for(self, index: np.ndarray, in_worker: bool) -> _Runner:
        runner = self._runner
        if runner is not None and runner.pid != os.getpid():
            _INHERITED.append(runner)  # forked from another process: leave it alone
            runner = None
        if runner is not None and not np.array_equal(runner.index, index):
            runner.close()
            runner = None
        if runner is None:
            threads = self.threads or (1 if in_worker else min(2, os.cpu_count() or 1))
            runner = _Runner(
                self._prog,
                index,
                threads=threads,
                memory_limit=self.memory_limit,
                temp_directory=self.temp_directory,
                dtype=self.dtype,
            )
            self._runner = runner
            _OPEN.add(runner)
        return runner

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        shard, shards = (info.id, info.num_workers) if info is not None else (0, 1)
        index = np.arange(shard, len(self._prog.users), shards, dtype=np.int64)
        self._passes += 1
        if index.size == 0:
            return
        order = np.arange(index.size)
        if self.shuffle:
            if self._epoch is not None:
                entropy = [self.seed, self._epoch, shard]
            else:
                entropy = [self.seed, self._passes, info.seed if info is not None else 0, shard]
            order = np.random.default_rng(entropy).permutation(index.size)
        runner = self._runner_for(index, info is not None)
        items = self._items
        for sl in _chunks(order.size, self.users_per_chunk):
            want = order[sl]
            pos = np.sort(want)
            block = runner.compute(pos)
            offsets = np.concatenate([[0], np.cumsum(block.lengths)])
            at = {int(p): j for j, p in enumerate(pos)}
            for p in want:
                j = at[int(p)]
                yield items.item(
                    items.user(int(block.index[j])),
                    int(offsets[j]),
                    int(offsets[j + 1]),
                    block.row_id,
                    block.features,
                    block.scalars,
                    block.topk,
                )

    def __repr__(self) -> str:
        return (
            f"StreamingTargetDataset(users={len(self)}, targets={len(self.target_names)}, "
            f"features={self.feature_names}, users_per_chunk={self.users_per_chunk}, "
            f"shuffle={self.shuffle})"
        )


# ---------------------------------------------------------------------------------------------
# collate


def collate(
    batch: Sequence[Mapping[str, Any]],
    *,
    max_len: int | None = None,
    keep: str = "last",
    targets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Stack items into a batch, padding every sequence to the longest one (right padding).

    ``max_len`` truncates longer sequences, keeping the most recent events (``keep="last"``)
    or the earliest (``keep="first"``). Adds ``mask`` (bool, ``(B, L)``, True on real
    events); ``length`` becomes ``(B,)``; ``row_id`` is padded with -1, targets with NaN,
    features with 0; a ``top_k`` target becomes ``(B, L, k)``. ``user`` is stacked into a
    ``(B,)`` tensor when it is a tensor, else kept as a list. The target keys come from
    ``targets``, else from the items (:class:`Item`); for plain dicts every float sequence
    is padded with NaN. Use ``functools.partial(collate, max_len=256)`` as a
    DataLoader's ``collate_fn`` to set the options.

    >>> a = {"user": torch.tensor(1), "row_id": torch.tensor([4, 5, 6]), "length": torch.tensor(3),
    ...      "amount": torch.tensor([1.0, 2.0, 3.0]), "y": torch.tensor([0.5, 0.25, 0.75])}
    >>> b = {"user": torch.tensor(2), "row_id": torch.tensor([9]), "length": torch.tensor(1),
    ...      "amount": torch.tensor([8.0]), "y": torch.tensor([2.5])}
    >>> out = collate([a, b], max_len=2, targets=["y"])
    >>> out["row_id"].tolist(), out["amount"].tolist(), out["y"].tolist()
    ([[5, 6], [9, -1]], [[2.0, 3.0], [8.0, 0.0]], [[0.25, 0.75], [2.5, nan]])
    >>> out["user"].tolist(), out["length"].tolist(), out["mask"].tolist()
    ([1, 2], [2, 1], [[True, True], [True, False]])
    """
    if not batch:
        raise ValueError("collate: empty batch")
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be a positive integer or None, got {max_len!r}")
    first = batch[0]
    if targets is None:
        targets = getattr(first, "targets", None)
    target_set = set(targets) if targets is not None else None
    full = [int(it["row_id"].shape[0]) for it in batch]
    spans = [_bounds(0, n, max_len, keep) for n in full]
    lengths = torch.tensor([b - a for a, b in spans], dtype=torch.int64)
    longest = int(lengths.max()) if len(batch) else 0
    out: dict[str, Any] = {}
    for key, value in first.items():
        if key == "length":
            out[key] = lengths
        elif key == "user" or not _is_sequence(value, full[0]):
            values = [it[key] for it in batch]
            if all(isinstance(v, torch.Tensor) for v in values):
                out[key] = torch.stack(values)
            else:
                out[key] = values
            if key == "user":
                out["length"] = lengths
                out["mask"] = torch.arange(longest)[None, :] < lengths[:, None]
        else:
            pad = _pad_value(key, value, target_set)
            padded = torch.full((len(batch), longest, *value.shape[1:]), pad, dtype=value.dtype)
            for i, (it, (a, b)) in enumerate(zip(batch, spans)):
                padded[i, : b - a] = it[key][a:b]
            out[key] = padded
    if "mask" not in out:
        out["mask"] = torch.arange(longest)[None, :] < lengths[:, None]
        out.setdefault("length", lengths)
    return out


def _is_sequence(value: Any, length: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == length


def _pad_value(key: str, value: torch.Tensor, targets: set[str] | None) -> float:
    if key == "row_id":
        return -1
    if value.dtype == torch.bool or not value.is_floating_point():
        return 0
    if targets is None or key in targets:
        return float("nan")
    return 0.0
