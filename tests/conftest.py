"""Shared fixtures and the hypothesis profiles.

``HYPOTHESIS_PROFILE=dev`` runs fewer examples while editing; the default (``ci``) is what
``make test`` and CI run: thousands of examples across the property suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.sql from the current compiler (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def examples(n: int) -> int:
    """``n`` examples under the ci profile, a few under dev."""
    return n if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else max(3, n // 20)
