"""What SFT, SRL and RLVR training share: model + tokenizer, data, TRL arguments, progress, saving."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from srl_agent.train.config import LoraOptions, _TrainCommon
from trajectories.errors import SrlSweError

console = Console(stderr=True, soft_wrap=True)


class TrainError(SrlSweError, RuntimeError):
    """A training run cannot start or continue; the message says why and what to do."""


def resolve_device(config: _TrainCommon) -> str:
    from srl_agent.models import pick_device

    if config.device == "auto":
        return pick_device(None)
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise TrainError("device: cuda was requested but no CUDA GPU is visible")
    return config.device


def peft_config(lora: LoraOptions) -> Any:
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def load_policy_model(model_ref: str, device: str) -> tuple[Any, Any]:
    from srl_agent.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_ref, device="cpu" if device == "cpu" else None)
    tok.padding_side = "left"
    return model, tok


def _checkpointing_field() -> str:
    """transformers >= 5.20 calls it ``activation_checkpointing``; older releases (and so the vllm extra,
    which needs transformers < 5.20) only know ``gradient_checkpointing``."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def micro_batches(
    rows_per_step: int, micro_batch_size: int | None, field: str, device: str = "cpu"
) -> tuple[int, int]:
    """``(rows per forward/backward pass, passes per optimizer step)`` for `rows_per_step` rows a step.

    Memory of a training step grows with the rows of one pass (their activations), not with the step:
    accumulating the gradients of several smaller passes gives the same update in a fraction of it.
    ``None``: one row per pass on CPU (the passes cost no time there: one row already fills the cores),
    the whole batch on a GPU."""
    if micro_batch_size is None:
        micro_batch_size = 1 if device == "cpu" else rows_per_step
    if micro_batch_size >= rows_per_step:
        return rows_per_step, 1
    if rows_per_step % micro_batch_size:
        raise TrainError(
            f"micro_batch_size: {micro_batch_size} does not divide the {rows_per_step} rows of a step ({field}); "
            "pick a divisor, or null for the default"
        )
    return micro_batch_size, rows_per_step // micro_batch_size


