"""Tests for the synthetic demo data generator (sqltargets.demo)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sqltargets.compile import mcc as mcc_catalog
from sqltargets.demo import SCHEMA, make_transactions, write_demo


def cols(table: pa.Table) -> dict[str, np.ndarray]:
    """The table's columns as numpy arrays (ts as int64 microseconds)."""
    out = {name: table.column(name).to_numpy() for name in table.column_names}
    out["ts"] = out["ts"].astype("datetime64[us]").astype(np.int64)
    out["channel"] = np.asarray(table.column("channel").to_pylist())
    return out


def in_catalog(codes: np.ndarray) -> np.ndarray:
    ranges = [r for g in mcc_catalog.CATALOG.values() for r in g.ranges()]
    hit = np.zeros(codes.shape, bool)
    for lo, hi in ranges:
        hit |= (codes >= lo) & (codes <= hi)
    return hit


def group_mask(codes: np.ndarray, group: str) -> np.ndarray:
    hit = np.zeros(codes.shape, bool)
    for lo, hi in mcc_catalog.resolve([group]):
        hit |= (codes >= lo) & (codes <= hi)
    return hit


def tie_share(c: dict[str, np.ndarray]) -> float:
    """Share of rows whose ts equals the same user's previous row's ts."""
    same = (c["user_id"][1:] == c["user_id"][:-1]) & (c["ts"][1:] == c["ts"][:-1])
    return float(same.sum()) / len(c["ts"])


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_transactions(600, seed=11)


@pytest.fixture(scope="module")
def c(table: pa.Table) -> dict[str, np.ndarray]:
    return cols(table)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_table() -> None:
    a = make_transactions(200, seed=5, ties=0.1)
    b = make_transactions(200, seed=5, ties=0.1)
    assert a.equals(b)


def test_different_seed_different_table() -> None:
    a = cols(make_transactions(200, seed=5, tx_per_user=50))
    b = cols(make_transactions(200, seed=6, tx_per_user=50))
    assert len(a["amount"]) == len(b["amount"])
    assert not np.array_equal(a["amount"], b["amount"])
    assert not np.array_equal(a["ts"], b["ts"])
    assert not np.array_equal(a["mcc"], b["mcc"])


def test_schema(table: pa.Table) -> None:
    assert table.schema == SCHEMA
    assert table.schema.field("ts").type == pa.timestamp("us")  # naive
    assert make_transactions(0).schema == SCHEMA
    assert make_transactions(0).num_rows == 0


# --------------------------------------------------------------------------- shape


def test_tx_per_user_gives_exact_counts() -> None:
    c = cols(make_transactions(37, seed=2, tx_per_user=123))
    assert len(c["user_id"]) == 37 * 123
    ids, counts = np.unique(c["user_id"], return_counts=True)
    assert len(ids) == 37
    assert (counts == 123).all()


def test_tx_per_user_zero() -> None:
    assert make_transactions(5, tx_per_user=0).num_rows == 0


def test_counts_are_heavy_tailed(c: dict[str, np.ndarray]) -> None:
    _, counts = np.unique(c["user_id"], return_counts=True)
    assert len(counts) == 600  # every user has at least one transaction
    assert counts.min() >= 1
    median = np.median(counts)
    assert np.percentile(counts, 99) > 5 * median
    assert counts.mean() > 1.2 * median  # right-skewed


def test_tx_id_unique(c: dict[str, np.ndarray]) -> None:
    assert len(np.unique(c["tx_id"])) == len(c["tx_id"])


def test_sorted_by_user_time_id(c: dict[str, np.ndarray]) -> None:
    order = np.lexsort((c["tx_id"], c["ts"], c["user_id"]))
    assert (order == np.arange(len(order))).all()
    assert (np.diff(c["tx_id"]) > 0).all()


def test_shuffle_same_rows_other_order() -> None:
    plain = make_transactions(150, seed=4, ties=0.05)
    shuffled = make_transactions(150, seed=4, ties=0.05, shuffle=True)
    assert not shuffled.equals(plain)
    back = shuffled.sort_by([("user_id", "ascending"), ("ts", "ascending"), ("tx_id", "ascending")])
    assert back.equals(plain)
    # really unsorted: many adjacent rows belong to different users
    uid = cols(shuffled)["user_id"]
    assert (uid[1:] != uid[:-1]).mean() > 0.9


