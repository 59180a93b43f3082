"""Operator commands, run from a checkout: python -m ops {redrive,backfill,doctor}."""

import sys
from pathlib import Path

# The commands use the functions' own package, which lives in the layer's folder.
_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
