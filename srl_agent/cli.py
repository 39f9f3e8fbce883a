"""The root `srl` command: mounts each package's sub-commands.

Only the invoked command's module is imported (`srl score` does not pay for the Docker SDK, `srl
evaluate` not for the trajectory tools); `srl`, `srl --help` and an unknown command load them all.
`app` (the whole command tree) is built on first access, for tests and embedding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from srl_agent import __version__

_ENV, _DATA, _LEARN = "Sandboxes and tasks", "Trajectories and data", "Evaluation, training and agents"


def _doctor(app: typer.Typer) -> None:
    from harness import cli_sandbox

    app.command(
        "doctor",
        help="Check Docker, the base image, disk and extras; start dockerd where it can.",
        rich_help_panel=_ENV,
    )(cli_sandbox.doctor)


def _image(app: typer.Typer) -> None:
    from harness import cli_sandbox

    app.add_typer(
        cli_sandbox.image_app,
        name="image",
        help="Build and prune the project's Docker images.",
        rich_help_panel=_ENV,
    )


def _sandbox(app: typer.Typer) -> None:
    from harness import cli_sandbox

    app.add_typer(
        cli_sandbox.sandbox_app,
        name="sandbox",
        help="Run commands in sandboxes; remove leftovers.",
        rich_help_panel=_ENV,
    )


def _task(app: typer.Typer) -> None:
    from harness import cli_task

    app.add_typer(
        cli_task.task_app,
        name="task",
        help="List, show, build, validate and mine repo tasks.",
        rich_help_panel=_ENV,
    )


def _traj(app: typer.Typer) -> None:
    from harness import cli_replay
    from trajectories import cli as traj_cli

    if "replay" not in {c.name for c in traj_cli.traj_app.registered_commands}:
        traj_cli.traj_app.command(
            "replay",
            help="Replay an expert trajectory in a sandbox of its task; compare observations, diff, tests.",
        )(cli_replay.replay)
    app.add_typer(
        traj_cli.traj_app,
        name="traj",
        help="Import, show and replay expert trajectories.",
        rich_help_panel=_DATA,
    )


def _data(app: typer.Typer) -> None:
    from trajectories import cli as traj_cli

    app.add_typer(
        traj_cli.data_app,
        name="data",
        help="Build step-wise SRL data sets from trajectories.",
        rich_help_panel=_DATA,
    )


def _score(app: typer.Typer) -> None:
    from harness import cli_score

    app.command(
        "score",
        help="Score predicted actions against the expert's (mean step reward).",
        rich_help_panel=_DATA,
    )(cli_score.score)


def _evaluate(app: typer.Typer) -> None:
    from harness import cli_eval

    app.command(
        "evaluate",
        help="Grade patches against their tasks' tests in sandboxes (SWE-bench format).",
        rich_help_panel=_LEARN,
    )(cli_eval.evaluate)


def _learn(app: typer.Typer) -> None:
    from srl_agent import cli_agent

    cli_agent.register(app, panel=_LEARN)


def _run(app: typer.Typer) -> None:
    from srl_agent import cli_run

    app.command(
        "run",
        help="Run the agent end to end on one task in a sandbox and grade its patch.",
        rich_help_panel=_LEARN,
    )(cli_run.run)


def _demo(app: typer.Typer) -> None:
    from srl_agent import demo

    app.command(
        "demo", help="The end-to-end demo on the bundled defaults (the main job).", rich_help_panel=_LEARN
    )(demo.demo)


# command name -> what mounts it (in the order `srl --help` lists them)
COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "doctor": _doctor,
    "image": _image,
    "sandbox": _sandbox,
    "task": _task,
    "traj": _traj,
    "data": _data,
    "score": _score,
    "evaluate": _evaluate,
    "train": _learn,
    "eval-steps": _learn,
    "run": _run,
    "demo": _demo,
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"srl-swe {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """srl-swe command line."""


def build_app(only: str | None = None) -> typer.Typer:
    """The `srl` command tree: every command, or only the one named `only` (what `main` runs; "" for
    none, e.g. for `srl --version`)."""
    root = typer.Typer(
        name="srl",
        help="srl-swe: train and evaluate software-engineering agents with Supervised Reinforcement Learning.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    root.callback()(_root)
    if only == "":
        mounts = []
    elif only in COMMANDS:
        mounts = [COMMANDS[only]]
    else:
        mounts = list(dict.fromkeys(COMMANDS.values()))
    for mount in mounts:
        mount(root)
    return root


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    import gc

    args = sys.argv[1:]
    first = next((arg for arg in args if not arg.startswith("-")), None)
    if first is None and "--version" in args and "--help" not in args:
        first = ""
    try:
        build_app(first)()
    finally:
        gc.freeze()  # skip the interpreter's final collections: 0.1-0.2 s on every command


if __name__ == "__main__":
    main()
