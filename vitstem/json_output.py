"""`--json` on the commands a script reads: one JSON object on stdout instead of the human summary.

Every command that reports a result registers the flag with `add_json_flag` and prints through
`emit`, so the flag means the same everywhere: stdout holds exactly one JSON object (sorted keys),
errors still go to stderr with exit status 2.
"""

from __future__ import annotations

import json
import sys


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on stdout (for scripts) instead of the summary")


def emit(args, data: dict, text: str) -> None:
    """`data` as JSON when the command got --json, else the human-readable `text`."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        print(text)
