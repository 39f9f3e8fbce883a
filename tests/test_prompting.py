"""Fitting a step prompt into a token budget: which parts give way first (issue 16's prompt-length fix)."""

from __future__ import annotations

import pytest

from trajectories.prompting import (
    ISSUE_FLOOR,
    UserPrompt,
    approx_tokens,
    build_messages,
    parse_user_prompt,
    shrink_user_prompt,
    system_prompt,
    user_prompt,
)
from trajectories.schema import Step, ToolCall

ISSUE = "Parsing a date with a timezone drops the offset. " * 20  # ~250 approximate tokens


def _history(n: int, *, out: str = "line of output\n" * 30) -> list[Step]:
    return [
        Step(
            thought=f"step {i}",
            action=ToolCall(name="bash", arguments={"command": f"grep -rn parse_date{i} src/ | head -n {i}"}),
            observation=out,
        )
        for i in range(n)
    ]


def _prompt(n: int, **kw) -> str:
    return user_prompt(ISSUE, _history(n), context_steps=2, **kw)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_parse_inverts_render(n: int) -> None:
    text = _prompt(n)
    parts = parse_user_prompt(text)
    assert parts is not None and parts.render() == text
    assert parts.next_step == n + 1
    assert [k for k, _ in parts.earlier] == list(range(1, max(0, n - 2) + 1))
    assert [k for k, _, _ in parts.recent] == list(range(max(1, n - 1), n + 1))
    assert parse_user_prompt(user_prompt(ISSUE, _history(5), context_steps=0)).render() == user_prompt(
        ISSUE, _history(5), context_steps=0
    )


def test_parse_rejects_other_text() -> None:
    assert parse_user_prompt("Observation:\nok\n\nThink, then give the next action.") is None
    assert (
        parse_user_prompt(
            "<issue>\nx\n</issue>\n\nMost recent steps:\nStep 9:\nls\n\nThink, then give the action for step 2."
        )
        is None
    )
    omitted = UserPrompt(issue="x", earlier=[(3, "a")], recent=[(4, "b", "o")], next_step=5, omitted=2)
    assert parse_user_prompt(omitted.render()) == omitted


def test_earlier_actions_go_first_oldest_first() -> None:
    text = _prompt(7)
    parts = parse_user_prompt(text)
    cut = parse_user_prompt(shrink_user_prompt(text, 5))
    assert [k for k, _ in cut.earlier] == [2, 3, 4, 5] and cut.omitted == 1
    assert cut.issue == parts.issue and cut.recent == parts.recent
    assert "Steps left out to fit the prompt: 1-1\nStep 2:" in cut.render()


def test_then_the_issue_then_older_rounds_and_the_previous_action_last() -> None:
    text = _prompt(7)
    parts = parse_user_prompt(text)
    earlier = sum(approx_tokens(f"Step {k}:\n{a}\n") for k, a in parts.earlier)
    # a bit more than the earlier actions: the issue is cut, the recent rounds are whole
    cut = parse_user_prompt(shrink_user_prompt(text, earlier + 50))
    assert cut.earlier == [] and cut.omitted == 5
    assert "tokens truncated" in cut.issue and approx_tokens(cut.issue) >= ISSUE_FLOOR
    assert cut.recent == parts.recent
    # more: the older round's output is cut before the previous round is touched
    more = parse_user_prompt(shrink_user_prompt(text, earlier + approx_tokens(ISSUE)))
    (n6, a6, o6), (n7, a7, o7) = more.recent
    assert (n6, n7) == (6, 7) and "tokens truncated" in o6
    assert (a7, o7) == parts.recent[-1][1:]
    # nearly everything: the previous expert action is the last thing standing
    total = approx_tokens(text)
    last = parse_user_prompt(shrink_user_prompt(text, total - approx_tokens(parts.recent[-1][1]) - 120))
    assert last.recent[-1][1] == parts.recent[-1][1]
    assert "tokens truncated" in last.recent[-1][2] and "tokens truncated" in last.recent[0][1]
    # too much: None
    assert shrink_user_prompt(text, total + 10) is None
    assert shrink_user_prompt("not a step prompt", 1) is None


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from srl_agent.models import load_tokenizer
    from srl_agent.testing import build_tiny_model

    return load_tokenizer(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def test_fit_prompt_keeps_the_previous_action_where_the_middle_cut_lost_it(tok) -> None:
    from srl_agent.prompts import fit_prompt, prompt_token_count

    msgs = build_messages(ISSUE, _history(9), "bash_only", context_steps=2)
    previous = parse_user_prompt(msgs[1]["content"]).recent[-1][1]
    budget = prompt_token_count(tok, msgs) // 3
    fitted = fit_prompt(tok, msgs, budget)
    assert fitted is not None and prompt_token_count(tok, fitted) <= budget
    assert fitted[0] == msgs[0]  # the system message is whole
    assert previous in fitted[1]["content"]
    assert parse_user_prompt(fitted[1]["content"]) is not None  # still a step prompt


def test_fit_prompt_falls_back_to_the_middle_cut_when_the_parts_cannot_fit(tok) -> None:
    from srl_agent.prompts import fit_prompt, prompt_token_count

    msgs = build_messages(ISSUE, _history(9), "bash_only", context_steps=2)
    from srl_agent.prompts import TRUNCATION_MARK

    # room for one marker and a little text: less than the parts' headers and markers need
    marker = len(tok.encode(TRUNCATION_MARK.format(n=99999), add_special_tokens=False))
    budget = prompt_token_count(tok, [msgs[0], {"role": "user", "content": ""}]) + marker + 8
    assert shrink_user_prompt(msgs[1]["content"], prompt_token_count(tok, msgs) - budget) is None
    fitted = fit_prompt(tok, msgs, budget)
    assert fitted is not None and prompt_token_count(tok, fitted) <= budget
    assert "tokens cut to fit the prompt budget" in fitted[1]["content"]


def test_system_prompt_is_short() -> None:
    # the bash toolset's system message, in approximate tokens (it was ~290 before issue 16's fix)
    assert approx_tokens(system_prompt("bash_only")) < 190
