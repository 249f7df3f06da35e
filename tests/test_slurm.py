"""The test config on a real single-node SLURM (with slurmdbd accounting) via profiles/slurm.

The shipped profile runs unchanged except for what tests/profiles/slurm-local/config.yaml
takes away (no Apptainer, no GPUs on this machine) and the plugin's first status check,
which it moves from 40 s to 2 s. Every job must have gone through sbatch (checked in sacct)
and the metrics must equal a local run of the same config. Skips on a machine without
root/apt, but FAILS when CI=true. Hard limit: 300 s from cluster start to the last check.

The experiment is the test config with 2 complement pairs (4 models) instead of 5 and
without its DP/size sweeps: every SLURM job pays a Snakemake start and a torch import inside
the job (~20-50 s of one of the machine's 2 cores), and the plugin sees an array finish only
as a whole, polling with a growing back-off (2 s, then +10 s per poll that sees nothing
finish), so the 22 jobs of the full config took 8.5 minutes here. The submission paths are the
same: a prep group, a train array, a score array and the post group.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _slurm import ACCOUNT, Cluster, SlurmUnavailable, ensure_installed, running_cluster
from _util import planned_jobs, snakemake_cmd, subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
SHIPPED = REPO / "profiles" / "slurm" / "config.yaml"
TEST_LAYER = REPO / "tests" / "profiles" / "slurm-local" / "config.yaml"
# Hard limit from cluster start to the last check (the env override is for loaded dev machines).
TIME_LIMIT_S = int(os.environ.get("CURVMIA_SLURM_TIME_LIMIT_S", "300"))
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.slow


def layered(base: dict, top: dict) -> dict:
    """`top` over `base`: mappings merge key by key, None deletes a key, the rest replaces."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = layered(out[key], value)
        else:
            out[key] = value
    return out


def test_test_layer_removes_only_what_this_machine_lacks():
    shipped = yaml.safe_load(SHIPPED.read_text())
    merged = layered(shipped, yaml.safe_load(TEST_LAYER.read_text()))
    changed = {k for k in shipped.keys() | merged.keys() if shipped.get(k) != merged.get(k)}
    assert changed == {
        "software-deployment-method",
        "apptainer-args",
        "set-resources",
        "default-resources",
        "slurm-init-seconds-before-status-checks",
    }
    assert merged["default-resources"] == {**shipped["default-resources"], "slurm_account": ACCOUNT}
    for rule, res in shipped["set-resources"].items():
        expected = {k: v for k, v in res.items() if k not in ("gpu", "gres")}
        assert merged["set-resources"][rule] == expected, rule


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    """The test config with 2 complement pairs (shadows 0 and 2, targets 1 and 3), no sweeps."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["masks"].update(n_random=2, shadows=[0, 2], targets=[1, 3])
    cfg["theory"] = {"sweeps": []}
    path = tmp_path_factory.mktemp("small") / "test_small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def local_small_run(small_config, tmp_path_factory) -> Path:
    """The same experiment run locally (before the cluster starts: its clock is not ours)."""
    work = tmp_path_factory.mktemp("local_small")
    cmd = snakemake_cmd(work, small_config, "--cores", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return work


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not IN_CI and os.geteuid() != 0:
        pytest.skip("needs root (apt-get, slurmd); CI=true makes this a failure")
    t0 = time.monotonic()
    try:
        apt_s = ensure_installed()
        print(f"apt-get install: {apt_s:.1f} s")
        root = tmp_path_factory.mktemp("slurm")
        with running_cluster(root) as c:
            c.started = time.monotonic()
            print(f"cluster up after {c.started - t0:.1f} s")
            yield c
    except SlurmUnavailable as e:
        if IN_CI:
            pytest.fail(f"SLURM unavailable in CI: {e}")
        pytest.skip(f"SLURM unavailable: {e}")


def run_until(cmd: list[str], env: dict, cwd: Path, deadline: float, cluster: Cluster):
    """Run `cmd`; past `deadline` kill its process group and cancel the cluster's jobs."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        subprocess.run(["scancel", "--user", "root"], env=cluster.env, capture_output=True)
        pytest.fail(f"time limit ({TIME_LIMIT_S} s) exceeded:\n{out[-5000:]}")
    return proc.returncode, out


