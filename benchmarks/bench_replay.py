"""Per-step harness overhead of replay: host wall time of each step minus the command's own run time.

Replays the SWE-agent function-calling demonstration of marshmallow-code__marshmallow-1867 (11 steps:
bash, SWE-agent file tools, submit; from ../shared/fixtures) `--reps` times, each in a fresh sandbox of
its SWE-bench row moved onto marshmallow 3.13.0 from the package index, with
`ToolRuntime(timing=True)`: the sandbox stamps `$EPOCHREALTIME` around every command, so

    overhead(step) = wall time of `ToolRuntime.execute` on the host - in-sandbox run time of the command

(quoting, the round trip through the persistent shell session, reading the result back). The tool
script's own Python start-up counts as the command's run time; it is reported separately. Baselines
measured in the same run: an empty command through the session (`sb.exec("true")`, the floor of any
step) and a fresh `docker exec` per call (`sb.run(["true"])`, what the session avoids).

    .venv/bin/python benchmarks/bench_replay.py [--reps 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

TARGET_MS = 20.0


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return {
        "mean": statistics.fmean(xs) * 1e3,
        "median": statistics.median(xs) * 1e3,
        "p95": p95 * 1e3,
        "max": xs[-1] * 1e3,
        "n": len(xs),
    }


def _fmt(d: dict[str, float]) -> str:
    return f"mean {d['mean']:6.1f}  median {d['median']:6.1f}  p95 {d['p95']:6.1f}  max {d['max']:6.1f} ms  (n={d['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--baseline-calls", type=int, default=50)
    ap.add_argument(
        "--markdown", action="store_true", help="also print a markdown section for docs/benchmarks.md"
    )
    args = ap.parse_args()

    import json
    from pathlib import Path

    from envs.recipes import row_over_release
    from envs.spec import EnvSpec, TaskSpec
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.replay import ReplayConfig, ReplayReport, load_trajectory, replay_steps
    from harness.sandbox import Sandbox, SandboxConfig
    from harness.tools import SCRIPT_TOOLS, ToolRuntime

    # Public data from ../shared/fixtures (see tests/conftest.py): the demonstration and its SWE-bench row,
    # the row moved onto marshmallow 3.13.0 from the package index (the recorded commit is 27 commits later).
    shared = Path(
        os.environ.get("SRL_SWE_SHARED_FIXTURES")
        or Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    )
    traj = load_trajectory(shared / "swe-agent" / "marshmallow-code__marshmallow-1867.function_calling.traj")
    rows = json.loads((shared / "repos" / "marshmallow-code__marshmallow.tasks.json").read_text())
    row = row_over_release(
        next(r for r in rows if r["instance_id"] == traj.instance_id), "marshmallow", "3.13.0"
    )
    keep = (
        "instance_id",
        "repo",
        "repo_source",
        "base_commit",
        "patch",
        "test_patch",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
    )
    spec = TaskSpec(**{k: row[k] for k in keep}, env=EnvSpec(pip_packages=["pytest", "simplejson", "pytz"]))
    client = get_client()
    image = ensure_instance_image(spec, client=client)
    cfg = SandboxConfig.for_task(spec, image, kind="bench", timeout=120)

    overhead: dict[str, list[float]] = {"all": [], "bash": [], "script": []}
    command: list[float] = []
    replay_overhead_per_step: list[float] = []
    install: list[float] = []
    session_floor: list[float] = []
    docker_exec: list[float] = []
    py_start: list[float] = []
    matching: list[int] = []
    for rep in range(args.reps):
        with Sandbox(cfg, client=client) as sb:
            rt = ToolRuntime(sb, timing=True)
            t = time.perf_counter()
            rt.install()
            install.append(time.perf_counter() - t)
            report = ReplayReport(instance_id=traj.instance_id)
            t = time.perf_counter()
            replay_steps(traj, rt, ReplayConfig(timing=True), report)
            wall = time.perf_counter() - t
            own = sum(s.command_time or 0.0 for s in report.steps)
            replay_overhead_per_step.append((wall - own) / len(report.steps))
            for s in report.steps:
                if s.command_time is None:
                    raise SystemExit(f"step {s.index}: no in-sandbox time (is bash >= 5 in the image?)")
                o = s.duration - s.command_time
                overhead["all"].append(o)
                overhead["script" if s.tool in SCRIPT_TOOLS else "bash"].append(o)
                command.append(s.command_time)
            # fidelity is replay's test matter, not this benchmark's: the overhead is the same either way
            matching.append(report.n_matching)
            if rep == 0:  # baselines, same sandbox kind, same run
                for _ in range(args.baseline_calls):
                    t = time.perf_counter()
                    sb.exec("true")
                    session_floor.append(time.perf_counter() - t)
                for _ in range(max(5, args.baseline_calls // 5)):
                    t = time.perf_counter()
                    sb.run(["true"])
                    docker_exec.append(time.perf_counter() - t)
                res = sb.exec(
                    f"for i in $(seq 20); do s=$EPOCHREALTIME; {rt.python} -I -S -c pass; e=$EPOCHREALTIME; "
                    'echo "$s $e"; done'
                )
                py_start = [
                    float(b) - float(a) for a, b in (line.split() for line in res.output.split("\n") if line)
                ]

    all_o = _ms(overhead["all"])
    ok = all_o["mean"] <= TARGET_MS
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
    lines = [
        f"bench_replay: {traj.instance_id}, {len(traj.steps)} steps x {args.reps} replays; {machine}",
        f"  harness overhead per step (all)    {_fmt(all_o)}   target <= {TARGET_MS:.0f} ms: {'OK' if ok else 'MISSED'}",
        f"  harness overhead per step (bash)   {_fmt(_ms(overhead['bash']))}",
        f"  harness overhead per step (tools)  {_fmt(_ms(overhead['script']))}",
        f"  replay wall - sum(command times), per step: {_fmt(_ms(replay_overhead_per_step))}",
        f"  command own run time               {_fmt(_ms(command))}",
        f"  tool install (once per sandbox)    {_fmt(_ms(install))}",
        f"  baseline: empty command via session (sb.exec('true'))  {_fmt(_ms(session_floor))}",
        f"  baseline: fresh docker exec (sb.run(['true']))          {_fmt(_ms(docker_exec))}",
        f"  tool script interpreter start (python3 -I -S -c pass)   {_fmt(_ms(py_start))}",
        f"  ratio: mean step overhead / fresh docker exec = {all_o['mean'] / _ms(docker_exec)['mean']:.2f}",
        f"  steps matching the recording per replay: {matching} of {len(traj.steps)}",
    ]
    print("\n".join(lines))
    if args.markdown:
        print("\n## bench_replay\n\n```\n" + "\n".join(lines) + "\n```")


if __name__ == "__main__":
    main()
