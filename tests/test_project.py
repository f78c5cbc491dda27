"""The project's packaging: pins in pyproject.toml and environment.yml agree; CI calls make test."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import REPO_ROOT
from packaging.requirements import Requirement


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines}


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pins = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            for line in item["pip"]:
                if line.startswith("-e"):
                    continue
                req = Requirement(line)
                pins[req.name.lower()] = str(req.specifier)
        else:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:=(.+))?", item)
            name, version = match.group(1).lower(), match.group(2)
            if name in ("python", "pip"):
                continue
            pins[name] = f"=={version}" if version else ""
    return pins


def test_environment_yml_pins_match_pyproject() -> None:
    assert environment_pins() == pyproject_pins()


def test_every_dependency_is_pinned() -> None:
    for name, spec in pyproject_pins().items():
        assert spec.startswith("==") or name == "setuptools", f"{name} is not pinned: {spec!r}"
    assert pyproject_pins()["setuptools"] == "<81"  # nnictl imports pkg_resources


def test_ci_runs_make_test() -> None:
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_notebooks_are_committed_without_outputs() -> None:
    import nbformat

    notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
