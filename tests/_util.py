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


def dry_runs_in_forks(
    jobs: list[tuple[tuple[str, ...], Path]], workers: int = 2
) -> list[tuple[int, str]]:
    """Run Snakemake command lines (argv without ``snakemake``, cwd) as forks of this process,
    at most `workers` at once; returns (exit code, stdout + stderr) of each, in order.

    A dry run spends most of its time importing Snakemake, torch and timm (the model checks
    of curvmia/config_checks.py): this process imports them once, and every fork starts with them
    loaded (about 2.5 CPU-s a plan instead of 7.5 in a new interpreter). Each fork is its own
    process, so no state of one plan reaches the next. Only for plans of this repository's
    own code (the forks reuse the `curvmia` modules loaded from REPO).
    """
    import tempfile

    import snakemake.cli
    import torch  # noqa: F401  (loaded before forking: what the forks save)

    sys.path.insert(0, str(REPO))
    import curvmia.imported  # noqa: F401
    import curvmia.models  # noqa: F401
    import curvmia.train  # noqa: F401

    def start(argv: tuple[str, ...], cwd: Path) -> tuple[int, object]:
        out = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the fork: run Snakemake's command line, never return to pytest
            code = 70
            try:
                os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                # pytest's capture replaced sys.stdout/err by its own files: write to 1 and 2
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                try:
                    snakemake.cli.main(list(argv))
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else int(e.code is not None)
            except BaseException:  # noqa: BLE001 - reported through the output file
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        return pid, out

    results: list[tuple[int, str] | None] = [None] * len(jobs)
    running: dict[int, tuple[int, object]] = {}
    pending = list(enumerate(jobs))
    while pending or running:
        while pending and len(running) < workers:
            i, (argv, cwd) = pending.pop(0)
            pid, out = start(argv, cwd)
            running[pid] = (i, out)
        pid, status = os.wait()
        if pid not in running:
            continue
        i, out = running.pop(pid)
        out.seek(0)
        results[i] = (os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"))
        out.close()
    return results  # type: ignore[return-value]
