"""template.yaml, parsed once, as CloudFormation would read it (with its short tags)."""

from __future__ import annotations

from typing import Any

from cfnlint.decode import decode

from tests.harness.world import ROOT

TEMPLATE, _ = decode(str(ROOT / "template.yaml"))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
