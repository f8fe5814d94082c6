"""Nothing lost, nothing silently wrong: the items of issue 10, each through the API and the
CLI where both apply. The setup is the issue's: the two-target spec ``{s: sum expanding day,
c: count rolling 7d}`` over ``sqltargets demo-data --users 50``."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main

SPEC_TEXT = """columns: {user: user_id, time: ts, amount: amount, mcc: mcc}
targets:
  - {name: s, agg: sum, window: {kind: expanding, period: day}}
  - {name: c, agg: count, window: {kind: rolling, length: 7d}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder with demo data and the spec, as the working folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo-data", "--users", "50", "--out", "data", "--seed", "3"]) == 0
    (tmp_path / "spec.yaml").write_text(SPEC_TEXT)
    return tmp_path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones too) with a hash of its bytes."""
    out = {}
    for root, _dirs, names in os.walk(folder):
        for n in names:
            p = Path(root) / n
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main([*argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_error(code: int, err: list[str], *needles: str) -> None:
    assert code == 1, err
    assert len(err) == 1 and err[0].startswith("Error: "), err
    for n in needles:
        assert n in err[0], (n, err[0])


# ---------------------------------------------------------------------------------------------
# 1. a sharded output never deletes what sqltargets did not write


def test_shards_output_onto_the_input_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "data",
                       "--shards", "2")  # fmt: skip
    assert_one_error(code, err, "output 'data' is the input")
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data/part-00001.parquet",
                       "--output", "data", "--shards", "2")  # fmt: skip
    assert_one_error(code, err, "output 'data' contains the input")
    with pytest.raises(sqltargets.OutputError, match="is the input"):
        sqltargets.write("spec.yaml", "data", "data", shards=2)
    assert snapshot(project) == before


def test_shards_output_onto_other_folders_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "proj").mkdir()
    (project / "proj" / "main.py").write_text("print('mine')\n")
    before = snapshot(project)
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "proj",
                       "--shards", "2")  # fmt: skip
    assert_one_error(code, err, "output 'proj' is a folder that sqltargets did not write")
    for out in (str(project), ".", "..", "/"):
        code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", out,
                           "--shards", "2")  # fmt: skip
        assert code == 1 and len(err) == 1 and err[0].startswith("Error: output"), (out, err)
    with pytest.raises(sqltargets.OutputError, match="contains the input"):
        sqltargets.write("spec.yaml", "data", project, shards=2)
    with pytest.raises(sqltargets.OutputError, match="is or contains the working folder"):
        sqltargets.write("spec.yaml", sqltargets.generate("spec.yaml", "data"), ".", shards=2)
    assert snapshot(project) == before
    for folder in (project, project.parent):  # no '..old.*' or temporary folder left
        assert [n for n in os.listdir(folder) if ".old." in n or n.endswith(".tmp")] == []


def test_shards_replace_only_their_own_folder_when_complete(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ["run", "spec.yaml", "--input", "data", "--output", "out", "--quiet"]
    assert cli(capsys, *run, "--shards", "4")[0] == 0
    assert cli(capsys, *run, "--shards", "2")[0] == 0  # its own folder: replaced
    assert sorted(os.listdir("out")) == ["_sqltargets.json", "part-00000.parquet",
                                         "part-00001.parquet"]  # fmt: skip
    total = pq.read_table("out").num_rows
    assert total == sqltargets.generate("spec.yaml", "data").num_rows
    before = snapshot(project)
    # a failing run leaves the previous output as it was, and no temporary folder
    from sqltargets import api

    calls = []

    def fail_second(*args: object, **kw: object) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise sqltargets.SqlTargetsError("boom")
        return real(*args, **kw)

    real = api._write_file
    with monkeypatch.context() as m:
        m.setattr(api, "_write_file", fail_second)
        code, _, err = cli(capsys, *run, "--shards", "3")
    assert_one_error(code, err, "boom")
    assert snapshot(project) == before
    # a file someone put into our folder is not deleted
    (project / "out" / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, *run, "--shards", "2")
    assert_one_error(code, err, "holds 'notes.txt', which sqltargets did not write")
    assert (project / "out" / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# 2. a file output never replaces a file sqltargets did not write


def test_file_output_onto_the_input_or_foreign_files_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pq.write_table(pq.read_table("data/part-00000.parquet"), "tx.parquet")
    before = snapshot(project)
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "tx.parquet", "--output",
                       "tx.parquet")  # fmt: skip
    assert_one_error(code, err, "output 'tx.parquet' is the input")
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output",
                       "data/targets.parquet")  # fmt: skip
    assert_one_error(code, err, "lies inside the input")
    for foreign in ("spec.yaml", "tx.parquet"):  # not written by sqltargets
        code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", foreign)
        assert_one_error(code, err, "exists and was not written by sqltargets")
    with pytest.raises(sqltargets.OutputError, match="is the input"):
        sqltargets.write("spec.yaml", "tx.parquet", "tx.parquet")
    assert snapshot(project) == before
    # its own previous output is overwritten without ceremony
    run = ["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]
    assert cli(capsys, *run)[0] == 0 and cli(capsys, *run)[0] == 0
    assert pq.read_table("t.parquet").num_rows == sqltargets.generate("spec.yaml", "data").num_rows


# ---------------------------------------------------------------------------------------------
# 3. stores inside an input


def test_store_inside_its_input_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = sqltargets.generate("spec.yaml", "data").num_rows
    before = snapshot(project)
    for store in ("data/store", "data/.cache"):
        code, _, err = cli(capsys, "prepare", "data", "--out", store, "--spec", "spec.yaml")
        assert_one_error(code, err, f"store '{store}' lies inside the input")
        code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "t.parquet",
                           "--store", store)  # fmt: skip
        assert_one_error(code, err, "lies inside the input")
        with pytest.raises(sqltargets.OutputError, match="lies inside the input"):
            sqltargets.generate("spec.yaml", "data", store=store)
    assert snapshot(project) == before
    # a store elsewhere: later plain runs read the input's rows, no more
    assert cli(capsys, "prepare", "data", "--out", "store", "--spec", "spec.yaml")[0] == 0
    assert sqltargets.generate("spec.yaml", "data").num_rows == n
    assert sqltargets.generate("spec.yaml", "store").num_rows == n


def test_run_store_and_output_must_not_overlap(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --store S --output O` with S and O one path, or one inside the other, is refused
    before the store is prepared: nothing is written."""
    before = snapshot(project)
    for store, output in [("o.parquet", "o.parquet"), ("o/s", "o"), ("./o.parquet", "o.parquet")]:
        code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", output,
                           "--store", store)  # fmt: skip
        assert_one_error(code, err, f"--store '{store}' and --output '{output}' overlap")
        assert snapshot(project) == before
    code, _, _ = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "t.parquet",
                     "--store", "s", "--quiet")  # fmt: skip
    assert code == 0 and os.path.isdir("s") and os.path.isfile("t.parquet")


