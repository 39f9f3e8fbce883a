"""From a step's context to the model's input text.

The messages themselves (system prompt from the tool specs, user message with the problem and the
last expert rounds) come from `trajectories.prompting.build_messages`; this module only adds the
tokenizer side: counting tokens, rendering with the model's chat template, and fitting a prompt into
a token budget (TRL 1.16 has no ``max_prompt_length``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trajectories.schema import Step

Messages = list[dict[str, Any]]

TRUNCATION_MARK = "\n[... {n} tokens cut to fit the prompt budget ...]\n"


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    """``count_tokens(text)`` for `build_messages` (observation budgets in model tokens)."""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count


def step_messages(
    problem_statement: str,
    history: Sequence[Step],
    toolset: Any,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
) -> Messages:
    """The chat messages of one step (the agent loop and the data builder share this)."""
    from trajectories.prompting import build_messages

    return build_messages(
        problem_statement,
        list(history),
        toolset,
        context_steps=context_steps,
        max_obs_tokens=max_obs_tokens,
        count_tokens=token_counter(tokenizer) if tokenizer is not None else None,
    )


THINK_PREFILL = "<think>\n"
"""What every generated answer starts with: the assistant turn is opened inside the thought (as
DeepSeek-R1's chat template does), so the model continues a thought instead of choosing whether to
write one. Measured on the demo (issue 16): after the 10-step SFT warm-up, greedy answers without it
were mostly well-formed actions with no ``<think>`` block (format errors), which left SRL no group with
reward spread. Policies return the prefill as part of the answer, so answers keep the documented form."""


def answer_prefill(prefill: str | None) -> str:
    """`prefill`, or `THINK_PREFILL` when None (``""`` means none): the policies' and trainers' default."""
    return THINK_PREFILL if prefill is None else prefill


def with_prefill(prompt_text: str, prefill: str) -> str:
    """`prompt_text` followed by `prefill`, unless the chat template already ends with it."""
    return prompt_text if not prefill or prompt_text.endswith(prefill) else prompt_text + prefill


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: Messages, prefill: str = "") -> str:
    """The prompt text the model continues: its chat template with the assistant turn opened (and,
    with `prefill`, the answer begun: see `THINK_PREFILL`)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return with_prefill(text, prefill)


def prompt_token_count(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> int:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def _cut_middle(tokenizer: PreTrainedTokenizerBase, text: str, n_cut: int) -> str:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if n_cut >= len(ids):
        return TRUNCATION_MARK.format(n=len(ids))
    keep_head = (len(ids) - n_cut) // 2
    keep_tail = len(ids) - n_cut - keep_head
    head = tokenizer.decode(ids[:keep_head])
    tail = tokenizer.decode(ids[len(ids) - keep_tail :]) if keep_tail else ""
    return head + TRUNCATION_MARK.format(n=n_cut) + tail


def fit_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: Messages, max_tokens: int, *, max_rounds: int = 8
) -> Messages | None:
    """`messages` cut to at most `max_tokens` prompt tokens, or None when it cannot fit.

    The system message (tools, answer format) is kept whole. A step prompt's user message
    (`trajectories.prompting.user_prompt`) is cut part by part, least useful first
    (`trajectories.prompting.shrink_user_prompt`: earlier actions, the issue, older rounds; the
    previous expert action last). Any other prompt loses the middle of its longest non-system message,
    replaced by a marker naming how many tokens were cut.
    """
    from trajectories.prompting import shrink_user_prompt

    msgs = [dict(m) for m in messages]
    total = prompt_token_count(tokenizer, msgs)
    if total <= max_tokens:
        return msgs
    candidates = [
        i for i, m in enumerate(msgs) if m.get("role") != "system" and isinstance(m.get("content"), str)
    ]
    if not candidates:
        return None
    count = token_counter(tokenizer)
    users = [i for i in candidates if msgs[i].get("role") == "user"]
    if users and shrink_user_prompt(msgs[users[-1]]["content"], 0, count) is not None:
        target, original = users[-1], msgs[users[-1]]["content"]
        need = total - max_tokens
        for _ in range(max_rounds):
            cut = shrink_user_prompt(original, need, count)
            if cut is None:
                break
            step = [*msgs[:target], {**msgs[target], "content": cut}, *msgs[target + 1 :]]
            over = prompt_token_count(tokenizer, step) - max_tokens
            if over <= 0:
                return step
            need += over + 2
        # the parts' floors and markers do not fit: the middle cut below still can
    target = max(candidates, key=lambda i: len(msgs[i]["content"]))
    original = msgs[target]["content"]
    n_original = len(tokenizer.encode(original, add_special_tokens=False))
    n_cut = 0
    for _ in range(max_rounds):
        excess = prompt_token_count(tokenizer, msgs) - max_tokens
        if excess <= 0:
            return msgs
        if n_cut >= n_original:
            return None
        marker = len(tokenizer.encode(TRUNCATION_MARK.format(n=n_original), add_special_tokens=False))
        n_cut = min(n_original, n_cut + excess + (marker if n_cut == 0 else 2))
        msgs[target] = {**msgs[target], "content": _cut_middle(tokenizer, original, n_cut)}
    return msgs if prompt_token_count(tokenizer, msgs) <= max_tokens else None
