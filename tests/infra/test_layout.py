"""The layer's packages by feature: no cycles, no back-arrows, modules of one idea."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness.world import ROOT

LAYER = ROOT / "layers" / "common" / "imgix_autoadder"
# Which packages each may import: the README's "Depends on" column.
ALLOWED = {
    "core": set(),
    "rate": set(),
    "s3": set(),
    "imgix": {"core", "rate"},
    "sources": {"imgix"},
    "ingest": {"core", "imgix", "s3"},
    "indexing": {"core", "imgix", "s3", "sources", "ingest"},
    "audit": {"imgix", "indexing", "s3", "sources"},
}
MAX_LINES = 320  # "about 300": one idea per module


def imports_of(path: Path) -> set[str]:
    """The imgix_autoadder packages a module imports, at run time or for typing."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "imgix_autoadder" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_imports_only_what_it_may():
    wrong = []
    for package, allowed in ALLOWED.items():
        for module in sorted((LAYER / package).glob("*.py")):
            extra = imports_of(module) - allowed - {package}
            if extra:
                wrong.append(f"{package}/{module.name} imports {sorted(extra)}")
    assert not wrong, wrong


def test_the_packages_are_those_the_readme_names():
    packages = {p.name for p in LAYER.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
    top = {p.name for p in LAYER.glob("*.py")}
    assert top == {"__init__.py", "wiring.py"}
    readme = (ROOT / "README.md").read_text()
    for package in ALLOWED:
        assert f"| `{package}/` |" in readme


def test_the_allowed_imports_have_no_cycle():
    seen: dict[str, int] = {}

    def visit(package: str) -> None:
        assert seen.get(package) != 1, f"cycle through {package}"
        if seen.get(package) == 2:
            return
        seen[package] = 1
        for dependency in ALLOWED[package]:
            visit(dependency)
        seen[package] = 2

    for package in ALLOWED:
        visit(package)


def test_no_module_holds_more_than_one_idea_by_size():
    long = [
        f"{path.relative_to(LAYER)}: {n}"
        for path in LAYER.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, long
