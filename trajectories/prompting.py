"""The chat messages the policy sees at one step: used for step-wise training data and by the agent loop.

`build_messages` is the only place a prompt is put together, so training and run time can't drift:

- **system**: the tools (rendered from their `ToolSpec`s) and the answer format: a private
  ``<think>...</think>``, then exactly one action in the canonical XML form, with an example.
- **user**: the problem statement; the actions taken before the context window, listed without their
  outputs; the last ``context_steps`` action/output rounds in full, each output cut to
  ``max_obs_tokens`` tokens with a visible ``[... N tokens truncated ...]`` marker in the middle
  (the head and the tail of an output are usually the informative parts).

Token counts use ``count_tokens`` when given, else `approx_tokens` (characters / 4, rounded up: the
usual ratio for English and code under BPE tokenizers; cheap, but only an estimate).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from trajectories.actions import format_answer, render_action
from trajectories.schema import Step, ToolCall
from trajectories.tools import ToolSpec, get_toolset

CountTokens = Callable[[str], int]
Truncate = Callable[[str, int], str]

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """Token count estimate without a tokenizer: characters / 4, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def truncation_marker(n_tokens: int) -> str:
    return f"[... {n_tokens} tokens truncated ...]"


def truncate_middle(text: str, max_tokens: int, count_tokens: CountTokens | None = None) -> str:
    """Keep the head and the tail of `text` within `max_tokens` tokens, marking what was cut.

    The cut points are placed proportionally in characters (one token count per text), so with a
    real tokenizer the kept part is within a few tokens of the budget; `stepwise` cuts at exact token
    offsets instead when it has a fast tokenizer.
    """
    count = count_tokens or approx_tokens
    n = count(text)
    if n <= max_tokens:
        return text
    keep_chars = len(text) * max_tokens // n
    head = keep_chars // 2
    tail = keep_chars - head
    return f"{text[:head]}\n{truncation_marker(n - max_tokens)}\n{text[len(text) - tail :] if tail else ''}"


_ANSWER_FORMAT = """\
# Answer format
Think inside <think>...</think>, then write exactly one tool call and nothing after it:
{example}
Values are plain text (no quotes or escaping); leave out optional parameters you don't need.{finish}"""

#: Tools that end a run, in order of preference, for the answer format's last sentence.
FINISH_TOOLS = ("submit", "finish")

_INTRO = "Resolve the issue in the repository with the tools below, one call per answer; each call's output follows."


def render_tool(spec: ToolSpec) -> str:
    """``## name``, its description, one ``- param (type, required|optional[, one of: ...]): what`` line
    per parameter (the importers' tests and `recorded_tools` read this shape)."""
    lines = [f"## {spec.name}", spec.description]
    for p in spec.params:
        tags = [p.type, "required" if p.required else "optional"]
        if p.enum:
            tags.append("one of: " + ", ".join(p.enum))
        lines.append(f"- {p.name} ({', '.join(tags)}): {p.description}")
    return "\n".join(lines)


def _example(tools: Sequence[ToolSpec]) -> str:
    names = {t.name for t in tools}
    if "bash" in names:
        call = ToolCall(name="bash", arguments={"command": "ls"})
    else:
        first = tools[0]
        call = ToolCall(name=first.name, arguments={p.name: "..." for p in first.params if p.required})
    return format_answer("I should look at the repository layout first.", call)


@lru_cache(maxsize=256)
def _system_prompt(tools: tuple[ToolSpec, ...]) -> str:
    tool_text = "\n".join(render_tool(t) for t in tools)
    names = {t.name for t in tools}
    finish = next((n for n in FINISH_TOOLS if n in names), None)
    answer = _ANSWER_FORMAT.format(
        example=_example(tools), finish=f" Call `{finish}` once the issue is resolved." if finish else ""
    )
    return f"{_INTRO}\n\n# Tools\n{tool_text}\n\n{answer}"


def system_prompt(toolset: str | Sequence[ToolSpec]) -> str:
    tools = get_toolset(toolset) if isinstance(toolset, str) else tuple(toolset)
    return _system_prompt(tools)


def _observation(text: str, max_obs_tokens: int | None, count_tokens, truncate) -> str:
    if max_obs_tokens is not None:
        text = (
            truncate(text, max_obs_tokens)
            if truncate
            else truncate_middle(text, max_obs_tokens, count_tokens)
        )
    text = text.rstrip()
    return text if text else "(no output)"


@dataclass
class UserPrompt:
    """The parts of a step's user message, in the order they are shown (and cut, see `shrink_user_prompt`).

    `earlier` are ``(step number, rendered action)`` pairs listed without outputs, `recent` are
    ``(step number, rendered action, output)`` rounds; `omitted` counts the earliest steps left out
    of the listing (to fit a budget).
    """

    issue: str
    earlier: list[tuple[int, str]] = field(default_factory=list)
    recent: list[tuple[int, str, str]] = field(default_factory=list)
    next_step: int = 1
    omitted: int = 0

    def render(self) -> str:
        parts = [f"<issue>\n{self.issue}\n</issue>"]
        if self.omitted or self.earlier:
            lines = [f"{_OMITTED_HEAD}{self.omitted}"] if self.omitted else []
            lines += [f"Step {n}:\n{a}" for n, a in self.earlier]
            parts.append(_EARLIER_HEAD + "\n".join(lines))
        if self.recent:
            rounds = [f"Step {n}:\n{a}\nOutput of step {n}:\n{o}" for n, a, o in self.recent]
            parts.append(_RECENT_HEAD + "\n\n".join(rounds))
        parts.append(_ask(self.next_step))
        return "\n\n".join(parts)


