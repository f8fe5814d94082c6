"""sqltargets.torch: datasets, DataLoader workers and start methods, pickling, collate.

The reference is :func:`sqltargets.generate` over the same source: every item's tensors must
equal its rows, matched by ``row_id``, in the same event order.
"""

from __future__ import annotations

import functools
import itertools
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

import sqltargets  # noqa: E402
from sqltargets.demo import make_transactions  # noqa: E402
from sqltargets.errors import DataError, SpecError  # noqa: E402
from sqltargets.torch import (  # noqa: E402
    Item,
    StreamingTargetDataset,
    TargetDataset,
    collate,
)
from tests.conftest import examples  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = sqltargets.load(ROOT / "examples" / "demo.yaml")  # 20 targets, one top_k
TOPK = "top3_month"
N_USERS = 40


@pytest.fixture(scope="module")
def tx() -> pa.Table:
    return make_transactions(N_USERS, seed=3, ties=0.1, shuffle=True)


@pytest.fixture(scope="module")
def parquet(tx: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet files, written out of name order, users spread over several files."""
    folder = tmp_path_factory.mktemp("torch_data")
    third = tx.num_rows // 3
    parts = {"b.parquet": tx.slice(0, third), "a.parquet": tx.slice(third, third)}
    parts["c.parquet"] = tx.slice(2 * third)
    for name, part in parts.items():
        pq.write_table(part, folder / name, row_group_size=500)
    return folder


class Reference:
    """generate's output by row key (row_id, or the id), and per user its row keys in order."""

    def __init__(self, spec: Any, source: Any, inputs: pa.Table, **kw: Any) -> None:
        ts = sqltargets.load(spec)
        out = sqltargets.generate(ts, source, **kw)
        rid = out.column(ts.key_column()).to_numpy()
        self.keys = np.sort(rid)  # values[name][self.at(keys)]
        at = self.at(rid)
        self.values: dict[str, np.ndarray] = {}
        for t in ts.targets:
            col = out.column(t.name)
            if t.agg == "top_k":
                rows = [[math.nan if v is None else v for v in r] for r in col.to_pylist()]
                vals = np.array(rows, float).reshape(-1, t.k)
            else:
                vals = col.to_numpy(zero_copy_only=False).astype(float)
            arr = np.full_like(vals, np.nan)
            arr[at] = vals
            self.values[t.name] = arr
        users = out.column(ts.columns.user).to_pylist()
        self.rows: dict[Any, list[int]] = {}
        for u, r in zip(users, rid.tolist()):
            self.rows.setdefault(u, []).append(r)
        # input columns by row key (the input position, or the id)
        pos = (
            np.arange(inputs.num_rows)
            if ts.columns.id is None
            else inputs.column(ts.columns.id).to_numpy()
        )
        at = self.at(pos)
        self.amount = np.empty(len(at))
        self.amount[at] = inputs.column(ts.columns.amount).to_numpy()
        self.mcc = np.empty(len(at), np.int64)
        self.mcc[at] = inputs.column(ts.columns.mcc).to_numpy()
        t_us = inputs.column(ts.columns.time).cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
        self.t_us = np.empty(len(at), np.int64)
        self.t_us[at] = t_us

    def at(self, keys: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.keys, keys)
        assert (self.keys[i] == keys).all(), "unknown row key"
        return i

    def check_item(self, user: Any, values: dict[str, torch.Tensor], *, tail: int = 0) -> None:
        """One user's tensors (unpadded) against the reference rows."""
        rid = values["row_id"].numpy()
        expected = self.rows[user][-tail:] if tail else self.rows[user]
        assert rid.tolist() == expected, f"user {user}: row ids or event order differ"
        at = self.at(rid)
        for name, ref in self.values.items():
            got = values[name].double().numpy()
            np.testing.assert_allclose(got, ref[at], rtol=1e-9, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(values["amount"].double().numpy(), self.amount[at])
        assert values["mcc"].dtype == torch.int64
        np.testing.assert_array_equal(values["mcc"].numpy(), self.mcc[at])
        first = self.t_us[self.at(np.array([self.rows[user][0]]))[0]]
        np.testing.assert_allclose(values["time"].double().numpy(), (self.t_us[at] - first) / 1e6)

    def check_batch(self, batch: dict[str, Any]) -> list[Any]:
        users = batch["user"].tolist() if torch.is_tensor(batch["user"]) else batch["user"]
        mask = batch["mask"]
        assert mask.dtype == torch.bool and mask.shape == batch["row_id"].shape
        assert batch["length"].tolist() == mask.sum(1).tolist()
        for i, user in enumerate(users):
            m = mask[i]
            assert bool(m[: int(batch["length"][i])].all())  # right padding
            assert (batch["row_id"][i][~m] == -1).all()
            row = {k: v[i][m] for k, v in batch.items() if k not in ("user", "length", "mask")}
            for name, v in row.items():
                if name in self.values:
                    assert torch.isnan(batch[name][i][~m]).all(), f"{name} pads with NaN"
                elif v.is_floating_point():
                    assert (batch[name][i][~m] == 0).all(), f"{name} pads with 0"
            self.check_item(user, row)
        return users


@pytest.fixture(scope="module")
def ref(parquet: Path, tx: pa.Table) -> Reference:
    files = sorted(parquet.glob("*.parquet"))
    inputs = pa.concat_tables([pq.read_table(f) for f in files])
    return Reference(SPEC, parquet, inputs)


def make(kind: str, source: Any, spec: Any = SPEC, **kw: Any) -> Any:
    if kind == "map":
        for name in ("users_per_chunk", "shuffle", "seed"):
            kw.pop(name, None)
        return TargetDataset(spec, source, **kw)
    return StreamingTargetDataset(spec, source, **kw)


def epoch(ds: Any, ref: Reference, **loader: Any) -> list[Any]:
    loader.setdefault("batch_size", 6)
    loader.setdefault("collate_fn", collate)
    seen: list[Any] = []
    for batch in DataLoader(ds, **loader):
        seen += ref.check_batch(batch)
    return seen


# --------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("kind", ["map", "stream"])
def test_two_workers_see_every_user_once_with_generate_values(
    kind: str, parquet: Path, ref: Reference
) -> None:
    ds = make(kind, parquet, users_per_chunk=7, dtype=torch.float64, shuffle=True)
    assert len(ds) == N_USERS
    seen = epoch(ds, ref, num_workers=2)
    assert len(seen) == N_USERS and sorted(seen) == sorted(ref.rows)


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker")
def test_workers_read_only_their_files_when_users_keep_to_one_file(
    tx: pa.Table, tmp_path: Path
) -> None:
    """Each user's rows in one file: each worker reads whole files (shared out by rows), not
    every file for a hash of the users; row ids still count over every file. Users spread
    over files: the hash shards (see the test above)."""
    users = sorted(set(tx.column("user_id").to_pylist()))
    cuts = [users[len(users) * k // 5] for k in (1, 2, 3, 4)]  # five files of users
    part = np.searchsorted(cuts, tx.column("user_id").to_numpy(), side="right")
    for k in range(5):
        pq.write_table(tx.filter(pa.array(part == k)), tmp_path / f"p{4 - k}.parquet")
    ref = Reference(SPEC, tmp_path, pa.concat_tables(
        [pq.read_table(f) for f in sorted(tmp_path.glob("*.parquet"))]
    ))  # fmt: skip
    ds = StreamingTargetDataset(SPEC, tmp_path, users_per_chunk=6, dtype=torch.float64)
    assert ds._setup.file_rows is not None and len(ds._setup.file_rows) == 5
    reads = [ds._setup.programs_for((w, 2))[0].prologue for w in (0, 1)]
    for k in range(5):  # each file read by exactly one of the two workers
        assert sum(f"p{k}.parquet" in sql for sql in reads) == 1
    assert not any("HASH(" in sql.upper() for sql in reads)
    seen = epoch(ds, ref, num_workers=2, batch_size=5)
    assert sorted(seen) == users
    # three workers cannot share five files of these sizes evenly: a hash of the users
    assert "HASH(" in ds._setup.programs_for((0, 3))[0].prologue.upper()
    seen = epoch(ds, ref, num_workers=3, batch_size=5)
    assert sorted(seen) == users


def test_users_spread_over_files_are_sharded_by_hash(parquet: Path) -> None:
    ds = StreamingTargetDataset(SPEC, parquet, users_per_chunk=6)
    assert ds._setup.file_rows is None
    assert "HASH(" in ds._setup.programs_for((1, 2))[0].prologue.upper()


@pytest.mark.parametrize(
    "kind,method,workers",
    [("stream", "spawn", 2), ("stream", "forkserver", 1), ("map", "spawn", 1)],
)
def test_start_methods(kind: str, method: str, workers: int, parquet: Path, ref: Reference) -> None:
    ds = make(kind, parquet, users_per_chunk=16, dtype=torch.float64, shuffle=True, seed=4)
    seen = epoch(ds, ref, num_workers=workers, multiprocessing_context=method, batch_size=8)
    assert sorted(seen) == sorted(ref.rows)


def _collate_in_shared_memory(items: list[Any]) -> dict[str, Any]:
    out = collate(items)
    padded = [k for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() >= 2]
    out["built_shared"] = [k for k in padded if out[k].is_shared()]
    out["padded"] = padded
    return out


def test_worker_batches_are_built_in_shared_memory(parquet: Path, ref: Reference) -> None:
    """In a worker, collate pads straight into shared memory, so handing a batch to the main
    process copies nothing; padded and unpadded batches hold the generate values."""
    ds = StreamingTargetDataset(SPEC, parquet, users_per_chunk=5, dtype=torch.float64)
    seen = []
    for batch in DataLoader(ds, batch_size=4, num_workers=1, collate_fn=_collate_in_shared_memory):
        targets_and_features = set(batch["padded"]) - {"mask"}
        assert targets_and_features and targets_and_features <= set(batch["built_shared"])
        seen += ref.check_batch(
            {k: v for k, v in batch.items() if k not in ("padded", "built_shared")}
        )
    assert sorted(seen) == sorted(ref.rows)
    # one user per batch: nothing to pad (the path that copies each key once)
    one = list(DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate))
    assert len(one) == N_USERS and all(bool(b["mask"].all()) for b in one)
    assert sorted(u for b in one for u in ref.check_batch(b)) == sorted(ref.rows)


def _same_batches(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert list(g) == list(w)  # the same keys, in the same order
        for k, v in w.items():
            if torch.is_tensor(v):
                assert g[k].dtype == v.dtype and g[k].shape == v.shape, k
                assert torch.equal(g[k].isnan(), v.isnan()) if v.is_floating_point() else True
                assert torch.equal(g[k].nan_to_num(), v.nan_to_num()), k
            else:
                assert g[k] == v, k


@pytest.mark.parametrize(
    "workers,max_len,keep,batch_size",
    [(0, None, "last", 3), (2, None, "last", 4), (2, 5, "last", 3), (0, 7, "first", 2),
     (2, None, "last", 1)],
)  # fmt: skip
def test_streaming_batches_equal_collated_items(
    workers: int, max_len: int | None, keep: str, batch_size: int, parquet: Path, ref: Reference
) -> None:
    """batch_size=B: the dataset yields exactly the batches collate makes of its items
    (keys, order, dtypes, padding, truncation), chunks of users_per_chunk rounded up to a
    multiple of B, in shared memory inside a worker; drop_last drops each worker's partial
    batch."""
    kw: dict[str, Any] = dict(
        users_per_chunk=7, shuffle=True, seed=5, max_len=max_len, keep=keep, dtype=torch.float64
    )
    items = StreamingTargetDataset(SPEC, parquet, **kw)
    batched = StreamingTargetDataset(SPEC, parquet, batch_size=batch_size, **kw)
    items.set_epoch(2)
    batched.set_epoch(2)
    coll = functools.partial(collate, max_len=max_len, keep=keep)
    want = list(DataLoader(items, batch_size=batch_size, num_workers=workers, collate_fn=coll))
    got = list(DataLoader(batched, batch_size=None, num_workers=workers))
    _same_batches(got, want)
    assert sum(len(b["user"]) for b in got) == N_USERS
    if workers:
        padded = [k for k, v in got[0].items() if torch.is_tensor(v) and v.dim() >= 2]
        assert all(got[0][k].is_shared() for k in padded if k != "mask")
    if max_len is None:
        seen = [u for b in got for u in ref.check_batch(b)]
        assert sorted(seen) == sorted(ref.rows)
    dropping = StreamingTargetDataset(SPEC, parquet, batch_size=batch_size, drop_last=True, **kw)
    dropping.set_epoch(2)
    kept = list(DataLoader(dropping, batch_size=None, num_workers=workers))
    _same_batches(kept, [b for b in got if len(b["user"]) == batch_size])
    assert N_USERS - sum(len(b["user"]) for b in kept) < batch_size * max(workers, 1)


def test_streaming_batches_of_equal_length_users_and_string_ids() -> None:
    """Users of one length: each key of a batch is one copy of the chunk's rows; string
    users come as a list; values equal generate's."""
    tx = make_transactions(9, seed=2, ties=0.2, shuffle=True)
    users = tx.column("user_id").to_numpy()
    first = np.concatenate([np.flatnonzero(users == u)[:11] for u in np.unique(users)])
    tx = tx.take(pa.array(np.sort(first)))
    tx = tx.set_column(0, "user_id", pa.array([f"u{v}" for v in tx.column(0).to_pylist()]))
    ref = Reference(SPEC, tx, tx)
    items = StreamingTargetDataset(SPEC, tx, users_per_chunk=4, dtype=torch.float64)
    batched = StreamingTargetDataset(SPEC, tx, users_per_chunk=4, batch_size=2, dtype=torch.float64)
    want = list(DataLoader(items, batch_size=2, collate_fn=collate))
    got = list(batched)
    _same_batches(got, want)
    assert all(bool(b["mask"].all()) and b["row_id"].shape[1] == 11 for b in got)
    assert isinstance(got[0]["user"], list) and isinstance(got[0]["user"][0], str)
    assert sorted(u for b in got for u in ref.check_batch(b)) == batched.users


def test_streaming_batch_size_arguments(parquet: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        StreamingTargetDataset(SPEC, parquet, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        StreamingTargetDataset(SPEC, parquet, batch_size=True)
    with pytest.raises(ValueError, match="drop_last=True needs batch_size"):
        StreamingTargetDataset(SPEC, parquet, drop_last=True)
    ds = StreamingTargetDataset(SPEC, parquet, batch_size=8)
    with pytest.raises(TypeError, match="no length"):
        len(ds)
    assert len(ds.users) == N_USERS and "batch_size=8" in repr(ds)
    with pytest.raises(TypeError):
        len(DataLoader(ds, batch_size=None))


# ------------------------------------------------------------------ reading in pieces


@pytest.fixture(scope="module")
def user_files(tx: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six Parquet files, each holding whole users (of unequal row counts), named out of
    user order."""
    folder = tmp_path_factory.mktemp("user_files")
    users = sorted(set(tx.column("user_id").to_pylist()))
    cuts = [users[k] for k in (3, 10, 17, 20, 31)]  # files of 3, 7, 7, 3, 11, 9 users
    part = np.searchsorted(cuts, tx.column("user_id").to_numpy(), side="right")
    for k in range(6):
        pq.write_table(tx.filter(pa.array(part == k)), folder / f"p{(5 - k) * 7 % 6}.parquet")
    return folder


@pytest.fixture(scope="module")
def user_files_ref(user_files: Path) -> Reference:
    files = sorted(user_files.glob("*.parquet"))
    return Reference(SPEC, user_files, pa.concat_tables([pq.read_table(f) for f in files]))


def _held_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The events each runner of this process holds, in order of reading."""
    held: list[int] = []
    init = sqltargets.torch._Runner.__init__

    def spy(self: Any, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        held.append(self.events[0].num_rows)

    monkeypatch.setattr(sqltargets.torch._Runner, "__init__", spy)
    return held


@pytest.mark.parametrize("shuffle", [False, True])
def test_streaming_reads_whole_files_in_pieces_of_rows_per_read(
    shuffle: bool, user_files: Path, user_files_ref: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rows_per_read bounds what a process holds: its files are read in groups of at most
    that many rows, one after another; every user comes once with generate's values;
    nothing is kept for the next pass."""
    rows = np.array([pq.ParquetFile(f).metadata.num_rows for f in sorted(user_files.glob("*"))])
    budget = int(rows.max())
    held = _held_rows(monkeypatch)
    ds = StreamingTargetDataset(
        SPEC, user_files, users_per_chunk=4, shuffle=shuffle, rows_per_read=budget,
        dtype=torch.float64,
    )  # fmt: skip
    seen = epoch(ds, user_files_ref, batch_size=5)
    assert sorted(seen) == sorted(user_files_ref.rows)
    assert 3 <= len(held) < 6 and sum(held) == rows.sum() and max(held) <= budget
    assert ds._runner is None  # held nothing after the pass
    pieces = ds._pieces(None, None)
    assert pieces is not None and all(p.hashed is None and p.users is None for p in pieces)
    assert sorted(f for p in pieces for f in p.files) == list(range(6))
    if not shuffle:  # pieces of files in name order, each piece's users in order
        assert [f for p in pieces for f in p.files] == list(range(6))
        files = sorted(user_files.glob("*.parquet"))
        users = [set(pq.read_table(f)["user_id"].to_pylist()) for f in files]
        want = [sorted(set().union(*(users[f] for f in p.files))) for p in pieces]
        assert seen == [u for part in want for u in part]
    held.clear()
    at_once = StreamingTargetDataset(SPEC, user_files, rows_per_read=int(rows.sum()))
    assert len(list(at_once)) == len(list(at_once)) == N_USERS
    assert held == [rows.sum()]  # read once, kept for the second pass


def test_a_file_above_rows_per_read_is_cut_by_a_hash_of_the_user(
    user_files: Path, user_files_ref: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of more rows than rows_per_read is read in hash pieces of its users (that
    file only), never more pieces than it has users."""
    files = sorted(user_files.glob("*"))
    rows = np.array([pq.ParquetFile(f).metadata.num_rows for f in files])
    users = [len(set(pq.read_table(f)["user_id"].to_pylist())) for f in files]
    big = int(rows.argmax())
    budget = -(-int(rows.max()) // 3)
    held = _held_rows(monkeypatch)
    ds = StreamingTargetDataset(SPEC, user_files, rows_per_read=budget, dtype=torch.float64)
    pieces = ds._pieces(None, None)
    assert pieces is not None
    assert [p.hashed for p in pieces if p.files == (big,)] == [(0, 3), (1, 3), (2, 3)]
    for p in pieces:  # whole files within the budget, or one file cut in hash shards
        if p.hashed is None:
            assert rows[list(p.files)].sum() <= budget
        else:
            (f,) = p.files
            assert rows[f] > budget and p.hashed[1] == min(-(-rows[f] // budget), users[f])
    seen = epoch(ds, user_files_ref, batch_size=4)
    assert sorted(seen) == sorted(user_files_ref.rows) and sum(held) == rows.sum()
    assert len(held) == len(pieces) and max(held) < rows.max()
    held.clear()
    one_at_a_time = StreamingTargetDataset(SPEC, user_files, rows_per_read=1)
    assert sorted(it["user"].item() for it in one_at_a_time) == one_at_a_time.users
    assert len(held) == sum(users) == N_USERS and sum(held) == rows.sum()


@pytest.mark.parametrize("workers,batch_size", [(0, 4), (2, 3), (2, 1), (0, 16)])
def test_streaming_batches_across_pieces_are_full_and_equal_collate(
    workers: int, batch_size: int, user_files: Path, user_files_ref: Reference
) -> None:
    """Batches in pieces: users a piece leaves over are batched with the next piece's, so
    only a worker's last batch may be partial (or dropped); each batch is what collate
    makes of the same users' items."""
    kw: dict[str, Any] = dict(users_per_chunk=5, shuffle=True, seed=2, dtype=torch.float64)
    whole = StreamingTargetDataset(SPEC, user_files, rows_per_read=None, **kw)
    items = {int(it["user"]): it for it in whole}
    for drop_last in (False, True):
        ds = StreamingTargetDataset(
            SPEC, user_files, batch_size=batch_size, rows_per_read=1, drop_last=drop_last, **kw
        )
        got = list(DataLoader(ds, batch_size=None, num_workers=workers))
        sizes = [len(b["user"]) for b in got]
        partial = [s for s in sizes if s < batch_size]
        assert len(partial) <= max(workers, 1) and not (drop_last and partial)
        want = [
            collate([items[u] for u in b["user"].tolist()], targets=ds.target_names) for b in got
        ]
        _same_batches(got, want)
        users = [u for b in got for u in user_files_ref.check_batch(b)]
        assert len(users) == len(set(users))
        if drop_last:
            assert N_USERS - len(users) < batch_size * max(workers, 1)
        else:
            assert sorted(users) == sorted(items)


def test_streaming_pieces_shuffle_per_epoch_and_with_persistent_workers(user_files: Path) -> None:
    ds = StreamingTargetDataset(
        _small_spec(), user_files, users_per_chunk=3, shuffle=True, rows_per_read=1
    )
    first = [it["user"].item() for it in ds]
    second = [it["user"].item() for it in ds]
    assert sorted(first) == sorted(second) == ds.users and first != second
    ds.set_epoch(3)
    assert [it["user"].item() for it in ds] == [it["user"].item() for it in ds]
    ds = StreamingTargetDataset(
        _small_spec(), user_files, users_per_chunk=3, shuffle=True, rows_per_read=1
    )
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    orders = [[it["user"].item() for it in loader] for _ in range(2)]
    for order in orders:
        assert sorted(order) == ds.users
    assert orders[0] != orders[1]


def test_rows_per_read_argument(user_files: Path, parquet: Path) -> None:
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(ValueError, match="rows_per_read must be a positive integer or None"):
            StreamingTargetDataset(SPEC, user_files, rows_per_read=bad)
    assert "rows_per_read=None" in repr(StreamingTargetDataset(SPEC, parquet, rows_per_read=None))
    # a piece per user at most
    ds = StreamingTargetDataset(SPEC, parquet, rows_per_read=1)
    pieces = ds._pieces(None, None)
    assert pieces is not None and len(pieces) == N_USERS
    assert StreamingTargetDataset(SPEC, parquet, rows_per_read=10**9)._pieces(None, None) is None


@pytest.mark.parametrize("source", ["parquet", "arrow"])
@pytest.mark.parametrize("workers,batch_size", [(0, None), (2, None), (2, 4)])
def test_users_spread_over_files_are_read_in_hash_pieces(
    source: str,
    workers: int,
    batch_size: int | None,
    parquet: Path,
    ref: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users spread over files (or an Arrow table): pieces by a hash of the user, each a
    scan of the whole input, about rows_per_read rows each; every user once, generate's
    values, full batches across pieces."""
    files = sorted(parquet.glob("*.parquet"))
    inputs = pa.concat_tables([pq.read_table(f) for f in files])
    src: Any = parquet if source == "parquet" else inputs
    total = inputs.num_rows
    held = _held_rows(monkeypatch)
    ds = StreamingTargetDataset(
        SPEC, src, users_per_chunk=4, shuffle=True, rows_per_read=total // 3 + 1,
        batch_size=batch_size, dtype=torch.float64,
    )  # fmt: skip
    assert ds._setup.file_rows is None
    pieces = ds._pieces(None, None)
    assert pieces is not None and sorted(p.hashed for p in pieces) == [(0, 3), (1, 3), (2, 3)]
    if workers:  # hash % 4 in (1, 3): hash % 2 == 1
        assert sorted(p.hashed for p in ds._pieces((1, 2), None)) == [(1, 4), (3, 4)]
    loader = (
        DataLoader(ds, batch_size=None, num_workers=workers)
        if batch_size
        else DataLoader(ds, batch_size=5, num_workers=workers, collate_fn=collate)
    )
    seen: list[Any] = []
    sizes = []
    for batch in loader:
        seen += ref.check_batch(batch)
        sizes.append(len(batch["user"]))
    assert sorted(seen) == sorted(ref.rows)
    if batch_size:
        assert sum(s < batch_size for s in sizes) <= workers
    if not workers:  # three pieces, of the whole input together
        assert len(held) == 3 and sum(held) == total and max(held) < total


@pytest.mark.parametrize("max_len", [None, 4])
def test_map_style_batches_by_list_of_positions(
    max_len: int | None, parquet: Path, ref: Reference
) -> None:
    """ds[[i, j, ...]] is the batch collate makes of those items (any order, repeats,
    negative positions, arrays and tensors of positions); through a BatchSampler with
    batch_size=None the workers build it in shared memory and every user comes once."""
    from torch.utils.data import BatchSampler, RandomSampler

    ds = TargetDataset(SPEC, parquet, dtype=torch.float64, max_len=max_len)
    for idx in ([3, 0, 7], [5], [2, 2, -1], np.array([9, 1]), torch.tensor([4, 6, 8, 10])):
        want = collate([ds[int(i)] for i in np.asarray(idx).tolist()])
        _same_batches([ds[idx]], [want])
    sampler = BatchSampler(RandomSampler(ds), batch_size=6, drop_last=False)
    batches = list(DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2))
    assert sorted(u for b in batches for u in b["user"].tolist()) == ds.users
    padded = [k for k, v in batches[0].items() if torch.is_tensor(v) and v.dim() >= 2]
    assert all(batches[0][k].is_shared() for k in padded if k != "mask")
    if max_len is None:
        assert sorted(u for b in batches for u in ref.check_batch(b)) == sorted(ref.rows)
    with pytest.raises(IndexError, match="empty"):
        ds[[]]
    with pytest.raises(IndexError, match="out of range"):
        ds[[0, N_USERS]]
    with pytest.raises(TypeError, match="integer"):
        ds[[0.5]]
    with pytest.raises(TypeError, match="boolean mask"):
        ds[np.ones(N_USERS, bool)]
    with pytest.raises(TypeError, match="integer"):
        ds["3"]
    # a position is an integer in every spelling; floats and booleans in none (a 0-d float
    # tensor of 1.7 gave item 1, [0, True] the batch of 0 and 1)
    for bad in (torch.tensor(1.7), torch.tensor(True), np.array(1.5), [0, True], (0, np.True_),
                torch.tensor([0.0, 1.0]), np.array([1.5])):  # fmt: skip
        with pytest.raises(TypeError, match="integer"):
            ds[bad]
    want = ds[3]["row_id"].tolist()
    for good in (3, np.int64(3), np.array(3), torch.tensor(3), torch.tensor(3, dtype=torch.int32)):
        assert ds[good]["row_id"].tolist() == want


def test_items_own_their_memory(parquet: Path) -> None:
    """An item kept by the caller holds its own events only, not the chunk it came from."""
    ds = StreamingTargetDataset(SPEC, parquet, users_per_chunk=50, dtype=torch.float64)
    it = next(iter(ds))
    n = int(it["length"])
    scalar = [k for k in it.targets if it[k].dim() == 1]
    for k in it:
        if isinstance(it[k], torch.Tensor) and it[k].dim() >= 1:
            per_row = it[k].element_size() * (it[k][0].numel() if it[k].dim() > 1 else 1)
            limit = per_row * n * (len(scalar) if k in scalar else 1)
            assert it[k].untyped_storage().nbytes() <= limit, k


def test_default_dtype_is_float32(parquet: Path, ref: Reference) -> None:
    ds = StreamingTargetDataset(SPEC, parquet, users_per_chunk=50)
    items = list(ds)
    assert len(items) == N_USERS
    for it in items[:5]:
        assert it["grocery_week_sum"].dtype == torch.float32
        assert it[TOPK].dtype == torch.float32 and it["mcc"].dtype == torch.int64
        want = ref.values["spend_month_sum"][ref.at(it["row_id"].numpy())]
        np.testing.assert_allclose(it["spend_month_sum"].numpy(), want, rtol=1e-6)


def test_map_and_stream_items_agree(parquet: Path) -> None:
    with pytest.warns(DeprecationWarning, match="users_per_chunk"):  # (it has no effect)
        TargetDataset(SPEC, parquet, users_per_chunk=9)
    by_map = {it["user"].item(): it for it in TargetDataset(SPEC, parquet)}
    stream = StreamingTargetDataset(SPEC, parquet, users_per_chunk=11)
    assert [it["user"].item() for it in stream] == sorted(by_map)  # unshuffled: sorted
    for it in stream:
        other = by_map[it["user"].item()]
        assert list(it) == list(other)
        for k in it:
            assert torch.equal(it[k], other[k]) or bool(
                torch.allclose(it[k], other[k], equal_nan=True)
            ), k


def test_datasets_build_with_the_collector_paused(
    parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both datasets compile (and the map-style one computes) with Python's cyclic
    collector paused, and leave it running; iterating runs with it on."""
    import gc

    from sqltargets.execute import engine

    seen: list[bool] = []
    real = engine.warm_up

    def spy(prog: Any) -> None:
        seen.append(gc.isenabled())
        real(prog)

    monkeypatch.setattr(engine, "warm_up", spy)
    TargetDataset(SPEC, parquet)
    assert seen == [False] and gc.isenabled()
    stream = StreamingTargetDataset(SPEC, parquet, batch_size=8)
    assert seen == [False, False] and gc.isenabled()
    assert [gc.isenabled() for _ in stream] == [True] * -(-N_USERS // 8)


def test_kernels_load_on_a_thread_that_ends_before_the_dataset_exists(
    parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernels load on a thread while DuckDB lists the users; no thread of ours is left
    when the constructor returns (DataLoader workers fork after it), and an error on that
    thread reaches the caller."""
    import threading

    from sqltargets.execute import engine

    where: list[str] = []
    real = engine.warm_up

    def spy(prog: Any) -> None:
        where.append(threading.current_thread().name)
        real(prog)

    monkeypatch.setattr(engine, "warm_up", spy)
    StreamingTargetDataset(SPEC, parquet)
    assert len(where) == 1 and where[0].startswith("sqltargets-kernels")
    assert not [t for t in threading.enumerate() if t.name.startswith("sqltargets-kernels")]

    def broken(prog: Any) -> None:
        raise RuntimeError("kernels failed to load")

    monkeypatch.setattr(engine, "warm_up", broken)
    with pytest.raises(RuntimeError, match="kernels failed to load"):
        StreamingTargetDataset(SPEC, parquet)
    assert not [t for t in threading.enumerate() if t.name.startswith("sqltargets-kernels")]


def test_item_layout(parquet: Path, ref: Reference) -> None:
    ds = TargetDataset(SPEC, parquet, dtype=torch.float64)
    it = ds[3]
    names = [t.name for t in SPEC.targets]
    assert list(it) == ["user", "row_id", "length", "amount", "mcc", "time", *names]
    assert isinstance(it, Item) and it.targets == tuple(names)
    assert it["user"].dim() == 0 and it["user"].dtype == torch.int64
    n = int(it["length"])
    assert it["row_id"].dtype == torch.int64 and it["row_id"].shape == (n,)
    assert it[TOPK].shape == (n, 3)
    assert it["grocery_day_sum"].shape == (n,)
    assert ds.users == sorted(ref.rows) and ds.target_names == names
    assert ds.lengths.tolist() == [len(ref.rows[u]) for u in ds.users]
    ref.check_item(ds.users[3], it)
    assert torch.equal(ds[-1]["row_id"], ds[len(ds) - 1]["row_id"])
    with pytest.raises(IndexError):
        ds[len(ds)]
    # NaN where the target is null: fuel_month_mean is null in months without fuel
    assert torch.isnan(torch.cat([ds[i]["fuel_month_mean"] for i in range(len(ds))])).any()


# --------------------------------------------------------------------------- shuffle


def test_shuffle_per_epoch(parquet: Path) -> None:
    spec = {**_small_spec()}
    ds = StreamingTargetDataset(spec, parquet, users_per_chunk=5, shuffle=True, seed=1)
    first = [it["user"].item() for it in ds]
    second = [it["user"].item() for it in ds]
    assert sorted(first) == sorted(second) == ds.users
    assert first != second and first != ds.users
    ds.set_epoch(7)
    a = [it["user"].item() for it in ds]
    b = [it["user"].item() for it in pickle.loads(pickle.dumps(ds))]
    assert a == b  # an explicit epoch fixes the order
    plain = StreamingTargetDataset(spec, parquet, users_per_chunk=5)
    assert [it["user"].item() for it in plain] == plain.users


def test_shuffle_with_persistent_workers(parquet: Path) -> None:
    ds = StreamingTargetDataset(_small_spec(), parquet, users_per_chunk=4, shuffle=True)
    loader = DataLoader(
        ds, batch_size=3, num_workers=2, collate_fn=collate, persistent_workers=True
    )
    orders = [[u for b in loader for u in b["user"].tolist()] for _ in range(2)]
    for order in orders:
        assert sorted(order) == ds.users  # every user exactly once per epoch
    assert orders[0] != orders[1]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(parquet: Path, method: str) -> None:
    """Persistent workers start before the later epochs' set_epoch: each epoch's order
    still follows its set_epoch (not the epoch the workers started with), equal to that
    of fresh workers, or of the main process, at that epoch."""
    ds = StreamingTargetDataset(_small_spec(), parquet, users_per_chunk=4, shuffle=True, seed=3)
    kw: dict[str, Any] = {"num_workers": 2, "multiprocessing_context": method}
    persistent = DataLoader(ds, batch_size=None, persistent_workers=True, **kw)
    orders = []
    for e in (0, 1, 0):
        ds.set_epoch(e)
        orders.append([it["user"].item() for it in persistent])
    assert sorted(orders[0]) == ds.users
    assert orders[0] != orders[1] and orders[2] == orders[0]
    ds.set_epoch(1)
    assert [it["user"].item() for it in DataLoader(ds, batch_size=None, **kw)] == orders[1]
    # (its own pickle, outside a worker's start, carries the epoch along)
    again = pickle.loads(pickle.dumps(ds))
    assert again._current_epoch() == 1
    again.set_epoch(0)
    assert ds._current_epoch() == 1  # the copy's epoch is its own
    for wide in (2**63, -(2**63), 2**64 + 1):  # (the shared int64 would wrap, silently)
        with pytest.raises(ValueError, match="epoch must be an int64"):
            ds.set_epoch(wide)
    assert ds._current_epoch() == 1


# --------------------------------------------------------------------------- pickling


def test_pickle_round_trip(parquet: Path) -> None:
    stream = StreamingTargetDataset(SPEC, parquet, users_per_chunk=13)
    before = list(stream)  # opens the connection: pickling must drop it
    again = pickle.loads(pickle.dumps(stream))
    after = list(again)
    mapped = TargetDataset(SPEC, parquet)
    copy = pickle.loads(pickle.dumps(mapped))
    assert len(before) == len(after) == len(copy) == N_USERS
    for x, y, z in zip(before, after, (copy[i] for i in range(len(copy)))):
        assert isinstance(y, Item) and y.targets == x.targets
        for k in x:
            assert torch.allclose(x[k].double(), y[k].double(), equal_nan=True), k
            assert torch.allclose(x[k].double(), z[k].double(), equal_nan=True), k
    item = pickle.loads(pickle.dumps(before[0]))
    assert isinstance(item, Item) and item.targets == before[0].targets


# --------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("keep", ["last", "first"])
def test_dataset_max_len(keep: str, parquet: Path, ref: Reference) -> None:
    full = TargetDataset(SPEC, parquet, dtype=torch.float64)
    short = TargetDataset(SPEC, parquet, dtype=torch.float64, max_len=5, keep=keep)
    stream = StreamingTargetDataset(SPEC, parquet, dtype=torch.float64, max_len=5, keep=keep)
    assert short.lengths.max() == 5
    for i, it in enumerate(stream):
        whole, cut = full[i], short[i]
        n = int(whole["length"])
        sl = slice(max(n - 5, 0), n) if keep == "last" else slice(0, min(n, 5))
        assert int(cut["length"]) == min(n, 5)
        for k in (*whole.targets, "row_id", "amount", "mcc", "time"):
            assert torch.allclose(cut[k], whole[k][sl], equal_nan=True), k
            assert torch.allclose(it[k], whole[k][sl], equal_nan=True), k
    if keep == "last":
        user = short.users[0]
        ref.check_item(user, short[0], tail=5)  # targets still see the whole history


def test_collate_pads_masks_and_truncates(parquet: Path) -> None:
    ds = TargetDataset(SPEC, parquet, dtype=torch.float64)
    items = [ds[i] for i in (0, 1, 2)]
    n = [int(it["length"]) for it in items]
    batch = collate(items)
    L = max(n)
    assert batch["mask"].shape == (3, L) and batch["mask"].sum(1).tolist() == n
    assert batch["row_id"].shape == (3, L) and batch["row_id"].dtype == torch.int64
    assert batch[TOPK].shape == (3, L, 3) and batch["grocery_day_sum"].shape == (3, L)
    assert batch["user"].tolist() == ds.users[:3]
    short = min(range(3), key=lambda i: n[i])
    assert (batch["row_id"][short, n[short] :] == -1).all()
    assert torch.isnan(batch[TOPK][short, n[short] :]).all()
    assert torch.isnan(batch["spend_7d_sum"][short, n[short] :]).all()
    assert (batch["amount"][short, n[short] :] == 0).all()
    assert (batch["mcc"][short, n[short] :] == 0).all()
    assert torch.equal(batch["row_id"][short, : n[short]], items[short]["row_id"])

    cut = collate(items, max_len=4)
    assert cut["mask"].all() and cut["length"].tolist() == [4, 4, 4]
    for i, it in enumerate(items):
        assert torch.equal(cut["row_id"][i], it["row_id"][-4:])
        assert torch.allclose(cut[TOPK][i], it[TOPK][-4:], equal_nan=True)
    head = functools.partial(collate, max_len=4, keep="first")(items)
    assert torch.equal(head["row_id"][1], items[1]["row_id"][:4])
    assert torch.equal(head["time"][2], items[2]["time"][:4])


def test_collate_plain_dicts_and_string_users() -> None:
    a = {"user": "x", "row_id": torch.tensor([1, 2]), "length": torch.tensor(2),
         "f": torch.tensor([1.0, 2.0]), "y": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}  # fmt: skip
    b = {"user": "y", "row_id": torch.tensor([7]), "length": torch.tensor(1),
         "f": torch.tensor([5.0]), "y": torch.tensor([[6.0, math.nan]])}  # fmt: skip
    out = collate([a, b])
    assert out["user"] == ["x", "y"]
    assert out["y"].shape == (2, 2, 2)
    assert torch.isnan(out["y"][1, 1]).all() and torch.isnan(out["f"][1, 1])  # plain: NaN
    out = collate([a, b], targets=["y"])
    assert out["f"].tolist() == [[1.0, 2.0], [5.0, 0.0]]
    assert out["row_id"].tolist() == [[1, 2], [7, -1]]
    with pytest.raises(ValueError):
        collate([a], keep="middle")
    for bad in (2.5, True, "2"):  # (2.5 failed deep inside, as a slice's TypeError)
        with pytest.raises(ValueError, match="max_len must be a positive integer"):
            collate([a, b], max_len=bad)  # type: ignore[arg-type]
    other = {k: v for k, v in b.items() if k != "y"} | {"z": b["y"]}
    with pytest.raises(ValueError, match=r"item 1 has keys .* items of one batch come from one"):
        collate([a, other])  # (a bare KeyError: 'y')


# --------------------------------------------------------------------------- sources


def test_arrow_source_string_users_and_id_column() -> None:
    tx = make_transactions(12, seed=8, ties=0.3, shuffle=True)
    tx = tx.set_column(0, "user_id", pa.array([f"u{v}" for v in tx.column(0).to_pylist()]))
    spec = {
        "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc", "id": "tx_id"},
        "targets": [
            {"name": "n_day", "agg": "count", "window": {"kind": "expanding", "period": "day"}},
            {"name": "top2_24h", "agg": "top_k", "k": 2, "window": {"kind": "rolling", "length": "24h"}},
        ],
    }  # fmt: skip
    ref = Reference(spec, tx, tx)
    for kind in ("map", "stream"):
        ds = make(kind, tx, spec=spec, users_per_chunk=5, dtype=torch.float64)
        assert ds.users == sorted(ref.rows)
        seen: list[Any] = []
        for batch in DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2):
            assert isinstance(batch["user"], list)
            for i, user in enumerate(batch["user"]):
                m = batch["mask"][i]
                row = {k: batch[k][i][m] for k in ("row_id", "n_day", "top2_24h")}
                assert row["row_id"].tolist() == ref.rows[user]  # the id column
                for name in ("n_day", "top2_24h"):
                    want = ref.values[name][ref.at(row["row_id"].numpy())]
                    np.testing.assert_allclose(row[name].numpy(), want)
                seen.append(user)
        assert sorted(seen) == ds.users


def test_connection_table_and_extra_feature(tx: pa.Table) -> None:
    con = duckdb.connect()
    con.register("tx_arrow", tx)
    con.execute("CREATE TABLE tx AS SELECT * FROM tx_arrow")
    con.execute("DELETE FROM tx WHERE user_id % 7 = 0")  # row ids keep their rowid gaps
    inputs = con.sql("SELECT * FROM tx ORDER BY rowid").to_arrow_table()
    out = sqltargets.generate(SPEC, "tx", connection=con)
    ds = TargetDataset(SPEC, "tx", connection=con, features=["time", "tx_id"], dtype=torch.float64)
    assert ds.feature_names == ["time", "tx_id"]
    rowids = con.execute("SELECT rowid, tx_id FROM tx").fetchall()
    tx_id = dict(rowids)
    by_rid = dict(zip(out.column("row_id").to_pylist(), out.column("spend_7d_sum").to_pylist()))
    assert len(ds) == len(set(inputs.column("user_id").to_pylist()))
    for i in range(len(ds)):
        it = ds[i]
        rid = it["row_id"].tolist()
        assert it["tx_id"].tolist() == [float(tx_id[r]) for r in rid]
        assert it["spend_7d_sum"].tolist() == pytest.approx([by_rid[r] for r in rid])
    con.close()


def test_several_specs_share_one_pass(parquet: Path, ref: Reference) -> None:
    a = {**_small_spec(), "targets": [SPEC_TARGETS["grocery_day_sum"]]}
    b = {**_small_spec(), "targets": [SPEC_TARGETS["top3_month"], SPEC_TARGETS["tx_24h_count"]]}
    ds = StreamingTargetDataset([a, b], parquet, dtype=torch.float64, features=[])
    assert ds.target_names == ["grocery_day_sum", "top3_month", "tx_24h_count"]
    for it in ds:
        assert it["row_id"].tolist() == ref.rows[it["user"].item()]
        at = ref.at(it["row_id"].numpy())
        for name in ds.target_names:
            np.testing.assert_allclose(it[name].numpy(), ref.values[name][at], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_batches_of_several_specs_and_input_features(dtype: Any, tx: pa.Table) -> None:
    """Both batch modes over two specs read together, an input column with nulls as a
    feature, no default features, a half- or double-precision dtype: the batches collate
    makes of the items, key by key (a null feature value is NaN, padding 0)."""
    t = tx.append_column("score", pa.array([None if i % 5 == 0 else i / 7 for i in range(len(tx))]))
    a = {**_small_spec(), "targets": [SPEC_TARGETS["grocery_day_sum"]]}
    b = {**_small_spec(), "targets": [SPEC_TARGETS["top3_month"], SPEC_TARGETS["tx_24h_count"]]}
    kw: dict[str, Any] = dict(features=["score", "mcc"], dtype=dtype)
    items = StreamingTargetDataset([a, b], t, users_per_chunk=5, **kw)
    batched = StreamingTargetDataset([a, b], t, users_per_chunk=5, batch_size=3, **kw)
    want = list(DataLoader(items, batch_size=3, collate_fn=collate))
    got = list(batched)
    _same_batches(got, want)
    assert got[0]["score"].dtype == dtype and got[0]["score"].isnan().any()
    mapped = TargetDataset([a, b], t, **kw)
    _same_batches([mapped[[4, 0, 9]]], [collate([mapped[4], mapped[0], mapped[9]])])


def test_errors(parquet: Path) -> None:
    periods = {**_small_spec(), "output": "periods"}
    periods["targets"] = [
        {"name": "m", "agg": "sum", "window": {"kind": "period", "period": "month"}}
    ]
    with pytest.raises(SpecError, match="output"):
        TargetDataset(periods, parquet)
    with pytest.raises(SpecError, match="reserved"):
        TargetDataset({**_small_spec(), "targets": [_target("mask")]}, parquet)
    with pytest.raises(SpecError, match="feature"):
        TargetDataset({**_small_spec(), "targets": [_target("amount")]}, parquet)
    with pytest.raises(SpecError, match="already a target"):
        StreamingTargetDataset([_small_spec(), _small_spec()], parquet)
    with pytest.raises(DataError, match="did you mean 'amount'"):
        StreamingTargetDataset(_small_spec(), parquet, features=["amont"])
    with pytest.raises(DataError, match="numeric"):
        StreamingTargetDataset(_small_spec(), parquet, features=["channel"])
    with pytest.raises(ValueError, match="max_len"):
        TargetDataset(_small_spec(), parquet, max_len=0)
    with pytest.raises(ValueError, match="max_len"):
        StreamingTargetDataset(_small_spec(), parquet, max_len=True)  # (not 1)
    # targets are floats with NaN for null: an integer dtype would turn nulls into
    # -2147483648 and truncate every value
    for dtype in (torch.int32, torch.int64, torch.bool, torch.complex64, "float32"):
        with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
            TargetDataset(_small_spec(), parquet, dtype=dtype)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
            StreamingTargetDataset(_small_spec(), parquet, dtype=dtype)  # type: ignore[arg-type]
    # float16 ends at 65,504: seconds since a user's first event would be inf
    with pytest.raises(ValueError, match="float16 cannot hold feature 'time'"):
        StreamingTargetDataset(_small_spec(), parquet, dtype=torch.float16)
    half = TargetDataset(_small_spec(), parquet, dtype=torch.float16, features=["amount"])
    assert half[0]["amount"].dtype == torch.float16 and "time" not in half[0]
    wide = TargetDataset(_small_spec(), parquet, dtype=torch.bfloat16)
    assert wide[0]["time"].dtype == torch.bfloat16 and torch.isfinite(wide[0]["time"]).all()


def test_null_users_and_times_are_errors_or_left_out(tx: pa.Table) -> None:
    """``null_rows: drop`` leaves out rows with a null user or time: from the users, the
    lengths and ``len`` too (a user whose every time is null is no user at all)."""
    tx = pa.concat_tables([tx.slice(0, 600), tx.slice(0, 1)])  # the last: a user of its own
    users = tx.column("user_id").to_pylist()
    times = tx.column("ts").to_pylist()
    users[3], times[10] = None, None
    users[-1], times[-1] = max(u for u in users if u is not None) + 1, None  # all times null
    tx = tx.set_column(0, "user_id", pa.array(users, pa.int64()))
    tx = tx.set_column(1, "ts", pa.array(times, tx.schema.field("ts").type))
    spec = {**_small_spec(), "null_rows": "drop", "targets": [SPEC_TARGETS["tx_24h_count"]]}
    keep = tx.filter(pc.and_(tx["user_id"].is_valid(), tx["ts"].is_valid()))
    want = sqltargets.generate({**spec, "null_rows": "error"}, keep)
    lengths = {
        u: want.column("user_id").to_pylist().count(u) for u in set(want["user_id"].to_pylist())
    }
    for kind in ("map", "stream"):
        with pytest.warns(sqltargets.DroppedRowsWarning, match="dropped 3 of"):
            ds = make(kind, tx, spec=spec, features=[])
        assert len(ds) == len(lengths) and ds.users == sorted(lengths)
        got = {it["user"].item(): len(it["row_id"]) for it in ds}
        assert got == lengths
        if kind == "stream":  # and in hash pieces (hash(NULL) keeps no row)
            with pytest.warns(sqltargets.DroppedRowsWarning):
                pieces = make(kind, tx, spec=spec, features=[], rows_per_read=100)
            assert len(pieces._pieces(None, None) or []) == -(-sum(lengths.values()) // 100)
            assert {it["user"].item(): len(it["row_id"]) for it in pieces} == lengths
        with pytest.raises(DataError, match="null user"):
            make(kind, tx, spec={**spec, "null_rows": "error"}, features=[])


def test_import_without_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # torch cannot be imported
        import pyarrow as pa
        import sqltargets
        t = pa.table({"u": [1, 1], "t": [0, 1], "a": [2.0, 3.0], "m": [1, 1]})
        spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
                "time": {"unit": "day"},
                "targets": [{"name": "s", "agg": "sum",
                             "window": {"kind": "expanding", "period": "year"}}]}
        print(sqltargets.generate(spec, t).column("s").to_pylist())
        try:
            import sqltargets.torch
        except ImportError:
            print("no torch")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[2.0,", "5.0]", "no", "torch"]


def test_runs_never_touch_pandas(tmp_path: Path) -> None:
    """generate and both datasets never go through pyarrow's pandas shim (pa.array on a
    NumPy array imports pandas when installed: 0.3 s in every fresh DataLoader worker).
    With pandas made unimportable, that shim raises, so any such call fails here."""
    from sqltargets.demo import write_demo

    write_demo(tmp_path / "d", 12, seed=1, files=2, shuffle=True)
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["pandas"] = None  # pandas cannot be imported
        import sqltargets
        from sqltargets.torch import StreamingTargetDataset, TargetDataset
        spec, data = {str(ROOT / "examples" / "demo.yaml")!r}, {str(tmp_path / "d")!r}
        print(sqltargets.generate(spec, data).num_rows)
        print(len(list(StreamingTargetDataset(spec, data, users_per_chunk=5, shuffle=True))))
        print(len(TargetDataset(spec, data)))
        batched = StreamingTargetDataset(spec, data, users_per_chunk=5, batch_size=2, shuffle=True)
        print(sum(len(b["user"]) for b in batched))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, streamed, mapped, batched = (int(x) for x in done.stdout.split())
    assert rows > 0 and streamed == mapped == batched == 12


def test_workers_inherit_every_kernel_they_run(tmp_path: Path) -> None:
    """Building a dataset loads exactly the kernels its programs run (and the event sort),
    so a forked worker loads none: in a fresh process, iterating every target of
    examples/demo.yaml and pretrain.yaml adds no compiled signature to any kernel."""
    from sqltargets.demo import write_demo

    write_demo(tmp_path / "d", 12, seed=2, files=2, shuffle=True)
    code = textwrap.dedent(
        f"""
        from numba.core.registry import CPUDispatcher
        from sqltargets.execute import kernels as K
        from sqltargets.torch import StreamingTargetDataset

        def loaded():
            return {{n: len(f.signatures) for n, f in vars(K).items()
                    if isinstance(f, CPUDispatcher)}}

        specs = [{str(ROOT / "examples" / "demo.yaml")!r},
                 {str(ROOT / "examples" / "pretrain.yaml")!r}]
        data = {str(tmp_path / "d")!r}
        datasets = [StreamingTargetDataset(s, data, users_per_chunk=5) for s in specs]
        before = loaded()
        n = min(len(list(ds)) for ds in datasets)
        after = loaded()
        print(n, sum(before.values()), sorted(k for k in after if after[k] != before[k]))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    users, signatures, grew = done.stdout.split(maxsplit=2)
    assert int(users) == 12 and int(signatures) > 10
    assert grew.strip() == "[]"


# --------------------------------------------------------------------------- helpers

SPEC_TARGETS = {
    "grocery_day_sum": {"name": "grocery_day_sum", "agg": "sum", "mcc": ["grocery"],
                        "window": {"kind": "expanding", "period": "day"}},
    "top3_month": {"name": "top3_month", "agg": "top_k", "k": 3, "where": "amount > 0",
                   "window": {"kind": "period", "period": "month"}},
    "tx_24h_count": {"name": "tx_24h_count", "agg": "count",
                     "window": {"kind": "rolling", "length": "24h"}},
}  # fmt: skip


def _small_spec() -> dict[str, Any]:
    return {
        "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"},
        "targets": [SPEC_TARGETS["tx_24h_count"]],
    }


def _target(name: str) -> dict[str, Any]:
    return {"name": name, "agg": "count", "window": {"kind": "expanding", "period": "day"}}


def test_datasets_refuse_future_looking_targets_when_past_only() -> None:
    tx = pa.table({"u": [1, 1], "t": pa.array([0, 1], pa.int64()), "a": [1.0, 2.0], "m": [1, 2]})
    spec = {
        "columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
        "time": {"unit": "s"},
        "targets": [
            {"name": "run", "agg": "sum", "window": {"kind": "expanding", "period": "day"}},
            {"name": "label", "agg": "sum", "window": {"kind": "next_period", "period": "day"}},
        ],
    }
    for make in (TargetDataset, StreamingTargetDataset):
        with pytest.raises(SpecError, match=r"past_only: 1 target\(s\).*label"):
            make(spec, tx, past_only=True)
    past = {**spec, "targets": spec["targets"][:1]}
    assert TargetDataset(past, tx, past_only=True)[0]["run"].tolist() == [1.0, 3.0]


def test_input_columns_named_like_internal_ones() -> None:
    # the datasets' own names never collide with the input's (issue 10, item 7)
    tx = pa.table({
        "u": [2, 1, 2, 1], "t": pa.array([1, 2, 3, 4], pa.int64()), "a": [1.0, 2.0, 4.0, 8.0],
        "m": [1, 2, 3, 4], "_st_pos": [9, 9, 9, 9], "_st_rid": [7, 7, 7, 7],
    })  # fmt: skip
    spec = {
        "columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
        "time": {"unit": "s"},
        "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}],
    }
    want = sqltargets.generate(spec, tx)
    con = duckdb.connect()
    con.register("raw", tx)
    con.execute("CREATE TABLE tx AS SELECT * FROM raw")
    for source, kw in ((tx, {}), ("tx", {"connection": con})):
        ds = TargetDataset(spec, source, features=["amount", "_st_pos"], **kw)
        rows = torch.cat([ds[i]["row_id"] for i in range(len(ds))]).tolist()
        sums = torch.cat([ds[i]["s"] for i in range(len(ds))]).tolist()
        assert rows == want.column("row_id").to_pylist() == [1, 3, 0, 2]
        assert sums == want.column("s").to_pylist()
        assert ds[0]["_st_pos"].tolist() == [9.0, 9.0]


# ---------------------------------------------------------------- a prepared store


@pytest.mark.parametrize("ids", ["int", "str"])
def test_a_store_is_shared_out_and_read_in_runs_of_users(
    ids: str, tx: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prepared store is sorted by user: each worker reads a run of users balanced by rows
    (its row groups, not the whole store for a hash of the user), and pieces are shorter
    runs; users are bound by SQL literals (string ids with quotes and wildcards)."""
    data = tx
    if ids == "str":
        names = {u: f"o'{u % 7}%_{u}" for u in set(tx.column("user_id").to_pylist())}
        data = tx.set_column(
            0, "user_id", pa.array([names[u] for u in tx.column("user_id").to_pylist()])
        )
    (tmp_path / "in").mkdir()
    pq.write_table(data.slice(0, 3000), tmp_path / "in" / "a.parquet")
    pq.write_table(data.slice(3000), tmp_path / "in" / "b.parquet")
    store = sqltargets.prepare(tmp_path / "in", tmp_path / "store", user="user_id", time="ts")
    ref = Reference(SPEC, store, data)
    ds = StreamingTargetDataset(SPEC, store, users_per_chunk=5, shuffle=True, dtype=torch.float64)
    setup = ds._setup
    assert setup.user_sorted and setup.file_rows is None
    runs = [setup.shard_piece((w, 2)).users for w in (0, 1)]
    assert runs[0][0] == 0 and runs[0][1] == runs[1][0] and runs[1][1] == N_USERS
    halves = [int(setup.counts[a:b].sum()) for a, b in runs]
    assert abs(halves[0] - halves[1]) <= setup.counts.max()  # balanced by rows
    sql = setup.programs_for((1, 2))[0].prologue
    assert "BETWEEN" in sql and "HASH(" not in sql.upper()
    seen = epoch(ds, ref, num_workers=2, batch_size=6)
    assert sorted(seen) == sorted(ref.rows) == ds.users
    # pieces: runs of users of at most rows_per_read rows (one user above it alone)
    budget = int(setup.counts.sum()) // 4
    held = _held_rows(monkeypatch)
    pieces_ds = StreamingTargetDataset(SPEC, store, rows_per_read=budget, dtype=torch.float64)
    pieces = pieces_ds._pieces(None, None)
    assert pieces is not None and len(pieces) >= 4
    spans = [p.users for p in pieces]
    assert spans[0][0] == 0 and spans[-1][1] == N_USERS
    assert all(spans[k][1] == spans[k + 1][0] for k in range(len(spans) - 1))
    for a, b in spans:
        assert setup.counts[a:b].sum() <= budget or b - a == 1
        assert b == N_USERS or setup.counts[a : b + 1].sum() > budget  # as long as fits
    seen = epoch(pieces_ds, ref, batch_size=4)
    assert seen == ds.users  # runs in order, each in order, without shuffle
    assert held == [int(setup.counts[a:b].sum()) for a, b in spans]


# ------------------------------------------------- pieces against the whole, on random layouts


@settings(
    max_examples=examples(30),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(
    n_users=hs.integers(1, 9),
    layout=hs.sampled_from(["by_user", "spread", "store", "arrow"]),
    files=hs.integers(1, 4),
    budget=hs.integers(1, 700),
    batch_size=hs.none() | hs.integers(1, 4),
    drop_last=hs.booleans(),
    shuffle=hs.booleans(),
    seed=hs.integers(0, 5),
)
def test_any_pieces_give_the_whole_shards_items_and_batches(
    tmp_path_factory: pytest.TempPathFactory,
    n_users: int,
    layout: str,
    files: int,
    budget: int,
    batch_size: int | None,
    drop_last: bool,
    shuffle: bool,
    seed: int,
) -> None:
    """Whatever the layout (users in whole files, spread over files, a store, Arrow) and
    rows_per_read, a pass yields every user once with the items of a pass that reads at
    once; batches are full but for the last, each what collate makes of its users' items."""
    tx = make_transactions(n_users, seed=seed, ties=0.2, shuffle=True, tx_per_user=None)
    tmp = tmp_path_factory.mktemp("pieces")
    source: Any = tx
    if layout != "arrow":
        (tmp / "in").mkdir()
        if layout == "spread":
            cuts = np.linspace(0, tx.num_rows, files + 1).astype(int)
            parts = [tx.slice(a, b - a) for a, b in itertools.pairwise(cuts.tolist())]
        else:
            ids = tx.column("user_id").to_numpy()
            which = np.unique(ids, return_inverse=True)[1] % files
            parts = [tx.filter(pa.array(which == k)) for k in range(files)]
        for k, part in enumerate(parts):
            pq.write_table(part, tmp / "in" / f"p{k}.parquet")
        source = tmp / "in"
        if layout == "store":
            source = sqltargets.prepare(tmp / "in", tmp / "store", user="user_id", time="ts")
    kw: dict[str, Any] = dict(users_per_chunk=3, dtype=torch.float64)
    items = {it["user"].item(): it for it in StreamingTargetDataset(SPEC, source, **kw)}
    assert len(items) == n_users
    ds = StreamingTargetDataset(
        SPEC, source, rows_per_read=budget, shuffle=shuffle, seed=seed, batch_size=batch_size,
        drop_last=drop_last and batch_size is not None, **kw,
    )  # fmt: skip
    got = list(ds)
    if batch_size is None:
        users = [it["user"].item() for it in got]
        for it in got:
            _same_batches([it], [items[it["user"].item()]])
    else:
        users = [u for b in got for u in b["user"].tolist()]
        want = [
            collate([items[u] for u in b["user"].tolist()], targets=ds.target_names) for b in got
        ]
        _same_batches(got, want)
        assert all(len(b["user"]) == batch_size for b in got[:-1])
        if drop_last and got:
            assert len(got[-1]["user"]) == batch_size
    assert len(users) == len(set(users))
    if drop_last and batch_size is not None:
        assert n_users - len(users) < batch_size
    else:
        assert sorted(users) == sorted(items)


def test_null_cells_never_cast_what_the_kernels_left_there(
    parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target's values where it is null are whatever a kernel left in that memory: only
    the valid ones are cast to the item dtype (a float32 cast of leftover 1e300s warned
    'overflow encountered in cast' while the items were right), the null ones are NaN."""
    import warnings

    import sqltargets.torch as st

    real = st.compute_arrays

    def leftovers(prog: Any, events: pa.Table, threads: int, sink: Any, scratch: Any) -> None:
        def dirty(name: str, a: int, b: int, values: np.ndarray, ok: Any) -> None:
            if ok is not None:
                values = values.copy()
                values[~ok] = 1e300
            sink(name, a, b, values, ok)

        real(prog, events, threads, dirty, scratch)

    monkeypatch.setattr(st, "compute_arrays", leftovers)
    spec = {**_small_spec(), "targets": [
        {"name": "most", "agg": "max", "mcc": [5411], "window": {"kind": "rolling", "length": "1d"}}]}  # fmt: skip
    ds = StreamingTargetDataset(spec, parquet, users_per_chunk=7, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(ds)
    most = torch.cat([b["most"][b["mask"]] for b in batches])
    want = pc.fill_null(sqltargets.generate(spec, parquet).column("most"), math.nan)
    assert most.isnan().any() and not most.isinf().any()
    assert sorted(most.nan_to_num(-1).tolist()) == sorted(
        np.nan_to_num(want.to_numpy(), nan=-1).astype(np.float32).tolist()
    )


def test_a_null_id_is_refused_not_row_id_0() -> None:
    """A tensor has no null: a null columns.id became row_id 0, like a real id 0."""
    t = pa.table({"u": [1, 1, 1, 2], "t": pa.array([0, 1, 2, 3], pa.int64()), "a": [1.0, 2.0, 4.0, 8.0],
                  "m": [5411] * 4, "tx": pa.array([0, None, 7, 9], pa.int64())})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m", "id": "tx"},
            "time": {"unit": "day"}, "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    for cls in (TargetDataset, StreamingTargetDataset):
        with pytest.raises(DataError, match=r"columns\.id: 1 rows have a null id in column 'tx'"):
            cls(spec, t)
    full = t.set_column(4, "tx", pa.array([0, 5, 7, 9], pa.int64()))
    assert TargetDataset(spec, full)[0]["row_id"].tolist() == [0, 5, 7]


def test_bad_arguments_are_argument_errors() -> None:
    """max_len, keep, dtype, users_per_chunk, batch_size, drop_last and collate's checks
    raised a plain ValueError, which `except SqlTargetsError` missed."""
    from sqltargets.errors import ArgumentError

    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 3.0], "m": [5411] * 3})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    calls = [
        lambda: TargetDataset(spec, t, max_len=0),
        lambda: TargetDataset(spec, t, keep="middle"),
        lambda: TargetDataset(spec, t, dtype=torch.int64),
        lambda: StreamingTargetDataset(spec, t, users_per_chunk=0),
        lambda: StreamingTargetDataset(spec, t, batch_size=0),
        lambda: StreamingTargetDataset(spec, t, drop_last=True),
        lambda: collate([]),
        lambda: StreamingTargetDataset(spec, t).set_epoch(-(2**63)),
    ]
    for call in calls:
        with pytest.raises(ArgumentError):
            call()
