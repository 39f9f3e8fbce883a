"""RLVR rollouts: a whole sandboxed episode as tokens + mask, rewarded by the task's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from envs.sources import load_tasks
from srl_agent.rlvr_runner import play_chat_episode
from srl_agent.testing import build_tiny_model
from trajectories.actions import format_answer
from trajectories.scoring import outcome_reward

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from srl_agent.models import load_tokenizer

    return load_tokenizer(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def spec():
    """The bundled task with the shortest gold patch."""
    return min((t for t in load_tasks(None).tasks if t.patch.strip()), key=lambda t: len(t.patch))


@pytest.fixture(scope="module")
def expert_traj(spec, docker_client):
    """A scripted-expert run (harness.expert) of `spec` with the editor tool, as the data the policy replays."""
    from harness.expert import generate_run

    return generate_run(spec, "tools", 0, client=docker_client, grade=False, replay=False).trajectory


def _scripted(tokenizer, answers, logprob=None):
    """A `Generate` replaying `answers`; with `logprob`, it reports that sampling logprob for every token
    (as the vLLM backend does)."""
    queue = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    seen = []

    def gen(ids):
        seen.append(list(ids))
        new = queue.pop(0)
        return new, None if logprob is None else [logprob] * len(new)

    return gen, seen


def test_expert_episode_is_resolved_and_masks_only_policy_tokens(
    tokenizer, spec, expert_traj, docker_client, tmp_path
):
    traj = expert_traj
    answers = [format_answer(s.thought, s.action) for s in traj.steps]
    gen, seen = _scripted(tokenizer, answers, logprob=-0.25)
    # the tiny tokenizer spends many tokens per observation: a budget that fits the whole expert run
    ep = play_chat_episode(
        spec,
        gen,
        tokenizer,
        toolset="editor",
        client=docker_client,
        out_dir=tmp_path,
        max_completion_tokens=200_000,
    )
    assert ep.resolved is True and not ep.format_error
    # sampling logprobs line up with the tokens: the policy's where it wrote, none for observations
    assert ep.logprobs == [-0.25 if m else None for m in ep.env_mask]
    assert outcome_reward(ep.resolved, ep.format_error) == 1.0
    # every generation call saw exactly the growing sequence: prompt + what came before
    for i, ids in enumerate(seen):
        assert ids[: len(ep.prompt_ids)] == ep.prompt_ids
        if i:
            assert ids == ep.prompt_ids + ep.completion_ids[: len(ids) - len(ep.prompt_ids)]
    policy_tokens = [t for t, m in zip(ep.completion_ids, ep.env_mask, strict=True) if m == 1]
    expected = sum((tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers), [])
    assert policy_tokens == expected
    assert 0 in ep.env_mask  # observations are context, not trained on
    assert Path(ep.trajectory_path).exists()


def test_malformed_answer_gets_the_format_penalty(tokenizer, spec, docker_client):
    gen, _ = _scripted(tokenizer, ["I would run ls"])
    ep = play_chat_episode(spec, gen, tokenizer, client=docker_client)
    assert ep.format_error and ep.resolved is None
    assert outcome_reward(ep.resolved, ep.format_error) == -1.0
    assert ep.env_mask == [1] * len(ep.completion_ids)
    assert ep.logprobs is None  # the backend reported none


def test_tiny_model_rollout_runs_end_to_end(tokenizer, spec, docker_client, tmp_path_factory):
    from srl_agent.models import load_model
    from srl_agent.rlvr_runner import model_generate

    path = build_tiny_model(tmp_path_factory.mktemp("tiny2"))
    model = load_model(path, device="cpu")
    gen = model_generate(model, tokenizer, temperature=1.0, max_new_tokens=16)
    ep = play_chat_episode(spec, gen, tokenizer, max_turns=1, client=docker_client)
    assert ep.format_error  # a random model writes no well-formed action
    assert len(ep.completion_ids) == len(ep.env_mask) > 0
