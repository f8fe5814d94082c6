"""The CLI, called in-process: exit codes, exact one-line errors, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

import sqltargets
from sqltargets.cli import main

SPEC = {
    "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"},
    "targets": [
        {
            "name": "g_day",
            "agg": "sum",
            "mcc": ["grocery"],
            "window": {"kind": "expanding", "period": "day"},
        },
        {"name": "n_7d", "agg": "count", "window": {"kind": "rolling", "length": "7d"}},
        {"name": "top2", "agg": "top_k", "k": 2, "window": {"kind": "period", "period": "month"}},
    ],
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from sqltargets.demo import write_demo

    out = tmp_path / "data"
    write_demo(out, 30, seed=3, files=3)
    return out


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(SPEC))
    return p


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def write_yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


BASE = "columns: {user: user_id, time: ts, amount: amount, mcc: mcc}\n"


def test_explain_prints_one_statement(capsys: pytest.CaptureFixture[str], spec_file: Path) -> None:
    code, out, err = run(capsys, "explain", spec_file)
    assert code == 0 and err == ""
    assert out.rstrip().endswith(";")
    assert len([s for s in sqlglot.parse(out, read="duckdb") if s]) == 1
    assert 'FROM "transactions"' in out


def test_explain_input_runs_and_equals_api(
    capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path
) -> None:
    code, out, _ = run(capsys, "explain", spec_file, "--input", data, "--engine", "sql")
    assert code == 0
    got = duckdb.connect().sql(out.rstrip().rstrip(";")).to_arrow_table()
    want = sqltargets.generate(SPEC, data, engine="sql")  # exactly the statement explain prints
    assert got.to_pylist() == want.to_pylist()


def test_run_writes_parquet_and_summary(
    capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "t.parquet"
    code, out, err = run(
        capsys, "run", spec_file, "--input", data, "--output", out_file, "--summary"
    )
    assert code == 0
    assert "wrote" in err and "rows" in err
    assert "g_day" in out and "top2" in out
    written = pq.read_table(out_file)
    assert written.equals(sqltargets.generate(SPEC, data))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_run_error_leaves_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    spec = write_yaml(
        tmp_path,
        BASE.replace("amount: amount", "amount: amont")
        + "targets: [{name: a, agg: sum, window: {kind: period, period: day}}]\n",
    )
    out_file = tmp_path / "t.parquet"
    code, _, err = run(capsys, "run", spec, "--input", data, "--output", out_file)
    assert_error(code, err, "columns.amount", "'amont'", "did you mean 'amount'")
    assert not out_file.exists()
    assert list(tmp_path.glob(".t.parquet*")) == []


def test_run_unwritable_output(
    capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "run", spec_file, "--input", data, "--output", tmp_path / "nope" / "t.parquet"
    )
    assert_error(code, err, "output", "does not exist")


def test_run_missing_input(
    capsys: pytest.CaptureFixture[str], spec_file: Path, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        "run",
        spec_file,
        "--input",
        tmp_path / "missing.parquet",
        "--output",
        tmp_path / "o.parquet",
    )
    assert_error(code, err, "missing.parquet", "does not exist")
    code, _, err = run(
        capsys, "run", spec_file, "--input", tmp_path, "--output", tmp_path / "o.parquet"
    )
    assert_error(code, err, "no .parquet files")


def test_verify_ok(capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path) -> None:
    code, out, _ = run(capsys, "verify", spec_file, "--input", data, "--users", 5)
    assert code == 0
    assert "ok:" in out and "5 users" in out


def test_verify_reports_mismatch(
    capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.compute as pc

    import sqltargets.verification.reference as ref

    real = ref.reference_table

    def off_by_one(ts, table):  # a reference that disagrees on one target
        out = real(ts, table)
        i = out.schema.get_field_index("g_day")
        return out.set_column(i, "g_day", pc.add(out.column(i), 1.0))

    monkeypatch.setattr(ref, "reference_table", off_by_one)
    code, out, err = run(capsys, "verify", spec_file, "--input", data, "--users", 3)
    assert code == 1
    assert "MISMATCH g_day" in out
    assert "n_7d" not in out.split("MISMATCH g_day")[0]
    assert err.startswith("Error: ")


def test_validate_ok(capsys: pytest.CaptureFixture[str], spec_file: Path) -> None:
    code, out, _ = run(capsys, "validate", spec_file)
    assert code == 0
    assert "3 targets" in out and "n_7d: count over rolling/1w" in out


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            BASE + "targets: [{name: a, agg: summ, window: {kind: expanding, period: day}}]",
            ["targets[0].agg", "'summ'", "did you mean 'sum'"],
        ),
        (
            BASE + "targets:\n - {name: a, agg: sum, window: {kind: expanding, period: day}}\n"
            " - {name: b, agg: sum, window: {kind: expanding, period: day}}\n"
            " - {name: c, agg: sum, window: {kind: expanding, period: mounth}}",
            [
                "targets[2].window.period",
                "'mounth'",
                "day, week, month, quarter, year",
                "did you mean 'month'",
            ],
        ),
        (
            BASE + "targets: [{name: a, agg: sum, window: {kind: rolling, length: 7 parsecs}}]",
            ["targets[0].window.length", "'7 parsecs'", "such as '7d'"],
        ),
        (
            BASE + "targets: [{name: a, agg: sum, window: {kind: expandin, period: day}}]",
            ["targets[0].window.kind", "did you mean 'expanding'"],
        ),
        (
            BASE
            + "targets: [{name: a, agg: sum, mcc: [groceries], window: {kind: period, period: day}}]",
            ["targets[0].mcc[0]", "'groceries'", "did you mean 'grocery'"],
        ),
        (
            BASE
            + "targets: [{name: a, agg: sum, mcc: [99999], window: {kind: period, period: day}}]",
            ["targets[0].mcc[0]", "99999", "0-9999"],
        ),
        (
            BASE + "targets: [{name: a, agg: sum, windw: {kind: period, period: day}}]",
            ["targets[0].windw", "unknown key", "did you mean 'window'"],
        ),
        (
            BASE + "targets: [{name: Spend, agg: sum, window: {kind: period, period: day}},"
            " {name: spend, agg: max, window: {kind: period, period: day}}]",
            ["targets[1].name", "'spend'", "ignoring case"],
        ),
        (
            BASE + "targets: [{name: a, agg: top_k, window: {kind: period, period: day}}]",
            ["targets[0].k", "missing", "1 to 1000"],
        ),
        (
            BASE + "targets: [{name: a, agg: top_k, k: 0, window: {kind: period, period: day}}]",
            ["targets[0].k", "0", "1 to 1000"],
        ),
        (
            BASE
            + "timezone: Europe/Berln\ntargets: [{name: a, agg: sum, window: {kind: period, period: day}}]",
            ["timezone", "'Europe/Berln'", "did you mean 'Europe/Berlin'"],
        ),
        (
            BASE
            + "output: event\ntargets: [{name: a, agg: sum, window: {kind: period, period: day}}]",
            ["output", "'event'", "did you mean 'events'"],
        ),
        (
            BASE
            + 'targets: [{name: a, agg: sum, where: "amount > 0; DROP TABLE x", window: {kind: period, period: day}}]',
            ["targets[0].where", "not one boolean expression"],
        ),
        (
            BASE
            + 'targets: [{name: a, agg: sum, where: "amount > (SELECT 1)", window: {kind: period, period: day}}]',
            ["targets[0].where", "not allowed"],
        ),
        (
            BASE
            + 'targets: [{name: "a; DROP TABLE t", agg: sum, window: {kind: period, period: day}}]',
            ["targets[0].name", "not a valid target name"],
        ),
        (
            BASE + "targets: [{name: a, agg: sum, window: {kind: period, period: day}}\n",
            ["malformed YAML", "line"],
        ),
        (BASE + "columns: {user: u}\ntargets: []", ["duplicate key 'columns'", "line 2"]),
    ],
)
def test_spec_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, needles: list[str]
) -> None:
    code, out, err = run(capsys, "validate", write_yaml(tmp_path, text))
    assert_error(code, err, *needles)
    assert out == ""


def test_several_spec_errors_reported_together(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = BASE + "targets: [{name: a, agg: summ, window: {kind: rolling, length: 7x}}]"
    code, _, err = run(capsys, "validate", write_yaml(tmp_path, text))
    assert_error(code, err, "targets[0].agg", "targets[0].window.length")


def test_malformed_json_names_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text('{\n  "columns": {"user": "u",\n  }\n}')
    code, _, err = run(capsys, "validate", p)
    assert_error(code, err, "malformed JSON", "line 3")


def test_data_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = pa.table({
        "user_id": [1, 1, 2], "ts": pa.array([1, None, 3], pa.int64()),
        "amount": [1.0, 2.0, 3.0], "mcc": [5411, 5411, 1],
    })  # fmt: skip
    pq.write_table(t, tmp_path / "d.parquet")
    spec = BASE + "targets: [{name: a, agg: sum, window: {kind: period, period: day}}]\n"
    code, _, err = run(capsys, "run", write_yaml(tmp_path, spec), "--input", tmp_path / "d.parquet",
                       "--output", tmp_path / "o.parquet")  # fmt: skip
    assert_error(code, err, "time.unit", "'ts' is an integer")
    spec_unit = spec + "time: {unit: s}\n"
    code, _, err = run(capsys, "run", write_yaml(tmp_path, spec_unit), "--input", tmp_path / "d.parquet",
                       "--output", tmp_path / "o.parquet")  # fmt: skip
    assert_error(code, err, "columns.time", "1 of 3 rows have a null time", "first such row")
    assert not (tmp_path / "o.parquet").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    p = write_yaml(
        tmp_path, BASE + "targets: [{name: a, agg: summ, window: {kind: period, period: day}}]"
    )
    with pytest.raises(sqltargets.SpecError):
        main(["--debug", "validate", str(p)])


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explian")
    assert_error(code, err, "'explian'", "explain")


def test_mcc_lists_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "mcc")
    assert code == 0
    for group in (
        "grocery",
        "restaurants",
        "fast_food",
        "drug_stores",
        "fuel",
        "airlines",
        "hotels",
        "rent",
        "utilities",
        "clothing",
        "electronics",
    ):
        assert group in out
    assert "5411" in out


def test_demo_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "demo-data", "--users", 12, "--out", tmp_path / "d", "--files", 2)
    assert code == 0 and "2 files" in out
    t = pq.read_table(tmp_path / "d")
    assert len(set(t.column("user_id").to_pylist())) == 12


def test_python_dash_m(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "sqltargets", "validate", str(tmp_path / "x.yaml")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error: spec file {str(tmp_path / 'x.yaml')!r} does not exist"


def test_past_only_and_validate_show_what_looks_ahead(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        BASE
        + "targets:\n"
        + "  - {name: run, agg: sum, window: {kind: expanding, period: day}}\n"
        + "  - {name: nxt, agg: sum, window: {kind: future, length: 7d}}\n"
    )
    code, out, _ = run(capsys, "validate", spec)
    assert code == 0
    assert "run: sum over expanding/day (past-looking)" in out
    assert "nxt: sum over future/1w (future-looking)" in out
    assert "1 future-looking target(s)" in out
    out_file = tmp_path / "o.parquet"
    code, _, err = run(capsys, "run", spec, "--input", data, "--output", out_file, "--past-only")
    assert code == 1 and not out_file.exists()
    assert err.startswith(
        "Error: past_only: 1 target(s) look past the current row: nxt (future/1w)"
    )
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "explain", spec)
    assert "(past-looking)" in out and "(future-looking)" in out


def test_a_reader_that_stops_ends_the_command_quietly(spec_file: Path) -> None:
    """`sqltargets validate spec | head`: when whoever reads stdout is gone, the command ends
    as one killed by SIGPIPE would (status 141), with nothing on stderr (it printed
    'Error: unexpected BrokenPipeError')."""
    import os

    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sqltargets", "validate", str(spec_file)],
            stdout=w, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(w)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_an_option_given_twice_is_refused(
    capsys: pytest.CaptureFixture[str], spec_file: Path, data: Path, tmp_path: Path
) -> None:
    """argparse keeps the last of a repeated option: `--output a --output b` wrote b alone."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    code, _, err = run(capsys, "run", spec_file, "--input", data, "--output", a, f"--output={b}")
    assert_error(code, err, "--output: given 2 times; give it once")
    code, _, err = run(capsys, "explain", spec_file, "--dialect", "spark", "--dialect", "duckdb")
    assert_error(code, err, "--dialect: given 2 times")
    assert not a.exists() and not b.exists()
