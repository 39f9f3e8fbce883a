"""One typed config per training command, loadable from YAML and overridable from the CLI.

``srl train srl --config srl.yaml --set lr=2e-6 --set lora.enabled=true``: a YAML file gives the
values, each ``--set key=value`` (dotted keys reach nested sections, values parse as YAML scalars)
overrides one, and unknown keys are errors that name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from srl_agent.models import DEFAULT_MODEL
from srl_agent.prompts import THINK_PREFILL
from trajectories.errors import SrlSweError


def _answer_prefill_field() -> Any:
    return Field(
        THINK_PREFILL, description="text every sampled answer starts with (the model continues it; '' = none)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraOptions(_Strict):
    """PEFT LoRA adapter; off by default (on CPU it saves little: most time is the forward/backward)."""

    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class _TrainCommon(_Strict):
    model: str = Field(DEFAULT_MODEL, description="local dir, cached hub name, or the default model")
    dataset: Path | None = Field(None, description="step-wise DatasetDict dir (`srl data build` output)")
    train_split: str = "train"
    eval_split: str | None = Field(
        "validation", description="held-out split; not evaluated during training (run `srl eval-steps`)"
    )
    output_dir: Path = Path("runs/train")
    seed: int = 0
    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(4, ge=1, description="prompts per device per optimizer step")
    gradient_accumulation_steps: int = Field(1, ge=1)
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        description="rows (GRPO: completions) per forward/backward pass; gradients accumulate to the full "
        "batch, so the update is the same. Bounds the activations' memory. null: 1 on CPU (a 576-token row "
        "of the default model holds ~3 GB of activations), the whole batch on a GPU",
    )
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    max_train_samples: int | None = Field(None, ge=1, description="use only the first N training rows")
    max_train_tokens: int | None = Field(
        None,
        ge=1,
        description="compute budget: stop after the optimizer step at which this many tokens have gone "
        "through the policy (SFT: the rows' tokens; GRPO: prompt + completion of every sampled completion)",
    )
    max_prompt_tokens: int = Field(
        1024, ge=16, description="prompt budget in tokens (chat template included)"
    )
    prompt_overflow: Literal["truncate", "filter"] = Field(
        "truncate", description="over-budget prompts: cut the middle of the longest message, or drop the row"
    )
    max_completion_length: int = Field(256, ge=1)
    answer_overflow: Literal["keep", "filter"] = Field(
        "keep",
        description="rows whose expert answer is longer than max_completion_length: keep them, or drop them "
        "(SFT on cut answers teaches a small model to stop mid-action; SRL cannot reach them)",
    )
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: LoraOptions = Field(default_factory=LoraOptions)
    gradient_checkpointing: bool = False
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int | None = 3
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    device: Literal["auto", "cpu", "cuda"] = "auto"


class SFTTrainConfig(_TrainCommon):
    """`srl train sft`: supervised fine-tuning on (prompt -> expert answer); the baseline and SRL warm-up."""

    output_dir: Path = Path("runs/sft")
    lr: float = Field(2e-5, gt=0)


class DynamicSamplingOptions(_Strict):
    """Drop prompt groups whose rewards have (almost) no spread and refill the batch from the data."""

    enabled: bool = True
    epsilon: float = Field(1e-3, ge=0, description="a group with reward std below this carries no signal")
    max_refills: int = Field(4, ge=0, description="extra generation rounds per step to refill dropped groups")
    min_kept_groups: int = Field(
        1, ge=1, description="fewer groups with spread than this after all refills stops training"
    )


class SRLTrainConfig(_TrainCommon):
    """`srl train srl`: GRPO over step-wise instances with the step reward (no KL, dynamic sampling)."""

    output_dir: Path = Path("runs/srl")
    lr: float = Field(1e-6, gt=0)
    num_generations: int = Field(4, ge=2, description="completions per prompt (GRPO group size)")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 = no KL and no reference model (SRL paper)")
    clip_epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    num_iterations: int = Field(1, ge=1)
    loss_type: str = "dapo"
    reward_mode: str = Field("exact", description="trajectories.scoring.step_reward mode")
    dynamic_sampling: DynamicSamplingOptions = Field(default_factory=DynamicSamplingOptions)
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    log_completions: bool = False
    answer_prefill: str = _answer_prefill_field()


class RLVRTrainConfig(_TrainCommon):
    """`srl train rlvr`: GRPO where each rollout is a whole sandboxed episode, rewarded by its tests."""

    output_dir: Path = Path("runs/rlvr")
    lr: float = Field(1e-6, gt=0)
    tasks: str | None = Field(None, description="task source (task.yaml, SWE-bench JSON/JSONL, pack name)")
    repos: Path | None = Field(None, description="dir of owner__name clones or bundles for SWE-bench tasks")
    instance_ids: list[str] | None = Field(None, description="train on these tasks only (default: all)")
    num_generations: int = Field(4, ge=2, description="episodes per task (GRPO group size)")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    beta: float = Field(0.0, ge=0)
    max_turns: int = Field(30, ge=1, description="agent steps per episode")
    max_parallel_episodes: int = Field(2, ge=1, description="sandboxes (episodes) running at once")
    episode_timeout_s: float = Field(600.0, gt=0)
    toolset: str = "bash_only"
    dynamic_sampling: DynamicSamplingOptions = Field(default_factory=DynamicSamplingOptions)
    use_vllm: bool = False
    answer_prefill: str = _answer_prefill_field()


class EvalStepsConfig(_Strict):
    """`srl eval-steps`: mean step reward and format-error rate on held-out steps."""

    model: str = DEFAULT_MODEL
    dataset: Path
    split: str = "validation"
    limit: int | None = Field(None, ge=1)
    backend: Literal["auto", "transformers", "vllm", "expert"] = Field(
        "auto", description="auto: vLLM when the vllm extra is installed, else transformers"
    )
    batch_size: int = Field(8, ge=1)
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    max_new_tokens: int = Field(256, ge=1)
    max_prompt_tokens: int = Field(1024, ge=16)
    reward_mode: str = "exact"
    seed: int = 0
    output: Path | None = Field(None, description="write per-step results as JSONL here")
    answer_prefill: str = _answer_prefill_field()


C = TypeVar("C", bound=BaseModel)


class ConfigError(SrlSweError, ValueError):
    """A config file or override is invalid; the message names the file and the field."""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_config(cls: type[C], path: Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """`cls` from a YAML file (optional) with `overrides` applied; errors name the file and field."""
    import yaml

    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path}: expected a mapping of fields, got {type(loaded).__name__}"
            )
        data = loaded
    if overrides:
        data = _merge(data, overrides)
        source += " + command-line overrides"
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def dump_config(config: BaseModel, path: Path) -> None:
    """Write the resolved config next to the run's outputs (the record of what was run)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
