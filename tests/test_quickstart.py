"""The README's quick start stays true: `make demo` runs from a fresh checkout (on fewer
users, into a temporary folder), with the project's own virtual environment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(
    shutil.which("make") is None or not (ROOT / ".venv" / ".installed-dev").exists(),
    reason="needs make and the project's .venv (made by `make test`)",
)
def test_make_demo(tmp_path: Path) -> None:
    demo = tmp_path / "fresh" / ".demo"  # its parent does not exist yet either
    done = subprocess.run(
        ["make", "-C", str(ROOT), "demo", f"DEMO={demo}", "DEMO_USERS=40"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (demo / "targets.parquet").is_file()
    assert (demo / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert "sqltargets native program" in done.stdout  # explain printed the Program
    assert "SELECT" in done.stdout  # and the portable SQL
