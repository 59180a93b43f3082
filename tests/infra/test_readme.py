"""The README's table "behaviour -> module -> test" names only what exists, so it cannot go
stale; its links to docs/ resolve; it stays short."""

from __future__ import annotations

import ast
import re

from tests.harness.world import ROOT

README = (ROOT / "README.md").read_text()
LAYER = ROOT / "layers" / "common" / "imgix_autoadder"


def behaviour_rows() -> list[tuple[str, str, str]]:
    section = README.split("## What each behaviour is", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"), cells[2].strip("`")))
    return rows


def test_the_table_has_a_row_for_each_tier_and_feature():
    rows = behaviour_rows()
    assert len(rows) >= 25
    tiers = {test.split("/")[1] for _, _, test in rows}
    assert {"unit", "contract", "integration", "properties", "infra"} <= tiers
    packages = {module.split("/")[0] for _, module, _ in rows}
    assert {"indexing", "ingest", "rate", "imgix", "s3", "sources", "core"} <= packages


def test_every_module_and_test_named_exists():
    missing = []
    for behaviour, module, test in behaviour_rows():
        module_path = ROOT / module if module.startswith(("localdev/", "ops/")) else LAYER / module
        if not module_path.exists():
            missing.append(f"{behaviour}: module {module}")
        path, _, name = test.partition("::")
        if not (ROOT / path).exists():
            missing.append(f"{behaviour}: test file {path}")
            continue
        if name:
            tree = ast.parse((ROOT / path).read_text())
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            if name not in defined:
                missing.append(f"{behaviour}: test {test}")
    assert not missing, missing


def test_every_link_to_a_document_resolves():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_the_readme_stays_short_and_starts_with_the_two_commands():
    assert len(README.splitlines()) <= 200
    head = README.splitlines()[:6]
    assert any(line.startswith("make run") for line in head)
    assert any(line.startswith("make test") for line in head)
