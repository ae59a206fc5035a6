"""``kubegate keys create`` for the tests, in one long-lived process per test worker.

Every test mints its own key; as a fresh ``python -m mcp_server.cli keys create`` each paid the
CLI's start-up (importing the whole gateway, under coverage in CI: ~2 s of CPU) a thousand times a
run. This process imports it once and runs the very coroutine the CLI runs (``_keys_create``), on the
arguments the CLI's parser makes of the same argv and the settings it would load from the same
environment, and answers with the key the CLI
prints on its last line. The CLI itself is tested as a CLI in tests/test_cli_keys.py.

Protocol: one JSON request a line on stdin (``env``: the whole environment the CLI would get; ``argv``: its
arguments after ``keys create``), one JSON answer a line on stdout (``key``, or ``error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from typing import Any

from mcp_server.cli import _keys_create, _parser, _settings


def _mint(request: dict[str, Any]) -> str:
    os.environ.clear()  # exactly the environment the CLI would have started in
    os.environ.update(request["env"])
    args = _parser().parse_args(["keys", "create", *request["argv"]])  # the CLI's own defaults (90 days)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        asyncio.run(_keys_create(_settings(args), args.name, args.scopes, args.user, args.expires_in_days))
    return printed.getvalue().strip().splitlines()[-1]


def main() -> None:
    answers = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the answer channel
    for line in sys.stdin:
        try:
            answer = {"key": _mint(json.loads(line))}
        except (Exception, SystemExit) as exc:  # the test that asked gets it as its failure (the CLI exits)
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