# ---------------------------------------------------------------------------------------------
# 4. demo-data never mixes two data sets


def test_demo_data_replaces_only_its_own_folder(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo-data", "--users", "50", "--out", "d", "--files", "8"]) == 0
    assert main(["demo-data", "--users", "50", "--out", "d", "--files", "2", "--seed", "1"]) == 0
    assert sorted(os.listdir("d")) == ["_sqltargets.json", "part-00000.parquet",
                                       "part-00001.parquet"]  # fmt: skip
    fresh = project / "fresh"
    assert (
        main(["demo-data", "--users", "50", "--out", str(fresh), "--files", "2", "--seed", "1"])
        == 0
    )
    assert pq.read_table("d").equals(pq.read_table(fresh))
    capsys.readouterr()
    (project / "mine").mkdir()
    (project / "mine" / "a.csv").write_text("1,2\n")
    code, _, err = cli(capsys, "demo-data", "--users", "5", "--out", "mine")
    assert_one_error(code, err, "is a folder that sqltargets did not write")
    assert os.listdir("mine") == ["a.csv"]
    code, _, err = cli(capsys, "demo-data", "--users", "5", "--out", ".")
    assert_one_error(code, err, "working folder")


def test_no_data_set_is_written_inside_another(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Demo data inside demo data was read as one input with it (users of two seeds merged
    under one id); a folder sqltargets wrote is replaced only by the same kind of output."""
    assert main(["run", "spec.yaml", "--input", "data", "--output", "shards", "--shards", "2",
                 "--quiet"]) == 0  # fmt: skip
    before = {"data": snapshot(project / "data"), "shards": snapshot(project / "shards")}
    capsys.readouterr()
    code, _, err = cli(capsys, "demo-data", "--users", "5", "--out", "data/more", "--seed", "2")
    assert_one_error(code, err, "lies inside", "a folder of demo data")
    assert main(["demo-data", "--users", "5", "--out", "other"]) == 0
    before["other"] = snapshot(project / "other")
    capsys.readouterr()
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "other/t",
                       "--shards", "2")  # fmt: skip
    assert_one_error(code, err, "lies inside", "a folder of demo data")
    code, _, err = cli(capsys, "demo-data", "--users", "5", "--out", "shards")
    assert_one_error(code, err, "is a folder of sharded targets that sqltargets wrote")
    code, _, err = cli(capsys, "prepare", "data", "--spec", "spec.yaml", "--out", "shards")
    assert_one_error(code, err, "is a folder of sharded targets that sqltargets wrote")
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "shards", "--output", "data",
                       "--shards", "2")  # fmt: skip
    assert_one_error(code, err)
    assert {n: snapshot(project / n) for n in before} == before


def test_a_report_and_a_targets_file_never_replace_each_other(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whether sqltargets wrote a file was checked, not what it is: `describe --html
    t.parquet` replaced a run's targets with a report, and `run --output r.html` a report
    with targets."""
    assert main(["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]) == 0
    assert main(["describe", "spec.yaml", "--input", "data", "--html", "r.html", "--quiet"]) == 0
    files = {"t.parquet": (project / "t.parquet").read_bytes(),
             "r.html": (project / "r.html").read_bytes()}  # fmt: skip
    capsys.readouterr()
    code, _, err = cli(capsys, "describe", "spec.yaml", "--input", "data", "--html", "t.parquet")
    assert_one_error(code, err, "'t.parquet' is a targets file sqltargets wrote, not a report")
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "r.html")
    assert_one_error(code, err, "'r.html' is a report sqltargets wrote, not a targets file")
    with pytest.raises(sqltargets.OutputError, match="not a targets file"):
        sqltargets.write("spec.yaml", "data", "r.html")
    assert {n: (project / n).read_bytes() for n in files} == files
    # each still replaces its own kind
    assert main(["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]) == 0
    assert main(["describe", "spec.yaml", "--input", "data", "--html", "r.html", "--quiet"]) == 0


# ---------------------------------------------------------------------------------------------
# outputs get the user's umask


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755),
                                                             (0o077, 0o600, 0o700)])  # fmt: skip
def test_outputs_follow_the_umask(project: Path, mask: int, file_mode: int, dir_mode: int) -> None:
    old = os.umask(mask)
    try:
        sqltargets.write("spec.yaml", "data", "t.parquet")
        sqltargets.write("spec.yaml", "data", "shards", shards=2)
        sqltargets.prepare("data", "store", specs="spec.yaml")
        from sqltargets.demo import write_demo

        write_demo("demo", 5, files=2)
    finally:
        os.umask(old)

    def mode(p: str) -> int:
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode("t.parquet") == file_mode
    for folder in ("shards", "store", "demo"):
        assert mode(folder) == dir_mode, folder
        for name in os.listdir(folder):
            assert mode(f"{folder}/{name}") == file_mode, (folder, name)


# ---------------------------------------------------------------------------------------------
# 7. internal names never collide with input columns


@pytest.mark.parametrize(
    "name", ["_st_rid", "_st_pos", "filename", "_st_rid_2", "_sqltargets_row_id"]
)
def test_input_columns_named_like_internal_ones(tmp_path: Path, name: str) -> None:
    t = pa.table({
        "u": [1, 1, 2, 2, 1], "t": pa.array([3, 1, 2, 2, 1], pa.int64()),
        "a": [1.0, 2.0, 3.0, 4.0, 5.0], "m": [5411] * 5, name: [90, 91, 92, 93, 94],
    })  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "year"}},
                        {"name": "x", "agg": "sum", "value": name, "where": f'"{name}" > 90',
                         "window": {"kind": "period", "period": "year"}}]}  # fmt: skip
    (tmp_path / "d").mkdir()
    pq.write_table(t.slice(0, 3), tmp_path / "d" / "a.parquet")
    pq.write_table(t.slice(3), tmp_path / "d" / "b.parquet")
    want_ids = [1, 4, 0, 2, 3]  # user 1: t=1 (rows 1, 4), t=3 (row 0); user 2: rows 2, 3
    for source in (t, tmp_path / "d", tmp_path / "d" / "a.parquet"):
        out = sqltargets.generate(spec, source)
        n = out.num_rows
        assert out.column("row_id").to_pylist() == [i for i in want_ids if i < n], source
        assert sqltargets.verify(spec, source).ok
    store = sqltargets.prepare(tmp_path / "d", tmp_path / "store", specs=spec)
    assert sqltargets.generate(spec, store).column("row_id").to_pylist() == want_ids
    con = duckdb.connect()
    con.execute("CREATE TABLE tx AS SELECT * FROM t")
    assert sqltargets.generate(spec, "tx", connection=con).column("row_id").to_pylist() == want_ids


