"""Measure the shims too when the suite runs under coverage (``.ci/test`` sets ``COVERAGE_PROCESS_START``).

A shim starts as ``python -I -S -c BOOT`` with an empty environment, so coverage's start-up hook
(a ``.pth`` file read by ``site``, switched on by an environment variable) never reaches it. For
the runtimes this test process builds, ``BOOT`` gets a prefix that starts coverage from the same
config; ``patch = ["_exit"]`` there saves the data when the shim ends with ``os._exit``. Shims
started by a gateway in a subprocess run the plain ``BOOT`` and are not measured.
"""

from __future__ import annotations

import os
from pathlib import Path

import coverage

from mcp_server.runtime import shim

_REPO = Path(__file__).resolve().parents[2]


def measured_boot(config_file: str) -> str:
    """``shim.BOOT`` preceded by starting coverage with ``config_file``."""
    installed = str(Path(coverage.__file__).resolve().parents[1])
    data_file = os.environ.get("COVERAGE_FILE", str(_REPO / ".coverage"))
    sources = [str(_REPO / package) for package in ("mcp_server", "rest_bridge", "k8s")]
    start = (
        f"import sys; sys.path.append({installed!r}); import coverage; "
        f"coverage.Coverage(data_file={data_file!r}, data_suffix=True, config_file={config_file!r}, "
        f"source={sources!r}).start(); "
    )
    return start + shim.BOOT
