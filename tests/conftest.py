"""Fixtures for every test: no test reads or writes the user's real run store; a tiny text."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_text


@pytest.fixture(autouse=True)
def _private_run_store(tmp_path_factory, monkeypatch):
    """Point ``CHARLSTM_HOME`` (where the run store lives) at a fresh folder for each test."""
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path_factory.mktemp("charlstm-home")))
    yield


@pytest.fixture
def text(tmp_path, monkeypatch) -> Path:
    """A 4,000-character words text (helpers.make_text) in a temporary current folder.

    Test files that need another text define their own ``text`` fixture, which takes precedence.
    """
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "words.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path
