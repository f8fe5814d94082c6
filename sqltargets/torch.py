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

import gc
import multiprocessing
import multiprocessing.context
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .compile.plan import Plan
from .compile.plan import build as build_plan
from .compile.render import Source, literal
from .compile.spec import TargetSet, load
from .errors import ArgumentError, DataError, SourceError, SpecError, SpecIssue, did_you_mean
from .execute import arrays, engine
from .execute import connection as _conn
from .execute import program as program_mod
from .execute import source as _src
from .execute.collector import pausing
from .execute.runner import Scratch, compute_arrays

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


@dataclass(frozen=True)
class Piece:
    """Some of a streaming process's users, read and computed together."""

    files: tuple[int, ...] | None = None  # read only these input files (positions)
    hashed: tuple[int, int] | None = None  # only users whose hash % n == i (i, n)
    users: tuple[int, int] | None = None  # only the sorted users at positions a..b-1 (a, b)


#: the most input rows a StreamingTargetDataset process reads and holds at once, by default
#: (its events take about 60 bytes a row with the demo's 20 targets: some 500 MB)
READ_ROWS = 1 << 23

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
# setting up: everything a process needs, computed once and picklable


@dataclass(frozen=True)
class _Feature:
    name: str  # the item key
    kind: str  # "float" | "code" | "time"
    column: str  # the prologue column of spec 0's program


@dataclass(frozen=True)
class _Target:
    name: str
    spec: int  # index into _Setup.specs
    width: int | None  # list targets (top_k, distribution): the list length; else None


