"""The agent loop in real sandboxes with the scripted policy (the test double for every policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.sources import load_tasks
from srl_agent.agent import AgentConfig, run_episode
from srl_agent.policy import ScriptedPolicy
from trajectories.bundled import bundled_dir
from trajectories.importers import load_trajectories

pytestmark = pytest.mark.docker

DATA = Path(__file__).resolve().parents[1] / "srl_agent" / "data"


@pytest.fixture(scope="module")
def tasks():
    return load_tasks(None)


def test_scripted_gold_trajectory_resolves_cachetools(tasks, docker_client, tmp_path):
    (traj,) = load_trajectories([DATA / "tkem__cachetools-387.srl.jsonl"])
    spec = tasks.get("tkem__cachetools-387")
    res = run_episode(
        spec,
        ScriptedPolicy.from_trajectory(traj),
        AgentConfig(toolset="editor"),
        out_dir=tmp_path,
        client=docker_client,
        model_name="scripted",
    )
    assert res.exit_status == "submitted"
    assert res.steps == 4 and res.format_errors == 0
    assert res.resolved is True
    assert res.report["tests_status"]["FAIL_TO_PASS"]["success"] == spec.FAIL_TO_PASS
    # the episode is saved in our schema and imports back as data
    (back,) = load_trajectories([Path(res.trajectory_path)])
    assert back.resolved is True and back.final_patch == res.patch
    assert [s.action for s in back.steps] == [s.action for s in traj.steps]
    assert (tmp_path / "eval" / "report.json").exists()


def test_marshmallow_demonstration_reproduces_its_diff_and_is_not_resolved(tasks, docker_client, tmp_path):
    (demo,) = load_trajectories([bundled_dir() / "marshmallow-code__marshmallow-1867.function_calling.traj"])
    spec = tasks.get("marshmallow-code__marshmallow-1867")
    res = run_episode(
        spec,
        ScriptedPolicy.from_trajectory(demo),
        AgentConfig(toolset=demo.metadata.get("toolset", "swe_agent"), max_steps=len(demo.steps)),
        out_dir=tmp_path,
        client=docker_client,
        model_name="scripted",
    )
    assert res.exit_status == "submitted"
    assert res.steps == len(demo.steps)
    recorded = demo.final_patch.replace("\r\n", "\n").strip()
    assert res.patch.strip() == recorded
    assert res.resolved is False
    assert res.report["tests_status"]["FAIL_TO_PASS"]["failure"]


def test_format_errors_end_the_episode_and_the_trajectory_is_saved(tasks, docker_client, tmp_path):
    spec = tasks.get("tkem__cachetools-387")
    policy = ScriptedPolicy(["I think I should run ls", "<think>x</think> ls -la", "<function=bash>"])
    res = run_episode(spec, policy, AgentConfig(max_format_errors=3), out_dir=tmp_path, client=docker_client)
    assert res.exit_status == "format_errors"
    assert res.format_errors == 3 and res.steps == 0
    assert res.resolved is False  # an empty patch is graded, and does not resolve
    saved = json.loads(Path(res.trajectory_path).read_text())
    assert saved["exit_status"] == "format_errors"
    assert saved["metadata"]["format_errors"] == 3
    # the episode record imports back (no steps, so no training instances), it is not an import error
    (back,) = load_trajectories([Path(res.trajectory_path)])
    assert back.steps == [] and back.exit_status == "format_errors"


def test_step_limit_keeps_the_diff(tasks, docker_client, tmp_path):
    spec = tasks.get("tkem__cachetools-387")
    answer = "<think>edit</think>\n<function=bash>\n<parameter=command>\necho '# touched' >> README.rst\n</parameter>\n</function>"
    res = run_episode(
        spec,
        ScriptedPolicy([answer] * 2),
        AgentConfig(max_steps=2, grade=False),
        out_dir=tmp_path,
        client=docker_client,
    )
    assert res.exit_status == "step_limit" and res.steps == 2
    assert res.patch.count("+# touched") == 2