def test_columns_that_hide_row_positions_are_refused(tmp_path: Path) -> None:
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    t = pa.table({"u": [1], "t": pa.array([1], pa.int64()), "a": [1.0], "m": [1], "rowid": [7]})
    con = duckdb.connect()
    con.execute("CREATE TABLE tx AS SELECT * FROM t")
    with pytest.raises(sqltargets.DataError, match="column named 'rowid'"):
        sqltargets.generate(spec, "tx", connection=con)
    assert sqltargets.generate(spec, t).column("row_id").to_pylist() == [0]  # Arrow: fine
    pq.write_table(
        t.rename_columns(["u", "t", "a", "m", "file_row_number"]), tmp_path / "x.parquet"
    )
    with pytest.raises(sqltargets.DataError, match="'file_row_number' has the name DuckDB gives"):
        sqltargets.generate(spec, tmp_path / "x.parquet")


# ---------------------------------------------------------------------------------------------
# 8. a table and a folder of the same name


def test_table_and_folder_with_one_name(project: Path) -> None:
    os.rename("data", "tx")
    con = duckdb.connect()
    con.execute("CREATE TABLE tx AS SELECT * FROM read_parquet('tx/part-00000.parquet')")
    with pytest.raises(sqltargets.SourceError, match="both a table in the connection and a path"):
        sqltargets.generate("spec.yaml", "tx", connection=con)
    table_rows = con.sql("SELECT count(*) FROM tx").fetchall()[0][0]
    assert sqltargets.generate("spec.yaml", "main.tx", connection=con).num_rows == table_rows
    files_rows = sqltargets.generate("spec.yaml", Path("tx")).num_rows
    assert sqltargets.generate("spec.yaml", Path("tx"), connection=con).num_rows == files_rows
    assert files_rows > table_rows
    with pytest.raises(sqltargets.SourceError, match="both a table"):
        sqltargets.verify("spec.yaml", "tx", connection=con)


