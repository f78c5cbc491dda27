"""Shared fixtures: the official reference vectors beside the checkout (../shared/reference)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property-based tests on a fixed sequence of examples (.ci/run sets the profile),
# so that a run that passed passes again; elsewhere each run draws new examples.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        raise FileNotFoundError(f"official reference vectors not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def vectors(reference_dir: Path):
    """The module `vectors.py` of the official test vectors (fill(), image())."""
    spec = importlib.util.spec_from_file_location("edgevit_vectors", reference_dir / "vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def official_state_dicts(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "official_state_dicts.json").read_text())
