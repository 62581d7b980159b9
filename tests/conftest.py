"""Shared fixtures: ``run`` is parametrized over both runtimes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import RUNNERS, World


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[..., tuple[Any, World]]:
    """Run a scenario on the simulated runtime or on asyncio (virtual time)."""
    return RUNNERS[request.param]
