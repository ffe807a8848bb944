"""``make run`` installs only what running needs; ``make test``'s virtualenv adds the dev extra
(checked on what make would run: ``make -n -B``, nothing is executed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str) -> list[str]:
    # Run as a top-level make even under `make test`: no inherited flags, no directory lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def pip_installs(lines: list[str]) -> list[str]:
    return [line for line in lines if re.search(r"pip install .*-e ", line)]


def test_make_run_installs_the_package_without_extras() -> None:
    lines = planned("run")
    assert pip_installs(lines) == [".venv/bin/python -m pip install -q -e ."]
    assert not any("[dev]" in line for line in lines)
    assert lines[-1] == ".venv/bin/wsfleet serve"


def test_the_test_virtualenv_adds_the_dev_extra() -> None:
    installs = pip_installs(planned("venv"))
    assert installs[0] == ".venv/bin/python -m pip install -q -e ."
    assert installs[-1] == ".venv/bin/python -m pip install -q -e '.[dev]'"
