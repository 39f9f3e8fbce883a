"""`srl run`: one agent episode in a sandboxed task, graded at the end (`srl_agent.agent.run_task`).

Every field of `RunConfig` can come from ``--config FILE`` (YAML) and ``--set key=value``; the flags
below override both.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def run(
    task: str = typer.Option(None, "--task", help="Instance id of the task."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config file (fields of RunConfig)."),
    sets: list[str] = typer.Option(
        None, "--set", help="Override one field: key=value (e.g. time_limit=600). Repeatable."
    ),
    tasks: str = typer.Option(None, "--tasks", help="Task source (default: the bundled examples pack)."),
    repos: Path = typer.Option(
        None, "--repos", help="Directory of local clones / bundles for owner/name repos."
    ),
    model: str = typer.Option(None, "--model", help="Model dir or cached name."),
    policy: str = typer.Option(
        None,
        "--policy",
        help="auto (vLLM when installed, else transformers) | transformers | vllm | scripted",
    ),
    trajectory: Path = typer.Option(
        None, "--trajectory", help="Expert trajectory to replay (--policy scripted)."
    ),
    toolset: str = typer.Option(
        None, "--toolset", help="Tools shown to the policy (default: the trajectory's, else bash_only)."
    ),
    max_steps: int = typer.Option(None, "--max-steps"),
    temperature: float = typer.Option(None, "--temperature"),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens"),
    out: Path = typer.Option(None, "--out", help="Where the trajectory and the report go."),
) -> None:
    """Run the agent end to end on one task: prompt, act in the sandbox, submit, grade."""
    from srl_agent.agent import RunConfig, RunInputError, run_task
    from srl_agent.models import ModelNotFoundError
    from srl_agent.train.config import ConfigError, load_config, parse_overrides

    flags = dict(task=task, tasks=tasks, repos=repos, model=model, policy=policy, trajectory=trajectory,
                 toolset=toolset, max_steps=max_steps, temperature=temperature, max_new_tokens=max_new_tokens,
                 out=out)  # fmt: skip
    try:
        overrides = parse_overrides(sets or [])
        overrides.update({k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None})
        cfg = load_config(RunConfig, config, overrides)
        name = f"{cfg.policy} policy" if cfg.policy != "scripted" else "scripted policy"
        with console.status(f"running the {name} on {cfg.task}"):
            res, model_name = run_task(cfg)
    except (ConfigError, RunInputError, ModelNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"srl run {cfg.task}")
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
