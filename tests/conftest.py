"""Fixtures for every test: no test reads or writes the user's real run store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_run_store(tmp_path_factory, monkeypatch):
    """Point ``CHARLSTM_HOME`` (where the run store lives) at a fresh folder for each test."""
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path_factory.mktemp("charlstm-home")))
    yield