# ---------------------------------------------------------------------------------------------
# 9. one meaning for fill everywhere: non-finite and out-of-range fills are refused


@pytest.mark.parametrize(
    ("agg", "fill", "words"),
    [
        ("mean", ".nan", "fill: nan is not allowed; fill must be a finite number"),
        ("mean", ".inf", "fill: inf is not allowed"),
        ("max", "-.inf", "fill: -inf is not allowed"),
        ("mean", "1.0e+400", "fill: inf is not allowed"),
        ("count", "1.0e+30", "outside int64"),
        ("count", "9223372036854775808", "outside int64"),
        ("count", "1e30", "YAML reads 1e30 as text: write 1.0e+30"),
        ("sum", "2.0e+308", "fill: inf is not allowed"),
    ],
)
def test_fills_that_mean_nothing_are_refused_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], agg: str, fill: str, words: str
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\n"
        f"targets: [{{name: x, agg: {agg}, fill: {fill}, window: {{kind: rolling, length: 7d}}}}]\n"
    )
    with pytest.raises(sqltargets.SpecError, match=r"targets\[0\]\.fill"):
        sqltargets.load(spec)
    code, _, err = cli(capsys, "validate", str(spec))
    assert_one_error(code, err, "targets[0].fill", words)


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), 1e30, 10**19, 10**400])
def test_fills_from_python_are_checked_too(fill: float) -> None:
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "targets": [{"name": "x", "agg": "count", "fill": fill,
                         "window": {"kind": "rolling", "length": "7d"}}]}  # fmt: skip
    with pytest.raises(sqltargets.SpecError, match=r"targets\[0\]\.fill"):
        sqltargets.load(spec)
    spec["targets"][0]["agg"] = "mean"
    if fill in (1e30, 10**19):
        assert sqltargets.load(spec).targets[0].fill == fill
    else:
        with pytest.raises(sqltargets.SpecError, match=r"targets\[0\]\.fill"):
            sqltargets.load(spec)


