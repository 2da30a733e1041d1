"""Shared pytest configuration for the test suite."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # `browser`: tests that drive headless Chromium (Debian's `chromium`); they skip when it is missing.
    config.addinivalue_line("markers", "browser: loads pages in headless Chromium (/usr/bin/chromium); skipped when it is not installed")
