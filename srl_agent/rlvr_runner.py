"""RLVR rollouts: whole agent episodes in sandboxes, as token sequences the GRPO trainer can learn from.

An RLVR episode is a multi-turn chat that only grows: the first prompt (system + task), then for each
turn the policy's answer (trained on: mask 1) and the observation as the next user message plus the
chat template's glue (context only: mask 0). Because the conversation is append-only, the tokens the
trainer scores are exactly the tokens the policy saw when it generated. The outcome (tests pass ->
1.0, fail -> 0.0, malformed answer -> -1.0) is the reward of the whole episode.

`make_episode_runner` plugs this into `srl_agent.train.rlvr.run_rlvr` (TRL's ``rollout_func`` seam).
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs.spec import TaskSpec
from harness.evaluate import outcome_of, run_instance, write_outcome
from harness.grading import grade as grade_run
from harness.images import ensure_instance_image
from harness.tools.runtime import ToolRuntime
from srl_agent.agent import TESTBED, task_sandbox
from srl_agent.policy import STOP
from srl_agent.train.rlvr import EpisodeResult
from trajectories.actions import ActionParseError, parse_answer
from trajectories.prompting import build_messages, truncate_middle
from trajectories.schema import Step, Trajectory

Generate = Callable[[list[int]], tuple[list[int], list[float] | None]]
"""Token ids of the conversation so far -> token ids of the policy's next answer, and their sampling
logprobs when the backend reports them (vLLM; the trainer then corrects for the engine's mismatch)."""


def observation_message(text: str, max_obs_tokens: int | None) -> dict[str, str]:
    body = truncate_middle(text, max_obs_tokens) if max_obs_tokens else text
    return {"role": "user", "content": f"Observation:\n{body}\n\nThink, then give the next action."}


def _template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


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
) -> EpisodeResult:
    """Play one append-only chat episode of `generate` on `spec`; grade it; return tokens and outcome."""
    image = image or ensure_instance_image(spec, client=client)
    messages = build_messages(spec.problem_statement, [], toolset, context_steps=0)
    text = _template(tokenizer, messages, True)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion: list[int] = []
    mask: list[int] = []
    logprobs: list[float | None] | None = []  # None as soon as one answer comes without them
    traj = Trajectory(instance_id=spec.instance_id, source_format="srl", problem_statement=spec.problem_statement,
                      metadata={"toolset": toolset, "mode": "rlvr-chat"})
    format_error = False
    patch = ""
    started = time.monotonic()
    # episodes of one task run at once in the pool: every file an episode writes carries its own tag
    tag = f"{int(time.time() * 1000)}-{secrets.token_hex(3)}"
    with task_sandbox(spec, image, step_timeout, client) as sb:
        tools = ToolRuntime(sb)
        submitted = False
        for _turn in range(max_turns):
            if time.monotonic() - started > timeout or len(completion) >= max_completion_tokens:
                break
            new, new_logprobs = generate(prompt_ids + completion)
            answer = tokenizer.decode(new, skip_special_tokens=True)
            if STOP in answer:  # keep the tokens up to the end of the first action, as every backend does
                answer = answer[: answer.index(STOP) + len(STOP)]
            completion += new
            mask += [1] * len(new)
            if logprobs is not None and new_logprobs is not None:
                logprobs += new_logprobs
            else:
                logprobs = None
            try:
                thought, call = parse_answer(answer)
            except ActionParseError:
                format_error = True
                break
            obs = tools.execute(call)
            traj.steps.append(Step(thought=thought, action=call, observation=obs.text, execution_time=obs.duration))
            if obs.submitted:
                patch, submitted = obs.patch or "", True
                break
            seen = text + answer
            messages = messages + [{"role": "assistant", "content": answer},
                                   observation_message(obs.text, max_obs_tokens)]
            text = _template(tokenizer, messages, True)
            if not text.startswith(seen):
                raise RuntimeError("the chat template is not append-only for this tokenizer; RLVR needs one that is")
            glue = tokenizer(text[len(seen):], add_special_tokens=False)["input_ids"]
            completion += glue
            mask += [0] * len(glue)
            if logprobs is not None:
                logprobs += [None] * len(glue)  # not sampled: no correction for these
        if not submitted:
            patch = sb.diff(TESTBED)
    resolved: bool | None = None
    tamper: list[str] = []
    if grade and not format_error:
        run = run_instance(spec, patch or None, model="rlvr", client=client)
        report = grade_run(spec, run)
        if out_dir:
            write_outcome(outcome_of(spec, run, report), out_dir / "eval" / tag)
        resolved, tamper = report.resolved, [str(e) for e in report.tamper]
        traj.metadata["grade"] = {"status": report.status, "tamper": tamper}
    traj.final_patch, traj.resolved = patch, resolved
    traj.exit_status = "format_error" if format_error else ("submitted" if patch else "no_patch")
    path = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{spec.instance_id}-{tag}.srl.jsonl"
        path.write_text(traj.model_dump_json() + "\n")
    cut = max_completion_tokens
    return EpisodeResult(prompt_ids=prompt_ids, completion_ids=completion[:cut], env_mask=mask[:cut],
                         logprobs=logprobs[:cut] if logprobs else None,
                         resolved=resolved, format_error=format_error, tamper=tamper,
                         trajectory_path=str(path) if path else None)


