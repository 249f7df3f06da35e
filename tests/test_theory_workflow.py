"""Which theory and sweep jobs the workflow plans: theory.sweeps decides what rule all
compares, and the paper configs keep the sweeps as separate targets."""

import subprocess
import sys
from pathlib import Path

import yaml
from _util import planned_jobs, subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"


def dry_run(workdir: Path, configfile: Path, *targets: str) -> dict[str, int]:
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"),
           "-d", str(workdir), "-n", "--cores", "1", "--configfile", str(configfile)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return planned_jobs(out)


def with_theory_sweeps(tmp_path: Path, sweeps: list[str]) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["theory"] = {"sweeps": sweeps}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_rule_all_runs_and_compares_both_sweeps_of_the_test_config(tmp_path):
    jobs = dry_run(tmp_path, TEST_CONFIG)
    # 3 epsilons x 2 seeds DP targets, 2 sizes x 2 seeds size targets
    assert jobs["theory"] == 1 and jobs["theory_sweep"] == 2
    assert jobs["train_sweep"] == 6 + 4 and jobs["score_sweep"] == 6 + 4
    assert jobs["dp_members"] == 1 and jobs["size_members"] == 2 and jobs["sweep_metrics"] == 2
    # the one-run bound of the targets, and of the DP sweep's targets (theory.sweeps lists dp)
    assert jobs["one_run"] == 1 and jobs["one_run_sweep"] == 1


def test_theory_sweeps_selects_what_rule_all_compares(tmp_path):
    jobs = dry_run(tmp_path, with_theory_sweeps(tmp_path, ["size"]))
    assert jobs["theory_sweep"] == 1 and jobs["sweep_metrics"] == 1
    assert jobs["train_sweep"] == 4 and "dp_members" not in jobs and "one_run_sweep" not in jobs
    assert jobs["one_run"] == 1
    jobs = dry_run(tmp_path, with_theory_sweeps(tmp_path, []))
    assert not {"theory_sweep", "sweep_metrics", "train_sweep", "score_sweep"} & set(jobs)
    assert jobs["theory"] == 1


def test_a_sweep_target_brings_its_comparison(tmp_path):
    jobs = dry_run(tmp_path, with_theory_sweeps(tmp_path, []), "dp_sweep")
    assert jobs["theory_sweep"] == 1 and jobs["train_sweep"] == 6
    # the DP sweep's one-run bound is its own target (it needs the main attacks)
    assert "one_run_sweep" not in jobs and "attack" not in jobs


def test_the_dp_one_run_target_brings_the_attacks_and_the_sweep(tmp_path):
    jobs = dry_run(tmp_path, with_theory_sweeps(tmp_path, []), "dp_one_run")
    assert jobs["one_run_sweep"] == 1 and jobs["attack"] == 5 and jobs["sweep_metrics"] == 1
    assert jobs["train_sweep"] == 6 and "theory_sweep" not in jobs and "one_run" not in jobs
    assert "theory" not in jobs and "size_members" not in jobs