def test_test_config_on_slurm_equals_local_run(local_small_run, small_config, cluster, tmp_path):
    deadline = cluster.started + TIME_LIMIT_S
    profile = tmp_path / "profile"
    profile.mkdir()
    merged = layered(yaml.safe_load(SHIPPED.read_text()), yaml.safe_load(TEST_LAYER.read_text()))
    (profile / "config.yaml").write_text(yaml.safe_dump(merged))
    work = tmp_path / "work"
    work.mkdir()
    env = {**subprocess_env(), **{"SLURM_CONF": cluster.env["SLURM_CONF"]}}
    cmd = snakemake_cmd(work, small_config, "--profile", str(profile))

    rc, plan_out = run_until([*cmd, "-n"], env, REPO, deadline, cluster)
    assert rc == 0, plan_out[-5000:]
    plan = planned_jobs(plan_out)
    assert plan["train"] == 4 and plan["score"] == 4, plan

    rc, out = run_until(cmd, env, REPO, deadline, cluster)
    assert rc == 0, out[-8000:]
    print(f"SLURM run done {time.monotonic() - cluster.started:.0f} s after the cluster start")
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)

    # Every job except the target rule `all` went through sbatch and completed under the
    # cluster's account: one sbatch job per task of the job arrays (train, score), per group
    # of the profile's `groups` (all components merged) and per other job.
    jobs = [j for j in cluster.sacct_jobs() if j["JobName"] == run_id]
    assert jobs, cluster.sacct_jobs()
    groups = merged["groups"]

    # a group job's comment is rule_<group>_<its rules, sorted, joined by _>, where Snakemake
    # (GroupJob.name) lists at most 5 rules and then "..."
    def group_comment_of(g: str) -> str:
        rules = sorted(r for r in plan if groups.get(r) == g)
        rules = rules[:5] + ["..."] if len(rules) > 5 else rules
        return f"rule_{g}_" + "_".join(rules)

    group_comment = {group_comment_of(g): g for g in set(groups.values())}
    submitted: dict[str, int] = {}
    arrays = set()
    for j in jobs:
        assert j["State"] == "COMPLETED" and j["ExitCode"] == "0:0", j
        assert j["Account"] == ACCOUNT, j
        name = group_comment.get(j["Comment"])
        if name is None:
            name = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", j["Comment"]).group(1)
        submitted[name] = submitted.get(name, 0) + 1
        if "_" in j["JobID"]:  # a task of a job array
            arrays.add(name)
    expected: dict[str, int] = {}
    for rule, n in plan.items():
        if rule in groups:
            expected[groups[rule]] = 1
        elif rule != "all":
            expected[rule] = n
    assert submitted == expected
    assert {"train", "score"} <= set(merged["slurm-array-jobs"].split(","))
    # (a wave with a single ready job goes as a plain job; the rest as arrays)
    assert arrays == {"train", "score"}, jobs
    # nothing but the target rule ran in the submitting process
    assert re.findall(r"^localrule (\w+):", out, re.M) == ["all"], out[-5000:]

    local = local_small_run / "results" / "test"
    remote = work / "results" / "test"
    pd.testing.assert_frame_equal(
        pd.read_csv(remote / "metrics.csv"), pd.read_csv(local / "metrics.csv")
    )
    models_l = pd.read_csv(local / "models.csv").drop(columns="seconds")
    models_r = pd.read_csv(remote / "models.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(models_r, models_l)
    assert time.monotonic() < deadline


def test_profile_name_resolves_from_repo_root(tmp_path):
    """`snakemake --profile slurm` typed in the repository root finds profiles/slurm."""
    cmd = snakemake_cmd(tmp_path, TEST_CONFIG, "--profile", "slurm", "-n")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert "Using profile slurm for setting default command line arguments" in out, out[-3000:]
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert proc.returncode == 0, out[-3000:]
    else:
        # the profile's software-deployment-method took effect: it stops before any job
        assert proc.returncode != 0
        assert "apptainer or singularity command has to be available" in out, out[-3000:]
