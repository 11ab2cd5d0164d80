"""Fixtures for the hostile-input tests: lowered limits through the ``settings`` fixture."""

from __future__ import annotations

import pytest


@pytest.fixture
def limits(settings):
    """``limits(NAME=value, ...)`` overrides gateway options for the test (cache cleared)."""

    def apply(**options):
        settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, **options}

    return apply
