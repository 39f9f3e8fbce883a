"""`srl demo` end to end with a tiny random model: every stage runs for real (the training data are expert
runs the scripted expert generates over the bundled tasks), the report, plot and summary are written, and a
second run with --resume reuses every finished stage."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from envs.sources import load_tasks
from srl_agent.cli import app
from srl_agent.testing import build_tiny_model


@pytest.mark.docker
@pytest.mark.slow
def test_demo_runs_every_stage_and_resumes(docker_client, base_image, tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "demo"
    runner = CliRunner()
    args = [
        "demo",
        "--out",
        str(out),
        "--model",
        str(model),
        "--budget",
        "0.1",
        "--max-prompt-tokens",
        "3000",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    stages = report["stages"]
    for name in ("sandboxes", "data", "eval_base", "sft", "srl", "agents", "summary"):
        assert name in stages, name
    assert stages["data"]["train_instances"] > 0 and stages["data"]["validation_instances"] > 0
    source = stages["data"]["source"]
    assert source["kind"] == "generated" and source["runs"] == stages["data"]["trajectories"] > 0
    assert len(list((out / "expert_runs").glob("*.srl.jsonl"))) == source["runs"]
    assert (
        report["task"]
        == min((t for t in load_tasks(None).tasks if t.patch.strip()), key=lambda t: len(t.patch)).instance_id
    )
    assert -1.0 <= stages["eval_base"]["mean_reward"] <= 1.0
    # the tiny tokenizer has 600 tokens: the demo's prompts need a larger budget than the real model's
    # a random model writes no well-formed answer: SRL must stop with the cause, not train on zeros
    srl = stages["srl"]
    assert srl["steps"] > 0 or "every group scored -1" in srl["stopped"]
    expert = stages["agents"]["scripted expert"]
    assert expert["resolved"] is True and expert["exit_status"] == "submitted"
    assert stages["agents"]["SRL-trained model"]["resolved"] is not True
    assert (out / "reward_curve.png").stat().st_size > 1000
    assert "srl demo: summary" in res.output and "not expected to solve" in res.output
    assert f"{source['runs']} expert runs generated over {source['tasks']} tasks" in " ".join(
        res.output.split()
    )

    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    # every stage is reused (rich wraps long titles at word boundaries, so count the word), none re-run
    assert again.output.count("reused") == 6
    assert "training ->" not in again.output and "done in" not in again.output
    assert json.loads((out / "report.json").read_text())["stages"]["sft"] == stages["sft"]


def test_demo_says_when_the_user_trajectories_are_missing(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--trajectories", str(tmp_path / "none")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "--trajectories" in said and "does not exist" in said


def test_demo_task_is_the_shortest_gold_unless_named():
    from types import SimpleNamespace

    from srl_agent.demo import DemoError, _demo_task

    tasks = [SimpleNamespace(instance_id=i, patch="x" * n) for i, n in (("a", 30), ("b", 10), ("c", 20))]
    assert _demo_task(tasks, None).instance_id == "b"
    assert _demo_task(tasks, "c").instance_id == "c"
    with pytest.raises(DemoError, match="'z' is not in the examples pack"):
        _demo_task(tasks, "z")


def test_summary_says_where_the_data_came_from():
    from srl_agent.demo_report import _data_origin

    gen = {"kind": "generated", "path": "runs/demo/expert_runs", "runs": 18, "tasks": 9, "seeds": [0, 1],
           "styles": ["bash", "tools"]}  # fmt: skip
    said = _data_origin({"stages": {"data": {"source": gen}}})
    assert said.startswith("data: 18 expert runs generated over 9 tasks") and "seeds 0-1" in said
    assert "runs/demo/expert_runs" in said
    user = _data_origin({"stages": {"data": {"source": {"kind": "user", "path": "my/runs"}}}})
    assert user == "data: your trajectories at my/runs"
