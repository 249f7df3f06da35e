"""End to end: the whole workflow on the small test config, the report, and partial reruns."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _util import planned_jobs, subprocess_env

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


def with_changes(tmp_path: Path, name: str, change) -> Path:
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    change(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


# what one changed attack reruns: itself and everything that reads attack results
AFTER_ATTACK = {
    "attack": 1,
    "realistic": 1,
    "metrics": 1,
    "per_example": 1,
    "loo": 1,
    "budget": 1,
    "theory": 1,
    "sweep_metrics": 2,  # the sweeps' attacks use the same specs and the same shadows
    "one_run": 1,  # the one-run bound reads every attack and its pseudo-targets
    "one_run_sweep": 1,
    "theory_sweep": 2,
    "provenance": 1,
    "all": 1,
}


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
    assert set(per_target.attack) == {"curv_nll", "lira_online", "yeom", "song", "rmia_online"}
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
    # every sample had IN and OUT shadows (pairs layout): no NaN score anywhere
    assert (per_target.n_no_in_shadow == 0).all() and (per_target.n_nan_scores == 0).all()
    assert (per_target["tpr_strict@0.01"].isna()).all()  # 250 non-members < 10/1%


def test_per_example_health_and_loo(finished_run):
    res = finished_run / "results" / "test"
    tidy = pd.read_csv(res / "per_example.csv.gz")
    assert len(tidy) == 5 * 2 * 500  # attacks × targets × population
    df = metrics(finished_run)
    for (attack, target), g in tidy.groupby(["attack", "target"]):
        from sklearn.metrics import roc_auc_score

        row = df[(df.attack == attack) & (df.target == str(target))].iloc[0]
        assert roc_auc_score(g.is_member, g.score) == pytest.approx(row.auroc)
    vuln = pd.read_csv(res / "vulnerability.csv")
    assert vuln.exposure_curv_nll.dropna().is_monotonic_decreasing
    assert len(vuln) == 500 and (vuln.n_targets_member == 1).all()  # targets 4, 9: a pair
    health = pd.read_csv(res / "health.csv")
    assert health.used.all() and len(health) == 10
    loo = pd.read_csv(res / "loo.csv")
    assert len(loo) == 10 * 5 and (loo.n_shadows == 8).all()
    assert loo[loo.attack == "curv_nll"].auroc.mean() > 0.55
    diff = pd.read_csv(res / "auroc_diff.csv", dtype={"target": str})
    per = diff[diff.target.isin(["4", "9"])]
    assert len(per) == 2 and (per.diff_lo <= per["diff"]).all()


def test_theory_values(finished_run):
    df = pd.read_csv(finished_run / "results" / "test" / "theory" / "targets.csv")
    assert set(df.target) == {4, 9}
    assert {"logcurv_zo", "loss", "p_true", "phi"} <= set(df.statistic)
    assert (df.n_members + df.n_nonmembers == 500).all()
    assert (df.audit_n_members + df.audit_n_nonmembers == 250).all()  # the evaluation half
    assert set(df.audit_attack) <= {"curv_nll", "lira_online", "yeom", "song", "rmia_online"}
    assert (df.eps_emp_lo >= 0).all() and (df.eps_emp_lo <= df.eps_emp_hi).all()
    assert (df.bound_kl == float("inf")).all()
    # loss, p_true and phi are monotone maps of each other at one query: one AUROC
    one = df[df.statistic.isin(["loss", "p_true"])].groupby("target").auroc
    assert (one.max() - one.min()).max() < 1e-9
    assert df[df.statistic == "loss"].auroc.between(0.55, 1).all()  # members have lower loss


def test_sweeps_and_their_theory_comparison(finished_run):
    """The small DP and size sweeps of the test config: the output contract, nested members,
    a DP mask no shadow uses, and the theory comparison over both."""
    res = finished_run / "results" / "test"
    n = 500
    for sweep, values in (("dp", [1.0, 8.0, 50.0]), ("size", [50, 200])):
        t = pd.read_csv(res / "sweeps" / sweep / "targets.csv")
        cols = ["sweep", "value", "seed", "model", "scores", "members", "test_acc"]
        assert list(t.columns) == [*cols, "score_identity"]  # what theory_sweep checks
        assert t["score_identity"].str.fullmatch(r"[0-9a-f]{16}").all()
        assert sorted(set(t["value"])) == values and (t["sweep"] == sweep).all()
        assert len(t) == len(values) * 2  # two seeds per value
        for r in t.itertuples():
            members = np.load(finished_run / r.members)
            assert members.dtype == bool and members.shape == (n,)
            if sweep == "size":
                assert members.sum() == r.value
            sc = np.load(finished_run / r.scores)
            assert sc["curv_zo"].shape == (n, 2) and 0 <= r.test_acc <= 1
        m = pd.read_csv(res / "sweeps" / sweep / "metrics.csv")
        assert list(m.columns[-2:]) == ["value", "seed"]
        assert len(m) == 5 * len(t) and m["auroc"].between(0, 1).all()  # 5 attacks
        th = pd.read_csv(res / "theory" / f"sweep_{sweep}.csv")
        assert set(th["model"]) == set(t["model"])
    size = pd.read_csv(res / "sweeps" / "size" / "targets.csv")
    assert size.groupby("value")["members"].nunique().eq(1).all()  # seeds share members
    dp = np.load(res / "sweeps" / "dp" / "members.npy")
    masks = np.load(res / "masks.npz")["masks"]
    assert not any(np.array_equal(dp, r) or np.array_equal(~dp, r) for r in masks)
    fit = json.loads((res / "theory" / "sweep_dp.json").read_text())
    assert len(fit["residuals"]) == 6  # 3 epsilons x 2 seeds, 3 residual degrees of freedom
    cross = json.loads((res / "theory" / "sweep_size.json").read_text())
    assert "crossover_m" in cross and len(cross["auroc"]) > 0


def test_report(finished_run):
    """The report embeds each result file's current bytes (a data URI per file), and the
    embedded metrics table holds the run's AUROCs."""
    import base64
    import io
    import re

    report = finished_run / "report.html"
    snakemake(finished_run, TEST_CONFIG, "--report", str(report))
    html = report.read_text(errors="replace").replace("\\/", "/")
    embedded: dict[str, list[bytes]] = {}
    for name, data in re.findall(r"filename=([^;\"']+);base64,([A-Za-z0-9+/=]+)", html):
        embedded.setdefault(name, []).append(base64.b64decode(data))
    res = finished_run / "results" / "test"
    names = (
        "metrics.csv",
        "roc.png",
        "headline.html",
        "curv_hist.png",
        "models.csv",
        "health.csv",
        "auroc_diff.csv",
        "vulnerability.csv",
        "realistic.csv",
        "stability.csv",
        "stability.png",
        "exposed.png",
        "loo.csv",
        "budget.csv",
        "budget.png",
        "bounds.png",
        "sweep_dp.png",
        "sweep_size.png",
    )
    for name in names:
        on_disk = {p.read_bytes() for p in res.rglob(name)}
        assert on_disk, name
        assert name in embedded and set(embedded[name]) <= on_disk, name
    table = pd.read_csv(io.BytesIO(embedded["metrics.csv"][0]), dtype={"target": str})
    pd.testing.assert_frame_equal(table, metrics(finished_run))
    assert table["auroc"].between(0, 1).all()


