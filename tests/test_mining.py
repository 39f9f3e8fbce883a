"""Mining tasks from git history: candidates (unit) and discovery/validation in sandboxes (docker)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from envs.mining import candidate_spec, iter_candidates, repo_name_from_location
from envs.sources import load_tasks

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "calc"
version = "0.1"

[tool.setuptools]
py-modules = ["calc"]
"""


def make_repo(root: Path) -> tuple[git.Repo, dict[str, str]]:
    """A small repo whose history has commits with and without tests. Returns the repo and
    {label: commit hash}."""
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.com")
    shas: dict[str, str] = {}

    def commit(label: str, files: dict[str, str], message: str) -> None:
        for name, text in files.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            repo.index.add([name])
        shas[label] = repo.index.commit(message).hexsha

    commit(
        "init",
        {
            "pyproject.toml": PYPROJECT,
            ".gitignore": "*.egg-info/\n__pycache__/\n",
            "calc.py": "def add(a, b):\n    return abs(a) + b\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_calc.py": "from calc import add, mul\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
            "def test_mul():\n    assert mul(2, 3) == 6\n",
        },
        "Initial version",
    )
    commit(
        "fix",
        {
            "calc.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_calc.py": "from calc import add, mul\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
            "def test_mul():\n    assert mul(2, 3) == 6\n\n\ndef test_add_negative():\n    assert add(-1, 2) == 1\n",
        },
        "Fix add() for negative numbers\n\nabs() was applied to the first operand.",
    )
    commit("docs", {"README.md": "calc\n"}, "Add a README (no tests)")
    commit(
        "tests-only",
        {"tests/test_more.py": "from calc import mul\n\n\ndef test_mul_zero():\n    assert mul(0, 5) == 0\n"},
        "More tests (no source change)",
    )
    commit(
        "refactor",
        {
            "calc.py": "def add(a, b):\n    return sum((a, b))\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_more.py": "from calc import mul\n\n\ndef test_mul_zero():\n    assert mul(0, 5) == 0\n\n\n"
            "def test_mul_one():\n    assert mul(1, 5) == 5\n",
        },
        "Refactor add(); tests that already pass",
    )
    return repo, shas


def test_candidates_need_source_and_test_changes(tmp_path):
    _, shas = make_repo(tmp_path / "calc")
    cands = list(iter_candidates(str(tmp_path / "calc")))
    assert [c.commit for c in cands] == [shas["refactor"], shas["fix"]]  # newest first
    fix = cands[1]
    assert fix.parent == shas["init"]
    assert fix.source_files == ("calc.py",) and fix.test_files == ("tests/test_calc.py",)
    assert "calc.py" in fix.patch and "tests/" not in fix.patch
    assert "tests/test_calc.py" in fix.test_patch and "a/calc.py" not in fix.test_patch
    # --since and max commits
    assert [c.commit for c in iter_candidates(str(tmp_path / "calc"), since=shas["fix"])] == [
        shas["refactor"]
    ]
    assert list(iter_candidates(str(tmp_path / "calc"), max_commits=1))[0].commit == shas["refactor"]


def test_candidate_spec_flags_commit_message_statement(tmp_path):
    _, shas = make_repo(tmp_path / "calc")
    cand = [c for c in iter_candidates(str(tmp_path / "calc")) if c.commit == shas["fix"]][0]
    spec = candidate_spec(cand, "me/calc", str(tmp_path / "calc"))
    assert spec.instance_id == f"me__calc-{shas['fix'][:8]}"
    assert spec.base_commit == shas["init"] and spec.metadata["fix_commit"] == shas["fix"]
    assert (
        spec.problem_statement.startswith("Fix add()") and spec.problem_statement_source == "commit_message"
    )
    assert spec.FAIL_TO_PASS == [] and spec.tests_to_run() == ["tests/test_calc.py"]


def test_repo_name_from_location():
    assert repo_name_from_location("/x/tkem__cachetools.bundle") == "tkem/cachetools"
    assert repo_name_from_location("https://github.com/own/name.git") == "own/name"
    assert repo_name_from_location("/src/calc/") == "calc"


@pytest.mark.docker
@pytest.mark.slow
def test_mine_cli_writes_only_fail_then_pass_tasks_and_they_validate(tmp_path, docker_client, base_image):
    from typer.testing import CliRunner

    from harness.cli_task import task_app
    from harness.validate import run_task

    _, shas = make_repo(tmp_path / "calc")
    out = tmp_path / "pack"
    runner = CliRunner()
    res = runner.invoke(
        task_app, ["mine", str(tmp_path / "calc"), "--out", str(out), "--name", "me/calc", "--max", "5"]
    )
    assert res.exit_code == 0, res.output
    loaded = load_tasks(str(out))
    assert not loaded.errors
    (task,) = loaded.tasks  # the refactor commit has no failing-then-passing test
    assert task.metadata["fix_commit"] == shas["fix"] and task.base_commit == shas["init"]
    assert task.FAIL_TO_PASS == ["tests/test_calc.py::test_add_negative"]
    assert task.PASS_TO_PASS == ["tests/test_calc.py::test_add", "tests/test_calc.py::test_mul"]
    assert task.problem_statement_source == "commit_message"
    res = run_task(task, client=docker_client, log_dir=tmp_path / "logs")
    docker_client.images.remove(res.image, force=True)  # the env image is shared and stays
    assert res.valid, res.problems


@pytest.mark.docker
@pytest.mark.slow
def test_mine_history_library_call_reports_kept_and_skipped(tmp_path, docker_client, base_image):
    """`srl task mine`'s work as a Python call: events through the callback, a report, no printing."""
    from harness.mine_runner import MineEvent, mine_history

    _, shas = make_repo(tmp_path / "calc")
    out = tmp_path / "pack"
    events: list[MineEvent] = []
    report = mine_history(
        str(tmp_path / "calc"), out, name="me/calc", runs=1, client=docker_client, progress=events.append
    )
    (kept,) = report.kept
    assert kept.instance_id == f"me__calc-{shas['fix'][:8]}" and kept.path == out / f"{kept.instance_id}.yaml"
    assert kept.fail_to_pass == ["tests/test_calc.py::test_add_negative"]
    refactor = f"me__calc-{shas['refactor'][:8]}"
    assert report.tried == 2 and list(report.skipped) == [refactor]
    assert "no test fails before the gold patch and passes after it" in report.skipped[refactor]
    kinds = {(e.kind, e.instance_id) for e in events}
    assert ("kept", kept.instance_id) in kinds and ("skipped", refactor) in kinds
    assert any(e.kind == "status" and e.instance_id == kept.instance_id for e in events)
    (task,) = load_tasks(str(out)).tasks
    assert task.FAIL_TO_PASS == kept.fail_to_pass and task.metadata["fix_commit"] == shas["fix"]
    again = mine_history(str(tmp_path / "calc"), out, name="me/calc", runs=1, client=docker_client)
    assert again.tried == 1 and not again.kept  # the kept commit is not mined twice (the refactor is)


def test_mine_releases_bad_range_is_a_mining_error_before_docker():
    from harness.mine_runner import MiningError, mine_releases

    with pytest.raises(MiningError, match="expected A..B"):
        mine_releases("cachetools", Path("unused"), versions="5.5.2")
    with pytest.raises(ValueError, match="need two or more"):  # MiningError keeps its builtin base
        mine_releases("cachetools", Path("unused"), versions="5.5.2..5.5.2")
