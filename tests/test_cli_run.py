"""`srl run`: a thin command over `srl_agent.agent.run_task`, configured by ``--config`` / ``--set`` / flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from srl_agent.cli import app


def _said(res) -> str:
    return " ".join(res.output.split())


def test_a_config_with_an_unknown_field_is_an_error_naming_the_file_and_field(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: x\nmax_stpes: 3\n")
    res = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 2
    assert str(cfg) in _said(res) and "max_stpes" in _said(res)


def test_a_run_without_a_task_says_so():
    res = CliRunner().invoke(app, ["run", "--set", "time_limit=60"])
    assert res.exit_code == 2 and "task" in _said(res) and "Field required" in _said(res)


def test_scripted_policy_without_a_trajectory_is_an_input_error(tmp_path):
    res = CliRunner().invoke(
        app, ["run", "--task", "cachetools-5.2.0", "--policy", "scripted", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "needs a trajectory" in _said(res)


@pytest.mark.docker
def test_srl_run_from_a_config_file_resolves_with_the_scripted_expert(docker_client, tmp_path):
    from envs.sources import load_tasks
    from harness.expert import generate_run

    spec = min((t for t in load_tasks(None).tasks if t.patch.strip()), key=lambda t: len(t.patch))
    run = generate_run(spec, "tools", 0, client=docker_client, grade=False, replay=False).trajectory
    traj_file = tmp_path / "expert.srl.jsonl"
    traj_file.write_text(run.model_dump_json() + "\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "task": spec.instance_id,
                "policy": "scripted",
                "trajectory": str(traj_file),
                "time_limit": 900,
                "step_timeout": 60,
                "context_steps": 1,
                "out": str(tmp_path / "out"),
            }
        )
    )
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--set", "max_obs_tokens=300"])
    assert res.exit_code == 0, res.output
    said = _said(res)
    assert "submitted" in said and "yes" in said
    saved = json.loads(
        Path(tmp_path / "out" / spec.instance_id / f"{spec.instance_id}.srl.jsonl").read_text()
    )
    agent = saved["metadata"]["agent_config"]
    assert (agent["time_limit"], agent["step_timeout"], agent["context_steps"], agent["max_obs_tokens"]) == (
        900,
        60,
        1,
        300,
    )
    assert saved["resolved"] is True and saved["exit_status"] == "submitted"
    assert agent["toolset"] == run.metadata.get("toolset", "editor")
