"""Shared fixtures: the real Anny body model (built once per test session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def anny_body():
    """The default Anny body model (``anny-noeyes-notongue``), float32."""
    from munet.body import build_body_model
    from munet.config import BodyConfig

    return build_body_model(BodyConfig())
