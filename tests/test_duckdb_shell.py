"""`sqltargets explain --engine sql --input` output runs unchanged in the real DuckDB shell (duckdb-cli)
and gives the same values as the API; the no-input SQL runs over a `transactions` table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import sqltargets
from sqltargets.verification.compare import diff

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
PRETRAIN = EXAMPLE.with_name("pretrain.yaml")


def duckdb_shell() -> str:
    exe = Path(sys.executable).with_name("duckdb")
    found = str(exe) if exe.exists() else shutil.which("duckdb")
    if not found:
        pytest.fail("the duckdb shell (duckdb-cli, a dev dependency) is not installed")
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sqltargets.demo import write_demo

    out = tmp_path_factory.mktemp("shell") / "data"
    write_demo(out, 40, seed=11, files=3, ties=0.1)
    return out


def shell_table(sql: str, tmp: Path, cwd: Path | None = None) -> pa.Table:
    out = tmp / "shell_out.parquet"
    script = f"COPY ({sql.strip().rstrip(';')}) TO '{out}' (FORMAT parquet);\n"
    r = subprocess.run(
        [duckdb_shell(), "-batch"], input=script, capture_output=True, text=True, cwd=cwd
    )
    assert r.returncode == 0, r.stderr
    return pq.read_table(out)


def test_explain_input_runs_in_duckdb_shell(data: Path, tmp_path: Path) -> None:
    sql = sqltargets.explain(EXAMPLE, source=data, engine="sql")
    got = shell_table(sql, tmp_path)
    want = sqltargets.generate(EXAMPLE, data)
    names = [t.name for t in sqltargets.load(EXAMPLE).targets]
    assert got.num_rows == want.num_rows > 1000
    assert got.column_names == want.column_names
    assert diff(got, want, names, ["user_id", "row_id"]) == []


def test_pretrain_example_runs_in_duckdb_shell(data: Path, tmp_path: Path) -> None:
    """examples/pretrain.yaml (next/previous events, elapsed times, distributions, offsets,
    quantiles, var, the mode of MCCs, exclusive windows) through the real shell."""
    sql = sqltargets.explain(PRETRAIN, source=data, engine="sql")
    got = shell_table(sql, tmp_path)
    want = sqltargets.generate(PRETRAIN, data)
    names = [t.name for t in sqltargets.load(PRETRAIN).targets]
    assert got.num_rows == want.num_rows > 1000
    assert got.column_names == want.column_names
    assert got.schema.equals(want.schema)
    assert diff(got, want, names, ["user_id", "tx_id"]) == []
    nonempty = {n: got.column(n).null_count < got.num_rows for n in names}
    assert all(nonempty.values()), nonempty  # every target has values to compare


def test_explain_relative_glob_in_shell(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the statement lists the files the glob matched (DuckDB globs nothing), relative as the
    # path was given, so it runs from the folder it was written for
    monkeypatch.chdir(data.parent)
    sql = sqltargets.explain(EXAMPLE, source="data/*.parquet", engine="sql")
    assert "'data/part-00000.parquet'" in sql and "*" not in sql.split("READ_PARQUET")[1][:200]
    got = shell_table(sql, tmp_path, cwd=data.parent)
    want = sqltargets.generate(EXAMPLE, data)
    assert got.column("row_id").to_pylist() == want.column("row_id").to_pylist()
    assert diff(got, want, ["grocery_day_sum", "top3_month"], ["user_id", "row_id"]) == []


def test_no_input_sql_reads_transactions_table(data: Path, tmp_path: Path) -> None:
    sql = sqltargets.explain(EXAMPLE, engine="sql")
    # a table whose insertion order (rowid) is the input order: files by name, rows in order
    load = (
        "CREATE TABLE transactions AS SELECT * EXCLUDE (filename, file_row_number) FROM "
        f"read_parquet('{data}/*.parquet', filename = true, file_row_number = true) "
        "ORDER BY filename, file_row_number;"
    )
    out = tmp_path / "o.parquet"
    script = f"{load}\nCOPY ({sql.strip().rstrip(';')}) TO '{out}' (FORMAT parquet);\n"
    r = subprocess.run([duckdb_shell(), "-batch"], input=script, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = pq.read_table(out)
    want = sqltargets.generate(EXAMPLE, data)
    names = [t.name for t in sqltargets.load(EXAMPLE).targets]
    assert diff(got, want, names, ["user_id", "row_id"]) == []


@pytest.mark.parametrize("time_type", ["date", "timestamptz"])
def test_no_input_sql_with_time_type(time_type: str, tmp_path: Path) -> None:
    import duckdb

    from sqltargets.cli import main

    t = pa.table({
        "user_id": [1, 1, 1, 2],
        "ts": pa.array([3600 * 17, 3600 * 20, 86400 * 9, 5], pa.int64()),  # 22:30 and 01:30 in India
        "amount": [1.0, 2.0, 4.0, 8.0], "mcc": [5411, 5411, 1, 5411],
        "channel": ["online", "pos", "online", "atm"],
    })  # fmt: skip
    con = duckdb.connect()
    con.register("raw", t)
    kind = "DATE" if time_type == "date" else "TIMESTAMPTZ"
    con.execute(
        f"CREATE TABLE transactions AS SELECT user_id, CAST(to_timestamp(ts) AS {kind}) AS ts, amount, mcc, channel FROM raw"
    )
    spec = {**yaml.safe_load(EXAMPLE.read_text()), "timezone": "Asia/Kolkata"}
    sql = sqltargets.explain(spec, time_type=time_type, engine="sql")
    got = con.sql(sql).to_arrow_table()
    want = sqltargets.generate(spec, "transactions", connection=con)
    names = [x.name for x in sqltargets.load(spec).targets]
    assert diff(got, want, names, ["user_id", "row_id"]) == []
    if time_type == "timestamptz":  # planned as a naive timestamp, the days would shift
        naive = con.sql(sqltargets.explain(spec, engine="sql")).to_arrow_table()
        assert diff(naive, want, names, ["user_id", "row_id"]) != []
    assert main(["explain", str(EXAMPLE), "--time-type", "dat"]) == 1
