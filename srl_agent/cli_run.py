"""`srl run`: one agent episode in a sandboxed task, graded at the end."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def run(
    task: str = typer.Option(..., "--task", help="Instance id of the task."),
    tasks: str = typer.Option(None, "--tasks", help="Task source (default: the bundled examples pack)."),
    repos: Path = typer.Option(
        None, "--repos", help="Directory of local clones / bundles for owner/name repos."
    ),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Model dir or cached name."),
    policy: str = typer.Option(
        "auto",
        "--policy",
        help="auto (vLLM when installed, else transformers) | transformers | vllm | scripted",
    ),
    trajectory: Path = typer.Option(
        None, "--trajectory", help="Expert trajectory to replay (--policy scripted)."
    ),
    toolset: str = typer.Option(
        None, "--toolset", help="Tools shown to the policy (default: the trajectory's, else bash_only)."
    ),
    max_steps: int = typer.Option(30, "--max-steps"),
    temperature: float = typer.Option(0.0, "--temperature"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    out: Path = typer.Option(Path("runs/agent"), "--out", help="Where the trajectory and the report go."),
) -> None:
    """Run the agent end to end on one task: prompt, act in the sandbox, submit, grade."""
    from envs.sources import TaskSourceError, load_tasks
    from srl_agent.agent import AgentConfig, run_episode
    from srl_agent.policy import ScriptedPolicy, load_policy
    from trajectories.importers import load_trajectories

    try:
        spec = load_tasks(tasks, repos).get(task)
    except (KeyError, TaskSourceError) as exc:
        console.print(f"[red]error:[/] --task {task}: {exc}")
        raise typer.Exit(2) from None
    model_name = model
    if policy == "scripted":
        if trajectory is None:
            console.print("[red]error:[/] --policy scripted needs --trajectory FILE")
            raise typer.Exit(2)
        trajs = [t for t in load_trajectories([trajectory]) if t.instance_id == task] or load_trajectories(
            [trajectory]
        )
        if not trajs:
            console.print(f"[red]error:[/] --trajectory {trajectory}: no trajectory in the file")
            raise typer.Exit(2)
        pol = ScriptedPolicy.from_trajectory(trajs[0])
        toolset = toolset or trajs[0].metadata.get("toolset") or "bash_only"
        max_steps = max(max_steps, len(trajs[0].steps))
        model_name = f"scripted:{trajectory.name}"
    elif policy in ("auto", "transformers", "vllm"):
        pol = load_policy(model, backend=policy)
    else:
        console.print(f"[red]error:[/] --policy must be auto, transformers, vllm or scripted, not {policy!r}")
        raise typer.Exit(2)
    cfg = AgentConfig(
        toolset=toolset or "bash_only",
        max_steps=max_steps,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
    )
    with console.status(f"running {model_name} on {task}"):
        res = run_episode(spec, pol, cfg, out_dir=out / task, model_name=model_name)
    table = Table(title=f"srl run {task}")
    for col in ("policy", "exit", "steps", "format errors", "patch lines", "resolved", "seconds"):
        table.add_column(col)
    table.add_row(
        model_name,
        res.exit_status,
        str(res.steps),
        str(res.format_errors),
        str(len(res.patch.splitlines())),
        {True: "yes", False: "no", None: "-"}[res.resolved],
        f"{res.duration_s:.1f}",
    )
    console.print(table)
    if res.error:
        console.print(f"[red]error:[/] {res.error}")
    console.print(f"trajectory: {res.trajectory_path}")
    raise typer.Exit(0 if res.exit_status != "error" else 1)
