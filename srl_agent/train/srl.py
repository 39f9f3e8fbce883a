"""`srl train srl`: GRPO over step-wise expert data with the step reward (the SRL stage).

No KL term by default (``beta=0``: no reference model is loaded), dynamic sampling on (see
`srl_agent.train.grpo`). Multi-GPU / multi-node: the same CLI under ``accelerate launch
--config_file srl_agent/train/accelerate/multi_gpu.yaml -m srl_agent.cli train srl --config srl.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srl_agent.train.common import (
    TrainError,
    check_resume,
    console,
    load_policy_model,
    load_train_rows,
    micro_batches,
    peft_config,
    progress_callback,
    quiet_default_printer,
    resolve_device,
    token_budget_callback,
    train_and_save,
    training_args_common,
)
from srl_agent.train.config import SRLTrainConfig, dump_config


def grpo_args(config: SRLTrainConfig, device: str) -> Any:
    from trl import GRPOConfig

    rows, passes = micro_batches(
        config.batch_size * config.num_generations,
        config.micro_batch_size,
        "batch_size x num_generations",
        device,
    )
    kwargs = training_args_common(config, device, passes)
    generation_kwargs = None
    if config.use_vllm:
        from srl_agent.policy import STOP

        generation_kwargs = {"stop": [STOP], "include_stop_str_in_output": True}
    return GRPOConfig(
        **kwargs,
        # one generation batch (batch_size prompts x num_generations) per optimizer step, trained in passes
        per_device_train_batch_size=rows,
        steps_per_generation=passes * config.gradient_accumulation_steps,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        beta=config.beta,
        epsilon=config.clip_epsilon,
        num_iterations=config.num_iterations,
        loss_type=config.loss_type,
        scale_rewards="group",
        generation_kwargs=generation_kwargs,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        log_completions=config.log_completions,
        remove_unused_columns=False,
    )


def build_trainer(
    config: SRLTrainConfig, *, init_from: str | None = None, reward_funcs: list[Any] | None = None
) -> tuple[Any, Any]:
    """The configured `SRLGRPOTrainer` and its tokenizer (training not started)."""
    from srl_agent.rewards import make_step_reward
    from srl_agent.train.grpo import SRLGRPOTrainer

    if config.dataset is None:
        raise TrainError("dataset: no step-wise data set given (set `dataset:` in the config or --dataset)")
    if config.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise TrainError("use_vllm: true needs the vllm extra (`pip install 'srl-swe[vllm]'`)") from None
    device = resolve_device(config)
    model, tok = load_policy_model(init_from or config.model, device)
    train = load_train_rows(config, tok)
    if "completion" in train.column_names:  # GRPO samples its own completions; the expert's is the reward key
        train = train.remove_columns("completion")
    trainer = SRLGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs or [make_step_reward(config.reward_mode)],
        args=grpo_args(config, device),
        train_dataset=train,
        processing_class=tok,
        peft_config=peft_config(config.lora),
        callbacks=[progress_callback()],
        dynamic_sampling=config.dynamic_sampling,
        prefill=config.answer_prefill,
    )
    quiet_default_printer(trainer)
    trainer.add_callback(token_budget_callback(trainer, config.max_train_tokens))
    return trainer, tok


def run_srl(config: SRLTrainConfig, *, init_from: str | None = None, resume: bool = False) -> Path:
    """Train; returns the output dir, which then holds the final model (loadable as a policy)."""
    from srl_agent.models import set_offline

    set_offline()
    resume_from = check_resume(config.output_dir, resume)
    dump_config(config, Path(config.output_dir) / "srl_config.yaml")
    trainer, tok = build_trainer(config, init_from=init_from)
    out = train_and_save(trainer, tok, config, resume_from)
    console.print(
        f"[green]done[/]: {trainer.state.global_step} steps, {trainer.dropped_groups_total} groups dropped by "
        f"dynamic sampling, {trainer.refills_total} refills; model in {out}"
    )
    return out