@dataclass(frozen=True)
class _Setup:
    """What every process needs: the specs' native programs and the resolved input."""

    specs: tuple[TargetSet, ...]
    plans: tuple[Plan, ...]
    programs: tuple[program_mod.Program, ...]  # per spec, over the whole input
    input: _src.Input  # how the programs read the source (an Arrow input is carried along)
    targets: tuple[_Target, ...]
    features: tuple[_Feature, ...]
    users: pa.Array  # distinct users, in the prologue's order
    counts: np.ndarray  # events per user
    int_users: bool
    #: rows per input file, when every user's rows lie in one file (Parquet with footers)
    file_rows: np.ndarray | None = None
    #: users per input file, then
    file_users: np.ndarray | None = None
    #: the input is stored sorted by user (a prepared store) and its users are integers or
    #: strings: a range of users is a range of row groups, read alone
    user_sorted: bool = False

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def user_values(self) -> list[Any]:
        return self.users.to_pylist()

    def shard_files(self, shard: tuple[int, int] | None) -> list[int] | None:
        """The input files (positions) holding exactly the users of ``shard`` (i, n), or
        every file for no shard, when every user's rows lie in one file and the files can
        be shared out evenly; else None (the shard is a hash of the user)."""
        if self.file_rows is None:
            return None
        if shard is None:
            return list(range(len(self.file_rows)))
        return file_shard(self.file_rows, *shard)

    def shard_users(self, shard: tuple[int, int] | None) -> tuple[int, int] | None:
        """For an input sorted by user: the positions (a, b) in ``users`` of the users of
        ``shard`` (i, n), a run of them balanced by rows; else None."""
        if not self.user_sorted:
            return None
        if shard is None:
            return 0, len(self.users)
        i, n = shard
        # a user goes to the shard holding the middle of its rows
        middle = np.cumsum(self.counts) - self.counts / 2
        total = float(self.counts.sum())
        cut = np.searchsorted(middle, [total * i / n, total * (i + 1) / n])
        return int(cut[0]), int(cut[1]) if i + 1 < n else len(self.users)

    def source_for(self, piece: Piece) -> Source:
        """The input source reading only the users of ``piece``."""
        source = self.input.source
        if piece.files is not None:
            source = source.only_files(list(piece.files))
        if piece.hashed is not None:
            source = replace(source, shard=piece.hashed)
        if piece.users is not None:
            a, b = piece.users
            bounds = (
                (literal(self.users[a].as_py()), literal(self.users[b - 1].as_py()))
                if a < b
                else ("NULL", "NULL")  # none
            )
            source = replace(source, users=bounds)
        return source

    def shard_piece(self, shard: tuple[int, int]) -> Piece:
        """The users of ``shard`` (i, n): those of whole files when every user's rows lie
        in one file and the files can be shared out evenly (the worker reads only those
        files), a run of users of an input sorted by user, else a hash of the user."""
        files = self.shard_files(shard)
        if files is not None:
            return Piece(files=tuple(files))
        users = self.shard_users(shard)
        return Piece(users=users) if users is not None else Piece(hashed=shard)

    def piece_rows(self, piece: Piece) -> int:
        """The rows of ``piece`` (estimated for a hash of the user)."""
        if piece.users is not None:
            return int(self.counts[piece.users[0] : piece.users[1]].sum())
        if piece.files is not None and self.file_rows is not None:
            rows = int(self.file_rows[list(piece.files)].sum())
        else:
            rows = int(self.counts.sum())
        return rows if piece.hashed is None else -(-rows // piece.hashed[1])

    def piece_of(self, shard: tuple[int, int] | None, piece: Piece | None = None) -> Piece | None:
        """``piece``, else the users of ``shard`` (i, n) (:meth:`shard_piece`), else None:
        every user."""
        if piece is not None or shard is None:
            return piece
        return self.shard_piece(shard)

    def programs_for(
        self, shard: tuple[int, int] | None, piece: Piece | None = None
    ) -> tuple[program_mod.Program, ...]:
        """The programs over the users of :meth:`piece_of` ``shard`` and ``piece``."""
        return self.programs_over(self.piece_of(shard, piece))

    def programs_over(self, piece: Piece | None) -> tuple[program_mod.Program, ...]:
        """The programs over the users of ``piece``, or over every user."""
        if piece is None:
            return self.programs
        source = self.source_for(piece)
        return tuple(
            program_mod.build(plan, source, order_time=i == 0) for i, plan in enumerate(self.plans)
        )


def file_shard(rows: np.ndarray, i: int, n: int, slack: float = 1.15) -> list[int] | None:
    """The files (positions) of shard ``i`` of ``n`` when files of ``rows`` rows each are
    shared out so that no shard has more than ``slack`` times its share of the rows
    (largest file first, to the shard with the fewest rows so far); else None.

    >>> file_shard(np.array([4, 4, 4, 4]), 1, 2), file_shard(np.array([9, 1]), 0, 2)
    ([1, 3], None)
    """
    total = int(rows.sum())
    if n < 1 or not 0 <= i < n or len(rows) < n or total == 0:
        return None
    load = [0] * n
    owner = [0] * len(rows)
    for k in sorted(range(len(rows)), key=lambda k: (-int(rows[k]), k)):
        w = min(range(n), key=lambda w: (load[w], w))
        owner[k] = w
        load[w] += int(rows[k])
    if max(load) > slack * total / n:
        return None
    return [k for k in range(len(rows)) if owner[k] == i]


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
            width = None
            if t.agg == "top_k":
                width = t.k
            elif t.agg == "distribution":
                width = len(t.by or ()) + 1
            targets.append(_Target(t.name, i, width))
    return tuple(targets)


def _features(
    features: Sequence[str] | None, ts: TargetSet, types: dict[str, str]
) -> tuple[tuple[_Feature, ...], tuple[tuple[str, str], ...]]:
    """The item features, and the (column, kind) values the prologue must carry for them."""
    names = (
        DEFAULT_FEATURES
        if features is None
        else (features,)
        if isinstance(features, str)
        else tuple(features)
    )
    out: list[_Feature] = []
    extra: list[tuple[str, str]] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise SpecError(SpecIssue(f"features[{i}]", f"expected a column name, got {name!r}"))
        if name in (f.name for f in out):
            raise SpecError(SpecIssue(f"features[{i}]", f"{name!r} is listed twice"))
        if name in RESERVED:
            raise SpecError(SpecIssue(f"features[{i}]", f"{name!r} is a reserved item key"))
        if name == "time":
            out.append(_Feature(name, "time", ""))
            continue
        if name == "amount":
            column, kind = ts.columns.amount, "number"
        elif name == "mcc":
            column, kind = ts.columns.mcc, "code"
        elif name in types:
            if not (_src.is_numeric(types[name]) or types[name] == "BOOLEAN"):
                raise DataError(
                    f"features[{i}]: column {name!r} has type {types[name]}; a feature must be "
                    "numeric or boolean (encode strings before building the dataset)"
                )
            column, kind = name, "number"
        else:
            known = ["amount", "mcc", "time", *types]
            raise DataError(
                f"features[{i}]: {name!r} is neither a role (amount, mcc, time) nor an input "
                f"column; columns are: {', '.join(types)}{did_you_mean(name, known)}"
            )
        out.append(_Feature(name, "code" if kind == "code" else "float", column))
        extra.append((column, kind))
    return tuple(out), tuple(dict.fromkeys(extra))


def _to_arrow(source: Any) -> Any:
    if type(source).__module__.startswith("pandas") or isinstance(
        source, (pa.RecordBatchReader, pa.RecordBatch)
    ):
        return _src.as_arrow(source)
    if hasattr(source, "to_arrow_table") and not isinstance(source, pa.Table):
        return source.to_arrow_table()  # a DuckDB relation
    return source


@pausing
def _setup(
    specs: SpecLike | Sequence[SpecLike],
    source: Any,
    features: Sequence[str] | None,
    connection: duckdb.DuckDBPyConnection | None,
    threads: int | None,
    memory_limit: str | None,
    past_only: bool = False,
) -> _Setup:
    """Validate specs and source, build the programs, list the users. Opens and closes
    DuckDB (a table of ``connection`` is read into Arrow, for processes without it).

    The kernels load on threads meanwhile (:class:`~sqltargets.execute.engine.Loading`:
    numba's runtime from the start, 0.2 s in a fresh process; the programs' kernels while
    DuckDB counts the users, which releases the GIL); they end before this returns
    (DataLoader workers fork later, and inherit what they loaded)."""
    with engine.Loading():  # numba's runtime, while the specs and the input are read
        tss = _load_specs(specs)
        if past_only:
            for ts in tss:
                ts.check_past_only()
        ts0 = tss[0]
        con = (
            connection.cursor()
            if connection is not None
            else _src.connect(threads=threads, memory_limit=memory_limit)
        )
        try:
            if isinstance(source, Path):
                source = str(source)
            inp = _src.resolve(_to_arrow(source), ts0, con)
            inp.register(con)
            try:
                inp2 = engine.materialize(ts0, inp, con)
            finally:
                inp.unregister(con)
            inp = inp2
            inp.register(con)
            try:
                types = _src.describe(inp, con)
                for ts in tss:
                    _src.check_case(ts, inp)
                kinds = {_src.check_columns(ts, types) for ts in tss}
                for ts in tss:
                    _src.check_wheres(ts, inp, con)
                time_kind = kinds.pop()
                if kinds:
                    raise SpecError(
                        "specs: the specs read the time column in different ways (time.unit)"
                    )
                feats, extra = _features(features, ts0, types)
                targets = _check_names(tss, [f.name for f in feats])
                if ts0.columns.id is not None and types[ts0.columns.id] not in _src.INTEGER_TYPES:
                    raise DataError(
                        f"columns.id: column {ts0.columns.id!r} has type {types[ts0.columns.id]}; the "
                        "datasets need an integer id (it becomes the int64 row_id tensor)"
                    )
                numeric = _src.numeric_columns(types)
                plans = tuple(
                    build_plan(
                        ts,
                        time_kind=time_kind,
                        numeric=numeric,
                        extra=extra if i == 0 else (),
                        time_type=types.get(ts.columns.time),
                    )
                    for i, ts in enumerate(tss)
                )
                programs = tuple(
                    program_mod.build(plan, inp.source, order_time=i == 0)
                    for i, plan in enumerate(plans)
                )
                # once here: forked DataLoader workers inherit the kernels
                with engine.Loading(*programs):
                    # null users or times are errors (or left out): found while counting
                    users, counts, file_rows, file_users = engine.user_counts(ts0, inp, con)
                user_sorted = _sorted_by_user(source, ts0, users.type)
            finally:
                inp.unregister(con)
        finally:
            con.close()
        cols = {v.column: f"_{v.id}" for v in plans[0].extra}
        feats = tuple(
            _Feature(f.name, f.kind, "_o" if f.kind == "time" else cols[f.column]) for f in feats
        )
        utype = users.type
        return _Setup(
            specs=tss,
            plans=plans,
            programs=programs,
            input=inp,
            targets=targets,
            features=feats,
            users=users,
            counts=counts,
            int_users=pa.types.is_integer(utype) and utype != pa.uint64(),
            file_rows=file_rows,
            file_users=file_users,
            user_sorted=user_sorted,
        )


def _sorted_by_user(source: Any, ts: TargetSet, user_type: pa.DataType) -> bool:
    """Whether ``source`` is a prepared store sorted by the spec's user column, of integer
    or string users (whose ranges SQL literals bound)."""
    from .execute import store as store_mod

    if not isinstance(source, str) or not store_mod.is_store(source):
        return False
    sorted_by = store_mod.read_manifest(source).get("sorted_by") or []
    simple = (
        pa.types.is_integer(user_type)
        or pa.types.is_string(user_type)
        or pa.types.is_large_string(user_type)
    )
    return simple and sorted_by[:1] == [ts.columns.user]


# ---------------------------------------------------------------------------------------------
# running: one per process, holding the events of some users (sorted by user and event order)


@dataclass
class _Block:
    """The computed columns of some users, flat, users in the order asked for."""

    lengths: np.ndarray  # events per user
    row_id: torch.Tensor  # (n,) int64
    features: dict[str, torch.Tensor]  # name -> (n,)
    scalars: torch.Tensor  # (targets without width, n)
    lists: dict[str, torch.Tensor]  # name -> (n, width)


class _Runner:
    """The events of the users of one shard (or of every user), from the programs'
    prologues, run once on a DuckDB connection that is closed right after; computes the
    targets of any subset of those users with the kernels."""

    def __init__(
        self,
        setup: _Setup,
        shard: tuple[int, int] | None,
        *,
        threads: int | None,
        memory_limit: str | None,
        temp_directory: str | None,
        dtype: torch.dtype,
        kernel_threads: int = 1,
        piece: Piece | None = None,
        buffers_of: _Runner | None = None,
    ) -> None:
        self.pid = os.getpid()
        self.shard = shard
        self.piece = piece
        self.setup = setup
        self.dtype = dtype
        self.kernel_threads = kernel_threads
        part = setup.piece_of(shard, piece)
        self.programs = setup.programs_over(part)
        # compute(reuse=True)'s columns and its kernels' work arrays (those of the runner
        # of the previous piece of a shard: its pages are touched already)
        self._buffers: dict[str, np.ndarray] = {} if buffers_of is None else buffers_of._buffers
        self._scratch = Scratch(0) if buffers_of is None else buffers_of._scratch
        con = _src.connect(
            threads=threads, memory_limit=memory_limit, temp_directory=temp_directory
        )
        inp = setup.input
        inp.register(con)
        try:
            rows = setup.piece_rows(part if part is not None else Piece())
            self.events = [engine.run_prologue(p, con, rows) for p in self.programs]
        except duckdb.Error as e:
            raise _conn.failure(e, "cannot read the input", SourceError) from e
        finally:
            inp.unregister(con)
            con.close()
        first = self.events[0]
        # views of the events where possible: a fresh worker pays for every page it touches
        key = arrays.numpy(first.column("_tb"), np.int64, writable=False)
        for i, ev in enumerate(self.events[1:], start=1):
            if not np.array_equal(arrays.numpy(ev.column("_tb"), np.int64, writable=False), key):
                raise DataError(
                    f"spec {i} orders the events differently from spec 0; is columns.id unique?"
                )
        starts = np.flatnonzero(arrays.user_starts(first.column("_u")))
        self.offsets = np.append(starts, first.num_rows).astype(np.int64)
        self.users = first.column("_u").take(arrays.from_numpy(starts.astype(np.int64)))
        self.users = self.users.combine_chunks()
        del key

    def __len__(self) -> int:
        return len(self.users)

    def close(self) -> None:
        """Drop the events."""
        self.events = []

    def compute(self, pos: np.ndarray, reuse: bool = False) -> _Block:
        """Targets and features of this runner's users at ``pos`` (in that order).

        ``reuse``: the block's columns and the kernels' work arrays are this runner's
        buffers, overwritten by the next call (a streaming worker copies every chunk out
        before it computes the next): a fresh worker then pays for their pages once, not
        once a chunk (60k fewer page faults a worker, 0.15 s, on the torch bench)."""
        a, b = self.offsets[pos], self.offsets[pos + 1]
        lengths = b - a
        n = int(lengths.sum())
        # each user's rows are one run: copied run by run (several times faster than a take)
        runs = list(zip(a.tolist(), b.tolist()))
        if pos.size and np.all(np.diff(pos) == 1):
            runs = [(int(a[0]), int(b[-1]))]

        targets = self.setup.targets
        scalar = [t for t in targets if t.width is None]
        where = {t.name: i for i, t in enumerate(scalar)}
        # the kernels' blocks are written straight into the item dtype (no float64 copy of
        # a whole target, no concatenation), NaN where null
        np_dtype = _NUMPY_FLOATS.get(self.dtype, np.float64)
        empty = self._buffer if reuse else _fresh
        scal = empty("scalars", (len(scalar), n), np_dtype)
        lists = {
            t.name: empty(f"list {t.name}", (n, t.width), np_dtype)
            for t in targets
            if t.width is not None
        }

        def sink(name: str, a: int, b: int, values: np.ndarray, ok: np.ndarray | None) -> None:
            dst = scal[where[name], a:b] if name in where else lists[name][a:b]
            if ok is None:
                dst[...] = values
                return
            # (only the valid values: the others are whatever a kernel left there, which
            # a cast to float32 could warn about)
            np.copyto(dst, values, casting="same_kind", where=ok)
            dst[~ok] = np.nan

        first: pa.Table | None = None
        for prog, ev in zip(self.programs, self.events):
            sub = (
                ev.slice(runs[0][0], runs[0][1] - runs[0][0])
                if len(runs) == 1
                else pa.concat_tables([ev.slice(x, y - x) for x, y in runs]).combine_chunks()
                if runs
                else ev.slice(0, 0)
            )
            first = sub if first is None else first
            compute_arrays(prog, sub, self.kernel_threads, sink, self._scratch if reuse else None)
        assert first is not None
        row_id = empty("row_id", (n,), np.int64)
        row_id[...] = arrays.numpy(first.column("_tb"), np.int64, writable=False)
        return _Block(
            lengths=lengths,
            row_id=torch.from_numpy(row_id),
            features=self._features(first, lengths, np_dtype, empty),
            scalars=torch.from_numpy(scal).to(self.dtype),  # no copy when already that dtype
            lists={k: torch.from_numpy(v).to(self.dtype) for k, v in lists.items()},
        )

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An array of ``shape`` over this runner's buffer ``name`` (grown when too small)."""
        need = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != np.dtype(dtype) or buf.size < need:
            buf = self._buffers[name] = np.empty(need, dtype)
        return buf[:need].reshape(shape)

    def _features(
        self, rows: pa.Table, lengths: np.ndarray, floats: Any, empty: Any = None
    ) -> dict[str, torch.Tensor]:
        """The features of ``rows`` (whole users, ``lengths`` events each), computed here
        per chunk of users (a worker touches each value once, with nothing kept between
        chunks): float features straight in the item dtype."""
        empty = _fresh if empty is None else empty
        feats: dict[str, torch.Tensor] = {}
        n = rows.num_rows
        for f in self.setup.features:
            col = rows.column(f.column)
            if f.kind == "time":  # seconds since the user's first event
                t_us = arrays.numpy(col, np.int64, writable=False)
                starts = np.cumsum(lengths) - lengths
                seconds = np.subtract(t_us, np.repeat(t_us[starts], lengths))
                values = empty(f"feature {f.name}", (n,), floats)
                # in float64, rounded once to the item dtype
                np.divide(seconds, 1e6, out=values, dtype=np.float64, casting="unsafe")
            elif f.kind == "code":
                codes = empty(f"feature {f.name}", (n,), np.int64)
                codes[...] = arrays.numpy(col, np.int64, writable=False)
                if col.null_count:
                    codes[~arrays.valid(col)] = 0
                feats[f.name] = torch.from_numpy(codes)
                continue
            else:
                values = empty(f"feature {f.name}", (n,), floats)
                values[...] = arrays.doubles(col)
                if col.null_count:
                    values[~arrays.valid(col)] = np.nan
            feats[f.name] = torch.from_numpy(values).to(self.dtype)
        return feats


def _fresh(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.empty(shape, dtype)


_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}

#: StreamingTargetDataset._epoch_shared before set_epoch (the smallest int64).
_NO_EPOCH = -(2**63)

# Runners inherited through fork belong to the parent: never touched in the child.
_INHERITED: list[_Runner] = []


def _parts(rows: int, budget: int, users: int) -> int:
    """In how many pieces ``rows`` of ``users`` users are read within ``budget`` rows each
    (no more pieces than users)."""
    return max(1, min(-(-rows // budget), users))


def _cut(piece: Piece, rows: int, budget: int, users: int) -> list[Piece]:
    """``piece`` (whole files of ``rows`` rows of ``users`` users), cut by a hash of the
    user when above ``budget`` rows."""
    parts = _parts(rows, budget, users)
    if parts < 2:
        return [piece]
    return [replace(piece, hashed=(p, parts)) for p in range(parts)]


def _positive(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _check_common(max_len: int | None, keep: str, dtype: Any) -> None:
    if max_len is not None and (
        not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1
    ):
        raise ArgumentError(f"max_len must be a positive integer or None, got {max_len!r}")
    if keep not in KEEP:
        raise ArgumentError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ArgumentError(
            f"dtype must be a floating torch dtype (targets are floats, NaN where null), got "
            f"{dtype!r}"
        )


def _check_time_fits(setup: _Setup, dtype: torch.dtype) -> None:
    """float16 ends at 65,504: the time feature (seconds since the user's first event) would
    be inf after 18 hours."""
    if dtype == torch.float16 and any(f.kind == "time" for f in setup.features):
        raise ArgumentError(
            "dtype torch.float16 cannot hold feature 'time' (seconds since the user's first "
            "event; float16 ends at 65,504 s, 18 hours): use float32, or features without "
            "time"
        )


def _bounds(a: int, b: int, max_len: int | None, keep: str) -> tuple[int, int]:
    if max_len is not None and b - a > max_len:
        return (b - max_len, b) if keep == "last" else (a, a + max_len)
    return a, b


class _Items:
    """Slices items out of flat columns (a :class:`_Block`, or the whole dataset)."""

    def __init__(self, setup: _Setup, max_len: int | None, keep: str) -> None:
        self.int_users = setup.int_users
        self.max_len = max_len
        self.keep = keep
        self.order = [(t.name, t.width) for t in setup.targets]
        scalar = [t.name for t in setup.targets if t.width is None]
        self.scalar_row = {name: i for i, name in enumerate(scalar)}
        self.names = tuple(setup.target_names)

    def user(self, value: Any) -> Any:
        return torch.tensor(value, dtype=torch.int64) if self.int_users else value

    def item(
        self,
        user: Any,
        a: int,
        b: int,
        row_id: torch.Tensor,
        features: Mapping[str, torch.Tensor],
        scalars: torch.Tensor,
        lists: Mapping[str, torch.Tensor],
    ) -> Item:
        a, b = _bounds(a, b, self.max_len, self.keep)
        it = Item(targets=self.names)
        it["user"] = self.user(user)
        it["row_id"] = row_id[a:b].clone()
        it["length"] = torch.tensor(b - a, dtype=torch.int64)
        for name, col in features.items():
            it[name] = col[a:b].clone()
        # the item's scalar targets in one copy (its own storage: an item never holds on to
        # the block it came from), one view per target
        rows = scalars[:, a:b].clone().unbind(0) if self.scalar_row else ()
        for name, width in self.order:
            it[name] = rows[self.scalar_row[name]] if width is None else lists[name][a:b].clone()
        return it

    def batch(
        self, users: Sequence[Any], rows: Sequence[tuple[int, int]], block: _Block
    ) -> dict[str, Any]:
        """The batch :func:`collate` makes of the items of ``users``, whose rows are
        ``rows[j]`` (start, end) of ``block``, built straight from the block's flat
        columns: the same keys in the same order, dtypes, shapes and padding (in shared
        memory inside a DataLoader worker), with no item in between. A key's rows need one
        copy when the users lie next to each other and none is padded or truncated, else
        one per user."""
        spans = [_bounds(a, b, self.max_len, self.keep) for a, b in rows]
        lengths = torch.tensor([b - a for a, b in spans], dtype=torch.int64)
        longest = int(lengths.max()) if spans else 0
        out: dict[str, Any] = {}
        if self.int_users:
            out["user"] = torch.tensor(list(users), dtype=torch.int64)
        else:
            out["user"] = list(users)
        out["length"] = lengths
        out["mask"] = torch.arange(longest)[None, :] < lengths[:, None]
        # the columns in item order, grouped as collate groups them (dtype, item shape)
        columns: list[tuple[str, torch.Tensor]] = [("row_id", block.row_id)]
        columns += list(block.features.items())
        for name, width in self.order:
            src = block.scalars[self.scalar_row[name]] if width is None else block.lists[name]
            columns.append((name, src))
        groups: dict[tuple[Any, ...], list[tuple[str, torch.Tensor]]] = {}
        for name, src in columns:
            groups.setdefault((src.dtype, tuple(src.shape[1:])), []).append((name, src))
            out[name] = None  # (keeps the item key order)
        targets = set(self.names)
        whole = all(b - a == longest for a, b in spans) and bool(spans)
        contiguous = whole and all(spans[j][1] == spans[j + 1][0] for j in range(len(spans) - 1))
        for (dtype, trail), cols in groups.items():
            padded = _empty((len(cols), len(spans), longest, *trail), dtype)
            for k, (name, src) in enumerate(cols):
                dst = padded[k]
                if contiguous:  # every user whole and next to the previous: one copy
                    a0, b0 = spans[0][0], spans[-1][1]
                    dst.view(len(spans) * longest, *trail).copy_(src[a0:b0])
                else:
                    _pad_into(dst, [src[a:b] for a, b in spans], _pad_value(name, src, targets))
                out[name] = dst
        return out


# ---------------------------------------------------------------------------------------------
# the datasets


class TargetDataset(Dataset):  # type: ignore[type-arg]
    """Map-style: one item per user present in ``source``, users in sorted order.

    Every target is computed once, here in ``__init__``, on one DuckDB connection
    (``threads``, ``memory_limit``), which is closed before ``__init__`` returns, and
    ``threads`` kernel threads; the results are kept as flat tensors, and ``ds[i]`` slices them
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

    @pausing
    def __init__(
        self,
        specs: SpecLike | Sequence[SpecLike],
        source: Any,
        *,
        features: Sequence[str] | None = None,
        max_len: int | None = None,
        keep: str = "last",
        dtype: torch.dtype = torch.float32,
        users_per_chunk: int | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
        past_only: bool = False,
    ) -> None:
        if users_per_chunk is not None:
            warnings.warn(
                "TargetDataset(users_per_chunk=...) has no effect: the kernels run over "
                "blocks of about half a million rows and write into the dataset's tensors",
                DeprecationWarning,
                stacklevel=2,
            )
        _check_common(max_len, keep, dtype)
        setup = _setup(specs, source, features, connection, threads, memory_limit, past_only)
        _check_time_fits(setup, dtype)
        self.max_len = max_len
        self.keep = keep
        runner = _Runner(
            setup, None, threads=threads, memory_limit=memory_limit,
            temp_directory=temp_directory, dtype=dtype,
            kernel_threads=threads or min(2, os.cpu_count() or 1),
        )  # fmt: skip
        # every user at once: the kernels run over blocks of about half a million rows on
        # `threads` threads and write straight into the dataset's tensors
        block = runner.compute(np.arange(len(runner)))
        runner.close()
        self._users = runner.users.to_pylist()
        self._offsets = runner.offsets
        self._row_id = block.row_id
        self._features = block.features
        self._scalars = block.scalars
        self._lists = block.lists
        self._setup = replace(setup, input=_src.Input(setup.input.source, setup.input.label))
        self._items = _Items(self._setup, max_len, keep)

    def __len__(self) -> int:
        return len(self._users)

    def __getitem__(self, index: Any) -> Any:
        """``ds[i]``: user ``i``'s item. ``ds[[i, j, ...]]`` (a list, tuple, 1-d array or
        tensor of positions): the batch :func:`collate` would make of those items, built
        straight from the dataset's tensors (no item in between; in shared memory inside a
        DataLoader worker). Use it with ``DataLoader(ds, sampler=BatchSampler(...),
        batch_size=None)``."""
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)) and not (
            isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim == 0
        ):
            if isinstance(index, (list, tuple)) and any(
                isinstance(v, (bool, np.bool_)) for v in index
            ):
                raise TypeError(f"user positions must be integers, got {index!r}")
            positions = np.asarray(index)
            if positions.dtype == np.bool_:
                raise TypeError("user positions must be integers; a boolean mask is not taken")
            if positions.size and not np.issubdtype(positions.dtype, np.integer):
                raise TypeError(f"user positions must be integers, got {positions.dtype}")
            picked = [self._position(i) for i in positions.tolist()]
            if not picked:
                raise IndexError("an empty list of users makes no batch")
            block = _Block(
                lengths=np.diff(self._offsets)[picked],
                row_id=self._row_id,
                features=self._features,
                scalars=self._scalars,
                lists=self._lists,
            )
            rows = [(int(self._offsets[i]), int(self._offsets[i + 1])) for i in picked]
            return self._items.batch([self._users[i] for i in picked], rows, block)
        i = self._position(index)
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._items.item(
            self._users[i], a, b, self._row_id, self._features, self._scalars, self._lists
        )

    def _position(self, index: Any) -> int:
        n = len(self._users)
        if isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim == 0:
            integral = (
                np.issubdtype(index.dtype, np.integer)
                if isinstance(index, np.ndarray)
                else not (
                    index.dtype == torch.bool or index.is_floating_point() or index.is_complex()
                )
            )
            if not integral:  # (a 0-d float or bool tensor read as int took item 1 for 1.7)
                raise TypeError(f"user index must be an integer, got {index!r}")
            index = index.item()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"user index must be an integer or a list of them, got {index!r}")
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"user index {index} out of range for {n} users")
        return i

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
        return self._setup.target_names

    @property
    def feature_names(self) -> list[str]:
        """The feature keys of an item."""
        return self._setup.feature_names

    def __repr__(self) -> str:
        return (
            f"TargetDataset(users={len(self)}, events={int(self._offsets[-1])}, "
            f"targets={len(self.target_names)}, features={self.feature_names})"
        )


class StreamingTargetDataset(IterableDataset):  # type: ignore[type-arg]
    """An ``IterableDataset`` computing targets on the fly, ``users_per_chunk`` users at a
    time, inside each DataLoader worker (or the main process with ``num_workers=0``).

    Users are sharded over the workers by whole files when every user's rows lie in one
    file of a multi-file Parquet input and the files can be shared out evenly (each worker
    then reads only its files), by runs of users of a prepared store (each worker reads
    its row groups), else by a hash of the user (worker ``w`` of ``W`` takes the
    users with ``hash(user) % W == w``); either way each user comes exactly once per epoch
    and a user's events are never split. On its first pass each process opens its own DuckDB
    connection (``threads``: default 1 in a worker, 2 in the main process; ``memory_limit``)
    and reads its users' input rows once (only the columns the specs and features need);
    later passes in the same process (``persistent_workers=True``, or ``num_workers=0``)
    reuse them. ``__init__`` only validates, renders the SQL and lists the users, so the
    dataset is small to pickle and works with the fork, spawn and forkserver start methods.

    ``shuffle=True`` permutes each worker's users (and so the chunks) every epoch, from
    ``seed``, the epoch (:meth:`set_epoch`, else a count of passes in this process) and,
    without :meth:`set_epoch`, the DataLoader's per-epoch worker seed. Other arguments are
    those of :class:`TargetDataset`.

    ``batch_size=B`` makes the dataset yield batches instead of items: each chunk of users
    (``users_per_chunk`` rounded up to a multiple of ``B``) is cut into batches of ``B``
    users (a worker's last one may be smaller; ``drop_last=True`` drops it), each exactly
    what :func:`collate` makes of those users' items (``max_len`` and ``keep`` apply),
    padded straight from the computed columns: no item is built and no row copied twice.
    Use it with ``DataLoader(ds, batch_size=None)``. ``len(ds)`` then raises ``TypeError``
    (how many batches each worker's shard makes is known only inside the workers); the
    user count is ``len(ds.users)``.

    ``rows_per_read`` bounds memory: when a process's share of the input has more rows
    than that, it reads its users in pieces, one after another, computing each piece's
    users before the next is read, and keeps nothing between passes. Users in whole Parquet
    files: pieces of whole files of at most that many rows (a larger file cut by a hash of
    the user). A prepared store: runs of users. Else (users spread over files, an Arrow
    table): pieces by a hash of the user, each of them a scan of the whole input. With ``shuffle=True`` the pieces come in a random order
    and the users of each piece in a random order (batches across a piece boundary are
    still full). ``None``: always read at once.

    >>> import pyarrow as pa
    >>> tx = pa.table({"u": [2, 1, 2], "t": [1, 2, 3], "a": [1.0, 2.0, 4.0], "m": [1, 2, 3]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "time": {"unit": "s"},
    ...         "targets": [{"name": "n", "agg": "count",
    ...                      "window": {"kind": "expanding", "period": "day"}}]}
    >>> ds = StreamingTargetDataset(spec, tx, users_per_chunk=1)
    >>> [(it["user"].item(), it["n"].tolist()) for it in ds]
    [(1, [1.0]), (2, [1.0, 2.0])]
    >>> batched = StreamingTargetDataset(spec, tx, batch_size=2)
    >>> [(b["user"].tolist(), b["n"].tolist(), b["mask"].tolist()) for b in batched]
    [([1, 2], [[1.0, nan], [1.0, 2.0]], [[True, False], [True, True]])]
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
        past_only: bool = False,
        batch_size: int | None = None,
        drop_last: bool = False,
        rows_per_read: int | None = READ_ROWS,
    ) -> None:
        _check_common(max_len, keep, dtype)
        if not _positive(users_per_chunk):
            raise ArgumentError(
                f"users_per_chunk must be a positive integer, got {users_per_chunk!r}"
            )
        if rows_per_read is not None and not _positive(rows_per_read):
            raise ArgumentError(
                f"rows_per_read must be a positive integer or None, got {rows_per_read!r}"
            )
        if batch_size is not None and not _positive(batch_size):
            raise ArgumentError(
                f"batch_size must be a positive integer or None, got {batch_size!r}"
            )
        if drop_last and batch_size is None:
            raise ArgumentError("drop_last=True needs batch_size (the dataset yields items)")
        self._setup = _setup(specs, source, features, connection, threads, memory_limit, past_only)
        _check_time_fits(self._setup, dtype)
        self._items = _Items(self._setup, max_len, keep)
        self.users_per_chunk = users_per_chunk
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.rows_per_read = rows_per_read
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.max_len = max_len
        self.keep = keep
        self.dtype = dtype
        self.threads = threads
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory
        self._epoch: int | None = None
        # the epoch as every process sees it: set_epoch in the main process reaches
        # persistent workers, which started before it (shared memory, inherited by fork, or
        # passed to spawned workers as they start)
        self._epoch_shared: Any = multiprocessing.RawValue("q", _NO_EPOCH)
        self._passes = 0
        self._runner: _Runner | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runner"] = None  # a DuckDB connection does not pickle
        if multiprocessing.context.get_spawning_popen() is None:
            # pickled for anything but starting a worker: shared memory cannot go along
            state["_epoch_shared"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.__dict__.get("_epoch_shared") is None:
            self._epoch_shared = multiprocessing.RawValue("q", _NO_EPOCH)
            if self._epoch is not None:
                self._epoch_shared.value = self._epoch

    def _current_epoch(self) -> int | None:
        shared = self._epoch_shared.value
        return None if shared == _NO_EPOCH else int(shared)

    def __len__(self) -> int:
        if self.batch_size is not None:
            raise TypeError(
                "a StreamingTargetDataset with batch_size has no length: each worker's last "
                "batch may be partial; len(ds.users) is the number of users"
            )
        return len(self._setup.users)

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch the next passes shuffle with, in this process and in the
        DataLoader's workers (also persistent ones, which started before it): an epoch's
        order depends only on ``seed`` and the epoch."""
        epoch = int(epoch)
        if not _NO_EPOCH < epoch < 2**63:  # (what the shared int64 holds)
            raise ArgumentError(f"set_epoch: epoch must be an int64 above {_NO_EPOCH}, got {epoch}")
        self._epoch = epoch
        self._epoch_shared.value = epoch

    @property
    def users(self) -> list[Any]:
        """All user ids, in sorted order (not the order of iteration)."""
        return self._setup.user_values()

    @property
    def target_names(self) -> list[str]:
        """The target keys of an item, in spec order."""
        return self._setup.target_names

    @property
    def feature_names(self) -> list[str]:
        """The feature keys of an item."""
        return self._setup.feature_names

    def _runner_for(self, shard: tuple[int, int] | None, in_worker: bool) -> _Runner:
        """The runner holding the whole shard, kept for later passes in this process."""
        runner = self._runner
        if runner is not None and runner.pid != os.getpid():
            _INHERITED.append(runner)  # forked from another process: leave it alone
            runner = None
        if runner is not None and (runner.shard != shard or runner.piece is not None):
            runner = None
        if runner is None:
            runner = self._runner = self._new_runner(shard, in_worker)
        return runner

    def _new_runner(
        self,
        shard: tuple[int, int] | None,
        in_worker: bool,
        piece: Piece | None = None,
        buffers_of: _Runner | None = None,
    ) -> _Runner:
        threads = self.threads or (1 if in_worker else min(2, os.cpu_count() or 1))
        return _Runner(
            self._setup, shard, threads=threads, memory_limit=self.memory_limit,
            temp_directory=self.temp_directory, dtype=self.dtype,
            kernel_threads=1 if in_worker else threads, piece=piece, buffers_of=buffers_of,
        )  # fmt: skip

    def _pieces(
        self, shard: tuple[int, int] | None, rng: np.random.Generator | None
    ) -> list[Piece] | None:
        """The pieces this pass reads one after another (in ``rng``'s order), each of about
        ``rows_per_read`` rows at most, or None: the shard is read at once and kept for
        later passes (it is within ``rows_per_read``).

        - users in whole files: groups of whole files; a file of more rows alone, cut by a
          hash of the user when it has more than one user;
        - an input sorted by user (a prepared store): runs of users (each a run of row
          groups);
        - else: shards of a hash of the user, each a scan of the whole input: shard (w, W)
          in P pieces is hash shards (w + W p, W P)."""
        setup = self._setup
        budget = self.rows_per_read
        if budget is None:
            return None
        whole = setup.piece_of(shard) or Piece()
        if setup.piece_rows(whole) <= budget:
            return None
        files = setup.shard_files(shard)
        users = setup.shard_users(shard)
        pieces: list[Piece] = []
        if files is not None and setup.file_rows is not None:
            if rng is not None:
                files = [files[k] for k in rng.permutation(len(files))]
            group: list[int] = []
            held = 0
            for f in [*files, -1]:
                rows = int(setup.file_rows[f]) if f >= 0 else 0
                if group and (f < 0 or held + rows > budget):
                    users_in = (
                        int(setup.file_users[group].sum()) if setup.file_users is not None else held
                    )
                    pieces += _cut(Piece(files=tuple(group)), held, budget, users_in)
                    group, held = [], 0
                if f >= 0:
                    group.append(f)
                    held += rows
            return pieces
        if users is not None:
            a, b = users
            ends = np.cumsum(setup.counts[a:b])
            start = a
            while start < b:  # the most users within the budget, at least one
                held = ends[start - a - 1] if start > a else 0
                stop = a + int(np.searchsorted(ends, held + budget, side="right"))
                stop = max(stop, start + 1)
                pieces.append(Piece(users=(start, stop)))
                start = stop
        else:
            w, n = shard if shard is not None else (0, 1)
            parts = _parts(setup.piece_rows(whole), budget, -(-len(setup.users) // n))
            pieces = [Piece(hashed=(w + n * p, n * parts)) for p in range(parts)]
        if rng is not None:
            pieces = [pieces[k] for k in rng.permutation(len(pieces))]
        return pieces

    def _runs(
        self,
        shard: tuple[int, int] | None,
        in_worker: bool,
        rng: np.random.Generator | None,
    ) -> Iterator[tuple[_Runner, np.ndarray, bool]]:
        """(runner, the order of its users, whether it is the pass's last) for each piece
        of this pass; a piece's events are let go before the next piece is read."""
        pieces = self._pieces(shard, rng)
        if pieces is None:
            runner = self._runner_for(shard, in_worker)
            n = len(runner)
            yield runner, (rng.permutation(n) if rng is not None else np.arange(n)), True
            return
        if self._runner is not None and self._runner.pid != os.getpid():
            _INHERITED.append(self._runner)  # forked from another process: leave it alone
        self._runner = None  # (a whole shard kept by an earlier pass)
        runner = None
        for k, piece in enumerate(pieces):
            if runner is not None:
                runner.close()
            runner = self._new_runner(shard, in_worker, piece, buffers_of=runner)
            n = len(runner)
            order = rng.permutation(n) if rng is not None else np.arange(n)
            yield runner, order, k == len(pieces) - 1
        if runner is not None:
            runner.close()

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        if info is not None:
            # objects inherited from the parent are never collected here: the worker's
            # collections then leave their pages alone instead of copying them (fork's
            # copy-on-write; 20k fewer page faults a worker on the torch bench)
            gc.freeze()
        shard = (info.id, info.num_workers) if info is not None and info.num_workers > 1 else None
        self._passes += 1
        rng = None
        if self.shuffle:
            w = info.id if info is not None else 0
            epoch = self._current_epoch()
            if epoch is not None:
                entropy = [self.seed, epoch, w]
            else:
                entropy = [self.seed, self._passes, info.seed if info is not None else 0, w]
            rng = np.random.default_rng(entropy)
        runs = self._runs(shard, info is not None, rng)
        if self.batch_size is not None:
            yield from self._batches(runs)
            return
        for runner, order, _ in runs:
            # (no pa.array on NumPy indices: pyarrow's pandas shim imports pandas, 0.17 s)
            values = runner.users.to_pylist()
            for sl in _chunks(len(order), self.users_per_chunk):
                want = order[sl].tolist()
                block = runner.compute(order[sl], reuse=True)  # copied out before the next chunk
                yield from self._block_items(block, [values[p] for p in want], slice(0, len(want)))

    def _block_items(self, block: _Block, users: list[Any], span: slice) -> Iterator[Item]:
        """The items of the ``span`` of ``block``'s users (whose ids are ``users``): each
        its own copy of its rows."""
        offsets = np.concatenate([[0], np.cumsum(block.lengths)]).tolist()
        for j in range(span.start, span.stop):
            yield self._items.item(
                users[j], offsets[j], offsets[j + 1], block.row_id, block.features,
                block.scalars, block.lists,
            )  # fmt: skip

    def _batches(self, runs: Iterator[tuple[_Runner, np.ndarray, bool]]) -> Iterator[Any]:
        """Batches of ``batch_size`` users, built straight from each computed chunk; the
        users a piece leaves over (fewer than a batch) wait, as items, for the next piece's
        first users, and are then collated with them (the same batch, by :func:`collate`)."""
        size = self.batch_size
        assert size is not None
        chunk = size * -(-self.users_per_chunk // size)
        items = self._items
        carry: list[Item] = []
        for runner, order, last in runs:
            # (no pa.array on NumPy indices: pyarrow's pandas shim imports pandas, 0.17 s)
            values = runner.users.to_pylist()
            if carry and len(order):  # the batch the previous piece began
                want = order[: size - len(carry)]
                order = order[len(want) :]
                block = runner.compute(want, reuse=True)
                carry += self._block_items(
                    block, [values[p] for p in want.tolist()], slice(0, len(want))
                )
                if len(carry) < size:
                    continue
                yield collate(carry, targets=items.names)
                carry = []
            for sl in _chunks(len(order), chunk):
                want = order[sl]
                block = runner.compute(want, reuse=True)  # copied out before the next chunk
                offsets = np.concatenate([[0], np.cumsum(block.lengths)]).tolist()
                wanted = want.tolist()
                for b in _chunks(len(wanted), size):
                    if b.stop - b.start < size and not last:
                        # (items: their own copies, while the buffers are reused)
                        carry = list(self._block_items(block, [values[p] for p in wanted], b))
                        break
                    if b.stop - b.start < size and self.drop_last:
                        break
                    rows = list(zip(offsets[b.start : b.stop], offsets[b.start + 1 : b.stop + 1]))
                    yield items.batch([values[p] for p in wanted[b]], rows, block)
        if carry and not self.drop_last:
            yield collate(carry, targets=items.names)

    def __repr__(self) -> str:
        return (
            f"StreamingTargetDataset(users={len(self._setup.users)}, "
            f"targets={len(self.target_names)}, features={self.feature_names}, "
            f"users_per_chunk={self.users_per_chunk}, batch_size={self.batch_size}, "
            f"rows_per_read={self.rows_per_read}, shuffle={self.shuffle})"
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
        raise ArgumentError("collate: empty batch")
    if keep not in KEEP:
        raise ArgumentError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if max_len is not None and (
        not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1
    ):
        raise ArgumentError(f"max_len must be a positive integer or None, got {max_len!r}")
    first = batch[0]
    keys = list(first)
    for j, it in enumerate(batch):
        if list(it) != keys:
            raise ArgumentError(
                f"collate: item {j} has keys {list(it)}, item 0 {keys}: items of one batch "
                "come from one dataset"
            )
    if targets is None:
        targets = getattr(first, "targets", None)
    target_set = set(targets) if targets is not None else None
    full = [int(it["row_id"].shape[0]) for it in batch]
    spans = [_bounds(0, n, max_len, keep) for n in full]
    lengths = torch.tensor([b - a for a, b in spans], dtype=torch.int64)
    longest = int(lengths.max()) if len(batch) else 0
    out: dict[str, Any] = {}
    # sequences of one dtype and item shape are padded into one tensor (in shared memory in
    # a DataLoader worker, so that handing the batch over copies nothing), one view per key
    groups: dict[tuple[Any, ...], list[str]] = {}
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
            groups.setdefault((value.dtype, tuple(value.shape[1:])), []).append(key)
            out[key] = None  # (keeps the items' key order)
    if groups:
        full = all(b - a == longest for a, b in spans)  # no padding: one copy per key
        for (dtype, trail), keys in groups.items():
            padded = _empty((len(keys), len(batch), longest, *trail), dtype)
            for j, key in enumerate(keys):
                dst = padded[j]
                parts = [it[key][a:b] for it, (a, b) in zip(batch, spans)]
                if full and all(p.dtype == dtype for p in parts):
                    torch.cat(parts, out=dst.view(len(batch) * longest, *trail))
                else:
                    _pad_into(dst, parts, _pad_value(key, first[key], target_set))
                out[key] = dst
    if "mask" not in out:
        out["mask"] = torch.arange(longest)[None, :] < lengths[:, None]
        out.setdefault("length", lengths)
    return out


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor, in shared memory inside a DataLoader worker (as torch's own
    ``default_collate`` does): the batch then goes to the main process without a copy."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = 1
    for n in shape:
        numel *= n
    proto = torch.empty(0, dtype=dtype)
    storage = proto._typed_storage()._new_shared(numel, device=proto.device)
    return proto.new(storage).view(shape)


def _pad_into(dst: torch.Tensor, parts: Sequence[torch.Tensor], pad: float) -> None:
    """Each part's events into its row of ``dst``, then padding after them (each byte
    written once)."""
    longest = dst.shape[1]
    for i, part in enumerate(parts):
        n = part.shape[0]
        dst[i, :n] = part
        if n < longest:
            dst[i, n:] = pad


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