def test_attack_change_reruns_only_attack_and_after(finished_run, tmp_path):
    cfg = with_changes(tmp_path, "attack.yaml", lambda c: c["attacks"][0].update(variant="clean"))
    plan = planned_jobs(snakemake(finished_run, cfg, "-n"))
    assert plan == AFTER_ATTACK, plan
    before = metrics(finished_run)
    snakemake(finished_run, cfg)
    after = metrics(finished_run)
    key = ["attack", "target"]
    b, a = before.set_index(key), after.set_index(key)
    assert (b.loc["curv_nll", "auroc"] != a.loc["curv_nll", "auroc"]).all()
    pd.testing.assert_series_equal(b.loc["yeom", "auroc"], a.loc["yeom", "auroc"])
    # and back: the original setting is again a change of params
    plan = planned_jobs(snakemake(finished_run, TEST_CONFIG, "-n"))
    assert plan == AFTER_ATTACK, plan


@pytest.mark.parametrize("change", [{"niter": 3}, {"tf32": True}])
def test_scoring_change_never_retrains(finished_run, tmp_path, change):
    # scoring.tf32 is a scoring param too: switching it rescores (no numeric effect on a CPU)
    cfg = with_changes(tmp_path, "scoring.yaml", lambda c: c["scoring"].update(change))
    plan = planned_jobs(snakemake(finished_run, cfg, "-n"))
    assert plan == {"score": 10, "score_sweep": 10, "curv_hist": 1, **AFTER_ATTACK, "attack": 5}, (
        plan
    )


def test_health_floor_change_reruns_attacks_not_models(finished_run, tmp_path):
    cfg = with_changes(tmp_path, "health.yaml", lambda c: c.update(health={"min_test_acc": 0.9}))
    plan = planned_jobs(snakemake(finished_run, cfg, "-n"))
    assert plan == {"health": 1, **AFTER_ATTACK, "attack": 5}, plan
