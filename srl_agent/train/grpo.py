"""GRPO with dynamic sampling, on top of TRL's `GRPOTrainer`.

Dynamic sampling (DAPO; used by the SRL paper): a prompt group whose completions all score (almost)
the same has zero advantage and teaches nothing, so it is dropped and the batch is refilled with new
prompts from the training data, for at most ``max_refills`` extra generation rounds per step. If even
then fewer than ``min_kept_groups`` groups have spread, training stops with `DynamicSamplingStall`,
whose message names the cause (e.g. every answer unparsable) and the remedy.

The seam is TRL's ``_generate_and_score_completions(inputs) -> batch dict``: we call it once per
round, keep the rows of groups with spread, and merge the rounds into one batch of the usual size.
TRL's own per-group advantages are untouched (groups are independent with ``scale_rewards="group"``).
Groups never straddle processes: each process's generation batch is a multiple of the group size.
The transformers generation path also cuts each completion after the first ``</function>`` (TRL
cannot pass stop strings to ``generate``); the vLLM path stops there through ``generation_kwargs``.
Every prompt ends with the answer prefill (`srl_agent.prompts.THINK_PREFILL`), as in the policies, and
the reward functions see each completion with it in front, as the policies return answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Literal

import torch
from trl import GRPOTrainer

from srl_agent.policy import STOP
from srl_agent.train.config import DynamicSamplingOptions
from trajectories.errors import SrlSweError

_LEFT_PADDED = {"prompt_ids": "pad", "prompt_mask": 0}
_RIGHT_PADDED = {
    "completion_ids": "pad",
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
}
_PER_ROW = {"advantages"}


class DynamicSamplingStall(SrlSweError, RuntimeError):
    """Nearly every group has zero reward spread: there is nothing to learn from; stop, don't train on 0."""


def diagnose_flat_groups(rewards: list[float], epsilon: float, stage: Literal["srl", "rlvr"] = "srl") -> str:
    """Why every group scored flat, and what to do about it (SRL: step rewards; RLVR: episode outcomes)."""
    if not rewards:
        return "no completions were scored"
    if stage == "rlvr":
        return _diagnose_flat_episodes(rewards)
    if all(r <= -1.0 + 1e-9 for r in rewards):
        return (
            "every group scored -1: the model writes no well-formed answer "
            "(<think>...</think> then exactly one <function=...> block). "
            "Run `srl train sft` first (warm-up on the expert answers), or raise temperature / "
            "max_completion_length if answers are cut off."
        )
    if all(r >= 1.0 - 1e-9 for r in rewards):
        return (
            "every completion matches the expert exactly (reward 1): the data is already learned. "
            "Use harder / unseen steps, or stop training."
        )
    return (
        f"each group's completions scored (nearly) alike (std < epsilon={epsilon}): sampling gives no "
        "diversity. Raise temperature / top_p, raise num_generations, or lower dynamic_sampling.epsilon."
    )


def _diagnose_flat_episodes(rewards: list[float]) -> str:
    if all(r <= -1.0 + 1e-9 for r in rewards):
        return (
            "every episode scored -1: each one ended on a malformed answer (the model does not write "
            "<think>...</think> + one <function=...> block yet). Start RLVR from an SFT or SRL checkpoint "
            "(`srl train rlvr --init-from runs/srl`), or raise max_completion_length if answers are cut off."
        )
    if all(r >= 1.0 - 1e-9 for r in rewards):
        return "every episode resolved its task (reward 1): these tasks are learned; use harder ones."
    return (
        "within each task group every episode got the same outcome (e.g. none resolved its task): the "
        "tasks are too hard for this model at this budget. Start from an SRL checkpoint (--init-from), "
        "raise max_turns or num_generations, or train on easier tasks."
    )


def _pad_cat(tensors: list[torch.Tensor], value: float | int, side: str) -> torch.Tensor:
    if tensors[0].dim() == 1:
        return torch.cat(tensors)
    width = max(t.size(1) for t in tensors)
    out = []
    for t in tensors:
        gap = width - t.size(1)
        if gap:
            filler = t.new_full((t.size(0), gap, *t.shape[2:]), value)
            t = torch.cat([filler, t] if side == "left" else [t, filler], dim=1)
        out.append(t)
    return torch.cat(out)


