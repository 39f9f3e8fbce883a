"""The root `srl` command: mounts each package's sub-commands. Nothing heavy is imported here."""

from __future__ import annotations

import typer

from harness import cli_eval, cli_replay, cli_sandbox, cli_score, cli_task
from srl_agent import __version__, cli_agent, cli_run, demo
from trajectories import cli as traj_cli

app = typer.Typer(
    name="srl",
    help="srl-swe: train and evaluate software-engineering agents with Supervised Reinforcement Learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"srl-swe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """srl-swe command line."""


_ENV, _DATA, _LEARN = "Sandboxes and tasks", "Trajectories and data", "Evaluation, training and agents"
app.command(
    "doctor",
    help="Check Docker, the base image, disk and extras; start dockerd where it can.",
    rich_help_panel=_ENV,
)(cli_sandbox.doctor)
app.add_typer(
    cli_sandbox.image_app,
    name="image",
    help="Build and prune the project's Docker images.",
    rich_help_panel=_ENV,
)
app.add_typer(
    cli_sandbox.sandbox_app,
    name="sandbox",
    help="Run commands in sandboxes; remove leftovers.",
    rich_help_panel=_ENV,
)
app.add_typer(
    cli_task.task_app,
    name="task",
    help="List, show, build, validate and mine repo tasks.",
    rich_help_panel=_ENV,
)
traj_cli.traj_app.command(
    "replay", help="Replay an expert trajectory in a sandbox of its task; compare observations, diff, tests."
)(cli_replay.replay)
app.add_typer(
    traj_cli.traj_app, name="traj", help="Import, show and replay expert trajectories.", rich_help_panel=_DATA
)
app.add_typer(
    traj_cli.data_app,
    name="data",
    help="Build step-wise SRL data sets from trajectories.",
    rich_help_panel=_DATA,
)
app.command(
    "score", help="Score predicted actions against the expert's (mean step reward).", rich_help_panel=_DATA
)(cli_score.score)
app.command(
    "evaluate",
    help="Grade patches against their tasks' tests in sandboxes (SWE-bench format).",
    rich_help_panel=_LEARN,
)(cli_eval.evaluate)
cli_agent.register(app, panel=_LEARN)
app.command(
    "run",
    help="Run the agent end to end on one task in a sandbox and grade its patch.",
    rich_help_panel=_LEARN,
)(cli_run.run)
app.command(
    "demo", help="The end-to-end demo on the bundled defaults (the main job).", rich_help_panel=_LEARN
)(demo.demo)


def main() -> None:
    import gc

    try:
        app()
    finally:
        gc.freeze()  # skip the interpreter's final collections: 0.1-0.2 s on every command


if __name__ == "__main__":
    main()
