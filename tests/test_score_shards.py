"""Sharded scoring in the workflow: the job set of a dry run, the config check, and a killed
shard job that reruns alone."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from _util import planned_jobs, snakemake_cmd, subprocess_env

from curvmia.io import load_npz

REPO = Path(__file__).resolve().parents[1]


def dry_run(tmp_path: Path, change) -> subprocess.CompletedProcess:
    cfg = yaml.safe_load((REPO / "tests" / "config" / "test.yaml").read_text())
    change(cfg)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["--cores", "1", "--configfile", str(path), "-n", "--quiet", "rules"]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())


def test_sharded_job_set_and_hutch_feature_check(tmp_path):
    proc = dry_run(tmp_path, lambda c: c["scoring"].update(shards=3))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 10 models × 3 shards, one merge per model, no unsharded score job
    assert counts.get("score_shard") == 30 and counts.get("score_merge") == 10, out[-3000:]
    assert "score" not in counts

    appended = []

    def hutch_attack_without_probes(c):
        c["scoring"]["hutch_nprobes"] = 0
        appended.append(len(c["attacks"]))
        c["attacks"].append({"name": "curv_nll", "feature": "curv_hutch", "label": "wb"})

    proc = dry_run(tmp_path, hutch_attack_without_probes)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"attacks[{appended[0]}].feature" in out and "hutch_nprobes" in out, out[-3000:]


def _kill_when_started(pattern: list[str], stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first process that runs the script `pattern[0]` with every other string of
    `pattern` as an argument of its own (the Python job itself, not the shell that
    started it: a killed shell would leave its child running)."""
    me = os.getpid()
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            args = [c.decode(errors="replace") for c in cmdline]
            script, *rest = pattern
            if len(args) > 1 and args[1].endswith(script) and all(p in args for p in rest):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_shard_reruns_alone_and_merges_to_the_unsharded_file(test_config_run, tmp_path):
    """Score model 0 in 3 shard jobs; SIGKILL the job of shard 1 as soon as it starts (the
    others finish: --keep-going). The rerun runs exactly that shard and the merge, and the
    merged file holds the arrays of the unsharded run."""
    work = tmp_path / "work"
    shutil.copytree(test_config_run, work, symlinks=True)
    target = "results/test/scores/model_0.npz"
    unsharded = load_npz(test_config_run / target)
    (work / target).unlink()
    cfg = yaml.safe_load((REPO / "tests" / "config" / "test.yaml").read_text())
    cfg["scoring"]["shards"] = 3
    configfile = tmp_path / "sharded.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    cmd = snakemake_cmd(work, configfile, "--cores", "1", "--keep-going", target)

    stop, killed = threading.Event(), []
    watcher = threading.Thread(
        target=_kill_when_started, args=(["score.py", "--shard", "1/3"], stop, killed)
    )
    watcher.start()
    try:
        first = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    finally:
        stop.set()
        watcher.join()
    out = first.stdout + first.stderr
    assert killed and first.returncode != 0, out[-3000:]
    shards = sorted(p.name for p in (work / "results/test/scores/shards").iterdir())
    assert shards == ["model_0.0-of-3.npz", "model_0.2-of-3.npz"], out[-3000:]
    assert not (work / target).exists()

    second = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert planned_jobs(out) == {"score_shard": 1, "score_merge": 1}, out[-3000:]
    assert re.findall(r"wildcards: row=0, shard=(\d+)", out) == ["1"], out[-3000:]
    merged = load_npz(work / target)
    assert sorted(merged) == sorted(unsharded)
    for key, value in unsharded.items():  # metadata included
        np.testing.assert_array_equal(merged[key], value, err_msg=key)
