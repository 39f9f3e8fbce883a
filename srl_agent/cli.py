"""The root `srl` command: mounts each package's sub-commands.

Only the invoked command's module is imported (`srl score` does not pay for the Docker SDK, `srl
evaluate` not for the trajectory tools); `srl`, `srl --help` and an unknown command load them all.
`app` (the whole command tree) is built on first access, for tests and embedding.
"""

from __future__ import annotations

import sys

import typer

from srl_agent import __version__

_ENV, _DATA, _LEARN = "Sandboxes and tasks", "Trajectories and data", "Evaluation, training and agents"


# command name -> (module, attribute, help, help panel), in the order `srl --help` lists them; a Typer
# attribute mounts as a command group, a function as a command. A bare module name: that module's
# register() mounts the command (with its siblings: train and eval-steps come from one register()).
_COMMANDS: dict[str, tuple[str, str, str, str] | str] = {
    "doctor": (
        "harness.cli_sandbox",
        "doctor",
        "Check Docker, the base image, disk and extras; start dockerd where it can.",
        _ENV,
    ),
    "image": ("harness.cli_sandbox", "image_app", "Build and prune the project's Docker images.", _ENV),
    "sandbox": ("harness.cli_sandbox", "sandbox_app", "Run commands in sandboxes; remove leftovers.", _ENV),
    "task": ("harness.cli_task", "task_app", "List, show, build, validate and mine repo tasks.", _ENV),
    "traj": ("trajectories.cli", "traj_app", "Import, show, generate and replay expert trajectories.", _DATA),
    "data": ("trajectories.cli", "data_app", "Build step-wise SRL data sets from trajectories.", _DATA),
    "score": (
        "trajectories.cli_score",
        "score",
        "Score predicted actions against the expert's (mean step reward).",
        _DATA,
    ),
    "evaluate": (
        "harness.cli_eval",
        "evaluate",
        "Grade patches against their tasks' tests in sandboxes (SWE-bench format).",
        _LEARN,
    ),
    "train": "srl_agent.cli_agent",
    "eval-steps": "srl_agent.cli_agent",
    "run": (
        "srl_agent.cli_run",
        "run",
        "Run the agent end to end on one task in a sandbox and grade its patch.",
        _LEARN,
    ),
    "demo": ("srl_agent.demo", "demo", "The end-to-end demo on the bundled defaults (the main job).", _LEARN),
    "experiment": (
        "srl_agent.experiment",
        "experiment",
        "Compare SFT, SRL, SRL -> RLVR and RLVR alone at equal training tokens (report + plot).",
        _LEARN,
    ),
}


def _mount(app: typer.Typer, name: str) -> None:
    import importlib

    entry = _COMMANDS[name]
    if isinstance(entry, str):
        importlib.import_module(entry).register(app, panel=_LEARN)
        return
    module, attribute, help_text, panel = entry
    obj = getattr(importlib.import_module(module), attribute)
    if isinstance(obj, typer.Typer):
        if name == "traj":  # replay and generate live in harness (they need sandboxes); they join here
            from harness.cli_generate import generate
            from harness.cli_replay import replay

            registered = {c.name for c in obj.registered_commands}
            if "replay" not in registered:
                obj.command(
                    "replay",
                    help="Replay an expert trajectory in a sandbox of its task; compare observations, diff, tests.",
                )(replay)
            if "generate" not in registered:
                obj.command(
                    "generate",
                    help="Generate expert runs from tasks' gold patches in sandboxes (scripted expert).",
                )(generate)
        app.add_typer(obj, name=name, help=help_text, rich_help_panel=panel)
    else:
        app.command(name, help=help_text, rich_help_panel=panel)(obj)


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
    names = [] if only == "" else [only] if only in _COMMANDS else list(_COMMANDS)
    mounted: set[str] = set()
    for name in names:
        entry = _COMMANDS[name]
        key = entry if isinstance(entry, str) else name  # one register() per module
        if key not in mounted:
            mounted.add(key)
            _mount(root, name)
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
    from harness.interrupt import sigterm_as_interrupt

    sigterm_as_interrupt()  # `kill` unwinds like Ctrl-C: every command removes the containers it made
    try:
        build_app(first)()
    finally:
        gc.freeze()  # skip the interpreter's final collections: 0.1-0.2 s on every command


if __name__ == "__main__":
    main()
