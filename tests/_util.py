"""Shared helpers for tests that start Snakemake or tools in a subprocess."""

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """Environment in which the rules' `python` is the interpreter running the tests."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """Command line of a workflow run in `workdir` with `configfile` (no profile)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count} (without 'total')."""
    if "Nothing to be done" in dry_run_output:
        return {}
    block = dry_run_output.split("Job stats:")[1]
    jobs = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        jobs[m.group(1)] = int(m.group(2))
    jobs.pop("total", None)
    return jobs


def fresh_clone(dest: Path) -> Path:
    """A fresh clone of this repository with the working tree's edits, at `dest`.

    Tests that run the workflow from the repository root (as users do) run here, so they
    never see or touch the user's results/ or data/.
    """
    import shutil
    import subprocess

    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    out = subprocess.run(
        ["git", "ls-files", "-z", "-m", "-o", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for rel in filter(None, out.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif not src.exists():
            (dest / rel).unlink(missing_ok=True)
    return dest


def apt_lock() -> FileLock:
    """A machine-wide lock around apt-get: parallel test workers never run two at once."""
    return FileLock("/tmp/curvmia-tests-apt.lock")


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """Directory `name`, built by `make(path)` once per test run and shared by every
    pytest-xdist worker of the run (the first worker builds it, the others wait for it).

    A failed build is remembered: every worker that asks again fails with its message.
    """
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and base.name.endswith(worker):  # not a pytest started inside a worker
        base = base.parent  # the run's base directory, above the workers' own
    target, done, failed = base / name, base / f"{name}.done", base / f"{name}.failed"
    with FileLock(str(base / f"{name}.lock")):
        if failed.exists():
            msg = failed.read_text()
            raise AssertionError(f"{name} failed to build earlier in this run:\n{msg}")
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            try:
                make(target)
            except BaseException as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}"[-5000:])
                raise
            done.touch()
    return target


def shared_value(tmp_path_factory, name: str, make: Callable[[Path], object]) -> object:
    """A JSON value computed once per test run by `make(scratch_dir)`, shared by the workers."""

    def build(path: Path) -> None:
        value = make(path)
        (path / "value.json").write_text(json.dumps(value))

    return json.loads((once_per_run(tmp_path_factory, name, build) / "value.json").read_text())
