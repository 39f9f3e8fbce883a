"""Generated expert runs per minute (`srl traj generate`), at -w 1 and -w 2, against the bare grading.

Each generated run starts a sandbox of the task, gathers the facts, executes the expert's plan (~8-14
steps), grades the submitted patch in a fresh sandbox and replays the trajectory in a third one to check
the diff. The baseline, measured in the same run on the same tasks and warm images: grading the gold
patch alone (`run_instance` + `grade`), the one sandbox run every generated run must include.

    .venv/bin/python benchmarks/bench_generate_runs.py [--tasks SOURCE] [--limit N] [--markdown]

(not to be confused with bench_generate.py, which measures policy text generation.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=None, help="task source (default: the bundled examples pack)")
    ap.add_argument("--limit", type=int, default=6, help="tasks used (the first N with a gold patch)")
    ap.add_argument("--markdown", action="store_true", help="also print a section for docs/benchmarks.md")
    args = ap.parse_args()

    from envs.sources import load_tasks
    from harness.docker_env import get_client
    from harness.evaluate import run_instance
    from harness.expert import generate_runs, plan_jobs
    from harness.grading import grade
    from harness.images import ensure_instance_image

    client = get_client()
    specs = [t for t in load_tasks(args.tasks).tasks if t.patch.strip()][: args.limit]
    print(f"{len(specs)} tasks: warming images")
    for spec in specs:
        ensure_instance_image(spec, client=client)

    t0 = time.perf_counter()
    resolved = sum(grade(spec, run_instance(spec, spec.patch, client=client)).resolved for spec in specs)
    grade_s = (time.perf_counter() - t0) / len(specs)
    print(f"baseline: gold grading {grade_s:.2f} s per task ({resolved}/{len(specs)} resolved)")

    rows = []
    with tempfile.TemporaryDirectory(prefix="srl-bench-gen-") as tmp:
        for workers, style in ((1, "tools"), (2, "tools"), (2, "bash")):
            jobs = plan_jobs(specs, style, 0, 1)
            out = Path(tmp) / f"w{workers}-{style}"
            t0 = time.perf_counter()
            summary = generate_runs(jobs, out, workers=workers, client=client)
            wall = time.perf_counter() - t0
            per_min = len(summary.written) / wall * 60
            steps = [len(json.loads(Path(f).read_text())["steps"]) for f in summary.written]
            rows.append((workers, style, len(summary.written), len(summary.failed), wall, per_min, steps))
            print(
                f"-w {workers} {style}: {len(summary.written)} runs ({len(summary.failed)} failed) in {wall:.1f} s "
                f"= {per_min:.1f} runs/min, {wall / max(1, len(jobs)):.2f} s per run "
                f"= {wall / max(1, len(jobs)) / grade_s:.2f}x the gold grading; mean steps "
                f"{sum(steps) / max(1, len(steps)):.1f}"
            )
            for rid, why in summary.failed:
                print(f"  failed {rid}: {why}")
    if args.markdown:
        cpu = platform.processor() or platform.machine()
        print(f"\n## Generated expert runs (`srl traj generate`)\n\nMachine: {os.cpu_count()} vCPU ({cpu}), "
              f"{len(specs)} tasks of `{args.tasks or 'examples'}`, warm images, one run per task.\n")  # fmt: skip
        print(
            "| setting | runs | wall | runs / min | s / run | vs gold grading |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        )
        print(f"| baseline: gold patch graded (`run_instance`), sequential | {len(specs)} | "
              f"{grade_s * len(specs):.1f} s | {60 / grade_s:.1f} | {grade_s:.2f} | 1.00x |")  # fmt: skip
        for workers, style, n, _failed, wall, per_min, _steps in rows:
            print(f"| `-w {workers} --style {style}` (expert + grade + replay) | {n} | {wall:.1f} s | "
                  f"{per_min:.1f} | {wall / max(1, n):.2f} | {wall / max(1, n) / grade_s:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
