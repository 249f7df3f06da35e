"""The fixed, seeded sample of mutants of the core modules (tests/_mutation.py,
docs/testing.md): every one must be killed by the fast tests of its module."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_sampled_mutants_of_the_core_modules_are_killed():
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mutmut is not installed (envs/requirements-dev.txt; `make test` does it)")
        pytest.skip("mutmut not installed: pip install -r envs/requirements-dev.txt")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_mutation.py"), "ci"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    report = [line for line in proc.stdout.splitlines() if not line.startswith(("⠋", "⠙"))]
    assert proc.returncode == 0, "\n".join(report[-60:]) + proc.stderr[-3000:]
    assert "mutation score 100.0%" in proc.stdout
