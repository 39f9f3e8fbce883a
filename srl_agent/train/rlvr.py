"""`srl train rlvr`: GRPO where each rollout is a whole agent episode in a sandbox (after SRL).

The reward of a rollout is `trajectories.scoring.outcome_reward(resolved, format_error)`: 1 when the
episode's final patch passes the task's tests, 0 when not, -1 on a format error. The episodes come
from the agent loop (`srl_agent.agent.run_loop` with the append-only chat format, played by
`srl_agent.rlvr_runner`), which plugs in here as an `EpisodeRunner`:

    def runner(tasks: list[dict], trainer) -> list[EpisodeResult]: ...

``tasks`` are the data set rows of this process's share of the batch (each task already repeated
``num_generations`` times, consecutively); the runner plays one episode per row with the trainer's
current model (``trainer.model``, or vLLM through ``trainer.vllm_generation``) and returns, per
episode, the token ids of the first prompt, the ids of everything after it (policy turns *and*
observations), an ``env_mask`` marking policy tokens 1 and observation/template tokens 0, and the
outcome. TRL's ``rollout_func`` + ``env_mask`` seam then trains on the policy tokens only; dynamic
sampling drops task groups where every episode got the same outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from srl_agent.agent import EpisodeResult
from srl_agent.rlvr_runner import make_episode_runner
from srl_agent.train.common import (
    TrainError,
    check_resume,
    console,
    load_policy_model,
    micro_batches,
    peft_config,
    progress_callback,
    quiet_default_printer,
    resolve_device,
    token_budget_callback,
    train_and_save,
    training_args_common,
)
from srl_agent.train.config import RLVRTrainConfig, dump_config


class EpisodeRunner(Protocol):
    def __call__(self, tasks: list[dict[str, Any]], trainer: Any) -> list[EpisodeResult]: ...


def make_rollout_func(runner: EpisodeRunner) -> Any:
    """Adapt an `EpisodeRunner` to TRL's ``rollout_func(prompts, trainer) -> dict``."""

    tamper_rates: list[float] = []

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        tasks = trainer.current_inputs
        if len(tasks) != len(prompts):
            raise RuntimeError(f"rollout got {len(prompts)} prompts for {len(tasks)} task rows")
        episodes = runner(tasks, trainer)
        if len(episodes) != len(tasks):
            raise RuntimeError(f"episode runner returned {len(episodes)} episodes for {len(tasks)} tasks")
        logprobs = [e.logprobs for e in episodes]
        _log_tamper(episodes, trainer, tamper_rates)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": logprobs if all(lp is not None for lp in logprobs) else None,
            "env_mask": [e.env_mask for e in episodes],
            "episode": [
                {"resolved": e.resolved, "format_error": e.format_error, "tamper": bool(e.tamper)}
                for e in episodes
            ],
        }

    return rollout


def _log_tamper(episodes: list[EpisodeResult], trainer: Any, history: list[float]) -> None:
    """``rewards/tamper_rate`` in the trainer's logged metrics (TensorBoard), each tampering episode's
    evidence on the console, and a warning when the rate rises above every recent batch's."""
    rate = sum(bool(e.tamper) for e in episodes) / max(1, len(episodes))
    metrics = getattr(trainer, "_metrics", None)
    if isinstance(metrics, dict) and "train" in metrics:
        metrics["train"]["rewards/tamper_rate"].append(rate)
    for e in episodes:
        if e.tamper:
            console.print(f"[yellow]tamper[/yellow] {e.trajectory_path or ''}: {e.tamper[0]}")
    if rate > 0 and rate > max(history[-5:], default=0.0):
        console.print(
            f"[yellow]warning:[/yellow] the tamper rate rose to {rate:.0%} of this batch's episodes "
            "(patches that try to forge their grade get the format-error reward, -1)"
        )
    history.append(rate)


