"""Sharded scoring in the workflow: the job set of a dry run and the config check."""

import subprocess
import sys
from pathlib import Path

import yaml
from _util import subprocess_env

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
