"""Policies: batched messages in, answers out; stop after the first action; scripted replay."""

from __future__ import annotations

import importlib.util

import pytest

from srl_agent.policy import (
    STOP,
    Policy,
    SamplingParams,
    ScriptedPolicy,
    ScriptExhausted,
    TransformersPolicy,
    VLLMPolicy,
    cut_after_first_action,
    load_policy,
)
from srl_agent.prompts import THINK_PREFILL
from trajectories.actions import format_answer, parse_answer, render_action
from trajectories.schema import ToolCall, Trajectory
from trajectories.scoring import step_reward

LS = ToolCall(name="bash", arguments={"command": "ls"})
CAT = ToolCall(name="bash", arguments={"command": "cat setup.py"})
MSGS = [
    {"role": "system", "content": "You fix issues."},
    {"role": "user", "content": "Issue: parse() fails."},
]


def _traj() -> Trajectory:
    from trajectories.schema import Step

    return Trajectory(
        instance_id="demo-1",
        source_format="srl",
        steps=[Step(thought="look", action=LS), Step(thought="read", action=CAT)],
    )


def test_cut_after_first_action_drops_a_second_block():
    two = format_answer("t", LS) + "\n" + render_action(CAT) + "\ntrailing"
    cut = cut_after_first_action(two)
    assert cut.endswith(STOP) and cut.count("<function=") == 1
    assert parse_answer(cut)[1] == LS
    assert cut_after_first_action("no action at all") == "no action at all"


def test_scripted_policy_replays_the_expert_and_scores_one():
    traj = _traj()
    policy = ScriptedPolicy.from_trajectory(traj)
    assert isinstance(policy, Policy)
    answers = policy.generate([MSGS]) + policy.generate([MSGS])
    assert [parse_answer(a)[1] for a in answers] == [LS, CAT]
    assert [step_reward(a, render_action(s.action)) for a, s in zip(answers, traj.steps, strict=True)] == [
        1.0,
        1.0,
    ]
    with pytest.raises(ScriptExhausted):
        policy.generate([MSGS])


def test_bad_answers_through_the_policy_path_score_minus_one_and_a_second_action_is_cut():
    good = format_answer("t", LS)
    answers = [
        "ls -la",  # no think, no action
        "<think>t</think>\n<function=bash>\n<parameter=command>\nls\n</parameter>",  # unclosed
        render_action(LS),  # action without think
        good + "\n" + render_action(CAT),  # a second action: cut by the policy, so well-formed
    ]
    out = ScriptedPolicy(answers).generate([MSGS] * 4)
    rewards = [step_reward(a, render_action(LS)) for a in out]
    assert rewards == [-1.0, -1.0, -1.0, 1.0]


def test_scripted_policy_n_samples_per_prompt():
    out = ScriptedPolicy(["a", "b", "c", "d"]).generate([MSGS, MSGS], n=2)
    assert out == ["a", "b", "c", "d"]


def test_sampling_params_are_validated():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(tempreature=1.0)  # typo: extra=forbid


def test_transformers_policy_batches_and_stops_at_the_first_action(tiny, monkeypatch):
    policy = TransformersPolicy.from_pretrained(str(tiny), device="cpu", batch_size=2)
    seen = {}
    real = policy.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(policy.model, "generate", spy)
    batch = [MSGS, [{"role": "user", "content": "hi"}], MSGS]
    out = policy.generate(batch, max_new_tokens=8, seed=3, n=2)
    assert len(out) == 6 and all(isinstance(a, str) for a in out)
    assert seen["stop_strings"] == [STOP] and seen["tokenizer"] is policy.tokenizer
    assert seen["top_k"] == 0 and seen["do_sample"] is True
    assert policy.generate(batch, max_new_tokens=8, seed=3, n=2) == out  # seeded
    greedy = policy.generate([MSGS], max_new_tokens=8, temperature=0)
    assert greedy == policy.generate([MSGS], max_new_tokens=8, temperature=0)
    # a random model writes no well-formed answer: the step reward says so
    assert step_reward(greedy[0], render_action(LS)) == -1.0
    # answers open with the prefill, which ends the prompt the model continues
    assert all(a.startswith(THINK_PREFILL) for a in out + greedy)
    assert policy.tokenizer.decode(seen["input_ids"][0]).endswith("assistant\n" + THINK_PREFILL)
    bare = TransformersPolicy(policy.model, policy.tokenizer, prefill="")
    bare.generate([MSGS], max_new_tokens=8, temperature=0)
    assert policy.tokenizer.decode(seen["input_ids"][0]).endswith("assistant\n")


def test_load_policy_rejects_unknown_backends(tiny):
    with pytest.raises(ValueError, match="backend"):
        load_policy(str(tiny), backend="onnx")  # type: ignore[arg-type]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_the_extra_says_how_to_install(tiny):
    with pytest.raises(ImportError, match=r"srl-swe\[vllm\]"):
        VLLMPolicy(str(tiny))


@pytest.mark.vllm
def test_vllm_policy_generates_and_stops(tiny):
    pytest.importorskip("vllm")
    policy = VLLMPolicy(str(tiny), max_model_len=1024)
    out = policy.generate([MSGS, MSGS], max_new_tokens=16, seed=0, n=2)
    assert len(out) == 4 and all(a.count(STOP) <= 1 for a in out)


def test_auto_backend_picks_vllm_only_when_installed(monkeypatch):
    import importlib.util

    from srl_agent.policy import resolve_backend

    installed = importlib.util.find_spec("vllm") is not None
    assert resolve_backend("auto") == ("vllm" if installed else "transformers")
    assert resolve_backend("transformers") == "transformers" and resolve_backend("vllm") == "vllm"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a)
    )
    assert resolve_backend("auto") == "vllm"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    assert resolve_backend("auto") == "transformers"
