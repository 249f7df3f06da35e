"""Messages a user reads when a run is refused: a second run in a folder that another run
holds is told so, with what to do (not Snakemake's ``--cleanup-metadata`` advice)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _util import fresh_clone, subprocess_env

from curvmia.runlock import being_written, held_message, held_targets

HELD = "another run seems to hold this folder"


def _snakemake(clone: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=subprocess_env())


def test_a_second_run_is_told_another_run_holds_the_folder(tmp_path):
    """A real first run (digits default) holds the folder; a second plain run is refused with
    the remedy, a dry run still plans, and after the first is killed (its locks outlive it, as
    after a crash) `--unlock` frees the folder."""
    clone = fresh_clone(tmp_path / "curvmia")
    lock = clone / ".snakemake" / "locks" / "0.output.lock"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "1"],
            cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(),
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock.exists(), (tmp_path / "first.log").read_text()[-3000:]

        second = _snakemake(clone, "--cores", "1")
        out = second.stdout + second.stderr
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.returncode != 0 and HELD in out, out[-3000:]
        assert "snakemake --unlock" in out and "--cleanup-metadata" not in out, out[-3000:]
        assert "LockException" not in out and "IncompleteFilesException" not in out

        dry = _snakemake(clone, "-n")  # a dry run beside a live run plans, as before
        assert dry.returncode == 0 and "Job stats" in dry.stdout, dry.stderr[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # as a crash or `kill -9` ends a run
        first.wait()
    unlock = _snakemake(clone, "--unlock")
    assert unlock.returncode == 0 and not lock.exists(), unlock.stderr[-3000:]


def test_held_targets_and_the_message_name_the_locks_and_the_outputs(tmp_path):
    """Only another run's output locks on this run's targets count; the message names the lock
    files and the outputs marked incomplete (Snakemake's urlsafe base64 marker names)."""
    locks, incomplete = tmp_path / "locks", tmp_path / "incomplete"
    locks.mkdir()
    (locks / "0.input.lock").write_text("results/digits/metrics.csv\n")  # read, not written
    (locks / "0.output.lock").write_text("results/digits/models/model_3.pt\nresults/x.csv\n")
    assert held_targets(tmp_path, ["results/digits/metrics.csv"]) == []
    assert held_targets(tmp_path, ["results/x.csv", "results/y.csv"]) == ["results/x.csv"]

    incomplete.mkdir()
    (incomplete / "cmVzdWx0cy9kaWdpdHMvbW9kZWxzL21vZGVsXzE2LnB0").touch()
    (incomplete / "migration_underway").touch()  # not a marker
    assert being_written(tmp_path) == ["results/digits/models/model_16.pt"]
    msg = held_message(tmp_path, tmp_path)
    assert msg.startswith(f"{HELD} ({tmp_path.resolve()}): {locks} holds its locks (")
    assert "0.input.lock, 0.output.lock, taken " in msg
    assert "results/digits/models/model_16.pt" in msg and "`snakemake --unlock`" in msg
