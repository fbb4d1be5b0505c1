"""Shared fixtures for the numba_xent test suite."""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np
import pytest

# Make `import references` / `import helpers` work whatever pytest import mode the project configures.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test, so every test is reproducible on its own."""
    return np.random.default_rng(20240611)


# CI installs PyTorch and sets NUMBA_XENT_REQUIRE=torch (a comma-separated list of module names): then a test
# skipped because one of those modules is missing fails the run, instead of passing silently.
_REQUIRED = [name for name in os.environ.get("NUMBA_XENT_REQUIRE", "").split(",") if name]
_missing_required: list[str] = []


def _note_skip(report) -> None:
    if report.skipped and _REQUIRED:
        reason = str(report.longrepr)
        for name in _REQUIRED:
            if f"'{name}'" in reason or f"module {name}" in reason or f"No module named {name}" in reason:
                _missing_required.append(f"{report.nodeid}: {reason}")


def pytest_collectreport(report):
    _note_skip(report)


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if _missing_required:
        print("\nrequired oracle missing (NUMBA_XENT_REQUIRE=" + ",".join(_REQUIRED) + "); skipped:")
        for line in _missing_required:
            print("  " + line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
