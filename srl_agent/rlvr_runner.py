"""RLVR rollouts: whole agent episodes in sandboxes, as token sequences the GRPO trainer can learn from.

An RLVR episode is the one agent loop (`srl_agent.agent.run_loop`) with the append-only chat format
(`AppendOnlyChat`): the first prompt (system + task), then for each turn the policy's answer (trained on:
mask 1) and the observation as the next user message plus the chat template's glue (context only: mask 0).
The generation wrapper `ChatTokens` is the loop's policy: it renders the conversation with the chat
template, checks that it only grew, and records the token ids, the env mask and the sampling logprobs.
Because the conversation is append-only, the tokens the trainer scores are exactly the tokens the policy
saw when it generated. The outcome (tests pass -> 1.0, fail -> 0.0, malformed answer or tampering -> -1.0)
is the reward of the whole episode.

`make_episode_runner` plugs this into `srl_agent.train.rlvr.run_rlvr` (TRL's ``rollout_func`` seam).
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from envs.spec import TaskSpec
from srl_agent.agent import (
    AgentConfig,
    AppendOnlyChat,
    EpisodeResult,
    PolicyError,
    TokenLimit,
    graded_result,
    open_task_sandbox,
    run_loop,
)
from srl_agent.policy import STOP
from trajectories.prompting import observation_message  # noqa: F401  (re-exported: its earlier home)
from trajectories.schema import Trajectory

Generate = Callable[[list[int]], tuple[list[int], list[float] | None]]
"""Token ids of the conversation so far -> token ids of the policy's next answer, and their sampling
logprobs when the backend reports them (vLLM; the trainer then corrects for the engine's mismatch)."""


class TemplateNotAppendOnly(PolicyError):
    """The tokenizer's chat template rewrites earlier turns: RLVR cannot score what the policy saw."""


class ChatTokens:
    """A `Policy` over a token-level `Generate` for one append-only chat episode.

    Each call renders the conversation with the chat template; the text added since the last answer (the
    observation and the template's glue) is appended with mask 0, the new answer's tokens with mask 1 and
    their logprobs. Once ``max_completion_tokens`` tokens follow the prompt, the next call raises
    `TokenLimit` (the loop's ``token_limit`` exit). Sampling settings live in `generate` itself."""

    def __init__(
        self, generate: Generate, tokenizer: Any, max_completion_tokens: int, prefill: str | None = None
    ) -> None:
        from srl_agent.prompts import answer_prefill

        self.prefill = answer_prefill(prefill)
        self._generate = generate
        self.tokenizer = tokenizer
        self.max_completion_tokens = max_completion_tokens
        self.prompt_ids: list[int] = []
        self.completion_ids: list[int] = []
        self.env_mask: list[int] = []
        self.logprobs: list[float | None] | None = []  # None as soon as one answer comes without them
        self._seen: str | None = None

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, batch: list[list[dict[str, Any]]], **sampling: Any) -> list[str]:
        (messages,) = batch
        from srl_agent.prompts import render_prompt

        # the prefill is the environment's text (mask 0), part of the answer the loop parses
        text = render_prompt(self.tokenizer, messages, self.prefill)
        if self._seen is None:
            self.prompt_ids = self._ids(text)
        else:
            if not text.startswith(self._seen):
                raise TemplateNotAppendOnly(
                    "the chat template is not append-only for this tokenizer; RLVR needs one that is"
                )
            glue = self._ids(text[len(self._seen) :])
            self.completion_ids += glue
            self.env_mask += [0] * len(glue)
            if self.logprobs is not None:
                self.logprobs += [None] * len(glue)  # not sampled: no correction for these
        if len(self.completion_ids) >= self.max_completion_tokens:
            raise TokenLimit()
        new, new_logprobs = self._generate(self.prompt_ids + self.completion_ids)
        answer = self.prefill + self.tokenizer.decode(new, skip_special_tokens=True)
        if STOP in answer:  # keep the text up to the end of the first action, as every backend does
            answer = answer[: answer.index(STOP) + len(STOP)]
        self.completion_ids += new
        self.env_mask += [1] * len(new)
        if self.logprobs is not None and new_logprobs is not None:
            self.logprobs += new_logprobs
        else:
            self.logprobs = None
        self._seen = text + answer[len(self.prefill) :]
        return [answer]

    def tokens(self) -> dict[str, Any]:
        """The episode's token view for `EpisodeResult`, cut to the completion budget."""
        cut = self.max_completion_tokens
        return {
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids[:cut],
            "env_mask": self.env_mask[:cut],
            "logprobs": self.logprobs[:cut] if self.logprobs else None,
        }


