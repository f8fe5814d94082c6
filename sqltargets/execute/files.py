"""Files: the listing of a Parquet input, and atomic placement of finished output folders."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import SourceError

GLOB_CHARS = set("*?[")


def parquet_files(path: str) -> tuple[str, list[str], bool]:
    """(pattern for read_parquet, the files it matches in name order, several files?)."""
    if os.path.isdir(path):
        pattern = os.path.join(path, "**", "*.parquet")
        files = sorted(glob.glob(pattern, recursive=True))
        if not files:
            raise SourceError(f"input {path!r} is a folder with no .parquet files")
        return pattern, files, True
    if GLOB_CHARS & set(path):
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
        if not files:
            raise SourceError(f"input {path!r} matches no files")
        return path, files, True
    if not os.path.exists(path):
        raise SourceError(f"input {path!r} does not exist")
    return path, [path], False


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished folder ``tmp`` to ``dest``, replacing any folder there.

    Both live in the same parent folder, so each step is a rename: at every moment ``dest``
    is either the old complete folder or the new complete one.
    """
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        os.replace(dest, old / "previous")
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
