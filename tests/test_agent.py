"""The agent loop in real sandboxes with the scripted policy (the test double for every policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.sources import load_tasks
from srl_agent.agent import AgentConfig, run_episode
from srl_agent.policy import ScriptedPolicy
from trajectories.importers import load_trajectories

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def tasks():
    return load_tasks(None)


@pytest.fixture(scope="module")
def expert(tasks, docker_client):
    """A scripted-expert run (harness.expert) of the bundled task with the shortest gold patch."""
    from harness.expert import generate_run

    spec = min((t for t in tasks.tasks if t.patch.strip()), key=lambda t: len(t.patch))
    return spec, generate_run(spec, "tools", 0, client=docker_client, grade=False, replay=False).trajectory


def test_scripted_gold_trajectory_resolves(expert, docker_client, tmp_path):
    spec, traj = expert
    res = run_episode(
        spec,
        ScriptedPolicy.from_trajectory(traj),
        AgentConfig(toolset="editor"),
        out_dir=tmp_path,
        client=docker_client,
        model_name="scripted",
    )
    assert res.exit_status == "submitted"
    assert res.steps == len(traj.steps) and res.format_errors == 0
    assert res.resolved is True
    assert res.report["tests_status"]["FAIL_TO_PASS"]["success"] == spec.FAIL_TO_PASS
    # the episode is saved in our schema and imports back as data
    (back,) = load_trajectories([Path(res.trajectory_path)])
    assert back.resolved is True and back.final_patch == res.patch
    assert [s.action for s in back.steps] == [s.action for s in traj.steps]
    assert (tmp_path / "eval" / "report.json").exists()


def test_a_run_without_the_fix_submits_an_empty_diff_and_is_not_resolved(expert, docker_client, tmp_path):
    spec, traj = expert
    demo = traj.model_copy(update={"steps": [s for s in traj.steps if not s.action.arguments.get("old_str")]})
    res = run_episode(
        spec,
        ScriptedPolicy.from_trajectory(demo),
        AgentConfig(toolset=demo.metadata.get("toolset", "editor"), max_steps=len(demo.steps)),
        out_dir=tmp_path,
        client=docker_client,
        model_name="scripted",
    )
    assert res.exit_status == "submitted"
    assert res.steps == len(demo.steps)
    assert res.patch.strip() == ""
    assert res.resolved is False  # an empty patch is graded as not resolved


def test_format_errors_end_the_episode_and_the_trajectory_is_saved(expert, docker_client, tmp_path):
    spec, _ = expert
    policy = ScriptedPolicy(["I think I should run ls", "<think>x</think> ls -la", "<function=bash>"])
    res = run_episode(spec, policy, AgentConfig(max_format_errors=3), out_dir=tmp_path, client=docker_client)
    assert res.exit_status == "format_error"
    assert res.format_errors == 3 and res.steps == 0
    assert res.resolved is False  # an empty patch is graded, and does not resolve
    saved = json.loads(Path(res.trajectory_path).read_text())
    assert saved["exit_status"] == "format_error"
    assert saved["metadata"]["format_errors"] == 3
    # the episode record imports back (no steps, so no training instances), it is not an import error
    (back,) = load_trajectories([Path(res.trajectory_path)])
    assert back.steps == [] and back.exit_status == "format_error"


def test_step_limit_keeps_the_diff(expert, docker_client, tmp_path):
    spec, _ = expert
    answer = "<think>edit</think>\n<function=bash>\n<parameter=command>\necho '# touched' >> NOTES.txt\n</parameter>\n</function>"
    res = run_episode(
        spec,
        ScriptedPolicy([answer] * 2),
        AgentConfig(max_steps=2, grade=False),
        out_dir=tmp_path,
        client=docker_client,
    )
    assert res.exit_status == "step_limit" and res.steps == 2
    assert res.patch.count("+# touched") == 2