# ---------------------------------------------------------------------------------------------
# 10. YAML that would take the loader's time or memory


def test_alias_bomb_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ['a0: &a0 ["xxxxxxxxxx"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    text = "\n".join(lines) + "\ntimezone: *a9\n"
    assert len(text) < 1000
    spec = tmp_path / "bomb.yaml"
    spec.write_text(text)
    start = time.monotonic()
    with pytest.raises(sqltargets.SpecError, match="aliases expand to more than 100,000 values"):
        sqltargets.load(spec)
    code, _, err = cli(capsys, "validate", str(spec))
    assert_one_error(code, err, "aliases expand")
    assert time.monotonic() - start < 5
    assert len(err[0]) < 300


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &a [*a]\n", "alias refers to itself"),
        ("targets: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
        ("{[a, b]: 1}\n", "a list is used as a key"),
        ("{{a: 1}: 1}\n", "a mapping is used as a key"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: !!python/object:os.system x\n", "malformed YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        (  # YAML 1.1's base 60: 54:11 would be 3251, a valid-looking code
            "columns: {user: u, time: t, amount: a, mcc: m}\n"
            "targets: [{name: s, agg: sum, mcc: [54:11], window: {kind: period, period: day}}]\n",
            "'54:11' is not an MCC code",
        ),
        (
            "base: &b {kind: expanding, period: day}\ncolumns: {user: u, time: t, amount: a, mcc: m}\n"
            "targets: [{name: s, agg: sum, window: {<<: *b}}]\n",
            "unknown key 'base'",
        ),
    ],
)
def test_odd_yaml_is_one_spec_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    spec = tmp_path / "odd.yaml"
    spec.write_text(text)
    with pytest.raises(sqltargets.SpecError, match=words):
        sqltargets.load(spec)
    code, _, err = cli(capsys, "validate", str(spec))
    assert_one_error(code, err, words)


def test_duplicate_json_keys_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """json.loads keeps a repeated key's last value silently (a spec naming two time zones
    ran in the second); YAML's duplicate keys are refused, and so are JSON's, at any depth."""
    head = '"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [{"name": "s", "agg": "sum", "window": {"kind": "period", "period": "day"}}]'
    for text, key in [
        ('{"timezone": "Europe/Berlin", ' + head + ', "timezone": "UTC"}', "timezone"),
        (("{" + head + "}").replace('"agg": "sum"', '"agg": "sum", "agg": "max"'), "agg"),
    ]:
        spec = tmp_path / "dup.json"
        spec.write_text(text)
        with pytest.raises(sqltargets.SpecError, match=f"duplicate key '{key}'"):
            sqltargets.load(spec)
        code, _, err = cli(capsys, "validate", str(spec))
        assert_one_error(code, err, f"duplicate key '{key}'")
    spec.write_text("{" + head + "}")
    assert sqltargets.load(spec).targets[0].agg == "sum"


def test_merge_keys_and_small_aliases_still_work(tmp_path: Path) -> None:
    spec = tmp_path / "ok.yaml"
    spec.write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\n"
        "targets:\n"
        "  - {name: s, agg: sum, window: &w {kind: expanding, period: day}}\n"
        "  - {name: m, agg: max, window: *w}\n"
        "  - {name: n, agg: min, window: {<<: *w, period: month}}\n"
    )
    ts = sqltargets.load(spec)
    assert [t.window.period for t in ts.targets] == ["day", "day", "month"]


def test_deep_json_and_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "deep.json"
    spec.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(sqltargets.SpecError, match="nested too deeply"):
        sqltargets.load(spec)
    where = "(" * 3000 + "a > 0" + ")" * 3000
    bad = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
           "targets": [{"name": "s", "agg": "sum", "where": where,
                        "window": {"kind": "period", "period": "day"}}]}  # fmt: skip
    with pytest.raises(sqltargets.SpecError, match="nests parentheses more than 64 deep"):
        sqltargets.load(bad)
    bad["targets"][0]["where"] = " + ".join(["a"] * 2000) + " > 0"
    with pytest.raises(sqltargets.SpecError, match="nested more than 256 operations deep"):
        sqltargets.load(bad)


# ---------------------------------------------------------------------------------------------
# 11. symlink loops never hang a run