_EARLIER_HEAD = "Earlier actions (outputs omitted):\n"
_OMITTED_HEAD = "Steps left out to fit the prompt: 1-"
_RECENT_HEAD = "Most recent steps:\n"


def _ask(next_step: int) -> str:
    if next_step == 1:
        return "No actions have been taken yet. Think, then give the first action."
    return f"Think, then give the action for step {next_step}."


def user_parts(
    problem_statement: str,
    history: Sequence[Step],
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    truncate: Truncate | None = None,
    rendered: Sequence[str] | None = None,
) -> UserPrompt:
    """The parts of the user message for the step after `history` (see `user_prompt`)."""
    text = rendered if rendered is not None else [render_action(s.action) for s in history]
    k = len(history)
    first_full = max(0, k - context_steps) if context_steps > 0 else k
    return UserPrompt(
        issue=problem_statement.strip(),
        earlier=[(i + 1, text[i]) for i in range(first_full)],
        recent=[
            (i + 1, text[i], _observation(history[i].observation, max_obs_tokens, count_tokens, truncate))
            for i in range(first_full, k)
        ],
        next_step=k + 1,
    )


def user_prompt(
    problem_statement: str,
    history: Sequence[Step],
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    truncate: Truncate | None = None,
    rendered: Sequence[str] | None = None,
) -> str:
    """The issue; the actions before the last `context_steps` rounds, listed without their outputs; the
    last rounds in full (outputs cut to `max_obs_tokens`); the request for the next action.

    `rendered[i]`, when given, is ``render_action(history[i].action)`` computed once by the caller
    (step-wise expansion renders each action once, not once per later step)."""
    return user_parts(
        problem_statement,
        history,
        context_steps=context_steps,
        max_obs_tokens=max_obs_tokens,
        count_tokens=count_tokens,
        truncate=truncate,
        rendered=rendered,
    ).render()


_ASK = re.compile(r"\n\n(?:No actions have been taken yet\. Think, then give the first action\.|"
                  r"Think, then give the action for step (\d+)\.)\Z")  # fmt: skip


def parse_user_prompt(text: str) -> UserPrompt | None:
    """The parts of a user message `user_prompt` wrote (``parse_user_prompt(p.render()) == p``), or None
    for any other text. Used to cut a stored prompt part by part (`shrink_user_prompt`)."""
    ask = _ASK.search(text)
    if not text.startswith("<issue>\n") or ask is None:
        return None
    next_step = int(ask.group(1)) if ask.group(1) else 1
    body = text[: ask.start()]
    # the sections after the issue, found from the end (an issue may quote anything)
    recent: list[tuple[int, str, str]] = []
    earlier: list[tuple[int, str]] = []
    omitted = 0
    n = next_step - 1
    pos = body.rfind("\n\n" + _RECENT_HEAD)
    if pos >= 0 and n >= 1:
        section = body[pos + 2 + len(_RECENT_HEAD) :]
        # rounds are "Step i:\n...\nOutput of step i:\n..." with consecutive i ending at n
        ends = len(section)
        while n >= 1:
            head = f"Step {n}:\n"
            at = section.rfind("\n\n" + head, 0, ends)
            start = at + 2 if at >= 0 else (0 if section.startswith(head) else -1)
            if start < 0:
                break
            chunk = section[start + len(head) : ends]
            action, sep, out = chunk.partition(f"\nOutput of step {n}:\n")
            if not sep:
                return None
            recent.insert(0, (n, action, out))
            n -= 1
            if start == 0:
                break
            ends = at
        if not recent or not section.startswith(f"Step {recent[0][0]}:\n"):
            return None
        body = body[:pos]
    pos = body.rfind("\n\n" + _EARLIER_HEAD)
    if pos >= 0 and n >= 1:
        section = body[pos + 2 + len(_EARLIER_HEAD) :]
        ends = len(section)
        while n >= 1:
            head = f"Step {n}:\n"
            at = section.rfind("\n" + head, 0, ends)
            if at < 0 and section.startswith(head):
                earlier.insert(0, (n, section[len(head) : ends]))
                n -= 1
                ends = -1
                break
            if at < 0:
                break
            earlier.insert(0, (n, section[at + 1 + len(head) : ends]))
            n -= 1
            ends = at
        if ends >= 0:
            m = re.fullmatch(re.escape(_OMITTED_HEAD) + r"(\d+)", section[:ends])
            if m is None or int(m.group(1)) != n:
                return None
            omitted, n = n, 0
        body = body[:pos]
    if n != 0 or not body.endswith("\n</issue>"):
        return None
    return UserPrompt(
        issue=body[len("<issue>\n") : -len("\n</issue>")],
        earlier=earlier,
        recent=recent,
        next_step=next_step,
        omitted=omitted,
    )


