"""The catalogue of bad inputs, each through the API and through the CLI: a
``SqlTargetsError`` from the API; one ``Error:`` line, exit 1, no traceback and no output
file from ``sqltargets run``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main

HEAD = "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\n"
OK_TARGET = "{name: s, agg: sum, window: {kind: expanding, period: day}}"


def spec_text(*targets: str, extra: str = "") -> str:
    return HEAD + extra + "targets: [" + ", ".join(targets or (OK_TARGET,)) + "]\n"


# (case, spec text, what the input looks like, where the output goes, words the error names)
CASES = [
    (
        "unknown key",
        spec_text("{name: s, agg: sum, windw: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].windw", "did you mean 'window'"],
    ),
    (
        "misspelled agg",
        spec_text("{name: s, agg: avg, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].agg", "'avg'", "sum, count, mean"],
    ),
    (
        "window kind",
        spec_text("{name: s, agg: sum, window: {kind: sliding, length: 7d}}"),
        "good",
        "ok",
        ["targets[0].window.kind", "'sliding'", "expanding, period"],
    ),
    (
        "period",
        spec_text("{name: s, agg: sum, window: {kind: period, period: fortnight}}"),
        "good",
        "ok",
        ["targets[0].window.period", "'fortnight'", "day, week"],
    ),
    (
        "duration",
        spec_text("{name: s, agg: sum, window: {kind: rolling, length: 7 parsecs}}"),
        "good",
        "ok",
        ["targets[0].window.length", "'7 parsecs'", "'7d'"],
    ),
    (
        "mcc code",
        spec_text("{name: s, agg: sum, mcc: [54111], window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].mcc[0]", "54111", "0-9999"],
    ),
    (
        "mcc group",
        spec_text("{name: s, agg: sum, mcc: [grocerys], window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].mcc[0]", "'grocerys'", "did you mean 'grocery'"],
    ),
    (
        "duplicate name",
        spec_text(OK_TARGET, "{name: s, agg: max, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[1].name", "'s'", "repeats"],
    ),
    (
        "duplicate name, case",
        spec_text(OK_TARGET, "{name: S, agg: max, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[1].name", "'S'", "ignoring case"],
    ),
    (
        "k missing",
        spec_text("{name: s, agg: top_k, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "missing"],
    ),
    (
        "k zero",
        spec_text("{name: s, agg: top_k, k: 0, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "0", "1 to 1000"],
    ),
    (
        "k huge",
        spec_text("{name: s, agg: top_k, k: 100000, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "100000", "1 to 1000"],
    ),
    (
        "column missing",
        spec_text("{name: s, agg: sum, value: amout, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].value", "'amout'", "not in the input"],
    ),
    (
        "column type",
        spec_text("{name: s, agg: sum, value: note, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].value", "'note'", "VARCHAR", "numeric"],
    ),
    (
        "integer time without unit",
        HEAD.replace("time: {unit: day}\n", "") + "targets: [" + OK_TARGET + "]\n",
        "good",
        "ok",
        ["time.unit", "'t' is an integer"],
    ),
    (
        "unknown time zone",
        spec_text(extra="timezone: Europe/Pariss\n"),
        "good",
        "ok",
        ["timezone", "'Europe/Pariss'", "did you mean 'Europe/Paris'"],
    ),
    (
        "malformed YAML",
        HEAD + "targets: [{name: s, agg: sum\n",
        "good",
        "ok",
        ["malformed YAML", "line"],
    ),
    ("missing input", spec_text(), "missing", "ok", ["does not exist"]),
    ("empty input folder", spec_text(), "empty", "ok", ["no .parquet files"]),
    ("null time", spec_text(), "null_time", "ok", ["columns.time", "1 of 3 rows", "null time"]),
    ("unwritable output", spec_text(), "good", "missing_folder", ["output", "does not exist"]),
]


def make_input(kind: str, tmp: Path) -> Path:
    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 3.0],
                  "m": [5411, 1, 2], "note": ["x", "y", "z"]})  # fmt: skip
    if kind == "missing":
        return tmp / "nope.parquet"
    if kind == "empty":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if kind == "null_time":
        t = t.set_column(1, "t", pa.array([0, None, 2], pa.int64()))
    pq.write_table(t, tmp / "in.parquet")
    return tmp / "in.parquet"


@pytest.mark.parametrize(
    ("case", "text", "inp", "out", "needles"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_api_and_cli(
    case: str,
    text: str,
    inp: str,
    out: str,
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    source = make_input(inp, tmp_path)
    target = (
        (tmp_path / "no" / "t.parquet") if out == "missing_folder" else (tmp_path / "t.parquet")
    )

    with pytest.raises(sqltargets.SqlTargetsError) as e:
        sqltargets.write(spec, source, target)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))
    assert not target.exists()

    code = main(["run", str(spec), "--input", str(source), "--output", str(target)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert "Traceback" not in captured.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not target.exists()
    if target.parent.exists():
        assert list(target.parent.glob(".t.parquet*")) == []


def test_catalogue_size() -> None:
    assert len(CASES) >= 20
