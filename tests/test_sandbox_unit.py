"""Sandbox pieces that need no Docker: quoting and the bounded output buffer."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sandbox import SandboxConfig, _bash_quote, _OutputBuffer


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80))
def test_bash_quote_round_trips_through_real_bash(text):
    out = subprocess.run(["bash", "-c", f"printf %s {_bash_quote(text)}"], capture_output=True)
    assert out.stdout.decode("utf-8", errors="surrogateescape") == text


def test_output_buffer_keeps_head_and_tail_and_counts_everything():
    buf = _OutputBuffer(limit=10)
    for chunk in (b"0123456789", b"abcdefghij", b"KLMNO"):
        buf.add(chunk)
    data, truncated = buf.result()
    assert truncated
    assert buf.total == 25
    assert data.startswith(b"01234")
    assert data.endswith(b"KLMNO")
    assert b"15 bytes of output truncated" in data


def test_output_buffer_small_output_is_untouched():
    buf = _OutputBuffer(limit=100)
    buf.add(b"hello ")
    buf.add(b"world")
    assert buf.result() == (b"hello world", False)


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="memroy"):
        SandboxConfig(memroy="1g")