#: Tokens each part keeps at least while later parts are still whole (see `shrink_user_prompt`).
ISSUE_FLOOR = 64
OUTPUT_FLOOR = 16
PREVIOUS_OUTPUT_FLOOR = 32


def shrink_user_prompt(text: str, n_tokens: int, count_tokens: CountTokens | None = None) -> str | None:
    """`text` (a `user_prompt`) made at least `n_tokens` tokens shorter, cutting in this order:

    1. the earlier actions (outputs omitted), oldest first, replaced by one line naming how many;
    2. the issue, down to `ISSUE_FLOOR` tokens (middle cut with a marker);
    3. the outputs of the older recent rounds, down to `OUTPUT_FLOOR`;
    4. the actions of the older recent rounds, down to `OUTPUT_FLOOR`;
    5. the previous step's output, down to `PREVIOUS_OUTPUT_FLOOR`;
    6. the issue, then the previous step's output, to nothing but the marker;
    7. the previous action itself (middle cut) - the last thing given up.

    Returns None when `text` is not a `user_prompt` or cannot lose that many tokens. Token counts are
    per part (`count_tokens`, else `approx_tokens`), so the whole may differ by a few tokens: callers
    that must fit exactly re-count and ask again (`srl_agent.prompts.fit_prompt`).
    """
    parts = parse_user_prompt(text)
    if parts is None:
        return None
    count = count_tokens or approx_tokens
    need = n_tokens
    if need <= 0:
        return text
    # 1. earlier actions, oldest first
    while need > 0 and parts.earlier:
        n, action = parts.earlier.pop(0)
        need -= count(f"Step {n}:\n{action}\n")
        parts.omitted = n
    if parts.omitted:
        need += count(f"{_OMITTED_HEAD}{parts.omitted}\n")

    def cut(value: str, floor: int) -> str:
        """`value` cut in the middle by what is still needed, keeping at least `floor` tokens of it
        (the marker costs tokens too: a cut that would not save any is not made)."""
        nonlocal need
        if need <= 0:
            return value
        have = count(value)
        extra = count(truncation_marker(have)) + 2
        best, saved_best = value, 0
        for _ in range(3):
            keep = max(floor, have - need - extra)
            if keep >= have:
                break
            new = truncate_middle(value, keep, count)
            saved = have - count(new)
            if saved > saved_best:
                best, saved_best = new, saved
            if saved >= need or keep == floor:
                break
            extra += need - saved
        need -= saved_best
        return best

    parts.issue = cut(parts.issue, ISSUE_FLOOR)
    older, last = parts.recent[:-1], parts.recent[-1:]
    older = [(n, a, cut(o, OUTPUT_FLOOR)) for n, a, o in older]
    older = [(n, cut(a, OUTPUT_FLOOR), o) for n, a, o in older]
    if last:
        n, a, o = last[0]
        o = cut(o, PREVIOUS_OUTPUT_FLOOR)
        parts.issue = cut(parts.issue, 0)
        o = cut(o, 0)
        a = cut(a, 0)
        last = [(n, a, o)]
    else:
        parts.issue = cut(parts.issue, 0)
    parts.recent = older + last
    if need > 0:
        return None
    return parts.render()


def build_messages(
    problem_statement: str,
    history: Sequence[Step],
    toolset: str | Sequence[ToolSpec],
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    truncate: Truncate | None = None,
    rendered: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """The system + user messages for the step after `history`.

    `toolset` is a toolset name (``"bash_only"``, ``"editor"``, ``"swe_agent"``, ...) or the tool specs.
    `truncate(text, max_tokens)`, when given, replaces the default cut (`truncate_middle`).
    """
    return [
        {"role": "system", "content": system_prompt(toolset)},
        {
            "role": "user",
            "content": user_prompt(
                problem_statement,
                history,
                context_steps=context_steps,
                max_obs_tokens=max_obs_tokens,
                count_tokens=count_tokens,
                truncate=truncate,
                rendered=rendered,
            ),
        },
    ]


# -- the append-only chat (RLVR episodes): the same first prompt, then one user message per turn ----------


def observation_message(text: str, max_obs_tokens: int | None) -> dict[str, str]:
    """The user message that answers a tool call in the append-only chat: its output, cut to
    `max_obs_tokens` (middle cut with a marker)."""
    body = truncate_middle(text, max_obs_tokens) if max_obs_tokens else text
    return {"role": "user", "content": f"Observation:\n{body}\n\nThink, then give the next action."}


def format_error_message(error: str) -> dict[str, str]:
    """The user message that answers a malformed answer in the append-only chat."""
    return {
        "role": "user",
        "content": f"Your answer could not be parsed: {error}\n\nThink, then give exactly one action.",
    }