def test_two_symlink_loops_do_not_hang(project: Path) -> None:
    os.symlink(project / "data", project / "data" / "loop_a")
    os.symlink(project / "data" / "l2", project / "data" / "l1")
    os.symlink(project / "data" / "l1", project / "data" / "l2")
    proc = subprocess.run(
        [sys.executable, "-m", "sqltargets", "run", "spec.yaml", "--input", "data",
         "--output", "t.parquet", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = sum(pq.read_metadata(f"data/{f}").num_rows for f in os.listdir("data")
               if f.endswith(".parquet"))  # fmt: skip
    assert pq.read_table("t.parquet").num_rows == want


# ---------------------------------------------------------------------------------------------
# 12. Ctrl-C twice during a parallel sharded run exits promptly, leaving nothing behind


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for the worker processes")
def test_ctrl_c_twice_stops_parallel_shards(tmp_path: Path) -> None:
    from sqltargets.demo import write_demo

    write_demo(tmp_path / "data", 300, seed=1, files=2, tx_per_user=1500)
    spec = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqltargets", "run", str(spec), "--input", str(tmp_path / "data"),
         "--output", str(out / "t"), "--shards", "8", "--jobs", "2", "--threads", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "8 shards, 2 at a time" in line, line
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [
            c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    try:
        rest = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:  # the bug this test is about: do not leak the processes
        for pid in [*_children(proc.pid), proc.pid]:
            os.kill(pid, signal.SIGKILL)
        raise
    assert time.monotonic() - start < 30
    assert proc.returncode == 130, rest
    assert "Error: interrupted" in rest
    assert os.listdir(out) == []  # neither output nor temporary folders
    time.sleep(0.5)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "Z" not in Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0]]  # fmt: skip
    assert alive == [], "worker processes outlived the run"


# ---------------------------------------------------------------------------------------------
# verify compares only what it should: odd but legal data, and odd data refused in one line


def test_verify_at_years_1_and_9999(tmp_path: Path) -> None:
    import datetime as dt

    targets = [
        {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "week"}},
        {"name": "n", "agg": "max", "window": {"kind": "next_period", "period": "year"}},
        {"name": "f", "agg": "count", "window": {"kind": "future", "length": "30d"}},
    ]
    times = [dt.datetime(1, 1, 1), dt.datetime(1, 1, 3), dt.datetime(9999, 12, 31, 23, 59),
             dt.datetime(9999, 12, 25)]  # fmt: skip
    t = pa.table({"u": [1, 1, 2, 2], "t": pa.array(times, pa.timestamp("us")),
                  "a": [1.0, 2.0, 3.0, 4.0], "m": [1, 2, 3, 4]})  # fmt: skip
    pq.write_table(t, tmp_path / "x.parquet")
    for tz in ("UTC", "America/New_York"):
        spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
                "timezone": tz, "week_start": "sunday", "targets": targets}  # fmt: skip
        assert sqltargets.verify(spec, tmp_path / "x.parquet").ok
    # a zoned instant whose local time is in year 10000: the reference says so in one line
    zoned = t.set_column(1, "t", t.column("t").cast(pa.timestamp("us", "UTC")))
    spec["timezone"] = "Asia/Tokyo"
    assert sqltargets.generate(spec, zoned).num_rows == 4
    with pytest.raises(sqltargets.DataError, match="outside years 1 to 9999 in time zone Asia"):
        sqltargets.verify(spec, zoned)


def test_verify_with_round_in_where() -> None:
    import decimal

    t = pa.table({
        "u": [1] * 6, "t": pa.array(range(6), pa.int64()),
        "a": [0.15, 0.25, 0.35, 0.45, 2.675, -0.15],
        "d": pa.array([decimal.Decimal(x) for x in ("0.15", "0.25", "0.35", "0.45", "2.67", "-0.15")],
                      pa.decimal128(5, 2)),
        "m": [1] * 6,
    })  # fmt: skip
    wheres = ["round(a, 1) = 0.2", "round(a, 1) >= 0.3", "round(0.15, 1) = 0.2",
              "round(d, 1) = 0.2", "round(a, 2) = 2.67", "round(a * 10, -1) = 0"]  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": f"w{i}", "agg": "count", "where": w,
                         "window": {"kind": "period", "period": "year"}}
                        for i, w in enumerate(wheres)]}  # fmt: skip
    got = sqltargets.generate(spec, t).to_pylist()[0]
    # DuckDB rounds a double's exact value (0.15 is just below), a DECIMAL's digits exactly
    assert [got[f"w{i}"] for i in range(6)] == [0, 4, 6, 1, 1, 5]
    assert sqltargets.verify(spec, t).ok