def grpo_args(config: RLVRTrainConfig, device: str) -> Any:
    from trl import GRPOConfig

    rows, passes = micro_batches(
        config.batch_size * config.num_generations,
        config.micro_batch_size,
        "batch_size x num_generations",
        device,
    )
    return GRPOConfig(
        **training_args_common(config, device, passes),
        per_device_train_batch_size=rows,
        steps_per_generation=passes * config.gradient_accumulation_steps,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        beta=config.beta,
        use_vllm=config.use_vllm,
        scale_rewards="group",
        remove_unused_columns=False,
    )


def default_episodes(config: RLVRTrainConfig) -> tuple[EpisodeRunner, list[dict[str, Any]]]:
    """The agent loop's episodes over `config.tasks` (a task source; default: the bundled pack)."""
    from envs.sources import load_tasks
    from trajectories.prompting import build_messages

    loaded = load_tasks(config.tasks, repos=config.repos)
    for err in loaded.errors:
        console.print(f"[yellow]skipped[/] {err}")
    specs = {spec.instance_id: spec for spec in loaded.tasks}
    if config.instance_ids:
        missing = [i for i in config.instance_ids if i not in specs]
        if missing:
            raise TrainError(
                f"instance_ids: unknown task(s) {', '.join(missing)} in {config.tasks or 'examples'}"
            )
        specs = {i: specs[i] for i in config.instance_ids}
    if not specs:
        raise TrainError(f"tasks: no tasks in {config.tasks or 'the bundled examples pack'}")
    rows = [
        {
            "instance_id": spec.instance_id,
            "prompt": build_messages(spec.problem_statement, [], config.toolset, context_steps=0),
        }
        for spec in specs.values()
    ]
    runner = make_episode_runner(
        specs,
        toolset=config.toolset,
        max_turns=config.max_turns,
        max_completion_tokens=config.max_completion_length * config.max_turns,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_new_tokens=config.max_completion_length,
        episode_timeout=config.episode_timeout_s,
        out_dir=Path(config.output_dir) / "episodes",
        max_parallel=config.max_parallel_episodes,
        prefill=config.answer_prefill,
    )
    return runner, rows


def run_rlvr(
    config: RLVRTrainConfig,
    *,
    runner: EpisodeRunner | None = None,
    tasks: list[dict[str, Any]] | None = None,
    init_from: str | None = None,
    resume: bool = False,
) -> Path:
    """Train with outcome rewards. `tasks`: rows with at least ``prompt`` (first messages) and ``instance_id``."""
    import os

    from datasets import Dataset

    from srl_agent.models import set_offline
    from srl_agent.rewards import make_outcome_reward
    from srl_agent.train.grpo import SRLGRPOTrainer

    if runner is None or tasks is None:
        default_runner, default_tasks = default_episodes(config)
        runner = runner or default_runner
        tasks = tasks if tasks is not None else default_tasks
    if not tasks:
        raise TrainError("tasks: no RLVR tasks given (each row needs `prompt` and `instance_id`)")
    set_offline()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    resume_from = check_resume(config.output_dir, resume)
    dump_config(config, Path(config.output_dir) / "rlvr_config.yaml")
    device = resolve_device(config)
    model, tok = load_policy_model(init_from or config.model, device)
    trainer = SRLGRPOTrainer(
        model=model,
        reward_funcs=[make_outcome_reward()],
        args=grpo_args(config, device),
        train_dataset=Dataset.from_list(tasks),
        processing_class=tok,
        peft_config=peft_config(config.lora),
        callbacks=[progress_callback()],
        rollout_func=make_rollout_func(runner),
        dynamic_sampling=config.dynamic_sampling,
        stage="rlvr",
        prefill=config.answer_prefill,
    )
    quiet_default_printer(trainer)
    trainer.add_callback(token_budget_callback(trainer, config.max_train_tokens))
    out = train_and_save(trainer, tok, config, resume_from)
    console.print(
        f"[green]done[/]: {trainer.state.global_step} RLVR steps, {trainer.dropped_groups_total} task groups "
        f"dropped by dynamic sampling; episodes in {Path(config.output_dir) / 'episodes'}; model in {out}"
    )
    return out
