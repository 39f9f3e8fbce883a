"""`srl train sft`: supervised fine-tuning on (step prompt -> expert answer).

The paper's SFT baseline and the warm-up before SRL: a base model that writes no well-formed answer
gets reward -1 on every sample and GRPO has nothing to learn from. The loss covers the completion
only (the assistant turn: ``<think>...</think>`` + action + end of turn), so the model also learns
to stop after its one action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srl_agent.train.common import (
    TrainError,
    check_resume,
    console,
    count_sft_tokens,
    load_policy_model,
    load_train_rows,
    micro_batches,
    peft_config,
    progress_callback,
    quiet_default_printer,
    resolve_device,
    save_final,
    token_budget_callback,
    training_args_common,
)
from srl_agent.train.config import SFTTrainConfig, dump_config

SFT_COLUMNS = ("prompt", "completion")


def sft_args(config: SFTTrainConfig, device: str) -> Any:
    from trl import SFTConfig

    rows, passes = micro_batches(config.batch_size, config.micro_batch_size, "batch_size", device)
    return SFTConfig(
        **training_args_common(config, device, passes),
        per_device_train_batch_size=rows,
        max_length=config.max_prompt_tokens + config.max_completion_length,
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
    )


def build_trainer(config: SFTTrainConfig, *, init_from: str | None = None) -> tuple[Any, Any]:
    from trl import SFTTrainer

    if config.dataset is None:
        raise TrainError("dataset: no step-wise data set given (set `dataset:` in the config or --dataset)")
    device = resolve_device(config)
    model, tok = load_policy_model(init_from or config.model, device)
    tok.padding_side = "right"
    train = load_train_rows(config, tok)
    train = train.remove_columns([c for c in train.column_names if c not in SFT_COLUMNS])
    trainer = SFTTrainer(
        model=model,
        args=sft_args(config, device),
        train_dataset=train,
        processing_class=tok,
        peft_config=peft_config(config.lora),
        callbacks=[progress_callback()],
    )
    quiet_default_printer(trainer)
    count_sft_tokens(trainer)
    trainer.add_callback(token_budget_callback(trainer, config.max_train_tokens))
    return trainer, tok


def run_sft(config: SFTTrainConfig, *, init_from: str | None = None, resume: bool = False) -> Path:
    """Train; returns the output dir, which then holds the final model (loadable as a policy)."""
    from srl_agent.models import set_offline

    set_offline()
    resume_from = check_resume(config.output_dir, resume)
    dump_config(config, Path(config.output_dir) / "sft_config.yaml")
    trainer, tok = build_trainer(config, init_from=init_from)
    trainer.train(resume_from_checkpoint=resume_from)
    tok.padding_side = "left"
    out = save_final(trainer, tok, config.output_dir, merge_lora=config.lora.enabled)
    console.print(f"[green]done[/]: {trainer.state.global_step} SFT steps; model in {out}")
    return out