def play_chat_episode(
    spec: TaskSpec,
    generate: Generate,
    tokenizer: Any,
    *,
    toolset: str = "bash_only",
    max_turns: int = 30,
    max_completion_tokens: int = 4096,
    max_obs_tokens: int | None = 512,
    step_timeout: float = 120.0,
    timeout: float = 600.0,
    image: str | None = None,
    client: Any = None,
    out_dir: Path | None = None,
    grade: bool = True,
    prefill: str | None = None,
) -> EpisodeResult:
    """Play one append-only chat episode of `generate` on `spec` (the first malformed answer ends it);
    grade it unless it ended on a format error; return tokens and outcome."""
    from harness.images import ensure_instance_image

    image = image or ensure_instance_image(spec, client=client)
    started = time.monotonic()
    cfg = AgentConfig(toolset=toolset, max_steps=max_turns, max_format_errors=1, time_limit=timeout,
                      step_timeout=step_timeout, max_obs_tokens=max_obs_tokens, grade=grade)  # fmt: skip
    policy = ChatTokens(generate, tokenizer, max_completion_tokens, prefill=prefill)
    traj = Trajectory(instance_id=spec.instance_id, source_format="srl", problem_statement=spec.problem_statement,
                      metadata={"toolset": toolset, "mode": "rlvr-chat"})  # fmt: skip
    # episodes of one task run at once in the pool: every file an episode writes carries its own tag
    tag = f"{int(time.time() * 1000)}-{secrets.token_hex(3)}"
    path = out_dir / f"{spec.instance_id}-{tag}.srl.jsonl" if out_dir is not None else None
    with open_task_sandbox(spec, image, step_timeout, kind="rlvr", client=client) as sb:
        end = run_loop(sb, policy, AppendOnlyChat(toolset, max_obs_tokens), traj, cfg, save_to=path)
    return graded_result(
        spec, traj, end, grade_it=grade and end.status not in ("format_error", "error"), model="rlvr",
        client=client, eval_dir=out_dir / "eval" / tag if out_dir is not None else None, path=path,
        started=started, **policy.tokens(),
    )  # fmt: skip


def _without_trailing_specials(ids: list[int], tokenizer: Any) -> list[int]:
    """`ids` without the end-of-turn / padding tokens a backend appends after the answer."""
    specials = set(tokenizer.all_special_ids)
    end = len(ids)
    while end and ids[end - 1] in specials:
        end -= 1
    return ids[:end]


def model_generate(
    model: Any,
    tokenizer: Any,
    *,
    temperature: float,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 256,
) -> Generate:
    """A `Generate` over a transformers model: sample one answer, stop at the end of the first action."""

    def gen(ids: list[int]) -> list[int]:
        import torch

        inp = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            out = model.generate(
                inp,
                attention_mask=torch.ones_like(inp),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p,
                top_k=top_k,
                max_new_tokens=max_new_tokens,
                stop_strings=[STOP],
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
            )
        return _without_trailing_specials(out[0, len(ids) :].tolist(), tokenizer), None

    return gen


def vllm_generate(
    generation: Any,
    tokenizer: Any,
    *,
    temperature: float,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 256,
    lock: threading.Lock | None = None,
) -> Generate:
    """A `Generate` over the trainer's colocated vLLM engine (``trainer.vllm_generation``; TRL pushes the
    current weights into it before each rollout): one answer, stopped at the end of the first action, with
    the sampled tokens' logprobs. The offline engine serves one call at a time: episodes share `lock`."""
    from vllm import SamplingParams

    if generation.mode != "colocate":
        raise ValueError("RLVR rollouts through vLLM need vllm_mode colocate (server mode is not supported)")
    params = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k if top_k > 0 else -1,
        max_tokens=max_new_tokens,
        stop=[STOP],
        include_stop_str_in_output=True,
        logprobs=0,
    )
    lock = lock or threading.Lock()

    def gen(ids: list[int]) -> tuple[list[int], list[float] | None]:
        with lock:
            out = generation.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0].outputs[0]
        sampled = list(out.token_ids)
        logprobs = [step[token].logprob for token, step in zip(sampled, out.logprobs or [], strict=False)]
        new = _without_trailing_specials(sampled, tokenizer)
        return new, logprobs[: len(new)] if len(logprobs) == len(sampled) else None

    return gen


def make_episode_runner(
    specs: dict[str, TaskSpec],
    *,
    toolset: str,
    max_turns: int,
    max_completion_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_new_tokens: int = 256,
    episode_timeout: float = 600.0,
    out_dir: Path | None = None,
    client: Any = None,
    max_parallel: int = 2,
    prefill: str | None = None,
):
    """An `EpisodeRunner` for `run_rlvr`: one sandboxed episode per task row, with the trainer's model
    (through its colocated vLLM engine when the trainer has ``use_vllm``).

    Episodes run in a bounded pool of `max_parallel` sandboxes (threads: the model's forward passes and
    the sandboxes' commands release the GIL); results keep the order of `tasks`."""
    from concurrent.futures import ThreadPoolExecutor

    def runner(tasks: list[dict[str, Any]], trainer: Any) -> list[EpisodeResult]:
        model = (
            trainer.accelerator.unwrap_model(trainer.model)
            if hasattr(trainer, "accelerator")
            else trainer.model
        )
        shared_tok = trainer.processing_class
        engine_lock = threading.Lock()

        def play(row: dict[str, Any]) -> EpisodeResult:
            tok = copy.deepcopy(shared_tok)  # fast tokenizers are not safe to share between threads
            if getattr(trainer, "use_vllm", False):
                gen = vllm_generate(
                    trainer.vllm_generation,
                    tok,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    max_new_tokens=max_new_tokens,
                    lock=engine_lock,
                )
            else:
                gen = model_generate(
                    model,
                    tok,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    max_new_tokens=max_new_tokens,
                )
            return play_chat_episode(
                specs[row["instance_id"]],
                gen,
                tok,
                toolset=toolset,
                max_turns=max_turns,
                max_completion_tokens=max_completion_tokens,
                timeout=episode_timeout,
                client=client,
                out_dir=out_dir,
                prefill=prefill,
            )

        merged = trainer.generation_weights() if hasattr(trainer, "generation_weights") else nullcontext()
        with merged, ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(tasks)))) as pool:
            return list(pool.map(play, tasks))

    return runner