def test_timestamps_in_range_whole_seconds() -> None:
    c = cols(make_transactions(100, seed=3, start="2023-03-15", days=40))
    lo = np.datetime64("2023-03-15", "us").astype(np.int64)
    hi = np.datetime64("2023-04-24", "us").astype(np.int64)
    assert c["ts"].min() >= lo
    assert c["ts"].max() < hi
    assert (c["ts"] % 1_000_000 == 0).all()


def test_one_day() -> None:
    t = make_transactions(10, seed=1, days=1, tx_per_user=20)
    ts = t.column("ts").to_pylist()
    assert {x.date() for x in ts} == {dt.date(2024, 1, 1)}


# --------------------------------------------------------------------------- ties


@pytest.mark.parametrize("ties", [0.05, 0.2, 0.5])
def test_ties_fraction(ties: float) -> None:
    c = cols(make_transactions(300, seed=8, ties=ties))
    assert tie_share(c) == pytest.approx(ties, abs=0.02)


def test_no_ties_requested_few_ties() -> None:
    assert tie_share(cols(make_transactions(300, seed=8))) < 0.005


def test_ties_change_only_timestamps() -> None:
    a = make_transactions(100, seed=9)
    b = make_transactions(100, seed=9, ties=0.3)
    for name in ("user_id", "amount", "mcc", "tx_id", "channel"):
        assert a.column(name).equals(b.column(name)), name
    assert not a.column("ts").equals(b.column("ts"))
    cb = cols(b)
    same_user = cb["user_id"][1:] == cb["user_id"][:-1]
    assert (np.diff(cb["ts"])[same_user] >= 0).all()  # still in time order


# --------------------------------------------------------------------------- merchants


def test_mcc_mostly_in_catalog(c: dict[str, np.ndarray]) -> None:
    share = in_catalog(c["mcc"]).mean()
    assert 0.85 < share < 0.97  # a long tail of other codes remains
    assert len(np.unique(c["mcc"][~in_catalog(c["mcc"])])) > 30


def test_mcc_popularity(c: dict[str, np.ndarray]) -> None:
    codes = c["mcc"]
    share = {g: group_mask(codes, g).mean() for g in mcc_catalog.CATALOG}
    assert share["grocery"] == max(share.values())
    assert share["grocery"] > 0.1
    for common in ("restaurants", "fast_food", "fuel", "drug_stores", "digital_goods"):
        assert share[common] > 0.02, common
    for rare in ("airlines", "hotels", "car_rental"):
        assert 0 < share[rare] < 0.01, rare
    assert share["fast_food"] > share["airlines"] * 5


def test_amounts_differ_by_mcc(c: dict[str, np.ndarray]) -> None:
    amount, codes = c["amount"], c["mcc"]
    buys = amount > 0

    def median(group: str) -> float:
        return float(np.median(amount[buys & group_mask(codes, group)]))

    assert median("airlines") > 3 * median("fast_food")
    assert median("hotels") > median("grocery") > median("fast_food")
    assert median("rent") > 500
    assert median("fast_food") < 20


def test_amounts_two_decimals(c: dict[str, np.ndarray]) -> None:
    cents = c["amount"] * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)
    assert (c["amount"] != 0).all()


def test_refund_share(c: dict[str, np.ndarray]) -> None:
    refunds = c["amount"] < 0
    assert 0.02 <= refunds.mean() <= 0.04
    # at the kinds of merchants that refund, never at ATMs
    assert not (refunds & (c["mcc"] == 6011)).any()
    assert (refunds & group_mask(c["mcc"], "clothing")).sum() > (
        refunds & group_mask(c["mcc"], "fast_food")
    ).sum() / 2
    # of a plausible size: like the purchases at the same merchants
    grocery = group_mask(c["mcc"], "grocery")
    buy = np.median(c["amount"][grocery & ~refunds])
    back = np.median(-c["amount"][grocery & refunds])
    assert 0.3 * buy < back < 1.5 * buy


def test_refund_share_small_and_fixed_tables() -> None:
    share = (cols(make_transactions(100, seed=1, tx_per_user=500))["amount"] < 0).mean()
    assert 0.02 <= share <= 0.04


def test_channels(c: dict[str, np.ndarray]) -> None:
    ch, codes = c["channel"], c["mcc"]
    assert set(np.unique(ch)) == {"pos", "online", "atm"}
    assert ((ch == "atm") == (codes == 6011)).all()
    digital = (codes >= 5815) & (codes <= 5818)
    assert (ch[digital] == "online").mean() > 0.95
    assert (ch[group_mask(codes, "fuel")] == "pos").all()


