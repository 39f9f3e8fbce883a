"""Prompt building: the shared messages, the model's chat template, the token budget."""

from __future__ import annotations

import pytest

from srl_agent.models import load_tokenizer
from srl_agent.prompts import (
    THINK_PREFILL,
    fit_prompt,
    prompt_token_count,
    render_prompt,
    step_messages,
    token_counter,
    with_prefill,
)
from srl_agent.testing import build_tiny_model
from trajectories.schema import Step, ToolCall


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def _history(n: int) -> list[Step]:
    return [
        Step(
            thought=f"t{i}",
            action=ToolCall(name="bash", arguments={"command": f"ls dir{i}"}),
            observation="x " * 50,
        )
        for i in range(n)
    ]


def test_step_messages_come_from_trajectories_prompting(tok):
    from trajectories.prompting import build_messages

    msgs = step_messages(
        "parse() fails", _history(3), "bash_only", tokenizer=tok, context_steps=2, max_obs_tokens=8
    )
    assert [m["role"] for m in msgs] == ["system", "user"]
    expected = build_messages(
        "parse() fails",
        _history(3),
        "bash_only",
        context_steps=2,
        max_obs_tokens=8,
        count_tokens=token_counter(tok),
    )
    assert msgs == expected
    assert "parse() fails" in msgs[1]["content"] and "ls dir2" in msgs[1]["content"]


def test_render_prompt_opens_the_assistant_turn(tok):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = render_prompt(tok, msgs)
    assert text.startswith("<|im_start|>system\nS<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
    assert prompt_token_count(tok, msgs) == len(tok(text, add_special_tokens=False)["input_ids"])
    begun = render_prompt(tok, msgs, THINK_PREFILL)
    assert begun == text + THINK_PREFILL
    assert with_prefill(begun, THINK_PREFILL) == begun  # a template that opens the thought itself: once


def test_fit_prompt_cuts_the_middle_of_the_user_message_and_keeps_the_system(tok):
    system = "You fix issues. Tools: bash."
    user = "HEAD " + "word " * 400 + " TAIL"
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    assert prompt_token_count(tok, msgs) > 200
    fitted = fit_prompt(tok, msgs, 200)
    assert fitted is not None
    assert prompt_token_count(tok, fitted) <= 200
    assert fitted[0]["content"] == system
    body = fitted[1]["content"]
    assert body.startswith("HEAD") and body.endswith("TAIL") and "tokens cut to fit the prompt budget" in body
    assert msgs[1]["content"] == user  # input untouched


def test_fit_prompt_leaves_short_prompts_alone_and_gives_up_when_the_system_is_too_long(tok):
    short = [{"role": "user", "content": "hi"}]
    assert fit_prompt(tok, short, 100) == short
    huge_system = [{"role": "system", "content": "rule " * 300}, {"role": "user", "content": "hi"}]
    assert fit_prompt(tok, huge_system, 50) is None
