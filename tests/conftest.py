"""Shared fixtures for the numba_xent test suite."""

from __future__ import annotations

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
