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


# Under `make test` (`-n 2`, pytest-xdist) the tests that run real NNI experiments, notebook
# 04's two searches among them, are one unit of work: one worker runs them one after another,
# so that no two NNI managers and their trials compete for the two cores at once (several tests
# bound a trial's time). They wait on NNI most of the time, and the other worker meanwhile runs
# the rest of the suite, file by file (a module's fixtures are built once). Collected first, the
# unit starts first: it is the longest.
NNI_EXPERIMENTS = frozenset({"tests/nas/test_search.py", "tests/nas/test_scale_out.py",
                             "tests/nas/test_pareto_tuner_nni.py",
                             "notebooks/04_search_pareto.ipynb"})


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def runs_nni(nodeid: str) -> bool:
    return file_of(nodeid) in NNI_EXPERIMENTS


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: not runs_nni(item.nodeid))


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NniExperimentsTogether(LoadScopeScheduling):
        """One scope for the NNI experiments, one per file for everything else."""

        def _split_scope(self, nodeid: str) -> str:
            return "nni-experiments" if runs_nni(nodeid) else file_of(nodeid)

    return NniExperimentsTogether(config, log)