def test_verify_refuses_nan_users_in_one_line() -> None:
    t = pa.table({"u": [1.0, float("nan"), 2.0], "t": pa.array([0, 1, 2], pa.int64()),
                  "a": [1.0, 2.0, 3.0], "m": [1, 2, 3]})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    with pytest.raises(sqltargets.DataError, match=r"columns\.user: column 'u' has type DOUBLE"):
        sqltargets.verify(spec, t)


def test_batch_size_out_of_range() -> None:
    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [1]})
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    for bad in (0, -1, 1.5, "10", 2**40):
        with pytest.raises(sqltargets.ArgumentError, match="batch_size"):
            sqltargets.generate_batches(spec, t, batch_size=bad)
        with pytest.raises(sqltargets.ArgumentError, match="batch_size"):
            sqltargets.write(spec, t, "unused.parquet", batch_size=bad)
    assert not Path("unused.parquet").exists()


def test_hive_named_folders_and_brackets_read_their_files(tmp_path: Path) -> None:
    t = pa.table({"u": [1, 1], "t": pa.array([0, 1], pa.int64()), "a": [1.0, 2.0],
                  "mcc": [5411, 5411]})  # fmt: skip
    for folder in ("mcc=grocery", "exports [2024]"):
        (tmp_path / folder).mkdir()
        pq.write_table(t, tmp_path / folder / "p.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "mcc"}, "time": {"unit": "day"},
            "targets": [{"name": "g", "agg": "count", "mcc": ["grocery"],
                         "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    for source in (tmp_path, tmp_path / "mcc=grocery", tmp_path / "exports [2024]"):
        out = sqltargets.generate(spec, source)
        assert out.column("g").to_pylist()[-1] == out.num_rows, source  # every MCC is 5411
        assert sqltargets.verify(spec, source).ok


def test_placing_checks_again_what_appeared_during_the_run(tmp_path: Path) -> None:
    """An output is checked before the work and again when it is put in place: a user's file
    or folder that appeared at the output's path while the run went on is never replaced
    (the finished temporary stays for the caller to remove)."""
    from sqltargets.errors import OutputError
    from sqltargets.execute import files

    dest = tmp_path / "targets.parquet"
    dest.write_text("the user's file, written during the run")
    tmp = files.temp_file(dest)
    with pytest.raises(OutputError, match="not written by sqltargets; nothing replaced"):
        files.place_file(tmp, dest)
    assert dest.read_text() == "the user's file, written during the run"
    files.remove(tmp)

    folder = tmp_path / "shards"
    folder.mkdir()
    files.write_marker(folder, "targets", ["part-00000.parquet"])
    schema = pa.schema([("x", pa.int64())], metadata={files.OUTPUT_KEY: b"{}"})
    with files.ParquetWriter(folder / "part-00000.parquet", schema) as w:  # (as a run writes)
        w.write_table(pa.table({"x": [1, 2]}, schema=schema))
    (folder / "notes.txt").write_text("put here by the user during the run")
    new = files.temp_dir(folder)
    with pytest.raises(OutputError, match=r"notes\.txt"):
        files.replace_dir(new, folder, ("targets",))
    assert (folder / "notes.txt").read_text() == "put here by the user during the run"
    assert new.is_dir()
    (folder / "notes.txt").unlink()
    files.replace_dir(new, folder, ("targets",))  # ours again: replaced
    assert sorted(p.name for p in folder.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_file_output_with_a_trailing_slash_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--output out.parquet/` replaced the file out.parquet, and `--output new/` wrote a
    file named new: a trailing slash names a folder."""
    assert main(["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]) == 0
    before = snapshot(project)
    capsys.readouterr()
    for argv in (
        ["run", "spec.yaml", "--input", "data", "--output", "t.parquet/"],
        ["run", "spec.yaml", "--input", "data", "--output", "new/"],
        ["describe", "spec.yaml", "--input", "data", "--html", "report/"],
    ):
        code, _, err = cli(capsys, *argv)
        assert_one_error(code, err, "ends with '/', which names a folder")
    assert snapshot(project) == before


def test_outputs_inside_an_input_folder_are_skipped_with_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sqltargets' own outputs inside an input folder are not input (documented); a run says
    so, since their rows are not in its targets."""
    assert main(["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]) == 0
    (project / "data" / "copied.parquet").write_bytes((project / "t.parquet").read_bytes())
    with pytest.warns(sqltargets.SkippedOutputsWarning, match="1 sqltargets output inside"):
        out = sqltargets.generate("spec.yaml", "data")
    assert out.num_rows == pq.read_metadata(project / "t.parquet").num_rows
    capsys.readouterr()
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "u.parquet",
                       "--quiet")  # fmt: skip
    assert code == 0
    assert err == [
        "Warning: input 'data': 1 sqltargets output inside it is not read as input "
        "(e.g. 'data/copied.parquet'); name a file exactly to read it"
    ]


def test_a_users_file_made_from_an_output_is_never_replaced(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyarrow keeps schema metadata through filter, select, concat and append_column, so a
    training file made from a run's output carried sqltargets' key and was replaced by the
    next run pointed at it; a shard or demo file rewritten by the user went with its
    folder. Each file records its rows, columns and row groups as written: a file that no
    longer matches is the user's, never replaced, and read as input like any other."""
    import pyarrow.compute as pc

    assert main(["run", "spec.yaml", "--input", "data", "--output", "t.parquet", "--quiet"]) == 0
    assert main(["run", "spec.yaml", "--input", "data", "--output", "sh", "--shards", "2", "--quiet"]) == 0  # fmt: skip
    t = pq.read_table("t.parquet")
    derived = {
        "filtered.parquet": t.filter(pc.greater(t.column("row_id"), 5)),
        "labelled.parquet": t.append_column("label", pa.array([1] * t.num_rows)),
        "selected.parquet": t.select(t.column_names[:-1]),
        "doubled.parquet": pa.concat_tables([t, t]),
        "copied.parquet": t,  # (rewritten whole: other row groups)
    }
    for name, table in derived.items():
        pq.write_table(table, name, row_group_size=1000)
        assert b"sqltargets" in pq.read_metadata(name).metadata  # the key survived
    part = pq.read_table("sh/part-00001.parquet")
    pq.write_table(part.append_column("note", pa.array(["mine"] * part.num_rows)), "sh/part-00001.parquet")  # fmt: skip
    demo = pq.read_table("data/part-00000.parquet")
    pq.write_table(demo.slice(1), "data/part-00000.parquet")
    before = snapshot(project)
    capsys.readouterr()
    for name in derived:
        code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", name)
        assert_one_error(code, err, f"output {name!r} exists and was not written by sqltargets as it is now")  # fmt: skip
    code, _, err = cli(capsys, "run", "spec.yaml", "--input", "data", "--output", "sh", "--shards", "2")  # fmt: skip
    assert_one_error(code, err, "holds 'part-00001.parquet', which is not the file sqltargets wrote there")  # fmt: skip
    code, _, err = cli(capsys, "demo-data", "--users", "5", "--out", "data")
    assert_one_error(code, err, "holds 'part-00000.parquet', which is not the file sqltargets wrote there")  # fmt: skip
    assert snapshot(project) == before
    # the user's file is input again (it was skipped as an output): its rows are read
    os.mkdir("mixed")
    pq.write_table(derived["filtered.parquet"].select(["user_id", "ts", "row_id"]), "mixed/f.parquet")  # fmt: skip
    os.replace("t.parquet", "mixed/t.parquet")
    from sqltargets.execute.files import list_input

    listing = list_input("mixed")
    assert list(listing.files) == ["mixed/f.parquet"] and list(listing.skipped) == [
        "mixed/t.parquet"
    ]
    # an untouched output is still replaced by the next run
    assert main(["run", "spec.yaml", "--input", "data", "--output", "mixed/t.parquet", "--quiet"]) == 0  # fmt: skip


def test_a_report_refused_at_placing_leaves_no_temporary(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's file that appeared at the report's path during the work is kept, and the
    finished temporary report beside it was left behind (only an OSError removed it)."""
    import sqltargets.report as report

    d = sqltargets.describe("spec.yaml", "data", users=5)
    real_page = report.html_page

    def page_then_users_file(*args: object, **kwargs: object) -> str:
        Path("r.html").write_text("the user's notes, written during the work")
        return real_page(*args, **kwargs)

    monkeypatch.setattr(report, "html_page", page_then_users_file)
    with pytest.raises(sqltargets.OutputError, match="not written by sqltargets; nothing replaced"):
        d.write_html("r.html")
    assert Path("r.html").read_text() == "the user's notes, written during the work"
    assert [p for p in os.listdir(".") if p.startswith(".r.html")] == []