def test_daily_rhythm(c: dict[str, np.ndarray]) -> None:
    hour = (c["ts"] // 3_600_000_000) % 24
    night = np.isin(hour, [0, 1, 2, 3, 4])
    assert night.mean() < 0.1
    lunch = (hour == 12).mean()
    evening = (hour == 18).mean()
    early = (hour == 3).mean()
    assert lunch > 4 * early
    assert evening > 4 * early
    # restaurants peak at lunch and dinner, not mid-afternoon
    rest = group_mask(c["mcc"], "restaurants")
    assert (hour[rest] == 12).sum() > 1.5 * (hour[rest] == 15).sum()
    assert (hour[rest] == 19).sum() > 1.5 * (hour[rest] == 15).sum()


def test_weekly_rhythm(c: dict[str, np.ndarray]) -> None:
    days = c["ts"] // 86_400_000_000
    dow = (days + 3) % 7  # Monday = 0
    weekend = dow >= 5
    bars = group_mask(c["mcc"], "bars")
    transit = (c["mcc"] == 4111) | (c["mcc"] == 4131)
    # a day of the weekend vs a weekday: bars up, commuting down
    assert weekend[bars].mean() / (2 / 7) > 1.2
    assert weekend[transit].mean() / (2 / 7) < 0.8
    fri_sat = np.isin(dow, [4, 5])
    assert fri_sat[bars].mean() > 2 * np.isin(dow, [0, 1])[bars].mean()


def test_rent_is_monthly(c: dict[str, np.ndarray]) -> None:
    rent = c["mcc"] == 6513
    assert rent.sum() > 100
    month = c["ts"][rent].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    _, per_user_month = np.unique(np.stack([c["user_id"][rent], month]), axis=1, return_counts=True)
    assert (per_user_month == 1).all()
    # a user's rent is the same amount every month
    for uid in np.unique(c["user_id"][rent])[:20]:
        assert len(np.unique(c["amount"][rent & (c["user_id"] == uid) & (c["amount"] > 0)])) == 1


# --------------------------------------------------------------------------- write_demo


def test_write_demo_partitions_users(tmp_path) -> None:
    out = tmp_path / "demo"
    paths = write_demo(out, 50, seed=3, files=4, tx_per_user=20)
    assert [p.name for p in paths] == [f"part-{i:05d}.parquet" for i in range(4)]
    # nothing else written but the marker that lets a later write_demo replace the folder
    assert sorted(out.iterdir()) == [out / "_sqltargets.json", *paths]
    parts = [pq.read_table(p) for p in paths]
    users = [set(t.column("user_id").to_pylist()) for t in parts]
    assert all(users)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not users[i] & users[j]
    assert sum(t.num_rows for t in parts) == 50 * 20
    assert set().union(*users) == set(
        make_transactions(50, seed=3, tx_per_user=20)["user_id"].to_pylist()
    )
    # the files, in name order, are the table
    whole = pa.concat_tables(parts)
    assert whole.schema == SCHEMA
    assert whole.equals(make_transactions(50, seed=3, tx_per_user=20))


def test_write_demo_shuffled_keeps_users_together(tmp_path) -> None:
    paths = write_demo(tmp_path, 40, seed=1, files=3, shuffle=True)
    parts = [pq.read_table(p) for p in paths]
    users = [set(t.column("user_id").to_pylist()) for t in parts]
    assert sum(len(u) for u in users) == len(set().union(*users)) == 40
    table = make_transactions(40, seed=1, shuffle=True)
    assert sum(t.num_rows for t in parts) == table.num_rows
    key = [("user_id", "ascending"), ("tx_id", "ascending")]
    assert pa.concat_tables(parts).sort_by(key).equals(table.sort_by(key))


def test_write_demo_more_files_than_users(tmp_path) -> None:
    paths = write_demo(tmp_path, 2, files=8, tx_per_user=3)
    assert len(paths) == 2
    assert sum(pq.read_table(p).num_rows for p in paths) == 6


def test_write_demo_zstd(tmp_path) -> None:
    (path,) = write_demo(tmp_path, 5, files=1)
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kw",
    [
        {"users": -1},
        {"users": 5, "days": 0},
        {"users": 5, "tx_per_user": -1},
        {"users": 5, "ties": 1.5},
        {"users": 5, "ties": -0.1},
        {"users": 5, "seed": -1},
    ],
)
def test_bad_arguments(kw: dict) -> None:
    with pytest.raises(ValueError):
        make_transactions(**kw)


def test_write_demo_bad_files(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_demo(tmp_path, 5, files=0)
