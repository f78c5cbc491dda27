"""The packages import only downward, read from the source (ast), lazy imports included:

    edgevit ← analysis.cost, analysis.runtime ← analysis.counters · .latency · .accuracy
            ← analysis.nas ← analysis.paper ← analysis.cli

Siblings of one level never import each other; only analysis.nas imports nni or optuna; the
model package never names the analysis, not even in a string; nothing inside edgevit imports
in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LEVELS = {
    "edgevit": 0,
    "analysis": 0,  # the namespace's __init__ (a docstring)
    "analysis.cost": 1,
    "analysis.runtime": 1,
    "analysis.counters": 2,
    "analysis.latency": 2,
    "analysis.accuracy": 2,
    "analysis.nas": 3,
    "analysis.paper": 4,
    "analysis.cli": 5,
}
SEARCH_LIBRARIES = ("nni", "optuna")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str | None:
    """The layered package a module belongs to (longest prefix in LEVELS)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LEVELS:
            return ".".join(parts[:end])
    return None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    this = module_name(path)
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module
            out.append((node.lineno, target))
            # `from package import submodule` imports the submodule too
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def source_files() -> list[Path]:
    return sorted(path for folder in ("edgevit", "analysis")
                  for path in (REPO_ROOT / folder).rglob("*.py"))


def upward_imports(path: Path) -> list[str]:
    """'file:line imports X' for each import that goes up or sideways."""
    own = package_of(module_name(path))
    problems = []
    for line, target in imported_modules(path):
        other = package_of(target)
        top = target.split(".")[0]
        where = f"{path.relative_to(REPO_ROOT)}:{line}"
        if top in SEARCH_LIBRARIES and own != "analysis.nas":
            problems.append(f"{where} imports {target} (only analysis.nas may)")
        if other is None or other == own:
            continue
        if LEVELS[other] >= LEVELS[own]:
            problems.append(f"{where} imports {target} ({own} may import only the levels "
                            "below it)")
    return problems


def test_the_layering_rules_read_imports_right(tmp_path) -> None:
    """The checker itself, on a planted upward import inside a function."""
    bad = REPO_ROOT / "analysis" / "cost" / "_planted_for_test.py"
    bad.write_text("def f():\n    from analysis.nas import pareto\n    import optuna\n")
    try:
        problems = upward_imports(bad)
    finally:
        bad.unlink()
    assert len(problems) == 3  # analysis.nas, analysis.nas.pareto, optuna
    assert all(p.startswith("analysis/cost/_planted_for_test.py:") for p in problems)


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_packages_import_only_downward(path: Path) -> None:
    assert package_of(module_name(path)) is not None, f"{path} is in no layered package"
    problems = upward_imports(path)
    assert not problems, "\n".join(problems)


def test_the_model_never_names_the_analysis() -> None:
    named = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "edgevit").rglob("*.py")
             if "analysis" in p.read_text()]
    assert not named, f"edgevit names the analysis in {named}"


def test_no_import_cycle_inside_the_model_package() -> None:
    graph = {}
    for path in (REPO_ROOT / "edgevit").rglob("*.py"):
        name = module_name(path)
        graph[name] = {package_of(t) if t == "edgevit" else t for _, t in imported_modules(path)
                       if t.startswith("edgevit.") and t != name}
    graph = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    graph["edgevit"] = set()  # the package's __init__ imports everything; nothing imports it

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, {name}))
    assert not cycles, f"edgevit modules in an import cycle: {cycles}"
