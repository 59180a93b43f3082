"""Operator commands, run from a checkout: python -m ops {redrive,backfill,doctor}."""

import argparse
import sys
from pathlib import Path

# The commands use the functions' own package, which lives in the layer's folder.
_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)


def command_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser every `python -m ops NAME` starts from: its module doc as help."""
    return argparse.ArgumentParser(
        prog=f"python -m ops {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
