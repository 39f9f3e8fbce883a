"""Cost of the agent loop per step: an episode through `run_episode` versus the same tool calls made directly.

The scripted expert (`harness.expert`) writes a run of the bundled task with the shortest gold patch; that run
is then played `--reps` times in two ways, each in a fresh sandbox of the task's instance image:

- **loop**: `run_episode(spec, ScriptedPolicy.from_trajectory(run), grade=False)`: the prompt is built from
  the history at every step, the answer parsed, the call executed, the trajectory written;
- **baseline** (same run): open the same sandbox and `ToolRuntime.execute` the recorded calls one after the
  other, nothing else.

    loop overhead per step = (median loop wall - median baseline wall) / steps

    .venv/bin/python benchmarks/bench_agent.py [--reps 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="also print a section for docs/benchmarks.md")
    args = ap.parse_args()

    from envs.sources import load_tasks
    from harness.docker_env import get_client
    from harness.expert import generate_run
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox, SandboxConfig
    from harness.tools.runtime import ToolRuntime
    from srl_agent.agent import AgentConfig, run_episode
    from srl_agent.policy import ScriptedPolicy

    client = get_client()
    spec = min((t for t in load_tasks(None).tasks if t.patch.strip()), key=lambda t: len(t.patch))
    image = ensure_instance_image(spec, client=client)
    run = generate_run(spec, "tools", 0, client=client, grade=False, replay=False).trajectory
    toolset = run.metadata.get("toolset", "editor")
    n = len(run.steps)
    loop: list[float] = []
    direct: list[float] = []
    statuses: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            t = time.perf_counter()
            with Sandbox(SandboxConfig.for_task(spec, image, kind="bench", timeout=120), client=client) as sb:
                rt = ToolRuntime(sb)
                for step in run.steps:
                    rt.execute(step.action)
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            res = run_episode(
                spec,
                ScriptedPolicy.from_trajectory(run),
                AgentConfig(toolset=toolset, max_steps=n, grade=False),
                out_dir=Path(tmp) / str(rep),
                client=client,
                image=image,
            )
            loop.append(time.perf_counter() - t)
            statuses.add(res.exit_status)
    med_loop, med_direct = statistics.median(loop), statistics.median(direct)
    per_step = (med_loop - med_direct) / n * 1e3
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"bench_agent: {spec.instance_id}, scripted expert run of {n} steps x {args.reps} episodes; "
        f"exit statuses {sorted(statuses)}",
        f"  machine: {machine()}; load average {load}",
        f"  loop (run_episode, grade=False) median {med_loop * 1e3:7.0f} ms  "
        f"(min {min(loop) * 1e3:.0f}, max {max(loop) * 1e3:.0f})",
        f"  baseline (sandbox + ToolRuntime.execute of the same calls) median {med_direct * 1e3:7.0f} ms  "
        f"(min {min(direct) * 1e3:.0f}, max {max(direct) * 1e3:.0f})",
        f"  loop overhead per step {per_step:6.1f} ms; ratio loop / baseline {med_loop / med_direct:.2f}",
    ]
    print("\n".join(lines))
    if args.markdown:
        print("\n## bench_agent\n\n```\n" + "\n".join(lines) + "\n```")


if __name__ == "__main__":
    main()
