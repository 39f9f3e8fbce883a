"""Test helpers: a tiny random chat model that loads like a real one (no hub, built in ~1 s).

`build_tiny_model(dir)` writes a Qwen2 (or Llama) checkpoint with hidden size 64, 2 layers and
head_dim 64 (what vLLM accepts), plus a small byte-level BPE tokenizer trained with `tokenizers` on a
built-in corpus and a ChatML chat template. Eos = pad = ``<|im_end|>``, as in the default model.

The tokenizer pre-tokenizes with the Qwen2 split regex followed by a byte-level step without its own
regex: transformers 5 reloads a qwen2 folder as `Qwen2Tokenizer`, which rebuilds exactly this
pipeline, so the reloaded tokenizer encodes identically to the one we trained.
"""

from __future__ import annotations

from pathlib import Path

from srl_agent.memory_sandbox import MemorySandbox

__all__ = ["MemorySandbox", "build_tiny_model", "build_tiny_step_dataset", "tiny_step_rows"]

QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "<think>\nI should look at the repository layout first.\n</think>\n",
    "<function=bash>\n<parameter=command>\nls -la\n</parameter>\n</function>",
    "<function=str_replace_editor>\n<parameter=command>\nview\n</parameter>\n<parameter=path>\n/testbed/setup.py\n"
    "</parameter>\n</function>",
    "<function=submit>\n</function>",
    "def add(a, b):\n    return a + b\n\nclass Foo:\n    pass\n",
    "The issue: calling parse() with an empty string raises ValueError instead of returning None.",
    "You are a software engineer. Fix the issue in the repository at /testbed.",
    "system user assistant tool observation python grep find sed cat pytest -q tests/",
]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


def build_tiny_model(
    out_dir: str | Path, *, arch: str = "qwen2", vocab_size: int = 600, seed: int = 0
) -> Path:
    """Write a tiny random chat model + tokenizer to `out_dir` and return it."""
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = _train_tokenizer(vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = 4096

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"arch must be 'qwen2' or 'llama', got {arch!r}")
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_step_rows(n: int = 8) -> list[dict]:
    """Step-wise rows with the columns of the real data set (short literal prompts)."""
    from trajectories.actions import format_answer, render_action
    from trajectories.schema import ToolCall

    commands = ["ls", "cat setup.py", "grep -rn parse src", "pytest -q tests", "git diff", "python -V"]
    rows = []
    for i in range(n):
        call = ToolCall(name="bash", arguments={"command": commands[i % len(commands)]})
        thought = f"Step {i}: look around."
        rows.append(
            {
                "prompt": [
                    {
                        "role": "system",
                        "content": "You fix issues. Answer with <think> then one <function=...>.",
                    },
                    {"role": "user", "content": f"Issue {i}: parse() fails on empty input."},
                ],
                "completion": [{"role": "assistant", "content": format_answer(thought, call)}],
                "expert_action": render_action(call),
                "expert_thought": thought,
                "tool": call.name,
                "instance_id": f"demo__repo-{i // 3}",
                "trajectory_id": f"demo__repo-{i // 3}#0",
                "step": i % 3,
                "n_steps": 3,
            }
        )
    return rows


def build_tiny_step_dataset(out_dir: str | Path, n_train: int = 8, n_validation: int = 4) -> Path:
    """A `DatasetDict` (train/validation) of `tiny_step_rows`, saved with ``save_to_disk``."""
    from datasets import Dataset, DatasetDict

    rows = tiny_step_rows(n_train + n_validation)
    dd = DatasetDict(
        {"train": Dataset.from_list(rows[:n_train]), "validation": Dataset.from_list(rows[n_train:])}
    )
    out = Path(out_dir)
    dd.save_to_disk(str(out))
    return out
