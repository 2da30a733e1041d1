"""``converge`` as a user runs it, in a child process: the one helper the newer test files share.

The child imports this source tree (``PYTHONPATH``), prints no colours, and runs with the
per-worker caches conftest.py sets up; a command that blocks fails its test by the time-out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def converge(*args: str, cwd: Path | str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m converge_rules ARGS`` in ``cwd``; ``env`` adds variables (``PYTHONHASHSEED="7"``)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    full = dict(os.environ, NO_COLOR="1", PYTHONPATH=path, **env)
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)
