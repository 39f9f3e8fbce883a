"""Benchmark: source distribution -> git repository (`envs.pypi.sdist_repo`), cold and warm, against
plain ``pip download`` + tar extraction measured in the same run.

    .venv/bin/python benchmarks/bench_pypi.py [--packages cachetools==5.5.2 toolz==1.0.0 ...] [--reps 3]

- baseline: ``pip download --no-binary :all: --no-deps NAME==V`` into an empty folder (pip's defaults:
  isolated metadata build) and ``tarfile.extractall`` of the archive: what a user would do by hand.
- cold: `sdist_repo` with an empty srl-swe cache (pip download, in-memory unpack, one deterministic
  commit via ``git fast-import``). pip's own HTTP cache is warm in both (the first repetition of the
  baseline fills it), so neither measures the network.
- warm: `sdist_repo` again (the cached index entry: no pip, no git).
- recipe warm: `envs.recipes.materialize` of a release recipe whose result is cached (a task file load).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

from envs import pypi  # noqa: E402
from envs.recipes import materialize, release_recipe  # noqa: E402


def baseline(name: str, version: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", tmp]
        subprocess.run([*cmd, f"{name}=={version}"], check=True, capture_output=True)
        (archive,) = [p for p in Path(tmp).iterdir() if p.is_file()]
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(Path(tmp) / "x")
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(Path(tmp) / "x", filter="data")
        return time.perf_counter() - t0


def cold(name: str, version: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _, commit = pypi.sdist_repo(name, version, cache=Path(tmp))
        return time.perf_counter() - t0, commit


def warm(name: str, version: str, cache: Path, n: int = 200) -> float:
    pypi.sdist_repo(name, version, cache=cache)
    t0 = time.perf_counter()
    for _ in range(n):
        pypi.sdist_repo(name, version, cache=cache)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--packages", nargs="+", default=["cachetools==5.5.2", "toolz==1.0.0", "marshmallow==3.13.0"]
    )
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as warm_cache:
        for spec in args.packages:
            name, version = spec.split("==")
            baseline(name, version)  # fills pip's HTTP cache for both sides
            base = statistics.median(baseline(name, version) for _ in range(args.reps))
            colds = [cold(name, version) for _ in range(args.reps)]
            assert len({c for _, c in colds}) == 1, "the commit differs between cold builds"
            c = statistics.median(t for t, _ in colds)
            w = warm(name, version, Path(warm_cache))
            rows.append((spec, base, c, w, colds[0][1]))
            print(
                f"{spec}: baseline pip download + untar {base:.2f} s | cold {c:.2f} s ({c / base:.2f}x) | "
                f"warm {w * 1e3:.3f} ms ({w / base:.5f}x) | commit {colds[0][1][:12]}",
                flush=True,
            )
        # a task file's recipe, warm (what loading a pack costs per task)
        recipe = release_recipe(
            "cachetools", "5.5.1", "5.5.2", ["src/cachetools/__init__.py", "src/cachetools/_decorators.py"],
            ["tests/test_cached.py"],
        )  # fmt: skip
        cache = Path(warm_cache)
        t0 = time.perf_counter()
        materialize(recipe, cache)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(200):
            materialize(recipe, cache)
        per = (time.perf_counter() - t0) / 200
        print(
            f"release recipe cachetools 5.5.1 -> 5.5.2: first {first:.2f} s (two releases + diffs), warm {per * 1e3:.3f} ms"
        )
    print("\n| package | baseline: pip download + untar | cold sdist_repo | ratio | warm | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spec, base, c, w, _ in rows:
        print(f"| {spec} | {base:.2f} s | {c:.2f} s | {c / base:.2f}x | {w * 1e3:.3f} ms | {w / base:.5f}x |")


if __name__ == "__main__":
    main()
