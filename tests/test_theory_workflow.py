"""The theory rules join the workflow: always for the main targets, for a sweep only when
some rule produces (or there already is) its targets.csv and metrics.csv."""

import re
import subprocess
import sys
from pathlib import Path

import yaml
from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"


def dry_run(workdir: Path, snakefile: Path, configfile: Path) -> tuple[dict[str, int], str]:
    cmd = [sys.executable, "-m", "snakemake", "all", "-s", str(snakefile), "-d", str(workdir),
           "-n", "--cores", "1", "--configfile", str(configfile)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    jobs = {}
    for line in out.split("Job stats:")[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        jobs[m.group(1)] = int(m.group(2))
    return jobs, out


def test_without_sweep_rules_only_the_main_comparison_runs(tmp_path):
    jobs, out = dry_run(tmp_path, REPO / "Snakefile", TEST_CONFIG)
    assert jobs["theory"] == 1 and "theory_sweep" not in jobs
    assert "the dp sweep comparison is skipped" in out
    assert "the size sweep comparison is skipped" in out


def test_a_rule_that_produces_a_sweep_brings_in_its_comparison(tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "rule fake_dp_sweep:\n"
        "    output:\n"
        '        "results/test/sweeps/dp/targets.csv",\n'
        '        "results/test/sweeps/dp/metrics.csv",\n'
        "    log:\n"
        '        "fake.log",\n'
        "    shell:\n"
        '        "false"\n\n\n'
        f'include: "{REPO / "Snakefile"}"\n'
    )
    jobs, out = dry_run(tmp_path, snakefile, TEST_CONFIG)
    assert jobs["fake_dp_sweep"] == 1 and jobs["theory_sweep"] == 1 and jobs["theory"] == 1
    assert "results/test/theory/sweep_dp.png" in out
    assert "the dp sweep comparison is skipped" not in out
    assert "the size sweep comparison is skipped" in out


def test_existing_sweep_files_are_compared_and_the_list_is_honoured(tmp_path):
    sweep = tmp_path / "results" / "test" / "sweeps" / "size"
    sweep.mkdir(parents=True)
    (sweep / "targets.csv").write_text("sweep,value,seed,model,scores,members,test_acc\n")
    (sweep / "metrics.csv").write_text("attack,target,auroc,value,seed\n")
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["theory"] = {"sweeps": ["size"]}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs, out = dry_run(tmp_path, REPO / "Snakefile", path)
    assert jobs["theory_sweep"] == 1
    assert "results/test/theory/sweep_size.csv" in out
    assert "sweep comparison is skipped" not in out  # dp is not listed
