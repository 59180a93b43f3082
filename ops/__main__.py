"""Operator commands: python -m ops {redrive,doctor,backfill,sources,audit} --help"""

from __future__ import annotations

import importlib
import sys


def main() -> int:
    commands = {
        "redrive": "ops.redrive",
        "backfill": "ops.backfill",
        "doctor": "ops.doctor",
        "sources": "ops.sources",
        "audit": "ops.audit",
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: python -m ops {{{','.join(commands)}}} [--help]", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[sys.argv[1]])
    result: int = module.main(sys.argv[2:])
    return result


if __name__ == "__main__":
    sys.exit(main())
