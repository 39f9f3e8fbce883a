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

from collections.abc import Callable, Sequence
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
Every answer has two parts. First think privately inside <think>...</think>. Then write exactly one tool \
call, and nothing after it, in this form:

<function=TOOL_NAME>
<parameter=PARAMETER_NAME>
value
</parameter>
</function>

Write values as plain text, without quotes or escaping; integers and lists as text (12, [1, 20]). Leave \
out optional parameters you don't need.{finish}"""

#: Tools that end a run, in order of preference, for the answer format's last sentence.
FINISH_TOOLS = ("submit", "finish")

_INTRO = (
    "You are a software engineer resolving an issue in a code repository. You work through tools, one "
    "call at a time, and see each call's output before you make the next."
)


def render_tool(spec: ToolSpec) -> str:
    lines = [f"## {spec.name}", spec.description]
    if spec.params:
        lines.append("Parameters:")
        for p in spec.params:
            tags = [p.type, "required" if p.required else "optional"]
            if p.enum:
                tags.append("one of: " + ", ".join(p.enum))
            lines.append(f"- {p.name} ({', '.join(tags)}): {p.description}")
    else:
        lines.append("No parameters.")
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
    tool_text = "\n\n".join(render_tool(t) for t in tools)
    names = {t.name for t in tools}
    finish = next((n for n in FINISH_TOOLS if n in names), None)
    answer = _ANSWER_FORMAT.format(finish=f" Call `{finish}` once the issue is resolved." if finish else "")
    return f"{_INTRO}\n\n# Tools\n{tool_text}\n\n{answer}\n\nExample answer:\n{_example(tools)}"


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
    """`rendered[i]`, when given, is ``render_action(history[i].action)`` computed once by the caller
    (step-wise expansion renders each action once, not once per later step)."""
    text = rendered if rendered is not None else [render_action(s.action) for s in history]
    parts = [f"<issue>\n{problem_statement.strip()}\n</issue>"]
    k = len(history)
    first_full = max(0, k - context_steps) if context_steps > 0 else k
    if first_full > 0:
        listed = "\n".join(f"Step {i + 1}:\n{text[i]}" for i in range(first_full))
        parts.append(f"Earlier actions (outputs omitted):\n{listed}")
    if first_full < k:
        rounds = []
        for i in range(first_full, k):
            s = history[i]
            out = _observation(s.observation, max_obs_tokens, count_tokens, truncate)
            rounds.append(f"Step {i + 1}:\n{text[i]}\nOutput of step {i + 1}:\n{out}")
        parts.append("Most recent steps:\n" + "\n\n".join(rounds))
    if k == 0:
        parts.append("No actions have been taken yet. Think, then give the first action.")
    else:
        parts.append(f"Think, then give the action for step {k + 1}.")
    return "\n\n".join(parts)


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
