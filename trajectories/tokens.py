"""Observation token budgets: a fast tokenizer when one is available locally, an estimate otherwise.

`load_tokenizer` takes a ``tokenizer.json`` file, a model directory, or a Hugging Face model name that
is already in the local cache; it never downloads. Without a tokenizer, counts are estimated as
characters / 4 (`trajectories.prompting.approx_tokens`).

`ObservationTruncator.truncate_many` cuts a batch of texts to a token budget, keeping the head and the
tail and putting ``[... N tokens truncated ...]`` in between. With a tokenizer the cut is at exact
token offsets and the batch is encoded in one call; texts whose UTF-8 size is within the budget are
never tokenized (a byte-level BPE or SentencePiece token covers at least one byte).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from trajectories.errors import SrlSweError
from trajectories.prompting import approx_tokens, truncate_middle, truncation_marker

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class TokenizerNotFound(SrlSweError, FileNotFoundError):
    pass


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """A `tokenizers.Tokenizer` from a local file, a local directory, or the local HF cache only."""
    from tokenizers import Tokenizer

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return Tokenizer.from_file(str(path))
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        return _from_transformers(str(path))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(str(name_or_path), "tokenizer.json")
    if isinstance(cached, str):
        return Tokenizer.from_file(cached)
    raise TokenizerNotFound(
        f"tokenizer {str(name_or_path)!r}: not a local file or directory, and no tokenizer.json for it in the "
        "local Hugging Face cache (this command never downloads; fetch it first, e.g. "
        f"`huggingface-cli download {name_or_path} tokenizer.json`)"
    )


def _from_transformers(path: str) -> Tokenizer:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise TokenizerNotFound(f"tokenizer at {path!r} is not a fast (Rust) tokenizer")
    return tok.backend_tokenizer


class ObservationTruncator:
    def __init__(self, tokenizer: Tokenizer | None = None):
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, name_or_path: str | Path | None) -> ObservationTruncator:
        """A truncator for a tokenizer (loaded once per process and name), or the chars/4 estimate."""
        return _cached_truncator(str(name_or_path)) if name_or_path else cls(None)

    def count(self, text: str) -> int:
        if self.tokenizer is None:
            return approx_tokens(text)
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.truncate_many([text], max_tokens)[0]

    def truncate_many(self, texts: list[str], max_tokens: int) -> list[str]:
        out = list(texts)
        if self.tokenizer is None:
            return [truncate_middle(t, max_tokens) for t in texts]
        long = [i for i, t in enumerate(texts) if len(t) * 4 > max_tokens and len(t.encode()) > max_tokens]
        if not long:
            return out
        encodings = self.tokenizer.encode_batch([texts[i] for i in long], add_special_tokens=False)
        head_n = max_tokens // 2
        tail_n = max_tokens - head_n
        for i, enc in zip(long, encodings, strict=True):
            n = len(enc)
            if n <= max_tokens:
                continue
            t = texts[i]
            offsets = enc.offsets  # a new Python list on every access: read it once
            head_end = offsets[head_n - 1][1] if head_n else 0
            tail_start = offsets[n - tail_n][0] if tail_n else len(t)
            out[i] = f"{t[:head_end]}\n{truncation_marker(n - max_tokens)}\n{t[tail_start:]}"
        return out


@lru_cache(maxsize=4)
def _cached_truncator(name_or_path: str) -> ObservationTruncator:
    return ObservationTruncator(load_tokenizer(name_or_path))
