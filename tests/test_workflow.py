"""End to end: the whole workflow on the small test config, the report, and partial reruns."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, configfile: Path, *args: str) -> str:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(configfile),
        *args,
    ]
    env = subprocess_env()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


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


def with_changes(tmp_path: Path, name: str, change) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    change(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def finished_run(test_config_run, tmp_path_factory):
    """A copy of the session's local test-config run (conftest.py): these tests change it."""
    work = tmp_path_factory.mktemp("wf") / "run"
    shutil.copytree(test_config_run, work, symlinks=True)
    return work


def metrics(work: Path) -> pd.DataFrame:
    return pd.read_csv(work / "results" / "test" / "metrics.csv", dtype={"target": str})


def test_metrics_values(finished_run):
    df = metrics(finished_run)
    per_target = df[~df.target.isin(["mean", "std"])]
    assert set(per_target.attack) == {"curv_nll", "lira_online", "yeom"}
    assert set(per_target.target) == {"4", "9"}
    assert per_target.auroc.between(0, 1).all()
    assert (per_target.auroc_lo <= per_target.auroc).all()
    assert (per_target.auroc <= per_target.auroc_hi).all()
    nll = df[(df.attack == "curv_nll") & (df.target == "mean")].iloc[0]
    # the test config trains 250-sample models without augmentation: membership leaks
    assert nll.auroc > 0.6, nll
    assert per_target[per_target.attack == "curv_nll"].auroc_lo.min() > 0.5
    # members / non-members counts are those of the target masks (500-sample population)
    assert (per_target.n_members + per_target.n_nonmembers == 500).all()
    models = pd.read_csv(finished_run / "results" / "test" / "models.csv")
    assert len(models) == 10 and (models.train_acc > models.test_acc).all()


def test_report(finished_run):
    report = finished_run / "report.html"
    snakemake(finished_run, TEST_CONFIG, "--report", str(report))
    html = report.read_text(errors="replace")
    for name in ("metrics.csv", "roc.png", "curv_hist.png", "models.csv"):
        assert name in html, name


def test_attack_change_reruns_only_attack_and_after(finished_run, tmp_path):
    cfg = with_changes(tmp_path, "attack.yaml", lambda c: c["attacks"][0].update(variant="clean"))
    plan = planned_jobs(snakemake(finished_run, cfg, "-n"))
    assert plan == {"attack": 1, "metrics": 1, "provenance": 1, "all": 1}, plan
    before = metrics(finished_run)
    snakemake(finished_run, cfg)
    after = metrics(finished_run)
    key = ["attack", "target"]
    b, a = before.set_index(key), after.set_index(key)
    assert (b.loc["curv_nll", "auroc"] != a.loc["curv_nll", "auroc"]).all()
    pd.testing.assert_series_equal(b.loc["yeom", "auroc"], a.loc["yeom", "auroc"])
    # and back: the original setting is again a change of params
    plan = planned_jobs(snakemake(finished_run, TEST_CONFIG, "-n"))
    assert plan == {"attack": 1, "metrics": 1, "provenance": 1, "all": 1}, plan


def test_scoring_change_never_retrains(finished_run, tmp_path):
    cfg = with_changes(tmp_path, "scoring.yaml", lambda c: c["scoring"].update(niter=3))
    plan = planned_jobs(snakemake(finished_run, cfg, "-n"))
    assert plan == {
        "score": 10,
        "attack": 3,
        "metrics": 1,
        "curv_hist": 1,
        "provenance": 1,
        "all": 1,
    }, plan
