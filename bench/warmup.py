"""Keep JIT compilation (numba ``@njit(cache=True)``) out of the benchmark figures.

Both benchmarks use this module; it works whether or not sqltargets uses numba:

- :func:`warm_up` runs, in a throwaway process, ``sqltargets.generate`` of the given specs
  on a tiny input (every engine, straight and through a prepared store; optionally the torch
  datasets too), so that numba's on-disk cache holds every kernel before anything is timed;
- :func:`compile_times` measures what a user pays once: a fresh process with
  ``NUMBA_CACHE_DIR`` pointing at an empty folder (cold cache) imports sqltargets and runs the
  first ``generate`` of each spec on the tiny input; a second fresh process does the same
  with that folder (warm cache). :func:`compile_line` turns the result into one line.

    python bench/warmup.py --compile-times bench/specs/mix.yaml   # the line, by itself
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
#: the tiny input: a few demo users, the same columns as the benchmark's data
TINY = {"users": 3, "seed": 7, "files": 2, "tx_per_user": 256, "shuffle": True}


def tiny_input(folder: str | Path) -> Path:
    """A tiny Parquet input in ``folder`` (written once)."""
    folder = Path(folder)
    if not any(folder.glob("*.parquet")):
        from sqltargets.demo import write_demo

        p = TINY
        write_demo(folder, p["users"], seed=p["seed"], files=p["files"],
                   tx_per_user=p["tx_per_user"], shuffle=p["shuffle"])  # fmt: skip
    return folder


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(HERE), *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"FAILED: {HERE.name} {' '.join(args[:2])} ... (see above)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm_up(specs: list[str], tiny: str | Path, torch: bool = False) -> dict[str, Any]:
    """Fill numba's on-disk cache (if sqltargets uses numba) for ``specs``, in a throwaway
    process; returns its seconds and whether numba was loaded."""
    args = ["--warm", *map(str, specs), "--data", str(tiny)]
    return _child(args + (["--torch"] if torch else []))


def compile_times(specs: list[str], tiny: str | Path) -> dict[str, Any]:
    """First-call seconds in a fresh process with a cold, then a warm numba cache."""
    if importlib.util.find_spec("numba") is None:
        return {"numba": None, "reason": "numba is not installed"}
    args = ["--first-call", *map(str, specs), "--data", str(tiny)]
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = _child(args, env)
        files = sum(1 for p in Path(cache).rglob("*") if p.is_file())
        warm = _child(args, env)
    if not cold["numba_loaded"]:
        return {"numba": cold["numba_version"], "reason": "sqltargets does not import numba"}
    return {
        "numba": cold["numba_version"],
        "specs": [Path(s).name for s in specs],
        "cold_s": cold["total_s"],
        "warm_s": warm["total_s"],
        "cold": cold,
        "warm": warm,
        "cache_files": files,
    }


def compile_line(res: dict[str, Any]) -> str:
    """One line for a report."""
    if res.get("cold_s") is None:
        return f"numba compile time: numba not in use ({res['reason']})"
    return (
        f"numba compile time (fresh process: import sqltargets + first `generate` of "
        f"{', '.join(res['specs'])} on a {TINY['users']}-user input): cold cache "
        f"{res['cold_s']:.2f} s, warm cache {res['warm_s']:.2f} s; the same calls again in "
        f"that process {res['warm']['again_s']:.2f} s (numba {res['numba']}, "
        f"{res['cache_files']} cache files); every figure here is measured with a warm cache"
    )


# ------------------------------------------------------------------------- the children


def _first_call(specs: list[str], data: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import sqltargets

    out: dict[str, Any] = {"import_s": time.perf_counter() - t0, "first_call_s": {}}
    for spec in specs:
        t = time.perf_counter()
        sqltargets.generate(spec, data)
        out["first_call_s"][Path(spec).name] = time.perf_counter() - t
    out["total_s"] = out["import_s"] + sum(out["first_call_s"].values())
    t = time.perf_counter()
    for spec in specs:  # what the same calls cost once everything is compiled and loaded
        sqltargets.generate(spec, data)
    out["again_s"] = time.perf_counter() - t
    return out


def _warm(specs: list[str], data: str, torch: bool) -> dict[str, Any]:
    import sqltargets

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warm-") as tmp:
        for i, spec in enumerate(specs):
            for engine in ("native", "sql"):
                sqltargets.generate(spec, data, engine=engine).num_rows  # noqa: B018
            store = sqltargets.prepare(data, Path(tmp) / f"store-{i}", specs=spec)
            sqltargets.generate(spec, str(store)).num_rows  # noqa: B018
            if torch:
                from sqltargets.torch import StreamingTargetDataset, TargetDataset

                for _ in StreamingTargetDataset(spec, data, users_per_chunk=2, shuffle=True):
                    pass
                ds = TargetDataset(spec, data, users_per_chunk=2)
                for j in range(len(ds)):
                    ds[j]
    return {"seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--data", help="the tiny input (default: written into a temporary folder)")
    ap.add_argument("--warm", nargs="+", metavar="SPEC", help=argparse.SUPPRESS)
    ap.add_argument("--first-call", nargs="+", metavar="SPEC", help=argparse.SUPPRESS)
    ap.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--compile-times", nargs="+", metavar="SPEC", help="print the line")
    args = ap.parse_args(argv)
    if args.warm or args.first_call:
        res = _warm(args.warm, args.data, args.torch) if args.warm else {}
        if args.first_call:
            res = _first_call(args.first_call, args.data)
        numba = sys.modules.get("numba")
        res.update(
            numba_loaded=numba is not None,
            numba_version=getattr(numba, "__version__", None),
        )
        print(json.dumps(res))
        return 0
    specs = args.compile_times or args.specs
    with tempfile.TemporaryDirectory(prefix="tiny-") as tmp:
        data = args.data or str(tiny_input(tmp))
        print(compile_line(compile_times(specs, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