def _without_trailing_specials(ids: list[int], tokenizer: Any) -> list[int]:
    """`ids` without the end-of-turn / padding tokens a backend appends after the answer."""
    specials = set(tokenizer.all_special_ids)
    end = len(ids)
    while end and ids[end - 1] in specials:
        end -= 1
    return ids[:end]


def model_generate(model: Any, tokenizer: Any, *, temperature: float, top_p: float = 1.0, top_k: int = 0,
                   max_new_tokens: int = 256) -> Generate:
    """A `Generate` over a transformers model: sample one answer, stop at the end of the first action."""

    def gen(ids: list[int]) -> list[int]:
        import torch

        inp = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=temperature > 0,
                                 temperature=temperature if temperature > 0 else None, top_p=top_p,
                                 top_k=top_k, max_new_tokens=max_new_tokens, stop_strings=[STOP],
                                 tokenizer=tokenizer, pad_token_id=tokenizer.pad_token_id)
        return _without_trailing_specials(out[0, len(ids):].tolist(), tokenizer), None

    return gen


def vllm_generate(generation: Any, tokenizer: Any, *, temperature: float, top_p: float = 1.0, top_k: int = 0,
                  max_new_tokens: int = 256, lock: threading.Lock | None = None) -> Generate:
    """A `Generate` over the trainer's colocated vLLM engine (``trainer.vllm_generation``; TRL pushes the
    current weights into it before each rollout): one answer, stopped at the end of the first action, with
    the sampled tokens' logprobs. The offline engine serves one call at a time: episodes share `lock`."""
    from vllm import SamplingParams

    if generation.mode != "colocate":
        raise ValueError("RLVR rollouts through vLLM need vllm_mode colocate (server mode is not supported)")
    params = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else -1,
                            max_tokens=max_new_tokens, stop=[STOP], include_stop_str_in_output=True, logprobs=0)
    lock = lock or threading.Lock()

    def gen(ids: list[int]) -> tuple[list[int], list[float] | None]:
        with lock:
            out = generation.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0].outputs[0]
        sampled = list(out.token_ids)
        logprobs = [step[token].logprob for token, step in zip(sampled, out.logprobs or [], strict=False)]
        new = _without_trailing_specials(sampled, tokenizer)
        return new, logprobs[: len(new)] if len(logprobs) == len(sampled) else None

    return gen


def make_episode_runner(specs: dict[str, TaskSpec], *, toolset: str, max_turns: int, max_completion_tokens: int,
                        temperature: float, top_p: float, top_k: int, max_new_tokens: int = 256,
                        episode_timeout: float = 600.0, out_dir: Path | None = None, client: Any = None,
                        max_parallel: int = 2):
    """An `EpisodeRunner` for `run_rlvr`: one sandboxed episode per task row, with the trainer's model
    (through its colocated vLLM engine when the trainer has ``use_vllm``).

    Episodes run in a bounded pool of `max_parallel` sandboxes (threads: the model's forward passes and
    the sandboxes' commands release the GIL); results keep the order of `tasks`."""
    from concurrent.futures import ThreadPoolExecutor

    def runner(tasks: list[dict[str, Any]], trainer: Any) -> list[EpisodeResult]:
        model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
        shared_tok = trainer.processing_class
        engine_lock = threading.Lock()

        def play(row: dict[str, Any]) -> EpisodeResult:
            tok = copy.deepcopy(shared_tok)  # fast tokenizers are not safe to share between threads
            if getattr(trainer, "use_vllm", False):
                gen = vllm_generate(trainer.vllm_generation, tok, temperature=temperature, top_p=top_p,
                                    top_k=top_k, max_new_tokens=max_new_tokens, lock=engine_lock)
            else:
                gen = model_generate(model, tok, temperature=temperature, top_p=top_p, top_k=top_k,
                                     max_new_tokens=max_new_tokens)
            return play_chat_episode(specs[row["instance_id"]], gen, tok, toolset=toolset, max_turns=max_turns,
                                     max_completion_tokens=max_completion_tokens, timeout=episode_timeout,
                                     client=client, out_dir=out_dir)

        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(tasks)))) as pool:
            return list(pool.map(play, tasks))

    return runner
