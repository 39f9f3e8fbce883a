"""The options of `srl task mine` and `srl task synth` as ``Annotated`` types (their help is the
commands' ``--help``), so that the commands themselves stay short."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RepoArg = Annotated[
    str,
    typer.Argument(help="Repo whose history to mine: a checkout, a .bundle file or a URL (or use --pypi)."),
]
MinePypi = Annotated[
    str,
    typer.Option("--pypi", help="Mine the releases of this package on the index instead of a git history."),
]
Versions = Annotated[
    str,
    typer.Option(
        "--versions", help="With --pypi: the release range A..B (inclusive; either side may be empty)."
    ),
]
Pre = Annotated[bool, typer.Option("--pre", help="With --pypi: include pre-releases.")]
Since = Annotated[str, typer.Option("--since", help="Only commits after REV (REV..HEAD).")]
Rev = Annotated[str, typer.Option("--rev", help="Walk history from this revision.")]
MaxTasks = Annotated[int, typer.Option("--max", min=1, help="Stop after N tasks pass validation.")]
MaxCommits = Annotated[int, typer.Option("--max-commits", help="Look at no more than N commits.")]
MineOut = Annotated[Path, typer.Option("--out", help="Task pack directory to write <id>.yaml files to.")]
RepoName = Annotated[str, typer.Option("--name", help="Repo name owner/name (default: from the file name).")]
Pip = Annotated[list[str], typer.Option("--pip", help="Test requirement (repeatable; default: pytest).")]
Install = Annotated[
    list[str], typer.Option("--install", help="Install command (repeatable; default: pip install -e .).")
]
MineRuns = Annotated[
    int,
    typer.Option(
        "--runs", min=1, help="Runs per candidate; tests whose status or id changes between runs are dropped."
    ),
]
CopyRepo = Annotated[bool, typer.Option("--copy-repo/--no-copy-repo", help="Copy a .bundle into OUT/repos/.")]
SynthPypi = Annotated[
    str, typer.Option("--pypi", help="The release to mutate: NAME==VERSION (its sdist ships tests).")
]
SynthN = Annotated[int, typer.Option("-n", "--n", min=1, help="Stop after N kept tasks.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the order in which mutation sites are tried.")]
SynthOut = Annotated[Path, typer.Option("--out", help="Task pack directory for the <id>.yaml files.")]
MaxTries = Annotated[int, typer.Option("--max-tries", min=1, help="Try at most M mutations.")]
Kinds = Annotated[list[str], typer.Option("--kind", help="Only these mutation kinds (repeatable).")]
BaselineRuns = Annotated[
    int,
    typer.Option(
        "--baseline-runs", min=1, help="Run the suite N times on the original; flaky tests are left out."
    ),
]
MaxBroken = Annotated[
    float,
    typer.Option(
        "--max-broken", min=0.0, max=1.0, help="Reject mutations breaking more than this share of tests."
    ),
]
