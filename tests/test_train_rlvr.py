"""`srl train rlvr` end to end: one GRPO step whose rollouts are real agent episodes in sandboxes.

A tiny random model on a bundled cachetools task: its answers are malformed, so every episode scores -1 and
nothing is learned; what is tested is the whole path (tasks -> sandboxed episodes -> tokens + env mask
-> outcome reward -> GRPO step -> saved model), and that a run where no group has spread stops with
the cause and the remedy.
"""

from __future__ import annotations

import json

import pytest

from srl_agent.train.config import RLVRTrainConfig
from trajectories.importers import load_trajectories

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TASK = "cachetools-5.2.0"


def _one_step(tiny: str, tmp_path, **overrides) -> RLVRTrainConfig:
    """One RLVR step: one task group of two short episodes."""
    return RLVRTrainConfig(
        model=tiny,
        instance_ids=[TASK],
        output_dir=tmp_path / "rlvr",
        max_steps=1,
        batch_size=1,
        num_generations=2,
        max_turns=2,
        max_completion_length=16,
        report_to=[],
        dynamic_sampling={"enabled": False},  # all -1 here; the step must still run and save
        **overrides,
    )


def test_one_rlvr_step_with_sandboxed_episodes_runs_and_saves(tiny, docker_client, tmp_path):
    from srl_agent.policy import TransformersPolicy
    from srl_agent.train.rlvr import run_rlvr

    out = run_rlvr(_one_step(tiny, tmp_path))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    logged = state["log_history"][0]
    assert logged["reward"] == -1.0  # every episode ended on a malformed answer
    episodes = sorted((out / "episodes").glob(f"{TASK}-*.srl.jsonl"))
    assert len(episodes) == 2  # one group of num_generations episodes
    for path in episodes:  # malformed first answer: a step-less record, imported as such (no data)
        (traj,) = load_trajectories([path])
        assert traj.instance_id == TASK and traj.exit_status == "format_error" and not traj.steps
    TransformersPolicy.from_pretrained(str(out), device="cpu")  # the output is a loadable policy


def test_cli_rlvr_stops_with_cause_and_remedy_when_no_group_has_spread(tiny, docker_client, tmp_path):
    from typer.testing import CliRunner

    from srl_agent.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        ["train", "rlvr", "--set", f"model={tiny}", "--instance-id", TASK, "--max-steps", "1",
         "-o", str(out), "--set", "max_turns=1", "--set", "max_completion_length=16",
         "--set", "num_generations=2", "--set", "batch_size=1", "--set", "report_to=[]",
         "--set", "dynamic_sampling.max_refills=0"],
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    assert "every episode scored -1" in res.output and "--init-from" in res.output
    assert (out / "rlvr_config.yaml").is_file() and not (out / "config.json").exists()


@pytest.mark.vllm
def test_rlvr_rollouts_generate_through_the_colocated_vllm_engine(tiny, docker_client, tmp_path):
    pytest.importorskip("vllm")
    from srl_agent.train.rlvr import run_rlvr

    out = run_rlvr(_one_step(tiny, tmp_path, device="cpu", use_vllm=True))
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"][0]
    assert logged["reward"] == -1.0
    # the episodes' answers came from vLLM with their sampling logprobs: TRL measured the engine/policy gap
    assert any(key.startswith("sampling/") for key in logged), sorted(logged)
