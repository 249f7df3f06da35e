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


def test_every_equivalent_mutant_is_argued_in_the_docs():
    """Each mutant excluded as equivalent has its one-line argument in EQUIVALENT (the
    function, then why) and its row in docs/testing.md, where a reader looks for it."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import _mutation
    finally:
        sys.path.pop(0)
    doc = (REPO / "docs" / "testing.md").read_text()
    assert len(_mutation.EQUIVALENT) > 250  # the triage rounds argued about 300
    for digest, why in _mutation.EQUIVALENT.items():
        assert len(digest) == 12 and set(digest) <= set("0123456789abcdef"), digest
        func, _, reason = why.partition(": ")
        assert func and " " not in func and len(reason) > 10, (digest, why)
        assert f"`{digest}`" in doc, f"{digest} ({why}) is not in docs/testing.md"