def training_args_common(config: _TrainCommon, device: str, passes_per_step: int = 1) -> dict[str, Any]:
    """The TrainingArguments fields every command sets the same way (`passes_per_step`: micro-batches
    accumulated into each of the config's accumulation steps)."""
    report_to = list(config.report_to) or ["none"]
    return dict(
        # TRL turns activation checkpointing on by default; off, a small model trains ~30% faster.
        **{_checkpointing_field(): config.gradient_checkpointing},
        output_dir=str(config.output_dir),
        seed=config.seed,
        learning_rate=config.lr,
        gradient_accumulation_steps=config.gradient_accumulation_steps * passes_per_step,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=report_to,
        use_cpu=device == "cpu",
        bf16=device != "cpu",
        fp16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def check_resume(output_dir: Path, resume: bool) -> bool | None:
    """``resume_from_checkpoint`` for `trainer.train`: True when resuming from the last checkpoint."""
    if not resume:
        return None
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"))
    if not checkpoints:
        raise TrainError(f"--resume: no checkpoint-* directory in {output_dir} to resume from")
    return True


def progress_callback() -> Any:
    """A TrainerCallback that prints one rich line per logged step (main process only)."""
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.monotonic()

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.monotonic()
            if state.is_world_process_zero:
                console.print(f"[bold]training[/] -> {args.output_dir} (max_steps={state.max_steps})")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            keys = [
                "loss",
                "reward",
                "reward_std",
                "frac_reward_zero_std",
                "dynamic_sampling/dropped_groups",
                "dynamic_sampling/refills",
                "mean_token_accuracy",
                "eval_loss",
                "learning_rate",
                "train_runtime",
            ]
            shown = " ".join(
                f"{k.split('/')[-1]}={logs[k]:.4g}" for k in keys if isinstance(logs.get(k), int | float)
            )
            elapsed = time.monotonic() - self.t0
            console.print(f"step {state.global_step}/{state.max_steps} [{elapsed:.0f}s] {shown}")

    return RichProgress()


TOKENS_FILE = "train_tokens.json"
"""Written into the output dir by `token_budget_callback`: the tokens spent, per optimizer step."""


def count_sft_tokens(trainer: Any) -> None:
    """Count the non-padding tokens of every training pass in ``trainer.tokens_seen`` (all processes).
    GRPO trainers (`SRLGRPOTrainer`) count their own: prompt + completion of every sampled completion."""
    import torch

    trainer.tokens_seen = 0
    original = trainer.training_step

    def training_step(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        mask = inputs.get("attention_mask")
        n = mask.sum() if mask is not None else torch.tensor(inputs["input_ids"].numel())
        trainer.tokens_seen += int(
            trainer.accelerator.gather(n.reshape(1).to(trainer.accelerator.device)).sum()
        )
        return original(model, inputs, *args, **kwargs)

    trainer.training_step = training_step


def token_budget_callback(trainer: Any, budget: int | None) -> Any:
    """A callback that records ``trainer.tokens_seen`` after each optimizer step (to ``train_tokens.json``
    in the output dir) and, with a `budget`, stops training at the first step that reaches it. The count
    is global (summed over processes), so every process stops at the same step; the run spends at least
    the budget and less than the budget plus one step's tokens."""
    from transformers import TrainerCallback

    trainer.token_budget = budget  # GRPO (SRLGRPOTrainer) also stops its refills there

    class TokenBudget(TrainerCallback):
        def __init__(self) -> None:
            self.per_step: list[dict[str, int]] = []

        def write_record(self, args: Any, state: Any) -> None:
            if state.is_world_process_zero:
                out = Path(args.output_dir)
                out.mkdir(parents=True, exist_ok=True)
                record = {"budget": budget, "tokens": trainer.tokens_seen, "steps": state.global_step}
                (out / TOKENS_FILE).write_text(json.dumps({**record, "per_step": self.per_step}, indent=1))

        def on_step_end(self, args, state, control, **kwargs):
            self.per_step.append({"step": state.global_step, "tokens": trainer.tokens_seen})
            if budget is not None and trainer.tokens_seen >= budget:
                control.should_training_stop = True
                if state.is_world_process_zero:
                    console.print(
                        f"token budget spent: {trainer.tokens_seen} >= {budget} after step {state.global_step}"
                    )
            self.write_record(args, state)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            self.write_record(args, state)

    return TokenBudget()


def save_final(trainer: Any, tokenizer: Any, output_dir: Path, merge_lora: bool) -> Path:
    """Save the trained policy and the trainer state at `output_dir` itself (LoRA merged into a full model)."""
    output_dir = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    trainer.save_state()  # trainer_state.json: the log history (loss, reward, dropped groups per step)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def load_train_rows(config: _TrainCommon, tokenizer: Any) -> Any:
    """The training split, cut to `max_train_samples`, prompts fitted to the budget (counts printed).
    Callers check `config.dataset` before loading a model, so a missing data set fails fast."""
    from srl_agent.train.data import fit_prompts, load_split

    train = load_split(config.dataset, config.train_split)
    if config.max_train_samples:
        train = train.select(range(min(config.max_train_samples, len(train))))
    long_answers = ""
    if config.answer_overflow == "filter":
        limit = config.max_completion_length
        before = len(train)
        train = train.filter(
            lambda r: (
                len(tokenizer(r["completion"][-1]["content"], add_special_tokens=False)["input_ids"]) <= limit
            ),
            desc="answers within max_completion_length",
        )
        long_answers = f"; {before - len(train)} with answers over {limit} tokens dropped"
        if len(train) == 0:
            raise TrainError(
                f"{config.dataset}: no training row's expert answer fits max_completion_length={limit} "
                "(raise it, or answer_overflow: keep)"
            )
    train, counts = fit_prompts(train, tokenizer, config.max_prompt_tokens, overflow=config.prompt_overflow)
    console.print(
        f"train rows: {counts['kept']} within {config.max_prompt_tokens} prompt tokens, "
        f"{counts['truncated']} truncated, {counts['dropped']} dropped{long_answers}"
    )
    return train


def train_and_save(trainer: Any, tokenizer: Any, config: _TrainCommon, resume_from: bool | None) -> Path:
    """Train, then save the final model. On a dynamic-sampling stall the model is saved if any step was
    taken (what was learned before the stall is kept) and the stall is raised again."""
    from srl_agent.train.grpo import DynamicSamplingStall

    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except DynamicSamplingStall:
        for callback in trainer.callback_handler.callbacks:  # the tokens the stopped run spent
            if hasattr(callback, "write_record"):
                callback.write_record(trainer.args, trainer.state)
        if trainer.state.global_step > 0:
            save_final(trainer, tokenizer, config.output_dir, merge_lora=config.lora.enabled)
            console.print(f"saved the model after {trainer.state.global_step} steps to {config.output_dir}")
        raise
    return save_final(trainer, tokenizer, config.output_dir, merge_lora=config.lora.enabled)


def quiet_default_printer(trainer: Any) -> None:
    """Drop transformers' raw-dict printer: `progress_callback` prints the readable line."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
