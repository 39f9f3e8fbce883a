"""Synthesized tasks per minute on this machine, the kept / tried ratio, and what one try costs against
one plain run of the release's test suite in the same sandbox.

Runs `harness.synth_runner.synthesize` on a real release (default toolz==1.0.0) into a fresh temporary
pack. The baseline is measured in the same run and the same sandbox: the median of `--baseline-runs`
plain runs of the whole suite on the original tree (what synthesis must do at least once per try). So

    try / suite = mean wall time of one mutation try (write the file, run the tests that name the function,
                  then the whole suite when they catch it, restore the file) / one plain suite run

A try can cost less than one suite run (the tests that name the function catch nothing: rejected after
running those files only) or a little more (both runs). The image build happens once per release and is
reported apart (it is cached by content, so a second run of the benchmark skips it).

    .venv/bin/python benchmarks/bench_synth.py [--pypi toolz==1.0.0] [-n 4] [--max-tries 40] [--markdown]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pypi", default="toolz==1.0.0")
    ap.add_argument("-n", type=int, default=4, help="stop after N kept tasks")
    ap.add_argument("--max-tries", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--pip", action="append", default=None)
    ap.add_argument("--markdown", action="store_true", help="print a section for docs/benchmarks.md")
    args = ap.parse_args()

    from harness.docker_env import get_client
    from harness.synth_runner import synthesize

    client = get_client()
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        t0 = time.monotonic()
        rep = synthesize(
            args.pypi,
            Path(tmp) / "pack",
            n=args.n,
            seed=args.seed,
            max_tries=args.max_tries,
            pip=args.pip,
            client=client,
            baseline_runs=args.baseline_runs,
        )
        wall = time.monotonic() - t0
    tries = [a.seconds for a in rep.attempts if a.seconds > 0]
    kept_tries = [a.seconds for a in rep.attempts if a.kept]
    rejected = Counter(
        re.sub(r"^\d+ ", "", a.reason.split(" (")[0]) if not a.kept else "kept" for a in rep.attempts
    )
    work = wall - rep.build_seconds  # sdist + sites + baseline runs + tries (+ writing kept tasks)
    per_min = rep.kept / (work / 60) if work > 0 else 0.0
    mean_try = statistics.fmean(tries) if tries else 0.0
    ratio = mean_try / rep.baseline_seconds if rep.baseline_seconds else float("nan")
    all_runs = [r for a in rep.attempts for r in a.test_runs]
    runs_per_try = len(all_runs) / max(1, len(rep.attempts))
    mean_run = statistics.fmean(all_runs) if all_runs else 0.0
    lines = [
        f"release            {args.pypi} ({rep.sites} mutation sites, {rep.baseline_passing} passing tests, "
        f"{len(rep.flaky)} flaky)",
        f"image build        {rep.build_seconds:.1f} s (once per release, cached)",
        f"suite (baseline)   {rep.baseline_seconds:.2f} s median of {args.baseline_runs} plain runs",
        f"tries              {rep.tried}: {dict(rejected)}",
        f"one try            mean {mean_try:.2f} s, kept ones {statistics.fmean(kept_tries) if kept_tries else 0:.2f} s"
        f"  -> try / suite = {ratio:.2f}",
        f"pytest runs/try    {runs_per_try:.2f}, mean {mean_run:.2f} s each (mutated trees)",
        f"kept / tried       {rep.kept}/{rep.tried} = {rep.kept / max(1, rep.tried):.2f}",
        f"valid tasks/min    {per_min:.2f} (after the image build; {rep.kept / (wall / 60):.2f} including it)",
        f"machine            {machine()}",
    ]
    print("\n".join(lines))
    if args.markdown:
        print(
            "\n| release | sites | passing tests | suite run | tries | kept | kept/tried | mean try | try/suite |"
            " tasks/min |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {args.pypi} | {rep.sites} | {rep.baseline_passing} | {rep.baseline_seconds:.2f} s | {rep.tried} "
            f"| {rep.kept} | {rep.kept / max(1, rep.tried):.2f} | {mean_try:.2f} s | {ratio:.2f} | {per_min:.2f} |"
        )


if __name__ == "__main__":
    main()