def merge_batches(parts: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Concatenate row-selected GRPO batch dicts of different sequence widths."""
    keys = set(parts[0])
    unknown = keys - set(_LEFT_PADDED) - set(_RIGHT_PADDED) - _PER_ROW - {"num_items_in_batch"}
    if unknown:
        raise NotImplementedError(
            f"dynamic sampling cannot merge batch fields {sorted(unknown)} (multimodal?)"
        )
    merged: dict[str, Any] = {}
    for key in keys - {"num_items_in_batch"}:
        vals = [p[key] for p in parts]
        if key in _LEFT_PADDED:
            fill = pad_token_id if _LEFT_PADDED[key] == "pad" else _LEFT_PADDED[key]
            merged[key] = _pad_cat(vals, fill, "left")
        elif key in _RIGHT_PADDED:
            fill = pad_token_id if _RIGHT_PADDED[key] == "pad" else _RIGHT_PADDED[key]
            merged[key] = _pad_cat(vals, fill, "right")
        else:
            merged[key] = torch.cat(vals)
    return merged


def select_rows(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    return {k: (v if k == "num_items_in_batch" or v is None else v[rows]) for k, v in batch.items()}


def first_action_prefix(token_ids: list[int], decode: Any) -> list[int]:
    """The shortest prefix of `token_ids` whose text contains ``</function>`` (all of it if none)."""
    if STOP not in decode(token_ids):
        return token_ids
    lo, hi = 1, len(token_ids)
    while lo < hi:  # containment is monotone in the prefix length
        mid = (lo + hi) // 2
        if STOP in decode(token_ids[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return token_ids[:lo]


def _prefixed(completion: Any, prefill: str) -> Any:
    """A TRL completion (text, or a conversational [assistant message]) with `prefill` in front."""
    if isinstance(completion, str):
        return prefill + completion
    first, *rest = completion
    return [{**first, "content": prefill + (first.get("content") or "")}, *rest]


def reload_weights_in_place(generation: Any) -> None:
    """Make TRL's colocated weight sync go through vLLM's in-place reload.

    TRL 1.16 pushes the trained weights with ``model.load_weights`` on the live vLLM model. vLLM (>= 0.31,
    seen on the CPU backend) processes weights after loading (repacks them for its kernels), and the
    processed parameters have no ``weight_loader`` any more, so that call fails on the first sync. The
    model runner's ``reload_weights(is_checkpoint_format=True)`` restores the loadable layout, loads the
    checkpoint-format weights and processes them again (and the LM head of tied embeddings, which the
    reload skips). Server mode and sleep mode keep TRL's path.
    """
    original = generation.sync_weights

    def sync_weights() -> None:
        if generation.mode != "colocate" or generation.enable_sleep_mode:
            return original()
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        if not hasattr(runner, "reload_weights"):
            return original()
        runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
        # tied embeddings: the LM head loads nothing of its own, so the reload leaves its processed copy of
        # the (shared, now updated) weight stale; process it again
        head = getattr(runner.get_model(), "lm_head", None)
        tied = getattr(runner.model_config.hf_text_config, "tie_word_embeddings", False)
        if tied and head is not None and hasattr(head, "quant_method"):
            head.quant_method.process_weights_after_loading(head)
        generation.llm.reset_prefix_cache()
        return None

    generation.sync_weights = sync_weights


class SRLGRPOTrainer(GRPOTrainer):
    """TRL `GRPOTrainer` + dynamic sampling + stop at the end of the first action."""

    def __init__(
        self,
        *args: Any,
        dynamic_sampling: DynamicSamplingOptions | None = None,
        stage: Literal["srl", "rlvr"] = "srl",
        prefill: str | None = None,
        **kwargs: Any,
    ):
        from srl_agent.prompts import answer_prefill

        super().__init__(*args, **kwargs)
        self.prefill = answer_prefill(prefill)
        self.dynamic_sampling = dynamic_sampling or DynamicSamplingOptions()
        self.stage = stage  # what the rewards mean, for the stall diagnosis
        seed = self.args.seed + 7919 * (1 + self.accelerator.process_index)
        self._refill_rng = random.Random(seed)
        self._last_rewards_per_func: torch.Tensor | None = None
        self.current_inputs: list[dict[str, Any]] = []
        self.dropped_groups_total = 0
        self.refills_total = 0
        self.tokens_seen = 0  # prompt + completion tokens of every sampled completion, all processes
        self.token_budget: int | None = None  # no refill round starts once tokens_seen reaches it
        if self.use_vllm:
            reload_weights_in_place(self.vllm_generation)

    # -- generation: open the answer with the prefill, stop after the first action -----------------
    def _tokenize_prompts(self, prompts: list):
        prompt_ids, images, multimodal_fields = super()._tokenize_prompts(prompts)
        if self.prefill:
            tail = self.processing_class(text=self.prefill, add_special_tokens=False)["input_ids"]
            prompt_ids = [list(ids) + tail for ids in prompt_ids]
        return prompt_ids, images, multimodal_fields

    def generation_weights(self) -> Any:
        """A context in which the policy generates through its LoRA-merged weights (transformers
        generation only): a decode step is many small matmuls, and the unmerged adapters add two more
        per linear layer and their Python overhead (a GRPO round of 8 answers on 2 cores: 41 s unmerged;
        docs/benchmarks.md). Merged under no_grad and unmerged afterwards, as TRL does to sync vLLM;
        not under ZeRO-3 / FSDP, whose parameters are sharded."""
        if self.use_vllm or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return nullcontext()
        return lora_merged(self.accelerator.unwrap_model(self.model))

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        with self.generation_weights():
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if not self.use_vllm and logprobs is None:
            decode = self.processing_class.decode
            completion_ids = [first_action_prefix(list(ids), decode) for ids in completion_ids]
        return completion_ids, logprobs

    # -- scoring: remember the rewards of the last round ---------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self.prefill and self.rollout_func is None:  # rollouts (RLVR) return whole episodes
            completions = [_prefixed(c, self.prefill) for c in completions]
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards
        return rewards

    def _local_rewards(self, n_local: int) -> torch.Tensor:
        """This process's total reward per completion from the last round (gathered across processes)."""
        per_func = self._last_rewards_per_func
        assert per_func is not None
        weights = self.reward_weights.to(per_func.device)
        total = (per_func * weights.unsqueeze(0)).nansum(dim=1)
        start = self.accelerator.process_index * n_local
        return total[start : start + n_local].float().cpu()

    def _refill_inputs(self, n_groups: int) -> list[dict[str, Any]]:
        data = self.train_dataset
        rows = [self._refill_rng.randrange(len(data)) for _ in range(n_groups)]
        out: list[dict[str, Any]] = []
        for i in rows:
            example = data[i]
            out.extend(dict(example) for _ in range(self.num_generations))
        return out

    def _count_tokens(self, batch: dict[str, Any]) -> None:
        if not self.model.training:
            return
        n = batch["prompt_mask"].sum() + batch["completion_mask"].sum()
        self.tokens_seen += int(self.accelerator.gather(n.reshape(1)).sum())

    # -- the seam -----------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        opts = self.dynamic_sampling
        if not self.model.training or not opts.enabled:
            self.current_inputs = inputs
            out = super()._generate_and_score_completions(inputs)
            self._count_tokens(out)
            return out
        g = self.num_generations
        self.current_inputs = inputs  # the rows being generated for (read by RLVR's rollout function)
        if len(inputs) % g:
            raise ValueError(
                f"generation batch of {len(inputs)} rows is not a multiple of num_generations={g}"
            )
        target = len(inputs) // g
        kept: list[dict[str, Any]] = []
        n_kept = dropped = refills = 0
        budget_spent = False
        seen: list[float] = []
        batch = inputs
        for round_ in range(opts.max_refills + 1):
            out = super()._generate_and_score_completions(batch)
            self._count_tokens(out)  # dropped groups cost their generation too
            rewards = self._local_rewards(len(batch))
            seen.extend(rewards.tolist())
            std = torch.nan_to_num(rewards.view(-1, g), nan=0.0).std(dim=1, unbiased=False)
            keep = std >= opts.epsilon if opts.epsilon > 0 else std > 0
            dropped += int((~keep).sum())
            take = keep.nonzero().flatten()[: max(target - n_kept, 0)]
            if take.numel():
                rows = (take.unsqueeze(1) * g + torch.arange(g)).flatten().to(out["completion_ids"].device)
                kept.append(select_rows(out, rows))
                n_kept += int(take.numel())
            missing = torch.tensor([target - n_kept], device=self.accelerator.device)
            missing = int(self.accelerator.gather(missing).max())  # every process refills in lockstep
            if missing <= 0 or round_ == opts.max_refills:
                break
            if self.token_budget is not None and self.tokens_seen >= self.token_budget:
                budget_spent = True  # the same count on every process: they all stop refilling here
                break
            refills += 1
            batch = self._refill_inputs(missing)
            self.current_inputs = batch

        self.dropped_groups_total += dropped
        self.refills_total += refills
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/dropped_groups"].append(float(dropped))
        metrics["dynamic_sampling/refills"].append(float(refills))
        metrics["dynamic_sampling/kept_groups"].append(float(n_kept))

        fewest = torch.tensor([n_kept], device=self.accelerator.device)
        fewest = int(self.accelerator.gather(fewest).min())
        if fewest < opts.min_kept_groups:
            raise DynamicSamplingStall(
                f"dynamic sampling: {dropped} of {dropped + n_kept} prompt groups had no reward spread after "
                f"{refills} refills (kept {n_kept}, need {opts.min_kept_groups}) at step {self.state.global_step}. "
                + diagnose_flat_groups(seen, opts.epsilon, self.stage)
                + (
                    f" The token budget ({self.token_budget}) was spent before the refills ran out "
                    f"({self.tokens_seen} tokens)."
                    if budget_spent
                    else ""
                )
            )
        merged = merge_batches(kept, self._tokenizer.pad_token_id)
        if n_kept < target:  # refills exhausted: repeat kept groups so every step has the usual shape
            order = [i % (n_kept * g) for i in range(target * g)]
            merged = select_rows(merged, torch.tensor(order, device=merged["completion_ids"].device))
        loss_mask = merged["completion_mask"]
        if "tool_mask" in merged:
            loss_mask = loss_mask * merged["tool_mask"]
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        return merged


@contextmanager
def lora_merged(model: Any) -> Iterator[Any]:
    """`model` with its LoRA adapters merged into the base weights for the block (a no-op for a model
    without adapters, or one already merged); the adapters are unmerged afterwards, also on error."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = (
        [m for m in model.modules() if isinstance(m, BaseTunerLayer)] if isinstance(model, PeftModel) else []
    )
    if not layers or any(layer.merged for layer in layers):
        yield model
        return
    with torch.no_grad():
        model.base_model.merge_adapter()
    try:
        yield model
    finally:
        with torch.no_grad():
            model.base_model.unmerge_adapter()
